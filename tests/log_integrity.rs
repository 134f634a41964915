//! `events verify` is never wrong (issue 14, ADR 0007): hashes are computed over exactly what a
//! later reader recomputes, on the data real traffic produces and on random payloads through the real
//! store; a log hashed in the old form is migrated once, recorded, and refused until then.

mod support;

use bw_eventlog::{
    audit::{self, LogSigner, ProofLookup, rehash},
    canonical::{self, arbitrary},
    store,
};
use proptest::{
    strategy::{Strategy, ValueTree},
    test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Platform, send, until_logged};
use uuid::Uuid;

/// A fixed test key (base64 of 32 bytes).
const SEED: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

fn signer() -> LogSigner {
    LogSigner::from_base64(SEED).expect("seed")
}

/// The problems of the acceptance run: distinct water, health and climate reports.
fn report(n: usize) -> Value {
    let (domain, title, description) = [
        (
            "clean_water_sanitation",
            "Contaminated well",
            "The only well serving {h} households tested positive for E. coli twice this month; families walk 4 km to the river instead.",
        ),
        (
            "healthcare_improvement",
            "Clinic without a nurse",
            "The rural clinic has had no nurse for {h} days; mothers travel to the district town for vaccinations.",
        ),
        (
            "environmental_protection",
            "Flooded terraces",
            "Heavy rain washed away {h} metres of rice terraces; the drainage channels are blocked with silt.",
        ),
        (
            "food_security",
            "Empty food bank shelves",
            "The food bank served {h} families last week and ran out of rice and beans by Wednesday.",
        ),
        (
            "education_access",
            "School roof collapsed",
            "A classroom roof fell in after storms; {h} pupils now study under a tarpaulin.",
        ),
    ][n % 5];
    json!({
        "title": format!("{title} in district {n}"),
        "description": description.replace("{h}", &(40 + 7 * n).to_string()),
        "domain": domain,
        "severity": "high",
    })
}

/// The issue's acceptance run, over HTTP with the production classifier and duplicate check: an
/// agent reports 80 problems (20 of them again, near duplicates), every verdict arrives, and the log
/// — verdicts with their floats included — verifies with no finding; a proof for a verdict checks
/// offline with `betterworld events verify-proof`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrail_verdicts_of_real_traffic_verify_and_prove_offline() {
    let p = support::spawn_with_semantic_guardrail().await;
    let (status, _, body) = send(p.http.post(p.url("/auth/agents/register")).json(&json!({
        "username": "verified_reporter", "framework": "custom",
        "specializations": ["clean_water_sanitation", "healthcare_improvement", "food_security"]
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["data"]["apiKey"].as_str().expect("key").to_owned();
    let mut problems = Vec::new();
    for n in (0..60).chain(0..20) {
        let (status, _, body) = send(
            p.http
                .post(p.url("/problems"))
                .bearer_auth(&key)
                .json(&report(n)),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        problems.push(body["data"]["problemId"].as_str().expect("id").to_owned());
    }
    let mut verdict_event = None;
    for id in &problems {
        let (position, _) = until_logged(&p.pipeline.pool, "GuardrailDecided", id).await;
        verdict_event = Some(position);
    }
    let decisions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT payload->'data'->>'decision', count(*) FROM events
         WHERE event_type = 'GuardrailDecided' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&p.pipeline.pool)
    .await
    .expect("decisions");
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'GuardrailDecided' AND payload->'data' ? 'duplicateOf'",
    )
    .fetch_one(&p.pipeline.pool)
    .await
    .expect("duplicates");
    // The class of value that drifted before ADR 0007: floats printed with 16–17 digits.
    let long_floats: i64 = sqlx::query_scalar(
        r"SELECT count(*) FROM events WHERE event_type = 'GuardrailDecided' AND payload::text ~ '\d\.\d{15,}'",
    )
    .fetch_one(&p.pipeline.pool)
    .await
    .expect("floats");
    assert!(
        duplicates >= 1 && long_floats >= 40,
        "verdicts {decisions:?}, {duplicates} duplicates, {long_floats} with long floats"
    );

    let checkpoint = audit::sign_checkpoint(&p.pipeline.pool, &signer())
        .await
        .expect("sign")
        .expect("something to sign");
    let report = audit::verify_log(&p.pipeline.pool, Some(signer().public_key()))
        .await
        .expect("verify");
    assert_eq!(report.findings, vec![], "{decisions:?}");
    assert!(report.events >= 161, "{report:?}");
    assert_eq!(report.signed_up_to, Some(checkpoint.up_to_position));

    // A proof for a verdict, as the API serves it, checked by the binary offline.
    let verdict_id: Uuid =
        sqlx::query_scalar("SELECT event_id FROM events WHERE global_position = $1")
            .bind(verdict_event.expect("a verdict"))
            .fetch_one(&p.pipeline.pool)
            .await
            .expect("verdict id");
    let ProofLookup::Found(proof) = audit::proof(&p.pipeline.pool, verdict_id)
        .await
        .expect("proof")
    else {
        panic!("the verdict is checkpointed");
    };
    assert_eq!(proof.event.event_type, "GuardrailDecided");
    let file = std::env::temp_dir().join(format!("bw-proof-{verdict_id}.json"));
    std::fs::write(
        &file,
        serde_json::to_vec(&json!({ "data": &*proof })).expect("json"),
    )
    .expect("write");
    let public_key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(signer().public_key())
    };
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_betterworld"))
        .args(["events", "verify-proof", "--proof"])
        .arg(&file)
        .args(["--public-key", &public_key])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("run");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: Value =
        serde_json::from_slice(output.stdout.split(|b| *b == b'\n').next().expect("a line"))
            .expect("json");
    assert_eq!(line["valid"], true, "{line}");
    assert_eq!(line["eventId"], verdict_id.to_string());
}

/// Random payloads and metadata — floats of every magnitude and precision, integers past 2^53,
/// unicode of every kind, nesting 120 deep — appended through the real store into PostgreSQL, chained
/// in streams of one to five events, and verified: no finding, whatever `jsonb` made of the text.
#[tokio::test]
async fn random_payloads_appended_through_the_store_all_verify() {
    const EVENTS: usize = 3_000;
    let pipeline = support::Pipeline::new().await;
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[14; 32]),
    );
    let strategy = arbitrary::any_value();
    // Deep nesting too: 120 levels of arrays and of objects (serde_json reads up to 128).
    let mut deep = vec![
        (0..120).fold(json!(1e-7), |inner, _| json!([inner, -0.0])),
        (0..120).fold(
            json!("\u{2028}😀"),
            |inner, n| json!({ format!("k{n}é"): inner, "z": 1.5 }),
        ),
    ];
    let mut value = || {
        deep.pop()
            .unwrap_or_else(|| strategy.new_tree(&mut runner).expect("a value").current())
    };
    let now = canonical::to_micros(chrono::Utc::now());
    let mut events = Vec::with_capacity(EVENTS);
    let mut written = std::collections::HashMap::new();
    while events.len() < EVENTS {
        let stream = Uuid::now_v7().to_string();
        let length = 1 + events.len() % 5;
        let mut previous = canonical::GENESIS;
        for sequence in 1..=length {
            let sealed = store::Draft {
                event_id: Uuid::now_v7(),
                aggregate_type: "PropertyTest".into(),
                aggregate_id: stream.clone(),
                sequence: i64::try_from(sequence).expect("small"),
                event_type: "Arbitrary".into(),
                event_version: "1".into(),
                payload: json!({ "type": "Arbitrary", "data": value() }),
                metadata: json!({ "actor": "system", "extra": value() }),
                recorded_at: now,
            }
            .seal(&previous)
            .expect("seal");
            previous = sealed.hash;
            written.insert(sealed.event.event_id, sealed.payload_json.clone());
            events.push(sealed);
        }
    }
    for batch in events.chunks(250) {
        let mut tx = pipeline.pool.begin().await.expect("begin");
        store::append(&mut tx, "PropertyTest", batch)
            .await
            .expect("append");
        tx.commit().await.expect("commit");
    }
    let report = audit::verify_log(&pipeline.pool, None)
        .await
        .expect("verify");
    assert_eq!(report.findings, vec![]);
    assert_eq!(report.events, u64::try_from(events.len()).expect("count"));
    // The test means something only if jsonb gave back other text than was written.
    let stored: Vec<(Uuid, String)> = sqlx::query_as("SELECT event_id, payload::text FROM events")
        .fetch_all(&pipeline.pool)
        .await
        .expect("stored");
    let rewritten = stored
        .iter()
        .filter(|(id, text)| written.get(id) != Some(text))
        .count();
    assert!(
        rewritten > EVENTS / 2,
        "{rewritten} of {EVENTS} texts changed in jsonb"
    );
}

/// Turns the log into one written before ADR 0007: every hash re-derived in the v1 form from the
/// stored texts, `log_format` set back, and a checkpoint signed over the v1 hashes.
async fn as_written_before_adr_0007(p: &Platform) {
    let events: Vec<audit::AuditEvent> = audit::page(&p.pipeline.pool, 0, 10_000)
        .await
        .expect("events");
    let mut streams: std::collections::BTreeMap<(String, String), Vec<&audit::AuditEvent>> =
        Default::default();
    for e in &events {
        streams
            .entry((e.aggregate_type.clone(), e.aggregate_id.clone()))
            .or_default()
            .push(e);
    }
    let mut tx = p.pipeline.pool.begin().await.expect("begin");
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete")
        .execute(&mut *tx)
        .await
        .expect("disable");
    for stream in streams.values_mut() {
        stream.sort_by_key(|e| e.sequence);
        let mut previous = canonical::GENESIS;
        for e in stream.iter() {
            let hash = canonical::v1::chain_hash(&previous, &e.for_hash()).expect("json");
            sqlx::query("UPDATE events SET hash = $1 WHERE event_id = $2")
                .bind(hash.as_slice())
                .bind(e.event_id)
                .execute(&mut *tx)
                .await
                .expect("v1 hash");
            previous = hash;
        }
    }
    sqlx::query("ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete")
        .execute(&mut *tx)
        .await
        .expect("enable");
    sqlx::query("UPDATE log_format SET canonical_form = 'bw.event.v1'")
        .execute(&mut *tx)
        .await
        .expect("v1");
    tx.commit().await.expect("commit");
    audit::sign_checkpoint(&p.pipeline.pool, &signer())
        .await
        .expect("sign")
        .expect("something to sign");
}

/// Agents, problems, edits, and an event carrying floats, through the command bus and the store.
async fn history(p: &Platform) {
    let bus = &p.pipeline.bus;
    for n in 0..3 {
        let agent = support::fixtures::register(bus, &format!("rehashed_{n}")).await;
        let (problem, _) = support::fixtures::report(bus, agent, n)
            .await
            .expect("report");
        support::fixtures::edit(bus, agent, problem, bw_domain::taxonomy::Severity::Critical)
            .await
            .expect("edit");
    }
    let floats = store::Draft {
        event_id: Uuid::now_v7(),
        aggregate_type: "PropertyTest".into(),
        aggregate_id: "floats".into(),
        sequence: 1,
        event_type: "Scores".into(),
        event_version: "1".into(),
        payload: json!({ "type": "Scores", "data": { "alignment": 0.123_714_480_569_138_03, "approve": 0.7, "ratio": 3.0 } }),
        metadata: json!({ "actor": "system" }),
        recorded_at: canonical::to_micros(chrono::Utc::now()),
    }
    .seal(&canonical::GENESIS)
    .expect("seal");
    let mut tx = p.pipeline.pool.begin().await.expect("begin");
    store::append(&mut tx, "PropertyTest", &[floats])
        .await
        .expect("append");
    tx.commit().await.expect("commit");
}

fn request(reason: &str, accept_findings: bool) -> rehash::RehashRequest {
    rehash::RehashRequest {
        reason: reason.into(),
        operator: "ops-on-call".into(),
        accept_findings,
        pinned: Some(signer().public_key()),
    }
}

/// The migration path for a log written before ADR 0007: refused by `events verify` until rehashed;
/// the rehash checks it, records `LogRehashed`, re-derives every hash, keeps the old checkpoint
/// verifiable beside the new one, and happens once.
#[tokio::test]
async fn a_log_hashed_in_the_old_form_is_refused_then_rehashed_once_and_recorded() {
    let p = Platform::spawn_configured(std::time::Duration::from_secs(5), false).await;
    history(&p).await;
    as_written_before_adr_0007(&p).await;
    let refused = audit::verify_log(&p.pipeline.pool, None).await;
    assert!(
        matches!(&refused, Err(bw_eventlog::LogError::LogFormat(m)) if m.contains("events rehash")),
        "{refused:?}"
    );

    let rehash::Rehash::Done(done) = rehash::rehash(&p.pipeline.pool, request("ADR 0007", false))
        .await
        .expect("rehash")
    else {
        panic!("a clean log is rehashed");
    };
    assert_eq!(done.checked.findings, vec![]);
    assert_eq!(
        (done.from_form.as_str(), done.to_form.as_str()),
        ("bw.event.v1", "bw.event.v2")
    );
    assert_eq!(done.checked.events, 10);
    assert!(done.rehashed >= 10, "every v1 hash differs: {done:?}");
    assert_eq!(done.superseded_checkpoints, 1);
    let (_, recorded) = until_logged(&p.pipeline.pool, "LogRehashed", "log").await;
    assert_eq!(recorded["data"]["reason"], "ADR 0007");
    assert_eq!(recorded["data"]["operator"], "ops-on-call");
    assert_eq!(recorded["data"]["events"], 10);
    assert_eq!(recorded["data"]["lastSuperseded"]["treeSize"], 10);

    audit::sign_checkpoint(&p.pipeline.pool, &signer())
        .await
        .expect("sign")
        .expect("the rehashed log and its record");
    support::fixtures::register(&p.pipeline.bus, "after_the_rehash").await;
    audit::sign_checkpoint(&p.pipeline.pool, &signer())
        .await
        .expect("sign");
    let report = audit::verify_log(&p.pipeline.pool, Some(signer().public_key()))
        .await
        .expect("verify");
    assert_eq!(report.findings, vec![]);
    assert_eq!(
        (
            report.events,
            report.checkpoints,
            report.superseded_checkpoints
        ),
        (12, 2, 1)
    );

    let again = rehash::rehash(&p.pipeline.pool, request("again", false)).await;
    assert!(
        matches!(&again, Err(bw_eventlog::LogError::LogFormat(m)) if m.contains("already")),
        "{again:?}"
    );
}

/// An event altered before the rehash is named by its check and nothing changes; rehashing anyway
/// takes `--accept-findings`, and the accepted finding is recorded in the log for good.
#[tokio::test]
async fn the_rehash_names_an_event_altered_before_it_and_records_it_only_when_accepted() {
    let p = Platform::spawn_configured(std::time::Duration::from_secs(5), false).await;
    history(&p).await;
    as_written_before_adr_0007(&p).await;
    let altered: Uuid = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE event_type = 'ProblemReported' ORDER BY global_position LIMIT 1",
    )
    .fetch_one(&p.pipeline.pool)
    .await
    .expect("a report");
    let mut tx = p.pipeline.pool.begin().await.expect("begin");
    for statement in [
        "ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete".to_owned(),
        format!(
            "UPDATE events SET payload = replace(payload::text, 'pump', 'pomp')::jsonb WHERE event_id = '{altered}'"
        ),
        "ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete".to_owned(),
    ] {
        sqlx::query(&statement)
            .execute(&mut *tx)
            .await
            .expect("tamper");
    }
    tx.commit().await.expect("commit");

    let rehash::Rehash::Refused(checked) =
        rehash::rehash(&p.pipeline.pool, request("ADR 0007", false))
            .await
            .expect("rehash")
    else {
        panic!("an altered log is not rehashed silently");
    };
    let named: Vec<(&str, Option<Uuid>)> = checked
        .findings
        .iter()
        .map(|f| (f.kind.as_str(), f.event_id))
        .collect();
    assert_eq!(named, vec![("altered", Some(altered))], "{checked:?}");
    assert_eq!(
        audit::log_form(&p.pipeline.pool).await.expect("form"),
        "bw.event.v1",
        "nothing changed"
    );

    let rehash::Rehash::Done(done) = rehash::rehash(
        &p.pipeline.pool,
        request(
            "ADR 0007; the pump edit was an operator's fix (ticket 42)",
            true,
        ),
    )
    .await
    .expect("rehash") else {
        panic!("accepted");
    };
    assert_eq!(done.checked.findings.len(), 1);
    let (_, recorded) = until_logged(&p.pipeline.pool, "LogRehashed", "log").await;
    assert_eq!(recorded["data"]["acceptedFindings"][0]["kind"], "altered");
    assert_eq!(
        recorded["data"]["acceptedFindings"][0]["eventId"],
        altered.to_string()
    );
    let report = audit::verify_log(&p.pipeline.pool, Some(signer().public_key()))
        .await
        .expect("verify");
    assert_eq!(
        report.findings,
        vec![],
        "the rehashed log verifies; the record says what was accepted"
    );
}
