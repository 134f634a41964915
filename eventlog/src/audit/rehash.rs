//! `betterworld events rehash`: migrates a log hashed in the canonical form of before ADR 0007
//! (`bw.event.v1`) to the current one, once, in one transaction, recorded in the log itself.
//!
//! 1. Takes the event-writer lock exclusively (no command writes meanwhile; ADR 0002) and the
//!    checkpointer's lock.
//! 2. Checks the log as it stands: every chain must hold in the old form *or* the current one (events
//!    appended since the upgrade are already in the current form), and the events must match the
//!    signed leaves. Any finding stops the rehash unless the operator accepts the findings, which are
//!    then recorded in the event: the verifier is never loosened silently.
//! 3. Appends `LogRehashed` to `Log/log` (reason, operator, counts, accepted findings, the last
//!    superseded checkpoint) as the transaction's first write.
//! 4. Re-derives every event's hash in the current form, stream by stream, from the stored texts.
//! 5. Moves the signed leaves and checkpoints to `log_superseded_*` (still verifiable against their
//!    signatures) and rebuilds the leaves over the same events with the new hashes; the caller signs a
//!    new checkpoint right after.
//! 6. Sets `log_format` to the current form.
//!
//! Only the hash column changes; the immutability triggers are disabled for this transaction only,
//! by name, which needs the tables' owner (the role that runs `betterworld migrate`).

use chrono::Utc;
use cqrs_es::{Aggregate, event_sink::EventSink};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{CHECKPOINT_LOCK, COLUMNS, VerifyReport, latest, log_form, verify};
use crate::{
    LogError,
    canonical::{FORM, GENESIS, chain_hash},
    store::{self, EVENT_WRITER_LOCK},
};
use bw_domain::log::{AcceptedFinding, Log, LogCommand, Rehashed, STREAM, SupersededCheckpoint};

/// Hashes updated per statement.
const BATCH: i64 = 5_000;

/// What the operator asks for.
#[derive(Debug, Clone)]
pub struct RehashRequest {
    pub reason: String,
    pub operator: String,
    /// Go on although the check of the old hashes found something (recorded in the event).
    pub accept_findings: bool,
    /// The public key checkpoints must verify with (else the stored key of each).
    pub pinned: Option<[u8; 32]>,
}

/// What a rehash did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RehashReport {
    pub from_form: String,
    pub to_form: String,
    /// The check before the rehash (old or current form accepted).
    pub checked: VerifyReport,
    /// Events whose stored hash changed.
    pub rehashed: u64,
    pub superseded_checkpoints: u64,
    pub rehash_event_id: Uuid,
    pub rehash_position: i64,
}

/// How a rehash ended.
#[derive(Debug, Clone)]
pub enum Rehash {
    Done(Box<RehashReport>),
    /// The check found something and the operator did not accept it; nothing changed.
    Refused(VerifyReport),
}

/// Migrates the log to the current canonical form (see the module documentation).
pub async fn rehash(pool: &PgPool, request: RehashRequest) -> Result<Rehash, LogError> {
    let mut tx = pool.begin().await?;
    for lock in [EVENT_WRITER_LOCK, CHECKPOINT_LOCK] {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock)
            .execute(&mut *tx)
            .await?;
    }
    let from = log_form(&mut *tx).await?;
    if from == FORM {
        return Err(LogError::LogFormat(format!(
            "the log is in {FORM} already; nothing to rehash"
        )));
    }
    // Writers and checkpointers wait on the locks above, so reading on other connections sees the
    // log this transaction will rewrite.
    let checked = verify::verify_with(pool, request.pinned, verify::Forms::CurrentOrV1).await?;
    if !checked.findings.is_empty() && !request.accept_findings {
        tx.rollback().await?;
        return Ok(Rehash::Refused(checked));
    }
    let superseded: i64 = sqlx::query_scalar("SELECT count(*) FROM log_checkpoints")
        .fetch_one(&mut *tx)
        .await?;
    let last_superseded = latest(pool).await?.map(|c| SupersededCheckpoint {
        tree_size: c.tree_size,
        up_to_position: c.up_to_position,
        root: c.root,
        key_id: c.key_id,
        signed_at: c.signed_at,
    });

    // The record, as this transaction's first write (it takes the global position).
    let now = Utc::now();
    let rehashed = Rehashed {
        from_form: from.clone(),
        to_form: FORM.to_owned(),
        reason: request.reason,
        operator: request.operator.clone(),
        events: checked.events,
        streams: checked.streams,
        accepted_findings: checked
            .findings
            .iter()
            .map(|f| AcceptedFinding {
                kind: f.kind.clone(),
                event_id: f.event_id,
                position: f.position,
                stream: f.stream.clone(),
                detail: f.detail.clone(),
            })
            .collect(),
        superseded_checkpoints: u64::try_from(superseded).unwrap_or(0),
        last_superseded,
        rehashed_at: now,
    };
    let mut loaded = store::load::<Log>(&mut tx, STREAM).await?;
    let sink = EventSink::default();
    loaded
        .aggregate
        .handle(LogCommand::RecordRehash(Box::new(rehashed)), &(), &sink)
        .await?;
    let metadata = json!({
        "actor": bw_domain::meta::Actor::System.scope(),
        "correlationId": format!("rehash:{}", Uuid::now_v7()),
        "operator": request.operator,
    });
    let prepared = store::prepare::<Log>(
        STREAM,
        loaded.version,
        loaded.last_hash,
        &sink.collect().await,
        &metadata,
        now,
    )?;
    let appended = store::append(&mut tx, Log::TYPE, &prepared).await?;
    let record = appended
        .first()
        .copied()
        .ok_or_else(|| LogError::Corrupt("the rehash record was not appended".into()))?;

    set_triggers(&mut tx, false).await?;
    let changed = rederive(&mut tx).await?;
    supersede(&mut tx, record.event_id).await?;
    set_triggers(&mut tx, true).await?;
    sqlx::query("UPDATE log_format SET canonical_form = $1, changed_at = now()")
        .bind(FORM)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(
        from = %from,
        to = FORM,
        events = checked.events,
        changed,
        superseded,
        "log rehashed"
    );
    Ok(Rehash::Done(Box::new(RehashReport {
        from_form: from,
        to_form: FORM.to_owned(),
        checked,
        rehashed: changed,
        superseded_checkpoints: u64::try_from(superseded).unwrap_or(0),
        rehash_event_id: record.event_id,
        rehash_position: record.global_position,
    })))
}

/// The immutability triggers this transaction passes (by name: nothing else is disabled).
async fn set_triggers(conn: &mut PgConnection, enabled: bool) -> Result<(), LogError> {
    let verb = if enabled { "ENABLE" } else { "DISABLE" };
    for (table, trigger) in [
        ("events", "events_no_update_or_delete"),
        ("log_leaves", "log_leaves_no_update_or_delete"),
        ("log_checkpoints", "log_checkpoints_no_update_or_delete"),
    ] {
        sqlx::query(&format!("ALTER TABLE {table} {verb} TRIGGER {trigger}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Recomputes every stream's chain in the current form from the stored texts (a cursor, constant
/// memory) and stores the hashes that changed; returns how many did.
async fn rederive(conn: &mut PgConnection) -> Result<u64, LogError> {
    sqlx::query(&format!(
        "DECLARE bw_rehash NO SCROLL CURSOR FOR
         SELECT {COLUMNS} FROM events ORDER BY aggregate_type, aggregate_id, sequence"
    ))
    .execute(&mut *conn)
    .await?;
    let mut previous: Option<(String, String, [u8; 32])> = None;
    let mut changed = 0u64;
    loop {
        let rows = sqlx::query(&format!("FETCH {BATCH} FROM bw_rehash"))
            .fetch_all(&mut *conn)
            .await?;
        if rows.is_empty() {
            break;
        }
        let mut positions = Vec::new();
        let mut hashes: Vec<Vec<u8>> = Vec::new();
        for row in &rows {
            let event = super::AuditEvent::from_row(row)?;
            let chained_from = match &previous {
                Some((t, id, hash)) if *t == event.aggregate_type && *id == event.aggregate_id => {
                    *hash
                }
                _ => GENESIS,
            };
            let hash = chain_hash(&chained_from, &event.for_hash())
                .map_err(|e| LogError::Corrupt(format!("event {}: {e}", event.event_id)))?;
            if event.stored_hash().ok() != Some(hash) {
                positions.push(event.global_position);
                hashes.push(hash.to_vec());
            }
            previous = Some((event.aggregate_type, event.aggregate_id, hash));
        }
        changed += u64::try_from(positions.len()).unwrap_or(0);
        if !positions.is_empty() {
            sqlx::query(
                "UPDATE events e SET hash = u.hash
                 FROM UNNEST($1::int8[], $2::bytea[]) AS u(position, hash)
                 WHERE e.global_position = u.position",
            )
            .bind(&positions)
            .bind(&hashes)
            .execute(&mut *conn)
            .await?;
        }
    }
    sqlx::query("CLOSE bw_rehash").execute(&mut *conn).await?;
    Ok(changed)
}

/// Moves the leaves and checkpoints signed over the old hashes aside, under the rehash event's id,
/// and rebuilds the leaves over the same events (in the same order) with their new hashes.
async fn supersede(conn: &mut PgConnection, rehash: Uuid) -> Result<(), LogError> {
    for statement in [
        "INSERT INTO log_superseded_leaves (rehash_event_id, leaf_index, global_position, event_id, event_hash)
         SELECT $1, leaf_index, global_position, event_id, event_hash FROM log_leaves",
        "INSERT INTO log_superseded_checkpoints (rehash_event_id, tree_size, up_to_position, root, signed_at, key_id, signature)
         SELECT $1, tree_size, up_to_position, root, signed_at, key_id, signature FROM log_checkpoints",
    ] {
        sqlx::query(statement)
            .bind(rehash)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("DELETE FROM log_checkpoints")
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM log_leaves")
        .execute(&mut *conn)
        .await?;
    // The stored subtrees were over the old leaves: the next checkpoint grows them again.
    sqlx::query("DELETE FROM log_nodes")
        .execute(&mut *conn)
        .await?;
    // An accepted removal leaves no gap: the leaves are renumbered over the events still there.
    sqlx::query(
        "INSERT INTO log_leaves (leaf_index, global_position, event_id, event_hash)
         SELECT row_number() OVER (ORDER BY s.leaf_index) - 1, e.global_position, e.event_id, e.hash
         FROM log_superseded_leaves s JOIN events e ON e.event_id = s.event_id
         WHERE s.rehash_event_id = $1",
    )
    .bind(rehash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
