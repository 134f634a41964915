//! The held-out split is held out: no test item is a near duplicate (cosine ≥ 0.95 of the
//! all-MiniLM-L6-v2 vectors) of a training item, so a classifier that memorised `train` cannot pass
//! `test` by recall alone.

mod support;

use bw_guardrail::{corpus, embed::Embedder, vectors};

#[test]
fn no_test_item_is_a_near_duplicate_of_a_training_item() {
    let embedder = Embedder::load(&support::model_dir()).expect("model (scripts/bw setup)");
    let train = corpus::train().expect("train");
    let train_vectors = match vectors::shipped() {
        Some(v) => v,
        None => vectors::compute(&embedder, corpus::TRAIN).expect("embeds train"),
    };
    let test_text = std::fs::read_to_string(corpus::test_split_path()).expect("test");
    let test = corpus::parse(&test_text, "test").expect("test");
    let test_vectors = vectors::compute(&embedder, &test_text).expect("embeds test");
    let mut near = Vec::new();
    for (item, v) in test.iter().zip(&test_vectors) {
        let (best, at) = train_vectors
            .iter()
            .enumerate()
            .map(|(n, t)| (bw_guardrail::embed::cosine(v, t), n))
            .fold((f32::MIN, 0), |a, b| if b.0 > a.0 { b } else { a });
        if best >= 0.95 {
            near.push(format!("{} ~ {} ({best:.3})", item.id, train[at].id));
        }
    }
    assert!(
        near.is_empty(),
        "near duplicates across the split: {near:?}"
    );
}
