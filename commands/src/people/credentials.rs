//! Humans' credentials (`human_credentials`): found by the e-mail's fingerprint, never by the
//! address; the e-mail marked verified with `HumanEmailVerified`; logins counted, and the account
//! locked for [`LOCKOUT`] after [`MAX_FAILED_LOGINS`] failures in a row.

use bw_domain::values::EmailAddress;
use bw_infra::crypto::{password, seal};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{CommandError, SideWrites, codes};

/// Failed logins in a row before the account locks.
pub const MAX_FAILED_LOGINS: i32 = 5;
/// How long a lockout lasts.
pub const LOCKOUT: TimeDelta = TimeDelta::minutes(15);

/// The human whose e-mail fingerprint matches an address, with their credentials.
#[derive(sqlx::FromRow)]
pub struct Credentials {
    /// The person.
    pub human_id: Uuid,
    password_hash: String,
    /// Their role (`human`, `admin`, `auditor`).
    pub role: String,
    /// When they verified their e-mail address, if they did.
    pub email_verified_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password hash is left out of logs.
        f.debug_struct("Credentials")
            .field("human_id", &self.human_id)
            .field("role", &self.role)
            .field("email_verified_at", &self.email_verified_at)
            .finish_non_exhaustive()
    }
}

/// The credentials of whoever registered `email`, if anyone did.
pub async fn find(
    pool: &PgPool,
    email_secret: &[u8],
    email: &EmailAddress,
) -> Result<Option<Credentials>, CommandError> {
    let fingerprint = seal::email_fingerprint(email_secret, email.as_str());
    Ok(sqlx::query_as(
        "SELECT human_id, password_hash, role, email_verified_at FROM human_credentials WHERE email_hmac = $1",
    )
    .bind(fingerprint.as_slice())
    .fetch_optional(pool)
    .await?)
}

/// Uses up the person's code and marks their e-mail verified, with `HumanEmailVerified`.
pub fn mark_email_verified(human_id: Uuid) -> SideWrites {
    Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            codes::HUMANS.delete(conn, human_id).await?;
            sqlx::query(
                "UPDATE human_credentials SET email_verified_at = now() WHERE human_id = $1",
            )
            .bind(human_id)
            .execute(&mut *conn)
            .await?;
            Ok::<_, CommandError>(())
        })
    })
}

/// Who logged in.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The person.
    pub human_id: Uuid,
    /// Their role, for the access token.
    pub role: String,
}

/// Checks `password` for the person who registered `email`, counting the attempt. Refuses with
/// [`CommandError::WrongCredentials`] (an unknown address, checked against a dummy hash so timing
/// does not tell, reads the same), [`CommandError::AccountLocked`] while locked, and
/// [`CommandError::EmailNotVerified`] for a right password on an unverified address. A right
/// password resets the count.
pub async fn log_in(
    pool: &PgPool,
    email_secret: &[u8],
    email: &EmailAddress,
    password: String,
) -> Result<LoggedIn, CommandError> {
    let Some(found) = find(pool, email_secret, email).await? else {
        // Spend the same time as a real check, so timing does not reveal who is registered.
        password::verify(dummy_hash().await, password).await;
        return Err(CommandError::WrongCredentials);
    };
    // Reserve an attempt first, and lock in the same statement when it is the fifth: at most
    // MAX_FAILED_LOGINS checks can ever be in flight or done before the lock, however many requests
    // race, and a request that never finishes cannot leave the account locked for good (the lock
    // expires; an expired lock starts the count again).
    let attempt: Option<(i32,)> = sqlx::query_as(
        "UPDATE human_credentials SET
             failed_logins = CASE WHEN locked_until <= now() THEN 1 ELSE failed_logins + 1 END,
             locked_until = CASE
                 WHEN (CASE WHEN locked_until <= now() THEN 1 ELSE failed_logins + 1 END) >= $2
                     THEN now() + make_interval(secs => $3)
                 WHEN locked_until <= now() THEN NULL
                 ELSE locked_until END
         WHERE human_id = $1 AND (locked_until IS NULL OR locked_until <= now())
         RETURNING failed_logins",
    )
    .bind(found.human_id)
    .bind(MAX_FAILED_LOGINS)
    .bind(LOCKOUT.as_seconds_f64())
    .fetch_optional(pool)
    .await?;
    let Some((attempt,)) = attempt else {
        let until: Option<(Option<DateTime<Utc>>,)> =
            sqlx::query_as("SELECT locked_until FROM human_credentials WHERE human_id = $1")
                .bind(found.human_id)
                .fetch_optional(pool)
                .await?;
        return Err(CommandError::AccountLocked {
            until: until.and_then(|u| u.0),
        });
    };
    if !password::verify(found.password_hash, password).await {
        if attempt >= MAX_FAILED_LOGINS {
            tracing::warn!(human_id = %found.human_id, "account locked after repeated failed logins");
        }
        return Err(CommandError::WrongCredentials);
    }
    sqlx::query(
        "UPDATE human_credentials SET failed_logins = 0, locked_until = NULL WHERE human_id = $1",
    )
    .bind(found.human_id)
    .execute(pool)
    .await?;
    if found.email_verified_at.is_none() {
        return Err(CommandError::EmailNotVerified);
    }
    Ok(LoggedIn {
        human_id: found.human_id,
        role: found.role,
    })
}

/// An Argon2id hash of a random password (made once per process), checked against when the
/// e-mail is unknown.
async fn dummy_hash() -> String {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_init(|| async {
            password::hash(hex::encode(rand::random::<[u8; 16]>()))
                .await
                .unwrap_or_default()
        })
        .await
        .clone()
}
