//! The shipped judges as a user meets them: the cascade asks the LLM only about what the local
//! classifier is unsure of (and leaves the rest to an admin when the LLM cannot answer), and a
//! flagged item in the admin queue carries the local classifier's reasons — against the real stack
//! and a local server speaking the provider's wire format.

mod support;

use std::sync::Arc;

use bw_domain::{
    guardrail::{ContentType, normalise},
    taxonomy::Role,
};
use bw_guardrail::{
    Classifier,
    cascade::{Cascade, confidence},
    classifier::Semantic,
    llm::{LlmJudge, Provider},
};
use reqwest::StatusCode;
use support::{
    Platform,
    judging::{ALIGNED, FakeProvider, WELL, agent, judged, llm_config},
    people::person,
    send,
};

async fn semantic() -> Arc<Semantic> {
    let dir = support::model_dir();
    tokio::task::spawn_blocking(move || {
        let embedder = bw_guardrail::embed::Embedder::load(&dir).expect("model (scripts/bw setup)");
        Arc::new(Semantic::new(Arc::new(embedder), Default::default()).expect("classifier"))
    })
    .await
    .expect("blocking")
}

/// An LLM judge answering `reply` after `failures` failed calls, counting spend in a database of
/// its own.
async fn judge(failures: usize, reply: &'static str) -> (FakeProvider, Arc<LlmJudge>) {
    let (fake, base) = FakeProvider::start(failures, reply).await;
    let spend = sqlx::PgPool::connect(&support::migrated_database().await)
        .await
        .expect("spend database");
    let judge = LlmJudge::new(llm_config(Provider::OpenAi, base, 100), spend).expect("judge");
    (fake, Arc::new(judge))
}

#[tokio::test]
async fn the_cascade_asks_the_llm_only_when_the_local_classifier_is_unsure() {
    let local = semantic().await;
    let text = normalise(&format!("Contaminated well in ward 4\n{WELL}"));
    let own = local
        .assess(ContentType::Problem, &text)
        .await
        .expect("assessed")
        .expect("an assessment");
    let explanation = own
        .explanation
        .clone()
        .expect("the local classifier explains");
    let sure = confidence(&explanation);
    assert!(
        (explanation.approve + explanation.flag + explanation.reject - 1.0).abs() < 1e-4,
        "probabilities: {explanation:?}"
    );

    // Given a bar at or below the local confidence, when it judges, then the LLM is not asked.
    let (fake, llm) = judge(0, ALIGNED).await;
    let cascade = Cascade::new(local.clone(), llm.clone(), sure);
    let judged = cascade
        .assess(ContentType::Problem, &text)
        .await
        .expect("assessed");
    assert_eq!(judged, Some(own.clone()), "the local assessment stands");
    assert!(fake.seen.lock().expect("lock").is_empty(), "no call");
    assert!(cascade.name().starts_with("cascade(semantic-"));

    // Given a bar above it, then the LLM judges, and the local reasons stay for an admin.
    let cascade = Cascade::new(local.clone(), llm, sure + 1e-6);
    let judged = cascade
        .assess(ContentType::Problem, &text)
        .await
        .expect("assessed")
        .expect("the LLM's assessment");
    assert_eq!(judged.alignment, 0.95, "the LLM's score: {judged:?}");
    assert_eq!(judged.explanation, Some(explanation));
    assert_eq!(fake.seen.lock().expect("lock").len(), 1, "one call");

    // Given an LLM that keeps failing, then no assessment: an admin decides.
    let (failing, llm) = judge(usize::MAX, ALIGNED).await;
    let cascade = Cascade::new(local, llm, sure + 1e-6);
    let judged = cascade
        .assess(ContentType::Problem, &text)
        .await
        .expect("a failure is not an error of the worker");
    assert_eq!(judged, None);
    assert!(
        !failing.seen.lock().expect("lock").is_empty(),
        "it was asked"
    );
}

/// The LLM's reply for content it finds doubtful (a new agent's 0.85 bar is not met).
const DOUBTFUL: &str = r#"{"alignment_score": 0.6, "aligned_domain": "clean_water_sanitation", "harm_risk": "low", "harm_category": null, "impact": 60, "feasibility": 60, "cost_efficiency": 60}"#;

#[tokio::test]
async fn a_flagged_item_in_the_admin_queue_says_why() {
    // Every item goes to the LLM (no local confidence reaches 1.01), which finds it doubtful.
    let (_, llm) = judge(0, DOUBTFUL).await;
    let cascade = Cascade::new(semantic().await, llm, 1.01);
    let p = Platform::spawn_with_classifier(Arc::new(cascade)).await;
    let river = agent(&p, "explained_river").await;
    let admin = person(&p, "explained_admin", Role::Admin).await;
    let (_, at, verdict) = judged(&p, &river, "Contaminated well in ward 4", WELL).await;
    assert_eq!(verdict["decision"], "flagged", "{verdict}");
    let item = verdict["verdictId"].as_str().expect("id");

    let (status, _, detail) = send(
        p.http
            .get(p.url(&format!("/admin/flagged/{item}")))
            .bearer_auth(&admin.access)
            .header("bw-min-position", at),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let why = &detail["data"]["explanation"];
    let probabilities: f64 = ["approve", "flag", "reject"]
        .iter()
        .map(|c| why[c].as_f64().expect("a probability"))
        .sum();
    assert!((probabilities - 1.0).abs() < 1e-4, "{why}");
    let nearest = why["nearest"].as_array().expect("nearest examples");
    assert_eq!(nearest.len(), 3, "{why}");
    for example in nearest {
        assert!(
            ["approve", "flag", "reject"].contains(&example["label"].as_str().expect("label")),
            "{example}"
        );
        assert!(example["id"].as_str().is_some_and(|id| id != "prototype"));
        assert!(!example["excerpt"].as_str().expect("excerpt").is_empty());
    }
    let similarities: Vec<f64> = nearest
        .iter()
        .map(|e| e["similarity"].as_f64().expect("similarity"))
        .collect();
    assert!(
        similarities.windows(2).all(|w| w[0] >= w[1]),
        "nearest first"
    );
    assert!(why["categories"].as_array().is_some_and(|c| c.len() <= 3));
    // The list carries it too.
    let (_, _, list) = send(
        p.http
            .get(p.url("/admin/flagged"))
            .bearer_auth(&admin.access),
    )
    .await;
    assert_eq!(list["data"][0]["explanation"], *why, "{list}");
}
