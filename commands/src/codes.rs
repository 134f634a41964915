//! E-mail verification codes, for agents and humans alike: 6 digits, valid 15 minutes, at most 3
//! sent per hour, stored as SHA-256 of the owner's id and the code, one code in force per owner.
//! Wrong guesses are counted and the [`MAX_WRONG_GUESSES`]th voids the code. Parsing a submitted
//! code and delivering one are the gateway's.

use bw_domain::values::CodeCheck;
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::CommandError;

/// How long a code is valid.
pub const CODE_VALIDITY: TimeDelta = TimeDelta::minutes(15);
/// Codes sent per owner per hour, at most.
pub const CODES_PER_HOUR: i32 = 3;
/// Wrong guesses after which a code is void.
pub const MAX_WRONG_GUESSES: i32 = 5;

/// A table of codes: `agent_verification_codes` (by `agent_id`) or `human_verification_codes`
/// (by `human_id`), both with the same columns.
#[derive(Debug, Clone, Copy)]
pub struct Codes {
    table: &'static str,
    owner: &'static str,
}

/// Agents' codes.
pub const AGENTS: Codes = Codes {
    table: "agent_verification_codes",
    owner: "agent_id",
};
/// Humans' codes.
pub const HUMANS: Codes = Codes {
    table: "human_verification_codes",
    owner: "human_id",
};

fn code_hash(owner: Uuid, code: &str) -> Vec<u8> {
    Sha256::new()
        .chain_update(owner.as_bytes())
        .chain_update(code.as_bytes())
        .finalize()
        .to_vec()
}

/// A fresh random code.
pub fn new_code() -> String {
    format!("{:06}", rand::random::<u32>() % 1_000_000)
}

impl Codes {
    /// Stores the first code of a new owner (in the registration's transaction).
    pub async fn insert_first(
        self,
        conn: &mut PgConnection,
        owner: Uuid,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CommandError> {
        sqlx::query(&format!(
            "INSERT INTO {} ({}, code_sha256, expires_at, window_start, sent_in_window) VALUES ($1, $2, $3, $4, 1)",
            self.table, self.owner
        ))
        .bind(owner)
        .bind(code_hash(owner, code))
        .bind(now + CODE_VALIDITY)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Replaces the owner's code with `code` unless 3 were sent in the past hour; `false` when
    /// the budget is spent. One statement decides, so concurrent requests cannot exceed it.
    pub async fn replace_within_budget(
        self,
        pool: &PgPool,
        owner: Uuid,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, CommandError> {
        let (table, id) = (self.table, self.owner);
        let sent: Option<(i32,)> = sqlx::query_as(&format!(
            "INSERT INTO {table} ({id}, code_sha256, expires_at, window_start, sent_in_window)
             VALUES ($1, $2, $3, $4, 1)
             ON CONFLICT ({id}) DO UPDATE SET
                 code_sha256 = EXCLUDED.code_sha256, expires_at = EXCLUDED.expires_at, failed_attempts = 0,
                 window_start = CASE WHEN {table}.window_start <= $4 - interval '1 hour'
                                     THEN $4 ELSE {table}.window_start END,
                 sent_in_window = CASE WHEN {table}.window_start <= $4 - interval '1 hour'
                                       THEN 1 ELSE {table}.sent_in_window + 1 END
             WHERE {table}.window_start <= $4 - interval '1 hour'
                OR {table}.sent_in_window < $5
             RETURNING sent_in_window"
        ))
        .bind(owner)
        .bind(code_hash(owner, code))
        .bind(now + CODE_VALIDITY)
        .bind(now)
        .bind(CODES_PER_HOUR)
        .fetch_optional(pool)
        .await?;
        Ok(sent.is_some())
    }

    /// Compares `code` with the owner's code in force at `now`. A wrong guess is counted; the
    /// [`MAX_WRONG_GUESSES`]th voids the code.
    pub async fn check(
        self,
        pool: &PgPool,
        owner: Uuid,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<CodeCheck, CommandError> {
        let issued: Option<(Vec<u8>, DateTime<Utc>)> = sqlx::query_as(&format!(
            "SELECT code_sha256, expires_at FROM {} WHERE {} = $1",
            self.table, self.owner
        ))
        .bind(owner)
        .fetch_optional(pool)
        .await?;
        let check = match issued {
            None => CodeCheck::NoneIssued,
            Some((hash, _)) if hash != code_hash(owner, code) => CodeCheck::Wrong,
            Some((_, expires)) if expires <= now => CodeCheck::Expired,
            Some(_) => CodeCheck::Valid,
        };
        if check == CodeCheck::Wrong {
            let wrong: Option<i32> = sqlx::query_scalar(&format!(
                "UPDATE {} SET failed_attempts = failed_attempts + 1 WHERE {} = $1 RETURNING failed_attempts",
                self.table, self.owner
            ))
            .bind(owner)
            .fetch_optional(pool)
            .await?;
            if wrong.is_some_and(|n| n >= MAX_WRONG_GUESSES) {
                sqlx::query(&format!(
                    "DELETE FROM {} WHERE {} = $1",
                    self.table, self.owner
                ))
                .bind(owner)
                .execute(pool)
                .await?;
            }
        }
        Ok(check)
    }

    /// Removes the owner's code (once used, or when the owner is forgotten).
    pub async fn delete(self, conn: &mut PgConnection, owner: Uuid) -> Result<(), CommandError> {
        sqlx::query(&format!(
            "DELETE FROM {} WHERE {} = $1",
            self.table, self.owner
        ))
        .bind(owner)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_six_digits_and_its_hash_is_bound_to_its_owner() {
        for _ in 0..100 {
            let code = new_code();
            assert_eq!(code.len(), 6, "{code}");
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        }
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(code_hash(a, "123456"), code_hash(a, "123456"));
        assert_ne!(code_hash(a, "123456"), code_hash(b, "123456"));
        assert_ne!(code_hash(a, "123456"), code_hash(a, "123457"));
    }
}
