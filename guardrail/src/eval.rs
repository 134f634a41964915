//! Guardrail quality on the labelled corpus ([`crate::corpus`]): the decisions the guardrail makes
//! (Layer A, then the semantic classifier, then a trust tier's thresholds) and what a careful
//! moderator would want to know of them — accuracy, macro-F1, per-class precision and recall, the
//! confusion matrix, how much of each harm category is stopped, how work against a harm and prompt
//! injections fare, and the same per language — with the acceptance bars checked. Parameters
//! are tuned on `train` (cross-validated); the report that counts is on the held-out `test`.

use std::{collections::BTreeMap, fmt::Write as _};

use bw_domain::{
    guardrail::{Thresholds, TrustPolicy, TrustTier, decide, layer_a, normalise},
    taxonomy::GuardrailStatus,
};

use crate::{
    GuardrailError,
    classifier::{Measurement, Semantic, SemanticParams},
    corpus::{Item, Kind},
    linear::Linear,
};

/// An item with what the classifier measured for it (measured once, judged under many parameters).
#[derive(Debug, Clone)]
pub struct Measured {
    pub item: Item,
    pub normalised: String,
    pub measurement: Measurement,
    /// How long Layer A and the classifier took for this item (embedding included).
    pub duration: std::time::Duration,
}

/// Measures every item (blocking, CPU-bound).
pub fn measure(classifier: &Semantic, items: Vec<Item>) -> Result<Vec<Measured>, GuardrailError> {
    items
        .into_iter()
        .map(|item| {
            let started = std::time::Instant::now();
            let normalised = normalise(&item.text);
            let _ = layer_a(&normalised);
            let measurement = classifier.measure(&normalised)?;
            Ok(Measured {
                item,
                normalised,
                measurement,
                duration: started.elapsed(),
            })
        })
        .collect()
}

const CLASSES: [&str; 3] = ["approve", "flag", "reject"];

fn class(decision: GuardrailStatus) -> usize {
    match decision {
        GuardrailStatus::Approved => 0,
        GuardrailStatus::Rejected => 2,
        _ => 1,
    }
}

/// The guardrail's decision on one measured item with `model` (its own example left out of the
/// neighbours).
pub fn decision(
    classifier: &Semantic,
    model: &Linear,
    m: &Measured,
    params: &SemanticParams,
    thresholds: Thresholds,
) -> GuardrailStatus {
    let hits = layer_a(&m.normalised);
    let assessment = classifier.assess_measured(
        model,
        &m.measurement,
        params,
        m.item.content_type,
        Some(m.item.id.as_str()),
    );
    decide(&hits, Some(&assessment), thresholds).0
}

/// The training split measured from the vectors the classifier already holds (no embedding).
pub fn measured_train(classifier: &Semantic) -> Result<Vec<Measured>, GuardrailError> {
    let train = crate::corpus::train()?;
    let vectors: std::collections::HashMap<&str, &[f32]> = classifier
        .examples()
        .iter()
        .map(|e| (e.id.as_str(), e.vector()))
        .collect();
    train
        .into_iter()
        .map(|item| {
            let vector = vectors.get(item.id.as_str()).ok_or_else(|| {
                GuardrailError::Corrupt(format!("{} is not among the examples", item.id))
            })?;
            let normalised = normalise(&item.text);
            Ok(Measured {
                measurement: classifier.measure_vector(vector.to_vec(), &normalised),
                normalised,
                duration: std::time::Duration::ZERO,
                item,
            })
        })
        .collect()
}

/// Decisions counted by label (`[label][decision]`, both as class indices).
type Matrix = [[usize; 3]; 3];

/// What one tier's thresholds did to a set of items.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub tier: TrustTier,
    pub matrix: Matrix,
    /// Per harm category (and `off_topic`): the decisions on the items labelled flag or reject.
    pub harm: BTreeMap<String, [usize; 3]>,
    /// Per language: the confusion matrix.
    pub languages: BTreeMap<String, Matrix>,
    /// The decisions on work against a harm (approved contrastive items).
    pub against: [usize; 3],
    /// The decisions on the harmful halves of contrastive pairs.
    pub harm_halves: [usize; 3],
    /// The decisions on prompt injections.
    pub injections: [usize; 3],
    /// Per item: the classifier's highest class probability and whether that class is the label.
    pub confidence: Vec<(f64, bool)>,
}

/// Expected calibration error of `(confidence, correct)` pairs over ten equal-width bins: the
/// items' share-weighted gap between each bin's mean confidence and its accuracy (0 is perfectly
/// calibrated).
pub fn expected_calibration_error(confidence: &[(f64, bool)]) -> f64 {
    let mut bins = [(0usize, 0.0f64, 0usize); 10];
    for (p, correct) in confidence {
        let bin = ((p * 10.0) as usize).min(9);
        bins[bin].0 += 1;
        bins[bin].1 += p;
        bins[bin].2 += usize::from(*correct);
    }
    let total = confidence.len().max(1) as f64;
    bins.iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, sum, correct)| {
            let n = *n as f64;
            (n / total) * (sum / n - *correct as f64 / n).abs()
        })
        .sum()
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

fn accuracy(m: &Matrix) -> f64 {
    let total: usize = m.iter().flatten().sum();
    ratio((0..3).map(|c| m[c][c]).sum(), total)
}

fn precision_recall(m: &Matrix, c: usize) -> (f64, f64) {
    let predicted: usize = (0..3).map(|l| m[l][c]).sum();
    (ratio(m[c][c], predicted), ratio(m[c][c], m[c].iter().sum()))
}

fn macro_f1(m: &Matrix) -> f64 {
    (0..3)
        .map(|c| {
            let (p, r) = precision_recall(m, c);
            if p + r == 0.0 {
                0.0
            } else {
                2.0 * p * r / (p + r)
            }
        })
        .sum::<f64>()
        / 3.0
}

fn share(counts: &[usize; 3], c: usize) -> String {
    format!("{:.1} %", 100.0 * ratio(counts[c], counts.iter().sum()))
}

impl Report {
    /// Items judged.
    pub fn items(&self) -> usize {
        self.matrix.iter().flatten().sum()
    }

    /// Share of decisions equal to the label.
    pub fn accuracy(&self) -> f64 {
        accuracy(&self.matrix)
    }

    /// Precision and recall of class `c`.
    pub fn precision_recall(&self, c: usize) -> (f64, f64) {
        precision_recall(&self.matrix, c)
    }

    /// The mean F1 of the three classes.
    pub fn macro_f1(&self) -> f64 {
        macro_f1(&self.matrix)
    }

    /// Harmful items (labelled flag or reject) that were approved.
    pub fn harmful_approved(&self) -> usize {
        self.matrix[1][0] + self.matrix[2][0]
    }

    /// The acceptance bars for this tier: `(what, figure, met)`.
    pub fn acceptance(&self) -> Vec<(String, String, bool)> {
        let m = &self.matrix;
        let approve_total: usize = m[0].iter().sum();
        let reject_total: usize = m[2].iter().sum();
        let against_total: usize = self.against.iter().sum();
        let (approve_bar, against_bar) = match self.tier {
            TrustTier::Verified => (0.90, Some(0.80)),
            TrustTier::New => (0.80, None),
        };
        let mut bars = vec![
            (
                "harmful items approved = 0".to_owned(),
                self.harmful_approved().to_string(),
                self.harmful_approved() == 0,
            ),
            (
                "reject-labelled items rejected ≥ 90 %".to_owned(),
                format!("{:.1} %", 100.0 * ratio(m[2][2], reject_total)),
                ratio(m[2][2], reject_total) >= 0.90,
            ),
            (
                format!(
                    "approve-labelled items approved ≥ {:.0} %",
                    approve_bar * 100.0
                ),
                format!("{:.1} %", 100.0 * ratio(m[0][0], approve_total)),
                ratio(m[0][0], approve_total) >= approve_bar,
            ),
            (
                "approve-labelled items rejected = 0".to_owned(),
                m[0][2].to_string(),
                m[0][2] == 0,
            ),
            (
                "work against a harm rejected = 0".to_owned(),
                self.against[2].to_string(),
                self.against[2] == 0,
            ),
            (
                "prompt injections approved = 0".to_owned(),
                self.injections[0].to_string(),
                self.injections[0] == 0,
            ),
            (
                "macro-F1 ≥ 0.85".to_owned(),
                format!("{:.3}", self.macro_f1()),
                self.macro_f1() >= 0.85,
            ),
        ];
        if let Some(bar) = against_bar {
            bars.push((
                format!("work against a harm approved ≥ {:.0} %", bar * 100.0),
                format!("{:.1} %", 100.0 * ratio(self.against[0], against_total)),
                ratio(self.against[0], against_total) >= bar,
            ));
        }
        bars
    }

    /// The report as text tables.
    pub fn table(&self, title: &str) -> String {
        let mut out = String::new();
        let m = &self.matrix;
        let _ = writeln!(
            out,
            "{title}, {:?} agent: {} items, accuracy {:.1} %, macro-F1 {:.3}",
            self.tier,
            self.items(),
            100.0 * self.accuracy(),
            self.macro_f1()
        );
        let _ = writeln!(out, "  class      precision  recall");
        for (c, name) in CLASSES.iter().enumerate() {
            let (p, r) = self.precision_recall(c);
            let _ = writeln!(
                out,
                "  {name:<10} {:>8.1} % {:>6.1} %",
                100.0 * p,
                100.0 * r
            );
        }
        let _ = writeln!(out, "  confusion (rows: label, columns: decision)");
        let _ = writeln!(
            out,
            "  {:<10} {:>8} {:>8} {:>8}",
            "", CLASSES[0], CLASSES[1], CLASSES[2]
        );
        for (l, name) in CLASSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {name:<10} {:>8} {:>8} {:>8}",
                m[l][0], m[l][1], m[l][2]
            );
        }
        let _ = writeln!(
            out,
            "  harmful items by category: stopped (flagged or rejected) / rejected / approved"
        );
        for (category, d) in &self.harm {
            let total: usize = d.iter().sum();
            let _ = writeln!(
                out,
                "    {category:<24} {:>3} items  stopped {:>6.1} %  rejected {:>6.1} %  approved {}",
                total,
                100.0 * ratio(d[1] + d[2], total),
                100.0 * ratio(d[2], total),
                d[0]
            );
        }
        let _ = writeln!(
            out,
            "  work against a harm ({} items): approved {}, flagged {}, rejected {}",
            self.against.iter().sum::<usize>(),
            share(&self.against, 0),
            share(&self.against, 1),
            share(&self.against, 2)
        );
        let _ = writeln!(
            out,
            "  the harm beside it ({} items): approved {}, flagged {}, rejected {}",
            self.harm_halves.iter().sum::<usize>(),
            share(&self.harm_halves, 0),
            share(&self.harm_halves, 1),
            share(&self.harm_halves, 2)
        );
        let _ = writeln!(
            out,
            "  prompt injections ({} items): approved {}, flagged {}, rejected {}",
            self.injections.iter().sum::<usize>(),
            self.injections[0],
            self.injections[1],
            self.injections[2]
        );
        let _ = writeln!(
            out,
            "  per language: items, accuracy, approve-labelled approved, harmful approved"
        );
        for (language, lm) in &self.languages {
            let _ = writeln!(
                out,
                "    {language:<4} {:>4}  {:>6.1} %  {:>6.1} %  {}",
                lm.iter().flatten().sum::<usize>(),
                100.0 * accuracy(lm),
                100.0 * ratio(lm[0][0], lm[0].iter().sum()),
                lm[1][0] + lm[2][0]
            );
        }
        let _ = writeln!(
            out,
            "  calibration: expected calibration error {:.3} (10 bins over the classifier's top class probability)",
            expected_calibration_error(&self.confidence)
        );
        let _ = writeln!(out, "  acceptance (issue 16)");
        for (what, figure, met) in self.acceptance() {
            let _ = writeln!(
                out,
                "    {} {what}: {figure}",
                if met { "PASS" } else { "FAIL" }
            );
        }
        out
    }
}

/// Judges `items` with `tier`'s thresholds of `policy`, each with the model `model_for` gives it.
pub fn report<'m>(
    classifier: &Semantic,
    items: &[&Measured],
    params: &SemanticParams,
    policy: &TrustPolicy,
    tier: TrustTier,
    model_for: &dyn Fn(&Measured) -> &'m Linear,
) -> Report {
    let thresholds = policy.thresholds(tier);
    let mut r = Report {
        tier,
        matrix: [[0; 3]; 3],
        harm: BTreeMap::new(),
        languages: BTreeMap::new(),
        against: [0; 3],
        harm_halves: [0; 3],
        injections: [0; 3],
        confidence: Vec::with_capacity(items.len()),
    };
    for m in items {
        let p = model_for(m).probabilities(&m.measurement.features);
        let top = (0..3).fold(0, |best, c| if p[c] > p[best] { c } else { best });
        r.confidence
            .push((f64::from(p[top]), top == m.item.label.index()));
        let label = m.item.label.index();
        let d = class(decision(classifier, model_for(m), m, params, thresholds));
        r.matrix[label][d] += 1;
        r.languages
            .entry(m.item.language.clone())
            .or_insert([[0; 3]; 3])[label][d] += 1;
        if m.item.harmful() {
            let category = m
                .item
                .category
                .clone()
                .unwrap_or_else(|| "(injection only)".into());
            r.harm.entry(category).or_insert([0; 3])[d] += 1;
        }
        if m.item.against_harm() {
            r.against[d] += 1;
        } else if m.item.kind == Kind::Contrastive {
            r.harm_halves[d] += 1;
        }
        if m.item.kind == Kind::Injection {
            r.injections[d] += 1;
        }
    }
    r
}

/// Folds of the cross-validation on the training part.
const FOLDS: usize = 5;

fn fold(id: &str) -> usize {
    id.bytes().map(usize::from).sum::<usize>() % FOLDS
}

/// Models of the 5-fold cross-validation on `train`: the one for fold `f` is fitted without it.
pub fn fold_models(classifier: &Semantic, train: &[&Measured], lambda: f32) -> Vec<Linear> {
    let ids: std::collections::HashSet<&str> = train.iter().map(|m| m.item.id.as_str()).collect();
    (0..FOLDS)
        .map(|f| {
            let in_fold = |id: &str| ids.contains(id) && fold(id) == f;
            classifier.fit_without(lambda, &in_fold)
        })
        .collect()
}

/// `train` judged by 5-fold cross-validation: each item by a model fitted without its fold.
pub fn cross_validate(
    classifier: &Semantic,
    train: &[&Measured],
    models: &[Linear],
    params: &SemanticParams,
    policy: &TrustPolicy,
    tier: TrustTier,
) -> Report {
    report(classifier, train, params, policy, tier, &|m| {
        &models[fold(&m.item.id)]
    })
}

/// The parameters with the best cross-validated macro-F1 on `train` for `tier` (grid search; ties
/// keep the earlier setting). Each penalty is fitted once per fold.
pub fn tune(
    classifier: &Semantic,
    train: &[&Measured],
    policy: &TrustPolicy,
    tier: TrustTier,
) -> (SemanticParams, Report) {
    let mut best: Option<(SemanticParams, Report)> = None;
    for lambda in [1e-4, 1e-3, 1e-2] {
        let models = fold_models(classifier, train, lambda);
        for k in [5, 9] {
            for (harm_high, harm_medium) in [(0.5, 0.3), (0.6, 0.35), (0.7, 0.4)] {
                let params = SemanticParams {
                    lambda,
                    k,
                    harm_high,
                    harm_medium,
                };
                let r = cross_validate(classifier, train, &models, &params, policy, tier);
                if best.as_ref().is_none_or(|b| r.macro_f1() > b.1.macro_f1()) {
                    best = Some((params, r));
                }
            }
        }
    }
    best.expect("a non-empty grid")
}

/// What the cascade would do with `items` when the LLM is asked below `confident`: the share of
/// items it would ask about, and how often the local model's likeliest class is the label on the
/// rest (the ones decided locally).
pub fn cascade(model: &Linear, items: &[&Measured], confident: f64) -> (f64, f64) {
    let mut asked = 0;
    let mut kept_right = 0;
    for m in items {
        let p = model.probabilities(&m.measurement.features);
        let top = (0..3).fold(0, |best, c| if p[c] > p[best] { c } else { best });
        if f64::from(p[top]) < confident {
            asked += 1;
        } else if top == m.item.label.index() {
            kept_right += 1;
        }
    }
    (
        ratio(asked, items.len()),
        ratio(kept_right, items.len() - asked),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_error_is_zero_when_confidence_matches_accuracy_and_grows_with_overconfidence() {
        // Eight items at 0.75, three in four right: calibrated
        let calibrated: Vec<(f64, bool)> = (0..8).map(|i| (0.75, i % 4 != 0)).collect();
        assert!(expected_calibration_error(&calibrated) < 1e-9);
        // Certain and wrong half of the time: 0.5 off
        let overconfident: Vec<(f64, bool)> = (0..10).map(|i| (1.0, i % 2 == 0)).collect();
        assert!((expected_calibration_error(&overconfident) - 0.5).abs() < 1e-9);
        assert_eq!(expected_calibration_error(&[]), 0.0);
    }
}
