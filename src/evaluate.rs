//! `betterworld guardrail eval` and `guardrail train`: the guardrail's quality on the labelled
//! corpus (see `bw_guardrail::eval`), printed as tables, and the shipped vectors and weights of the
//! semantic classifier written again after the corpus changed.

use std::{io::Write as _, sync::Arc};

use bw_domain::guardrail::{TrustPolicy, TrustTier};
use bw_guardrail::{
    classifier::{Semantic, weights_digest},
    corpus,
    embed::Embedder,
    eval::{self, Measured},
    vectors,
};

use crate::cli::{EvalArgs, TrainArgs};

fn load_embedder(dir: &std::path::Path) -> anyhow::Result<Embedder> {
    Embedder::load(dir).map_err(|e| anyhow::anyhow!("BW_MODEL_DIR: {e} (run `scripts/bw setup`)"))
}

/// The value at quantile `q` of sorted `values`.
fn quantile(values: &[f64], q: f64) -> f64 {
    values
        .get(((values.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// The classifier with the items judged, the dev split and the training split, measured.
type Measurements = (Semantic, Vec<Measured>, Vec<Measured>, Vec<Measured>);

/// Runs the evaluation.
pub async fn run(args: EvalArgs) -> anyhow::Result<()> {
    let items = corpus::load(&args.file)?;
    let items: Vec<_> = items
        .into_iter()
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    let dir = args.model.model_dir.clone();
    let started = std::time::Instant::now();
    let (classifier, measured, dev, train) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<Measurements> {
            let classifier = Semantic::new(Arc::new(load_embedder(&dir)?), Default::default())?;
            let measured = eval::measure(&classifier, items)?;
            let dev = eval::measure(&classifier, corpus::dev()?)?;
            let train = eval::measured_train(&classifier)?;
            Ok((classifier, measured, dev, train))
        })
        .await??;
    let total = started.elapsed();
    let mut durations: Vec<f64> = measured
        .iter()
        .map(|m| m.duration.as_secs_f64() * 1000.0)
        .collect();
    durations.sort_by(f64::total_cmp);
    let policy = TrustPolicy::default();
    let train: Vec<&Measured> = train.iter().collect();
    let dev: Vec<&Measured> = dev.iter().collect();
    let (params, tuned) = if args.tune {
        let params = eval::tune(&classifier, &train, &policy, TrustTier::Verified).0;
        let dev_items: Vec<_> = dev
            .iter()
            .map(|m| (&m.measurement.features, m.item.label.index()))
            .collect();
        let model = classifier
            .fit_without(params.lambda, &|_| false)
            .calibrated(&dev_items);
        (params, Some(model))
    } else {
        (classifier.params(), None)
    };
    // The model the platform runs: fitted on every training example, calibrated on dev.
    let model = tuned.as_ref().unwrap_or(classifier.model());
    let judged: Vec<&Measured> = measured.iter().collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Guardrail evaluation: {} ({} items; Layer A + Layer B per item, one at a time: p50 {:.1} ms, p95 {:.1} ms; {:.1} s in all with the model load and the dev split)",
        args.file.display(),
        measured.len(),
        quantile(&durations, 0.5),
        quantile(&durations, 0.95),
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
    writeln!(
        out,
        "Parameters: {params:?}; temperature {:.2} (calibrated on the dev split)\n",
        model.temperature()
    )?;
    let folds = eval::fold_models(&classifier, &train, params.lambda);
    let cv = eval::cross_validate(
        &classifier,
        &train,
        &folds,
        &params,
        &policy,
        TrustTier::Verified,
    );
    writeln!(
        out,
        "train (5-fold cross-validation), Verified agent: {} items, accuracy {:.1} %, macro-F1 {:.3}",
        cv.items(),
        100.0 * cv.accuracy(),
        cv.macro_f1()
    )?;
    for tier in [TrustTier::New, TrustTier::Verified] {
        let r = eval::report(&classifier, &dev, &params, &policy, tier, &|_| model);
        writeln!(
            out,
            "dev (calibration and thresholds), {tier:?} agent: {} items, accuracy {:.1} %, macro-F1 {:.3}, harmful approved {}",
            r.items(),
            100.0 * r.accuracy(),
            r.macro_f1(),
            r.harmful_approved()
        )?;
    }
    writeln!(
        out,
        "\nthresholds on dev (where the tiers' bands were chosen): approve >= a, reject < r"
    )?;
    writeln!(
        out,
        "  {:>5} {:>5}   approve-labelled: approved  rejected   harmful approved   reject-labelled rejected   macro-F1",
        "a", "r"
    )?;
    for approve in [0.6, 0.7, 0.8, 0.85, 0.9, 0.95] {
        for reject_below in [0.2, 0.3, 0.4] {
            let bands = bw_domain::guardrail::Thresholds {
                approve,
                reject_below,
            };
            let sweep = TrustPolicy {
                new: bands,
                ..policy
            };
            let r = eval::report(&classifier, &dev, &params, &sweep, TrustTier::New, &|_| {
                model
            });
            let m = &r.matrix;
            let share = |n: usize, row: &[usize; 3]| {
                100.0 * n as f64 / row.iter().sum::<usize>().max(1) as f64
            };
            writeln!(
                out,
                "  {approve:>5.2} {reject_below:>5.2}   {:>24.1} % {:>8} {:>18} {:>24.1} % {:>10.3}",
                share(m[0][0], &m[0]),
                m[0][2],
                r.harmful_approved(),
                share(m[2][2], &m[2]),
                r.macro_f1()
            )?;
        }
    }
    writeln!(out)?;
    for tier in [TrustTier::New, TrustTier::Verified] {
        let report = eval::report(&classifier, &judged, &params, &policy, tier, &|_| model);
        writeln!(out, "{}", report.table(&args.file.display().to_string()))?;
    }
    writeln!(
        out,
        "cascade: the LLM is asked when the calibrated top-class probability is below `confident`"
    )?;
    writeln!(
        out,
        "  confident   asked (dev)   asked ({})   local decisions right ({})",
        args.file.display(),
        args.file.display()
    )?;
    for confident in [0.5, 0.55, 0.6, 0.7, 0.8, 0.9] {
        let (asked_dev, _) = eval::cascade(model, &dev, confident);
        let (asked, right) = eval::cascade(model, &judged, confident);
        writeln!(
            out,
            "  {confident:>9.2}   {:>9.1} %   {:>9.1} %   {:>9.1} %",
            100.0 * asked_dev,
            100.0 * asked,
            100.0 * right
        )?;
    }
    Ok(())
}

/// Embeds the training split, fits and calibrates the semantic classifier's model, and writes
/// `train.vectors` and `classifier.weights`.
pub async fn train(args: TrainArgs) -> anyhow::Result<()> {
    let dir = args.model.model_dir.clone();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| vectors::path().with_file_name(""));
    let started = std::time::Instant::now();
    let (count, temperature) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let embedder = Arc::new(load_embedder(&dir)?);
        let computed = vectors::compute(&embedder, corpus::TRAIN)?;
        std::fs::write(
            out.join("train.vectors"),
            vectors::encode(&computed, corpus::TRAIN),
        )?;
        let count = computed.len();
        let params = bw_guardrail::classifier::SemanticParams::default();
        let semantic = Semantic::build(embedder, params, computed, None)?;
        std::fs::write(
            out.join("classifier.weights"),
            semantic.model().encode(&weights_digest(params.lambda)),
        )?;
        Ok((count, semantic.model().temperature()))
    })
    .await??;
    writeln!(
        std::io::stdout().lock(),
        "wrote the vectors of {count} training items and the classifier's weights (temperature {temperature:.2}) in {:.1} s; rebuild to ship them",
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}
