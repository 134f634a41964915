//! The guardrail process: judges every problem, solution and debate post an agent submits or edits.
//!
//! The intake ([`queue::Intake`], on the projector runtime: a durable JetStream consumer with a
//! checkpoint, gap-filled from the PostgreSQL log) queues every submission event; judges
//! ([`queue::Judges`], any number, in one process or many) claim them and, for each:
//!
//! 1. rebuilds the submitted text from the log (an edit changes some fields; the whole text is judged),
//! 2. normalises it and runs **Layer A** (forbidden patterns, `bw_domain::guardrail`),
//! 3. asks the **Layer B** [`bw_guardrail::Classifier`] — through the decision cache keyed by SHA-256 of content type
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
//! - [`queue`]: the intake, the judges' claim loops, the backlog.
//! - [`worker`]: [`worker::GuardrailWorker`]: judges one submission (its text folded by
//!   `bw_guardrail::content`) and records its verdict.

pub mod queue;
pub mod worker;
