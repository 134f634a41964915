//! The verifiable log (ADR 0006) against the real PostgreSQL: signed checkpoints cover only events
//! no transaction can still overtake; `events verify` names each event altered, removed or
//! reordered and each bad signature; inclusion proofs check offline; auditors read the log over HTTP.

mod support;

use bw_commands::Outcome;
use bw_domain::taxonomy::Role;
use bw_eventlog::audit::{self, Finding, LogSigner};
use reqwest::StatusCode;
use serde_json::Value;
use support::{
    Platform, fixtures,
    people::{Person, person},
    send,
};
use uuid::Uuid;

/// A platform without projectors (no guardrail verdicts appear in the log while a test counts it).
async fn quiet() -> Platform {
    Platform::spawn_configured(std::time::Duration::from_secs(5), false).await
}

/// A fixed test key (base64 of 32 bytes).
const SEED: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

fn signer() -> LogSigner {
    LogSigner::from_base64(SEED).expect("seed")
}

/// Registers agents and reports and edits problems through the bus; returns every event id in
/// global order.
async fn history(p: &Platform) -> Vec<(i64, Uuid, String)> {
    let bus = &p.pipeline.bus;
    for n in 0..3 {
        let agent = fixtures::register(bus, &format!("audited_{n}")).await;
        let (problem, _) = fixtures::report(bus, agent, n).await.expect("report");
        fixtures::edit(bus, agent, problem, bw_domain::taxonomy::Severity::Critical)
            .await
            .expect("edit");
    }
    sqlx::query_as(
        "SELECT global_position, event_id, aggregate_id FROM events ORDER BY global_position",
    )
    .fetch_all(&p.pipeline.pool)
    .await
    .expect("events")
}

/// Runs `statements` with the immutability triggers of `table` off (the tables' owner may; the
/// application never does), as an attacker with database access would.
async fn tamper(p: &Platform, table: &str, statements: &[String]) {
    p.pipeline.expect_tampering();
    let mut tx = p.pipeline.pool.begin().await.expect("begin");
    sqlx::query(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
        .execute(&mut *tx)
        .await
        .expect("disable");
    for statement in statements {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .expect("tamper");
    }
    sqlx::query(&format!("ALTER TABLE {table} ENABLE TRIGGER USER"))
        .execute(&mut *tx)
        .await
        .expect("enable");
    tx.commit().await.expect("commit");
}

fn named(findings: &[Finding], kind: &str) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = findings
        .iter()
        .filter(|f| f.kind == kind)
        .filter_map(|f| f.event_id)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test]
async fn events_verify_names_each_event_altered_removed_or_reordered_and_each_bad_signature() {
    let p = quiet().await;
    let events = history(&p).await;
    assert_eq!(events.len(), 9, "3 agents, 3 problems, 3 edits");
    let checkpoint = audit::sign_checkpoint(&p.pipeline.pool, &signer())
        .await
        .expect("sign")
        .expect("something to sign");
    assert_eq!(checkpoint.tree_size, 9);
    assert_eq!(checkpoint.up_to_position, events[8].0);
    assert_eq!(
        audit::sign_checkpoint(&p.pipeline.pool, &signer())
            .await
            .expect("sign"),
        None,
        "nothing new, nothing signed"
    );
    let clean = audit::verify_log(&p.pipeline.pool, Some(signer().public_key()))
        .await
        .expect("verify");
    assert_eq!(clean.findings, vec![], "{clean:?}");
    assert_eq!((clean.events, clean.streams, clean.checkpoints), (9, 6, 1));
    assert_eq!(clean.signed_up_to, Some(events[8].0));

    // One byte of one stored problem event; one whole event (the first of a problem's two); two
    // events of other streams swapped in the global order.
    let problem_events: Vec<&(i64, Uuid, String)> = events
        .iter()
        .filter(|(_, _, stream)| events.iter().filter(|e| &e.2 == stream).count() == 2)
        .collect();
    assert_eq!(problem_events.len(), 6);
    let altered = problem_events[0];
    let removed = events
        .iter()
        .find(|e| e.2 != altered.2 && problem_events.contains(e))
        .expect("another problem");
    let agents: Vec<&(i64, Uuid, String)> = events
        .iter()
        .filter(|e| !problem_events.contains(e))
        .collect();
    let (a, b) = (agents[0], agents[2]);
    tamper(
        &p,
        "events",
        &[
            format!(
                "UPDATE events SET payload = replace(payload::text, 'pump number ', 'pump numbeR ')::jsonb WHERE event_id = '{}'",
                altered.1
            ),
            format!("DELETE FROM events WHERE event_id = '{}'", removed.1),
            format!("UPDATE events SET global_position = -1 WHERE global_position = {}", a.0),
            format!("UPDATE events SET global_position = {} WHERE global_position = {}", a.0, b.0),
            format!("UPDATE events SET global_position = {} WHERE global_position = -1", b.0),
        ],
    )
    .await;
    let report = audit::verify_log(&p.pipeline.pool, Some(signer().public_key()))
        .await
        .expect("verify");
    assert_eq!(
        named(&report.findings, "altered"),
        vec![altered.1],
        "{report:?}"
    );
    assert!(
        named(&report.findings, "removed").contains(&removed.1),
        "the deleted event is named by the signed leaves: {report:?}"
    );
    let mut swapped = vec![a.1, b.1];
    swapped.sort();
    assert_eq!(named(&report.findings, "reordered"), swapped, "{report:?}");
    // Nothing innocent is accused: the only other name is the event after the deleted one, whose
    // stream now has a gap.
    let after_gap = events
        .iter()
        .find(|e| e.2 == removed.2 && e.1 != removed.1)
        .expect("the removed event's successor");
    for f in &report.findings {
        let id = f.event_id.expect("each finding names an event");
        assert!(
            [altered.1, removed.1, a.1, b.1, after_gap.1].contains(&id),
            "{f:?}"
        );
    }
    assert!(named(&report.findings, "inserted").is_empty());

    // A forged checkpoint signature, and a checkpoint checked with another key.
    tamper(
        &p,
        "log_checkpoints",
        &["UPDATE log_checkpoints SET signature = set_byte(signature, 0, get_byte(signature, 0) # 1)".into()],
    )
    .await;
    let report = audit::verify_log(&p.pipeline.pool, None)
        .await
        .expect("verify");
    assert!(
        report.findings.iter().any(|f| f.kind == "bad_signature"),
        "{report:?}"
    );
    let other =
        LogSigner::from_base64("ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICA=").expect("seed");
    let report = audit::verify_log(&p.pipeline.pool, Some(other.public_key()))
        .await
        .expect("verify");
    assert!(report.findings.iter().any(|f| f.kind == "bad_signature"));
}

#[tokio::test]
async fn a_checkpoint_never_covers_a_position_an_open_transaction_can_still_take() {
    let p = quiet().await;
    let agent = fixtures::register(&p.pipeline.bus, "early_signer").await;

    // A slow writer appends (taking its transaction id and position) but does not commit yet.
    let (slow, slow_position) = fixtures::uncommitted_report(&p.pipeline.pool, agent).await;
    // Faster writers commit after it, with larger positions.
    let (_, outcome) = fixtures::report(&p.pipeline.bus, agent, 1)
        .await
        .expect("report");
    let Outcome::Executed { events, .. } = outcome else {
        panic!("executed")
    };
    assert!(events[0].global_position > slow_position);

    // Signing now must stop before the slow event: the committed fast one would otherwise be
    // signed and the slow one, committing later, would appear "inserted" inside the signed range.
    let first = audit::sign_checkpoint(&p.pipeline.pool, &signer())
        .await
        .expect("sign")
        .expect("the agent's event is final");
    assert!(first.up_to_position < slow_position, "{first:?}");
    assert_eq!(first.tree_size, 1);

    slow.commit().await.expect("commit late");
    let second = audit::sign_checkpoint(&p.pipeline.pool, &signer())
        .await
        .expect("sign")
        .expect("new events");
    assert_eq!(second.tree_size, 3);
    let report = audit::verify_log(&p.pipeline.pool, Some(signer().public_key()))
        .await
        .expect("verify");
    assert_eq!(report.findings, vec![], "{report:?}");
    assert_eq!(report.checkpoints, 2);
}

#[tokio::test]
async fn auditors_read_the_log_and_check_an_inclusion_proof_offline() {
    let p = quiet().await;
    let events = history(&p).await;
    let auditor = person(&p, "log_auditor", Role::Auditor).await;
    let human = person(&p, "log_human", Role::Human).await;
    let get = |who: &Person, path: &str| p.http.get(p.url(path)).bearer_auth(&who.access);

    let (status, _, _) = send(get(&human, "/audit/events")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = send(get(&auditor, "/audit/checkpoints/latest")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "none signed yet: {body}");
    let probe = events[3].1;
    let (status, _, body) = send(get(&auditor, &format!("/audit/proof/{probe}"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "not checkpointed yet: {body}");

    // Pages in global order, then the same log as NDJSON.
    let (status, _, page) = send(get(&auditor, "/audit/events?limit=4")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let first: Vec<i64> = page["data"]
        .as_array()
        .expect("page")
        .iter()
        .map(|e| e["globalPosition"].as_i64().expect("position"))
        .collect();
    assert!(
        first.len() == 4 && first.windows(2).all(|w| w[0] < w[1]),
        "{first:?}"
    );
    assert_eq!(page["meta"]["nextAfter"], first[3]);
    let (_, _, rest) = send(get(
        &auditor,
        &format!("/audit/events?after={}&limit=1000", first[3]),
    ))
    .await;
    let total = first.len() + rest["data"].as_array().expect("rest").len();
    let ndjson = get(&auditor, "/audit/events")
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .expect("stream");
    assert_eq!(ndjson.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = ndjson
        .text()
        .await
        .expect("body")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(
        lines.len(),
        total,
        "the whole log, people's events included"
    );
    assert_eq!(lines[0], page["data"][0]);
    let (status, _, _) = send(get(&auditor, "/audit/events?limit=0")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, stream) = send(get(
        &auditor,
        &format!("/audit/streams/Problem/{}", events[1].2),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{stream}");
    assert_eq!(stream["data"][0]["sequence"], 1);

    // Signed: the checkpoint, the key, a proof that checks offline and fails when anything in it
    // is changed.
    audit::sign_checkpoint(&p.pipeline.pool, &signer())
        .await
        .expect("sign")
        .expect("signed");
    let (_, _, latest) = send(get(&auditor, "/audit/checkpoints/latest")).await;
    let (_, _, keys) = send(get(&auditor, "/audit/public-keys")).await;
    assert_eq!(keys["data"][0]["keyId"], latest["data"]["keyId"]);
    assert_eq!(keys["data"][0]["algorithm"], "Ed25519");
    let public: [u8; 32] = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(keys["data"][0]["publicKey"].as_str().expect("key"))
            .expect("base64")
            .try_into()
            .expect("32 bytes")
    };
    assert_eq!(public, signer().public_key());
    let (status, _, body) = send(get(&auditor, &format!("/audit/proof/{probe}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let proof: audit::InclusionProof = serde_json::from_value(body["data"].clone()).expect("proof");
    assert_eq!(proof.checkpoint.root, latest["data"]["root"]);
    audit::verify_proof(&proof, &public).expect("the proof holds");
    let mut forged = proof.clone();
    let mut payload = forged.event.payload.to_value();
    payload["data"]["forged"] = Value::Bool(true);
    forged.event.payload = audit::StoredJson::from_value(&payload).expect("json");
    assert!(audit::verify_proof(&forged, &public).is_err());
    let mut moved = proof.clone();
    moved.event.global_position += 1;
    assert!(audit::verify_proof(&moved, &public).is_err());
    let mut resigned = proof;
    resigned.checkpoint.tree_size += 1;
    assert!(audit::verify_proof(&resigned, &public).is_err());
}

#[tokio::test]
async fn a_backup_restored_into_a_new_database_verifies_and_rebuilds_the_same_read_models() {
    let p = quiet().await;
    // The source cluster has "seen" a billion more transactions than the target will have: events
    // written after the restore must still sort after every restored one.
    sqlx::query("UPDATE log_epoch SET xid_offset = 1000000000")
        .execute(&p.pipeline.pool)
        .await
        .expect("offset");
    let events = history(&p).await;
    let ana = person(&p, "restored_ana", Role::Human).await;
    audit::sign_checkpoint(&p.pipeline.pool, &signer())
        .await
        .expect("sign")
        .expect("signed");
    let last = sqlx::query_scalar::<_, i64>("SELECT max(global_position) FROM events")
        .fetch_one(&p.pipeline.pool)
        .await
        .expect("max");
    // The source's read models, built from its log (this platform runs no projectors).
    for projection in betterworld::roles::projections() {
        betterworld::rebuild::rebuild(&p.pipeline.pool, projection.as_ref())
            .await
            .expect("source read model");
    }
    let dir = std::env::temp_dir().join(format!("bw-backup-{}", Uuid::new_v4().simple()));
    let manifest = betterworld::backup::backup(&p.pipeline.pool, &dir)
        .await
        .expect("backup");
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&p.pipeline.pool)
        .await
        .expect("count");
    assert!(events.len() < logged as usize, "the person's events too");
    assert_eq!(manifest.events, logged as u64);
    assert!(
        manifest
            .tables
            .iter()
            .any(|t| t.table == "person_keys" && t.rows == 1)
    );
    assert!(manifest.tables.iter().all(|t| !t.table.starts_with("rm_")));
    assert!(
        betterworld::backup::backup(&p.pipeline.pool, &dir)
            .await
            .is_err(),
        "never over a backup"
    );

    let target = sqlx::PgPool::connect(&support::migrated_database().await)
        .await
        .expect("target");
    let report = betterworld::backup::restore(&target, &dir, Some(signer().public_key()))
        .await
        .expect("restore");
    assert_eq!(report.log.findings, vec![], "{report:?}");
    assert_eq!(report.log.signed_up_to, Some(last));
    assert!(report.xid_offset > 0, "{report:?}");
    let rows = |pool: sqlx::PgPool, table: &'static str| async move {
        sqlx::query_scalar::<_, Value>(&format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) - 'position' ORDER BY to_jsonb(t)::text), '[]') FROM {table} t"
        ))
        .fetch_one(&pool)
        .await
        .expect("rows")
    };
    for table in ["rm_problems", "rm_agents", "rm_humans"] {
        assert_eq!(
            rows(target.clone(), table).await,
            rows(p.pipeline.pool.clone(), table).await,
            "{table}"
        );
    }
    assert_eq!(
        rows(target.clone(), "rm_humans")
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let _ = ana;

    // Written after the restore: sorts after everything restored, is final, and is signed next.
    let bus = bw_commands::CommandBus::new(target.clone());
    let newcomer = fixtures::register(&bus, "after_restore").await;
    let position: i64 =
        sqlx::query_scalar("SELECT global_position FROM events WHERE aggregate_id = $1")
            .bind(newcomer.to_string())
            .fetch_one(&target)
            .await
            .expect("position");
    assert!(position > last, "{position} after {last}");
    let next = audit::sign_checkpoint(&target, &signer())
        .await
        .expect("sign")
        .expect("the new event is final");
    assert_eq!(next.tree_size, manifest.events as i64 + 1);
    let again = audit::verify_log(&target, Some(signer().public_key()))
        .await
        .expect("verify");
    assert_eq!(again.findings, vec![], "{again:?}");

    // A damaged backup is refused before anything is loaded.
    let events_file = dir.join("events.copy");
    let mut bytes = std::fs::read(&events_file).expect("read");
    bytes[10] ^= 1;
    std::fs::write(&events_file, bytes).expect("write");
    let fresh = sqlx::PgPool::connect(&support::migrated_database().await)
        .await
        .expect("fresh");
    let refused = betterworld::backup::restore(&fresh, &dir, None)
        .await
        .expect_err("damaged");
    assert!(refused.to_string().contains("SHA-256"), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checkpoints read the root from the stored subtrees (`log_nodes`), which grow with each one;
/// with none stored (an upgraded or restored log) the next checkpoint grows them from every leaf,
/// and proofs fall back to the leaves until then. Every root still matches one recomputed from
/// every leaf (`events verify`), and every proof checks offline.
#[tokio::test]
async fn checkpoints_and_proofs_from_stored_subtrees_match_the_leaves_across_growth_and_loss() {
    let p = quiet().await;
    let pool = &p.pipeline.pool;
    let mut ids = Vec::new();
    let key = signer().public_key();
    for round in 0..4 {
        ids.extend(history_round(&p, round).await);
        audit::sign_checkpoint(pool, &signer())
            .await
            .expect("sign")
            .expect("new events");
        if round == 1 {
            // The stored subtrees are lost (a restore does not carry them).
            sqlx::query("DELETE FROM log_nodes")
                .execute(pool)
                .await
                .expect("delete");
            for id in &ids {
                let audit::ProofLookup::Found(proof) =
                    audit::proof(pool, *id).await.expect("proof")
                else {
                    panic!("{id} is checkpointed")
                };
                audit::verify_proof(&proof, &key).expect("a proof from the leaves checks");
            }
        }
    }
    let report = audit::verify_log(pool, Some(key)).await.expect("verify");
    assert_eq!(report.findings, vec![], "{report:?}");
    assert_eq!(report.checkpoints, 4);
    let leaves: i64 = sqlx::query_scalar("SELECT count(*) FROM log_leaves")
        .fetch_one(pool)
        .await
        .expect("leaves");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM log_nodes WHERE level = 0")
        .fetch_one(pool)
        .await
        .expect("nodes");
    assert_eq!(stored, leaves, "every leaf is stored again");
    for id in &ids {
        let audit::ProofLookup::Found(proof) = audit::proof(pool, *id).await.expect("proof") else {
            panic!("{id} is checkpointed")
        };
        audit::verify_proof(&proof, &key).expect("a proof from stored subtrees checks");
    }
}

/// One agent, a report and an edit: the ids of their events.
async fn history_round(p: &Platform, round: u32) -> Vec<Uuid> {
    let bus = &p.pipeline.bus;
    let agent = fixtures::register(bus, &format!("grown_{round}")).await;
    let (problem, _) = fixtures::report(bus, agent, round as usize)
        .await
        .expect("report");
    fixtures::edit(bus, agent, problem, bw_domain::taxonomy::Severity::Critical)
        .await
        .expect("edit");
    sqlx::query_scalar(
        "SELECT e.event_id FROM events e WHERE e.global_position > coalesce((SELECT max(global_position) FROM log_leaves), 0) ORDER BY e.global_position",
    )
    .fetch_all(&p.pipeline.pool)
    .await
    .expect("events")
}
