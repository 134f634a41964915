//! The guardrail: judges every problem, solution and debate post an agent submits or edits.
//!
//! The worker consumes content events (through the projector runtime: a durable JetStream consumer
//! with a checkpoint, gap-filled from the PostgreSQL log), and for each submission:
//!
//! 1. rebuilds the submitted text from the log (an edit changes some fields; the whole text is judged),
//! 2. normalises it and runs **Layer A** (forbidden patterns, `bw_domain::guardrail`),
//! 3. asks the **Layer B** [`Classifier`] — through the decision cache keyed by SHA-256 of content type
//!    and normalised text — unless Layer A already rejected,
//! 4. applies the author's **trust tier** thresholds (age and approvals, counted from the log), and
//! 5. issues the verdict command with the id derived from the source event. The content aggregate
//!    records one verdict per submission, so a redelivered event never produces a second verdict.
//!
//! Layer C is the admin queue (`projections::models::review_queue`, `/api/v1/admin/flagged`).
//!
//! # Layout
//!
//! - [`classifier`]: the [`Classifier`] trait and the classifiers: `AdminOnly` (no Layer B) and
//!   `Semantic` (local, by meaning).
//! - [`embed`]: all-MiniLM-L6-v2 sentence embeddings in process (candle).
//! - [`index`]: the semantic index (pgvector) of approved content, similar problems, search.
//! - [`llm`]: the optional LLM judge (Anthropic Messages or OpenAI-compatible chat completions).
//! - [`prototypes`]: the reference texts the semantic classifier compares with.
//! - [`vision`]: the optional vision model for evidence ([`vision::VisionProvider`], Anthropic).
//! - [`worker`]: [`worker::GuardrailWorker`], the consumer described above.
//! - [`error`]: [`GuardrailError`], this crate's one error type.

pub mod classifier;
pub mod embed;
pub mod error;
pub mod eval;
pub mod index;
pub mod linear;
pub mod llm;
pub mod prototypes;
pub mod vision;
pub mod worker;

pub use classifier::Classifier;
pub use error::GuardrailError;
