//! The original plan's load scenarios (`../shared/seeds/003_…` §8.1–8.5), each with the plan's
//! threshold. Rates are the plan's; durations are the plan's for the steady scenarios and
//! compressed for the stress tests (see each), and scaled down in `--quick` mode.

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::{
    Db, Env,
    load::{self, Stage},
    stack::Stack,
    stats::{Row, Samples},
    targets::{
        Agents, get_at, get_list, nearby_urls, post_problem, register_agent, submit_to_verdict,
    },
};

/// Error rate, p95 and p99 within bounds (milliseconds).
fn within(s: &Samples, errors: f64, p95: f64, p99: Option<f64>) -> bool {
    s.count() > 0
        && s.error_rate() < errors
        && s.quantile_ms(0.95).is_some_and(|v| v < p95)
        && p99.is_none_or(|bound| s.quantile_ms(0.99).is_some_and(|v| v < bound))
}

const MINUTE: Duration = Duration::from_secs(60);

/// Every scenario, in the plan's order.
pub async fn all(env: &Env, db: &Db, stack: &Stack, agents: &Agents) -> anyhow::Result<Vec<Row>> {
    let plan = env.plan;
    let mut rows = Vec::new();
    let base = &stack.base;

    // §8.1 scenario 1 / §8.2 #2: browsing at 50 req/s for 5 minutes.
    let browse_url = format!("{base}/api/v1/problems?limit=20&domain=environmental_protection");
    let s = get_at(
        env,
        vec![browse_url.clone()],
        plan.per_second(50.0),
        plan.span(5 * MINUTE),
        true,
    )
    .await;
    rows.push(
        Row::from_samples(
            "S1",
            "browse: GET /problems?limit=20&domain=… at 50/s, 5 min",
            &s,
        )
        .judged(
            "p95 < 200 ms, p99 < 500 ms, errors < 1 %",
            within(&s, 0.01, 200.0, Some(500.0)),
        ),
    );

    // §8.1 scenario 2 / §8.2 #1: registration burst 1 → 10/s (30 s), → 50/s (1 min), → 1/s (30 s).
    let burst = [
        Stage {
            duration: plan.span(MINUTE / 2),
            from: 1.0,
            to: plan.per_second(10.0),
        },
        Stage {
            duration: plan.span(MINUTE),
            from: plan.per_second(10.0),
            to: plan.per_second(50.0),
        },
        Stage {
            duration: plan.span(MINUTE / 2),
            from: plan.per_second(50.0),
            to: 1.0,
        },
    ];
    let s = registrations(env, base, &burst).await;
    rows.push(
        Row::from_samples(
            "S2",
            "agent registration burst to 50/s (ramping arrival rate)",
            &s,
        )
        .judged("errors < 1 %, p95 < 500 ms", within(&s, 0.01, 500.0, None)),
    );

    // §8.1 scenario 3 / §8.2 #5: problem creation at 5/s with the guardrail's latency.
    let (writes, verdicts) = submit_to_verdict(
        env,
        db,
        stack,
        agents,
        &[Stage::constant(plan.per_second(5.0), plan.span(5 * MINUTE))],
        Duration::from_secs(120),
    )
    .await;
    rows.push(
        Row::from_samples("S3", "create problems at 5/s: POST /problems", &writes).judged(
            "p95 < 200 ms, p99 < 500 ms, errors < 1 %",
            within(&writes, 0.01, 200.0, Some(500.0)),
        ),
    );
    rows.push(
        Row::from_samples(
            "S3",
            "… and submit → guardrail verdict (local classifier)",
            &verdicts,
        )
        .judged("guardrail p95 < 2 s", within(&verdicts, 0.01, 2000.0, None)),
    );

    // §8.1 scenario 4 / §8.2 #3: mission geo search at 30 req/s (radius 50 km, 10 nearest).
    let geo = format!("{base}/api/v1/missions/nearby?lat=37.7749&lng=-122.4194&radius=50&limit=10");
    let s = get_at(
        env,
        vec![geo],
        plan.per_second(30.0),
        plan.span(5 * MINUTE),
        true,
    )
    .await;
    rows.push(
        Row::from_samples(
            "S4",
            "mission geo search at 30/s (San Francisco, 50 km)",
            &s,
        )
        .judged(
            "p95 < 150 ms (§8.3), errors < 1 %",
            within(&s, 0.01, 150.0, None),
        ),
    );

    // §8.2 #4: ten concurrent 5 MB evidence uploads, each within 5 s.
    rows.push(super::evidence::uploads(env, db, stack).await?);

    // §8.2 #6 / §8.3: 100 agents check in within one minute; the first heartbeat answer < 100 ms.
    let s = heartbeats(env, base, 100, plan.span(MINUTE)).await?;
    rows.push(
        Row::from_samples(
            "S6",
            "100 agents: GET /heartbeat/instructions + POST /heartbeat/checkin within 1 min",
            &s,
        )
        .judged("p95 < 100 ms, no errors", within(&s, 1e-9, 100.0, None)),
    );

    // §8.2 #7: 100 concurrent queries (a closed loop of 100 clients on feed and geo reads).
    let s = concurrent_reads(env, base, 100, plan.phase).await;
    rows.push(
        Row::from_samples(
            "S7",
            "100 concurrent clients reading (feed and nearby), closed loop",
            &s,
        )
        .judged("p95 < 200 ms, no errors", within(&s, 1e-9, 200.0, None)),
    );

    rows.extend(stress_swarm(env, base).await?);
    rows.extend(stress_database(env, base, agents).await);
    rows.push(stress_queue_flood(env, db, stack, agents).await);
    Ok(rows)
}

/// Registrations at the arrivals of `stages`.
async fn registrations(env: &Env, base: &str, stages: &[Stage]) -> Samples {
    let (http, base) = (env.http.clone(), base.to_owned());
    load::open(stages, move |_| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            matches!(register_agent(&http, &base).await, Ok((201, body)) if body["data"]["apiKey"].is_string())
        }
    })
    .await
}

/// `agents` fresh agents each fetch their instructions and check in, spread evenly over `window`.
async fn heartbeats(
    env: &Env,
    base: &str,
    agents: usize,
    window: Duration,
) -> anyhow::Result<Samples> {
    let registered = Arc::new(Agents::register(env, base, agents).await?);
    let (http, base) = (env.http.clone(), base.to_owned());
    let rate = env.plan.per_second(agents as f64 / window.as_secs_f64());
    Ok(load::open(&[Stage::constant(rate, window)], move |n| {
        let (http, base, registered) = (http.clone(), base.clone(), registered.clone());
        async move {
            let key = registered.key(n as usize);
            let instructions = http
                .get(format!("{base}/api/v1/heartbeat/instructions"))
                .bearer_auth(key)
                .send()
                .await;
            if !instructions.is_ok_and(|r| r.status().as_u16() == 200) {
                return false;
            }
            http.post(format!("{base}/api/v1/heartbeat/checkin"))
                .bearer_auth(key)
                .json(&json!({ "timestamp": chrono::Utc::now(), "clientVersion": "bench" }))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200)
        }
    })
    .await)
}

/// A closed loop of `clients` alternating feed and nearby reads.
async fn concurrent_reads(env: &Env, base: &str, clients: usize, phase: Duration) -> Samples {
    let mut urls = nearby_urls(base, 50, 10, 200);
    urls.extend((0..200).map(|i| {
        let domain = [
            "environmental_protection",
            "clean_water_sanitation",
            "food_security",
            "education_access",
        ][i % 4];
        format!("{base}/api/v1/problems?limit=20&domain={domain}")
    }));
    let (http, urls) = (env.http.clone(), Arc::new(urls));
    load::closed(clients, phase, move |client, n| {
        let (http, urls) = (http.clone(), urls.clone());
        async move { get_list(&http, &urls[(client * 7 + n as usize) % urls.len()], false).await }
    })
    .await
}

/// Stress test 1, agent swarm: registrations ramp 0 → 500 (the plan: over 10 minutes; here 2),
/// the swarm holds heartbeats and reports (the plan: 30 minutes; here 2 — each agent checks in
/// every 30 s and reports every 2 minutes), then a burst of 1,000 registrations in 2 minutes.
async fn stress_swarm(env: &Env, base: &str) -> anyhow::Result<Vec<Row>> {
    let plan = env.plan;
    let swarm = if plan.quick { 10 } else { 500 };
    let ramp_time = plan.span(2 * MINUTE);
    let peak = 2.0 * swarm as f64 / ramp_time.as_secs_f64();
    let ramp = registrations(
        env,
        base,
        &[Stage {
            duration: ramp_time,
            from: 0.0,
            to: peak,
        }],
    )
    .await;
    let agents = Agents::register(env, base, swarm.min(50)).await?;
    let hold_time = plan.span(2 * MINUTE);
    let (http, base_owned) = (env.http.clone(), base.to_owned());
    let rate = plan.per_second(swarm as f64 / 30.0 + swarm as f64 / 120.0);
    let hold = load::open(&[Stage::constant(rate, hold_time)], move |n| {
        let (http, base, agents) = (http.clone(), base_owned.clone(), agents.clone());
        async move {
            let key = agents.key(n as usize);
            if n % 5 == 4 {
                post_problem(&http, &base, key, n).await.is_some()
            } else {
                http.post(format!("{base}/api/v1/heartbeat/checkin"))
                    .bearer_auth(key)
                    .json(&json!({ "timestamp": chrono::Utc::now() }))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 200)
            }
        }
    })
    .await;
    let burst_count = if plan.quick { 20.0 } else { 1000.0 };
    let burst_time = plan.span(2 * MINUTE);
    let burst = registrations(
        env,
        base,
        &[Stage::constant(
            burst_count / burst_time.as_secs_f64(),
            burst_time,
        )],
    )
    .await;
    let ok = |s: &Samples| within(s, 0.05, 2000.0, None);
    Ok(vec![
        Row::from_samples(
            "X1",
            format!("stress 1 swarm: ramp to {swarm} registrations"),
            &ramp,
        )
        .judged("errors < 5 %, p95 < 2 s", ok(&ramp)),
        Row::from_samples("X1", "… hold: heartbeats + reports from the swarm", &hold)
            .judged("errors < 5 %, p95 < 2 s", ok(&hold)),
        Row::from_samples(
            "X1",
            format!("… burst: {burst_count:.0} registrations in 2 min"),
            &burst,
        )
        .judged("errors < 5 %, p95 < 2 s", ok(&burst)),
    ])
}

/// Stress test 2, database saturation: 100 concurrent readers and 10 concurrent writers over the
/// loaded datasets (the plan: 15 minutes on 1M problems and 5M missions; here one phase on the
/// generated 1M + 1M).
async fn stress_database(env: &Env, base: &str, agents: &Agents) -> Vec<Row> {
    let phase = env.plan.phase.max(env.plan.span(MINUTE));
    let reads = concurrent_reads(env, base, 100, phase);
    let (http, base_owned, agents) = (env.http.clone(), base.to_owned(), agents.clone());
    let writes = load::closed(10, phase, move |client, n| {
        let (http, base, agents) = (http.clone(), base_owned.clone(), agents.clone());
        async move {
            post_problem(&http, &base, agents.key(client), n)
                .await
                .is_some()
        }
    });
    let (reads, writes) = tokio::join!(reads, writes);
    vec![
        Row::from_samples("X2", "stress 2: 100 concurrent readers …", &reads).judged(
            "p95 read < 200 ms, no errors",
            within(&reads, 1e-9, 200.0, None),
        ),
        Row::from_samples("X2", "… with 10 concurrent writers", &writes).judged(
            "p95 write < 500 ms, no errors",
            within(&writes, 1e-9, 500.0, None),
        ),
    ]
}

/// Stress test 3, queue flood: 1,000 submissions in one minute; every one judged within 10 minutes.
async fn stress_queue_flood(env: &Env, db: &Db, stack: &Stack, agents: &Agents) -> Row {
    let count = if env.plan.quick { 20.0 } else { 1000.0 };
    let window = env.plan.span(MINUTE);
    let started = std::time::Instant::now();
    let (writes, verdicts) = submit_to_verdict(
        env,
        db,
        stack,
        agents,
        &[Stage::constant(count / window.as_secs_f64(), window)],
        Duration::from_secs(600),
    )
    .await;
    let drained = started.elapsed().as_secs_f64();
    let ok = verdicts.errors == 0
        && writes.errors == 0
        && drained < 600.0
        && verdicts.count() as f64 >= count;
    Row::from_samples(
        "X3",
        format!("stress 3: {count:.0} guardrail jobs in 1 min, time until all judged"),
        &verdicts,
    )
    .with_figure(drained, "s")
    .with_reference(format!(
        "{} submitted, {} POST errors",
        writes.count(),
        writes.errors
    ))
    .judged("all judged within 10 min", ok)
}
