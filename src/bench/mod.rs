//! `betterworld bench …`: the performance targets P1–P8 of the quality bars and the original plan's
//! load scenarios, each measured against a reference taken in the same run and printed as one
//! table (optionally written as JSON). See `docs/benchmarks.md`.
//!
//! The bench never touches the configured database itself: it works in databases of its own named
//! after it (`<db>_bench` for the platform with its datasets, `<db>_bench_write` for the write
//! path, `<db>_bench_log` for the rebuild's log; `_benchq_…` in `--quick` mode, dropped at the
//! end), each with a JetStream stream of its own, and runs the platform's roles as child processes
//! of this binary (`stack`). Generated datasets are kept between runs; `--fresh` drops them.

mod data;
mod evidence;
mod guardrail;
mod load;
mod scenarios;
mod stack;
mod stats;
mod targets;

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use bw_infra::{CommonConfig, config::DatabaseConfig};
use clap::{Args, Subcommand};
use sqlx::PgPool;

use stack::{Stack, StackConfig};
use stats::Row;

/// `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub target: BenchTarget,
    /// Every benchmark briefly, on small datasets that are dropped afterwards (the test suite runs
    /// this so the harness cannot rot). Its numbers are not results.
    #[arg(long, global = true)]
    pub quick: bool,
    /// Also write the rows as JSON to this file.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Drop the bench's databases (and their generated datasets) first.
    #[arg(long, global = true)]
    pub fresh: bool,
    /// Rows of each generated dataset (1M problems, missions, embeddings and log events).
    #[arg(long, global = true, default_value_t = 1_000_000)]
    pub scale: usize,
    /// Concurrent clients of the write-path comparison (P1), and PostgreSQL connections of every
    /// contender there (the gateway's pool, the library's, the raw inserter's).
    #[arg(long, global = true, default_value_t = 8)]
    pub clients: usize,
    /// Runs of P1 (the table shows medians).
    #[arg(long, global = true, default_value_t = 3)]
    pub runs: usize,
    /// Seconds of each measured phase (P1 per contender and run; P2, P4, P5, P7, P8 and the
    /// steady scenarios).
    #[arg(long, global = true, default_value_t = 15.0)]
    pub seconds: f64,
    /// Multiplies the original plan's scenario durations (5 minutes of browsing, …): 0.2 runs
    /// each scenario for a fifth of the plan's time at the plan's rates.
    #[arg(long = "time-scale", global = true, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Where the roles' logs go.
    #[arg(long, global = true, default_value = ".bw/bench")]
    pub dir: PathBuf,
    /// The embedding model's directory (P7).
    #[arg(
        long = "model-dir",
        env = "BW_MODEL_DIR",
        global = true,
        default_value = ".bw/models/all-MiniLM-L6-v2"
    )]
    pub model_dir: PathBuf,
}

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum BenchTarget {
    /// P1: `POST /problems` end to end vs the raw durable-insert ceiling and vs cqrs-es +
    /// postgres-es alone.
    P1,
    /// P2: command acknowledged → visible in the problem feed, at 500 commands/s.
    P2,
    /// P3: rebuilding the problem feed from the log vs a `COPY` of the same rows.
    P3,
    /// P4: `GET /problems?limit=20` over the feed of 1M problems at 2,000 req/s.
    P4,
    /// P5: `GET /missions/nearby` over 1M missions.
    P5,
    /// P6: top 10 by cosine over 1M embeddings (HNSW), with recall@10 against exact search.
    P6,
    /// P7: the guardrail's local classifier per item, and submit → verdict.
    P7,
    /// P8: resident memory of the gateway under load and of `dev` (every role and the model).
    P8,
    /// The guardrail on a big log (GL1–GL5): per-item cost at 10k and 1M events, one judge vs two,
    /// five minutes of agents posting against the backlog's bound, shutdown while loaded.
    Guardrail,
    /// The original plan's load scenarios (§8.1–8.5) with their thresholds.
    Scenarios,
    /// Everything above, in one run.
    All,
}

/// Sizes and rates of one run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub quick: bool,
    pub scale: usize,
    pub clients: usize,
    pub runs: usize,
    /// One measured phase.
    pub phase: Duration,
    /// Multiplies every arrival rate (1 normally; smaller in quick mode).
    pub rate: f64,
    /// Multiplies the plan's scenario durations (not in quick mode).
    pub time_scale: f64,
}

impl Plan {
    fn of(args: &BenchArgs) -> Self {
        if args.quick {
            Self {
                quick: true,
                scale: 2_000,
                clients: args.clients.min(4),
                runs: 1,
                phase: Duration::from_millis(700),
                rate: 0.05,
                time_scale: 1.0,
            }
        } else {
            Self {
                quick: false,
                scale: args.scale,
                clients: args.clients.max(1),
                runs: args.runs.max(1),
                phase: Duration::from_secs_f64(args.seconds.max(0.5)),
                rate: 1.0,
                time_scale: args.time_scale.clamp(0.01, 10.0),
            }
        }
    }

    /// `rate` per second scaled for this run: at least 1/s, and in quick mode at least 10/s so
    /// that every brief phase sends something.
    pub fn per_second(&self, rate: f64) -> f64 {
        (rate * self.rate).max(if self.quick { 10.0 } else { 1.0 })
    }

    /// A duration of the original plan, scaled down in quick mode.
    pub fn span(&self, full: Duration) -> Duration {
        if self.quick {
            (full / 60).clamp(Duration::from_millis(300), Duration::from_secs(2))
        } else {
            full.mul_f64(self.time_scale)
        }
    }
}

/// One bench database: its URL, pool and JetStream stream.
#[derive(Debug, Clone)]
pub struct Db {
    pub url: String,
    pub name: String,
    pub pool: PgPool,
}

impl Db {
    /// The stack configuration of this database.
    pub fn stack(&self, env: &Env, gateway_connections: u32) -> StackConfig {
        let token: String = self
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        StackConfig {
            database_url: self.url.clone(),
            nats_url: env.nats_url.clone(),
            stream: format!("BWBENCH_{}", token.to_uppercase()),
            subject_prefix: format!("bwbench.{}", token.to_lowercase()),
            log_dir: env.dir.join(&self.name),
            storage_dir: env.dir.join(&self.name).join("objects"),
            gateway_connections,
        }
    }
}

/// What every benchmark shares.
#[derive(Debug)]
pub struct Env {
    pub plan: Plan,
    pub nats_url: String,
    pub dir: PathBuf,
    pub model_dir: PathBuf,
    pub http: reqwest::Client,
    database: DatabaseConfig,
    suffix: &'static str,
    opened: Vec<Db>,
}

impl Env {
    /// The bench database `<configured>_<suffix>_<part>`, created and migrated if needed.
    pub async fn db(&mut self, part: &str) -> anyhow::Result<Db> {
        let url = with_database_suffix(
            self.database.url.expose(),
            &format!("_{}{part}", self.suffix),
        )?;
        let name = database_name(&url).to_owned();
        if let Some(db) = self.opened.iter().find(|d| d.name == name) {
            return Ok(db.clone());
        }
        let config = DatabaseConfig {
            url: bw_infra::Secret::new(url.clone()),
            max_connections: 64,
            ..self.database.clone()
        };
        bw_infra::postgres::ensure_database(&config).await?;
        let pool = bw_infra::postgres::connect(&config).await?;
        bw_infra::postgres::migrate(&pool)
            .await
            .with_context(|| format!("cannot migrate the bench database {name}"))?;
        let db = Db { url, name, pool };
        self.opened.push(db.clone());
        Ok(db)
    }

    /// Starts `roles` on `db` (the gateway with `connections` PostgreSQL connections).
    pub async fn start(&self, db: &Db, roles: &[&str], connections: u32) -> anyhow::Result<Stack> {
        Stack::start(&db.stack(self, connections), roles).await
    }

    /// Drops the bench's databases of this mode (and their streams).
    async fn drop_all(&mut self) -> anyhow::Result<()> {
        for db in std::mem::take(&mut self.opened) {
            db.pool.close().await;
        }
        let admin_url = with_database(self.database.url.expose(), "postgres")?;
        let admin = sqlx::PgPool::connect(&admin_url)
            .await
            .context("cannot connect to the `postgres` database to drop bench databases")?;
        let base = database_name(self.database.url.expose()).to_owned();
        let prefix = format!("{base}_{}", self.suffix);
        let names: Vec<String> =
            sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
                .bind(&prefix)
                .fetch_all(&admin)
                .await?;
        let nats = async_nats::connect(&self.nats_url).await?;
        let js = async_nats::jetstream::new(nats);
        for name in names {
            sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&admin)
                .await?;
            let db = Db {
                url: String::new(),
                name: name.clone(),
                pool: admin.clone(),
            };
            let stream = db.stack(self, 1).stream;
            let _ = js.delete_stream(&stream).await;
            tracing::info!(database = %name, "bench database dropped");
        }
        admin.close().await;
        Ok(())
    }
}

/// The database name of a `postgres://…/name?…` URL.
fn database_name(url: &str) -> &str {
    let base = url.split('?').next().unwrap_or(url);
    base.rsplit_once('/').map_or(base, |(_, name)| name)
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (prefix, _) = base
        .rsplit_once('/')
        .filter(|(p, _)| p.contains("://"))
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL: no database name in the URL"))?;
    Ok(match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    })
}

/// `url` with `suffix` appended to its database name.
fn with_database_suffix(url: &str, suffix: &str) -> anyhow::Result<String> {
    let name = format!("{}{suffix}", database_name(url));
    with_database(url, &name)
}

/// Runs the chosen benchmarks and prints the table.
pub async fn run(common: CommonConfig, args: BenchArgs) -> anyhow::Result<()> {
    let plan = Plan::of(&args);
    let mut env = Env {
        plan,
        nats_url: common.nats.url.expose().clone(),
        dir: args.dir.clone(),
        model_dir: args.model_dir.clone(),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(30))
            .build()?,
        database: common.database.clone(),
        suffix: if plan.quick { "benchq" } else { "bench" },
        opened: Vec::new(),
    };
    if args.fresh || plan.quick {
        env.drop_all().await?;
    }
    let result = run_targets(&mut env, args.target).await;
    if plan.quick {
        env.drop_all().await?;
    } else {
        for db in std::mem::take(&mut env.opened) {
            db.pool.close().await;
        }
    }
    let rows = result?;
    let text = stats::table(&rows);
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "BetterWorld bench ({}; {} cores) — every ratio against a reference measured in this run\n",
            if plan.quick {
                "QUICK: a smoke run, not results"
            } else {
                "full"
            },
            std::thread::available_parallelism().map_or(1, |n| n.get())
        )?;
        write!(out, "{text}")?;
    }
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "quick": plan.quick,
            "scale": plan.scale,
            "clients": plan.clients,
            "runs": plan.runs,
            "phaseSeconds": plan.phase.as_secs_f64(),
            "timeScale": plan.time_scale,
            "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "rows": rows,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

async fn run_targets(env: &mut Env, target: BenchTarget) -> anyhow::Result<Vec<Row>> {
    use BenchTarget::*;
    let all = target == All;
    let mut rows = Vec::new();
    if all || target == P1 || target == P2 {
        rows.extend(targets::write_path(env, all || target == P1, all || target == P2).await?);
    }
    if all || target == P3 {
        rows.extend(targets::p3(env).await?);
    }
    if all || target == P6 {
        rows.extend(targets::p6(env).await?);
    }
    if all || target == P7 {
        rows.extend(targets::p7_classifier(env).await?);
    }
    if all || target == Guardrail {
        rows.extend(guardrail::run(env).await?);
    }
    let platform = [P4, P5, P7, P8, Scenarios].contains(&target);
    if all || platform {
        let db = env.db("").await?;
        // The platform serves a big log, as it will after years (issue 15).
        guardrail::history(&db, env.plan.scale).await?;
        targets::datasets(
            env,
            &db,
            all || target == P4 || target == Scenarios || target == P8,
            all || target == P5 || target == Scenarios,
        )
        .await?;
        let stack = env
            .start(&db, &["serve", "relay", "project", "guardrail"], 16)
            .await?;
        let measured = async {
            let mut rows = Vec::new();
            let agents = targets::Agents::register(env, &stack.base, 8).await?;
            if all || target == P4 || target == P8 {
                stack.reset_rss();
                rows.extend(targets::p4(env, &stack).await?);
                if all || target == P8 {
                    rows.push(targets::p8_gateway(&stack));
                }
            }
            if all || target == P5 {
                rows.extend(targets::p5(env, &stack).await?);
            }
            if all || target == P7 {
                rows.extend(targets::p7_verdict(env, &db, &stack, &agents).await?);
            }
            if all || target == Scenarios {
                rows.extend(scenarios::all(env, &db, &stack, &agents).await?);
            }
            anyhow::Ok(rows)
        }
        .await;
        stack.stop(Duration::from_secs(30)).await;
        rows.extend(measured?);
        if all || target == P8 {
            rows.extend(targets::p8_dev(env, &db).await?);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_database_url_when_a_suffix_is_added_then_only_the_name_changes() {
        assert_eq!(
            with_database_suffix("postgres://u@h:5432/betterworld?sslmode=disable", "_bench")
                .expect("url"),
            "postgres://u@h:5432/betterworld_bench?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h/db", "postgres").expect("url"),
            "postgres://u@h/postgres"
        );
        assert!(with_database("postgres:", "x").is_err());
        assert_eq!(database_name("postgres://u@h/db_x?a=b"), "db_x");
    }

    #[test]
    fn given_quick_mode_when_planning_then_everything_is_small_and_brief() {
        let args = BenchArgs {
            target: BenchTarget::All,
            quick: true,
            json: None,
            fresh: false,
            scale: 1_000_000,
            clients: 8,
            runs: 3,
            seconds: 15.0,
            time_scale: 1.0,
            dir: ".bw/bench".into(),
            model_dir: ".".into(),
        };
        let plan = Plan::of(&args);
        assert!(plan.quick && plan.scale <= 10_000 && plan.runs == 1);
        assert!(plan.phase < Duration::from_secs(2));
        assert_eq!(plan.per_second(2000.0), 100.0);
        assert_eq!(plan.per_second(5.0), 10.0);
        assert_eq!(plan.span(Duration::from_secs(300)), Duration::from_secs(2));
    }
}
