//! The read side: the projector runtime and the read models.
//!
//! Each projector is a durable JetStream pull consumer whose read-model change and checkpoint (the
//! global position of the last applied event) commit in one PostgreSQL transaction, so redelivered
//! events at or below the checkpoint are skipped; rebuilds replay the PostgreSQL log into a shadow
//! table and swap it in. Projectors are deterministic: times and ids come from the events.
//!
//! The runtime and the first read models arrive with the event pipeline (issue #3); until then the
//! crate only fixes its place in the dependency graph.

pub use bw_domain as domain;
