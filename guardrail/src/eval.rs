//! Guardrail quality: the labelled evaluation set (`guardrail/eval/items.jsonl`), the decisions the
//! guardrail makes on it (Layer A, then the semantic classifier, then the verified tier's
//! thresholds — what an established agent would get), and accuracy, per-class precision and recall
//! and the confusion matrix. Parameters are tuned on the `train` part and reported on `test`.

use std::{fmt::Write as _, path::Path};

use bw_domain::{
    guardrail::{ContentType, Thresholds, decide, layer_a, normalise},
    taxonomy::GuardrailStatus,
};
use serde::Deserialize;

use crate::{
    GuardrailError,
    classifier::{Measurement, Semantic, SemanticParams},
    linear::Linear,
};

/// One labelled item.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub id: String,
    pub content_type: ContentType,
    pub text: String,
    /// `approve`, `flag` or `reject`.
    pub label: String,
    pub domain: Option<String>,
    pub category: Option<String>,
    /// `train` or `test`.
    pub split: String,
}

/// Reads the set.
pub fn load(path: &Path) -> Result<Vec<Item>, GuardrailError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| GuardrailError::Corrupt(format!("{}: {e}", path.display())))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .map_err(|e| GuardrailError::Corrupt(format!("{}:{}: {e}", path.display(), n + 1)))
        })
        .collect()
}

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

/// Accuracy and the confusion matrix (`matrix[label][decision]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub items: usize,
    pub accuracy: f64,
    pub matrix: [[usize; 3]; 3],
}

impl Report {
    /// Precision and recall of class `c`.
    pub fn precision_recall(&self, c: usize) -> (f64, f64) {
        let tp = self.matrix[c][c] as f64;
        let predicted: usize = (0..3).map(|l| self.matrix[l][c]).sum();
        let actual: usize = self.matrix[c].iter().sum();
        let ratio = |n: f64, d: usize| if d == 0 { 0.0 } else { n / d as f64 };
        (ratio(tp, predicted), ratio(tp, actual))
    }

    /// The report as a text table.
    pub fn table(&self, title: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{title}: {} items, accuracy {:.1} %",
            self.items,
            100.0 * self.accuracy
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
            let row = self.matrix[l];
            let _ = writeln!(
                out,
                "  {name:<10} {:>8} {:>8} {:>8}",
                row[0], row[1], row[2]
            );
        }
        out
    }
}

/// Judges `items` under `params` and `thresholds`, each with the model `model_for` gives it.
pub fn report<'m>(
    classifier: &Semantic,
    items: &[&Measured],
    params: &SemanticParams,
    thresholds: Thresholds,
    model_for: &dyn Fn(&Measured) -> &'m Linear,
) -> Report {
    let mut matrix = [[0usize; 3]; 3];
    for m in items {
        let label = CLASSES.iter().position(|c| *c == m.item.label).unwrap_or(1);
        matrix[label][class(decision(classifier, model_for(m), m, params, thresholds))] += 1;
    }
    let correct: usize = (0..3).map(|c| matrix[c][c]).sum();
    Report {
        items: items.len(),
        accuracy: if items.is_empty() {
            0.0
        } else {
            correct as f64 / items.len() as f64
        },
        matrix,
    }
}

/// Folds of the cross-validation on the training part.
const FOLDS: usize = 5;

fn fold(id: &str) -> usize {
    id.bytes().map(usize::from).sum::<usize>() % FOLDS
}

/// `train` judged by 5-fold cross-validation: each item by a model fitted without its fold.
pub fn cross_validate(
    classifier: &Semantic,
    train: &[&Measured],
    params: &SemanticParams,
    thresholds: Thresholds,
) -> Report {
    let models: Vec<Linear> = (0..FOLDS)
        .map(|f| {
            let in_fold = |id: &str| train.iter().any(|m| m.item.id == id) && fold(id) == f;
            classifier.fit_without(params.lambda, &in_fold)
        })
        .collect();
    report(classifier, train, params, thresholds, &|m| {
        &models[fold(&m.item.id)]
    })
}

/// The parameters with the best cross-validated accuracy on `train` (grid search; ties keep the
/// earlier setting).
pub fn tune(
    classifier: &Semantic,
    train: &[&Measured],
    thresholds: Thresholds,
) -> (SemanticParams, Report) {
    let start = SemanticParams::default();
    let mut best = (start, cross_validate(classifier, train, &start, thresholds));
    for lambda in [1e-4, 1e-3, 3e-3, 1e-2] {
        for k in [5, 9] {
            for (harm_high, harm_medium) in [(0.5, 0.3), (0.6, 0.35), (0.7, 0.4)] {
                let params = SemanticParams {
                    lambda,
                    k,
                    harm_high,
                    harm_medium,
                };
                let r = cross_validate(classifier, train, &params, thresholds);
                if r.accuracy > best.1.accuracy {
                    best = (params, r);
                }
            }
        }
    }
    best
}
