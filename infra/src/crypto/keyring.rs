//! Keys the platform keeps in PostgreSQL so that every instance and every restart agree on them:
//! the HS256 access-token keys (with rotation) and generated server secrets.
//!
//! **Access-token keys.** `jwt_signing_keys` holds every key; the current one is the newest with no
//! `retires_at`. [`rotate`] adds a new key and gives the others [`ROTATION_GRACE`] — the token
//! lifetime plus the [`REFRESH_AFTER`] an instance may keep signing with the old key — so no token
//! dies before its time. Each instance caches the key set, reloads it every [`REFRESH_AFTER`], and at
//! once when it meets a token signed by a key it does not know (at most once a second).
//!
//! Trade-off: a database reader can read these keys. Deployments that want the signing secret out
//! of the database configure secrets through the environment instead (see `docs/runbooks/`).

use std::{
    sync::RwLock,
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;

use super::{
    CryptoError,
    jwt::{Claims, SigningKey, TokenKeys},
};
use crate::InfraError;

/// How long an instance signs with its cached current key before reloading.
pub const REFRESH_AFTER: Duration = Duration::from_secs(60);
/// How long a rotated-out key keeps verifying: the 15-minute token lifetime plus [`REFRESH_AFTER`].
pub const ROTATION_GRACE: TimeDelta = TimeDelta::minutes(16);
/// Serialises key creation and rotation across instances.
const KEYS_LOCK: i64 = 0x6277_6b65_7973_0001;

/// The access-token keys of this instance, reloaded from the database as described above.
#[derive(Debug)]
pub struct Keyring {
    pool: PgPool,
    cached: RwLock<(TokenKeys, Instant)>,
    last_miss_reload: RwLock<Option<Instant>>,
}

type KeyRow = (String, Vec<u8>, Option<DateTime<Utc>>);

async fn load_keys(pool: &PgPool) -> Result<TokenKeys, InfraError> {
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT kid, secret, retires_at FROM jwt_signing_keys
         WHERE retires_at IS NULL OR retires_at > now()
         ORDER BY (retires_at IS NULL) DESC, created_at DESC",
    )
    .fetch_all(pool)
    .await?;
    let mut keys = rows.into_iter().map(|(kid, secret, until)| {
        SigningKey::new(&kid, &secret, until).map_err(|e| InfraError::Config {
            variable: "jwt_signing_keys",
            message: format!("key {kid}: {e}"),
        })
    });
    let current = match keys.next() {
        Some(key) if key.as_ref().is_ok_and(|k| k.valid_until.is_none()) => key?,
        _ => {
            return Err(InfraError::Config {
                variable: "jwt_signing_keys",
                message: "no current access-token key".into(),
            });
        }
    };
    Ok(TokenKeys {
        current,
        previous: keys.collect::<Result<_, _>>()?,
    })
}

/// Adds a fresh current key and retires the others after [`ROTATION_GRACE`]; returns the new id.
/// With `only_if_none`, does nothing when a current key exists (first start).
async fn add_key(pool: &PgPool, only_if_none: bool) -> Result<Option<String>, InfraError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(KEYS_LOCK)
        .execute(&mut *tx)
        .await?;
    if only_if_none {
        let current: Option<(String,)> =
            sqlx::query_as("SELECT kid FROM jwt_signing_keys WHERE retires_at IS NULL LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        if current.is_some() {
            tx.rollback().await?;
            return Ok(None);
        }
    }
    let kid = format!("bw-access-{}", uuid::Uuid::now_v7().simple());
    sqlx::query(
        "UPDATE jwt_signing_keys SET retires_at = now() + make_interval(secs => $1) WHERE retires_at IS NULL",
    )
    .bind(ROTATION_GRACE.as_seconds_f64())
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO jwt_signing_keys (kid, secret) VALUES ($1, $2)")
        .bind(&kid)
        .bind(rand::random::<[u8; 32]>().as_slice())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(kid))
}

/// Rotates the access-token key (the `betterworld keys rotate` command).
pub async fn rotate(pool: &PgPool) -> Result<String, InfraError> {
    add_key(pool, false).await.map(Option::unwrap_or_default)
}

impl Keyring {
    /// Loads the keys, creating the first one if the database has none.
    pub async fn load(pool: PgPool) -> Result<Self, InfraError> {
        add_key(&pool, true).await?;
        let keys = load_keys(&pool).await?;
        Ok(Self {
            pool,
            cached: RwLock::new((keys, Instant::now())),
            last_miss_reload: RwLock::new(None),
        })
    }

    fn snapshot(&self) -> (TokenKeys, Instant) {
        self.cached
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn reload(&self) -> Result<TokenKeys, InfraError> {
        let keys = load_keys(&self.pool).await?;
        *self
            .cached
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (keys.clone(), Instant::now());
        Ok(keys)
    }

    async fn fresh(&self) -> TokenKeys {
        let (keys, loaded) = self.snapshot();
        if loaded.elapsed() < REFRESH_AFTER {
            return keys;
        }
        match self.reload().await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "access-token keys not reloaded; using the cached ones");
                keys
            }
        }
    }

    /// Signs `claims` with the current key.
    pub async fn issue(&self, claims: &Claims) -> String {
        self.fresh().await.issue(claims)
    }

    /// Verifies a token with the cached keys only (no IO): for the rate limiter, which must not
    /// wait on the database.
    pub fn verify_cached(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, CryptoError> {
        self.snapshot().0.verify(token, now)
    }

    /// Verifies a token; a key this instance does not know yet triggers one reload (at most once a
    /// second), so a rotation on another instance is picked up at once.
    pub async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, CryptoError> {
        let keys = self.fresh().await;
        match keys.verify(token, now) {
            Err(CryptoError::Token("unknown key")) => {
                let due = {
                    let mut last = self
                        .last_miss_reload
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                    if due {
                        *last = Some(Instant::now());
                    }
                    due
                };
                if !due {
                    return Err(CryptoError::Token("unknown key"));
                }
                match self.reload().await {
                    Ok(keys) => keys.verify(token, now),
                    Err(_) => Err(CryptoError::Token("unknown key")),
                }
            }
            other => other,
        }
    }
}

/// A secret named `name`, generated (32 random bytes) and stored the first time it is asked for.
pub async fn server_secret(pool: &PgPool, name: &str) -> Result<Vec<u8>, InfraError> {
    sqlx::query(
        "INSERT INTO server_secrets (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(rand::random::<[u8; 32]>().as_slice())
    .execute(pool)
    .await?;
    let (secret,): (Vec<u8>,) = sqlx::query_as("SELECT secret FROM server_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await?;
    Ok(secret)
}
