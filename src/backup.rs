//! `betterworld backup` and `betterworld restore` (docs/runbooks/backup-restore.md).
//!
//! A backup is a directory: `manifest.json` and one file per table in PostgreSQL's `COPY` text
//! format, all read in one repeatable-read snapshot. It holds the log, the signed checkpoints and
//! their leaves and keys, and every command-side table (credentials, crypto-shredding keys, claims,
//! idempotency records, …) — every table of the schema except the read models (`rm_*`, rebuilt from
//! the log), the projector and relay checkpoints, caches and presence. A table added later is
//! included unless it is excluded here.
//!
//! A restore goes into a migrated, empty database: each file's SHA-256 is checked against the
//! manifest, the tables are loaded, the log's transaction-id offset is moved past the restored
//! events (so new events sort after them, `log_epoch`), the log is verified, and every read model
//! is rebuilt from it.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use bw_projections::rebuild::quoted;
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// The format written in the manifest.
const FORMAT: &str = "betterworld-backup-1";

/// Tables never backed up: derived, ephemeral or re-created.
const EXCLUDED: [&str; 9] = [
    "_sqlx_migrations",
    "projection_checkpoints",
    "relay_checkpoints",
    "dev_mailbox",
    "embedding_cache",
    "guardrail_cache",
    "agent_presence",
    "log_epoch",
    // The Merkle tree's stored subtrees: regrown from log_leaves by the next checkpoint.
    "log_nodes",
];

/// One table in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableFile {
    pub table: String,
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The last migration applied to the source; a restore needs the same.
    pub migration: i64,
    pub events: u64,
    /// The highest (offset) transaction id in the log.
    pub max_txid: i64,
    pub tables: Vec<TableFile>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub tables: usize,
    pub rows: u64,
    pub xid_offset: i64,
    pub log: bw_eventlog::audit::VerifyReport,
    pub rebuilt: Vec<bw_projections::rebuild::RebuildReport>,
}

async fn last_migration(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?,
    )
}

/// The tables a backup holds, in restore order (keys before what references them).
async fn tables(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'rm\\_%' ORDER BY tablename",
    )
    .fetch_all(pool)
    .await?;
    names.retain(|n| !EXCLUDED.contains(&n.as_str()));
    // Referenced tables first (log_checkpoints references log_signing_keys).
    names.sort_by_key(|n| (n != "log_signing_keys", n.clone()));
    Ok(names)
}

/// Writes a backup of `pool`'s database into `dir` (created; it must not hold a backup already).
pub async fn backup(pool: &PgPool, dir: &Path) -> anyhow::Result<Manifest> {
    std::fs::create_dir_all(dir)?;
    // It holds secrets (password hashes, per-person keys, signing keys): owner only.
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let manifest_path = dir.join("manifest.json");
    if manifest_path.exists() {
        anyhow::bail!("{} holds a backup already", dir.display());
    }
    let migration = last_migration(pool).await?;
    let names = tables(pool).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let bw_eventlog::read::Size { events, max_txid } = bw_eventlog::read::size(&mut *tx).await?;
    let mut files = Vec::new();
    for table in &names {
        let file = format!("{table}.copy");
        let mut out = std::io::BufWriter::new(private_file(&dir.join(&file))?);
        let mut hasher = Sha256::new();
        let (mut rows, mut bytes) = (0u64, 0u64);
        let mut copy = tx
            .copy_out_raw(&format!("COPY public.{} TO STDOUT", quoted(table)))
            .await?;
        while let Some(chunk) = copy.try_next().await? {
            rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            bytes += chunk.len() as u64;
            hasher.update(&chunk);
            out.write_all(&chunk)?;
        }
        drop(copy);
        out.flush()?;
        files.push(TableFile {
            table: table.clone(),
            file,
            rows,
            bytes,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    tx.commit().await?;
    let manifest = Manifest {
        format: FORMAT.into(),
        created_at: chrono::Utc::now(),
        migration,
        events: u64::try_from(events).unwrap_or_default(),
        max_txid,
        tables: files,
    };
    private_file(&manifest_path)?.write_all(&serde_json::to_vec_pretty(&manifest)?)?;
    Ok(manifest)
}

/// A new file only its owner can read.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Restores the backup in `dir` into `pool`'s database (migrated, with no events yet), verifies the
/// log and rebuilds every read model.
pub async fn restore(
    pool: &PgPool,
    dir: &Path,
    pinned: Option<[u8; 32]>,
) -> anyhow::Result<RestoreReport> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(dir.join("manifest.json"))
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("manifest.json").display()))?,
    )?;
    if manifest.format != FORMAT {
        anyhow::bail!(
            "not a backup this version reads (format {})",
            manifest.format
        );
    }
    let migration = last_migration(pool).await?;
    if migration != manifest.migration {
        anyhow::bail!(
            "the backup was taken at migration {}, this database is at {migration}: run the same version of betterworld",
            manifest.migration
        );
    }
    let existing = bw_eventlog::read::size(pool).await?.events;
    if existing > 0 {
        anyhow::bail!(
            "the target database holds {existing} events already; restore into an empty one"
        );
    }
    // Every file is checked before anything is loaded.
    let mut paths: Vec<(TableFile, PathBuf)> = Vec::new();
    for table in &manifest.tables {
        let path = dir.join(&table.file);
        if table.file.contains('/') || table.file.contains("..") {
            anyhow::bail!("manifest names a file outside the backup: {}", table.file);
        }
        let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if hex::encode(Sha256::digest(&bytes)) != table.sha256 {
            anyhow::bail!(
                "{}: its SHA-256 differs from the manifest's (damaged or altered)",
                path.display()
            );
        }
        paths.push((table.clone(), path));
    }
    let mut tx = pool.begin().await?;
    // No command may write while the log is loaded (they take this lock shared), and the target
    // must still be empty under it.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(bw_eventlog::store::EVENT_WRITER_LOCK)
        .execute(&mut *tx)
        .await?;
    let existing = bw_eventlog::read::size(&mut *tx).await?.events;
    if existing > 0 {
        anyhow::bail!(
            "the target database holds {existing} events already; restore into an empty one"
        );
    }
    let mut rows = 0u64;
    for (table, path) in &paths {
        // Tables a migration seeded (defaults, keys made at start-up) are replaced by the backup's.
        sqlx::query(&format!("DELETE FROM public.{}", quoted(&table.table)))
            .execute(&mut *tx)
            .await?;
        let mut copy = tx
            .copy_in_raw(&format!("COPY public.{} FROM STDIN", quoted(&table.table)))
            .await?;
        copy.send(std::fs::read(path)?).await?;
        rows += copy.finish().await?;
    }
    // New events must sort after every restored one: shift this cluster's transaction ids past the
    // restored log's.
    // From the rows loaded, not the manifest's word.
    let xid_offset = bw_eventlog::store::move_epoch_past_log(&mut tx).await?;
    tx.commit().await?;
    let log = bw_eventlog::audit::verify_log(pool, pinned).await?;
    let mut rebuilt = Vec::new();
    for projection in crate::roles::projections() {
        rebuilt.push(crate::rebuild::rebuild(pool, projection.as_ref()).await?);
    }
    Ok(RestoreReport {
        tables: paths.len(),
        rows,
        xid_offset,
        log,
        rebuilt,
    })
}
