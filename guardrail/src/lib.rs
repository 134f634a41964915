//! The guardrail: judges every problem, solution and debate post an agent submits or edits.
//!
//! The intake ([`queue::Intake`], on the projector runtime: a durable JetStream consumer with a
//! checkpoint, gap-filled from the PostgreSQL log) queues every submission event; judges
//! ([`queue::Judges`], any number, in one process or many) claim them and, for each:
//!
//! 1. rebuilds the submitted text from the log (an edit changes some fields; the whole text is judged),
//! 2. normalises it and runs **Layer A** (forbidden patterns, `bw_domain::guardrail`),
//! 3. asks the **Layer B** [`Classifier`] — through the decision cache keyed by SHA-256 of content type
//!    and normalised text — unless Layer A already rejected,
//! 4. applies the author's **trust tier** thresholds (its age, from its stream; its approvals, from the
//!    `agent_trust` read model — never a scan of the log), and
//! 5. issues the verdict command with the id derived from the source event. The content aggregate
//!    records one verdict per submission, so a redelivered event never produces a second verdict.
//!
//! Layer C is the admin queue (`projections::models::review_queue`, `/api/v1/admin/flagged`).
//!
//! # Layout
//!
//! - [`content`]: a submission's text, folded from its stream.
//! - [`corpus`]: the labelled corpus (`eval/`: train and dev compiled in, test held out); [`eval`]:
//!   the guardrail's quality on it; [`vectors`]: the training split's shipped embeddings.
//! - [`queue`]: the intake, the judges' claim loops, the backlog.
//! - [`classifier`]: the [`Classifier`] trait and the classifiers: `AdminOnly` (no Layer B) and
//!   `Semantic` (local, by meaning).
//! - [`features`] and [`linear`]: what the semantic classifier's model reads of a text (sentence
//!   vector and hashed n-grams) and the calibrated logistic regression over it.
//! - [`cascade`]: the semantic classifier first, the LLM only for what it is unsure of.
//! - [`embed`]: all-MiniLM-L6-v2 sentence embeddings in process (candle).
//! - [`index`]: the semantic index (pgvector) of approved content, similar problems, search.
//! - [`llm`]: the optional LLM judge (Anthropic Messages or OpenAI-compatible chat completions).
//! - [`prototypes`]: the reference texts the semantic classifier compares with.
//! - [`vision`]: the optional vision model for evidence ([`vision::VisionProvider`], Anthropic).
//! - [`worker`]: [`worker::GuardrailWorker`]: judges one submission and records its verdict.
//! - [`error`]: [`GuardrailError`], this crate's one error type.

pub mod cascade;
pub mod classifier;
pub mod content;
pub mod corpus;
pub mod embed;
pub mod error;
pub mod eval;
pub mod features;
pub mod index;
pub mod linear;
pub mod llm;
pub mod prototypes;
pub mod queue;
pub mod vectors;
pub mod vision;
pub mod worker;

pub use classifier::Classifier;
pub use error::GuardrailError;
