//! What each subcommand runs.
//!
//! Every role follows the same life: connect to its dependencies (failing fast with a line naming
//! the variable at fault), start its background tasks, serve its HTTP endpoints until
//! SIGTERM/SIGINT, then drain — stop accepting, finish in-flight requests, let each task finish its
//! unit of work within `BW_SHUTDOWN_GRACE` — and close its pools.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use bw_commands::CommandBus;
use bw_eventlog::relay::{Relay, RelayConfig};
use bw_gateway::{
    AppState, Application,
    heartbeat::HeartbeatSigner,
    state::{Limits, Platform},
};
use bw_infra::{
    CommonConfig, Secret,
    config::HttpConfig,
    crypto::keyring::Keyring,
    health::{self, NatsCheck, PostgresCheck, Readiness},
    metrics::Metrics,
    nats, postgres,
    shutdown::{Shutdown, termination_signal},
};
use bw_projections::{
    runtime::{Projection, Projector, ProjectorConfig},
    status::ProjectionsCheck,
};
use sqlx::{PgPool, postgres::PgConnectOptions};
use tokio::task::JoinHandle;

use crate::cli::{
    ApiArgs, Command, DevArgs, MigrateArgs, ProjectArgs, ProjectionsCommand, ServeArgs, StreamArgs,
};

/// How often readiness is re-checked in the background (keeps `bw_ready` current).
const READINESS_INTERVAL: Duration = Duration::from_secs(10);
/// Upper bound of one readiness check.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often expired idempotency records are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// Runs the chosen subcommand to completion.
pub async fn run(common: CommonConfig, command: Command, shutdown: Shutdown) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(common, args, shutdown).await,
        Command::Relay(args) => relay(common, args, shutdown).await,
        Command::Project(args) => project(common, args, shutdown).await,
        Command::Guardrail(cli) => match cli.command {
            Some(crate::cli::GuardrailCommand::Eval(args)) => crate::evaluate::run(args).await,
            Some(crate::cli::GuardrailCommand::Train(args)) => crate::evaluate::train(args).await,
            None => guardrail(common, cli.run, shutdown).await,
        },
        Command::Dev(args) => dev(common, *args, shutdown).await,
        Command::Migrate(args) => migrate(common, args).await,
        Command::Projections(command) => projections_command(common, command).await,
        Command::Seed(args) => crate::seed::run(common, args).await,
        Command::Mailbox(args) => mailbox(common, args).await,
        Command::Admin(command) => crate::admin::run(common, command).await,
        Command::Ledger(crate::cli::LedgerCommand::Verify) => ledger_verify(common).await,
        Command::Events(command) => crate::audit::run(common, command).await,
        Command::Bench(args) => crate::bench::run(common, args).await,
        Command::Backup { to } => {
            let pool = postgres::connect(&common.database).await?;
            postgres::ensure_migrated(&pool).await?;
            let manifest = crate::backup::backup(&pool, &to).await?;
            pool.close().await;
            crate::report_then(&manifest, None)
        }
        Command::Restore { from, public_key } => {
            let pinned = public_key
                .as_deref()
                .map(crate::audit::parse_public_key)
                .transpose()?;
            let pool = postgres::connect(&common.database).await?;
            postgres::ensure_migrated(&pool).await?;
            let report = crate::backup::restore(&pool, &from, pinned).await?;
            pool.close().await;
            let failure = (!report.log.findings.is_empty())
                .then(|| "the restored log does not verify (see the report)".to_owned());
            crate::report_then(&report, failure)
        }
    }
}

/// `ledger verify`: the report as the first line on stdout (log lines follow it); an error (exit
/// status 1) when anything differs.
async fn ledger_verify(common: CommonConfig) -> anyhow::Result<()> {
    let pool = postgres::connect(&common.database).await?;
    postgres::ensure_migrated(&pool).await?;
    let report = bw_projections::models::tokens::verify(&pool).await?;
    pool.close().await;
    let failure = (!report.discrepancies.is_empty()).then(|| {
        format!(
            "ledger verify: {} discrepancies (listed in the report on stdout)",
            report.discrepancies.len()
        )
    });
    crate::report_then(&report, failure)?;
    tracing::info!(
        people = report.people,
        entries = report.entries,
        checkpoint = report.checkpoint,
        "ledger verified: every balance equals the sum of its entries"
    );
    Ok(())
}

async fn mailbox(common: CommonConfig, args: crate::cli::MailboxArgs) -> anyhow::Result<()> {
    let pool = postgres::connect(&common.database).await?;
    postgres::ensure_migrated(&pool).await?;
    let messages = bw_infra::notify::read_mailbox(&pool, args.to.as_deref(), args.limit).await?;
    let mut out = std::io::stdout().lock();
    for m in messages {
        use std::io::Write as _;
        writeln!(
            out,
            "{}  to {}  {}\n    {}",
            m.sent_at.to_rfc3339(),
            m.recipient,
            m.subject,
            m.body
        )?;
    }
    pool.close().await;
    Ok(())
}

async fn projections_command(
    common: CommonConfig,
    command: ProjectionsCommand,
) -> anyhow::Result<()> {
    let pool = postgres::connect(&common.database).await?;
    postgres::ensure_migrated(&pool).await?;
    let mut out = std::io::stdout().lock();
    match command {
        ProjectionsCommand::Status => {
            for status in bw_projections::status::all(&pool).await? {
                use std::io::Write as _;
                writeln!(out, "{}", serde_json::to_string(&status)?)?;
            }
        }
        ProjectionsCommand::Rebuild { name } => {
            let projection = crate::rebuild::named(&name)?;
            let report = crate::rebuild::rebuild(&pool, projection.as_ref()).await?;
            crate::report_then(&report, None)?;
        }
        ProjectionsCommand::Verify { name } => {
            let projection = crate::rebuild::named(&name)?;
            let report = crate::rebuild::verify(&pool, projection.as_ref()).await?;
            let failure = (!report.differences.is_empty()).then(|| {
                format!(
                    "projections verify: {} rows differ (listed in the report on stdout)",
                    report.differences.len()
                )
            });
            pool.close().await;
            crate::report_then(&report, failure)?;
            return Ok(());
        }
        ProjectionsCommand::Skip {
            name,
            position,
            reason,
            by,
        } => {
            if !bw_projections::status::skip(&pool, &name, position, &reason, &by).await? {
                anyhow::bail!(
                    "projection {name} is not failed at position {position}; see `betterworld projections status`"
                );
            }
            tracing::warn!(projection = %name, position, reason = %reason, by = %by, "event skipped by an operator; the projection resumes");
        }
    }
    pool.close().await;
    Ok(())
}

/// Every read model this build knows.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    bw_projections::models::all()
}

/// The connections every long-running role holds, and the state its HTTP endpoints share.
#[derive(Debug)]
pub struct Deps {
    /// The PostgreSQL pool.
    pub pool: PgPool,
    /// Options for connections outside the pool (leader locks, readiness).
    pub pg_options: PgConnectOptions,
    /// The NATS client.
    pub nats: async_nats::Client,
    /// Metrics, readiness checks and limits for the role's router.
    pub state: AppState,
}

impl Deps {
    /// Connects to PostgreSQL, then NATS, failing fast with an error naming the variable at fault,
    /// and assembles the readiness checks and metrics of a role.
    pub async fn connect(
        common: &CommonConfig,
        role: &str,
        limits: Limits,
    ) -> anyhow::Result<Self> {
        let pg_options = postgres::connect_options(&common.database)?;
        let client_name = format!("betterworld-{role}");
        // One after the other, so the error names the first dependency at fault deterministically.
        let pool = postgres::connect(&common.database).await?;
        postgres::ensure_migrated(&pool).await?;
        let nats = nats::connect(&common.nats, &client_name).await?;
        let metrics = Metrics::new(Some(pool.clone()));
        let readiness = Readiness::new(READINESS_TIMEOUT)
            .with(PostgresCheck::new(pg_options.clone()))
            .with(NatsCheck::new(nats.clone()))
            .with_gauge(metrics.ready.clone());
        let rate_limiter = bw_gateway::ratelimit::RateLimiter::new(limits.rate_limit_scale);
        let state = AppState {
            metrics,
            readiness,
            limits,
            platform: None,
            rate_limiter,
        };
        Ok(Self {
            pool,
            pg_options,
            nats,
            state,
        })
    }

    /// Adds the command bus and read models (roles serving the public API) and the readiness check
    /// that names a failed projection. `dev` keeps its heartbeat key in a file by default.
    pub async fn with_platform(mut self, api: &ApiArgs, dev: bool) -> anyhow::Result<Self> {
        let key_secret = match &api.api_key_secret {
            Some(secret) => Secret::new(secret.expose().as_bytes().to_vec()),
            None => {
                tracing::warn!(
                    "BW_API_KEY_SECRET is not set: using a random one for this process; registrations replayed after a restart cannot show their key"
                );
                Secret::new(rand::random::<[u8; 32]>().to_vec())
            }
        };
        let heartbeat = heartbeat_signer(api, dev)?;
        tracing::info!(
            key_id = heartbeat.key_id(),
            "heartbeat instructions are signed"
        );
        self.state.platform = Some(Platform {
            bus: CommandBus::new(self.pool.clone()),
            pool: self.pool.clone(),
            consistency_wait: api.consistency_wait,
            key_secret,
            heartbeat: Arc::new(heartbeat),
            notifier: Arc::new(bw_infra::notify::DevMailbox::new(self.pool.clone())),
            tokens: Arc::new(Keyring::load(self.pool.clone()).await?),
            embedder: load_embedder(&api.model, false).await?,
            email_secret: email_secret(&self.pool, &api.people).await?,
            store: api.storage.store().await?,
            backpressure: Arc::new(
                bw_gateway::backpressure::Backpressure::new(api.guardrail_max_backlog)
                    .with_max_drain(api.guardrail_max_drain),
            ),
        });
        Ok(self.with_projection_check())
    }

    /// Adds the readiness check naming failed projections.
    pub fn with_projection_check(mut self) -> Self {
        self.state.readiness = self
            .state
            .readiness
            .clone()
            .with(ProjectionsCheck::new(self.pool.clone()));
        self
    }

    /// Drains the NATS connection and closes the pool.
    pub async fn close(self) {
        if let Err(e) = self.nats.drain().await {
            tracing::warn!(error = %e, "NATS connection did not drain cleanly");
        }
        self.pool.close().await;
    }
}

/// The key of e-mail fingerprints: configured, else generated once and kept in the database.
pub async fn email_secret(
    pool: &PgPool,
    people: &crate::cli::PeopleArgs,
) -> anyhow::Result<Secret<Vec<u8>>> {
    Ok(Secret::new(match &people.email_fingerprint_secret {
        Some(secret) => secret.expose().as_bytes().to_vec(),
        None => bw_infra::crypto::keyring::server_secret(pool, "email-fingerprint").await?,
    }))
}

/// The heartbeat signing key: configured, else from a file (`dev`: `.bw/heartbeat-signing-key`),
/// else random for this process.
fn heartbeat_signer(api: &ApiArgs, dev: bool) -> anyhow::Result<HeartbeatSigner> {
    let previous = api.heartbeat_previous_keys.as_deref();
    if let Some(key) = &api.heartbeat_signing_key {
        return Ok(HeartbeatSigner::from_config(
            &api.heartbeat_key_id,
            key.expose(),
            previous,
        )?);
    }
    let file = api
        .heartbeat_key_file
        .clone()
        .or_else(|| dev.then(|| ".bw/heartbeat-signing-key".into()));
    match file {
        Some(path) => Ok(HeartbeatSigner::from_file(&api.heartbeat_key_id, &path)?),
        None => {
            tracing::warn!(
                "no heartbeat signing key configured (BW_HEARTBEAT_SIGNING_KEY or BW_HEARTBEAT_KEY_FILE): using a random one for this process"
            );
            Ok(HeartbeatSigner::ephemeral(&api.heartbeat_key_id))
        }
    }
}

/// The request limits configured for an HTTP listener.
pub fn limits(http: &HttpConfig) -> Limits {
    Limits {
        body_bytes: http.body_limit,
        request_timeout: http.request_timeout,
        trust_forwarded_for: http.trust_forwarded_for,
        rate_limit_scale: http.rate_limit_scale,
    }
}

async fn bind(
    addr: std::net::SocketAddr,
    variable: &str,
    router: axum::Router,
    state: AppState,
) -> anyhow::Result<Application> {
    Application::bind(addr, router, state)
        .await
        .with_context(|| format!("{variable}: cannot listen on {addr}"))
}

/// Starts the background tasks shared by every role and serves `app` until shutdown.
fn start(
    shutdown: &Shutdown,
    app: Application,
    state: &AppState,
    role: &str,
) -> anyhow::Result<JoinHandle<std::io::Result<()>>> {
    let addr = app.local_addr()?;
    tracing::info!(role, %addr, "listening");
    shutdown.spawn(health::watch(
        state.readiness.clone(),
        READINESS_INTERVAL,
        shutdown.triggered(),
    ));
    Ok(shutdown.spawn(app.run_until_stopped(shutdown.triggered())))
}

/// Waits for a termination signal (or a server failing on its own), then drains.
async fn until_stopped(
    common: &CommonConfig,
    shutdown: &Shutdown,
    server: JoinHandle<std::io::Result<()>>,
) -> anyhow::Result<()> {
    tokio::pin!(server);
    let early = tokio::select! {
        signal = termination_signal() => {
            tracing::info!(signal = signal?, grace = ?common.shutdown_grace, "shutting down: draining requests and tasks");
            None
        }
        () = shutdown.triggered() => None,
        result = &mut server => Some(result),
    };
    if let Some(result) = early {
        shutdown.trigger();
        result
            .context("server task failed")?
            .context("HTTP server failed")?;
        anyhow::bail!("HTTP server stopped unexpectedly");
    }
    match shutdown.drain(common.shutdown_grace).await {
        Ok(()) => {
            tracing::info!("drained");
            Ok(())
        }
        Err(timed_out) => anyhow::bail!(
            "BW_SHUTDOWN_GRACE: {} task(s) still running after {:?}",
            timed_out.still_running,
            common.shutdown_grace
        ),
    }
}

async fn apply_streams(nats: &async_nats::Client, streams: &StreamArgs) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(nats.clone());
    let info = streams.events().apply(&js, streams.replicas).await?;
    tracing::info!(stream = %info.config.name, replicas = info.config.num_replicas, "event stream definition applied");
    Ok(())
}

/// Runs the relay as a tracked task (it waits for leadership, then publishes until shutdown).
fn spawn_relay(deps: &Deps, streams: &StreamArgs, shutdown: &Shutdown) {
    let config = RelayConfig {
        stream: streams.events(),
        ..RelayConfig::default()
    };
    let js = async_nats::jetstream::new(deps.nats.clone());
    let relay = Relay::new(
        deps.pool.clone(),
        deps.pg_options.clone(),
        js,
        config,
        deps.state.metrics.relay.clone(),
    );
    let stop = shutdown.triggered();
    shutdown.spawn(async move {
        if let Err(e) = relay.run(stop).await {
            tracing::error!(error = %e, "relay stopped with an error");
        }
    });
}

/// Starts every projector and runs each as a tracked task.
/// Loads the embedding model (on a blocking thread). `required`: fail with a line naming
/// `BW_MODEL_DIR`; otherwise warn and go on without it (search keeps its keyword half, the semantic
/// index is not built).
pub async fn load_embedder(
    model: &crate::cli::ModelArgs,
    required: bool,
) -> anyhow::Result<Option<Arc<bw_guardrail::embed::Embedder>>> {
    let dir = model.model_dir.clone();
    match tokio::task::spawn_blocking(move || bw_guardrail::embed::Embedder::load(&dir)).await? {
        Ok(embedder) => Ok(Some(Arc::new(embedder))),
        Err(e) if required => Err(anyhow::anyhow!(
            "BW_MODEL_DIR: {e} (run `scripts/bw setup`, or set BW_GUARDRAIL_CLASSIFIER=admin-only)"
        )),
        Err(e) => {
            tracing::warn!(error = %e, "no embedding model: search is keyword-only and the semantic index is not built");
            Ok(None)
        }
    }
}

/// The configured Layer B classifier (the semantic one embeds its reference texts on a blocking
/// thread).
pub async fn classifier(
    args: &crate::cli::GuardrailArgs,
    embedder: Option<Arc<bw_guardrail::embed::Embedder>>,
    pool: &PgPool,
    metrics: &bw_infra::metrics::GuardrailMetrics,
) -> anyhow::Result<Arc<dyn bw_guardrail::Classifier>> {
    let judge = || -> anyhow::Result<bw_guardrail::llm::LlmJudge> {
        Ok(
            bw_guardrail::llm::LlmJudge::new(args.llm.config()?, pool.clone())?
                .with_metrics(metrics.clone()),
        )
    };
    match args.classifier.as_str() {
        "admin-only" => return Ok(Arc::new(bw_guardrail::classifier::AdminOnly)),
        "llm" => return Ok(Arc::new(judge()?)),
        _ => {}
    }
    let embedder = embedder.ok_or_else(|| {
        anyhow::anyhow!("BW_MODEL_DIR: the semantic classifier needs the embedding model (run `scripts/bw setup`, or set BW_GUARDRAIL_CLASSIFIER=admin-only)")
    })?;
    let semantic = tokio::task::spawn_blocking(move || {
        bw_guardrail::classifier::Semantic::new(embedder, Default::default())
    })
    .await??;
    let semantic = Arc::new(semantic);
    if args.classifier == "cascade" {
        return Ok(Arc::new(bw_guardrail::cascade::Cascade::new(
            semantic,
            Arc::new(judge()?),
            args.cascade_confident,
        )));
    }
    Ok(Arc::new(semantic))
}

/// Starts the guardrail: its intake on the projector runtime, and its judges.
async fn spawn_guardrail(
    deps: &Deps,
    streams: &StreamArgs,
    args: &crate::cli::GuardrailArgs,
    embedder: Option<Arc<bw_guardrail::embed::Embedder>>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let mut worker = bw_processes::guardrail::worker::GuardrailWorker::new(
        CommandBus::new(deps.pool.clone()),
        classifier(
            args,
            embedder.clone(),
            &deps.pool,
            &deps.state.metrics.guardrail,
        )
        .await?,
        args.config()?,
    )
    .with_metrics(deps.state.metrics.guardrail.clone());
    if let Some(embedder) = embedder {
        worker = worker.with_duplicate_check(embedder);
    }
    let js = async_nats::jetstream::new(deps.nats.clone());
    let intake = Projector::start(
        deps.pool.clone(),
        deps.pg_options.clone(),
        &js,
        &streams.events(),
        Arc::new(bw_processes::guardrail::queue::Intake),
        deps.state.metrics.projections.clone(),
        ProjectorConfig::default(),
    )
    .await
    .context("cannot start the guardrail's intake")?;
    let stop = shutdown.triggered();
    shutdown.spawn(async move {
        if let Err(e) = intake.run(stop).await {
            tracing::error!(error = %e, "guardrail intake stopped with an error");
        }
    });
    tracing::info!(classifier = %args.classifier, workers = args.workers, batch = args.batch, "guardrail judges starting");
    let judges = bw_processes::guardrail::queue::Judges::new(
        Arc::new(worker),
        deps.pool.clone(),
        args.queue(),
    );
    let stop = shutdown.triggered();
    shutdown.spawn(async move {
        if let Err(e) = judges.run(stop).await {
            tracing::error!(error = %e, "guardrail judges stopped with an error");
        }
    });
    Ok(())
}

async fn guardrail(
    common: CommonConfig,
    args: crate::cli::GuardrailRoleArgs,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    // Bad thresholds fail before anything connects.
    args.guardrail.config()?;
    let deps = Deps::connect(&common, "guardrail", Limits::default()).await?;
    apply_streams(&deps.nats, &args.streams).await?;
    let embedder = load_embedder(&args.model, args.guardrail.classifier == "semantic").await?;
    spawn_guardrail(&deps, &args.streams, &args.guardrail, embedder, &shutdown).await?;
    let app = bind(
        args.ops.addr_or(9093),
        "BW_OPS_ADDR",
        bw_gateway::ops_router(deps.state.clone()),
        deps.state.clone(),
    )
    .await?;
    let server = start(&shutdown, app, &deps.state, "guardrail")?;
    let result = until_stopped(&common, &shutdown, server).await;
    deps.close().await;
    result
}

/// A vision provider and the store holding the photos it is shown.
type Vision = (
    Arc<dyn bw_guardrail::vision::VisionProvider>,
    Arc<dyn bw_infra::storage::ObjectStore>,
);

async fn spawn_projectors(
    deps: &Deps,
    streams: &StreamArgs,
    embedder: Option<Arc<bw_guardrail::embed::Embedder>>,
    vision: Option<Vision>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(deps.nats.clone());
    let mut all = projections();
    crate::rebuild::outdated_at_start(&deps.pool, &all).await?;
    let bus = CommandBus::new(deps.pool.clone());
    all.extend(bw_processes::sagas::RewardSaga::all(&bus));
    if let Some((provider, store)) = vision {
        tracing::info!(
            provider = provider.name(),
            "the vision worker looks at evidence in peer review"
        );
        all.push(Arc::new(
            bw_processes::vision::VisionWorker::new(bus, provider, store)
                .with_metrics(deps.state.metrics.guardrail.clone()),
        ));
    }
    if let Some(embedder) = embedder {
        all.push(Arc::new(bw_guardrail::index::SemanticIndex::new(embedder)));
    }
    for projection in all {
        let name = projection.name();
        let projector = Projector::start(
            deps.pool.clone(),
            deps.pg_options.clone(),
            &js,
            &streams.events(),
            projection,
            deps.state.metrics.projections.clone(),
            ProjectorConfig::default(),
        )
        .await
        .with_context(|| format!("cannot start projection {name}"))?;
        let stop = shutdown.triggered();
        shutdown.spawn(async move {
            if let Err(e) = projector.run(stop).await {
                tracing::error!(projection = name, error = %e, "projector stopped with an error");
            }
        });
    }
    Ok(())
}

/// Runs the expiry scheduler (`src/scheduler.rs`) until shutdown.
fn spawn_scheduler(pool: PgPool, shutdown: &Shutdown) {
    let scheduler = bw_processes::scheduler::ExpiryScheduler::new(pool);
    shutdown.spawn(scheduler.run(
        bw_processes::scheduler::DEFAULT_INTERVAL,
        shutdown.triggered(),
    ));
}

/// Purges expired idempotency records periodically.
fn spawn_purge(pool: PgPool, shutdown: &Shutdown) {
    let stop = shutdown.triggered();
    shutdown.spawn(async move {
        tokio::pin!(stop);
        let mut ticker = tokio::time::interval(PURGE_INTERVAL);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticker.tick() => {}
            }
            match bw_commands::idempotency::purge_expired(&pool).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired idempotency records purged"),
                Err(e) => tracing::warn!(error = %e, "cannot purge idempotency records"),
            }
        }
    });
}

/// Measures the guardrail's backlog for the API's backpressure (nothing when it is off).
fn spawn_backpressure(deps: &Deps, shutdown: &Shutdown) {
    if let Some(platform) = &deps.state.platform {
        let gate = platform.backpressure.clone();
        shutdown.spawn(gate.run(
            deps.pool.clone(),
            deps.state.metrics.guardrail.clone(),
            shutdown.triggered(),
        ));
    }
}

async fn serve(common: CommonConfig, args: ServeArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let deps = Deps::connect(&common, "gateway", limits(&args.http))
        .await?
        .with_platform(&args.api, false)
        .await?;
    spawn_backpressure(&deps, &shutdown);
    spawn_purge(deps.pool.clone(), &shutdown);
    let router = bw_gateway::router(deps.state.clone());
    let app = bind(args.http.addr, "BW_HTTP_ADDR", router, deps.state.clone()).await?;
    let server = start(&shutdown, app, &deps.state, "gateway")?;
    let result = until_stopped(&common, &shutdown, server).await;
    deps.close().await;
    result
}

async fn relay(
    common: CommonConfig,
    args: crate::cli::RelayArgs,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let signer = args.log.signer(None)?;
    let deps = Deps::connect(&common, "relay", Limits::default()).await?;
    let worker = &args.worker;
    apply_streams(&deps.nats, &worker.streams).await?;
    spawn_relay(&deps, &worker.streams, &shutdown);
    match signer {
        Some(signer) => crate::audit::spawn_checkpointer(
            deps.pool.clone(),
            signer,
            args.log.checkpoint_interval,
            &shutdown,
        ),
        None => tracing::warn!(
            "no BW_LOG_SIGNING_KEY or BW_LOG_KEY_FILE: this relay signs no log checkpoints"
        ),
    }
    let app = bind(
        worker.ops.addr_or(9091),
        "BW_OPS_ADDR",
        bw_gateway::ops_router(deps.state.clone()),
        deps.state.clone(),
    )
    .await?;
    let server = start(&shutdown, app, &deps.state, "relay")?;
    let result = until_stopped(&common, &shutdown, server).await;
    deps.close().await;
    result
}

async fn project(
    common: CommonConfig,
    args: ProjectArgs,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let deps = Deps::connect(&common, "projector", Limits::default())
        .await?
        .with_projection_check();
    let worker = &args.worker;
    apply_streams(&deps.nats, &worker.streams).await?;
    let embedder = load_embedder(&worker.model, false).await?;
    let vision = match args.vision.provider(&deps.pool)? {
        Some(provider) => Some((provider, args.storage.store().await?)),
        None => None,
    };
    spawn_projectors(&deps, &worker.streams, embedder, vision, &shutdown).await?;
    spawn_scheduler(deps.pool.clone(), &shutdown);
    let app = bind(
        worker.ops.addr_or(9092),
        "BW_OPS_ADDR",
        bw_gateway::ops_router(deps.state.clone()),
        deps.state.clone(),
    )
    .await?;
    let server = start(&shutdown, app, &deps.state, "projector")?;
    let result = until_stopped(&common, &shutdown, server).await;
    deps.close().await;
    result
}

async fn dev(common: CommonConfig, args: DevArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    prepare_database(&common, true).await?;
    let deps = Deps::connect(&common, "dev", limits(&args.http))
        .await?
        .with_platform(&args.api, true)
        .await?;
    apply_streams(&deps.nats, &args.streams).await?;
    spawn_relay(&deps, &args.streams, &shutdown);
    let embedder = deps
        .state
        .platform
        .as_ref()
        .and_then(|p| p.embedder.clone());
    let vision = match (args.vision.provider(&deps.pool)?, &deps.state.platform) {
        (Some(provider), Some(platform)) => Some((provider, platform.store.clone())),
        _ => None,
    };
    spawn_projectors(&deps, &args.streams, embedder.clone(), vision, &shutdown).await?;
    spawn_guardrail(&deps, &args.streams, &args.guardrail, embedder, &shutdown).await?;
    spawn_backpressure(&deps, &shutdown);
    spawn_purge(deps.pool.clone(), &shutdown);
    spawn_scheduler(deps.pool.clone(), &shutdown);
    if let Some(signer) = args
        .log
        .signer(Some(std::path::Path::new(".bw/log-signing-key")))?
    {
        crate::audit::spawn_checkpointer(
            deps.pool.clone(),
            signer,
            args.log.checkpoint_interval,
            &shutdown,
        );
    }
    let router = bw_gateway::router(deps.state.clone());
    let app = bind(args.http.addr, "BW_HTTP_ADDR", router, deps.state.clone()).await?;
    let addr = app.local_addr()?;
    tracing::info!(
        api = %format!("http://{addr}/api/v1"),
        ready = %format!("http://{addr}/readyz"),
        metrics = %format!("http://{addr}/metrics"),
        "BetterWorld dev is up"
    );
    let server = start(&shutdown, app, &deps.state, "dev")?;
    let result = until_stopped(&common, &shutdown, server).await;
    deps.close().await;
    result
}

async fn prepare_database(common: &CommonConfig, create: bool) -> anyhow::Result<()> {
    if create && postgres::ensure_database(&common.database).await? {
        tracing::info!("database created");
    }
    let pool = postgres::connect(&common.database).await?;
    if let Err(e) = postgres::migrate(&pool).await {
        let hint = if e.to_string().contains("\"vector\"") {
            " (pgvector is not installed for this PostgreSQL: `scripts/bw setup` builds it)"
        } else {
            ""
        };
        anyhow::bail!("{e}{hint}");
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .context("cannot read the migration history")?;
    tracing::info!(applied, "migrations up to date");
    pool.close().await;
    Ok(())
}

async fn migrate(common: CommonConfig, args: MigrateArgs) -> anyhow::Result<()> {
    prepare_database(&common, !args.no_create_database).await
}
