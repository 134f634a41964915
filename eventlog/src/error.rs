//! The event log's one error type.

/// Why the log could not be read, appended to, verified or migrated.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log's own aggregate refused a command (e.g. a rehash record).
    #[error(transparent)]
    Domain(#[from] bw_domain::DomainError),
    /// Another writer appended to the stream between load and append (optimistic concurrency).
    #[error("the {aggregate_type} was changed concurrently; reload and retry")]
    Conflict {
        /// The aggregate type whose stream conflicted.
        aggregate_type: &'static str,
    },
    /// Stored data could not be read back (a bug or a missing upcaster).
    #[error("stored event unreadable: {0}")]
    Corrupt(String),
    /// The log is not in the shape this build can verify or migrate (ADR 0007).
    #[error("log format: {0}")]
    LogFormat(String),
    /// The log signing key is unusable.
    #[error("log signing key: {0}")]
    Key(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The constraint a unique violation hit, if it was one.
pub fn unique_violation(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            Some(db.constraint().unwrap_or_default().to_owned())
        }
        _ => None,
    }
}
