//! The guardrail's one error type.

/// Why content could not be judged now.
#[derive(Debug, thiserror::Error)]
pub enum GuardrailError {
    /// The classifier failed (unreachable, timed out, answered nonsense). The worker flags the
    /// content for an admin instead of guessing.
    #[error("classifier {classifier}: {reason}")]
    Classifier {
        /// `name@version`.
        classifier: String,
        /// What went wrong (no content, no secrets).
        reason: String,
    },
    /// The command could not be executed.
    #[error(transparent)]
    Command(#[from] bw_commands::CommandError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored event could not be read.
    #[error("unreadable event: {0}")]
    Corrupt(String),
}

/// A guardrail failure inside a projection or worker batch: database trouble and conflicts are
/// retried, anything else stops it for an operator.
impl From<GuardrailError> for bw_projections::ProjectionError {
    fn from(error: GuardrailError) -> Self {
        match error {
            GuardrailError::Database(e) => bw_projections::ProjectionError::Database(e),
            GuardrailError::Command(bw_commands::CommandError::Database(e)) => {
                bw_projections::ProjectionError::Database(e)
            }
            // Agents kept writing to the stream: the batch is retried later, the worker keeps going.
            GuardrailError::Command(e @ bw_commands::CommandError::Conflict { .. }) => {
                bw_projections::ProjectionError::Retry(e.to_string())
            }
            other => bw_projections::ProjectionError::Corrupt(other.to_string()),
        }
    }
}
