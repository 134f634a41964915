//! The event pipeline's invariants against the real PostgreSQL and NATS JetStream:
//! commit-safe ordering (nothing skipped), relay crash and fail-over, exactly-once projection,
//! idempotency under concurrency, optimistic concurrency, cross-aggregate username uniqueness.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use async_nats::jetstream::AckKind;
use bw_commands::{CommandError, Outcome, idempotency::IdempotencyKey};
use bw_domain::{
    agent::Agent,
    meta::Actor,
    problem::{Problem, ProblemCommand},
    taxonomy::Severity,
};
use bw_eventlog::store;
use bw_infra::shutdown::Shutdown;
use bw_projections::models::{agents::AgentDirectory, problems::ProblemFeed};
use support::{
    Pipeline,
    fixtures::{self, ctx, respond},
};
use uuid::Uuid;

/// Every event in the log: (global position, event id, aggregate id, sequence), in position order.
async fn log(p: &Pipeline) -> Vec<(i64, Uuid, String, i64)> {
    sqlx::query_as("SELECT global_position, event_id, aggregate_id, sequence FROM events ORDER BY global_position")
        .fetch_all(&p.pool)
        .await
        .expect("read log")
}

/// Asserts that JetStream holds exactly the log's events, each once, in global position order, and
/// that each aggregate's events appear in sequence order.
async fn assert_published_equals_log(p: &Pipeline) {
    let log = log(p).await;
    let published = p.published().await;
    let log_ids: Vec<Uuid> = log.iter().map(|e| e.1).collect();
    let published_ids: Vec<Uuid> = published.iter().map(|m| m.1).collect();
    if published_ids.len() != log_ids.len() {
        let seen: BTreeSet<Uuid> = published_ids.iter().copied().collect();
        let missing: Vec<(i64, String)> = log
            .iter()
            .filter(|e| !seen.contains(&e.1))
            .map(|e| (e.0 >> 20, e.2.clone()))
            .collect();
        eprintln!("missing (txid, aggregate): {missing:?}");
    }
    assert_eq!(
        published_ids.len(),
        log_ids.len(),
        "published {} of {} events",
        published_ids.len(),
        log_ids.len()
    );
    assert_eq!(
        published_ids, log_ids,
        "stream order must be the log's global order"
    );
    let mut last_sequence: BTreeMap<&str, i64> = BTreeMap::new();
    for (_, _, aggregate, sequence) in &log {
        let previous = last_sequence
            .insert(aggregate.as_str(), *sequence)
            .unwrap_or(0);
        assert_eq!(
            *sequence,
            previous + 1,
            "aggregate {aggregate} out of order"
        );
    }
}

#[tokio::test]
async fn a_transaction_that_commits_late_is_never_skipped() {
    let p = Pipeline::new().await;
    let relay = p.relay();
    let agent = fixtures::register(&p.bus, "early_bird").await;
    assert_eq!(relay.drain().await.expect("drain"), 1);

    // A slow writer appends (and so takes its transaction id) but does not commit yet.
    let (slow, slow_position) = fixtures::uncommitted_report(&p.pool, agent).await;

    // Faster writers commit after it, with larger positions.
    let mut fast_positions = Vec::new();
    for n in 1..=5 {
        let (_, outcome) = fixtures::report(&p.bus, agent, n).await.expect("report");
        let Outcome::Executed { events, .. } = outcome else {
            panic!("executed")
        };
        fast_positions.push(events[0].global_position);
    }
    assert!(
        fast_positions.iter().all(|f| *f > slow_position),
        "later transactions sort after the slow one"
    );

    // While the slow transaction is open, nothing after it may be published: publishing the fast
    // ones now would move the checkpoint past the slow event and lose it.
    assert_eq!(
        relay.publish_pending().await.expect("pass"),
        0,
        "relay published past an open transaction"
    );

    slow.commit().await.expect("commit late");
    assert_eq!(relay.drain().await.expect("drain"), 6);
    assert_published_equals_log(&p).await;
}

#[tokio::test]
async fn concurrent_writers_with_slow_transactions_lose_nothing_while_the_relay_runs() {
    let p = Pipeline::new().await;
    let agent = fixtures::register(&p.bus, "busy_reporter").await;
    let shutdown = Shutdown::new();
    let relay_task = tokio::spawn(p.relay().run(shutdown.triggered()));

    let mut writers = Vec::new();
    for w in 0..8usize {
        let bus = p.bus.clone();
        let pool = p.pool.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..25usize {
                if (w + n) % 10 == 0 {
                    // A deliberately slow transaction: append, hold it open, then commit.
                    let id = Uuid::now_v7();
                    let mut tx = pool.begin().await.expect("begin");
                    let events = vec![bw_domain::problem::ProblemEvent::ProblemReported {
                        problem_id: id,
                        reported_by: agent,
                        details: Box::new(fixtures::details(n)),
                        status: bw_domain::taxonomy::ProblemStatus::Active,
                        guardrail_status: bw_domain::taxonomy::GuardrailStatus::Pending,
                        reported_at: chrono::Utc::now(),
                    }];
                    let prepared = store::prepare::<Problem>(
                        &id.to_string(),
                        0,
                        bw_eventlog::canonical::GENESIS,
                        &events,
                        &serde_json::json!({"actor": "system"}),
                        chrono::Utc::now(),
                    )
                    .expect("prepare");
                    store::append(&mut tx, "Problem", &prepared)
                        .await
                        .expect("append");
                    // The fault under test, not a wait: the transaction stays open while later
                    // ones commit around it.
                    sqlx::query("SELECT pg_sleep(0.15)")
                        .execute(&mut *tx)
                        .await
                        .expect("sleep in tx");
                    tx.commit().await.expect("commit");
                } else {
                    fixtures::report(&bus, agent, n).await.expect("report");
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    shutdown.trigger();
    relay_task.await.expect("relay task").expect("relay ran");
    p.relay().drain().await.expect("final drain");
    assert_eq!(log(&p).await.len(), 1 + 8 * 25);
    assert_published_equals_log(&p).await;
}

#[tokio::test]
async fn a_relay_that_crashes_after_publishing_and_before_its_checkpoint_loses_and_duplicates_nothing()
 {
    let p = Pipeline::new().await;
    let agent = fixtures::register(&p.bus, "crash_test").await;
    for n in 0..10 {
        fixtures::report(&p.bus, agent, n).await.expect("report");
    }
    let first = p.relay();
    let batch = first.read_batch().await.expect("read");
    assert_eq!(batch.len(), 11);
    assert_eq!(first.publish(&batch).await.expect("publish"), 0);
    // Crash: the checkpoint was never written.
    drop(first);
    assert_eq!(p.relay().checkpoint().await.expect("checkpoint"), 0);

    for n in 10..15 {
        fixtures::report(&p.bus, agent, n).await.expect("report");
    }
    let restarted = p.relay();
    let republished = restarted.read_batch().await.expect("read");
    assert_eq!(
        republished.len(),
        16,
        "the restarted relay starts from the last acknowledged checkpoint"
    );
    assert_eq!(
        restarted.publish(&republished).await.expect("publish"),
        11,
        "JetStream reports the 11 re-published events as duplicates"
    );
    restarted
        .advance_checkpoint(republished[15].global_position)
        .await
        .expect("checkpoint");
    let info =
        p.js.get_stream(&p.stream.name)
            .await
            .expect("stream")
            .info()
            .await
            .expect("info")
            .state
            .messages;
    assert_eq!(info, 16, "the stream holds each event once");
    assert_published_equals_log(&p).await;
}

#[tokio::test]
async fn a_standby_relay_takes_over_when_the_leaders_connection_drops() {
    let p = Pipeline::new().await;
    let mut published = p.follow().await;
    let agent = fixtures::register(&p.bus, "failover").await;
    let shutdown = Shutdown::new();
    let first = p.relay();
    let mut first_leads = first.leadership();
    let first_task = tokio::spawn(first.run(shutdown.triggered()));
    support::until_leading(&mut first_leads, "the first relay leads").await;
    let second = p.relay();
    let second_leads = second.leadership();
    let second_task = tokio::spawn(second.run(shutdown.triggered()));

    fixtures::report(&p.bus, agent, 1).await.expect("report");
    published.until(2, "the leader publishes").await;

    // The leader's lock connection drops (a network cut): leadership is re-established, by either.
    let pid: i32 = sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&p.pool)
    .await
    .expect("the leader's lock");
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&p.pool)
        .await
        .expect("terminate");
    assert!(terminated);
    for n in 2..5 {
        fixtures::report(&p.bus, agent, n).await.expect("report");
    }
    published
        .until(5, "events after the connection drop are published")
        .await;

    // The leading process dies: the standby takes over.
    let (dying, survivor, mut standby) = if *first_leads.borrow() {
        (first_task, second_task, second_leads)
    } else {
        (second_task, first_task, first_leads)
    };
    dying.abort();
    let _ = dying.await;
    support::until_leading(&mut standby, "the standby leads").await;
    fixtures::report(&p.bus, agent, 5).await.expect("report");
    published
        .until(6, "events after the take-over are published")
        .await;
    shutdown.trigger();
    survivor
        .await
        .expect("task")
        .expect("the standby stopped cleanly");
    assert_published_equals_log(&p).await;
}

#[tokio::test]
async fn shutdown_interrupts_a_projector_waiting_on_an_empty_stream() {
    // Given a projector whose pull request waits an hour for the next event
    let p = Pipeline::new().await;
    let config = bw_projections::runtime::ProjectorConfig {
        fetch_wait: std::time::Duration::from_secs(3600),
        ..Default::default()
    };
    let directory = p.projector_with(Arc::new(AgentDirectory), config).await;
    let shutdown = Shutdown::new();
    let task = tokio::spawn(directory.run(shutdown.triggered()));
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        p.js.get_stream(&p.stream.name)
            .await
            .expect("stream")
            .get_consumer(&format!("{}_agent_directory", p.stream.name))
            .await
            .expect("consumer");
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut consumer = consumer;
        while consumer.info().await.expect("info").num_waiting == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the projector's pull request reaches the server");

    // When the process is told to stop
    shutdown.trigger();

    // Then the projector returns without waiting for the pull to expire (the bound only keeps a
    // regression from hanging the suite for an hour)
    tokio::time::timeout(std::time::Duration::from_secs(60), task)
        .await
        .expect("stopped while its pull was waiting")
        .expect("task")
        .expect("stopped cleanly");
}

#[tokio::test]
async fn projectors_apply_each_event_once_across_crashes_before_and_after_commit() {
    let p = Pipeline::new().await;
    let agents = [
        fixtures::register(&p.bus, "alpha_agent").await,
        fixtures::register(&p.bus, "beta_agent").await,
    ];
    for n in 0..12 {
        fixtures::report(&p.bus, agents[n % 2], n)
            .await
            .expect("report");
    }
    p.relay().drain().await.expect("drain");

    let config = bw_projections::runtime::ProjectorConfig {
        batch: 5,
        ..Default::default()
    };
    let directory = p
        .projector_with(Arc::new(AgentDirectory), config.clone())
        .await;

    // Crash before the commit: the batch is fetched, nothing is applied, nothing acknowledged.
    let messages = directory.fetch(None).await.expect("fetch");
    assert_eq!(messages.len(), 5);
    for m in &messages {
        m.ack_with(AckKind::Nak(None))
            .await
            .expect("nak = redeliver, as after a crash");
    }

    // Crash after the commit and before the ack: applied and checkpointed, never acknowledged.
    // JetStream may deliver newer messages before the redeliveries; the projector then applies the
    // whole range from the log, so at least this batch is applied, in log order.
    let messages = directory.fetch(None).await.expect("fetch");
    assert!(directory.apply_batch(&messages).await.expect("apply") >= messages.len());
    for m in &messages {
        m.ack_with(AckKind::Nak(None)).await.expect("redeliver");
    }

    // A fresh instance (the restarted process) drains everything, redeliveries included.
    let restarted = p.projector_with(Arc::new(AgentDirectory), config).await;
    restarted.process_pending().await.expect("drain");

    let counts: Vec<(Uuid, i32)> =
        sqlx::query_as("SELECT agent_id, problems_reported FROM rm_agents ORDER BY agent_id")
            .fetch_all(&p.pool)
            .await
            .expect("directory");
    let expected: BTreeMap<Uuid, i32> = agents.iter().map(|a| (*a, 6)).collect();
    assert_eq!(
        counts.into_iter().collect::<BTreeMap<_, _>>(),
        expected,
        "each report counted exactly once"
    );

    // The same read model built by a clean run over a second consumer matches.
    let feed = p.projector(Arc::new(ProblemFeed)).await;
    assert_eq!(feed.process_pending().await.expect("feed"), 12);
    assert_eq!(
        feed.process_pending().await.expect("again"),
        0,
        "nothing left, nothing applied twice"
    );
    let (checkpoint, state) = restarted.status().await.expect("status");
    assert_eq!(state, "running");
    assert_eq!(checkpoint, log(&p).await.last().expect("events").0);
}

#[tokio::test]
async fn an_event_a_projection_cannot_apply_stops_it_until_an_operator_skips_it() {
    let p = Pipeline::new().await;
    let orphan = fixtures::register(&p.bus, "orphan_maker").await;
    let bystander = fixtures::register(&p.bus, "bystander").await;
    // The directory starts after the first registration, so the first agent's report finds no row
    // and must fail — not be skipped. The bystander's registration, in the same batch before it,
    // must still be applied.
    fixtures::report(&p.bus, orphan, 1).await.expect("report");
    p.relay().drain().await.expect("drain");
    sqlx::query("INSERT INTO projection_checkpoints (projection, version, position) VALUES ('agent_directory', 1, (SELECT min(global_position) FROM events))")
        .execute(&p.pool)
        .await
        .expect("start the directory after the first registration");
    let directory = p.projector(Arc::new(AgentDirectory)).await;
    let error = directory
        .process_pending()
        .await
        .expect_err("the counter update has no agent row");
    assert!(
        error.to_string().contains("not in the directory"),
        "{error}"
    );
    let (_, state) = directory.status().await.expect("status");
    assert_eq!(state, "failed");
    assert!(
        matches!(
            directory.process_pending().await,
            Err(bw_projections::ProjectionError::Failed(_))
        ),
        "stays stopped"
    );
    let check = bw_projections::status::ProjectionsCheck::new(p.pool.clone());
    let report = bw_infra::health::Readiness::new(std::time::Duration::from_secs(2))
        .with(check)
        .report()
        .await;
    assert!(
        report.checks["projections"]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("agent_directory")
    );

    let failed_at: i64 = sqlx::query_scalar(
        "SELECT failed_position FROM projection_checkpoints WHERE projection = 'agent_directory'",
    )
    .fetch_one(&p.pool)
    .await
    .expect("failed position");
    assert!(
        !bw_projections::status::skip(
            &p.pool,
            "agent_directory",
            failed_at + 1,
            "wrong position",
            "test"
        )
        .await
        .expect("skip")
    );
    assert!(
        bw_projections::status::skip(
            &p.pool,
            "agent_directory",
            failed_at,
            "agent row predates this projection",
            "operator@test"
        )
        .await
        .expect("skip")
    );
    assert_eq!(directory.process_pending().await.expect("runs again"), 0);
    let bystander_row: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rm_agents WHERE agent_id = $1")
            .bind(bystander)
            .fetch_one(&p.pool)
            .await
            .expect("query");
    assert_eq!(
        bystander_row, 1,
        "the event before the failing one was applied, and skipping the failing one skipped nothing else"
    );
    let skipped: (String, String) = sqlx::query_as(
        "SELECT reason, skipped_by FROM projection_skips WHERE projection = 'agent_directory'",
    )
    .fetch_one(&p.pool)
    .await
    .expect("the skip is recorded");
    assert_eq!(skipped.1, "operator@test");
}

#[tokio::test]
async fn one_idempotency_key_retried_100_times_concurrently_has_one_effect() {
    let p = Pipeline::new().await;
    let agent = fixtures::register(&p.bus, "retrier").await;
    let problem_id = Uuid::now_v7();
    let body = br#"{"title":"same request"}"#;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let bus = p.bus.clone();
        tasks.push(tokio::spawn(async move {
            let mut context = ctx(Actor::Agent(agent));
            context.idempotency = Some(IdempotencyKey::new(
                &Actor::Agent(agent).scope(),
                "key-1",
                "POST",
                "/api/v1/problems",
                body,
            ));
            loop {
                let command = ProblemCommand::Report {
                    problem_id,
                    agent_id: agent,
                    details: Box::new(fixtures::details(7)),
                    at: chrono::Utc::now(),
                };
                let result = bus
                    .execute::<Problem>(&problem_id.to_string(), command, &context, |position| {
                        bw_commands::idempotency::StoredResponse {
                            status: 202,
                            body: serde_json::json!({ "problemId": problem_id }),
                            position,
                        }
                    })
                    .await;
                match result {
                    Err(CommandError::IdempotencyInProgress) => tokio::task::yield_now().await,
                    other => return other.expect("executed or replayed"),
                }
            }
        }));
    }
    let mut executed = 0;
    let mut responses = BTreeSet::new();
    for t in tasks {
        let outcome = t.await.expect("task");
        executed += usize::from(matches!(outcome, Outcome::Executed { .. }));
        let r = outcome.response();
        responses.insert((r.status, r.body.to_string(), r.position));
    }
    assert_eq!(executed, 1, "exactly one execution");
    assert_eq!(responses.len(), 1, "identical responses: {responses:?}");
    let problem_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'Problem'")
            .fetch_one(&p.pool)
            .await
            .expect("count");
    assert_eq!(problem_events, 1);

    // The same key with another request is refused.
    let mut other = ctx(Actor::Agent(agent));
    other.idempotency = Some(IdempotencyKey::new(
        &Actor::Agent(agent).scope(),
        "key-1",
        "POST",
        "/api/v1/problems",
        b"{}",
    ));
    let command = ProblemCommand::Report {
        problem_id: Uuid::now_v7(),
        agent_id: agent,
        details: Box::new(fixtures::details(8)),
        at: chrono::Utc::now(),
    };
    let refused = p
        .bus
        .execute::<Problem>(&Uuid::now_v7().to_string(), command, &other, respond)
        .await;
    assert!(
        matches!(refused, Err(CommandError::IdempotencyMismatch)),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_command_is_decided_again_when_only_the_platforms_own_events_intervened() {
    let p = Pipeline::new().await;
    let agent = fixtures::register(&p.bus, "raced_by_system").await;
    let mut races = Vec::new();
    for n in 0..20 {
        let (problem, _) = fixtures::report(&p.bus, agent, n).await.expect("report");
        let (bus_a, bus_b) = (p.bus.clone(), p.bus.clone());
        // The platform (as the guardrail does) and the agent write to one stream at once.
        let system = tokio::spawn(async move {
            fixtures::edit_as(&bus_a, Actor::System, agent, problem, Severity::Low).await
        });
        let client = tokio::spawn(async move {
            fixtures::edit(&bus_b, agent, problem, Severity::Critical).await
        });
        races.push((problem, system, client));
    }
    for (problem, system, client) in races {
        let client = client.await.expect("task");
        assert!(
            client.is_ok(),
            "the agent's edit of {problem} must not conflict with the platform's: {client:?}"
        );
        // The reverse is not retried: a client's event intervening is a real conflict for anyone.
        match system.await.expect("task") {
            Ok(_) | Err(CommandError::Conflict { .. }) => {}
            Err(other) => panic!("{other}"),
        }
    }
}

#[tokio::test]
async fn concurrent_edits_of_one_problem_conflict_instead_of_losing_updates() {
    let p = Pipeline::new().await;
    let agent = fixtures::register(&p.bus, "editor").await;
    let (problem, _) = fixtures::report(&p.bus, agent, 1).await.expect("report");
    let severities = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    let mut tasks = Vec::new();
    for i in 0..20 {
        let bus = p.bus.clone();
        tasks.push(tokio::spawn(async move {
            fixtures::edit(&bus, agent, problem, severities[i % 4]).await
        }));
    }
    let mut won = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(Outcome::Executed { events, .. }) => won.push(events[0].event_id),
            Err(CommandError::Conflict {
                aggregate_type: "Problem",
            }) => conflicts += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        !won.is_empty() && conflicts > 0,
        "{} won, {conflicts} conflicted",
        won.len()
    );
    let edits: Vec<(Uuid, i64)> = sqlx::query_as("SELECT event_id, sequence FROM events WHERE aggregate_id = $1 AND event_type = 'ProblemEdited' ORDER BY sequence")
        .bind(problem.to_string())
        .fetch_all(&p.pool)
        .await
        .expect("edits");
    assert_eq!(
        edits.len(),
        won.len(),
        "every acknowledged edit is in the log, no other"
    );
    assert_eq!(
        edits.iter().map(|e| e.1).collect::<Vec<_>>(),
        (2..2 + won.len() as i64).collect::<Vec<_>>()
    );
    assert_eq!(
        edits.iter().map(|e| e.0).collect::<BTreeSet<_>>(),
        won.into_iter().collect::<BTreeSet<_>>()
    );
}

#[tokio::test]
async fn of_concurrent_registrations_of_one_username_exactly_one_wins() {
    let p = Pipeline::new().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let bus = p.bus.clone();
        tasks.push(tokio::spawn(async move {
            let id = Uuid::now_v7();
            bus.execute::<Agent>(
                &id.to_string(),
                fixtures::register_command(id, "contested_name"),
                &ctx(Actor::Anonymous),
                respond,
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(CommandError::UsernameTaken(name)) => assert_eq!(name, "contested_name"),
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
    let registered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'AgentRegistered'")
            .fetch_one(&p.pool)
            .await
            .expect("count");
    assert_eq!(registered, 1, "the losers appended nothing");
}

#[tokio::test]
async fn stored_hashes_chain_per_stream_and_events_are_immutable() {
    let p = Pipeline::new().await;
    let agent = fixtures::register(&p.bus, "chainer").await;
    let (problem, _) = fixtures::report(&p.bus, agent, 1).await.expect("report");
    fixtures::edit(&p.bus, agent, problem, Severity::Low)
        .await
        .expect("edit");
    fixtures::edit(&p.bus, agent, problem, Severity::Medium)
        .await
        .expect("edit");
    assert_eq!(
        support::verify_chain(&p.pool, &problem.to_string()).await,
        3,
        "every stored hash recomputes"
    );
    let update = sqlx::query("UPDATE events SET payload = '{}' WHERE aggregate_id = $1")
        .bind(problem.to_string())
        .execute(&p.pool)
        .await;
    assert!(
        update
            .expect_err("immutable")
            .to_string()
            .contains("events are immutable")
    );
    let delete = sqlx::query("DELETE FROM events").execute(&p.pool).await;
    assert!(delete.is_err());
}

#[tokio::test]
async fn cqrs_es_framework_runs_on_our_repository() {
    use cqrs_es::{CqrsFramework, persist::PersistedEventStore};
    let p = Pipeline::new().await;
    let repo = bw_eventlog::repository::PgEventRepository::new(p.pool.clone());
    let store: PersistedEventStore<_, Agent> = PersistedEventStore::new_event_store(repo);
    let cqrs = CqrsFramework::new(store, vec![], ());
    let id = Uuid::now_v7();
    cqrs.execute(
        &id.to_string(),
        fixtures::register_command(id, "framework_user"),
    )
    .await
    .expect("execute through cqrs-es");
    let again = cqrs
        .execute(
            &id.to_string(),
            fixtures::register_command(id, "framework_user"),
        )
        .await;
    assert!(
        again.is_err(),
        "the aggregate refuses a second registration"
    );
    let (count, hash_len): (i64, Option<i32>) =
        sqlx::query_as("SELECT count(*), max(length(hash)) FROM events")
            .fetch_one(&p.pool)
            .await
            .expect("count");
    assert_eq!((count, hash_len), (1, Some(32)));
    assert_eq!(
        p.relay().drain().await.expect("drain"),
        1,
        "events appended through cqrs-es reach the relay too"
    );
}

#[tokio::test]
async fn a_redelivery_that_arrives_after_newer_events_is_applied_not_skipped() {
    let p = Pipeline::new().await;
    let agent = fixtures::register(&p.bus, "late_redelivery").await;
    for n in 0..8 {
        fixtures::report(&p.bus, agent, n).await.expect("report");
    }
    p.relay().drain().await.expect("drain");
    let config = bw_projections::runtime::ProjectorConfig {
        batch: 3,
        ..Default::default()
    };
    let crashed = p
        .projector_with(Arc::new(AgentDirectory), config.clone())
        .await;
    let unacked = crashed.fetch(None).await.expect("fetch");
    assert_eq!(unacked.len(), 3);
    drop(crashed); // crashed before applying: these 3 stay pending until JetStream's ack wait ends

    // The restarted projector is handed the newer messages first; applying them alone would move
    // the checkpoint past the registration and the first reports, and their redelivery would be
    // skipped. It must apply the range from the log instead.
    let restarted = p.projector_with(Arc::new(AgentDirectory), config).await;
    restarted.process_pending().await.expect("drain");
    let count: i32 =
        sqlx::query_scalar("SELECT problems_reported FROM rm_agents WHERE agent_id = $1")
            .bind(agent)
            .fetch_one(&p.pool)
            .await
            .expect("the agent row exists: its registration was not skipped");
    assert_eq!(count, 8);
    // The late redeliveries, when they come, are at or below the checkpoint and change nothing.
    assert_eq!(
        restarted.apply_batch(&unacked).await.expect("redelivered"),
        0
    );
}

#[tokio::test]
async fn idempotency_records_expire_after_24_hours_and_are_purged() {
    let p = Pipeline::new().await;
    let agent = fixtures::register(&p.bus, "forgetful").await;
    let key = || {
        IdempotencyKey::new(
            &Actor::Agent(agent).scope(),
            "old-key",
            "POST",
            "/api/v1/problems",
            b"{}",
        )
    };
    let mut context = ctx(Actor::Agent(agent));
    context.idempotency = Some(key());
    let first = Uuid::now_v7();
    let command = |id: Uuid| ProblemCommand::Report {
        problem_id: id,
        agent_id: agent,
        details: Box::new(fixtures::details(1)),
        at: chrono::Utc::now(),
    };
    p.bus
        .execute::<Problem>(&first.to_string(), command(first), &context, respond)
        .await
        .expect("first");
    // Age the record past retention, as if 25 hours had passed.
    sqlx::query("UPDATE idempotency_records SET created_at = now() - interval '25 hours'")
        .execute(&p.pool)
        .await
        .expect("age");

    // An expired record is not replayed: the key may be used again, for a new command.
    let second = Uuid::now_v7();
    let outcome = p
        .bus
        .execute::<Problem>(&second.to_string(), command(second), &context, respond)
        .await
        .expect("second");
    assert!(matches!(outcome, Outcome::Executed { .. }), "{outcome:?}");

    sqlx::query("UPDATE idempotency_records SET created_at = now() - interval '25 hours'")
        .execute(&p.pool)
        .await
        .expect("age");
    assert_eq!(
        bw_commands::idempotency::purge_expired(&p.pool)
            .await
            .expect("purge"),
        1
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_records")
        .fetch_one(&p.pool)
        .await
        .expect("count");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn with_nats_away_commands_keep_succeeding_and_the_pipeline_catches_up_after() {
    let p = Pipeline::new().await;
    // The relay and the projector talk to NATS through a proxy that can cut them off.
    let proxy =
        support::proxy::Proxy::start(support::socket_addr_of(&support::nats_url(), 4222).await)
            .await;
    let nats = async_nats::ConnectOptions::new()
        .max_reconnects(None)
        .connect(format!("nats://{}", proxy.addr()))
        .await
        .expect("nats via proxy");
    let js = async_nats::jetstream::new(nats);
    let relay = bw_eventlog::relay::Relay::new(
        p.pool.clone(),
        p.pg_options.clone(),
        js.clone(),
        bw_eventlog::relay::RelayConfig {
            stream: p.stream.clone(),
            poll_interval: std::time::Duration::from_millis(20),
            ..Default::default()
        },
        p.metrics.relay.clone(),
    );
    let shutdown = Shutdown::new();
    let mut published = p.follow().await;
    let relay_task = tokio::spawn(relay.clone().run(shutdown.triggered()));
    let agent = fixtures::register(&p.bus, "offline_reporter").await;
    published.until(1, "the registration is published").await;

    proxy.sever();
    // Commands never touch NATS: they keep succeeding while it is away.
    for n in 0..20 {
        fixtures::report(&p.bus, agent, n)
            .await
            .expect("a command succeeds without NATS");
    }
    assert_eq!(
        p.published().await.len(),
        1,
        "nothing could be published meanwhile"
    );

    proxy.restore();
    published
        .until(21, "the relay catches up after NATS returns")
        .await;
    shutdown.trigger();
    relay_task
        .await
        .expect("task")
        .expect("relay stopped cleanly");
    assert_published_equals_log(&p).await;

    let feed = p.projector(Arc::new(ProblemFeed)).await;
    assert_eq!(feed.process_pending().await.expect("projected"), 20);
}

/// A projection that applies nothing, for consumer set-up tests.
#[derive(Debug)]
struct Probe(&'static [&'static str]);

impl bw_projections::runtime::Projection for Probe {
    fn name(&self) -> &'static str {
        "filter_probe"
    }

    fn version(&self) -> i32 {
        1
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        self.0
    }

    fn apply<'a>(
        &'a self,
        _: &'a mut sqlx::PgConnection,
        _: &'a bw_eventlog::envelope::EventEnvelope,
    ) -> futures::future::BoxFuture<'a, Result<(), bw_projections::ProjectionError>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_projection_that_needs_more_event_types_gets_its_consumer_refiltered() {
    // Given a projection's consumer filtered to one aggregate type
    let p = Pipeline::new().await;
    let durable = format!("{}_filter_probe", p.stream.name);
    let filter = |p: &Pipeline| {
        let js = p.js.clone();
        let stream = p.stream.name.clone();
        let durable = durable.clone();
        async move {
            let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
                .get_stream(&stream)
                .await
                .expect("stream")
                .get_consumer(&durable)
                .await
                .expect("consumer");
            consumer
                .info()
                .await
                .expect("info")
                .config
                .filter_subject
                .clone()
        }
    };
    p.projector(Arc::new(Probe(&["Agent"]))).await;
    assert_eq!(
        filter(&p).await,
        format!("{}.Agent.>", p.stream.subject_prefix)
    );

    // When the code's projection needs a second type
    p.projector(Arc::new(Probe(&["Agent", "Mission"]))).await;

    // Then the consumer sees every subject (and the same durable name is kept)
    assert_eq!(filter(&p).await, format!("{}.>", p.stream.subject_prefix));
}

#[tokio::test]
async fn a_command_on_a_stream_named_as_new_that_exists_conflicts_and_appends_nothing() {
    // Given a reported problem.
    let p = Pipeline::new().await;
    let agent = fixtures::register(&p.bus, "new_stream_reporter").await;
    let (problem_id, _) = fixtures::report(&p.bus, agent, 1).await.expect("report");
    let before = log(&p).await.len();

    // When another report is executed as the first of that same stream.
    let again = ProblemCommand::Report {
        problem_id,
        agent_id: agent,
        details: Box::new(fixtures::details(2)),
        at: chrono::Utc::now(),
    };
    let result = p
        .bus
        .execute_new::<Problem>(
            &problem_id.to_string(),
            again,
            &ctx(Actor::Agent(agent)),
            respond,
        )
        .await;

    // Then it conflicts, as any second writer of a sequence number does, and the log is unchanged.
    assert!(
        matches!(result, Err(CommandError::Conflict { .. })),
        "{result:?}"
    );
    assert_eq!(log(&p).await.len(), before);

    // And a fresh id goes in without a load, hashed from the genesis like any first event.
    let fresh = Uuid::now_v7();
    let report = ProblemCommand::Report {
        problem_id: fresh,
        agent_id: agent,
        details: Box::new(fixtures::details(3)),
        at: chrono::Utc::now(),
    };
    p.bus
        .execute_new::<Problem>(
            &fresh.to_string(),
            report,
            &ctx(Actor::Agent(agent)),
            respond,
        )
        .await
        .expect("a new stream");
    let (problem, loaded) = (
        p.bus
            .load::<Problem>(&fresh.to_string())
            .await
            .expect("load"),
        log(&p).await,
    );
    assert_eq!(
        problem.as_parent(),
        bw_domain::solution::ParentProblem::Open(fresh)
    );
    assert_eq!(loaded.len(), before + 1);
}
