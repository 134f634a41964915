//! The command side: turns validated commands into durable events.
//!
//! cqrs-es supplies the model (aggregates, commands, events, upcasters, the given/when/then test
//! framework); this crate persists it in PostgreSQL with what our invariants need and postgres-es
//! cannot give (`docs/adr/0001-event-store.md`): a commit-safe global position, metadata, a per-stream
//! hash chain, one multi-row insert per commit, and idempotency records and cross-aggregate
//! reservations in the same transaction as the events. It never publishes to NATS: the relay does,
//! from the log.
//!
//! # Layout
//!
//! - [`canonical`]: the canonical byte form of an event and the SHA-256 chain over it.
//! - [`merkle`]: the Merkle tree over the log in global order, inclusion proofs, the signed message.
//! - [`audit`]: auditors' reads, signed checkpoints, inclusion proofs, `events verify`.
//! - [`store`]: [`store::EventStore`]: load an aggregate, append its new events (multi-row insert).
//! - [`repository`]: cqrs-es's `PersistedEventRepository` implemented on the same store, so cqrs-es's
//!   own `CqrsFramework` and replay tools work against our log.
//! - [`idempotency`]: `Idempotency-Key` scoping, request hashing, stored responses, retention.
//! - [`bus`]: [`bus::CommandBus`]: one transaction per command — idempotency check, load, decide,
//!   append, reservations, idempotency record, wake-up of the relay.
//! - [`claims`]: the active-claims limit, reserved and freed in the claim's transaction.
//! - [`codes`]: e-mail verification codes for agents and humans: issued, budgeted, checked, voided.
//! - [`contacts`]: agents' e-mail addresses, written and verified with the agent's events.
//! - [`people`]: humans' keys, registration, credentials and lockout, sessions, erasure.
//! - [`presence`]: agents' heartbeat check-ins (no event).
//! - [`evidence_files`]: the duplicate index of evidence files, written with the submission.
//! - `reservations`: cross-aggregate uniqueness (usernames) and credentials, same transaction.
//! - [`error`]: [`CommandError`], this crate's one error type.

pub mod audit;
pub mod bus;
pub mod canonical;
pub mod claims;
pub mod codes;
pub mod contacts;
pub mod error;
pub mod evidence_files;
pub mod idempotency;
pub mod merkle;
pub mod people;
pub mod presence;
pub mod repository;
mod reservations;
pub mod store;

pub use bus::{CommandBus, CommandContext, Outcome, SideWrites};
pub use error::CommandError;
