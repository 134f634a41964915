//! The `betterworld` binary's library half: the command line and what each subcommand runs, exposed
//! so integration tests start roles exactly as the binary does.
//!
//! # Layout
//!
//! - [`cli`]: the subcommands and their flags (all also environment variables).
//! - [`roles`]: connecting a role's dependencies, serving, draining on shutdown.
//! - [`seed`]: demo data for a local stack.

pub mod cli;
pub mod roles;
pub mod seed;

/// Installs ring as the process-wide rustls provider. reqwest (trace export) and sqlx/async-nats
/// would otherwise disagree on it, and async-nats panics on TLS connections when none is chosen.
/// Returns false when a provider was already installed.
pub fn install_crypto_provider() -> bool {
    rustls::crypto::ring::default_provider()
        .install_default()
        .is_ok()
}
