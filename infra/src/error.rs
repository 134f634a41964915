//! The error type of the adapters.

/// Everything that can go wrong while connecting to, configuring or talking to infrastructure.
///
/// Start-up errors name the configuration variable at fault, so the one line an operator sees tells
/// them what to fix.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// A configuration value could not be used; `variable` is the environment variable to fix.
    #[error("{variable}: {message}")]
    Config {
        /// The environment variable (or flag) holding the bad value.
        variable: &'static str,
        /// What is wrong with it, without echoing secrets.
        message: String,
    },
    /// A dependency could not be reached at start-up; `variable` names the URL setting.
    #[error("{variable}: cannot connect to {target}: {reason}")]
    Unreachable {
        /// The environment variable holding the address.
        variable: &'static str,
        /// Where we tried to connect, with credentials removed.
        target: String,
        /// Why it failed.
        reason: String,
    },
    /// A database operation failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A JetStream administrative operation failed.
    #[error("jetstream: {0}")]
    JetStream(String),
    /// Telemetry could not be initialised.
    #[error("telemetry: {0}")]
    Telemetry(String),
    /// Local IO (files, sockets) failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Object storage refused or failed (a bad key, an unreachable or erroring S3 service).
    #[error("storage: {0}")]
    Storage(String),
}
