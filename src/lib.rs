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
//! - [`sagas`]: the reward saga; [`vision`]: the optional vision worker for evidence;
//!   [`scheduler`]: the expiry sweeps.

pub mod admin;
pub mod cli;
pub mod evaluate;
pub mod roles;
pub mod sagas;
pub mod scheduler;
pub mod seed;
pub mod vision;

/// Installs ring as the process-wide rustls provider. reqwest (trace export) and sqlx/async-nats
/// would otherwise disagree on it, and async-nats panics on TLS connections when none is chosen.
/// Returns false when a provider was already installed.
pub fn install_crypto_provider() -> bool {
    rustls::crypto::ring::default_provider()
        .install_default()
        .is_ok()
}
