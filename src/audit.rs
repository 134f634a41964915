//! `betterworld events …` and the checkpointer the relay and `dev` run (ADR 0006).

use std::{io::Write as _, time::Duration};

use bw_eventlog::audit::{self, InclusionProof, LogSigner, rehash};
use bw_infra::{config::CommonConfig, postgres, shutdown::Shutdown};
use futures::StreamExt as _;
use sqlx::PgPool;

use crate::cli::EventsCommand;

/// Runs an `events` subcommand.
pub async fn run(common: CommonConfig, command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::VerifyProof { proof, public_key } => verify_proof(&proof, &public_key),
        EventsCommand::Verify { public_key } => {
            let pinned = public_key.as_deref().map(parse_public_key).transpose()?;
            let pool = connect(&common).await?;
            let report = audit::verify_log(&pool, pinned).await?;
            pool.close().await;
            let failure = (!report.findings.is_empty()).then(|| {
                format!(
                    "events verify: {} findings (listed in the report on stdout)",
                    report.findings.len()
                )
            });
            crate::report_then(&report, failure)?;
            tracing::info!(
                events = report.events,
                streams = report.streams,
                checkpoints = report.checkpoints,
                signed_up_to = report.signed_up_to,
                "log verified: every chain holds and every checkpoint is signed and matches"
            );
            Ok(())
        }
        EventsCommand::Export { after } => {
            let pool = connect(&common).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut events = audit::export(&pool, after);
            let mut n = 0u64;
            while let Some(event) = events.next().await {
                serde_json::to_writer(&mut out, &event?)?;
                out.write_all(b"\n")?;
                n += 1;
            }
            out.flush()?;
            drop(events);
            pool.close().await;
            tracing::info!(events = n, "exported");
            Ok(())
        }
        EventsCommand::Replay {
            projection,
            until,
            into,
        } => {
            let projection = crate::rebuild::named(&projection)?;
            let pool = connect(&common).await?;
            let events = crate::rebuild::replay(&pool, projection.as_ref(), &into, until).await?;
            pool.close().await;
            let report = serde_json::json!({
                "projection": projection.name(),
                "until": until,
                "schema": into,
                "events": events,
                "tables": projection.tables(),
            });
            crate::report_then(&report, None)
        }
        EventsCommand::Rehash {
            reason,
            operator,
            accept_findings,
            public_key,
            log,
        } => {
            let pinned = public_key.as_deref().map(parse_public_key).transpose()?;
            let signer = log.signer(None)?;
            let pool = connect(&common).await?;
            let request = rehash::RehashRequest {
                reason,
                operator,
                accept_findings,
                pinned,
            };
            let outcome = rehash::rehash(&pool, request).await;
            let report = match outcome? {
                rehash::Rehash::Refused(checked) => {
                    pool.close().await;
                    let failure = format!(
                        "events rehash: the check found {} findings (listed on stdout); nothing changed. \
                         Investigate them; rehash with --accept-findings only to record them as accepted",
                        checked.findings.len()
                    );
                    return crate::report_then(
                        &serde_json::json!({ "refused": checked }),
                        Some(failure),
                    );
                }
                rehash::Rehash::Done(report) => report,
            };
            let checkpoint = match &signer {
                Some(signer) => audit::sign_checkpoint(&pool, signer).await?,
                None => {
                    tracing::warn!(
                        "no log signing key configured: the next relay checkpoint signs the rehashed log"
                    );
                    None
                }
            };
            pool.close().await;
            crate::report_then(
                &serde_json::json!({ "rehashed": report, "checkpoint": checkpoint }),
                None,
            )
        }
        EventsCommand::Checkpoint(args) => {
            let signer = args.signer(None)?.ok_or_else(|| {
                anyhow::anyhow!("set BW_LOG_SIGNING_KEY or BW_LOG_KEY_FILE to sign a checkpoint")
            })?;
            let pool = connect(&common).await?;
            let checkpoint = audit::sign_checkpoint(&pool, &signer).await?;
            pool.close().await;
            writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string(&checkpoint)?
            )?;
            Ok(())
        }
    }
}

async fn connect(common: &CommonConfig) -> anyhow::Result<PgPool> {
    let pool = postgres::connect(&common.database).await?;
    postgres::ensure_migrated(&pool).await?;
    Ok(pool)
}

pub(crate) fn parse_public_key(text: &str) -> anyhow::Result<[u8; 32]> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("--public-key: not the base64 of a 32-byte Ed25519 key"))
}

/// Checks a proof file offline; prints `{"valid": true, …}` or fails naming what does not hold.
fn verify_proof(path: &std::path::Path, public_key: &str) -> anyhow::Result<()> {
    let key = parse_public_key(public_key)?;
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // A whole API response (`{"data": …, "meta": …}`) is accepted as well as its data. Parsed from
    // the text, so the event's payload stays the text it was served as (ADR 0007).
    #[derive(serde::Deserialize)]
    struct Response {
        data: InclusionProof,
    }
    let proof = serde_json::from_str::<Response>(&text)
        .map(|r| r.data)
        .or_else(|_| serde_json::from_str::<InclusionProof>(&text))
        .map_err(|e| anyhow::anyhow!("{}: not an inclusion proof: {e}", path.display()))?;
    match audit::verify_proof(&proof, &key) {
        Ok(()) => {
            let line = serde_json::json!({
                "valid": true,
                "eventId": proof.event.event_id,
                "globalPosition": proof.event.global_position,
                "treeSize": proof.checkpoint.tree_size,
                "root": proof.checkpoint.root,
                "keyId": proof.checkpoint.key_id,
            });
            writeln!(std::io::stdout().lock(), "{line}")?;
            Ok(())
        }
        Err(reason) => {
            let line = serde_json::json!({ "valid": false, "reason": reason });
            writeln!(std::io::stdout().lock(), "{line}")?;
            anyhow::bail!("the proof does not hold: {reason}")
        }
    }
}

/// Signs a checkpoint every `interval` while anything new is final, until shutdown (a signing
/// under way finishes first).
pub fn spawn_checkpointer(
    pool: PgPool,
    signer: LogSigner,
    interval: Duration,
    shutdown: &Shutdown,
) {
    tracing::info!(key_id = signer.key_id(), every = ?interval, "log checkpoints are signed");
    let stop = shutdown.triggered();
    shutdown.spawn(async move {
        tokio::pin!(stop);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticker.tick() => {}
            }
            match audit::sign_checkpoint(&pool, &signer).await {
                Ok(Some(c)) => tracing::info!(tree_size = c.tree_size, up_to_position = c.up_to_position, root = %c.root, "checkpoint signed"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot sign a checkpoint; retrying next interval"),
            }
        }
    });
}
