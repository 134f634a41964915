//! The `betterworld` binary's library half: the command line and what each subcommand runs, exposed
//! so integration tests start roles exactly as the binary does.
//!
//! # Layout
//!
//! - [`cli`]: the subcommands and their flags (all also environment variables).
//! - [`roles`]: connecting a role's dependencies, serving, draining on shutdown.
//! - [`seed`]: demo data for a local stack.
//! - [`admin`]: creating admin and auditor accounts, rotating the access-token key.
//! - [`evaluate`]: `betterworld guardrail eval`.
//! - [`audit`]: `betterworld events …` and the log checkpointer.
//! - [`backup`]: `betterworld backup` and `restore`.
//! - [`bench`]: `betterworld bench …`, the performance targets and load scenarios.
//! - [`rebuild`]: rebuilding and verifying projections, with progress, by hand and at start-up.
//!
//! The domain processes (reward saga, vision worker, expiry scheduler) are the `bw-processes` crate.

pub mod admin;
pub mod audit;
pub mod backup;
pub mod bench;
pub mod cli;
pub mod evaluate;
pub mod rebuild;
pub mod roles;
pub mod seed;

/// Prints `report` as one JSON line on stdout (before any log line, for scripts), then fails with
/// `failure` when there is one.
pub fn report_then(report: &impl serde::Serialize, failure: Option<String>) -> anyhow::Result<()> {
    use std::io::Write as _;
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string(report)?
    )?;
    match failure {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}

/// Installs ring as the process-wide rustls provider. reqwest (trace export) and sqlx/async-nats
/// would otherwise disagree on it, and async-nats panics on TLS connections when none is chosen.
/// Returns false when a provider was already installed.
pub fn install_crypto_provider() -> bool {
    rustls::crypto::ring::default_provider()
        .install_default()
        .is_ok()
}
