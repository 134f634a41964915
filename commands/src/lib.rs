//! The command side: turns validated commands into durable events.
//!
//! This crate is where cqrs-es is wired to PostgreSQL: our own implementation of cqrs-es's
//! `PersistedEventRepository` (see `docs/adr/0001-event-store.md` for why postgres-es alone is not
//! enough), the idempotency records written in the same transaction as the events, and the sagas
//! that turn events into further commands with deterministic ids. It depends on `domain` for every
//! decision and on `infra` for connections; it never publishes to NATS (the relay does, from the log).
//!
//! The event store arrives with the event pipeline (issue #3); until then the crate only fixes its
//! place in the dependency graph.

pub use bw_domain as domain;
