//! `bench guardrail` (issue 15): the guardrail on a platform whose log is big.
//!
//! - **GL1** the cost of judging one submission with 10k and with `--scale` (1M) events in the log
//!   served, the same procedure on both: p95 of the verdicts' `durationMs` and items/s.
//! - **GL2** items/s with one judge and with two (the judges' process CPU and the machine's, to show
//!   when the cores are the limit).
//! - **GL3/GL4** agents posting as fast as the write path takes for five minutes (`--time-scale`
//!   scales it): the backlog sampled every 100 ms against its bound, then the time it takes to drain.
//! - **GL5** `guardrail` and `dev` stopped with SIGTERM while loaded: time to exit against their
//!   grace period.
//!
//! The log's history is generated (`ProblemReported` events, hashed and chained like the command
//! path) and marked as relayed and projected, as on a platform that has served it; only the
//! submissions of the run are judged.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bw_projections::runtime::Projection;
use futures::StreamExt as _;
use uuid::Uuid;

use super::{
    Db, Env,
    stack::{Stack, machine_ticks},
    stats::{Row, Samples},
    targets::{Agents, post_problem, problem_body},
};

/// The gateway's default backlog bound, which GL3 holds it to (with the default drain bound,
/// `BW_GUARDRAIL_MAX_DRAIN` = 45 s, it may refuse earlier).
const BOUND: i64 = 2_000;
/// `BW_SHUTDOWN_GRACE`'s default.
const GRACE: Duration = Duration::from_secs(25);

/// Every GL row.
pub async fn run(env: &mut Env) -> anyhow::Result<Vec<Row>> {
    let (small_size, big_size) = if env.plan.quick {
        (200, env.plan.scale)
    } else {
        (10_000, env.plan.scale.max(1_000_000))
    };
    let small = env.db("_guard10k").await?;
    history(&small, small_size).await?;
    let big = env.db("").await?;
    history(&big, big_size).await?;
    let items = if env.plan.quick { 24 } else { 2_000 };
    let on_small = judged(env, &small, items, &[1]).await?;
    let on_big = judged(env, &big, items, &[1, 2]).await?;
    let mut rows = log_size_rows(&on_small, &on_big, small_size, big_size);
    rows.extend(scaling_rows(&on_big));
    rows.extend(sustained(env, &big).await?);
    rows.extend(shutdown_under_load(env, &big).await?);
    Ok(rows)
}

/// Makes sure `db`'s log holds at least `n` events, the generated ones marked as relayed and
/// projected by every projection of this build (nothing of the history is judged or projected
/// again).
pub async fn history(db: &Db, n: usize) -> anyhow::Result<()> {
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await?;
    let have = usize::try_from(have).unwrap_or(0);
    if have >= n {
        return Ok(());
    }
    let reported: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Problem' AND event_type = 'ProblemReported'",
    )
    .fetch_one(&db.pool)
    .await?;
    let target = usize::try_from(reported).unwrap_or(0) + (n - have);
    super::data::problem_log(&db.pool, target).await?;
    let head: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&db.pool)
        .await?;
    let bus = bw_commands::CommandBus::new(db.pool.clone());
    let mut names: Vec<(&str, i32)> = crate::roles::projections()
        .iter()
        .chain(bw_processes::sagas::RewardSaga::all(&bus).iter())
        .map(|p| (p.name(), p.version()))
        .collect();
    names.push((
        bw_processes::guardrail::queue::Intake.name(),
        bw_processes::guardrail::queue::Intake.version(),
    ));
    names.push((bw_guardrail::index::NAME, bw_guardrail::index::VERSION));
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO relay_checkpoints (name, position) VALUES ('relay', $1)
         ON CONFLICT (name) DO UPDATE SET position = GREATEST(relay_checkpoints.position, EXCLUDED.position)",
    )
    .bind(head)
    .execute(&mut *tx)
    .await?;
    for (name, version) in names {
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, version, position) VALUES ($1, $2, $3)
             ON CONFLICT (projection) DO UPDATE SET position = GREATEST(projection_checkpoints.position, EXCLUDED.position)",
        )
        .bind(name)
        .bind(version)
        .bind(head)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    tracing::info!(database = %db.name, events = n, "history in the log, marked as served");
    Ok(())
}

/// One drain of a backlog by `workers` judges.
#[derive(Debug, Clone)]
struct Drained {
    workers: usize,
    items: usize,
    /// From the first verdict to the last.
    items_per_second: f64,
    /// The verdicts' `durationMs`.
    per_item: Samples,
    /// CPU of the guardrail process / wall time, in cores.
    guardrail_cores: f64,
    /// Busy share of the machine's CPU while it drained.
    machine_busy: f64,
}

/// What one log size gave.
#[derive(Debug)]
struct OnLog {
    events: i64,
    drains: Vec<Drained>,
    latency: Samples,
}

/// Posts `items` problems with no guardrail running, then starts it with each number of judges in
/// `workers` in turn and times the drain; then submit → verdict at 5/s with one judge.
async fn judged(env: &Env, db: &Db, items: usize, workers: &[usize]) -> anyhow::Result<OnLog> {
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await?;
    let off = [("BW_GUARDRAIL_MAX_BACKLOG", "0".to_owned())];
    let core = Stack::start_with(&db.stack(env, 16), &["serve", "relay", "project"], &off).await?;
    let measured = async {
        let agents = Agents::register(env, &core.base, 8).await?;
        let mut drains = Vec::new();
        for &w in workers {
            let ids = post_many(env, &core.base, &agents, items).await;
            anyhow::ensure!(
                ids.len() == items,
                "only {} of {items} problems were accepted",
                ids.len()
            );
            drains.push(drain(env, db, w, &ids).await?);
        }
        let guardrail = start_guardrail(env, db, 1).await?;
        let (_, latency) = super::targets::submit_to_verdict(
            env,
            db,
            &core,
            &agents,
            &[super::load::Stage::constant(
                env.plan.per_second(5.0),
                env.plan.phase,
            )],
            Duration::from_secs(60),
        )
        .await;
        guardrail.stop(GRACE).await;
        anyhow::Ok(OnLog {
            events,
            drains,
            latency,
        })
    }
    .await;
    core.stop(GRACE).await;
    measured
}

async fn start_guardrail(env: &Env, db: &Db, workers: usize) -> anyhow::Result<Stack> {
    Stack::start_with(
        &db.stack(env, 4),
        &["guardrail"],
        &[("BW_GUARDRAIL_WORKERS", workers.to_string())],
    )
    .await
}

/// Posts `n` distinct problems, 16 at a time; the ids accepted.
async fn post_many(env: &Env, base: &str, agents: &Agents, n: usize) -> Vec<Uuid> {
    let seed = u64::from(rand::random::<u32>()) << 20;
    futures::stream::iter(0..n)
        .map(|i| post_problem(&env.http, base, agents.key(i), seed + i as u64))
        .buffer_unordered(16)
        .filter_map(|id| async move { id })
        .collect()
        .await
}

/// Starts the guardrail with `workers` judges and waits until each of `ids` has its verdict.
async fn drain(env: &Env, db: &Db, workers: usize, ids: &[Uuid]) -> anyhow::Result<Drained> {
    let guardrail = start_guardrail(env, db, workers).await?;
    let (cpu0, machine0) = (guardrail.cpu_seconds("guardrail"), machine_ticks());
    let started = Instant::now();
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let deadline =
        started + Duration::from_secs(120) + Duration::from_millis(200) * ids.len() as u32;
    let done = loop {
        let judged: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_type = 'Problem' AND aggregate_id = ANY($1)
               AND event_type = 'GuardrailDecided'",
        )
        .bind(&ids)
        .fetch_one(&db.pool)
        .await?;
        if usize::try_from(judged).unwrap_or(0) >= ids.len() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        // Polling the database of another process, which sends no signal when it is done.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wall = started.elapsed().as_secs_f64();
    let (cpu1, machine1) = (guardrail.cpu_seconds("guardrail"), machine_ticks());
    guardrail.stop(GRACE).await;
    anyhow::ensure!(
        done,
        "{workers} judge(s) did not judge {} problems in time",
        ids.len()
    );
    let (first, last, durations): (f64, f64, Vec<f64>) = sqlx::query_as(
        "SELECT extract(epoch FROM min(recorded_at))::float8, extract(epoch FROM max(recorded_at))::float8,
                array_agg((payload->'data'->>'durationMs')::float8)
         FROM events WHERE aggregate_type = 'Problem' AND aggregate_id = ANY($1) AND event_type = 'GuardrailDecided'",
    )
    .bind(&ids)
    .fetch_one(&db.pool)
    .await?;
    let mut per_item = Samples::default();
    for ms in durations {
        per_item.ok(Duration::from_secs_f64(ms / 1000.0));
    }
    per_item.elapsed = Duration::from_secs_f64((last - first).max(0.001));
    let machine_busy = match (machine0, machine1) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => (b1 - b0) as f64 / (t1 - t0) as f64,
        _ => 0.0,
    };
    Ok(Drained {
        workers,
        items: ids.len(),
        items_per_second: (ids.len().saturating_sub(1)) as f64 / (last - first).max(0.001),
        per_item,
        guardrail_cores: match (cpu0, cpu1) {
            (Some(a), Some(b)) => (b - a) / wall,
            _ => 0.0,
        },
        machine_busy,
    })
}

fn one_judge(on: &OnLog) -> Option<&Drained> {
    on.drains.iter().find(|d| d.workers == 1)
}

fn log_size_rows(small: &OnLog, big: &OnLog, small_size: usize, big_size: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    let (Some(a), Some(b)) = (one_judge(small), one_judge(big)) else {
        return rows;
    };
    for (on, d) in [(small, a), (big, b)] {
        rows.push(
            Row::from_samples(
                "GL1",
                format!(
                    "guardrail per item (durationMs), 1 judge, {} events in the log",
                    on.events
                ),
                &d.per_item,
            )
            .with_figure(d.items_per_second, "items/s"),
        );
        rows.push(Row::from_samples(
            "GL1",
            format!(
                "submit → verdict in the read model at 5/s, {} events in the log",
                on.events
            ),
            &on.latency,
        ));
    }
    let p95 = |d: &Drained| d.per_item.quantile_ms(0.95).unwrap_or(f64::NAN);
    let ratio = p95(b) / p95(a);
    rows.push(
        Row::figure(
            "GL1",
            format!("per-item p95 at {big_size} events ÷ at {small_size}"),
            ratio,
            "×",
        )
        .with_reference(format!(
            "{:.1} ms vs {:.1} ms; items/s {:.0} vs {:.0}",
            p95(b),
            p95(a),
            b.items_per_second,
            a.items_per_second
        ))
        .judged("≤ 1.25 (independent of log size)", ratio <= 1.25),
    );
    rows
}

fn scaling_rows(big: &OnLog) -> Vec<Row> {
    let mut rows = Vec::new();
    for d in &big.drains {
        rows.push(
            Row::figure(
                "GL2",
                format!(
                    "{} judge(s) draining {} submissions: items/s",
                    d.workers, d.items
                ),
                d.items_per_second,
                "items/s",
            )
            .with_reference(format!(
                "guardrail process {:.2} cores; machine {:.0} % busy",
                d.guardrail_cores,
                d.machine_busy * 100.0
            )),
        );
    }
    let (Some(one), Some(two)) = (
        big.drains.iter().find(|d| d.workers == 1),
        big.drains.iter().find(|d| d.workers == 2),
    ) else {
        return rows;
    };
    let ratio = two.items_per_second / one.items_per_second;
    // Items per second for each core the machine kept busy: if the second judge turns the CPU it
    // adds into items as well as the first did, and the machine is then saturated, the cores are
    // the limit (the profile in docs/benchmarks.md shows where they go).
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let per_core = |d: &Drained| d.items_per_second / (d.machine_busy * cores).max(f64::EPSILON);
    let efficiency = per_core(two) / per_core(one);
    let cores_bound = two.machine_busy >= 0.9 && efficiency >= 0.85;
    rows.push(
        Row::figure(
            "GL2",
            "items/s per busy core, 2 judges ÷ 1 judge",
            efficiency,
            "×",
        )
        .with_reference(format!(
            "{:.1} vs {:.1} items per busy core-second; machine {:.0} % busy with 2 judges",
            per_core(two),
            per_core(one),
            two.machine_busy * 100.0
        )),
    );
    rows.push(
        Row::figure("GL2", "2 judges ÷ 1 judge, items/s", ratio, "×")
            .with_reference(format!(
                "1 judge kept the machine {:.0} % busy ({:.2} cores in the guardrail), 2 judges {:.0} %",
                one.machine_busy * 100.0,
                one.guardrail_cores,
                two.machine_busy * 100.0
            ))
            .judged(
                "≥ 1.7, or the cores are the limit (≥ 90 % busy with 2, items per busy core ≥ 0.85 × one judge's)",
                ratio >= 1.7 || cores_bound,
            ),
    );
    rows
}

/// Agents posting as fast as they are let for five minutes (scaled): the backlog against its bound,
/// then the drain.
async fn sustained(env: &Env, db: &Db) -> anyhow::Result<Vec<Row>> {
    let stack = env
        .start(db, &["serve", "relay", "project", "guardrail"], 16)
        .await?;
    let measured = async {
        let agents = Agents::register(env, &stack.base, 16).await?;
        let span = env.plan.span(Duration::from_secs(300));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_backlog(db.pool.clone(), stop.clone());
        let (accepted, refused) = post_for(env, &stack.base, &agents, 16, span).await;
        let load_ended = Instant::now();
        // Until the backlog is empty (or five minutes).
        let drained = loop {
            let backlog = bw_processes::guardrail::queue::backlog(&db.pool, 1_000_000).await?;
            if backlog == 0 {
                break Some(load_ended.elapsed());
            }
            if load_ended.elapsed() > Duration::from_secs(300) {
                break None;
            }
            // Polling another process's progress.
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        stop.store(true, Ordering::SeqCst);
        let (max, samples) = sampler.await.unwrap_or((0, 0));
        let seconds = span.as_secs_f64();
        let mut rows = vec![
            Row::figure(
                "GL3",
                format!(
                    "largest backlog while 16 agents posted for {seconds:.0} s ({samples} samples)"
                ),
                max as f64,
                "submissions",
            )
            .with_reference(format!(
                "{accepted} accepted ({:.0}/s), {refused} refused with 429",
                accepted as f64 / seconds
            ))
            .judged(format!("≤ the bound, {BOUND}"), max <= BOUND),
        ];
        let drain_s = drained.map_or(f64::INFINITY, |d| d.as_secs_f64());
        rows.push(
            Row::figure(
                "GL4",
                "backlog drained to 0 after the load stopped",
                drain_s,
                "s",
            )
            .judged("≤ 60 s", drain_s <= 60.0),
        );
        anyhow::Ok(rows)
    }
    .await;
    stack.stop(GRACE).await;
    measured
}

/// Samples the backlog every 100 ms until `stop`; (largest, samples).
fn sample_backlog(
    pool: sqlx::PgPool,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(i64, u64)> {
    tokio::spawn(async move {
        let (mut max, mut samples) = (0, 0);
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        while !stop.load(Ordering::SeqCst) {
            ticker.tick().await;
            if let Ok(b) = bw_processes::guardrail::queue::backlog(&pool, 1_000_000).await {
                max = max.max(b);
                samples += 1;
            }
        }
        (max, samples)
    })
}

/// `clients` agents posting problems for `span`, each pausing 100 ms after a 429 (an impatient
/// agent: it does not wait the whole `Retry-After`). (accepted, refused).
async fn post_for(
    env: &Env,
    base: &str,
    agents: &Agents,
    clients: usize,
    span: Duration,
) -> (u64, u64) {
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let seed = u64::from(rand::random::<u32>()) << 24;
    let (http, base, agents) = (env.http.clone(), base.to_owned(), agents.clone());
    let (a, r) = (accepted.clone(), refused.clone());
    super::load::closed(clients, span, move |client, n| {
        let (http, base, agents, a, r) = (
            http.clone(),
            base.clone(),
            agents.clone(),
            a.clone(),
            r.clone(),
        );
        async move {
            let response = http
                .post(format!("{base}/api/v1/problems"))
                .bearer_auth(agents.key(client))
                .header("Idempotency-Key", Uuid::new_v4().to_string())
                .json(&problem_body(seed + ((client as u64) << 32) + n))
                .send()
                .await;
            match response.map(|r| r.status().as_u16()) {
                Ok(202) => {
                    a.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Ok(429) => {
                    r.fetch_add(1, Ordering::Relaxed);
                    // The impatient agent's pause.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    true
                }
                _ => false,
            }
        }
    })
    .await;
    (
        accepted.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
    )
}

/// SIGTERM to each role of the split stack, then to `dev`, while agents post: time to exit.
async fn shutdown_under_load(env: &Env, db: &Db) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let loaded = if env.plan.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(10)
    };
    for roles in [
        &["serve", "relay", "project", "guardrail"][..],
        &["dev"][..],
    ] {
        let stack = env.start(db, roles, 16).await?;
        let agents = Agents::register(env, &stack.base, 16).await?;
        // Posting keeps going through the stop; its errors are expected.
        let load = {
            let (env_http, base, agents) = (env.http.clone(), stack.base.clone(), agents.clone());
            tokio::spawn(async move {
                let seed = u64::from(rand::random::<u32>()) << 24;
                let mut n = 0u64;
                let mut tasks = futures::stream::FuturesUnordered::new();
                let until = Instant::now() + Duration::from_secs(120);
                while Instant::now() < until {
                    while tasks.len() < 16 {
                        n += 1;
                        tasks.push(post_problem(
                            &env_http,
                            &base,
                            agents.key(n as usize),
                            seed + n,
                        ));
                    }
                    if tasks.next().await.is_none() {
                        break;
                    }
                }
            })
        };
        // Loaded for a while: the backlog builds.
        tokio::time::sleep(loaded).await;
        let stopped = stack.stop(GRACE + Duration::from_secs(10)).await;
        load.abort();
        for (role, took) in stopped {
            let seconds = took.map_or(f64::INFINITY, |d| d.as_secs_f64());
            rows.push(
                Row::figure(
                    "GL5",
                    format!("`{role}` stopped with SIGTERM while loaded"),
                    seconds,
                    "s",
                )
                .judged(
                    format!("≤ grace ({} s)", GRACE.as_secs()),
                    took.is_some_and(|d| d <= GRACE),
                ),
            );
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(workers: usize, rate: f64, busy: f64) -> Drained {
        Drained {
            workers,
            items: 10,
            items_per_second: rate,
            per_item: Samples::default(),
            guardrail_cores: 1.0,
            machine_busy: busy,
        }
    }

    #[test]
    fn given_two_judges_when_scaling_is_judged_then_a_busy_machine_excuses_a_low_ratio() {
        let on = |busy| OnLog {
            events: 1,
            drains: vec![drained(1, 100.0, busy), drained(2, 120.0, busy)],
            latency: Samples::default(),
        };
        let verdict = |busy| scaling_rows(&on(busy)).pop().expect("row").verdict;
        assert_eq!(verdict(0.5), super::super::stats::Verdict::of(false));
        assert_eq!(verdict(0.95), super::super::stats::Verdict::of(true));
        // A second judge that saturates the machine but turns the CPU it adds into few items does
        // not pass: something other than the cores limits it
        let wasteful = OnLog {
            events: 1,
            drains: vec![drained(1, 100.0, 0.5), drained(2, 110.0, 0.95)],
            latency: Samples::default(),
        };
        assert_eq!(
            scaling_rows(&wasteful).pop().expect("row").verdict,
            super::super::stats::Verdict::of(false)
        );
    }
}
