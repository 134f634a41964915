//! The performance targets P1–P8 (`../shared/brief/quality-bars.md`).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use cqrs_es::{Aggregate, CqrsFramework, DomainEvent, persist::PersistedEventStore};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::sync::{Mutex, mpsc};
use uuid::Uuid;

use super::{
    Db, Env, data,
    load::{self, Stage},
    stack::Stack,
    stats::{Row, Samples, median},
};

/// Agents registered through the API, with their keys.
#[derive(Debug, Clone)]
pub struct Agents {
    pub keys: Arc<Vec<String>>,
}

impl Agents {
    /// Registers `n` agents on the gateway at `base`.
    pub async fn register(env: &Env, base: &str, n: usize) -> anyhow::Result<Self> {
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let (status, body) = register_agent(&env.http, base).await?;
            anyhow::ensure!(
                status == 201,
                "agent registration answered {status}: {body}"
            );
            keys.push(
                body["data"]["apiKey"]
                    .as_str()
                    .context("no apiKey in the registration")?
                    .to_owned(),
            );
        }
        Ok(Self {
            keys: Arc::new(keys),
        })
    }

    /// The key of agent `i` (round robin).
    pub fn key(&self, i: usize) -> &str {
        &self.keys[i % self.keys.len()]
    }
}

/// `POST /auth/agents/register` with a fresh username; the status and the body.
pub async fn register_agent(http: &reqwest::Client, base: &str) -> anyhow::Result<(u16, Value)> {
    let username = format!("b{}", &Uuid::new_v4().simple().to_string()[..24]);
    let response = http
        .post(format!("{base}/api/v1/auth/agents/register"))
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(&json!({
            "username": username,
            "framework": "custom",
            "modelProvider": "anthropic",
            "modelName": "claude-haiku-4-5-20251001",
            "specializations": ["environmental_protection"],
            "soulSummary": "Load test agent"
        }))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// The body of a problem report (~ the size of the original plan's load-test problem).
pub fn problem_body(n: u64) -> Value {
    let (lat, lng) = data::CITIES[n as usize % data::CITIES.len()];
    json!({
        "title": format!("Load test problem {n}: river bank erosion near the school"),
        "description": "Heavy rains washed away part of the river bank next to the primary school; the \
                        footpath the children use is now a metre from the edge. Parents and teachers \
                        measured the damage this week and want the council to reinforce the bank.",
        "domain": "environmental_protection",
        "severity": "medium",
        "affectedPopulationEstimate": "1,000",
        "geographicScope": "local",
        "locationName": "Test City",
        "latitude": lat,
        "longitude": lng,
        "dataSources": [],
        "evidenceLinks": []
    })
}

/// `POST /problems` as agent `key` with an `Idempotency-Key`; the new problem's id on 202.
pub async fn post_problem(http: &reqwest::Client, base: &str, key: &str, n: u64) -> Option<Uuid> {
    let response = http
        .post(format!("{base}/api/v1/problems"))
        .bearer_auth(key)
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(&problem_body(n))
        .send()
        .await
        .ok()?;
    if response.status().as_u16() != 202 {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    body["data"]["problemId"].as_str()?.parse().ok()
}

/// `GET url`, successful when it answers 200 with a `data` array (non-empty when `non_empty`).
pub async fn get_list(http: &reqwest::Client, url: &str, non_empty: bool) -> bool {
    let Ok(response) = http.get(url).send().await else {
        return false;
    };
    if response.status().as_u16() != 200 {
        return false;
    }
    match response.json::<Value>().await {
        Ok(body) => body["data"]
            .as_array()
            .is_some_and(|d| !non_empty || !d.is_empty()),
        Err(_) => false,
    }
}

/// Waits until every id sent on the returned channel satisfies `condition` (an SQL expression over
/// `rm_problems`), polling every millisecond; the latency of each runs from the instant sent with
/// it. Ids still waiting `patience` after the sender closed count as errors.
pub fn watch(
    pool: sqlx::PgPool,
    condition: &'static str,
    patience: Duration,
) -> (
    mpsc::UnboundedSender<(Uuid, Instant)>,
    tokio::task::JoinHandle<Samples>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Uuid, Instant)>();
    let task = tokio::spawn(async move {
        let sql = format!(
            "SELECT problem_id FROM rm_problems WHERE problem_id = ANY($1) AND ({condition})"
        );
        let mut samples = Samples::default();
        let mut pending: HashMap<Uuid, Instant> = HashMap::new();
        let mut closed_at: Option<Instant> = None;
        let started = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_millis(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            loop {
                match rx.try_recv() {
                    Ok((id, at)) => {
                        pending.insert(id, at);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed_at.get_or_insert_with(Instant::now);
                        break;
                    }
                }
            }
            if !pending.is_empty() {
                let ids: Vec<Uuid> = pending.keys().copied().collect();
                if let Ok(found) = sqlx::query_scalar::<_, Uuid>(&sql)
                    .bind(&ids)
                    .fetch_all(&pool)
                    .await
                {
                    for id in found {
                        if let Some(at) = pending.remove(&id) {
                            samples.ok(at.elapsed());
                        }
                    }
                }
            }
            if let Some(closed) = closed_at
                && (pending.is_empty() || closed.elapsed() > patience)
            {
                samples.errors += pending.len() as u64;
                samples.elapsed = started.elapsed();
                return samples;
            }
        }
    });
    (tx, task)
}

/// Waits until projection `name` has applied every event of the log (after a backlog), up to
/// `within`.
pub async fn caught_up(db: &Db, name: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let (head, at): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT max(global_position) FROM events),
                    (SELECT position FROM projection_checkpoints WHERE projection = $1)",
        )
        .bind(name)
        .fetch_one(&db.pool)
        .await?;
        if head.unwrap_or(0) <= at.unwrap_or(0) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "projection {name} did not catch up within {within:?} (at {at:?} of {head:?})"
        );
        // The projector keeps its checkpoint in PostgreSQL and sends no signal: poll it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// P1 and P2: the write path.

/// The library contender of P1: one new aggregate per command, one event carrying the payload.
#[derive(Debug, Default, Serialize, Deserialize)]
struct BenchAggregate {
    created: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum BenchEvent {
    Created { payload: Value },
}

impl DomainEvent for BenchEvent {
    fn event_type(&self) -> String {
        "Created".to_owned()
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("already created")]
struct AlreadyCreated;

impl Aggregate for BenchAggregate {
    const TYPE: &'static str = "BenchAggregate";
    type Command = Value;
    type Event = BenchEvent;
    type Error = AlreadyCreated;
    type Services = ();

    async fn handle(
        &mut self,
        payload: Value,
        _: &(),
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), AlreadyCreated> {
        if self.created {
            return Err(AlreadyCreated);
        }
        sink.write(BenchEvent::Created { payload }, self).await;
        Ok(())
    }

    fn apply(&mut self, _: BenchEvent) {
        self.created = true;
    }
}

/// The tables of the two references (postgres-es's as its `db/init.sql` defines them).
async fn reference_tables(db: &Db) -> anyhow::Result<()> {
    for sql in [
        "CREATE TABLE IF NOT EXISTS bench_raw_events (
             id bigserial PRIMARY KEY, event_id uuid NOT NULL UNIQUE, aggregate_id text NOT NULL,
             payload jsonb NOT NULL, metadata jsonb NOT NULL, recorded_at timestamptz NOT NULL)",
        "CREATE TABLE IF NOT EXISTS bench_es_events (
             aggregate_type text NOT NULL, aggregate_id text NOT NULL,
             sequence bigint CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL,
             event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL,
             PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
        "CREATE TABLE IF NOT EXISTS bench_es_snapshots (
             aggregate_type text NOT NULL, aggregate_id text NOT NULL,
             last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
             current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL, payload json NOT NULL,
             PRIMARY KEY (aggregate_type, aggregate_id, last_sequence))",
    ] {
        sqlx::query(sql).execute(&db.pool).await?;
    }
    Ok(())
}

/// The raw ceiling: `clients` connections of their own, each inserting one event-sized row per
/// transaction (autocommit), fsync on, as PostgreSQL is configured.
async fn raw_ceiling(
    db: &Db,
    clients: usize,
    phase: Duration,
    payload: &str,
    metadata: &str,
) -> anyhow::Result<Samples> {
    let mut connections = Vec::new();
    for _ in 0..clients {
        connections.push(Mutex::new(PgConnection::connect(&db.url).await?));
    }
    let connections = Arc::new(connections);
    let (payload, metadata) = (Arc::new(payload.to_owned()), Arc::new(metadata.to_owned()));
    Ok(load::closed(clients, phase, move |client, _| {
        let (connections, payload, metadata) =
            (connections.clone(), payload.clone(), metadata.clone());
        async move {
            let mut conn = connections[client].lock().await;
            sqlx::query(
                "INSERT INTO bench_raw_events (event_id, aggregate_id, payload, metadata, recorded_at)
                 VALUES ($1, $2, $3::jsonb, $4::jsonb, now())",
            )
            .bind(Uuid::now_v7())
            .bind(Uuid::now_v7().to_string())
            .bind(payload.as_str())
            .bind(metadata.as_str())
            .execute(&mut *conn)
            .await
            .is_ok()
        }
    })
    .await)
}

/// cqrs-es + postgres-es used directly: one new aggregate per command, `clients` tasks on a pool of
/// `clients` connections (the library's defaults otherwise).
async fn library(
    db: &Db,
    clients: usize,
    phase: Duration,
    payload: &Value,
    metadata: &Value,
) -> anyhow::Result<Samples> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(clients as u32)
        .connect(&db.url)
        .await?;
    let repo = postgres_es::PostgresEventRepository::new(pool.clone())
        .with_tables("bench_es_events", "bench_es_snapshots");
    let store: PersistedEventStore<_, BenchAggregate> = PersistedEventStore::new_event_store(repo);
    let cqrs = Arc::new(CqrsFramework::new(store, vec![], ()));
    let metadata: HashMap<String, String> = metadata
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
                .collect()
        })
        .unwrap_or_default();
    let (payload, metadata) = (Arc::new(payload.clone()), Arc::new(metadata));
    let samples = load::closed(clients, phase, move |_, _| {
        let (cqrs, payload, metadata) = (cqrs.clone(), payload.clone(), metadata.clone());
        async move {
            cqrs.execute_with_metadata(
                &Uuid::now_v7().to_string(),
                (*payload).clone(),
                (*metadata).clone(),
            )
            .await
            .is_ok()
        }
    })
    .await;
    pool.close().await;
    Ok(samples)
}

/// `POST /problems` end to end: `clients × 4` HTTP clients (so the gateway's `clients`
/// connections stay busy while requests are parsed and answered), agents round robin.
async fn http_writes(env: &Env, stack: &Stack, agents: &Agents, phase: Duration) -> Samples {
    let (http, base, agents) = (env.http.clone(), stack.base.clone(), agents.clone());
    load::closed(env.plan.clients * 4, phase, move |client, n| {
        let (http, base, agents) = (http.clone(), base.clone(), agents.clone());
        async move {
            post_problem(&http, &base, agents.key(client), n)
                .await
                .is_some()
        }
    })
    .await
}

/// P1 (and P2 when asked): the write path in the database `_write`.
pub async fn write_path(env: &mut Env, p1: bool, p2: bool) -> anyhow::Result<Vec<Row>> {
    let db = env.db("_write").await?;
    let clients = env.plan.clients;
    let mut rows = Vec::new();
    if p1 {
        let stack = env.start(&db, &["serve"], clients as u32).await?;
        let result = p1_runs(env, &db, &stack).await;
        stack.stop(Duration::from_secs(30)).await;
        rows.extend(result?);
    }
    if p2 {
        let stack = env.start(&db, &["serve", "relay", "project"], 16).await?;
        let result = async {
            caught_up(&db, "problem_feed", Duration::from_secs(3600)).await?;
            freshness(env, &db, &stack).await
        }
        .await;
        stack.stop(Duration::from_secs(30)).await;
        rows.extend(result?);
    }
    Ok(rows)
}

async fn p1_runs(env: &Env, db: &Db, stack: &Stack) -> anyhow::Result<Vec<Row>> {
    let plan = env.plan;
    let agents = Agents::register(env, &stack.base, plan.clients * 4).await?;
    // Warm-up (connections, caches, plans), which also writes the payload the references copy.
    let warm = http_writes(env, stack, &agents, plan.phase / 3).await;
    anyhow::ensure!(
        warm.count() > 0,
        "no POST /problems succeeded during the warm-up ({} errors)",
        warm.errors
    );
    let (payload, metadata): (Value, Value) = sqlx::query_as(
        "SELECT payload, metadata FROM events WHERE event_type = 'ProblemReported'
         ORDER BY global_position DESC LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await?;
    let (payload_text, metadata_text) = (payload.to_string(), metadata.to_string());
    reference_tables(db).await?;
    let (mut raw, mut lib, mut api) = (Vec::new(), Vec::new(), Vec::new());
    let (mut raw_s, mut lib_s, mut api_s) =
        (Samples::default(), Samples::default(), Samples::default());
    for _ in 0..plan.runs {
        let r = raw_ceiling(db, plan.clients, plan.phase, &payload_text, &metadata_text).await?;
        let l = library(db, plan.clients, plan.phase, &payload, &metadata).await?;
        let h = http_writes(env, stack, &agents, plan.phase).await;
        raw.push(r.throughput());
        lib.push(l.throughput());
        api.push(h.throughput());
        raw_s.merge(r);
        lib_s.merge(l);
        api_s.merge(h);
    }
    let (raw_m, lib_m, api_m) = (median(&raw), median(&lib), median(&api));
    let bytes = payload_text.len() + metadata_text.len();
    let runs = plan.runs;
    let mut reference = Row::from_samples(
        "ref",
        format!(
            "raw INSERT, 1 row ({bytes} B) per transaction, {} connections (median of {runs})",
            plan.clients
        ),
        &raw_s,
    );
    reference.throughput = Some(raw_m);
    let mut library_row = Row::from_samples(
        "ref",
        format!(
            "cqrs-es + postgres-es directly, {} connections, no HTTP (median of {runs})",
            plan.clients
        ),
        &lib_s,
    )
    .with_reference(format!("raw {raw_m:.0}/s"))
    .with_figure(ratio(lib_m, raw_m), "×")
    .judged("(0.61–0.70 × seen)", true);
    library_row.throughput = Some(lib_m);
    library_row.verdict = super::stats::Verdict::Info;
    let mut p1 = Row::from_samples(
        "P1",
        format!(
            "POST /problems end to end, {} HTTP clients, pool of {} (median of {runs})",
            plan.clients * 4,
            plan.clients
        ),
        &api_s,
    )
    .with_reference(format!("raw {raw_m:.0}/s; library {lib_m:.0}/s"))
    .with_figure(ratio(api_m, raw_m), "×")
    .judged("≥ 0.75 × raw", ratio(api_m, raw_m) >= 0.75);
    p1.throughput = Some(api_m);
    Ok(vec![reference, library_row, p1])
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// P2: problems reported at a fixed rate; from each acknowledgement until its row is in the feed.
async fn freshness(env: &Env, db: &Db, stack: &Stack) -> anyhow::Result<Vec<Row>> {
    let plan = env.plan;
    let agents = Agents::register(env, &stack.base, 16).await?;
    let rate = plan.per_second(500.0);
    let stages = [Stage::constant(rate, plan.phase)];
    let (writes, fresh) = submit_and_watch(
        env,
        db,
        stack,
        &agents,
        &stages,
        "true",
        Duration::from_secs(30),
    )
    .await;
    let p = fresh.percentiles();
    let ok = p.p50_ms.is_some_and(|v| v < 10.0)
        && p.p99_ms.is_some_and(|v| v < 50.0)
        && fresh.errors == 0;
    let mut row = Row::from_samples(
        "P2",
        format!("acknowledged → in the problem feed, {rate:.0} commands/s offered"),
        &fresh,
    )
    .with_reference(format!(
        "POST p99 {:.1} ms, {} errors",
        writes.quantile_ms(0.99).unwrap_or_default(),
        writes.errors
    ))
    .judged("p50 < 10 ms, p99 < 50 ms", ok);
    row.throughput = Some(writes.throughput());
    Ok(vec![row])
}

// ---------------------------------------------------------------------------------------------
// P3: rebuild.

pub async fn p3(env: &mut Env) -> anyhow::Result<Vec<Row>> {
    let db = env.db("_log").await?;
    data::problem_log(&db.pool, env.plan.scale).await?;
    let projection = crate::rebuild::named("problem_feed")?;
    let report = crate::rebuild::rebuild(&db.pool, projection.as_ref()).await?;
    // The reference: COPY of the rows the rebuild produced into a table with the same indexes.
    let mut conn = db.pool.acquire().await?;
    let mut rows = Vec::new();
    {
        use futures::TryStreamExt as _;
        let mut out = conn.copy_out_raw("COPY rm_problems TO STDOUT").await?;
        while let Some(chunk) = out.try_next().await? {
            rows.extend_from_slice(&chunk);
        }
    }
    sqlx::query("DROP TABLE IF EXISTS bench_copy")
        .execute(&mut *conn)
        .await?;
    sqlx::query("CREATE TABLE bench_copy (LIKE rm_problems INCLUDING ALL)")
        .execute(&mut *conn)
        .await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_problems")
        .fetch_one(&mut *conn)
        .await?;
    let started = Instant::now();
    let mut copy = conn.copy_in_raw("COPY bench_copy FROM STDIN").await?;
    copy.send(rows).await?;
    copy.finish().await?;
    let copy_seconds = started.elapsed().as_secs_f64();
    sqlx::query("DROP TABLE bench_copy")
        .execute(&mut *conn)
        .await?;
    let copy_rate = count as f64 / copy_seconds.max(1e-9);
    let figure = ratio(report.events_per_second, copy_rate);
    let mut row = Row::figure(
        "P3",
        format!(
            "rebuild problem_feed: {} events in {:.1} s (read, apply, swap)",
            report.events, report.seconds
        ),
        figure,
        "×",
    )
    .with_reference(format!(
        "COPY {count} rows: {copy_seconds:.1} s, {copy_rate:.0} rows/s"
    ))
    .judged(
        "≥ 0.5 × COPY and ≥ 50,000 events/s",
        figure >= 0.5 && report.events_per_second >= 50_000.0,
    );
    row.throughput = Some(report.events_per_second);
    row.samples = report.events;
    Ok(vec![row])
}

// ---------------------------------------------------------------------------------------------
// Datasets of the platform database, P4, P5.

/// Loads the feed and missions datasets the read benchmarks need.
pub async fn datasets(env: &Env, db: &Db, feed: bool, missions: bool) -> anyhow::Result<()> {
    if feed {
        data::feed_problems(&db.pool, env.plan.scale).await?;
    }
    if missions {
        data::missions(&db.pool, env.plan.scale).await?;
    }
    Ok(())
}

/// An open loop of `GET` requests at `rate`/s for `phase`, over `urls` round robin.
pub async fn get_at(
    env: &Env,
    urls: Vec<String>,
    rate: f64,
    phase: Duration,
    non_empty: bool,
) -> Samples {
    let (http, urls) = (env.http.clone(), Arc::new(urls));
    load::open(&[Stage::constant(rate, phase)], move |n| {
        let (http, urls) = (http.clone(), urls.clone());
        async move { get_list(&http, &urls[n as usize % urls.len()], non_empty).await }
    })
    .await
}

pub async fn p4(env: &Env, stack: &Stack) -> anyhow::Result<Vec<Row>> {
    let rate = env.plan.per_second(2000.0);
    let url = format!("{}/api/v1/problems?limit=20", stack.base);
    // Warm-up: connections and the feed index's pages.
    get_at(env, vec![url.clone()], rate / 4.0, env.plan.phase / 3, true).await;
    let s = get_at(env, vec![url], rate, env.plan.phase, true).await;
    let p99 = s.quantile_ms(0.99);
    let row = Row::from_samples(
        "P4",
        format!(
            "GET /problems?limit=20 at {rate:.0} req/s offered, {} problems",
            env.plan.scale
        ),
        &s,
    )
    .judged(
        "p99 < 20 ms at 2,000 req/s",
        p99.is_some_and(|v| v < 20.0) && s.error_rate() < 0.001 && rate >= 2000.0,
    );
    Ok(vec![row])
}

/// Nearby queries around the generated cities (offset a little, so no two are alike).
pub fn nearby_urls(base: &str, radius: u32, limit: u32, count: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(5);
    (0..count)
        .map(|i| {
            let (lat, lng) = data::CITIES[i % data::CITIES.len()];
            let (lat, lng) = (lat + rng.gen_range(-0.2..0.2), lng + rng.gen_range(-0.2..0.2));
            format!("{base}/api/v1/missions/nearby?lat={lat:.4}&lng={lng:.4}&radius={radius}&limit={limit}")
        })
        .collect()
}

pub async fn p5(env: &Env, stack: &Stack) -> anyhow::Result<Vec<Row>> {
    let rate = env.plan.per_second(200.0);
    let urls = nearby_urls(&stack.base, 25, 20, 400);
    get_at(env, urls.clone(), rate / 4.0, env.plan.phase / 3, true).await;
    let s = get_at(env, urls, rate, env.plan.phase, true).await;
    let p95 = s.quantile_ms(0.95);
    Ok(vec![
        Row::from_samples(
            "P5",
            format!(
                "GET /missions/nearby (25 km, 20 nearest) at {rate:.0} req/s, {} missions",
                env.plan.scale
            ),
            &s,
        )
        .judged(
            "p95 < 20 ms",
            p95.is_some_and(|v| v < 20.0) && s.error_rate() < 0.001,
        ),
    ])
}

// ---------------------------------------------------------------------------------------------
// P6: similarity search.

pub async fn p6(env: &mut Env) -> anyhow::Result<Vec<Row>> {
    let db = env.db("").await?;
    data::embeddings(&db.pool, env.plan.scale).await?;
    let centres = data::centres(data::CLUSTERS);
    let mut rng = StdRng::seed_from_u64(42);
    let queries: Vec<Vec<f32>> = (0..if env.plan.quick { 10 } else { 100 })
        .map(|_| data::near(&centres[rng.gen_range(0..centres.len())], &mut rng))
        .collect();
    // Exact answers: the same query with the index turned off (a parallel sequential scan), on a
    // connection of its own, closed afterwards (a pooled one would take the setting back to the
    // pool, and every later query on it would scan the table).
    let mut exact_conn = db.pool.acquire().await?.detach();
    sqlx::query("SET enable_indexscan = off")
        .execute(&mut exact_conn)
        .await?;
    let knn = "SELECT content_id FROM rm_search ORDER BY embedding <=> $1::vector LIMIT 10";
    let mut exact = Vec::new();
    let mut exact_samples = Samples::default();
    let started = Instant::now();
    for q in &queries {
        let t = Instant::now();
        let ids: Vec<Uuid> = sqlx::query_scalar(knn)
            .bind(data::vector_text(q))
            .fetch_all(&mut exact_conn)
            .await?;
        exact_samples.ok(t.elapsed());
        exact.push(ids);
    }
    exact_samples.elapsed = started.elapsed();
    sqlx::Connection::close(exact_conn).await?;
    let mut rows = vec![Row::from_samples(
        "ref",
        "exact top 10 (sequential scan)",
        &exact_samples,
    )];
    // The HNSW index at pgvector's default search width (40), the platform's and wider ones: the
    // recall each buys and what it costs.
    let platform = bw_guardrail::index::HNSW_EF_SEARCH;
    let mut widths = vec![40, 100, 200, 400, platform];
    widths.sort_unstable();
    widths.dedup();
    for ef in widths {
        let label = match ef {
            40 => "hnsw ef_search 40 (pgvector's default)".to_owned(),
            ef if ef == platform => format!("hnsw ef_search {ef} (the platform's)"),
            ef => format!("hnsw ef_search {ef}"),
        };
        let mut conn = db.pool.acquire().await?.detach();
        sqlx::query(&format!("SET hnsw.ef_search = {ef}"))
            .execute(&mut conn)
            .await?;
        let mut hits = 0usize;
        let mut samples = Samples::default();
        let started = Instant::now();
        let deadline = started + env.plan.phase;
        let mut first = true;
        while first || Instant::now() < deadline {
            for (q, truth) in queries.iter().zip(&exact) {
                let t = Instant::now();
                let ids: Vec<Uuid> = sqlx::query_scalar(knn)
                    .bind(data::vector_text(q))
                    .fetch_all(&mut conn)
                    .await?;
                samples.ok(t.elapsed());
                if first {
                    hits += ids.iter().filter(|id| truth.contains(id)).count();
                }
            }
            first = false;
        }
        samples.elapsed = started.elapsed();
        sqlx::Connection::close(conn).await?;
        let recall = hits as f64 / (10 * queries.len()).max(1) as f64;
        let p95 = samples.quantile_ms(0.95);
        rows.push(
            Row::from_samples(
                "P6",
                format!("top 10 by cosine, {label}, {} vectors", env.plan.scale),
                &samples,
            )
            .with_reference(format!(
                "exact p95 {:.0} ms",
                exact_samples.quantile_ms(0.95).unwrap_or_default()
            ))
            .with_figure(recall, "recall@10")
            .judged(
                "p95 < 20 ms, recall@10 ≥ 0.95",
                p95.is_some_and(|v| v < 20.0) && recall >= 0.95,
            ),
        );
    }
    // The platform's own search query (keyword and vector halves fused) with a vector.
    let mut samples = Samples::default();
    let started = Instant::now();
    for q in &queries {
        let t = Instant::now();
        bw_guardrail::index::search(&db.pool, "water well", Some(q), None, None, 10).await?;
        samples.ok(t.elapsed());
    }
    samples.elapsed = started.elapsed();
    rows.push(
        Row::from_samples(
            "P6",
            "the platform's search query (keyword + vector, fused), no embedding",
            &samples,
        )
        .judged(
            "p95 < 20 ms",
            samples.quantile_ms(0.95).is_some_and(|v| v < 20.0),
        ),
    );
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// P7: guardrail.

/// Layer A + the local semantic classifier on every labelled item, one at a time.
pub async fn p7_classifier(env: &Env) -> anyhow::Result<Vec<Row>> {
    let dir = env.model_dir.clone();
    let limit = if env.plan.quick { 20 } else { usize::MAX };
    let measured = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Duration>> {
        let items = bw_guardrail::corpus::load(&bw_guardrail::corpus::test_split_path())?;
        let embedder = bw_guardrail::embed::Embedder::load(&dir)
            .map_err(|e| anyhow::anyhow!("BW_MODEL_DIR: {e} (run `scripts/bw setup`)"))?;
        let classifier =
            bw_guardrail::classifier::Semantic::new(Arc::new(embedder), Default::default())?;
        let items = items.into_iter().take(limit).collect();
        Ok(bw_guardrail::eval::measure(&classifier, items)?
            .into_iter()
            .map(|m| m.duration)
            .collect())
    })
    .await??;
    let mut samples = Samples::default();
    for d in &measured {
        samples.ok(*d);
        samples.elapsed += *d;
    }
    let p95 = samples.quantile_ms(0.95);
    Ok(vec![
        Row::from_samples(
            "P7",
            "guardrail per item: Layer A + semantic classifier (one thread)",
            &samples,
        )
        .judged("p95 < 30 ms", p95.is_some_and(|v| v < 30.0)),
    ])
}

/// Problems submitted at the arrivals of `stages`: the POST latencies and, from each
/// acknowledgement, the time until the guardrail's verdict is in the feed's read model.
pub async fn submit_to_verdict(
    env: &Env,
    db: &Db,
    stack: &Stack,
    agents: &Agents,
    stages: &[Stage],
    patience: Duration,
) -> (Samples, Samples) {
    let condition = "guardrail_status <> 'pending'";
    submit_and_watch(env, db, stack, agents, stages, condition, patience).await
}

/// Problems submitted at the arrivals of `stages`: the POST latencies and, from each
/// acknowledgement, the time until its row in the feed's read model meets `condition`.
async fn submit_and_watch(
    env: &Env,
    db: &Db,
    stack: &Stack,
    agents: &Agents,
    stages: &[Stage],
    condition: &'static str,
    patience: Duration,
) -> (Samples, Samples) {
    let (tx, watcher) = watch(db.pool.clone(), condition, patience);
    let (http, base, agents) = (env.http.clone(), stack.base.clone(), agents.clone());
    let writes = load::open(stages, move |n| {
        let (http, base, agents, tx) = (http.clone(), base.clone(), agents.clone(), tx.clone());
        async move {
            match post_problem(&http, &base, agents.key(n as usize), n).await {
                Some(id) => tx.send((id, Instant::now())).is_ok(),
                None => false,
            }
        }
    })
    .await;
    let watched = watcher.await.unwrap_or_default();
    (writes, watched)
}

pub async fn p7_verdict(
    env: &Env,
    db: &Db,
    stack: &Stack,
    agents: &Agents,
) -> anyhow::Result<Vec<Row>> {
    let rate = env.plan.per_second(5.0);
    let (_, verdicts) = submit_to_verdict(
        env,
        db,
        stack,
        agents,
        &[Stage::constant(rate, env.plan.phase)],
        Duration::from_secs(60),
    )
    .await;
    let p95 = verdicts.quantile_ms(0.95);
    Ok(vec![
        Row::from_samples(
            "P7",
            format!("submit → guardrail verdict in the read model, {rate:.0}/s"),
            &verdicts,
        )
        .judged(
            "p95 < 200 ms",
            p95.is_some_and(|v| v < 200.0) && verdicts.errors == 0,
        ),
    ])
}

// ---------------------------------------------------------------------------------------------
// P8: memory.

/// The gateway's peak resident memory while P4 ran.
pub fn p8_gateway(stack: &Stack) -> Row {
    let mb = stack.peak_rss_mb("serve").unwrap_or_default();
    Row::figure("P8", "gateway (serve) peak RSS during P4's load", mb, "MB")
        .judged("< 100 MB", mb > 0.0 && mb < 100.0)
}

/// `dev` (every role and the embedding model) under a mixed load: feed reads and problem reports.
pub async fn p8_dev(env: &Env, db: &Db) -> anyhow::Result<Vec<Row>> {
    let stack = env.start(db, &["dev"], 16).await?;
    let result = async {
        let agents = Agents::register(env, &stack.base, 4).await?;
        stack.reset_rss();
        let reads = get_at(
            env,
            vec![format!("{}/api/v1/problems?limit=20", stack.base)],
            env.plan.per_second(300.0),
            env.plan.phase,
            true,
        );
        let stages = [Stage::constant(env.plan.per_second(10.0), env.plan.phase)];
        let writes = submit_to_verdict(env, db, &stack, &agents, &stages, Duration::from_secs(60));
        let (reads, (writes, _)) = tokio::join!(reads, writes);
        anyhow::Ok((reads, writes))
    }
    .await;
    let mb = stack.peak_rss_mb("dev").unwrap_or_default();
    stack.stop(Duration::from_secs(30)).await;
    let (reads, writes) = result?;
    Ok(vec![
        Row::figure(
            "P8",
            "dev (all roles + model) peak RSS, feed reads + reports + guardrail",
            mb,
            "MB",
        )
        .with_reference(format!(
            "{} reads, {} reports, {} errors",
            reads.count(),
            writes.count(),
            reads.errors + writes.errors
        ))
        .judged("< 400 MB", mb > 0.0 && mb < 400.0),
    ])
}
