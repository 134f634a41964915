//! The guardrail's judgment: classifiers, sentence embeddings, the semantic index, the labelled
//! corpus and its evaluation — a library. The process that runs it on every submission (the intake,
//! the judges' queue, the worker that records verdicts) is `bw_processes::guardrail`.
//!
//! Layer A (forbidden patterns) is pure and lives in `bw_domain::guardrail`; Layer B is a
//! [`Classifier`] from here; Layer C is the admin queue (`projections::models::review_queue`).
//!
//! # Layout
//!
//! - [`content`]: a submission's text, folded from its stream (what is judged and indexed).
//! - [`corpus`]: the labelled corpus (`eval/`: train and dev compiled in, test held out); [`eval`]:
//!   the guardrail's quality on it; [`vectors`]: the training split's shipped embeddings.
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
pub mod vectors;
pub mod vision;

pub use classifier::Classifier;
pub use error::GuardrailError;
