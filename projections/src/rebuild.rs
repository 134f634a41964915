//! Rebuilding a projection without downtime, and checking that it is deterministic
//! (docs/runbooks/rebuild-projection.md).
//!
//! **Rebuild** ([`rebuild`]): the projection's tables are created empty in a shadow schema
//! (`CREATE TABLE … (LIKE public.… INCLUDING ALL)`), and the projection's own `apply` fills them
//! straight from the PostgreSQL log in batches, on a connection whose `search_path` puts the shadow
//! schema first — the projection's SQL names its tables unqualified, so the same code writes the
//! shadow tables. Only events that no open transaction can still overtake are read (the writers'
//! horizon, ADR 0002). Then, in one transaction, the live projector is paused (its checkpoint row
//! locked: every batch locks it first), the shadow catches up to the last final event, the live
//! tables move to a retired schema and the shadow ones into `public` (their indexes renamed to the
//! live ones' names), and the checkpoint and version are set. Readers keep reading the old tables
//! until that commit and wait only for its moment of DDL; the live projector resumes after the new
//! checkpoint. The retired tables are dropped afterwards.
//!
//! **Replay** ([`replay_into`]): the same build, stopped at a given position, into a schema an
//! auditor names and queries afterwards: the read model as it was then.
//!
//! **Verify** ([`verify`]): the same build into a scratch schema, caught up to exactly the live
//! checkpoint while the live projector is paused, then compared table by table (`EXCEPT` both
//! ways); every differing row is reported.

use std::time::Instant;

use bw_eventlog::envelope::EventEnvelope;
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};

use crate::{ProjectionError, runtime::Projection};

/// Events read and applied per transaction while building.
const BATCH: i64 = 2000;
/// The longest the swap waits for a lock (readers queue behind a waiting DDL).
const SWAP_LOCK_TIMEOUT: &str = "2s";
/// Swap attempts before the rebuild gives up (the shadow is kept for the next try).
const SWAP_ATTEMPTS: u32 = 5;

/// Progress: events applied so far and the position reached.
pub type Progress<'a> = &'a mut (dyn FnMut(u64, i64) + Send);

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildReport {
    pub projection: String,
    pub version: i32,
    /// Events applied (the bulk build and the catch-up).
    pub events: u64,
    /// The checkpoint the rebuilt read model took over at.
    pub position: i64,
    pub seconds: f64,
    pub events_per_second: f64,
}

/// One row that differs between the live read model and a fresh build.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    pub table: String,
    /// `live_only` (in the read model, not in a fresh build) or `rebuilt_only`.
    pub side: String,
    pub row: serde_json::Value,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub projection: String,
    /// The live checkpoint both sides were compared at.
    pub position: i64,
    pub rows_compared: u64,
    pub differences: Vec<Difference>,
}

/// `ident` as a quoted SQL identifier.
pub fn quoted(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn no_tables(projection: &dyn Projection) -> ProjectionError {
    ProjectionError::Rebuild(format!(
        "projection {} declares no tables: it cannot be rebuilt or verified",
        projection.name()
    ))
}

/// A connection of its own (taken out of the pool, so its `search_path` never leaks) writing to
/// `schema` first.
async fn connection_into(pool: &PgPool, schema: &str) -> Result<PgConnection, ProjectionError> {
    let mut conn = pool.acquire().await?.detach();
    sqlx::query(&format!("SET search_path TO {}, public", quoted(schema)))
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// Creates `schema` afresh with empty copies of the projection's tables.
async fn create_shadow(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    schema: &str,
) -> Result<(), ProjectionError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quoted(schema)))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {}", quoted(schema)))
        .execute(&mut *tx)
        .await?;
    for table in projection.tables() {
        sqlx::query(&format!(
            "CREATE TABLE {}.{} (LIKE public.{} INCLUDING ALL)",
            quoted(schema),
            quoted(table),
            quoted(table)
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The last position no open transaction can still write before.
async fn final_position(conn: &mut PgConnection, pool: &PgPool) -> Result<i64, ProjectionError> {
    let horizon = bw_eventlog::relay::writer_horizon(pool)
        .await
        .map_err(|e| ProjectionError::Rebuild(e.to_string()))?;
    Ok(bw_eventlog::read::last_position_before(&mut *conn, horizon).await?)
}

/// Up to [`BATCH`] of the events of `types` in (`after`, `to`], in global order, without those an
/// operator skipped for projection `name` (`projections skip`), as the live projector does.
async fn read_batch(
    conn: &mut PgConnection,
    types: &[&str],
    name: &str,
    after: i64,
    to: i64,
) -> Result<Vec<EventEnvelope>, ProjectionError> {
    let skipped: Vec<i64> = sqlx::query_scalar(
        "SELECT position FROM projection_skips WHERE projection = $1 AND position > $2 AND position <= $3",
    )
    .bind(name)
    .bind(after)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    Ok(bw_eventlog::read::between(&mut *conn, after, to, types, &skipped, BATCH).await?)
}

/// Reads the batches of (`from`, `to`] one after another on a connection of its own and hands
/// them over; stops at the end, at an error (handed over too) or when nobody takes them any more.
async fn read_ahead(
    pool: PgPool,
    types: &'static [&'static str],
    name: &'static str,
    from: i64,
    to: i64,
    batches: tokio::sync::mpsc::Sender<Result<Vec<EventEnvelope>, ProjectionError>>,
) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            let _ = batches.send(Err(e.into())).await;
            return;
        }
    };
    let mut after = from;
    while after < to {
        let batch = read_batch(&mut conn, types, name, after, to).await;
        let last = match &batch {
            Ok(events) => events.last().map(|e| e.global_position),
            Err(_) => None,
        };
        if batches.send(batch).await.is_err() {
            return;
        }
        match last {
            Some(last) => after = last,
            None => return,
        }
    }
}

/// Applies the projection's events in (`from`, `to`] on `conn`, a batch per transaction unless
/// `conn` is inside one already; returns the events applied. While one batch is applied, the next
/// is read on a connection of `pool` (the reading and decoding overlap the writing).
async fn apply_range(
    conn: &mut PgConnection,
    pool: &PgPool,
    projection: &dyn Projection,
    from: i64,
    to: i64,
    progress: Progress<'_>,
    applied_before: u64,
) -> Result<u64, ProjectionError> {
    if from >= to {
        return Ok(0);
    }
    let (sender, mut batches) = tokio::sync::mpsc::channel(2);
    let reader = tokio::spawn(read_ahead(
        pool.clone(),
        projection.aggregate_types(),
        projection.name(),
        from,
        to,
        sender,
    ));
    let applied = async {
        let mut applied = 0u64;
        while let Some(batch) = batches.recv().await {
            let batch = batch?;
            let Some(last) = batch.last().map(|e| e.global_position) else {
                break;
            };
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            if projection.prepare(&mut tx, &batch).await.is_err() {
                tracing::warn!(
                    projection = projection.name(),
                    "preparing a batch failed; applying it event by event"
                );
            }
            crate::runtime::apply_events(projection, &mut tx, &batch)
                .await
                .map_err(|(_, error)| error)?;
            tx.commit().await?;
            applied += batch.len() as u64;
            progress(applied_before + applied, last);
        }
        Ok::<_, ProjectionError>(applied)
    }
    .await;
    // On an error the reader stops at its next hand-over; do not leave it running until then.
    drop(batches);
    reader.abort();
    let _ = reader.await;
    applied
}

/// Builds the projection into `schema` up to the last final event (or `cap`, if lower); returns
/// the connection writing there, the position reached and the events applied.
async fn build(
    pool: &PgPool,
    projection: &dyn Projection,
    schema: &str,
    cap: Option<i64>,
    progress: Progress<'_>,
) -> Result<(PgConnection, i64, u64), ProjectionError> {
    if projection.tables().is_empty() {
        return Err(no_tables(projection));
    }
    let mut conn = connection_into(pool, schema).await?;
    // One rebuild or verification of a projection at a time (they share schema names); the lock
    // goes with the connection.
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(bw_eventlog::leader::lock_key(&format!(
            "rebuild:{}",
            projection.name()
        )))
        .execute(&mut conn)
        .await?;
    create_shadow(&mut conn, projection, schema).await?;
    let last = final_position(&mut conn, pool).await?;
    let to = cap.map_or(last, |cap| cap.min(last));
    let applied = apply_range(&mut conn, pool, projection, 0, to, progress, 0).await?;
    Ok((conn, to, applied))
}

/// Rebuilds `projection` from the log and swaps the result in atomically (see the module
/// documentation). `progress` is called after each batch.
pub async fn rebuild(
    pool: &PgPool,
    projection: &dyn Projection,
    progress: Progress<'_>,
) -> Result<RebuildReport, ProjectionError> {
    let started = Instant::now();
    let name = projection.name();
    let shadow = format!("bw_shadow_{name}");
    let retired = format!("bw_retired_{name}");
    let (mut conn, mut built_to, mut events) =
        build(pool, projection, &shadow, None, progress).await?;
    let mut attempt = 0;
    let to = loop {
        // Catch up without any lock first, so the locked part has little left to do.
        let last = final_position(&mut conn, pool).await?;
        events += apply_range(
            &mut conn, pool, projection, built_to, last, progress, events,
        )
        .await?;
        built_to = last.max(built_to);
        match swap(
            &mut conn, pool, projection, &shadow, &retired, built_to, progress, events,
        )
        .await
        {
            Ok((to, caught_up)) => {
                events += caught_up;
                break to;
            }
            // Someone held a table too long (a long transaction): readers must not queue behind
            // the swap, so give up the locks and try again.
            Err(ProjectionError::Database(sqlx::Error::Database(e)))
                if e.code().as_deref() == Some("55P03") && attempt < SWAP_ATTEMPTS =>
            {
                attempt += 1;
                tracing::warn!(
                    projection = name,
                    attempt,
                    "the swap waited too long for a lock; retrying"
                );
            }
            Err(e) => return Err(e),
        }
    };
    for schema in [&retired, &shadow] {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quoted(schema)))
            .execute(&mut conn)
            .await?;
    }
    sqlx::Connection::close(conn).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(RebuildReport {
        projection: name.to_owned(),
        version: projection.version(),
        events,
        position: to,
        seconds,
        events_per_second: if seconds > 0.0 {
            events as f64 / seconds
        } else {
            0.0
        },
    })
}

/// The swap in one transaction: pause the live projector (its checkpoint row), catch up, move
/// the tables, hand over the checkpoint. Locks wait at most [`SWAP_LOCK_TIMEOUT`].
#[allow(clippy::too_many_arguments)]
async fn swap(
    conn: &mut PgConnection,
    pool: &PgPool,
    projection: &dyn Projection,
    shadow: &str,
    retired: &str,
    built_to: i64,
    progress: Progress<'_>,
    events: u64,
) -> Result<(i64, u64), ProjectionError> {
    let name = projection.name();
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query(&format!("SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO projection_checkpoints (projection, version) VALUES ($1, $2) ON CONFLICT (projection) DO NOTHING")
        .bind(name)
        .bind(projection.version())
        .execute(&mut *tx)
        .await?;
    let live: i64 = sqlx::query_scalar(
        "SELECT position FROM projection_checkpoints WHERE projection = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    let to = final_position(&mut tx, pool).await?.max(live).max(built_to);
    let caught_up = apply_range(&mut tx, pool, projection, built_to, to, progress, events).await?;
    sqlx::query("SET LOCAL search_path TO public")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        quoted(retired)
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!("CREATE SCHEMA {}", quoted(retired)))
        .execute(&mut *tx)
        .await?;
    for table in projection.tables() {
        let renames = index_renames(&mut tx, shadow, table).await?;
        sqlx::query(&format!(
            "ALTER TABLE public.{} SET SCHEMA {}",
            quoted(table),
            quoted(retired)
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "ALTER TABLE {}.{} SET SCHEMA public",
            quoted(shadow),
            quoted(table)
        ))
        .execute(&mut *tx)
        .await?;
        for (new, old) in renames {
            sqlx::query(&format!(
                "ALTER INDEX public.{} RENAME TO {}",
                quoted(&new),
                quoted(&old)
            ))
            .execute(&mut *tx)
            .await?;
        }
    }
    sqlx::query(
        "UPDATE projection_checkpoints SET position = $2, version = $3, state = 'running', failed_position = NULL,
                failed_event_id = NULL, last_error = NULL, updated_at = now()
         WHERE projection = $1",
    )
    .bind(name)
    .bind(to)
    .bind(projection.version())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((to, caught_up))
}

/// For each index of `shadow.table`, the name of the live index with the same definition (so the
/// swapped-in table keeps the names migrations know).
async fn index_renames(
    conn: &mut PgConnection,
    shadow: &str,
    table: &str,
) -> Result<Vec<(String, String)>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT schemaname, indexname, regexp_replace(indexdef, '^(CREATE( UNIQUE)? INDEX )\\S+ ON \\S+?\\.', '\\1 ON ') AS shape
         FROM pg_indexes WHERE tablename = $1 AND schemaname IN ('public', $2)",
    )
    .bind(table)
    .bind(shadow)
    .fetch_all(&mut *conn)
    .await?;
    let mut renames = Vec::new();
    for new in rows
        .iter()
        .filter(|r| r.get::<String, _>("schemaname") == shadow)
    {
        let shape: String = new.get("shape");
        if let Some(old) = rows.iter().find(|r| {
            r.get::<String, _>("schemaname") == "public" && r.get::<String, _>("shape") == shape
        }) {
            let (new, old): (String, String) = (new.get("indexname"), old.get("indexname"));
            if new != old {
                renames.push((new, old));
            }
        }
    }
    Ok(renames)
}

/// Builds `projection` into a scratch schema and compares it with the live read model at the live
/// checkpoint (see the module documentation); the scratch schema is dropped afterwards.
pub async fn verify(
    pool: &PgPool,
    projection: &dyn Projection,
    progress: Progress<'_>,
) -> Result<VerifyReport, ProjectionError> {
    let name = projection.name();
    let scratch = format!("bw_verify_{name}");
    let checkpoint = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT position FROM projection_checkpoints WHERE projection = $1 FOR UPDATE",
        )
        .bind(name)
    };
    // Built up to where the live read model is now, then caught up to where it is once paused.
    let now = checkpoint().fetch_optional(pool).await?.unwrap_or(0);
    let (mut conn, built_to, _) = build(pool, projection, &scratch, Some(now), progress).await?;
    let mut tx = sqlx::Connection::begin(&mut conn).await?;
    let live = checkpoint().fetch_optional(&mut *tx).await?.unwrap_or(0);
    apply_range(&mut tx, pool, projection, built_to, live, progress, 0).await?;
    let mut report = VerifyReport {
        projection: name.to_owned(),
        position: live,
        rows_compared: 0,
        differences: Vec::new(),
    };
    for table in projection.tables() {
        let (live_t, fresh_t) = (
            format!("public.{}", quoted(table)),
            format!("{}.{}", quoted(&scratch), quoted(table)),
        );
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {live_t}"))
            .fetch_one(&mut *tx)
            .await?;
        report.rows_compared += u64::try_from(count).unwrap_or_default();
        for (side, a, b) in [
            ("live_only", &live_t, &fresh_t),
            ("rebuilt_only", &fresh_t, &live_t),
        ] {
            let rows: Vec<serde_json::Value> = sqlx::query_scalar(&format!(
                "SELECT to_jsonb(d) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) d LIMIT 100"
            ))
            .fetch_all(&mut *tx)
            .await?;
            report
                .differences
                .extend(rows.into_iter().map(|row| Difference {
                    table: (*table).to_owned(),
                    side: side.into(),
                    row,
                }));
        }
    }
    tx.rollback().await?;
    sqlx::query(&format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        quoted(&scratch)
    ))
    .execute(&mut conn)
    .await?;
    sqlx::Connection::close(conn).await?;
    Ok(report)
}

/// Builds `projection` as it was at global position `until` into `schema` (created, or replaced if
/// it exists) and leaves it there to be queried; returns the events applied.
pub async fn replay_into(
    pool: &PgPool,
    projection: &dyn Projection,
    schema: &str,
    until: i64,
    progress: Progress<'_>,
) -> Result<u64, ProjectionError> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema != "public"
        && !schema.starts_with("pg_")
        && !schema.starts_with("bw_");
    if !valid {
        return Err(ProjectionError::Rebuild(format!(
            "schema `{schema}`: use lower-case letters, digits and `_` (not `public`, `pg_…` or `bw_…`)"
        )));
    }
    let (conn, _, applied) = build(pool, projection, schema, Some(until), progress).await?;
    sqlx::Connection::close(conn).await?;
    Ok(applied)
}
