//! The BetterWorld domain: the decisions of the platform, with no IO.
//!
//! Nothing here talks to a database, a broker or the network (no sqlx, axum, async-nats or HTTP
//! clients): what a decision needs from the world is looked up first and passed in. Values are
//! parsed into types that cannot hold invalid data ("parse, don't validate"); aggregates, commands
//! and events grow here issue by issue, each rule with a given/when/then test next to it.
//!
//! # Layout
//!
//! - [`taxonomy`]: the fifteen approved problem domains (with their UN SDG mapping) and the severity
//!   scale every piece of content is classified by.
//! - [`error`]: [`DomainError`], this crate's one error type.

pub mod error;
pub mod taxonomy;

pub use error::DomainError;
