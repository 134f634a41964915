//! What each subcommand runs.
//!
//! Every role follows the same life: connect to its dependencies (failing fast with a line naming
//! the variable at fault), serve until SIGTERM/SIGINT, then drain — stop accepting, finish in-flight
//! requests and background tasks within `BW_SHUTDOWN_GRACE` — and close its pools.

use std::time::Duration;

use anyhow::Context as _;
use bw_gateway::{AppState, Application, state::Limits};
use bw_infra::{
    CommonConfig,
    config::HttpConfig,
    health::{self, NatsCheck, PostgresCheck, Readiness},
    metrics::Metrics,
    nats, postgres,
    shutdown::{Shutdown, termination_signal},
};
use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::cli::{Command, DevArgs, MigrateArgs, ServeArgs, StreamArgs, WorkerArgs};

/// How often readiness is re-checked in the background (keeps `bw_ready` current).
const READINESS_INTERVAL: Duration = Duration::from_secs(10);
/// Upper bound of one readiness check.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the chosen subcommand to completion.
pub async fn run(common: CommonConfig, command: Command, shutdown: Shutdown) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(common, args, shutdown).await,
        Command::Relay(args) => worker(common, args, "relay", true, shutdown).await,
        Command::Project(args) => worker(common, args, "projector", false, shutdown).await,
        Command::Dev(args) => dev(common, args, shutdown).await,
        Command::Migrate(args) => migrate(common, args).await,
    }
}

/// The connections every long-running role holds, and the state its HTTP endpoints share.
#[derive(Debug)]
pub struct Deps {
    /// The PostgreSQL pool.
    pub pool: PgPool,
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
        let nats = nats::connect(&common.nats, &client_name).await?;
        let metrics = Metrics::new(Some(pool.clone()));
        let readiness = Readiness::new(READINESS_TIMEOUT)
            .with(PostgresCheck::new(pg_options))
            .with(NatsCheck::new(nats.clone()))
            .with_gauge(metrics.ready.clone());
        let state = AppState {
            metrics,
            readiness,
            limits,
        };
        Ok(Self { pool, nats, state })
    }

    /// Drains the NATS connection and closes the pool.
    pub async fn close(self) {
        if let Err(e) = self.nats.drain().await {
            tracing::warn!(error = %e, "NATS connection did not drain cleanly");
        }
        self.pool.close().await;
    }
}

/// The request limits configured for an HTTP listener.
pub fn limits(http: &HttpConfig) -> Limits {
    Limits {
        body_bytes: http.body_limit,
        request_timeout: http.request_timeout,
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

async fn serve(common: CommonConfig, args: ServeArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    let deps = Deps::connect(&common, "gateway", limits(&args.http)).await?;
    let router = bw_gateway::router(deps.state.clone());
    let app = bind(args.http.addr, "BW_HTTP_ADDR", router, deps.state.clone()).await?;
    let server = start(&shutdown, app, &deps.state, "gateway")?;
    let result = until_stopped(&common, &shutdown, server).await;
    deps.close().await;
    result
}

async fn apply_streams(nats: &async_nats::Client, streams: &StreamArgs) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(nats.clone());
    for info in nats::apply_all_streams(&js, streams.replicas).await? {
        tracing::info!(stream = %info.config.name, replicas = info.config.num_replicas, "stream definition applied");
    }
    Ok(())
}

/// `relay` and `project`: the operations endpoints and the role's background work.
///
/// The relay applies the JetStream definitions at start-up. Tailing the log and running projectors
/// are the event-pipeline work of issue #3; until then these roles hold their connections, report
/// readiness and metrics, and drain on shutdown like every other role.
async fn worker(
    common: CommonConfig,
    args: WorkerArgs,
    role: &str,
    applies_streams: bool,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let deps = Deps::connect(&common, role, Limits::default()).await?;
    if applies_streams {
        apply_streams(&deps.nats, &args.streams).await?;
    }
    let router = bw_gateway::ops_router(deps.state.clone());
    let app = bind(args.ops.addr, "BW_OPS_ADDR", router, deps.state.clone()).await?;
    let server = start(&shutdown, app, &deps.state, role)?;
    let result = until_stopped(&common, &shutdown, server).await;
    deps.close().await;
    result
}

async fn dev(common: CommonConfig, args: DevArgs, shutdown: Shutdown) -> anyhow::Result<()> {
    prepare_database(&common, true).await?;
    let deps = Deps::connect(&common, "dev", limits(&args.http)).await?;
    apply_streams(&deps.nats, &args.streams).await?;
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
    postgres::migrate(&pool).await?;
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
