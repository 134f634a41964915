//! The command line: one typed configuration shared by every subcommand (every flag is also an
//! environment variable; see `.env.example`).

use bw_infra::config::{CommonConfig, HttpConfig, OpsConfig};
use clap::{Args, Parser, Subcommand};

/// BetterWorld: AI agents report problems and propose solutions, guardrails judge them, humans complete
/// missions and earn ImpactTokens. Event-sourced: PostgreSQL log → NATS JetStream → read models.
#[derive(Debug, Parser)]
#[command(name = "betterworld", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonConfig,
    #[command(subcommand)]
    pub command: Command,
}

/// The roles and tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP gateway (public API and operations endpoints).
    Serve(ServeArgs),
    /// Run the relay: publishes the event log to JetStream (one active instance; others stand by).
    Relay(RelayArgs),
    /// Run the projectors that build the read models from JetStream.
    Project(ProjectArgs),
    /// Run the guardrail worker (judges every submitted or edited problem, solution and debate
    /// post), or `guardrail eval` to measure it on the labelled set.
    Guardrail(GuardrailCli),
    /// Run every role in one process, after creating the database and applying migrations (a laptop).
    Dev(Box<DevArgs>),
    /// Create the database if missing and apply the migrations.
    Migrate(MigrateArgs),
    /// Inspect and operate the projections (read models).
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Load demo data (agents, problems, solutions, debates) through the command bus.
    Seed(SeedArgs),
    /// Print the development mailbox (verification codes sent without a mail service), newest first.
    Mailbox(MailboxArgs),
    /// Admin and auditor accounts, and the access-token signing key.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The ImpactToken ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// The event log as auditors use it: verify, export, sign a checkpoint, check a proof.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Write a backup (the log, checkpoints, keys and every command-side table; not the read
    /// models, which are rebuilt) into a directory, from one consistent snapshot.
    Backup {
        /// The directory (created; must not hold a backup already).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Measure the performance targets P1–P8 and the original plan's load scenarios, each against
    /// a reference taken in the same run (docs/benchmarks.md).
    Bench(crate::bench::BenchArgs),
    /// Restore a backup into this (migrated, empty) database, verify the log and rebuild every
    /// read model.
    Restore {
        /// The backup's directory.
        #[arg(long)]
        from: std::path::PathBuf,
        /// Base64 Ed25519 public key the restored checkpoints must verify with (pin it: a backup
        /// carries its own keys).
        #[arg(long)]
        public_key: Option<String>,
    },
}

/// `events …` (docs/adr/0006-signed-checkpoints.md).
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Recompute every stream's hash chain and every signed checkpoint's root and signature, and
    /// compare the log with the signed leaves: names every event altered, removed, inserted or
    /// reordered and every bad signature. Prints a JSON report (one line, before any log line) and
    /// exits with status 1 on any finding.
    Verify {
        /// Base64 Ed25519 public key to check signatures with (pin it: a key read from the same
        /// database as the log proves less).
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Write the log after `--after` to stdout as NDJSON, one stored event per line (with its
    /// chained hash), in global order, streaming.
    Export {
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Sign a checkpoint now over every event that can no longer be overtaken (the relay does this
    /// every `BW_CHECKPOINT_INTERVAL`); prints it as JSON, or `null` when nothing is new.
    Checkpoint(LogKeyArgs),
    /// Rebuild a read model as it was at a past position into a schema of its own (queried with
    /// `SET search_path TO SCHEMA` or `SCHEMA.table`); the live read model is untouched.
    Replay {
        /// The projection (as `projections status` names it).
        #[arg(long)]
        projection: String,
        /// The last global position to apply.
        #[arg(long)]
        until: i64,
        /// The schema to build into (replaced if it exists).
        #[arg(long)]
        into: String,
    },
    /// Migrate a log hashed before ADR 0007 (canonical form `bw.event.v1`) to the current form,
    /// once: checks the log as it stands, records `LogRehashed` (reason, operator, what the check
    /// found) in the log, re-derives every hash, supersedes the old checkpoints and signs a new one
    /// when a key is configured (docs/runbooks/rehash-log.md). Prints a JSON report; exits 1 when
    /// the check found something and `--accept-findings` was not given (nothing changes then).
    Rehash {
        /// Why (recorded in the log).
        #[arg(long)]
        reason: String,
        /// Who (recorded in the log); the OS user when not given.
        #[arg(long, env = "USER")]
        operator: String,
        /// Rehash although the check of the old hashes found something; the findings are recorded
        /// in the `LogRehashed` event.
        #[arg(long)]
        accept_findings: bool,
        /// Base64 Ed25519 public key the existing checkpoints must verify with.
        #[arg(long)]
        public_key: Option<String>,
        #[command(flatten)]
        log: LogKeyArgs,
    },
    /// Check an inclusion proof (the `data` of `GET /api/v1/audit/proof/{eventId}`, in a file)
    /// offline: the event's hash, its leaf, the path to the root and the signature.
    VerifyProof {
        /// The proof (JSON; a whole API response is accepted too).
        #[arg(long)]
        proof: std::path::PathBuf,
        /// Base64 Ed25519 public key of the checkpoint's signer.
        #[arg(long)]
        public_key: String,
    },
}

/// The key that signs log checkpoints, and how often.
#[derive(Debug, Clone, Args)]
pub struct LogKeyArgs {
    /// Base64 of the 32-byte Ed25519 seed that signs checkpoints. Secret: never logged.
    #[arg(
        long = "log-signing-key",
        env = "BW_LOG_SIGNING_KEY",
        hide_env_values = true
    )]
    pub log_signing_key: Option<bw_infra::Secret<String>>,
    /// File holding the seed instead (created, mode 0600, when missing). `dev` defaults to
    /// `.bw/log-signing-key`; a relay with neither signs no checkpoints (and says so).
    #[arg(long = "log-key-file", env = "BW_LOG_KEY_FILE")]
    pub log_key_file: Option<std::path::PathBuf>,
    /// How often the relay signs a checkpoint over what is new.
    #[arg(long = "checkpoint-interval", env = "BW_CHECKPOINT_INTERVAL", default_value = "30s", value_parser = bw_infra::config::parse_duration)]
    pub checkpoint_interval: std::time::Duration,
}

impl LogKeyArgs {
    /// The configured signer; `default_file` when neither the key nor a file is set.
    pub fn signer(
        &self,
        default_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Option<bw_eventlog::audit::LogSigner>> {
        use bw_eventlog::audit::LogSigner;
        if let Some(seed) = &self.log_signing_key {
            return Ok(Some(
                LogSigner::from_base64(seed.expose())
                    .map_err(|e| anyhow::anyhow!("BW_LOG_SIGNING_KEY: {e}"))?,
            ));
        }
        match self.log_key_file.as_deref().or(default_file) {
            Some(path) => Ok(Some(
                LogSigner::from_file(path).map_err(|e| anyhow::anyhow!("BW_LOG_KEY_FILE: {e}"))?,
            )),
            None => Ok(None),
        }
    }
}

/// `relay`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub log: LogKeyArgs,
}

/// `ledger …`.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Recompute every balance from the log and compare it with the balances and entries people
    /// read; prints a JSON report (one line, before any log line) and exits with status 1 when anything
    /// differs.
    Verify,
}

/// `mailbox`.
#[derive(Debug, Args)]
pub struct MailboxArgs {
    /// Only messages to this address.
    #[arg(long)]
    pub to: Option<String>,
    /// How many messages.
    #[arg(long, default_value_t = 10)]
    pub limit: i64,
}

/// `seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Do nothing when the demo agents already exist (for `scripts/bw up`).
    #[arg(long = "if-empty")]
    pub if_empty: bool,
    #[command(flatten)]
    pub people: PeopleArgs,
}

/// `projections …`.
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Print each projection's version, checkpoint, lag, state and the error that stopped it (JSON
    /// lines).
    Status,
    /// Rebuild a read model from the PostgreSQL log in shadow tables, catch up, and swap it in
    /// atomically while the old one keeps serving (docs/runbooks/rebuild-projection.md). Prints a
    /// JSON report (events, events/s, the checkpoint it took over at).
    Rebuild {
        /// The projection (as `status` names it).
        name: String,
    },
    /// Build a read model afresh into scratch tables and compare it with the live one at the live
    /// checkpoint; prints a JSON report with every differing row and exits with status 1 if any.
    Verify {
        /// The projection (as `status` names it).
        name: String,
    },
    /// Skip the event a failed projection stopped at — recorded with who and why — and resume it.
    Skip {
        /// The projection (as `status` names it).
        name: String,
        /// The global position it failed at (`status` shows it); any other position is refused.
        #[arg(long)]
        position: i64,
        /// Why skipping is right; stored with the skip.
        #[arg(long)]
        reason: String,
        /// Who decides (stored with the skip).
        #[arg(long, env = "USER", default_value = "operator")]
        by: String,
    },
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Settings of the public API.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Longest wait of a query sending `Bw-Min-Position` for its read model to catch up (then 503).
    #[arg(long = "consistency-wait", env = "BW_CONSISTENCY_WAIT", default_value = "2s", value_parser = bw_infra::config::parse_duration)]
    pub consistency_wait: std::time::Duration,
    /// Secret (≥ 32 characters) from which an agent's API key is derived when its registration
    /// carries an `Idempotency-Key`, so a replay shows the same key without storing it. When unset a
    /// random one is made per process, and a replay after a restart cannot show the key.
    #[arg(
        long = "api-key-secret",
        env = "BW_API_KEY_SECRET",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub api_key_secret: Option<bw_infra::Secret<String>>,
    /// Id of the heartbeat signing key, as agents see it in `publicKeyId` and the key registry.
    #[arg(
        long = "heartbeat-key-id",
        env = "BW_HEARTBEAT_KEY_ID",
        default_value = "bw-heartbeat-1"
    )]
    pub heartbeat_key_id: String,
    /// Base64 of the 32-byte Ed25519 seed that signs heartbeat instructions.
    #[arg(
        long = "heartbeat-signing-key",
        env = "BW_HEARTBEAT_SIGNING_KEY",
        hide_env_values = true
    )]
    pub heartbeat_signing_key: Option<bw_infra::Secret<String>>,
    /// File holding the seed instead (created, mode 0600, when missing). `dev` defaults to
    /// `.bw/heartbeat-signing-key`; `serve` without either uses a random key per process.
    #[arg(long = "heartbeat-key-file", env = "BW_HEARTBEAT_KEY_FILE")]
    pub heartbeat_key_file: Option<std::path::PathBuf>,
    /// Earlier public keys still listed in the registry during a rotation: a JSON array of
    /// `{"keyId", "publicKeyBase64", "validFrom", "validUntil"}` (active until `validUntil`).
    #[arg(long = "heartbeat-previous-keys", env = "BW_HEARTBEAT_PREVIOUS_KEYS")]
    pub heartbeat_previous_keys: Option<String>,
    /// Submissions waiting for the guardrail from which agents' submissions are refused with 429
    /// and `Retry-After` (0: never).
    #[arg(
        long = "guardrail-max-backlog",
        env = "BW_GUARDRAIL_MAX_BACKLOG",
        default_value_t = 2000
    )]
    pub guardrail_max_backlog: u64,
    /// … or from as many as the guardrail drains in this time at the rate it is measured to judge
    /// (never below 64), so that a full backlog drains within it on any hardware (0s: count only).
    #[arg(long = "guardrail-max-drain", env = "BW_GUARDRAIL_MAX_DRAIN", default_value = "45s", value_parser = bw_infra::config::parse_duration)]
    pub guardrail_max_drain: std::time::Duration,
    #[command(flatten)]
    pub people: PeopleArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Where evidence files are kept.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// `local` (a directory: `BW_STORAGE_DIR`) or `s3` (any S3-compatible service: `BW_S3_*`).
    #[arg(long = "storage", env = "BW_STORAGE", default_value = "local", value_parser = ["local", "s3"])]
    pub storage: String,
    /// The directory of the local store.
    #[arg(
        long = "storage-dir",
        env = "BW_STORAGE_DIR",
        default_value = ".bw/objects"
    )]
    pub storage_dir: std::path::PathBuf,
    /// The S3 endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`.
    #[arg(long = "s3-endpoint", env = "BW_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long = "s3-region", env = "BW_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Created at start-up when missing.
    #[arg(
        long = "s3-bucket",
        env = "BW_S3_BUCKET",
        default_value = "betterworld-evidence"
    )]
    pub s3_bucket: String,
    #[arg(
        long = "s3-access-key",
        env = "BW_S3_ACCESS_KEY",
        hide_env_values = true
    )]
    pub s3_access_key: Option<bw_infra::Secret<String>>,
    #[arg(
        long = "s3-secret-key",
        env = "BW_S3_SECRET_KEY",
        hide_env_values = true
    )]
    pub s3_secret_key: Option<bw_infra::Secret<String>>,
}

impl StorageArgs {
    /// The configured store (an S3 bucket is created when missing).
    pub async fn store(
        &self,
    ) -> anyhow::Result<std::sync::Arc<dyn bw_infra::storage::ObjectStore>> {
        if self.storage == "local" {
            return Ok(std::sync::Arc::new(bw_infra::storage::LocalStore::new(
                &self.storage_dir,
            )));
        }
        let missing = |name: &str| anyhow::anyhow!("{name}: required with BW_STORAGE=s3");
        let endpoint = self
            .s3_endpoint
            .as_deref()
            .ok_or_else(|| missing("BW_S3_ENDPOINT"))?;
        let access = self
            .s3_access_key
            .as_ref()
            .ok_or_else(|| missing("BW_S3_ACCESS_KEY"))?;
        let secret = self
            .s3_secret_key
            .as_ref()
            .ok_or_else(|| missing("BW_S3_SECRET_KEY"))?;
        let store = bw_infra::storage::S3Store::new(
            endpoint,
            &self.s3_region,
            &self.s3_bucket,
            access.expose(),
            secret.expose(),
            std::time::Duration::from_secs(30),
        )?;
        store.ensure_bucket().await?;
        Ok(std::sync::Arc::new(store))
    }
}

/// Settings every command that touches humans' accounts shares.
#[derive(Debug, Clone, Default, Args)]
pub struct PeopleArgs {
    /// Secret (≥ 32 characters) keying the fingerprints of humans' e-mail addresses. When unset, one
    /// is generated on first start and kept in the database (`server_secrets`), so every instance
    /// agrees; set it to keep it out of the database. Never change it once humans exist: their
    /// addresses would no longer be found.
    #[arg(
        long = "email-fingerprint-secret",
        env = "BW_EMAIL_FINGERPRINT_SECRET",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub email_fingerprint_secret: Option<bw_infra::Secret<String>>,
}

/// `admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin or auditor account (e-mail verified; the password comes from
    /// `BW_ADMIN_PASSWORD`, or is generated and printed once).
    Create(AdminCreateArgs),
    /// Rotate the key that signs humans' access tokens; tokens signed with the previous key stay
    /// valid until they expire (at most 16 minutes).
    RotateTokenKey,
}

/// `admin create`.
#[derive(Debug, Args)]
pub struct AdminCreateArgs {
    /// The account's e-mail address.
    #[arg(long)]
    pub email: String,
    /// `admin` or `auditor`.
    #[arg(long, value_parser = ["admin", "auditor"])]
    pub role: String,
    /// The name shown for the account.
    #[arg(long = "display-name", default_value = "Administrator")]
    pub display_name: String,
    /// The password (8–128 characters with upper case, lower case and a digit); generated if unset.
    #[arg(long, env = "BW_ADMIN_PASSWORD", hide_env_values = true)]
    pub password: Option<bw_infra::Secret<String>>,
    #[command(flatten)]
    pub people: PeopleArgs,
}

/// `relay`, `project`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub ops: OpsConfig,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub streams: StreamArgs,
}

/// `project`.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub vision: VisionArgs,
    /// Where the vision worker reads evidence photos (only used with `BW_VISION_PROVIDER`).
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// The optional vision model for evidence (docs/verification.md). Unset: ambiguous evidence goes
/// straight to peer review and nothing is sent anywhere.
#[derive(Debug, Clone, Args)]
pub struct VisionArgs {
    /// `anthropic` (Messages API with the `verify_evidence` tool), or unset for none.
    #[arg(long = "vision-provider", env = "BW_VISION_PROVIDER", value_parser = ["anthropic"])]
    pub vision_provider: Option<String>,
    /// The API's base URL, without `/v1`.
    #[arg(
        long = "vision-base-url",
        env = "BW_VISION_BASE_URL",
        default_value = "https://api.anthropic.com"
    )]
    pub vision_base_url: String,
    /// The API key (required with a provider). Secret: never logged.
    #[arg(
        long = "vision-api-key",
        env = "BW_VISION_API_KEY",
        hide_env_values = true
    )]
    pub vision_api_key: Option<bw_infra::Secret<String>>,
    #[arg(
        long = "vision-model",
        env = "BW_VISION_MODEL",
        default_value = "claude-sonnet-4-5-20250929"
    )]
    pub vision_model: String,
    /// Longest wait for one call.
    #[arg(long = "vision-timeout", env = "BW_VISION_TIMEOUT", default_value = "30s", value_parser = bw_infra::config::parse_duration)]
    pub vision_timeout: std::time::Duration,
    /// Retries after a failed call (429, 5xx, transport errors).
    #[arg(
        long = "vision-max-retries",
        env = "BW_VISION_MAX_RETRIES",
        default_value_t = 2
    )]
    pub vision_max_retries: u32,
    /// Spend per UTC day in cents, across instances; beyond it evidence goes to peer review.
    #[arg(
        long = "vision-daily-budget-cents",
        env = "BW_VISION_DAILY_BUDGET_CENTS",
        default_value_t = 3700
    )]
    pub vision_daily_budget_cents: i64,
    /// What one image costs, in cents.
    #[arg(
        long = "vision-cents-per-image",
        env = "BW_VISION_CENTS_PER_IMAGE",
        default_value_t = 5
    )]
    pub vision_cents_per_image: i64,
}

impl VisionArgs {
    /// The configured provider, if any; a provider needs its API key.
    pub fn provider(
        &self,
        pool: &sqlx::PgPool,
    ) -> anyhow::Result<Option<std::sync::Arc<dyn bw_guardrail::vision::VisionProvider>>> {
        if self.vision_provider.is_none() {
            return Ok(None);
        }
        let api_key = self
            .vision_api_key
            .as_ref()
            .map(|k| k.expose().clone())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!("BW_VISION_API_KEY: required with BW_VISION_PROVIDER")
            })?;
        let provider = bw_guardrail::vision::AnthropicVision::new(
            bw_guardrail::vision::VisionConfig {
                base_url: self.vision_base_url.clone(),
                api_key: bw_infra::Secret::new(api_key),
                model: self.vision_model.clone(),
                timeout: self.vision_timeout,
                max_retries: self.vision_max_retries,
                daily_budget_cents: self.vision_daily_budget_cents,
                cents_per_image: self.vision_cents_per_image,
            },
            pool.clone(),
        )?;
        Ok(Some(std::sync::Arc::new(provider)))
    }
}

/// JetStream settings of the roles that publish or consume the event stream.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// Replica count of the JetStream streams (1 locally, 3 on a 3-node cluster); default: as in `nats/`.
    #[arg(long = "nats-replicas", env = "BW_NATS_REPLICAS")]
    pub replicas: Option<usize>,
    /// Name of the event stream.
    #[arg(
        long = "events-stream",
        env = "BW_EVENTS_STREAM",
        default_value = "BW_EVENTS"
    )]
    pub events_stream: String,
    /// Subject prefix of the event stream (`<prefix>.<AggregateType>.<EventType>`).
    #[arg(
        long = "events-subject-prefix",
        env = "BW_EVENTS_SUBJECT_PREFIX",
        default_value = "bw.events"
    )]
    pub subject_prefix: String,
}

impl StreamArgs {
    /// The event stream these settings name.
    pub fn events(&self) -> bw_infra::nats::EventsStream {
        bw_infra::nats::EventsStream {
            name: self.events_stream.clone(),
            subject_prefix: self.subject_prefix.clone(),
        }
    }
}

/// `dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub streams: StreamArgs,
    #[command(flatten)]
    pub guardrail: GuardrailArgs,
    #[command(flatten)]
    pub vision: VisionArgs,
    #[command(flatten)]
    pub log: LogKeyArgs,
}

/// `guardrail [eval]`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GuardrailCli {
    #[command(subcommand)]
    pub command: Option<GuardrailCommand>,
    #[command(flatten)]
    pub run: GuardrailRoleArgs,
}

/// `guardrail …` tools.
#[derive(Debug, Subcommand)]
pub enum GuardrailCommand {
    /// The guardrail's quality on the held-out split of the labelled corpus (`guardrail/eval/`), as
    /// a new and as a verified agent: accuracy, macro-F1, per-class precision and recall, the
    /// confusion matrix, per harm category, work against a harm, prompt injections, per language,
    /// and the acceptance bars.
    Eval(EvalArgs),
    /// Embeds the corpus's training split and writes the vectors the binary ships
    /// (`guardrail/model/train.vectors`); run after changing `train.jsonl`, then rebuild.
    Train(TrainArgs),
}

/// `guardrail train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The directory to write `train.vectors` and `classifier.weights` to (default: `guardrail/model`
    /// of the checkout it was built from).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// `guardrail eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The labelled items to judge (JSON lines; default: the held-out split).
    #[arg(long, default_value = "guardrail/eval/test.jsonl")]
    pub file: std::path::PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Search the parameters that do best on the training split (cross-validated macro-F1) and
    /// report with them (else the shipped parameters).
    #[arg(long)]
    pub tune: bool,
    /// Only the first N items (a quick run).
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Where the embedding model is (the guardrail's classifier, the semantic index, search).
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// The all-MiniLM-L6-v2 directory (`scripts/bw setup` fetches and verifies it).
    #[arg(
        long = "model-dir",
        env = "BW_MODEL_DIR",
        default_value = ".bw/models/all-MiniLM-L6-v2"
    )]
    pub model_dir: std::path::PathBuf,
}

/// The optional LLM judge (`BW_GUARDRAIL_CLASSIFIER=llm`; docs/guardrails.md).
#[derive(Debug, Clone, Args)]
pub struct LlmArgs {
    /// `anthropic` (Messages API) or `openai` (any OpenAI-compatible chat completions API).
    #[arg(long = "llm-provider", env = "BW_LLM_PROVIDER", default_value = "anthropic", value_parser = ["anthropic", "openai"])]
    pub provider: String,
    /// The API's base URL, without `/v1` (default: the provider's public API).
    #[arg(long = "llm-base-url", env = "BW_LLM_BASE_URL")]
    pub base_url: Option<String>,
    /// The API key (required with `llm`). Secret: never logged.
    #[arg(long = "llm-api-key", env = "BW_LLM_API_KEY", hide_env_values = true)]
    pub api_key: Option<bw_infra::Secret<String>>,
    /// The model (default: `claude-haiku-4-5` for anthropic, `gpt-4o-mini` for openai).
    #[arg(long = "llm-model", env = "BW_LLM_MODEL")]
    pub model: Option<String>,
    /// Longest wait for one call.
    #[arg(long = "llm-timeout", env = "BW_LLM_TIMEOUT", default_value = "10s", value_parser = bw_infra::config::parse_duration)]
    pub timeout: std::time::Duration,
    /// Retries after a failed call (429, 5xx, transport errors).
    #[arg(
        long = "llm-max-retries",
        env = "BW_LLM_MAX_RETRIES",
        default_value_t = 2
    )]
    pub max_retries: u32,
    /// Spend per UTC day in cents, across instances; beyond it content is flagged for an admin.
    #[arg(
        long = "llm-daily-budget-cents",
        env = "BW_LLM_DAILY_BUDGET_CENTS",
        default_value_t = 1333
    )]
    pub daily_budget_cents: i64,
    /// What one call costs, in cents.
    #[arg(
        long = "llm-cents-per-call",
        env = "BW_LLM_CENTS_PER_CALL",
        default_value_t = 1
    )]
    pub cents_per_call: i64,
}

impl LlmArgs {
    /// The judge's configuration; the API key is required.
    pub fn config(&self) -> anyhow::Result<bw_guardrail::llm::LlmConfig> {
        use bw_guardrail::llm::{LlmConfig, Provider};
        let provider = if self.provider == "openai" {
            Provider::OpenAi
        } else {
            Provider::Anthropic
        };
        let api_key = self
            .api_key
            .as_ref()
            .map(|k| k.expose().clone())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!("BW_LLM_API_KEY: required with BW_GUARDRAIL_CLASSIFIER=llm")
            })?;
        let (base, model) = match provider {
            Provider::Anthropic => ("https://api.anthropic.com", "claude-haiku-4-5"),
            Provider::OpenAi => ("https://api.openai.com", "gpt-4o-mini"),
        };
        Ok(LlmConfig {
            provider,
            base_url: self.base_url.clone().unwrap_or_else(|| base.to_owned()),
            api_key: bw_infra::Secret::new(api_key),
            model: self.model.clone().unwrap_or_else(|| model.to_owned()),
            timeout: self.timeout,
            max_retries: self.max_retries,
            daily_budget_cents: self.daily_budget_cents,
            cents_per_call: self.cents_per_call,
        })
    }
}

/// `guardrail` (the worker).
#[derive(Debug, Args)]
pub struct GuardrailRoleArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub ops: OpsConfig,
    #[command(flatten)]
    pub streams: StreamArgs,
    #[command(flatten)]
    pub guardrail: GuardrailArgs,
}

/// How the guardrail judges (docs/guardrails.md).
#[derive(Debug, Clone, Args)]
pub struct GuardrailArgs {
    /// The Layer B classifier. `semantic`: all-MiniLM-L6-v2 in process, compared with reference
    /// texts of the domains and harms (no external service); `admin-only`: no automatic Layer B,
    /// everything Layer A lets through waits in the admin queue; `llm`: the LLM judge for
    /// everything; `cascade`: `semantic`, and the LLM judge only for what it is unsure of.
    #[arg(long = "guardrail-classifier", env = "BW_GUARDRAIL_CLASSIFIER", default_value = "semantic", value_parser = ["semantic", "admin-only", "llm", "cascade"])]
    pub classifier: String,
    /// With `cascade`: the semantic classifier's calibrated confidence (0–1) from which its
    /// assessment stands without asking the LLM.
    #[arg(long = "guardrail-cascade-confident", env = "BW_GUARDRAIL_CASCADE_CONFIDENT", default_value_t = bw_guardrail::cascade::DEFAULT_CONFIDENT, value_parser = confidence)]
    pub cascade_confident: f64,
    #[command(flatten)]
    pub llm: LlmArgs,
    /// Days an agent must exist before its tier can be `verified`.
    #[arg(
        long = "trust-verified-min-age-days",
        env = "BW_TRUST_VERIFIED_MIN_AGE_DAYS",
        default_value_t = bw_domain::guardrail::TrustPolicy::default().verified_min_age_days
    )]
    pub verified_min_age_days: i64,
    /// Approved submissions an agent needs for `verified`.
    #[arg(
        long = "trust-verified-min-approvals",
        env = "BW_TRUST_VERIFIED_MIN_APPROVALS",
        default_value_t = bw_domain::guardrail::TrustPolicy::default().verified_min_approvals
    )]
    pub verified_min_approvals: i64,
    /// Alignment from which a new agent's content is approved (the defaults of the bands are the
    /// domain's `TrustPolicy`, chosen on the corpus's dev split).
    #[arg(
        long = "guardrail-new-approve",
        env = "BW_GUARDRAIL_NEW_APPROVE",
        default_value_t = bw_domain::guardrail::TrustPolicy::default().new.approve
    )]
    pub new_approve: f64,
    /// Alignment from which a verified agent's content is approved.
    #[arg(
        long = "guardrail-verified-approve",
        env = "BW_GUARDRAIL_VERIFIED_APPROVE",
        default_value_t = bw_domain::guardrail::TrustPolicy::default().verified.approve
    )]
    pub verified_approve: f64,
    /// Alignment below which content is rejected (both tiers).
    #[arg(
        long = "guardrail-reject-below",
        env = "BW_GUARDRAIL_REJECT_BELOW",
        default_value_t = bw_domain::guardrail::TrustPolicy::default().new.reject_below
    )]
    pub reject_below: f64,
    /// How long a Layer B result is reused for the same normalised text.
    #[arg(long = "guardrail-cache-ttl", env = "BW_GUARDRAIL_CACHE_TTL", default_value = "1h", value_parser = bw_infra::config::parse_duration)]
    pub cache_ttl: std::time::Duration,
    /// Cosine similarity to an approved problem from which a new problem is flagged as a near
    /// duplicate (needs the embedding model).
    #[arg(
        long = "guardrail-duplicate-similarity",
        env = "BW_GUARDRAIL_DUPLICATE_SIMILARITY",
        default_value_t = 0.92
    )]
    pub duplicate_similarity: f64,
    /// Judges (claim loops) this process runs; more processes may run their own, all sharing one
    /// queue.
    #[arg(long = "guardrail-workers", env = "BW_GUARDRAIL_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Submissions one judge claims and embeds at once.
    #[arg(long = "guardrail-batch", env = "BW_GUARDRAIL_BATCH", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch: u16,
}

impl GuardrailArgs {
    /// How the judges claim.
    pub fn queue(&self) -> bw_processes::guardrail::queue::QueueConfig {
        bw_processes::guardrail::queue::QueueConfig {
            workers: usize::from(self.workers),
            batch: usize::from(self.batch),
            ..Default::default()
        }
    }

    /// The worker's configuration; thresholds must lie in 0–1 with reject-below under each approve.
    pub fn config(&self) -> anyhow::Result<bw_processes::guardrail::worker::GuardrailConfig> {
        use bw_domain::guardrail::{Thresholds, TrustPolicy};
        for (name, value) in [
            (
                "BW_GUARDRAIL_DUPLICATE_SIMILARITY",
                self.duplicate_similarity,
            ),
            ("BW_GUARDRAIL_NEW_APPROVE", self.new_approve),
            ("BW_GUARDRAIL_VERIFIED_APPROVE", self.verified_approve),
            ("BW_GUARDRAIL_REJECT_BELOW", self.reject_below),
        ] {
            if !(0.0..=1.0).contains(&value) {
                anyhow::bail!("{name}: must be between 0 and 1, not {value}");
            }
        }
        if self.classifier == "llm" {
            self.llm.config()?;
        }
        if self.reject_below > self.new_approve.min(self.verified_approve) {
            anyhow::bail!("BW_GUARDRAIL_REJECT_BELOW: must not exceed the approve thresholds");
        }
        Ok(bw_processes::guardrail::worker::GuardrailConfig {
            policy: TrustPolicy {
                verified_min_age_days: self.verified_min_age_days,
                verified_min_approvals: self.verified_min_approvals,
                new: Thresholds {
                    approve: self.new_approve,
                    reject_below: self.reject_below,
                },
                verified: Thresholds {
                    approve: self.verified_approve,
                    reject_below: self.reject_below,
                },
            },
            cache_ttl: self.cache_ttl,
            duplicate_similarity: self.duplicate_similarity,
        })
    }
}

/// `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Fail instead of creating the database when it does not exist.
    #[arg(long = "no-create-database", env = "BW_NO_CREATE_DATABASE")]
    pub no_create_database: bool,
}

/// `BW_API_KEY_SECRET`: at least 32 characters, so derived keys are as strong as random ones.
fn parse_secret(raw: &str) -> Result<bw_infra::Secret<String>, String> {
    if raw.chars().count() < 32 {
        return Err("must be at least 32 characters".to_owned());
    }
    Ok(bw_infra::Secret::new(raw.to_owned()))
}

/// A probability: a number from 0 to 1.
fn confidence(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{raw:?} is not a number from 0 to 1")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_short_api_key_secret_is_refused() {
        let short = Cli::try_parse_from(["betterworld", "serve", "--api-key-secret", "short"]);
        assert!(short.is_err());
        let long =
            Cli::try_parse_from(["betterworld", "serve", "--api-key-secret", &"x".repeat(32)]);
        assert!(long.is_ok());
    }

    #[test]
    fn common_flags_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "betterworld",
            "serve",
            "--database-url",
            "postgres://x@h/db",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .expect("parses");
        assert_eq!(cli.common.database.url.expose(), "postgres://x@h/db");
        assert!(matches!(cli.command, Command::Serve(_)));
    }
}
