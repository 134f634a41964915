//! The token ledger's read models: each person's balance with its totals, and every entry with the
//! balance before and after it (`GET /tokens/balance`, `GET /tokens/transactions`).
//!
//! The entries copy what the `Ledger` aggregate decided; [`verify`] recomputes every balance from
//! the log and compares (`betterworld ledger verify`).

use std::collections::BTreeMap;

use bw_domain::ledger::{LedgerEvent, Recorded};
use bw_eventlog::envelope::EventEnvelope;
use chrono::{DateTime, Utc};
use futures::{TryStreamExt, future::BoxFuture};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::decode;
use crate::{ProjectionError, runtime::Projection};

/// The projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenLedger;

/// Its name (checkpoint row, consumer, metrics).
pub const NAME: &str = "token_ledger";

impl Projection for TokenLedger {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Ledger"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_token_balances", "rm_token_transactions"]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let (r, sign) = match decode::<LedgerEvent>(event)? {
                LedgerEvent::TokensCredited(r) => (r, 1),
                LedgerEvent::TokensDebited(r) => (r, -1),
            };
            let amount = sign * r.entry.amount;
            sqlx::query(
                "INSERT INTO rm_token_transactions (entry_id, human_id, amount, balance_before, balance_after,
                     transaction_type, reference_type, reference_id, description, idempotency_key, created_at, position)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(r.entry_id)
            .bind(r.human_id)
            .bind(amount)
            .bind(r.balance_before)
            .bind(r.balance_after)
            .bind(r.entry.kind.as_str())
            .bind(r.entry.reference.as_ref().map(|x| x.reference_type.as_str()))
            .bind(r.entry.reference.as_ref().map(|x| x.reference_id))
            .bind(&r.entry.description)
            .bind(&r.entry.key)
            .bind(r.recorded_at)
            .bind(event.global_position)
            .execute(&mut *conn)
            .await?;
            let (earned, spent) = if sign > 0 {
                (r.entry.amount, 0)
            } else {
                (0, r.entry.amount)
            };
            // The stored balance must be the one this entry started from: anything else means an
            // entry was skipped or applied twice, and the projection stops rather than drift.
            let updated = sqlx::query(
                "UPDATE rm_token_balances SET balance = $3, total_earned = total_earned + $4,
                     total_spent = total_spent + $5, updated_at = $6, position = $7
                 WHERE human_id = $1 AND balance = $2",
            )
            .bind(r.human_id)
            .bind(r.balance_before)
            .bind(r.balance_after)
            .bind(earned)
            .bind(spent)
            .bind(r.recorded_at)
            .bind(event.global_position)
            .execute(&mut *conn)
            .await?;
            if updated.rows_affected() == 1 {
                return Ok(());
            }
            // The person's first entry (which starts from zero), or an entry out of line.
            let inserted = sqlx::query(
                "INSERT INTO rm_token_balances (human_id, balance, total_earned, total_spent, updated_at, position)
                 SELECT $1, $3, $4, $5, $6, $7 WHERE $2 = 0
                 ON CONFLICT (human_id) DO NOTHING",
            )
            .bind(r.human_id)
            .bind(r.balance_before)
            .bind(r.balance_after)
            .bind(earned)
            .bind(spent)
            .bind(r.recorded_at)
            .bind(event.global_position)
            .execute(&mut *conn)
            .await?;
            super::expect_one(&inserted, event, || {
                format!(
                    "entry {} starts from a balance of {}, which is not {}'s balance in the read model",
                    r.entry_id, r.balance_before, r.human_id
                )
            })
        })
    }
}

/// `GET /tokens/balance`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, sqlx::FromRow, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub balance: i64,
    pub total_earned: i64,
    pub total_spent: i64,
}

/// A person's balance (zeros when they have no entry yet).
pub async fn balance(pool: &PgPool, human_id: Uuid) -> Result<Balance, ProjectionError> {
    let found: Option<Balance> = sqlx::query_as(
        "SELECT balance, total_earned, total_spent FROM rm_token_balances WHERE human_id = $1",
    )
    .bind(human_id)
    .fetch_optional(pool)
    .await?;
    Ok(found.unwrap_or_default())
}

/// One entry of `GET /tokens/transactions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub id: Uuid,
    /// Positive for earnings, negative for spending.
    pub amount: i64,
    pub balance_before: i64,
    pub balance_after: i64,
    /// `earn_orientation`, `earn_evidence_verified`, `earn_peer_review`, `spend_*`.
    pub transaction_type: String,
    pub reference_type: Option<String>,
    pub reference_id: Option<Uuid>,
    pub description: Option<String>,
    pub idempotency_key: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub position: i64,
}

/// Where a page of transactions starts: after the entry at this log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionCursor(pub i64);

impl TransactionCursor {
    /// The opaque text form.
    pub fn encode(self) -> String {
        format!("t{:x}", self.0)
    }

    /// Parses the opaque text form.
    pub fn decode(raw: &str) -> Option<Self> {
        let hex = raw.strip_prefix('t')?;
        i64::from_str_radix(hex, 16)
            .ok()
            .filter(|p| *p > 0)
            .map(Self)
    }
}

/// A person's entries, newest first.
pub async fn transactions(
    pool: &PgPool,
    human_id: Uuid,
    after: Option<TransactionCursor>,
    limit: i64,
) -> Result<(Vec<Transaction>, Option<TransactionCursor>), ProjectionError> {
    let rows: Vec<Transaction> = sqlx::query_as(
        "SELECT entry_id AS id, amount, balance_before, balance_after, transaction_type, reference_type,
                reference_id, description, idempotency_key, created_at, position
         FROM rm_token_transactions
         WHERE human_id = $1 AND ($2::bigint IS NULL OR position < $2)
         ORDER BY position DESC LIMIT $3",
    )
    .bind(human_id)
    .bind(after.map(|c| c.0))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(super::page(rows, limit, |t| TransactionCursor(t.position)))
}

/// One disagreement found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discrepancy {
    pub human_id: Uuid,
    /// What differs, in words.
    pub problem: String,
}

/// What [`verify`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerReport {
    pub people: usize,
    pub entries: usize,
    /// The log position up to which the read model was compared.
    pub checkpoint: i64,
    pub discrepancies: Vec<Discrepancy>,
}

#[derive(Debug, Default)]
struct Replayed {
    balance: i64,
    earned: i64,
    spent: i64,
    entries: usize,
}

/// Recomputes every person's balance from the `Ledger` streams in the log (streamed, in order) up
/// to the projection's checkpoint, checks each entry's before/after chain, and compares the result
/// with `rm_token_balances` and the sum of `rm_token_transactions`.
pub async fn verify(pool: &PgPool) -> Result<LedgerReport, ProjectionError> {
    let mut tx = pool.begin().await?;
    // One snapshot: the checkpoint and the tables it describes are read together.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let checkpoint: i64 = sqlx::query_scalar(
        "SELECT COALESCE((SELECT position FROM projection_checkpoints WHERE projection = $1), 0)",
    )
    .bind(NAME)
    .fetch_one(&mut *tx)
    .await?;
    let mut report = LedgerReport {
        checkpoint,
        ..LedgerReport::default()
    };
    let mut people: BTreeMap<Uuid, Replayed> = BTreeMap::new();
    {
        let mut rows = bw_eventlog::read::payloads_upto(&mut *tx, "Ledger", checkpoint);
        while let Some((position, payload)) = rows.try_next().await? {
            let event: LedgerEvent =
                serde_json::from_value(payload).map_err(|e| ProjectionError::Apply {
                    position,
                    event_type: "Ledger".into(),
                    reason: e.to_string(),
                })?;
            let (r, credit): (Recorded, bool) = match event {
                LedgerEvent::TokensCredited(r) => (r, true),
                LedgerEvent::TokensDebited(r) => (r, false),
            };
            let p = people.entry(r.human_id).or_default();
            let expected_after = if credit {
                p.balance + r.entry.amount
            } else {
                p.balance - r.entry.amount
            };
            if r.balance_before != p.balance
                || r.balance_after != expected_after
                || expected_after < 0
            {
                report.discrepancies.push(Discrepancy {
                    human_id: r.human_id,
                    problem: format!(
                        "entry {} at position {position} records {} → {}, but the entries before it give {} → {}",
                        r.entry_id, r.balance_before, r.balance_after, p.balance, expected_after
                    ),
                });
            }
            p.balance = expected_after;
            if credit {
                p.earned += r.entry.amount;
            } else {
                p.spent += r.entry.amount;
            }
            p.entries += 1;
            report.entries += 1;
        }
    }
    type Row = (
        Uuid,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        i64,
    );
    let stored: Vec<Row> = sqlx::query_as(
        "SELECT COALESCE(b.human_id, t.human_id), b.balance, b.total_earned, b.total_spent, t.total,
                COALESCE(t.entries, 0)
         FROM rm_token_balances b
         FULL JOIN (SELECT human_id, sum(amount)::bigint AS total, count(*) AS entries
                    FROM rm_token_transactions WHERE position <= $1 GROUP BY human_id) t
           ON t.human_id = b.human_id",
    )
    .bind(checkpoint)
    .fetch_all(&mut *tx)
    .await?;
    let mut seen = std::collections::BTreeSet::new();
    for (human_id, balance, earned, spent, total, entries) in stored {
        seen.insert(human_id);
        let replayed = people.get(&human_id);
        let expected = replayed.map_or((0, 0, 0, 0), |p| {
            (
                p.balance,
                p.earned,
                p.spent,
                i64::try_from(p.entries).unwrap_or(i64::MAX),
            )
        });
        let mut differs = |what: &str, found: Option<i64>, want: i64| {
            if found.unwrap_or(0) != want {
                report.discrepancies.push(Discrepancy {
                    human_id,
                    problem: format!(
                        "{what}: the read model says {}, the log gives {want}",
                        found.map_or_else(|| "nothing".to_owned(), |v| v.to_string())
                    ),
                });
            }
        };
        differs("balance", balance, expected.0);
        differs("total earned", earned, expected.1);
        differs("total spent", spent, expected.2);
        differs("sum of transactions", total, expected.0);
        differs("number of transactions", Some(entries), expected.3);
    }
    for (human_id, p) in &people {
        if !seen.contains(human_id) {
            report.discrepancies.push(Discrepancy {
                human_id: *human_id,
                problem: format!(
                    "missing from the read model; the log gives a balance of {} over {} entries",
                    p.balance, p.entries
                ),
            });
        }
    }
    report.people = people.len();
    tx.rollback().await?;
    Ok(report)
}
