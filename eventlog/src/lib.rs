//! The event log: the only code that reads or writes the `events` table.
//!
//! Everyone else asks it: the command side appends through [`store`], projections and processes read
//! through [`read`] and the [`relay`], auditors through [`audit`]. The log is append-only and
//! hash-chained per stream (ADR 0007); its global position is commit-safe (ADR 0002): every
//! event-writing transaction holds [`EVENT_WRITER_LOCK`] shared, and the relay publishes only below
//! the horizon of transactions still open.
//!
//! # Layout
//!
//! - [`store`]: load an aggregate from its stream, append its new events (one multi-row insert).
//! - [`repository`]: cqrs-es's `PersistedEventRepository` on the same store, so cqrs-es's own
//!   `CqrsFramework` and replay tools work against our log.
//! - [`read`]: the reads other crates need (a stream's history, events between two positions,
//!   counts for lag gauges, the log's size for backups) — named queries instead of SQL on `events`.
//! - [`canonical`]: the canonical byte form of an event and the SHA-256 chain over it.
//! - [`merkle`]: the Merkle tree over the log in global order, inclusion proofs, the signed message.
//! - [`audit`]: auditors' reads, signed checkpoints, inclusion proofs, `events verify`, rehash.
//! - [`envelope`]: an event of the log as it travels over JetStream (body = payload, metadata in
//!   headers), and as it is read back from the table.
//! - [`relay`]: publishes the log to JetStream in commit-safe order, leader-elected.
//! - [`leader`]: leader election with PostgreSQL advisory locks.
//! - [`error`]: [`LogError`], this crate's one error type.

pub mod audit;
pub mod canonical;
pub mod envelope;
pub mod error;
pub mod leader;
pub mod merkle;
pub mod read;
pub mod relay;
pub mod repository;
pub mod store;

pub use error::LogError;
pub use relay::EVENT_WRITER_LOCK;
