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
    Relay(WorkerArgs),
    /// Run the projectors that build the read models from JetStream.
    Project(WorkerArgs),
    /// Run every role in one process, after creating the database and applying migrations (a laptop).
    Dev(DevArgs),
    /// Create the database if missing and apply the migrations.
    Migrate(MigrateArgs),
    /// Inspect and operate the projections (read models).
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Load demo data (agents, problems, solutions, debates) through the command bus.
    Seed(SeedArgs),
    /// Print the development mailbox (verification codes sent without a mail service), newest first.
    Mailbox(MailboxArgs),
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
}

/// `projections …`.
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Print each projection's version, checkpoint, state and the error that stopped it (JSON lines).
    Status,
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
}

/// `relay`, `project`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub ops: OpsConfig,
    #[command(flatten)]
    pub streams: StreamArgs,
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
