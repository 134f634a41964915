//! Test support: a fresh database per test, the real NATS, a TCP proxy that can cut a dependency off,
//! and helpers to run the real binary.
#![allow(dead_code)]

pub mod fixtures;
pub mod judging;
pub mod people;
pub mod proxy;

use std::time::{SystemTime, UNIX_EPOCH};

use bw_infra::{
    CommonConfig, Secret,
    config::{DatabaseConfig, LogFormat, NatsConfig, TelemetryConfig},
};
use sqlx::{Connection, PgConnection};

/// Where the embedding model is (`scripts/bw setup` fetches it).
pub fn model_dir() -> std::path::PathBuf {
    std::env::var("BW_MODEL_DIR").map_or_else(
        |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".bw/models/all-MiniLM-L6-v2"),
        std::path::PathBuf::from,
    )
}

/// The production platform's guardrail: the local semantic classifier over the embedding model,
/// with that model for the duplicate check and search ([`Platform::spawn_with_search`]).
pub async fn spawn_with_semantic_guardrail() -> Platform {
    let dir = model_dir();
    let (embedder, semantic) = tokio::task::spawn_blocking(move || {
        let embedder = std::sync::Arc::new(
            bw_guardrail::embed::Embedder::load(&dir).expect("model (scripts/bw setup)"),
        );
        let semantic =
            bw_guardrail::classifier::Semantic::new(embedder.clone(), Default::default())
                .expect("classifier");
        (embedder, semantic)
    })
    .await
    .expect("blocking");
    Platform::spawn_with_search(std::sync::Arc::new(std::sync::Arc::new(semantic)), embedder).await
}

/// The maintenance database URL tests create their databases through.
pub fn admin_url() -> String {
    std::env::var("BW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The NATS the tests use.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn with_database(url: &str, db: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let (prefix, _) = base.rsplit_once('/').expect("database URL has a path");
    format!("{prefix}/{db}")
}

/// Creates an empty database of its own for one test (and, first thing in every test, installs the
/// TLS provider as the binary does) and returns its URL. Databases of earlier runs
/// older than an hour are dropped on the way.
pub async fn fresh_database() -> String {
    betterworld::install_crypto_provider();
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .expect("connect to BW_TEST_DATABASE_URL");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'bw_test_%'")
            .fetch_all(&mut admin)
            .await
            .expect("list test databases");
    for name in stale {
        let created = name
            .split('_')
            .nth(2)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) > 3600 {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    }
    let name = format!("bw_test_{now}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create test database");
    with_database(&admin_url(), &name)
}

/// A fresh database with every migration applied.
pub async fn migrated_database() -> String {
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    bw_infra::postgres::migrate(&pool).await.expect("migrate");
    pool.close().await;
    url
}

/// A configuration pointing at `database_url` and `nats_url`, with short timeouts.
pub fn common_config(database_url: &str, nats_url: &str) -> CommonConfig {
    CommonConfig {
        database: DatabaseConfig {
            url: Secret::new(database_url.to_owned()),
            max_connections: 4,
            connect_timeout: std::time::Duration::from_secs(3),
        },
        nats: NatsConfig {
            url: Secret::new(nats_url.to_owned()),
            connect_timeout: std::time::Duration::from_secs(3),
        },
        telemetry: TelemetryConfig {
            log_filter: "info".to_owned(),
            log_format: LogFormat::Json,
            otlp_endpoint: None,
            service_name: "betterworld-test".to_owned(),
        },
        shutdown_grace: std::time::Duration::from_secs(10),
    }
}

/// The socket address a `scheme://[user@]host:port/...` URL points at.
pub async fn socket_addr_of(url: &str, default_port: u16) -> std::net::SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let target = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    tokio::net::lookup_host(target)
        .await
        .expect("resolve")
        .next()
        .expect("an address")
}

/// Log lines written while a test runs, for assertions on what reached the log.
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// The process-wide capture: installed once as the global subscriber (a thread-scoped one would
    /// miss events from other runtime threads and races with tracing's callsite cache). Tests share
    /// it and pick out their own lines by request id.
    pub fn global() -> Self {
        static GLOBAL: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};
                let capture = LogCapture::default();
                tracing_subscriber::registry()
                    .with(tracing_subscriber::EnvFilter::new("debug"))
                    .with(bw_infra::telemetry::log::LogLayer::new(
                        LogFormat::Json,
                        capture.clone(),
                    ))
                    .init();
                capture
            })
            .clone()
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("log lock").clone()).expect("utf-8 logs")
    }

    /// Captured lines parsed as JSON.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON log line"))
            .collect()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A migrated database of its own, a JetStream stream of its own, and the pipeline's parts wired to
/// them as the roles wire them.
pub struct Pipeline {
    pub database_url: String,
    pub pool: sqlx::PgPool,
    pub pg_options: sqlx::postgres::PgConnectOptions,
    pub nats: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub stream: bw_infra::nats::EventsStream,
    pub metrics: std::sync::Arc<bw_infra::metrics::Metrics>,
    pub bus: bw_commands::CommandBus,
    /// Set by tests that alter the log on purpose: the teardown then does not verify it.
    tampered: std::sync::atomic::AtomicBool,
}

impl Pipeline {
    /// This test alters the log on purpose (to see the verifier name it): skip the teardown check.
    pub fn expect_tampering(&self) {
        self.tampered
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub async fn new() -> Self {
        let database_url = fresh_database().await;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(20)
            .connect(&database_url)
            .await
            .expect("connect");
        bw_infra::postgres::migrate(&pool).await.expect("migrate");
        let pg_options: sqlx::postgres::PgConnectOptions = database_url.parse().expect("options");
        let nats = async_nats::connect(nats_url()).await.expect("nats");
        let js = async_nats::jetstream::new(nats.clone());
        delete_stale_test_streams(&js).await;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let stream = bw_infra::nats::EventsStream {
            name: format!("BWT_{id}"),
            subject_prefix: format!("bwt.{id}"),
        };
        stream.apply(&js, None).await.expect("stream");
        let metrics = bw_infra::metrics::Metrics::new(Some(pool.clone()));
        let bus = bw_commands::CommandBus::new(pool.clone());
        Self {
            database_url,
            pool,
            pg_options,
            nats,
            js,
            stream,
            metrics,
            bus,
            tampered: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn relay(&self) -> bw_eventlog::relay::Relay {
        self.relay_named("relay")
    }

    pub fn relay_named(&self, name: &str) -> bw_eventlog::relay::Relay {
        let config = bw_eventlog::relay::RelayConfig {
            stream: self.stream.clone(),
            name: name.to_owned(),
            poll_interval: std::time::Duration::from_millis(20),
            standby_interval: std::time::Duration::from_millis(20),
            ..Default::default()
        };
        bw_eventlog::relay::Relay::new(
            self.pool.clone(),
            self.pg_options.clone(),
            self.js.clone(),
            config,
            self.metrics.relay.clone(),
        )
    }

    pub async fn projector(
        &self,
        projection: std::sync::Arc<dyn bw_projections::runtime::Projection>,
    ) -> bw_projections::runtime::Projector {
        self.projector_with(
            projection,
            bw_projections::runtime::ProjectorConfig::default(),
        )
        .await
    }

    pub async fn projector_with(
        &self,
        projection: std::sync::Arc<dyn bw_projections::runtime::Projection>,
        config: bw_projections::runtime::ProjectorConfig,
    ) -> bw_projections::runtime::Projector {
        bw_projections::runtime::Projector::start(
            self.pool.clone(),
            self.pg_options.clone(),
            &self.js,
            &self.stream,
            projection,
            self.metrics.projections.clone(),
            config,
        )
        .await
        .expect("projector starts")
    }

    /// Follows the stream from its start, to wait for publications as they happen.
    pub async fn follow(&self) -> Follower {
        let stream = self.js.get_stream(&self.stream.name).await.expect("stream");
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
            .await
            .expect("ordered consumer");
        Follower {
            messages: consumer.messages().await.expect("messages"),
            seen: std::collections::BTreeSet::new(),
        }
    }

    /// Every message in the stream: (global position, event id, subject), in stream order.
    pub async fn published(&self) -> Vec<(i64, uuid::Uuid, String)> {
        use futures::StreamExt;
        let stream = self.js.get_stream(&self.stream.name).await.expect("stream");
        let consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await
            .expect("ephemeral consumer");
        let mut out = Vec::new();
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(1000)
                .messages()
                .await
                .expect("fetch");
            let mut got = 0;
            while let Some(message) = batch.next().await {
                let message = message.expect("message");
                let envelope = bw_eventlog::envelope::EventEnvelope::from_message(
                    message.headers.as_ref(),
                    &message.payload,
                )
                .expect("envelope");
                out.push((
                    envelope.global_position,
                    envelope.event_id,
                    message.subject.to_string(),
                ));
                got += 1;
            }
            if got == 0 {
                return out;
            }
        }
    }
}

/// The whole platform in-process as `dev` runs it — gateway, relay and projectors — on a database
/// and a stream of its own, listening on a free port.
pub struct Platform {
    pub pipeline: Pipeline,
    pub base: String,
    pub http: reqwest::Client,
    pub shutdown: bw_infra::shutdown::Shutdown,
    /// The local object store's directory (evidence files).
    pub store_root: std::path::PathBuf,
}

impl Platform {
    pub async fn spawn() -> Self {
        Self::spawn_with(std::time::Duration::from_secs(5)).await
    }

    pub async fn spawn_with(consistency_wait: std::time::Duration) -> Self {
        Self::spawn_configured(consistency_wait, true).await
    }

    /// `projecting: false` leaves the read models behind the log, for tests of waiting on them.
    /// Rate limits are off (tests and measurements send bursts); see [`Platform::spawn_rate_limited`].
    pub async fn spawn_configured(consistency_wait: std::time::Duration, projecting: bool) -> Self {
        Self::spawn_full(consistency_wait, projecting, 0.0).await
    }

    /// With the production rate limits.
    pub async fn spawn_rate_limited() -> Self {
        Self::spawn_full(std::time::Duration::from_secs(5), true, 1.0).await
    }

    async fn spawn_full(
        consistency_wait: std::time::Duration,
        projecting: bool,
        rate_limit_scale: f64,
    ) -> Self {
        Self::spawn_judged(
            consistency_wait,
            projecting,
            rate_limit_scale,
            std::sync::Arc::new(bw_guardrail::classifier::AdminOnly),
            None,
        )
        .await
    }

    /// With the guardrail configured by `config` (trust policy, cache, duplicates), no classifier.
    pub async fn spawn_with_guardrail_config(
        config: bw_processes::guardrail::worker::GuardrailConfig,
    ) -> Self {
        Self::spawn_configured_guardrail(
            std::time::Duration::from_secs(5),
            true,
            0.0,
            std::sync::Arc::new(bw_guardrail::classifier::AdminOnly),
            None,
            config,
            0,
        )
        .await
    }

    /// Refusing agents' submissions from `bound` waiting for the guardrail on; `judging: false` runs
    /// no projector and no judge, so that everything submitted waits.
    pub async fn spawn_with_backlog_bound(bound: u64, judging: bool) -> Self {
        Self::spawn_configured_guardrail(
            std::time::Duration::from_secs(5),
            judging,
            0.0,
            std::sync::Arc::new(bw_guardrail::classifier::AdminOnly),
            None,
            Default::default(),
            bound,
        )
        .await
    }

    /// With `classifier` as the guardrail's Layer B (the worker runs whenever projections do).
    pub async fn spawn_with_classifier(
        classifier: std::sync::Arc<dyn bw_guardrail::Classifier>,
    ) -> Self {
        Self::spawn_judged(
            std::time::Duration::from_secs(5),
            true,
            0.0,
            classifier,
            None,
        )
        .await
    }

    /// With `classifier` and the semantic index and search built with `embedder`. Read-your-writes
    /// waits up to 30 s: the index embeds on CPU shared with every other test of the run.
    pub async fn spawn_with_search(
        classifier: std::sync::Arc<dyn bw_guardrail::Classifier>,
        embedder: std::sync::Arc<bw_guardrail::embed::Embedder>,
    ) -> Self {
        Self::spawn_judged(
            std::time::Duration::from_secs(30),
            true,
            0.0,
            classifier,
            Some(embedder),
        )
        .await
    }

    async fn spawn_judged(
        consistency_wait: std::time::Duration,
        projecting: bool,
        rate_limit_scale: f64,
        classifier: std::sync::Arc<dyn bw_guardrail::Classifier>,
        embedder: Option<std::sync::Arc<bw_guardrail::embed::Embedder>>,
    ) -> Self {
        Self::spawn_configured_guardrail(
            consistency_wait,
            projecting,
            rate_limit_scale,
            classifier,
            embedder,
            Default::default(),
            0,
        )
        .await
    }

    async fn spawn_configured_guardrail(
        consistency_wait: std::time::Duration,
        projecting: bool,
        rate_limit_scale: f64,
        classifier: std::sync::Arc<dyn bw_guardrail::Classifier>,
        embedder: Option<std::sync::Arc<bw_guardrail::embed::Embedder>>,
        config: bw_processes::guardrail::worker::GuardrailConfig,
        backlog_bound: u64,
    ) -> Self {
        let pipeline = Pipeline::new().await;
        let shutdown = bw_infra::shutdown::Shutdown::new();
        let relay = pipeline.relay();
        shutdown.spawn(relay.run(shutdown.triggered()));
        let mut projections = if projecting {
            let mut all = betterworld::roles::projections();
            all.extend(bw_processes::sagas::RewardSaga::all(&pipeline.bus));
            all
        } else {
            Vec::new()
        };
        if projecting {
            let mut worker = bw_processes::guardrail::worker::GuardrailWorker::new(
                pipeline.bus.clone(),
                classifier,
                config,
            )
            .with_metrics(pipeline.metrics.guardrail.clone());
            if let Some(embedder) = &embedder {
                worker = worker.with_duplicate_check(embedder.clone());
            }
            projections.push(std::sync::Arc::new(bw_processes::guardrail::queue::Intake));
            let judges = bw_processes::guardrail::queue::Judges::new(
                std::sync::Arc::new(worker),
                pipeline.pool.clone(),
                Default::default(),
            );
            let stop = shutdown.triggered();
            shutdown.spawn(async move {
                judges.run(stop).await.expect("guardrail judges");
            });
            if let Some(embedder) = &embedder {
                projections.push(std::sync::Arc::new(
                    bw_guardrail::index::SemanticIndex::new(embedder.clone()),
                ));
            }
        }
        for projection in projections {
            let projector = pipeline
                .projector_with(
                    projection,
                    bw_projections::runtime::ProjectorConfig {
                        fetch_wait: std::time::Duration::from_millis(200),
                        ..Default::default()
                    },
                )
                .await;
            shutdown.spawn(projector.run(shutdown.triggered()));
        }
        let store_root =
            std::env::temp_dir().join(format!("bw-objects-{}", uuid::Uuid::new_v4().simple()));
        let backpressure =
            std::sync::Arc::new(bw_gateway::backpressure::Backpressure::new(backlog_bound));
        let state = bw_gateway::AppState {
            rate_limiter: bw_gateway::ratelimit::RateLimiter::new(rate_limit_scale),
            metrics: pipeline.metrics.clone(),
            readiness: bw_infra::health::Readiness::new(std::time::Duration::from_secs(2)),
            limits: bw_gateway::state::Limits::default(),
            platform: Some(bw_gateway::state::Platform {
                bus: pipeline.bus.clone(),
                pool: pipeline.pool.clone(),
                consistency_wait,
                key_secret: bw_infra::Secret::new(
                    b"test secret of at least thirty-two bytes".to_vec(),
                ),
                heartbeat: std::sync::Arc::new(
                    bw_gateway::heartbeat::HeartbeatSigner::from_config(
                        "test-key",
                        "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=",
                        None,
                    )
                    .expect("test key"),
                ),
                notifier: std::sync::Arc::new(bw_infra::notify::DevMailbox::new(
                    pipeline.pool.clone(),
                )),
                tokens: std::sync::Arc::new(
                    bw_infra::crypto::keyring::Keyring::load(pipeline.pool.clone())
                        .await
                        .expect("access-token keys"),
                ),
                email_secret: bw_infra::Secret::new(b"test e-mail fingerprint secret".to_vec()),
                embedder: embedder.clone(),
                store: std::sync::Arc::new(bw_infra::storage::LocalStore::new(&store_root)),
                backpressure: backpressure.clone(),
            }),
        };
        shutdown.spawn(backpressure.run(
            pipeline.pool.clone(),
            pipeline.metrics.guardrail.clone(),
            shutdown.triggered(),
        ));
        let app = bw_gateway::Application::bind(
            "127.0.0.1:0".parse().expect("addr"),
            bw_gateway::router(state.clone()),
            state,
        )
        .await
        .expect("bind");
        let base = format!("http://{}/api/v1", app.local_addr().expect("addr"));
        shutdown.spawn(app.run_until_stopped(shutdown.triggered()));
        Self {
            pipeline,
            base,
            http: reqwest::Client::new(),
            shutdown,
            store_root,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A URL outside `/api/v1` (well-known documents, ops endpoints).
    pub fn root_url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches("/api/v1"))
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Every test ends verified: whatever flow it ran (commands, guardrail verdicts, sagas, rebuilds,
/// forgetting, restores), its log must pass `events verify` with no finding — chains, checkpoints and
/// leaves (issue 14). Skipped when the test already failed or altered the log on purpose.
impl Drop for Pipeline {
    fn drop(&mut self) {
        if std::thread::panicking() || self.tampered.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        assert_log_verifies_blocking(&self.database_url);
    }
}

/// Runs `events verify` on the database at `url` on a thread and runtime of its own (usable from
/// `Drop`, inside any test runtime) and panics on any finding or error.
pub fn assert_log_verifies_blocking(url: &str) {
    let url = url.to_owned();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let pool = sqlx::PgPool::connect(&url)
                .await
                .map_err(|e| e.to_string())?;
            let report = bw_eventlog::audit::verify_log(&pool, None).await;
            pool.close().await;
            report.map_err(|e| e.to_string())
        })
    })
    .join()
    .expect("the verifying thread");
    match outcome {
        Ok(report) => assert!(
            report.findings.is_empty(),
            "the test's log does not verify ({} findings): {:#?}",
            report.findings.len(),
            report.findings
        ),
        Err(e) => panic!("the test's log could not be verified: {e}"),
    }
}

/// Deletes the streams of earlier test runs (created by `Pipeline::new` and the process tests) that are
/// more than an hour old, so the shared NATS server does not accumulate them. Streams of tests running
/// now are younger and stay.
pub async fn delete_stale_test_streams(js: &async_nats::jetstream::Context) {
    use futures::StreamExt;
    let cutoff = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
        - 3600;
    let mut streams = js.streams();
    let mut stale = Vec::new();
    while let Some(info) = streams.next().await {
        let Ok(info) = info else { return };
        let name = &info.config.name;
        if (name.starts_with("BWT_") || name.starts_with("BWP_"))
            && info.created.unix_timestamp() < cutoff
        {
            stale.push(name.clone());
        }
    }
    for name in stale {
        let _ = js.delete_stream(&name).await;
    }
}

/// Publications of a stream as they arrive (an ordered consumer: pushed, no polling).
pub struct Follower {
    messages: async_nats::jetstream::consumer::pull::Ordered,
    seen: std::collections::BTreeSet<uuid::Uuid>,
}

impl Follower {
    /// Waits until `n` distinct events were published (bounded: 10 s, then the test fails).
    pub async fn until(&mut self, n: usize, what: &str) {
        use futures::StreamExt;
        let wait = async {
            while self.seen.len() < n {
                let message = self
                    .messages
                    .next()
                    .await
                    .expect("stream open")
                    .expect("message");
                let envelope = bw_eventlog::envelope::EventEnvelope::from_message(
                    message.headers.as_ref(),
                    &message.payload,
                )
                .expect("envelope");
                self.seen.insert(envelope.event_id);
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for: {what}"));
    }
}

/// Waits until `leading` says true (bounded: 10 s, then the test fails).
pub async fn until_leading(leading: &mut tokio::sync::watch::Receiver<bool>, what: &str) {
    tokio::time::timeout(std::time::Duration::from_secs(10), leading.wait_for(|l| *l))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
        .expect("relay alive");
}

/// Sends a request and reads its status, headers and JSON body (panicking, with the text, on a
/// body that is not JSON).
pub async fn send(
    request: reqwest::RequestBuilder,
) -> (
    reqwest::StatusCode,
    reqwest::header::HeaderMap,
    serde_json::Value,
) {
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

/// The first message a 422 gives for `field`, or "" when it names none.
pub fn field_error<'b>(body: &'b serde_json::Value, field: &str) -> &'b str {
    body["error"]["details"]["fields"][field][0]
        .as_str()
        .unwrap_or_default()
}

/// Recomputes the hash chain of one stream from the stored events, panicking at the first event
/// whose stored hash differs; returns how many events it checked.
pub async fn verify_chain(pool: &sqlx::PgPool, aggregate_id: &str) -> usize {
    type Row = (
        uuid::Uuid,
        String,
        String,
        i64,
        String,
        String,
        chrono::DateTime<chrono::Utc>,
        String,
        String,
        Vec<u8>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT event_id, aggregate_type, aggregate_id, sequence, event_type, event_version, recorded_at, payload::text, metadata::text, hash
         FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(aggregate_id)
    .fetch_all(pool)
    .await
    .expect("stream");
    let mut previous = bw_eventlog::canonical::GENESIS;
    for r in &rows {
        let recomputed = bw_eventlog::canonical::chain_hash(
            &previous,
            &bw_eventlog::canonical::EventForHash {
                event_id: r.0,
                aggregate_type: &r.1,
                aggregate_id: &r.2,
                sequence: r.3,
                event_type: &r.4,
                event_version: &r.5,
                recorded_at: r.6,
                payload: &r.7,
                metadata: &r.8,
            },
        )
        .expect("stored JSON has a canonical form");
        assert_eq!(
            recomputed.as_slice(),
            r.9.as_slice(),
            "event {} of stream {aggregate_id}",
            r.3
        );
        previous = recomputed;
    }
    rows.len()
}

/// Waits until an event of `event_type` on stream `aggregate_id` is in the log, woken by the
/// `NOTIFY bw_events` every command sends at commit (no polling on a timer); returns its global
/// position and payload.
pub async fn until_logged(
    pool: &sqlx::PgPool,
    event_type: &str,
    aggregate_id: &str,
) -> (i64, serde_json::Value) {
    until_logged_n(pool, event_type, aggregate_id, 1).await
}

/// [`until_logged`] for the `n`th such event; returns the newest.
pub async fn until_logged_n(
    pool: &sqlx::PgPool,
    event_type: &str,
    aggregate_id: &str,
    n: i64,
) -> (i64, serde_json::Value) {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool)
        .await
        .expect("listener");
    listener.listen("bw_events").await.expect("listen");
    loop {
        let found: Option<(i64, serde_json::Value)> = sqlx::query_as(
            "SELECT global_position, payload FROM events WHERE event_type = $1 AND aggregate_id = $2
               AND (SELECT count(*) FROM events WHERE event_type = $1 AND aggregate_id = $2) >= $3
             ORDER BY global_position DESC LIMIT 1",
        )
        .bind(event_type)
        .bind(aggregate_id)
        .bind(n)
        .fetch_optional(pool)
        .await
        .expect("query");
        if let Some(found) = found {
            return found;
        }
        tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
            .await
            .unwrap_or_else(|_| panic!("no {event_type} on {aggregate_id} within 10 s"))
            .expect("notification");
    }
}
