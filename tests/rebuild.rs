//! Rebuilding a read model while the platform is used, and checking a read model against a fresh
//! build (`projections rebuild`, `projections verify`; docs/runbooks/rebuild-projection.md).

mod support;

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use bw_projections::{
    models::problems::ProblemFeed,
    rebuild::{rebuild, verify},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Platform, send};

async fn index_names(p: &Platform, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1 ORDER BY indexname",
    )
    .bind(table)
    .fetch_all(&p.pipeline.pool)
    .await
    .expect("indexes")
}

#[tokio::test]
async fn the_problem_feed_is_rebuilt_under_reads_and_writes_without_a_failed_read_or_a_lost_write()
{
    let p = Arc::new(Platform::spawn().await);
    let (status, _, body) = send(p.http.post(p.url("/auth/agents/register")).json(&json!({
        "username": "rebuild_writer", "framework": "custom", "specializations": ["food_security"]
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["data"]["apiKey"].as_str().expect("key").to_owned();
    let indexes_before = index_names(&p, "rm_problems").await;

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let last_position = Arc::new(AtomicU64::new(0));
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0u64);
    let writer = {
        let (p, key, stop, written, last_position) = (
            p.clone(),
            key.clone(),
            stop.clone(),
            written.clone(),
            last_position.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let (status, headers, body) = send(p.http.post(p.url("/problems")).bearer_auth(&key).json(&json!({
                    "title": format!("Food bank shelves empty in ward {n}"),
                    "description": "The neighbourhood food bank runs out mid-week; families are turned away every Thursday and Friday.",
                    "domain": "food_security", "severity": "high"
                })))
                .await;
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                let at: u64 = headers["bw-position"]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("position");
                last_position.fetch_max(at, Ordering::SeqCst);
                let total = written.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = progress_tx.send(total);
            }
        })
    };
    let failed_reads = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (p, key, stop, failed_reads, reads) = (
            p.clone(),
            key.clone(),
            stop.clone(),
            failed_reads.clone(),
            reads.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let (status, _, body) = send(
                    p.http
                        .get(p.url("/problems?mine=true&limit=100"))
                        .bearer_auth(&key),
                )
                .await;
                reads.fetch_add(1, Ordering::SeqCst);
                if status != StatusCode::OK || body["data"].as_array().is_none() {
                    failed_reads.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    progress
        .wait_for(|n| *n >= 20)
        .await
        .expect("writes before");
    let mut batches = 0u64;
    let report = rebuild(&p.pipeline.pool, &ProblemFeed, &mut |_, _| batches += 1)
        .await
        .expect("rebuilt");
    let at_swap = written.load(Ordering::SeqCst);
    progress
        .wait_for(|n| *n >= at_swap + 20)
        .await
        .expect("writes after");
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("writer");
    reader.await.expect("reader");

    assert_eq!(failed_reads.load(Ordering::SeqCst), 0, "no read failed");
    assert!(reads.load(Ordering::SeqCst) > 0);
    assert!(report.events >= 20 && batches >= 1, "{report:?}");
    // Every write is in the read model once the projector has caught up with the last one.
    let last = last_position.load(Ordering::SeqCst);
    let (status, _, page) = send(
        p.http
            .get(p.url("/problems?mine=true&limit=100"))
            .bearer_auth(&key)
            .header("bw-min-position", last),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_problems")
        .fetch_one(&p.pipeline.pool)
        .await
        .expect("count");
    let reported: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ProblemReported'")
            .fetch_one(&p.pipeline.pool)
            .await
            .expect("count");
    assert_eq!(rows, reported, "no write lost");
    assert_eq!(
        u64::try_from(reported).expect("count"),
        written.load(Ordering::SeqCst)
    );
    assert_eq!(
        index_names(&p, "rm_problems").await,
        indexes_before,
        "the migrations' index names"
    );

    // And the rebuilt, live read model equals a fresh build at its checkpoint.
    let check = verify(&p.pipeline.pool, &ProblemFeed, &mut |_, _| {})
        .await
        .expect("verified");
    assert_eq!(check.differences, vec![], "{check:?}");
    assert_eq!(check.rows_compared, u64::try_from(rows).expect("rows"));
}

#[tokio::test]
async fn projections_verify_reports_each_row_a_read_model_gets_wrong() {
    let p = Platform::spawn().await;
    let bus = &p.pipeline.bus;
    let agent = support::fixtures::register(bus, "verified_feed").await;
    let mut last = 0;
    for n in 0..3 {
        let (_, outcome) = support::fixtures::report(bus, agent, n)
            .await
            .expect("report");
        if let bw_commands::Outcome::Executed { events, .. } = outcome {
            last = events[0].global_position;
        }
    }
    assert!(
        bw_projections::status::wait_for(
            &p.pipeline.pool,
            &ProblemFeed,
            last,
            std::time::Duration::from_secs(10)
        )
        .await
        .expect("wait"),
        "the feed caught up"
    );
    let clean = verify(&p.pipeline.pool, &ProblemFeed, &mut |_, _| {})
        .await
        .expect("verified");
    assert_eq!(clean.differences, vec![], "{clean:?}");
    assert_eq!(clean.rows_compared, 3);

    // A row edited behind the projection's back, and one deleted.
    sqlx::query("UPDATE rm_problems SET severity = 'low' WHERE title LIKE '%number 1'")
        .execute(&p.pipeline.pool)
        .await
        .expect("tamper");
    sqlx::query("DELETE FROM rm_problems WHERE title LIKE '%number 2'")
        .execute(&p.pipeline.pool)
        .await
        .expect("tamper");
    let report = verify(&p.pipeline.pool, &ProblemFeed, &mut |_, _| {})
        .await
        .expect("verified");
    let side = |side: &str| -> Vec<String> {
        let mut titles: Vec<String> = report
            .differences
            .iter()
            .filter(|d| d.side == side)
            .map(|d| d.row["title"].as_str().expect("title").to_owned())
            .collect();
        titles.sort();
        titles
    };
    assert_eq!(
        side("live_only"),
        vec!["Broken water pump number 1"],
        "{report:?}"
    );
    assert_eq!(
        side("rebuilt_only"),
        vec!["Broken water pump number 1", "Broken water pump number 2"],
        "{report:?}"
    );
}

#[tokio::test]
async fn a_replay_to_a_past_position_reproduces_the_read_model_as_it_was_then() {
    let p = Platform::spawn().await;
    let bus = &p.pipeline.bus;
    let agent = support::fixtures::register(bus, "replayed_feed").await;
    let mut ids = Vec::new();
    let mut positions = Vec::new();
    for n in 0..3 {
        let (id, outcome) = support::fixtures::report(bus, agent, n)
            .await
            .expect("report");
        if let bw_commands::Outcome::Executed { events, .. } = outcome {
            positions.push(events[0].global_position);
        }
        ids.push(id);
    }
    support::fixtures::edit(bus, agent, ids[0], bw_domain::taxonomy::Severity::Critical)
        .await
        .expect("edit");
    let state = |schema: &'static str| {
        let pool = p.pipeline.pool.clone();
        async move {
            sqlx::query_as::<_, (uuid::Uuid, String)>(&format!(
                "SELECT problem_id, severity FROM {schema}.rm_problems ORDER BY problem_id"
            ))
            .fetch_all(&pool)
            .await
            .expect("rows")
        }
    };
    // As it was after the second report: two problems, the first still `high`.
    let applied = bw_projections::rebuild::replay_into(
        &p.pipeline.pool,
        &ProblemFeed,
        "as_of_second",
        positions[1],
        &mut |_, _| {},
    )
    .await
    .expect("replayed");
    assert_eq!(applied, 2);
    assert_eq!(
        state("as_of_second").await,
        vec![(ids[0], "high".to_owned()), (ids[1], "high".to_owned())]
    );
    // To the end: the edit is there too, as in the live read model once it caught up.
    let end: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&p.pipeline.pool)
        .await
        .expect("max");
    bw_projections::rebuild::replay_into(
        &p.pipeline.pool,
        &ProblemFeed,
        "as_of_end",
        end,
        &mut |_, _| {},
    )
    .await
    .expect("replayed");
    let at_end = state("as_of_end").await;
    assert_eq!(at_end.len(), 3);
    assert_eq!(at_end[0], (ids[0], "critical".to_owned()));
    assert!(
        bw_projections::rebuild::replay_into(
            &p.pipeline.pool,
            &ProblemFeed,
            "public",
            end,
            &mut |_, _| {}
        )
        .await
        .is_err(),
        "never into the live schema"
    );
}

/// Appends a `ProblemReported` exactly as the release before `details.language` wrote it
/// (version 1, no language), with a valid hash chain; returns the problem's id.
async fn report_as_v1(p: &Platform, agent: uuid::Uuid, n: usize) -> uuid::Uuid {
    use bw_domain::problem::{Problem, ProblemEvent};
    use bw_eventlog::{canonical, store};
    let id = uuid::Uuid::now_v7();
    let event = ProblemEvent::ProblemReported {
        problem_id: id,
        reported_by: agent,
        details: Box::new(support::fixtures::details(n)),
        status: bw_domain::taxonomy::ProblemStatus::Active,
        guardrail_status: bw_domain::taxonomy::GuardrailStatus::Pending,
        reported_at: chrono::Utc::now(),
    };
    let mut prepared = store::prepare::<Problem>(
        &id.to_string(),
        0,
        canonical::GENESIS,
        &[event],
        &support::fixtures::ctx(bw_domain::meta::Actor::Agent(agent)).metadata(),
        chrono::Utc::now(),
    )
    .expect("prepare");
    let mut old = prepared.remove(0).event;
    old.event_version = "1".into();
    old.payload["data"]["details"]
        .as_object_mut()
        .expect("details")
        .remove("language");
    prepared.insert(0, old.seal(&canonical::GENESIS).expect("seal"));
    let mut tx = p.pipeline.pool.begin().await.expect("begin");
    store::append(&mut tx, "Problem", &prepared)
        .await
        .expect("append");
    tx.commit().await.expect("commit");
    id
}

#[tokio::test]
async fn a_log_of_v1_problem_reports_rebuilds_the_same_feed_plus_the_language() {
    let p = Platform::spawn_configured(std::time::Duration::from_secs(5), false).await;
    let bus = &p.pipeline.bus;
    let agent = support::fixtures::register(bus, "upcast_author").await;
    let old = report_as_v1(&p, agent, 7).await;
    let (current, _) = support::fixtures::report(bus, agent, 7)
        .await
        .expect("report v2");
    let stored: (String, Value) = sqlx::query_as(
        "SELECT event_version, payload FROM events WHERE aggregate_id = $1 AND sequence = 1",
    )
    .bind(old.to_string())
    .fetch_one(&p.pipeline.pool)
    .await
    .expect("stored");
    assert_eq!(stored.0, "1");
    assert!(
        stored.1["data"]["details"].get("language").is_none(),
        "stored as v1 wrote it"
    );

    // The aggregate loads through the upcaster: the v1 problem can be edited.
    support::fixtures::edit(bus, agent, old, bw_domain::taxonomy::Severity::Critical)
        .await
        .expect("a v1 problem loads and takes an edit");
    support::fixtures::edit(bus, agent, current, bw_domain::taxonomy::Severity::Critical)
        .await
        .expect("edit");

    rebuild(&p.pipeline.pool, &ProblemFeed, &mut |_, _| {})
        .await
        .expect("rebuilt");
    let row = |id: uuid::Uuid| {
        let pool = p.pipeline.pool.clone();
        async move {
            sqlx::query_scalar::<_, Value>(
                "SELECT to_jsonb(r) - 'problem_id' - 'position' - 'reported_at' - 'updated_at' FROM rm_problems r WHERE problem_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("row")
        }
    };
    let (old_row, current_row) = (row(old).await, row(current).await);
    assert_eq!(old_row["language"], "en", "{old_row}");
    assert_eq!(old_row["severity"], "critical");
    assert_eq!(
        old_row, current_row,
        "the same read model as a current report, language included"
    );

    // The log with its v1 event still verifies (it was never rewritten).
    let signer =
        bw_eventlog::audit::LogSigner::from_base64("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=")
            .expect("seed");
    bw_eventlog::audit::sign_checkpoint(&p.pipeline.pool, &signer)
        .await
        .expect("sign");
    let report = bw_eventlog::audit::verify_log(&p.pipeline.pool, Some(signer.public_key()))
        .await
        .expect("verify");
    assert_eq!(report.findings, vec![], "{report:?}");
}

#[tokio::test]
async fn admins_list_projections_and_rebuild_one_over_http() {
    let p = Platform::spawn().await;
    let admin =
        support::people::person(&p, "projection_admin", bw_domain::taxonomy::Role::Admin).await;
    let agent = support::fixtures::register(&p.pipeline.bus, "rebuilt_over_http").await;
    support::fixtures::report(&p.pipeline.bus, agent, 1)
        .await
        .expect("report");
    let (status, _, list) = send(
        p.http
            .get(p.url("/admin/projections"))
            .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let feed = list["data"]
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["name"] == "problem_feed")
        .expect("the feed")
        .clone();
    assert_eq!(feed["codeVersion"], 2);
    assert_eq!(feed["rebuildable"], true);
    let (status, _, rebuilt) = send(
        p.http
            .post(p.url("/admin/projections/problem_feed/rebuild"))
            .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rebuilt}");
    assert_eq!(rebuilt["data"]["projection"], "problem_feed");
    assert!(
        rebuilt["data"]["events"].as_u64().expect("events") >= 1,
        "{rebuilt}"
    );
    let (status, _, _) = send(
        p.http
            .post(p.url("/admin/projections/rewards/rebuild"))
            .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a saga is not rebuilt");
}

/// The events of `types` in the log, in global order, as a projector receives them.
async fn logged(pool: &sqlx::PgPool, types: &[&str]) -> Vec<bw_eventlog::envelope::EventEnvelope> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM events WHERE aggregate_type = ANY($1) ORDER BY global_position",
        bw_eventlog::envelope::COLUMNS
    ))
    .bind(types)
    .fetch_all(pool)
    .await
    .expect("events");
    rows.iter()
        .map(|row| bw_eventlog::envelope::EventEnvelope::from_row(row).expect("envelope"))
        .collect()
}

/// A connection writing to a fresh copy of `rm_problems` in `schema`.
async fn shadow(pool: &sqlx::PgPool, schema: &str) -> sqlx::PgConnection {
    let mut conn = pool.acquire().await.expect("connection").detach();
    for sql in [
        format!("CREATE SCHEMA {schema}"),
        format!("CREATE TABLE {schema}.rm_problems (LIKE public.rm_problems INCLUDING ALL)"),
        format!("SET search_path TO {schema}, public"),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.expect(&sql);
    }
    conn
}

#[tokio::test]
async fn a_batch_applied_at_once_leaves_the_rows_that_applying_its_events_one_by_one_leaves() {
    use bw_domain::taxonomy::Severity;
    use bw_projections::runtime::{Projection, apply_events};
    use support::fixtures::{edit, register, report};

    // Given a log of reports with edits between them (inserts in runs, updates in between).
    let pipeline = support::Pipeline::new().await;
    let agent = register(&pipeline.bus, "bulk_reporter").await;
    let mut problems = Vec::new();
    for n in 0..7 {
        problems.push(report(&pipeline.bus, agent, n).await.expect("report").0);
        if n % 3 == 1 {
            edit(&pipeline.bus, agent, problems[n], Severity::Low)
                .await
                .expect("edit");
        }
    }
    let events = logged(&pipeline.pool, ProblemFeed.aggregate_types()).await;
    assert!(
        events.iter().any(|e| e.event_type == "ProblemEdited") && events.len() >= 9,
        "{} events",
        events.len()
    );

    // When one copy gets them one by one and another all at once (the bulk path).
    let mut one_by_one = shadow(&pipeline.pool, "bulk_one_by_one").await;
    for event in &events {
        ProblemFeed
            .apply(&mut one_by_one, event)
            .await
            .expect("applied");
    }
    let mut at_once = shadow(&pipeline.pool, "bulk_at_once").await;
    let mut tx = sqlx::Connection::begin(&mut at_once).await.expect("begin");
    apply_events(&ProblemFeed, &mut tx, &events)
        .await
        .expect("applied at once");
    tx.commit().await.expect("commit");

    // Then both hold the same rows, every problem once.
    let differing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ((SELECT * FROM bulk_one_by_one.rm_problems EXCEPT ALL SELECT * FROM bulk_at_once.rm_problems)
                               UNION ALL
                               (SELECT * FROM bulk_at_once.rm_problems EXCEPT ALL SELECT * FROM bulk_one_by_one.rm_problems)) d",
    )
    .fetch_one(&pipeline.pool)
    .await
    .expect("compare");
    assert_eq!(differing, 0);
    let (rows, low): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE severity = 'low') FROM bulk_at_once.rm_problems",
    )
    .fetch_one(&pipeline.pool)
    .await
    .expect("count");
    assert_eq!((rows, low), (7, 2));

    // And a batch that cannot be applied at once (the fourth event repeats the second's report)
    // falls back to one by one and names the event it stops at.
    let mut broken = vec![
        events[0].clone(),
        events[1].clone(),
        events[2].clone(),
        events[1].clone(),
    ];
    broken.extend_from_slice(&events[3..]);
    let mut fresh = shadow(&pipeline.pool, "bulk_broken").await;
    let mut tx = sqlx::Connection::begin(&mut fresh).await.expect("begin");
    let (index, error) = apply_events(&ProblemFeed, &mut tx, &broken)
        .await
        .expect_err("a duplicate report cannot be applied");
    assert_eq!(index, 3, "{error}");
}
