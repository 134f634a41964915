//! The held-out split is held out: no test item is a near duplicate (cosine ≥ 0.95 of the
//! all-MiniLM-L6-v2 vectors) of a training item, so a classifier that memorised `train` cannot pass
//! `test` by recall alone.

use bw_guardrail::{corpus, embed::Embedder, vectors};

fn model_dir() -> std::path::PathBuf {
    std::env::var("BW_MODEL_DIR").map_or_else(
        |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.bw/models/all-MiniLM-L6-v2"),
        std::path::PathBuf::from,
    )
}

#[test]
fn no_test_item_is_a_near_duplicate_of_a_training_item() {
    let embedder = Embedder::load(&model_dir()).expect("model (scripts/bw setup)");
    let train = corpus::train().expect("train");
    let train_vectors = match vectors::shipped() {
        Some(v) => v,
        None => vectors::compute(&embedder, corpus::TRAIN).expect("embeds train"),
    };
    let test = corpus::load(&corpus::test_split_path()).expect("test");
    let texts: Vec<String> = test
        .iter()
        .map(|i| bw_domain::guardrail::normalise(&i.text))
        .collect();
    let mut near = Vec::new();
    for (chunk_items, chunk) in test.chunks(16).zip(texts.chunks(16)) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        for (item, v) in chunk_items
            .iter()
            .zip(embedder.embed(&refs).expect("embeds"))
        {
            let (best, at) = train_vectors
                .iter()
                .enumerate()
                .map(|(n, t)| (bw_guardrail::embed::cosine(&v, t), n))
                .fold((f32::MIN, 0), |a, b| if b.0 > a.0 { b } else { a });
            if best >= 0.95 {
                near.push(format!("{} ~ {} ({best:.3})", item.id, train[at].id));
            }
        }
    }
    assert!(
        near.is_empty(),
        "near duplicates across the split: {near:?}"
    );
}
