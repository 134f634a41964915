//! The read side: the projector runtime and the read models.
//!
//! Each projector is a durable JetStream pull consumer whose read-model change and checkpoint (the
//! global position of the last applied event) commit in one PostgreSQL transaction; messages are
//! acknowledged only after that commit, and a delivery at or below the checkpoint is skipped, so
//! redeliveries after any crash apply nothing twice. Projections are deterministic: times and ids
//! come from the events, never from the clock.
//!
//! # Layout
//!
//! - [`runtime`]: [`runtime::Projection`] (what a read model implements) and [`runtime::Projector`]
//!   (consume, apply, checkpoint, fail loudly; `process_pending` for tests, `run` for the role).
//! - [`models`]: the read models — [`models::agents::AgentDirectory`],
//!   [`models::problems::ProblemFeed`] — and their queries.
//! - [`status`]: projection states and the readiness check that names a failed projection.
//! - [`error`]: [`ProjectionError`], this crate's one error type.

pub mod error;
pub mod models;
pub mod rebuild;
pub mod runtime;
pub mod status;

pub use error::ProjectionError;
