//! Sending messages to people (verification codes), behind one trait.
//!
//! There is no mail service here; the default [`DevMailbox`] stores each message in `dev_mailbox`
//! (read with `betterworld mailbox`) and logs that it was sent (the address is redacted in logs). A
//! real mail provider implements [`Notifier`] and is chosen by configuration.

use futures::future::BoxFuture;
use sqlx::PgPool;

/// Delivers a message to an address.
pub trait Notifier: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `subject`/`body` to `to`.
    fn send<'a>(
        &'a self,
        to: &'a str,
        subject: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// The development notifier: a table and a log line.
#[derive(Debug, Clone)]
pub struct DevMailbox {
    pool: PgPool,
}

impl DevMailbox {
    /// A mailbox in `pool`'s database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl Notifier for DevMailbox {
    fn send<'a>(
        &'a self,
        to: &'a str,
        subject: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO dev_mailbox (recipient, subject, body) VALUES ($1, $2, $3)")
                .bind(to)
                .bind(subject)
                .bind(body)
                .execute(&self.pool)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(
                email = to,
                subject,
                "message delivered to the development mailbox"
            );
            Ok(())
        })
    }
}

/// One message of the development mailbox.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct MailboxMessage {
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub sent_at: chrono::DateTime<chrono::Utc>,
}

/// The newest `limit` messages, for `to` when given.
pub async fn read_mailbox(
    pool: &PgPool,
    to: Option<&str>,
    limit: i64,
) -> Result<Vec<MailboxMessage>, sqlx::Error> {
    sqlx::query_as(
        "SELECT recipient, subject, body, sent_at FROM dev_mailbox
         WHERE $1::text IS NULL OR recipient = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await
}
