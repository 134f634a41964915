//! The read side's one error type.

/// Why a projection could not make progress or a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The event could not be applied (unknown shape, violated expectation). Stops the projection.
    #[error("cannot apply event at position {position} ({event_type}): {reason}")]
    Apply {
        /// Global position of the event.
        position: i64,
        /// Its type.
        event_type: String,
        /// What went wrong.
        reason: String,
    },
    /// The projection is stopped in state `failed` until an operator acts.
    #[error(
        "projection {0} is failed; see projection_checkpoints and `betterworld projections skip`"
    )]
    Failed(String),
    /// Stored read-model data cannot be read back (a sealed field that does not open with its key).
    #[error("stored data unreadable: {0}")]
    Corrupt(String),
    /// Worth trying again later (contention that resolves on its own, such as a write conflict).
    #[error("retry: {0}")]
    Retry(String),
    /// A rebuild or verification cannot proceed.
    #[error("rebuild: {0}")]
    Rebuild(String),
    /// A JetStream operation failed.
    #[error("jetstream: {0}")]
    JetStream(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl ProjectionError {
    /// Whether retrying later may succeed without anyone acting (the database could not be reached),
    /// as opposed to an event this projection cannot apply.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            ),
            Self::JetStream(_) | Self::Retry(_) => true,
            Self::Apply { .. } | Self::Failed(_) | Self::Corrupt(_) | Self::Rebuild(_) => false,
        }
    }
}
