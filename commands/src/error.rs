//! The command side's one error type.

use bw_domain::DomainError;
use chrono::{DateTime, Utc};

/// Why a command was not executed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The domain refused the command.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Another command changed the aggregate between load and append (optimistic concurrency).
    #[error("the {aggregate_type} was changed concurrently; reload and retry")]
    Conflict {
        /// The aggregate type that conflicted.
        aggregate_type: &'static str,
    },
    /// The username is taken (case-insensitively) by another agent.
    #[error("username `{0}` is taken")]
    UsernameTaken(String),
    /// The e-mail address belongs to another person already (decided by its fingerprint).
    #[error("this e-mail address is registered already")]
    EmailTaken,
    /// The e-mail address or the password is wrong; an unknown address reads the same.
    #[error("the e-mail or password is wrong")]
    WrongCredentials,
    /// Too many failed logins in a row: the account is locked.
    #[error("too many failed logins; the account is locked")]
    AccountLocked {
        /// Until when (unknown if the account vanished meanwhile).
        until: Option<DateTime<Utc>>,
    },
    /// The password is right but the e-mail address is not verified yet.
    #[error("the e-mail address is not verified yet")]
    EmailNotVerified,
    /// The refresh token is unknown, or its person was forgotten.
    #[error("the refresh token is not valid")]
    RefreshTokenInvalid,
    /// The refresh token was used or revoked before; every token of its login is revoked now.
    #[error("this refresh token was already used or revoked")]
    RefreshTokenSpent,
    /// The refresh token has expired.
    #[error("the refresh token has expired")]
    RefreshTokenExpired,
    /// A password could not be hashed.
    #[error("password hashing: {0}")]
    PasswordHashing(#[source] bw_infra::crypto::CryptoError),
    /// The same `Idempotency-Key` was used before with a different request.
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    /// A request with this `Idempotency-Key` is being executed right now.
    #[error("a request with this Idempotency-Key is in progress; retry shortly")]
    IdempotencyInProgress,
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

pub use bw_eventlog::error::unique_violation;

impl From<bw_eventlog::LogError> for CommandError {
    fn from(error: bw_eventlog::LogError) -> Self {
        use bw_eventlog::LogError;
        match error {
            LogError::Domain(e) => Self::Domain(e),
            LogError::Conflict { aggregate_type } => Self::Conflict { aggregate_type },
            LogError::Corrupt(m) => Self::Corrupt(m),
            LogError::LogFormat(m) => Self::LogFormat(m),
            LogError::Key(m) => Self::Key(m),
            LogError::Database(e) => Self::Database(e),
        }
    }
}
