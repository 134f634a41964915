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
