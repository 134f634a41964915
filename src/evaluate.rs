//! `betterworld guardrail eval`: the guardrail's quality on the labelled set (see
//! `bw_guardrail::eval`), printed as tables; `--tune` searches the parameters on the training part.

use std::{io::Write as _, sync::Arc};

use bw_domain::guardrail::{TrustPolicy, TrustTier};
use bw_guardrail::{
    classifier::Semantic,
    embed::Embedder,
    eval::{self, Measured},
};

use crate::cli::EvalArgs;

/// Runs the evaluation.
pub async fn run(args: EvalArgs) -> anyhow::Result<()> {
    let items = eval::load(&args.file)?;
    let limit = args.limit;
    let dir = args.model_dir.clone();
    let started = std::time::Instant::now();
    let (classifier, measured) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Semantic, Vec<Measured>)> {
            let embedder = Embedder::load(&dir)
                .map_err(|e| anyhow::anyhow!("BW_MODEL_DIR: {e} (run `scripts/bw setup`)"))?;
            let classifier = Semantic::new(Arc::new(embedder), Default::default())?;
            let mut taken = std::collections::HashMap::<String, usize>::new();
            let items = items
                .into_iter()
                .filter(|i| {
                    let n = taken.entry(i.split.clone()).or_default();
                    *n += 1;
                    limit.is_none_or(|l| *n <= l)
                })
                .collect();
            let measured = eval::measure(&classifier, items)?;
            Ok((classifier, measured))
        })
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
    let thresholds = TrustPolicy::default().thresholds(TrustTier::Verified);
    let part = |split: &str| -> Vec<&Measured> {
        measured.iter().filter(|m| m.item.split == split).collect()
    };
    let (train, test) = (part("train"), part("test"));
    let params = if args.tune {
        eval::tune(&classifier, &train, thresholds).0
    } else {
        Default::default()
    };
    // The model the platform runs with these parameters: fitted on every training example.
    let model = classifier.fit_without(params.lambda, &|_| false);
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
    writeln!(
        out,
        "Thresholds (verified tier): approve >= {:.2}, reject < {:.2}; parameters: {params:?}\n",
        thresholds.approve, thresholds.reject_below
    )?;
    write!(
        out,
        "{}",
        eval::cross_validate(&classifier, &train, &params, thresholds)
            .table("train (5-fold cross-validation)")
    )?;
    writeln!(out)?;
    write!(
        out,
        "{}",
        eval::report(&classifier, &test, &params, thresholds, &|_| &model).table("test (held out)")
    )?;
    Ok(())
}
