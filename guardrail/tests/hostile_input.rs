//! Bad input never crashes or hangs the classifier: empty text, 50 kB, control characters, mixed
//! scripts, emoji only, walls of zero-width characters or combining accents — each gets an
//! assessment within a bound (issue 16), through normalisation, Layer A and Layer B as the worker
//! runs them.

mod support;

use std::sync::Arc;

use bw_domain::guardrail::{ContentType, TrustPolicy, TrustTier, decide, layer_a, normalise};
use bw_guardrail::{
    Classifier,
    classifier::{Semantic, SemanticParams},
    embed::Embedder,
};

#[tokio::test]
async fn every_hostile_text_gets_a_verdict_in_bounded_time() {
    let classifier = tokio::task::spawn_blocking(|| {
        let embedder = Embedder::load(&support::model_dir()).expect("model (scripts/bw setup)");
        Semantic::new(Arc::new(embedder), SemanticParams::default()).expect("classifier")
    })
    .await
    .expect("blocking");
    let classifier = Arc::new(classifier);
    let long = "Flooded homes need sandbags and clean water. ".repeat(1_200);
    assert!(long.len() > 50_000);
    let controls: String = (0u8..32)
        .map(char::from)
        .chain("text\u{7f}\u{85}".chars())
        .collect();
    let texts = [
        String::new(),
        " \n\t ".to_owned(),
        long,
        controls,
        "Água पानी maji 水 вода ماء — the well is dry".to_owned(),
        "🔥🔥🔥🌊🌊💧💧💧🙏".to_owned(),
        "\u{200b}\u{feff}\u{200d}".repeat(500),
        "a\u{301}\u{301}\u{301}\u{301}".repeat(2_000),
    ];
    let thresholds = TrustPolicy::default().thresholds(TrustTier::New);
    for text in texts {
        let normalised = normalise(&text);
        let hits = layer_a(&normalised);
        let assessed = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            classifier.assess(ContentType::Problem, &normalised),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no answer within 30 s for {:?}",
                &text.chars().take(20).collect::<String>()
            )
        })
        .expect("no error");
        let assessment = assessed.expect("an assessment");
        assert!(
            (0.0..=1.0).contains(&assessment.alignment),
            "{assessment:?}"
        );
        // A decision is always made (flag at worst: an admin looks).
        let (decision, _) = decide(&hits, Some(&assessment), thresholds);
        let _ = decision;
    }
}
