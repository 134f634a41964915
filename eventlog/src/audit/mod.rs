//! The verifiable log: reading it as auditors do, signing checkpoints over it, proving one event's
//! inclusion, and verifying the whole of it (ADR 0006, `docs/event-catalog.md`).
//!
//! - **Reads**: [`page`], [`stream_events`] and [`export`] return events in their stored form with
//!   their chained hash ([`AuditEvent`], the NDJSON form of `betterworld events export`).
//! - **Checkpoints**: [`sign_checkpoint`] appends the leaves of every event that can no longer be
//!   overtaken (below the writers' horizon, ADR 0002) to `log_leaves`, computes the Merkle root over
//!   all leaves ([`crate::merkle`]) and stores it signed with Ed25519 in `log_checkpoints`. One
//!   checkpointer signs at a time (an advisory lock in its transaction).
//! - **Proofs**: [`proof`] gives an event, its stream predecessor's hash and its audit path to the
//!   latest checkpoint; [`verify_proof`] checks all of it offline against a public key.
//! - **Verification** ([`verify`]): [`verify_log`] recomputes every stream's chain and every
//!   checkpoint's root and signature, and compares the events with the signed leaves, naming each
//!   event altered, removed, inserted or moved.
//! - **Rehash** ([`rehash`]): a log hashed with the canonical form of before ADR 0007 is checked,
//!   re-derived and re-signed once, recorded as an operator event.
//!
//! Payload and metadata are read as the text `jsonb` returns and handed on as that text
//! ([`StoredJson`]), never re-serialised from parsed values: what an auditor receives is what the
//! hash covers.

pub mod rehash;
mod verify;

use std::path::Path;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::{PgPool, Row, postgres::PgRow};
use uuid::Uuid;

use crate::{
    LogError,
    canonical::{EventForHash, GENESIS, chain_hash, to_micros},
    merkle::{self, Hash},
};

pub use verify::{Finding, VerifyReport, log_form, verify_log};

/// The advisory lock one checkpointer holds while it signs.
pub(crate) const CHECKPOINT_LOCK: i64 = 0x6277_6576_0000_0006;

/// The columns of [`AuditEvent`]; payload and metadata as the text `jsonb` gives back.
pub(crate) const COLUMNS: &str = "global_position, event_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, recorded_at, payload::text AS payload, metadata::text AS metadata, hash";

/// A JSON value kept as the text it was read as: serialised as that text, compared by it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoredJson(Box<RawValue>);

impl StoredJson {
    /// `text` when it is one JSON value.
    pub fn from_text(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self)
    }

    /// `value` serialised.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The value parsed (for reading fields; never for hashing).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }
}

impl PartialEq for StoredJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// An event as stored, with its chained hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub global_position: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    /// As stored (the text `jsonb` gives back).
    pub payload: StoredJson,
    /// As stored (the text `jsonb` gives back).
    pub metadata: StoredJson,
    /// Hex SHA-256 chained to the previous event of the stream (`docs/event-catalog.md`).
    pub hash: String,
}

impl AuditEvent {
    pub(crate) fn from_row(r: &PgRow) -> Result<Self, sqlx::Error> {
        let hash: Vec<u8> = r.try_get("hash")?;
        let json = |column: &str| -> Result<StoredJson, sqlx::Error> {
            StoredJson::from_text(r.try_get(column)?).map_err(|e| sqlx::Error::ColumnDecode {
                index: column.to_owned(),
                source: Box::new(e),
            })
        };
        Ok(Self {
            global_position: r.try_get("global_position")?,
            event_id: r.try_get("event_id")?,
            aggregate_type: r.try_get("aggregate_type")?,
            aggregate_id: r.try_get("aggregate_id")?,
            sequence: r.try_get("sequence")?,
            event_type: r.try_get("event_type")?,
            event_version: r.try_get("event_version")?,
            recorded_at: r.try_get("recorded_at")?,
            payload: json("payload")?,
            metadata: json("metadata")?,
            hash: hex::encode(hash),
        })
    }

    /// The hashed view of this event.
    pub fn for_hash(&self) -> EventForHash<'_> {
        EventForHash {
            event_id: self.event_id,
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            sequence: self.sequence,
            event_type: &self.event_type,
            event_version: &self.event_version,
            recorded_at: to_micros(self.recorded_at),
            payload: self.payload.as_str(),
            metadata: self.metadata.as_str(),
        }
    }

    /// The stored hash as bytes.
    pub fn stored_hash(&self) -> Result<Hash, String> {
        parse_hash(&self.hash)
    }
}

pub(crate) fn parse_hash(hex_text: &str) -> Result<Hash, String> {
    hex::decode(hex_text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("`{hex_text}` is not a 32-byte hex hash"))
}

/// Up to `limit` events after global position `after`, in global order.
pub async fn page(pool: &PgPool, after: i64, limit: i64) -> Result<Vec<AuditEvent>, LogError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    decode(&rows)
}

fn decode(rows: &[PgRow]) -> Result<Vec<AuditEvent>, LogError> {
    Ok(rows
        .iter()
        .map(AuditEvent::from_row)
        .collect::<Result<_, _>>()?)
}

/// Every event of one stream, in order.
pub async fn stream_events(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<AuditEvent>, LogError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(pool)
    .await?;
    decode(&rows)
}

static EXPORT_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM events WHERE global_position > $1 ORDER BY global_position")
});

/// The whole log after `after` in global order, streamed (constant memory).
pub fn export(pool: &PgPool, after: i64) -> impl Stream<Item = Result<AuditEvent, LogError>> + '_ {
    sqlx::query(EXPORT_SQL.as_str())
        .bind(after)
        .fetch(pool)
        .map(|row| Ok(AuditEvent::from_row(&row?)?))
}

/// The key that signs checkpoints.
pub struct LogSigner {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl LogSigner {
    /// A signer from the base64 of a 32-byte Ed25519 seed.
    pub fn from_base64(seed: &str) -> Result<Self, LogError> {
        let bytes = B64
            .decode(seed.trim())
            .map_err(|e| LogError::Key(format!("not base64: {e}")))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| LogError::Key("the seed must be 32 bytes".into()))?;
        let key = SigningKey::from_bytes(&seed);
        let key_id = merkle::key_id(key.verifying_key().as_bytes());
        Ok(Self { key, key_id })
    }

    /// A signer whose seed lives in `path` (created with a fresh seed, mode 0600, when missing).
    pub fn from_file(path: &Path) -> Result<Self, LogError> {
        let io = |e: std::io::Error| LogError::Key(format!("{}: {e}", path.display()));
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let seed: [u8; 32] = rand::random();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(io)?;
            std::io::Write::write_all(&mut file, B64.encode(seed).as_bytes()).map_err(io)?;
        }
        Self::from_base64(&std::fs::read_to_string(path).map_err(io)?)
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Its id ([`merkle::key_id`]).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// A signed checkpoint: the root of the tree over the first `treeSize` events in global order
/// (every event up to `upToPosition`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub tree_size: i64,
    pub up_to_position: i64,
    /// Hex.
    pub root: String,
    pub signed_at: DateTime<Utc>,
    pub key_id: String,
    /// Base64 Ed25519 signature over [`merkle::checkpoint_message`].
    pub signature: String,
}

impl Checkpoint {
    /// The bytes the signature covers.
    pub fn message(&self) -> Result<Vec<u8>, String> {
        Ok(merkle::checkpoint_message(
            self.tree_size,
            self.up_to_position,
            &parse_hash(&self.root)?,
            self.signed_at,
        ))
    }

    /// Checks the signature with `public_key`.
    pub fn verify(&self, public_key: &[u8; 32]) -> Result<(), String> {
        let key = VerifyingKey::from_bytes(public_key).map_err(|e| format!("public key: {e}"))?;
        let signature: [u8; 64] = B64
            .decode(&self.signature)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or("the signature is not 64 bytes of base64")?;
        key.verify(&self.message()?, &Signature::from_bytes(&signature))
            .map_err(|_| format!("checkpoint {}: bad signature", self.tree_size))
    }

    pub(crate) fn from_row(r: &PgRow) -> Result<Self, sqlx::Error> {
        let root: Vec<u8> = r.try_get("root")?;
        let signature: Vec<u8> = r.try_get("signature")?;
        Ok(Self {
            tree_size: r.try_get("tree_size")?,
            up_to_position: r.try_get("up_to_position")?,
            root: hex::encode(root),
            signed_at: r.try_get("signed_at")?,
            key_id: r.try_get("key_id")?,
            signature: B64.encode(signature),
        })
    }
}

/// A public key that signed checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKey {
    pub key_id: String,
    pub algorithm: String,
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
    pub created_at: DateTime<Utc>,
}

/// Signs a checkpoint over every event that can no longer be overtaken, if any arrived since the
/// last one; returns it.
pub async fn sign_checkpoint(
    pool: &PgPool,
    signer: &LogSigner,
) -> Result<Option<Checkpoint>, LogError> {
    let horizon = crate::relay::writer_horizon(pool)
        .await
        .map_err(|e| LogError::Key(format!("horizon: {e}")))?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHECKPOINT_LOCK)
        .execute(&mut *tx)
        .await?;
    let (next_index, last_position): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(max(leaf_index) + 1, 0), coalesce(max(global_position), 0) FROM log_leaves",
    )
    .fetch_one(&mut *tx)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO log_leaves (leaf_index, global_position, event_id, event_hash)
         SELECT $1 + row_number() OVER (ORDER BY global_position) - 1, global_position, event_id, hash
         FROM events WHERE global_position > $2 AND txid < $3::text::xid8",
    )
    .bind(next_index)
    .bind(last_position)
    .bind(horizon.to_string())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    let tree_size = next_index + i64::try_from(inserted).unwrap_or(i64::MAX);
    let up_to_position: i64 =
        sqlx::query_scalar("SELECT global_position FROM log_leaves WHERE leaf_index = $1")
            .bind(tree_size - 1)
            .fetch_one(&mut *tx)
            .await?;
    // The new leaves extend the stored subtrees; the root is read from the O(log n) that cover the
    // tree, whatever the size of the log.
    extend_nodes(&mut tx, tree_size).await?;
    let size = u64::try_from(tree_size).unwrap_or(0);
    let root = fold_nodes(&mut tx, &merkle::cover(0, size))
        .await?
        .ok_or_else(|| LogError::Corrupt("a stored Merkle node is missing".into()))?;
    let signed_at = to_micros(Utc::now());
    let message = merkle::checkpoint_message(tree_size, up_to_position, &root, signed_at);
    let signature = signer.key.sign(&message);
    sqlx::query(
        "INSERT INTO log_signing_keys (key_id, public_key) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING",
    )
    .bind(&signer.key_id)
    .bind(signer.public_key().as_slice())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO log_checkpoints (tree_size, up_to_position, root, signed_at, key_id, signature)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tree_size)
    .bind(up_to_position)
    .bind(root.as_slice())
    .bind(signed_at)
    .bind(&signer.key_id)
    .bind(signature.to_bytes().as_slice())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(Checkpoint {
        tree_size,
        up_to_position,
        root: hex::encode(root),
        signed_at,
        key_id: signer.key_id.clone(),
        signature: B64.encode(signature.to_bytes()),
    }))
}

/// One stored leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub(crate) index: i64,
    pub(crate) position: i64,
    pub(crate) event_id: Uuid,
    pub(crate) event_hash: Hash,
}

impl Leaf {
    pub(crate) fn from_row(row: &PgRow) -> Result<Self, LogError> {
        let hash: Vec<u8> = row.try_get("event_hash")?;
        Ok(Self {
            index: row.try_get("leaf_index")?,
            position: row.try_get("global_position")?,
            event_id: row.try_get("event_id")?,
            event_hash: hash
                .try_into()
                .map_err(|_| LogError::Corrupt("a leaf hash is not 32 bytes".into()))?,
        })
    }

    pub(crate) fn hash(&self) -> Hash {
        merkle::leaf_hash(self.position, self.event_id, &self.event_hash)
    }
}

/// The first `size` leaves, in order.
pub(crate) async fn leaves(
    conn: &mut sqlx::PgConnection,
    size: i64,
) -> Result<Vec<Leaf>, LogError> {
    let mut rows = sqlx::query(
        "SELECT leaf_index, global_position, event_id, event_hash FROM log_leaves
         WHERE leaf_index < $1 ORDER BY leaf_index",
    )
    .bind(size)
    .fetch(conn);
    let mut out = Vec::new();
    while let Some(row) = rows.try_next().await? {
        out.push(Leaf::from_row(&row)?);
    }
    Ok(out)
}

/// Adds the Merkle nodes that complete when the stored tree grows to `size` leaves (all of them,
/// once, after an upgrade, a restore or a rehash). Call under [`CHECKPOINT_LOCK`].
async fn extend_nodes(conn: &mut sqlx::PgConnection, size: i64) -> Result<(), LogError> {
    let stored: i64 =
        sqlx::query_scalar("SELECT coalesce(max(idx) + 1, 0) FROM log_nodes WHERE level = 0")
            .fetch_one(&mut *conn)
            .await?;
    // A catch-up over a long log goes in slices, each a bounded read and insert.
    const SLICE: i64 = 65_536;
    let mut old = stored;
    while old < size {
        let end = (old + SLICE).min(size);
        let mut rows = sqlx::query(
            "SELECT leaf_index, global_position, event_id, event_hash FROM log_leaves
             WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index",
        )
        .bind(old)
        .bind(end)
        .fetch(&mut *conn);
        let mut hashes = Vec::new();
        while let Some(row) = rows.try_next().await? {
            hashes.push(Leaf::from_row(&row)?.hash());
        }
        drop(rows);
        if i64::try_from(hashes.len()).ok() != Some(end - old) {
            return Err(LogError::Corrupt(format!(
                "log_leaves has a gap between {old} and {end}"
            )));
        }
        let (from, to) = (
            u64::try_from(old).unwrap_or(0),
            u64::try_from(end).unwrap_or(0),
        );
        let (_, needed) = merkle::growth(from, to);
        let known = nodes(&mut *conn, &needed).await?;
        let grown = merkle::grow(from, &hashes, &known)
            .ok_or_else(|| LogError::Corrupt("a stored Merkle node is missing".into()))?;
        let levels: Vec<i16> = grown.iter().map(|(n, _)| i16::from(n.level)).collect();
        let indexes: Vec<i64> = grown
            .iter()
            .map(|(n, _)| i64::try_from(n.index).unwrap_or(i64::MAX))
            .collect();
        let node_hashes: Vec<Vec<u8>> = grown.iter().map(|(_, h)| h.to_vec()).collect();
        sqlx::query(
            "INSERT INTO log_nodes (level, idx, hash)
             SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])",
        )
        .bind(&levels)
        .bind(&indexes)
        .bind(&node_hashes)
        .execute(&mut *conn)
        .await?;
        old = end;
    }
    Ok(())
}

/// The stored hashes of `wanted` (those not stored are absent from the map).
async fn nodes(
    conn: &mut sqlx::PgConnection,
    wanted: &[merkle::Node],
) -> Result<std::collections::HashMap<merkle::Node, Hash>, LogError> {
    let levels: Vec<i16> = wanted.iter().map(|n| i16::from(n.level)).collect();
    let indexes: Vec<i64> = wanted
        .iter()
        .map(|n| i64::try_from(n.index).unwrap_or(i64::MAX))
        .collect();
    let rows = sqlx::query(
        "SELECT n.level, n.idx, n.hash FROM log_nodes n
         JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx) ON n.level = w.level AND n.idx = w.idx",
    )
    .bind(&levels)
    .bind(&indexes)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let level: i16 = r.try_get("level")?;
            let index: i64 = r.try_get("idx")?;
            let hash: Vec<u8> = r.try_get("hash")?;
            let node = merkle::Node {
                level: u8::try_from(level).unwrap_or(u8::MAX),
                index: u64::try_from(index).unwrap_or(u64::MAX),
            };
            let hash: Hash = hash
                .try_into()
                .map_err(|_| LogError::Corrupt("a Merkle node is not 32 bytes".into()))?;
            Ok((node, hash))
        })
        .collect()
}

/// The hash of the range `cover` covers, from the stored nodes; `None` when one is not stored.
async fn fold_nodes(
    conn: &mut sqlx::PgConnection,
    cover: &[merkle::Node],
) -> Result<Option<Hash>, LogError> {
    Ok(fold_stored(&nodes(conn, cover).await?, cover))
}

/// The hash of the range `cover` covers, from `stored`; `None` when one is missing.
fn fold_stored(
    stored: &std::collections::HashMap<merkle::Node, Hash>,
    cover: &[merkle::Node],
) -> Option<Hash> {
    cover
        .iter()
        .map(|n| stored.get(n).copied())
        .collect::<Option<Vec<Hash>>>()
        .map(|hashes| merkle::fold(&hashes))
}

/// The latest checkpoint, if one was signed.
pub async fn latest(pool: &PgPool) -> Result<Option<Checkpoint>, LogError> {
    let row = sqlx::query("SELECT * FROM log_checkpoints ORDER BY tree_size DESC LIMIT 1")
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(Checkpoint::from_row).transpose()?)
}

/// Every key that signed checkpoints.
pub async fn public_keys(pool: &PgPool) -> Result<Vec<PublicKey>, LogError> {
    let rows = sqlx::query(
        "SELECT key_id, public_key, created_at FROM log_signing_keys ORDER BY created_at",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let key: Vec<u8> = r.try_get("public_key")?;
            Ok(PublicKey {
                key_id: r.try_get("key_id")?,
                algorithm: "Ed25519".into(),
                public_key: B64.encode(key),
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// An event, what proves it is in the log, and the checkpoint it is proven against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProof {
    pub event: AuditEvent,
    /// Hex hash of the previous event of its stream (zeros for the first).
    pub previous_hash: String,
    pub leaf_index: i64,
    /// Hex hashes of the audit path, bottom up (RFC 6962).
    pub path: Vec<String>,
    pub checkpoint: Checkpoint,
}

/// What [`proof`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum ProofLookup {
    Found(Box<InclusionProof>),
    /// No event has this id.
    UnknownEvent,
    /// The event is newer than the latest checkpoint.
    NotYetCheckpointed,
}

/// The inclusion proof of `event_id` against the latest checkpoint.
pub async fn proof(pool: &PgPool, event_id: Uuid) -> Result<ProofLookup, LogError> {
    let Some(row) = sqlx::query(&format!("SELECT {COLUMNS} FROM events WHERE event_id = $1"))
        .bind(event_id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(ProofLookup::UnknownEvent);
    };
    let event = AuditEvent::from_row(&row)?;
    let (Some(checkpoint), Some(index)) = (
        latest(pool).await?,
        sqlx::query_scalar::<_, i64>("SELECT leaf_index FROM log_leaves WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(pool)
            .await?,
    ) else {
        return Ok(ProofLookup::NotYetCheckpointed);
    };
    let previous: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT hash FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
    )
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(event.sequence - 1)
    .fetch_optional(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    let outside = || LogError::Corrupt(format!("leaf {index} is outside the tree"));
    let covers = merkle::proof_covers(
        u64::try_from(index).map_err(|_| outside())?,
        u64::try_from(checkpoint.tree_size).map_err(|_| outside())?,
    )
    .ok_or_else(outside)?;
    // Every node of every path element in one read.
    let all: Vec<merkle::Node> = covers.iter().flatten().copied().collect();
    let stored = nodes(&mut conn, &all).await?;
    let mut path: Vec<Hash> = covers
        .iter()
        .map_while(|cover| fold_stored(&stored, cover))
        .collect();
    if path.len() < covers.len() {
        // A checkpoint signed before the nodes were stored, or nodes not regrown yet after a
        // restore: from every leaf, as before.
        let hashes: Vec<Hash> = leaves(&mut conn, checkpoint.tree_size)
            .await?
            .iter()
            .map(Leaf::hash)
            .collect();
        path = usize::try_from(index)
            .ok()
            .and_then(|i| merkle::inclusion_proof(&hashes, i))
            .ok_or_else(outside)?;
    }
    Ok(ProofLookup::Found(Box::new(InclusionProof {
        event,
        previous_hash: hex::encode(previous.unwrap_or_else(|| GENESIS.to_vec())),
        leaf_index: index,
        path: path.iter().map(hex::encode).collect(),
        checkpoint,
    })))
}

/// Checks a proof offline: the event's content gives its hash (chained from `previousHash`), its
/// position and id give its leaf, the path leads to the checkpoint's root, and `public_key` signed
/// the checkpoint.
pub fn verify_proof(proof: &InclusionProof, public_key: &[u8; 32]) -> Result<(), String> {
    let previous = parse_hash(&proof.previous_hash)?;
    let recomputed = chain_hash(&previous, &proof.event.for_hash())
        .map_err(|e| format!("the event's payload or metadata: {e}"))?;
    if recomputed != proof.event.stored_hash()? {
        return Err("the event's content does not give its hash".into());
    }
    let leaf = merkle::leaf_hash(
        proof.event.global_position,
        proof.event.event_id,
        &recomputed,
    );
    let path = proof
        .path
        .iter()
        .map(|h| parse_hash(h))
        .collect::<Result<Vec<_>, _>>()?;
    let root = parse_hash(&proof.checkpoint.root)?;
    let (index, size) = (
        u64::try_from(proof.leaf_index).map_err(|_| "negative leaf index")?,
        u64::try_from(proof.checkpoint.tree_size).map_err(|_| "negative tree size")?,
    );
    if !merkle::verify_inclusion(&leaf, index, size, &path, &root) {
        return Err("the path does not lead to the checkpoint's root".into());
    }
    proof.checkpoint.verify(public_key)
}
