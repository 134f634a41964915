//! Adapters between BetterWorld and the outside world.
//!
//! Nothing in here makes a business decision; it connects, configures, observes and shuts down.
//!
//! # Layout
//!
//! - [`config`]: the one typed configuration (clap + env) every `betterworld` subcommand shares, and
//!   [`Secret`] for values that must never be printed.
//! - [`crypto`]: sealing personal fields per person, Argon2id passwords, HS256 tokens with key
//!   rotation (the building blocks of ADR 0003).
//! - [`postgres`]: the connection pool (with a clear start-up error naming `DATABASE_URL`), database
//!   creation and the embedded migrations.
//! - [`nats`]: the NATS connection (with a clear start-up error naming `NATS_URL`) and the JetStream
//!   stream definitions shipped in `nats/`.
//! - [`notify`]: the `Notifier` trait and the development mailbox.
//! - [`health`]: readiness checks of the dependencies, reported by `/readyz`.
//! - [`metrics`]: the Prometheus registry, HTTP metrics, pool gauges and process metrics.
//! - [`telemetry`]: JSON logs with redaction, and OpenTelemetry export when configured.
//! - [`storage`]: object storage for evidence files (a local directory, or S3 through presigned requests).
//! - [`shutdown`]: the shutdown signal every long-running task watches, and the tracker that drains them.
//! - [`error`]: [`InfraError`], this crate's one error type.

pub mod config;
pub mod crypto;
pub mod error;
pub mod health;
pub mod metrics;
pub mod nats;
pub mod notify;
pub mod postgres;
pub mod shutdown;
pub mod storage;
pub mod telemetry;

pub use config::{CommonConfig, Secret};
pub use error::InfraError;
