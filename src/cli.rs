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
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub http: HttpConfig,
}

/// `relay`, `project`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub ops: OpsConfig,
    #[command(flatten)]
    pub streams: StreamArgs,
}

/// JetStream settings of the roles that apply the stream definitions.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// Replica count of the JetStream streams (1 locally, 3 on a 3-node cluster); default: as in `nats/`.
    #[arg(long = "nats-replicas", env = "BW_NATS_REPLICAS")]
    pub replicas: Option<usize>,
}

/// `dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub http: HttpConfig,
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
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
