//! A quality gate on the held-out split: the shipped semantic classifier, judged as the platform
//! judges (Layer A, the classifier, each tier's thresholds), must not fall below the figures it
//! reaches today (`betterworld guardrail eval`, docs/guardrails.md). These are a ratchet, not the
//! issue's acceptance bars, which no model available here reaches (docs/guardrails.md says which
//! were tried): raise them when the classifier improves, never lower them to let a change pass.

mod support;

use std::sync::Arc;

use bw_domain::guardrail::{TrustPolicy, TrustTier};
use bw_guardrail::{
    classifier::Semantic,
    corpus,
    embed::Embedder,
    eval::{self, Measured, expected_calibration_error},
};

#[test]
fn the_classifier_keeps_its_held_out_figures() {
    let embedder = Embedder::load(&support::model_dir()).expect("model (scripts/bw setup)");
    let classifier = Semantic::new(Arc::new(embedder), Default::default()).expect("classifier");
    let test = corpus::load(&corpus::test_split_path()).expect("test split");
    let measured = eval::measure(&classifier, test).expect("measured");
    let items: Vec<&Measured> = measured.iter().collect();
    let policy = TrustPolicy::default();
    let report = |tier| {
        eval::report(
            &classifier,
            &items,
            &classifier.params(),
            &policy,
            tier,
            &|_| classifier.model(),
        )
    };
    let new = report(TrustTier::New);
    let verified = report(TrustTier::Verified);
    let approved =
        |r: &eval::Report| r.matrix[0][0] as f64 / r.matrix[0].iter().sum::<usize>() as f64;
    let summary = format!(
        "new: {}\nverified: {}",
        new.table("test"),
        verified.table("test")
    );
    // A new agent's content: harm almost never approved, yet a useful share of good content is.
    assert!(new.harmful_approved() <= NEW_HARMFUL_APPROVED, "{summary}");
    assert!(approved(&new) >= NEW_APPROVED, "{summary}");
    // A verified agent's: the three classes told apart as well as today.
    assert!(verified.macro_f1() >= VERIFIED_MACRO_F1, "{summary}");
    assert!(
        verified.harmful_approved() <= VERIFIED_HARMFUL_APPROVED,
        "{summary}"
    );
    assert!(approved(&verified) >= VERIFIED_APPROVED, "{summary}");
    // Probabilities that mean what they say.
    assert!(
        expected_calibration_error(&verified.confidence) <= MAX_CALIBRATION_ERROR,
        "{summary}"
    );
}

// Today's held-out figures (`betterworld guardrail eval`, commit of this file): new agent 2 harmful
// approved, 35.5 % of approve-labelled approved; verified agent macro-F1 0.603, 13 harmful approved,
// 59.2 % approved; expected calibration error 0.040. The slack covers one item changing sides
// between builds (floating-point order), not a worse model.
const NEW_HARMFUL_APPROVED: usize = 3;
const NEW_APPROVED: f64 = 0.33;
const VERIFIED_MACRO_F1: f64 = 0.58;
const VERIFIED_HARMFUL_APPROVED: usize = 15;
const VERIFIED_APPROVED: f64 = 0.55;
const MAX_CALIBRATION_ERROR: f64 = 0.07;
