//! `betterworld guardrail eval` and `guardrail train`: the guardrail's quality on the labelled
//! corpus (see `bw_guardrail::eval`), printed as tables, and the shipped vectors of its training
//! split written again after it changed.

use std::{io::Write as _, sync::Arc};

use bw_domain::guardrail::{TrustPolicy, TrustTier};
use bw_guardrail::{
    classifier::Semantic,
    corpus,
    embed::Embedder,
    eval::{self, Measured},
    vectors,
};

use crate::cli::{EvalArgs, TrainArgs};

fn load_embedder(dir: &std::path::Path) -> anyhow::Result<Embedder> {
    Embedder::load(dir).map_err(|e| anyhow::anyhow!("BW_MODEL_DIR: {e} (run `scripts/bw setup`)"))
}

/// Runs the evaluation.
pub async fn run(args: EvalArgs) -> anyhow::Result<()> {
    let items = corpus::load(&args.file)?;
    let items: Vec<_> = items
        .into_iter()
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    let dir = args.model.model_dir.clone();
    let started = std::time::Instant::now();
    let (classifier, measured, train) = tokio::task::spawn_blocking(
        move || -> anyhow::Result<(Semantic, Vec<Measured>, Vec<Measured>)> {
            let classifier = Semantic::new(Arc::new(load_embedder(&dir)?), Default::default())?;
            let measured = eval::measure(&classifier, items)?;
            let train = eval::measured_train(&classifier)?;
            Ok((classifier, measured, train))
        },
    )
    .await??;
    let total = started.elapsed();
    let mut durations: Vec<f64> = measured
        .iter()
        .map(|m| m.duration.as_secs_f64() * 1000.0)
        .collect();
    durations.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        durations
            .get(((durations.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let policy = TrustPolicy::default();
    let train: Vec<&Measured> = train.iter().collect();
    let params = if args.tune {
        eval::tune(&classifier, &train, &policy, TrustTier::Verified).0
    } else {
        Default::default()
    };
    // The model the platform runs with these parameters: fitted on every training example.
    let model = classifier.fit_without(params.lambda, &|_| false);
    let judged: Vec<&Measured> = measured.iter().collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Guardrail evaluation: {} ({} items; Layer A + Layer B per item p50 {:.1} ms, p95 {:.1} ms; {:.1} s in all with the model load)",
        args.file.display(),
        measured.len(),
        quantile(0.5),
        quantile(0.95),
        total.as_secs_f64()
    )?;
    for tier in [TrustTier::New, TrustTier::Verified] {
        let t = policy.thresholds(tier);
        writeln!(
            out,
            "Thresholds ({tier:?}): approve >= {:.2}, reject < {:.2}",
            t.approve, t.reject_below
        )?;
    }
    writeln!(out, "Parameters: {params:?}\n")?;
    let cv = eval::cross_validate(&classifier, &train, &params, &policy, TrustTier::Verified);
    writeln!(
        out,
        "train (5-fold cross-validation), Verified agent: {} items, accuracy {:.1} %, macro-F1 {:.3}\n",
        cv.items(),
        100.0 * cv.accuracy(),
        cv.macro_f1()
    )?;
    for tier in [TrustTier::New, TrustTier::Verified] {
        let report = eval::report(&classifier, &judged, &params, &policy, tier, &|_| &model);
        writeln!(out, "{}", report.table(&args.file.display().to_string()))?;
    }
    Ok(())
}

/// Embeds the training split and writes `guardrail/model/train.vectors`.
pub async fn train(args: TrainArgs) -> anyhow::Result<()> {
    let dir = args.model.model_dir.clone();
    let out = args.out.clone().unwrap_or_else(vectors::path);
    let started = std::time::Instant::now();
    let count = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let embedder = load_embedder(&dir)?;
        let computed = vectors::compute(&embedder, corpus::TRAIN)?;
        std::fs::write(&out, vectors::encode(&computed, corpus::TRAIN))?;
        Ok(computed.len())
    })
    .await??;
    writeln!(
        std::io::stdout().lock(),
        "wrote the vectors of {count} training items ({:.1} s); rebuild to ship them",
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}
