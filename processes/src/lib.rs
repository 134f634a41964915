//! Domain processes: long-running work that reacts to the log or the clock by sending commands —
//! never HTTP, never a read model of their own.
//!
//! # Layout
//!
//! - [`guardrail`]: the guardrail's intake, judges' queue and worker (the classifiers they call are
//!   `bw-guardrail`).
//! - [`sagas`]: the reward saga (verified evidence pays its claimant; peer votes pay reviewers).
//! - [`vision`]: the optional vision worker, which shows evidence photos to a vision model.
//! - [`scheduler`]: the expiry sweeps of claims and missions.

pub mod guardrail;
pub mod sagas;
pub mod scheduler;
pub mod vision;
