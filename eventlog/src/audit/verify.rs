//! `events verify`: every stream's chain recomputed from the stored texts (ADR 0007), every
//! checkpoint's signature and root, and the events compared with the signed leaves (ADR 0006).

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::{AuditEvent, COLUMNS, Checkpoint, Leaf, leaves, parse_hash, public_keys};
use crate::{
    LogError,
    canonical::{FORM, GENESIS, chain_hash, v1},
    merkle::{self, Hash},
};

/// Something [`verify_log`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// `altered` (content no longer gives its hash, or the hash differs from the signed leaf),
    /// `removed`, `inserted` (in the signed range but not signed), `reordered` (at another position
    /// than signed), `bad_signature`, `leaves_altered` (the stored leaves no longer give a signed
    /// root), `unknown_key`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// `Type/id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    pub detail: String,
}

/// What [`verify_log`] checked and found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub events: u64,
    pub streams: u64,
    pub checkpoints: u64,
    /// Checkpoints a rehash superseded (ADR 0007), checked against the leaves kept with them.
    pub superseded_checkpoints: u64,
    /// The position up to which the latest checkpoint vouches for the log.
    pub signed_up_to: Option<i64>,
    pub findings: Vec<Finding>,
}

fn finding(kind: &str, event: Option<&AuditEvent>, detail: String) -> Finding {
    Finding {
        kind: kind.into(),
        event_id: event.map(|e| e.event_id),
        position: event.map(|e| e.global_position),
        stream: event.map(|e| format!("{}/{}", e.aggregate_type, e.aggregate_id)),
        detail,
    }
}

/// Which canonical forms a chain check accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forms {
    /// [`crate::canonical::FORM`] only: `events verify`.
    Current,
    /// The current form or v1: the check before a rehash, when the log holds events of both.
    CurrentOrV1,
}

/// The canonical form the log's hashes are in (`log_format`).
pub async fn log_form(conn: impl sqlx::PgExecutor<'_>) -> Result<String, LogError> {
    Ok(sqlx::query_scalar("SELECT canonical_form FROM log_format")
        .fetch_one(conn)
        .await?)
}

/// Verifies the whole log: every stream's chain, every checkpoint's signature (with `pinned`
/// when given, else the stored key of its id) and root — the current ones and those a rehash
/// superseded — and the events against the signed leaves.
///
/// A log still hashed in the form of before ADR 0007 is not verified but refused with
/// [`LogError::LogFormat`], naming the command that migrates it: a verifier must neither cry
/// wolf on it nor be loosened for it.
pub async fn verify_log(pool: &PgPool, pinned: Option<[u8; 32]>) -> Result<VerifyReport, LogError> {
    let form = log_form(pool).await?;
    if form != FORM {
        return Err(LogError::LogFormat(format!(
            "the log's hashes are in canonical form {form}, which readers cannot recompute exactly \
             (ADR 0007); migrate it once with `betterworld events rehash --reason …` \
             (docs/runbooks/rehash-log.md), then verify"
        )));
    }
    verify_with(pool, pinned, Forms::Current).await
}

pub(crate) async fn verify_with(
    pool: &PgPool,
    pinned: Option<[u8; 32]>,
    forms: Forms,
) -> Result<VerifyReport, LogError> {
    let mut report = VerifyReport {
        events: 0,
        streams: 0,
        checkpoints: 0,
        superseded_checkpoints: 0,
        signed_up_to: None,
        findings: Vec::new(),
    };
    verify_chains(pool, &mut report, forms).await?;

    let keys: HashMap<String, [u8; 32]> = public_keys(pool)
        .await?
        .into_iter()
        .filter_map(|k| {
            let bytes: [u8; 32] = B64.decode(&k.public_key).ok()?.try_into().ok()?;
            Some((k.key_id, bytes))
        })
        .collect();
    let key_of = |c: &Checkpoint| pinned.or_else(|| keys.get(&c.key_id).copied());

    // Checkpoints: signatures, then the leaves against every root.
    let checkpoints: Vec<Checkpoint> =
        sqlx::query("SELECT * FROM log_checkpoints ORDER BY tree_size")
            .fetch_all(pool)
            .await?
            .iter()
            .map(Checkpoint::from_row)
            .collect::<Result<_, _>>()?;
    let mut conn = pool.acquire().await?;
    let all_leaves = leaves(&mut conn, i64::MAX).await?;
    let hashes: Vec<Hash> = all_leaves.iter().map(Leaf::hash).collect();
    let mut leaves_trusted = true;
    for checkpoint in &checkpoints {
        report.checkpoints += 1;
        match check_checkpoint(checkpoint, key_of(checkpoint), &hashes, "") {
            Ok(()) => report.signed_up_to = Some(checkpoint.up_to_position),
            Err(found) => {
                leaves_trusted &= found.kind != "leaves_altered";
                report.findings.push(found);
            }
        }
    }
    verify_superseded(pool, &key_of, &mut report).await?;
    if leaves_trusted && let Some(up_to) = report.signed_up_to {
        let size = checkpoints
            .iter()
            .rfind(|c| c.up_to_position == up_to)
            .map_or(0, |c| usize::try_from(c.tree_size).unwrap_or(0));
        compare_with_leaves(
            pool,
            &all_leaves[..size.min(all_leaves.len())],
            up_to,
            &mut report,
        )
        .await?;
    }
    Ok(report)
}

/// One checkpoint's signature with `key`, and its root over the first `tree_size` of `hashes`.
fn check_checkpoint(
    checkpoint: &Checkpoint,
    key: Option<[u8; 32]>,
    hashes: &[Hash],
    which: &str,
) -> Result<(), Finding> {
    let found = |kind: &str, detail: String| Finding {
        kind: kind.into(),
        event_id: None,
        position: Some(checkpoint.up_to_position),
        stream: None,
        detail,
    };
    let Some(key) = key else {
        return Err(found(
            "unknown_key",
            format!(
                "{which}checkpoint {} names key {}, which is not known",
                checkpoint.tree_size, checkpoint.key_id
            ),
        ));
    };
    checkpoint
        .verify(&key)
        .map_err(|e| found("bad_signature", format!("{which}{e}")))?;
    let size = usize::try_from(checkpoint.tree_size).unwrap_or(usize::MAX);
    let matches = hashes.len() >= size
        && parse_hash(&checkpoint.root).is_ok_and(|r| merkle::root(&hashes[..size]) == r);
    if matches {
        Ok(())
    } else {
        Err(found(
            "leaves_altered",
            format!(
                "the stored leaves no longer give the signed root of {which}checkpoint {}; events cannot be named against it",
                checkpoint.tree_size
            ),
        ))
    }
}

/// The checkpoints a rehash superseded, against the leaves it kept with them: still signed, still
/// the roots of those leaves (an auditor holding one of them can see it was not forged later).
async fn verify_superseded(
    pool: &PgPool,
    key_of: &impl Fn(&Checkpoint) -> Option<[u8; 32]>,
    report: &mut VerifyReport,
) -> Result<(), LogError> {
    let rehashes: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT rehash_event_id FROM log_superseded_checkpoints ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    for rehash in rehashes {
        let checkpoints: Vec<Checkpoint> = sqlx::query(
            "SELECT * FROM log_superseded_checkpoints WHERE rehash_event_id = $1 ORDER BY tree_size",
        )
        .bind(rehash)
        .fetch_all(pool)
        .await?
        .iter()
        .map(Checkpoint::from_row)
        .collect::<Result<_, _>>()?;
        let hashes: Vec<Hash> = sqlx::query(
            "SELECT leaf_index, global_position, event_id, event_hash FROM log_superseded_leaves
             WHERE rehash_event_id = $1 ORDER BY leaf_index",
        )
        .bind(rehash)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| Leaf::from_row(row).map(|l| l.hash()))
        .collect::<Result<_, _>>()?;
        let which = format!("superseded (by rehash {rehash}) ");
        for checkpoint in &checkpoints {
            report.superseded_checkpoints += 1;
            if let Err(found) = check_checkpoint(checkpoint, key_of(checkpoint), &hashes, &which) {
                report.findings.push(found);
            }
        }
    }
    Ok(())
}

/// Recomputes every stream's chain: each event's hash must follow from the stored hash of the event
/// before it and its own content; sequences must have no gap.
async fn verify_chains(
    pool: &PgPool,
    report: &mut VerifyReport,
    forms: Forms,
) -> Result<(), LogError> {
    let sql =
        format!("SELECT {COLUMNS} FROM events ORDER BY aggregate_type, aggregate_id, sequence");
    let mut rows = sqlx::query(&sql).fetch(pool);
    let mut previous: Option<(String, String, i64, Hash)> = None;
    while let Some(row) = rows.try_next().await? {
        let event = AuditEvent::from_row(&row)?;
        report.events += 1;
        let same_stream = previous
            .as_ref()
            .is_some_and(|(t, id, _, _)| *t == event.aggregate_type && *id == event.aggregate_id);
        let (expected_sequence, previous_hash) = match &previous {
            Some((_, _, sequence, hash)) if same_stream => (sequence + 1, *hash),
            _ => {
                report.streams += 1;
                (1, GENESIS)
            }
        };
        let stored = event.stored_hash().map_err(LogError::Corrupt)?;
        if event.sequence != expected_sequence {
            report.findings.push(finding(
                "removed",
                Some(&event),
                format!(
                    "sequence {expected_sequence}–{} of the stream is missing before this event",
                    event.sequence - 1
                ),
            ));
        } else {
            let in_v1 = || {
                forms == Forms::CurrentOrV1
                    && v1::chain_hash(&previous_hash, &event.for_hash()) == Some(stored)
            };
            match chain_hash(&previous_hash, &event.for_hash()) {
                Ok(hash) if hash == stored || in_v1() => {}
                Ok(_) => report.findings.push(finding(
                    "altered",
                    Some(&event),
                    "its content and its predecessor's hash no longer give its stored hash".into(),
                )),
                Err(_) if in_v1() => {}
                Err(e) => report.findings.push(finding(
                    "altered",
                    Some(&event),
                    format!("its payload or metadata has no canonical form: {e}"),
                )),
            }
        }
        previous = Some((
            event.aggregate_type,
            event.aggregate_id,
            event.sequence,
            stored,
        ));
    }
    Ok(())
}

/// Compares the events up to `up_to` with the signed leaves: each signed event must be there, at
/// its signed position, with its signed hash; nothing unsigned may sit in the signed range.
async fn compare_with_leaves(
    pool: &PgPool,
    leaves: &[Leaf],
    up_to: i64,
    report: &mut VerifyReport,
) -> Result<(), LogError> {
    let mut signed: HashMap<Uuid, Leaf> = leaves.iter().map(|l| (l.event_id, *l)).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE global_position <= $1 ORDER BY global_position"
    );
    let mut rows = sqlx::query(&sql).bind(up_to).fetch(pool);
    while let Some(row) = rows.try_next().await? {
        let event = AuditEvent::from_row(&row)?;
        let Some(leaf) = signed.remove(&event.event_id) else {
            report.findings.push(finding(
                "inserted",
                Some(&event),
                format!("in the signed range (up to {up_to}) but not signed"),
            ));
            continue;
        };
        if leaf.position != event.global_position {
            report.findings.push(finding(
                "reordered",
                Some(&event),
                format!(
                    "signed at position {} (leaf {}), now at {}",
                    leaf.position, leaf.index, event.global_position
                ),
            ));
        }
        if event.stored_hash().ok() != Some(leaf.event_hash) {
            report.findings.push(finding(
                "altered",
                Some(&event),
                format!(
                    "its stored hash differs from the one signed in leaf {}",
                    leaf.index
                ),
            ));
        }
    }
    let mut missing: Vec<&Leaf> = signed.values().collect();
    missing.sort_by_key(|l| l.index);
    let ids: Vec<Uuid> = missing.iter().map(|l| l.event_id).collect();
    // A signed event may have moved past the signed range rather than gone.
    let moved: HashMap<Uuid, i64> = sqlx::query_as::<_, (Uuid, i64)>(
        "SELECT event_id, global_position FROM events WHERE event_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    for leaf in missing {
        let (kind, detail) = match moved.get(&leaf.event_id) {
            Some(now) => (
                "reordered",
                format!(
                    "signed at position {} (leaf {}), now at {now}",
                    leaf.position, leaf.index
                ),
            ),
            None => (
                "removed",
                format!("signed in leaf {} but no longer in the log", leaf.index),
            ),
        };
        report.findings.push(Finding {
            kind: kind.into(),
            event_id: Some(leaf.event_id),
            position: Some(leaf.position),
            stream: None,
            detail,
        });
    }
    Ok(())
}
