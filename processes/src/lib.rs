//! Domain processes: long-running work that reacts to the log or the clock by sending commands —
//! never HTTP, never a read model of their own.
//!
//! # Layout
//!
//! - [`sagas`]: the reward saga (verified evidence pays its claimant; peer votes pay reviewers).
//! - [`vision`]: the optional vision worker, which shows evidence photos to a vision model.
//! - [`scheduler`]: the expiry sweeps of claims and missions.

pub mod sagas;
pub mod scheduler;
pub mod vision;
