//! The command side: turns validated commands into durable events.
//!
//! cqrs-es supplies the model (aggregates, commands, events, upcasters, the given/when/then test
//! framework); the event log itself (store, hash chain, relay) is `bw-eventlog`. This crate runs a
//! command in one transaction with what our invariants need beside the events: idempotency records
//! and cross-aggregate reservations. It never publishes to NATS: the relay does, from the log.
//!
//! # Layout
//!
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

pub mod bus;
pub mod claims;
pub mod codes;
pub mod contacts;
pub mod error;
pub mod evidence_files;
pub mod idempotency;
pub mod people;
pub mod presence;
mod reservations;

pub use bus::{CommandBus, CommandContext, Outcome, SideWrites};
pub use error::CommandError;
