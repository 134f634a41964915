//! PostgreSQL: the pool, database creation and the embedded migrations.

use std::{str::FromStr, time::Duration};

use sqlx::{
    ConnectOptions, Connection, PgConnection, PgPool,
    migrate::{MigrateDatabase, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{InfraError, config::DatabaseConfig, config::redact_url};

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

const VARIABLE: &str = "DATABASE_URL";

/// Parses `DATABASE_URL` into connect options, naming the variable when it is not a PostgreSQL URL.
pub fn connect_options(config: &DatabaseConfig) -> Result<PgConnectOptions, InfraError> {
    let url = config.url.expose();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(InfraError::Config {
            variable: VARIABLE,
            message: format!("`{}` is not a postgres:// URL", redact_url(url)),
        });
    }
    let options = PgConnectOptions::from_str(url).map_err(|e| InfraError::Config {
        variable: VARIABLE,
        message: format!("cannot parse `{}`: {e}", redact_url(url)),
    })?;
    // Statements are logged by our own spans where it matters; sqlx's per-statement INFO lines would
    // flood the log at command throughput.
    Ok(options
        .application_name("betterworld")
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_millis(500))
        .log_statements(log::LevelFilter::Trace))
}

/// Opens the pool and proves the database answers, or fails within `connect_timeout` with an error
/// naming `DATABASE_URL`.
///
/// The pool does not ping a connection on every acquire (`test_before_acquire(false)`): measured here,
/// that ping costs about a quarter of command throughput. A connection that broke is discarded when a
/// query on it fails, and connections are recycled every 30 minutes so that no session keeps a plan
/// chosen while a table was still empty.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, InfraError> {
    let options = connect_options(config)?;
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(config.connect_timeout)
        .test_before_acquire(false)
        .max_lifetime(Duration::from_secs(30 * 60))
        .idle_timeout(Duration::from_secs(10 * 60))
        .connect_lazy_with(options.clone());
    // Probe with a connection of our own: the pool retries failed connects until its timeout and then
    // reports only that it timed out, hiding the cause (refused, bad password, no such database).
    let probe = async {
        let mut conn = connect_single(&options).await?;
        ping(&mut conn).await?;
        conn.close().await
    };
    match tokio::time::timeout(config.connect_timeout, probe).await {
        Ok(Ok(())) => Ok(pool),
        Ok(Err(e)) => Err(unreachable(config, &e.to_string())),
        Err(_) => Err(unreachable(
            config,
            &format!("no answer within {:?}", config.connect_timeout),
        )),
    }
}

/// Opens one connection outside the pool (readiness checks, leader locks).
pub async fn connect_single(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    options.connect().await
}

fn unreachable(config: &DatabaseConfig, reason: &str) -> InfraError {
    InfraError::Unreachable {
        variable: VARIABLE,
        target: redact_url(config.url.expose()),
        reason: reason.to_owned(),
    }
}

/// Creates the database named in `DATABASE_URL` when it does not exist yet.
pub async fn ensure_database(config: &DatabaseConfig) -> Result<bool, InfraError> {
    connect_options(config)?;
    let url = config.url.expose();
    let exists = tokio::time::timeout(config.connect_timeout, sqlx::Postgres::database_exists(url))
        .await
        .map_err(|_| unreachable(config, "no answer"))?
        .map_err(|e| unreachable(config, &e.to_string()))?;
    if exists {
        return Ok(false);
    }
    sqlx::Postgres::create_database(url).await?;
    Ok(true)
}

/// Applies the embedded migrations (sqlx takes an advisory lock, so concurrent starts are safe).
pub async fn migrate(pool: &PgPool) -> Result<(), InfraError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Verifies a connection still answers.
pub async fn ping(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    conn.ping().await
}

/// Fails unless every embedded migration is applied: a role started against an older schema would
/// fail later, request by request, instead of now with one clear line.
pub async fn ensure_migrated(pool: &PgPool) -> Result<(), InfraError> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    let missing: Vec<String> = MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{} ({})", m.version, m.description))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(InfraError::Config {
            variable: VARIABLE,
            message: format!(
                "the database is not migrated (missing {}); run `betterworld migrate`",
                missing.join(", ")
            ),
        })
    }
}
