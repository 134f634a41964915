//! Leader election with PostgreSQL session advisory locks.
//!
//! The leader holds `pg_advisory_lock(key)` on a connection of its own. When the leader's process
//! dies or its connection drops, PostgreSQL releases the lock and a standby's next attempt takes it.
//! A leader checks its connection before each unit of work ([`Leadership::still_leading`]); once
//! that fails it must stop, because a standby may already have taken over.

use std::time::Duration;

use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};

/// The lock key of a named role: the first 8 bytes of SHA-256("bw-leader:" + name).
pub fn lock_key(name: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("bw-leader:{name}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Held leadership: the connection that holds the lock.
#[derive(Debug)]
pub struct Leadership {
    conn: PgConnection,
    key: i64,
}

impl Leadership {
    /// Tries once to become leader for `key`.
    pub async fn try_acquire(
        options: &PgConnectOptions,
        key: i64,
    ) -> Result<Option<Self>, sqlx::Error> {
        let mut conn = bw_infra::postgres::connect_single(options).await?;
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await?;
        if acquired {
            Ok(Some(Self { conn, key }))
        } else {
            conn.close().await?;
            Ok(None)
        }
    }

    /// Waits until leadership is acquired, trying every `interval`, or returns `None` once `stop`
    /// completes. Connection errors are logged and retried.
    pub async fn acquire(
        options: &PgConnectOptions,
        key: i64,
        interval: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<Self> {
        tokio::pin!(stop);
        loop {
            match Self::try_acquire(options, key).await {
                Ok(Some(leadership)) => return Some(leadership),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "leader election: cannot reach PostgreSQL"),
            }
            tokio::select! {
                () = &mut stop => return None,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Whether the lock's connection still answers (and so the lock is still held).
    pub async fn still_leading(&mut self) -> bool {
        self.conn.ping().await.is_ok()
    }

    /// The backend process id of the lock's connection (operators and tests can terminate it).
    pub async fn backend_pid(&mut self) -> Result<i32, sqlx::Error> {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut self.conn)
            .await
    }

    /// Gives leadership up.
    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut self.conn)
            .await;
        let _ = self.conn.close().await;
    }
}
