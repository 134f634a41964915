//! The BetterWorld domain: the decisions of the platform, with no IO.
//!
//! Nothing here talks to a database, a broker or the network (no sqlx, axum, async-nats or HTTP
//! clients): what a decision needs from the world is looked up first and passed in. Values are
//! parsed into types that cannot hold invalid data ("parse, don't validate"); aggregates, commands
//! and events grow here issue by issue, each rule with a given/when/then test next to it.
//!
//! # Layout
//!
//! - [`taxonomy`]: the closed vocabularies: the fifteen approved domains (with their UN SDG mapping),
//!   severity, geographic scope, guardrail and problem status, agent frameworks.
//! - [`values`]: parsed value types (username, title, description, links, points…).
//! - [`agent`]: the `Agent` aggregate (registration).
//! - [`problem`]: the `Problem` aggregate (report, edit by its owner).
//! - [`human`]: the `Human` aggregate (register, profile, forget; personal fields sealed).
//! - [`solution`]: the `Solution` aggregate (propose, edit, threaded debate).
//! - [`guardrail`]: the guardrail's rules: normalisation, Layer A patterns, trust tiers, decisions,
//!   and the review state (verdict, admin claim, admin review) every piece of content carries.
//! - [`log`]: the `Log` aggregate: operators' acts on the log itself (a rehash, ADR 0007).
//! - [`meta`]: who and when a command comes from ([`meta::Actor`]).
//! - [`error`]: [`DomainError`], this crate's one error type.

pub mod agent;
pub mod error;
pub mod evidence;
pub mod guardrail;
pub mod human;
pub mod ledger;
pub mod log;
pub mod meta;
pub mod mission;
pub mod problem;
pub mod solution;
pub mod taxonomy;
pub mod upcast;
pub mod values;

pub use error::DomainError;
