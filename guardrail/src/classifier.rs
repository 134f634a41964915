//! Layer B: classifiers behind one trait.
//!
//! A classifier reads normalised content text and returns an [`Assessment`] (alignment 0–1, aligned
//! domain, harm risk, solution scores), or `None` when it cannot judge (switched off, over budget):
//! the decision is then `flagged` and an admin decides. Thresholds are applied by the worker after
//! the cache, never by the classifier.

use std::sync::Arc;

use bw_domain::{
    guardrail::{
        Assessment, CategoryScore, ContentType, Explanation, HarmRisk, NearestExample,
        SolutionScores, normalise,
    },
    taxonomy::ProblemDomain,
};
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::{
    GuardrailError,
    corpus::{self, Label},
    embed::{self, Embedder},
    features::{self, Features},
    linear::Linear,
    prototypes, vectors,
};

/// A Layer B classifier.
pub trait Classifier: Send + Sync + std::fmt::Debug + 'static {
    /// `name@version`, recorded in every verdict and part of the cache key.
    fn name(&self) -> &str;

    /// Judges `text` (normalised) of `content_type`.
    fn assess<'a>(
        &'a self,
        content_type: ContentType,
        text: &'a str,
    ) -> BoxFuture<'a, Result<Option<Assessment>, GuardrailError>>;

    /// [`Classifier::assess`] when the text's all-MiniLM-L6-v2 vector is already known (the worker
    /// embeds once for Layer B and the duplicate check); classifiers that do not embed ignore it.
    fn assess_embedded<'a>(
        &'a self,
        content_type: ContentType,
        text: &'a str,
        vector: Option<Vec<f32>>,
    ) -> BoxFuture<'a, Result<Option<Assessment>, GuardrailError>> {
        let _ = vector;
        self.assess(content_type, text)
    }
}

/// No Layer B: everything Layer A lets through waits for an admin (`BW_GUARDRAIL_CLASSIFIER=none`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminOnly;

impl Classifier for AdminOnly {
    fn name(&self) -> &str {
        "admin-only@1"
    }

    fn assess<'a>(
        &'a self,
        _: ContentType,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<Assessment>, GuardrailError>> {
        Box::pin(async { Ok(None) })
    }
}

/// How neighbours become an assessment (tuned on the training part of the evaluation set with
/// leave-one-out; `docs/guardrails.md` has the numbers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticParams {
    /// L2 penalty of the linear model.
    pub lambda: f32,
    /// Neighbours consulted for the domain and the harmful category.
    pub k: usize,
    /// Harm (reject probability × share of harmful, not off-topic, reject neighbours) from which the
    /// risk is high.
    pub harm_high: f32,
    /// … and medium (above zero: low).
    pub harm_medium: f32,
}

impl Default for SemanticParams {
    fn default() -> Self {
        // `betterworld guardrail eval --tune` on the training part (docs/guardrails.md).
        Self {
            lambda: 1e-4,
            k: 5,
            harm_high: 0.5,
            harm_medium: 0.3,
        }
    }
}

/// The lowest alignment the semantic classifier reports for a mission (above the default
/// reject-below band of 0.40, so a doubtful mission is flagged rather than rejected).
pub const MISSION_ALIGNMENT_FLOOR: f32 = 0.5;

/// Class indices of the linear model.
pub const CLASS_APPROVE: usize = 0;
/// Flag.
pub const CLASS_FLAG: usize = 1;
/// Reject.
pub const CLASS_REJECT: usize = 2;

/// A reference text or labelled example, with its vector.
#[derive(Debug, Clone)]
pub struct Example {
    /// The evaluation item's id, or `prototype` for the built-in reference texts.
    pub id: String,
    pub label: Label,
    pub domain: Option<ProblemDomain>,
    /// The harmful category, or `off_topic`.
    pub category: Option<&'static str>,
    /// As written.
    pub text: String,
    vector: Vec<f32>,
}

impl Example {
    /// Its unit vector.
    pub fn vector(&self) -> &[f32] {
        &self.vector
    }

    /// What the linear model reads of it.
    pub fn features(&self) -> Features {
        Features::of(self.vector.clone(), &normalise(&self.text))
    }
}

/// What the classifier measured for one text: its nearest examples (similarity, index) and the
/// solution-quality anchor differences, before any parameter applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The text's unit vector and n-grams.
    pub features: Features,
    pub neighbours: Vec<(f32, usize)>,
    /// Strong-minus-weak anchor similarity for impact, feasibility, cost efficiency.
    pub quality: [f32; 3],
}

/// Layer B by meaning: the content's embedding is compared with reference texts of the fifteen
/// domains, the harmful categories and off-topic content (`prototypes`) and with the labelled
/// training examples; the nearest ones vote. Local, no external service.
pub struct Semantic {
    embedder: Arc<Embedder>,
    examples: Vec<Example>,
    /// Fitted on every example.
    model: Linear,
    /// Strong and weak anchor vectors per quality.
    anchors: Vec<(Vec<f32>, Vec<f32>)>,
    params: SemanticParams,
    name: String,
}

impl std::fmt::Debug for Semantic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semantic")
            .field("name", &self.name)
            .field("examples", &self.examples.len())
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// An example waiting to be embedded.
struct Pending {
    id: String,
    label: Label,
    domain: Option<ProblemDomain>,
    category: Option<&'static str>,
    text: String,
}

fn static_category(name: &str) -> Option<&'static str> {
    prototypes::HARMS
        .iter()
        .map(|(c, _)| *c)
        .chain(std::iter::once("off_topic"))
        .find(|c| *c == name)
}

/// The weights `guardrail train` ships (empty until it has written them).
const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../model/classifier.weights");

/// What the shipped weights were fitted from: the training and dev splits, the reference texts,
/// the feature layout and the penalty. Weights written for anything else are not used.
pub fn weights_digest(lambda: f32) -> String {
    let mut h = Sha256::new();
    h.update(corpus::TRAIN);
    h.update(corpus::DEV);
    for (_, texts) in prototypes::DOMAINS {
        texts.iter().for_each(|t| h.update(t));
    }
    for (category, texts) in prototypes::HARMS {
        h.update(category);
        texts.iter().for_each(|t| h.update(t));
    }
    prototypes::OFF_TOPIC.iter().for_each(|t| h.update(t));
    h.update(format!(
        "{} char2-5 word1-2 {} lambda {lambda}",
        embed::MODEL,
        features::BUCKETS
    ));
    hex::encode(h.finalize())
}

/// The dev split's features and classes (it calibrates the model; embedding it takes seconds).
pub fn dev_features(embedder: &Embedder) -> Result<Vec<(Features, usize)>, GuardrailError> {
    let vectors = vectors::compute(embedder, corpus::DEV)?;
    Ok(corpus::dev()?
        .into_iter()
        .zip(vectors)
        .map(|(item, v)| (Features::of(v, &normalise(&item.text)), item.label.index()))
        .collect())
}

/// The first words of `text`, at most `chars` characters.
fn excerpt(text: &str, chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &flat[..end]),
        None => flat,
    }
}

impl Semantic {
    /// Embeds the reference texts with `embedder` and takes the training split's shipped vectors
    /// and the shipped weights (blocking: call at start-up, off the runtime). Stale files (the
    /// corpus changed since `guardrail train`) are recomputed here, with a warning.
    pub fn new(embedder: Arc<Embedder>, params: SemanticParams) -> Result<Self, GuardrailError> {
        // The training split (never the held-out one): its vectors as shipped, or embedded here.
        let vectors = match vectors::shipped() {
            Some(v) => v,
            None => {
                tracing::warn!(
                    "guardrail/model/train.vectors does not match the training split; embedding it (run `betterworld guardrail train`)"
                );
                vectors::compute(&embedder, corpus::TRAIN)?
            }
        };
        let weights = Linear::decode(SHIPPED_WEIGHTS, &weights_digest(params.lambda))
            .inspect_err(|why| {
                tracing::warn!(
                    "guardrail/model/classifier.weights not used ({why}); fitting the classifier here (run `betterworld guardrail train`)"
                );
            })
            .ok();
        Self::build(embedder, params, vectors, weights)
    }

    /// The classifier with the training split's `vectors` and the model `weights`; without
    /// weights it fits them on the examples and calibrates them on the dev split (seconds).
    pub fn build(
        embedder: Arc<Embedder>,
        params: SemanticParams,
        vectors: Vec<Vec<f32>>,
        weights: Option<Linear>,
    ) -> Result<Self, GuardrailError> {
        let mut pending: Vec<Pending> = Vec::new();
        for (domain, texts) in prototypes::DOMAINS {
            for t in *texts {
                pending.push(Pending {
                    id: "prototype".into(),
                    label: Label::Approve,
                    domain: Some(*domain),
                    category: None,
                    text: (*t).into(),
                });
            }
        }
        for (category, texts) in prototypes::HARMS {
            for t in *texts {
                pending.push(Pending {
                    id: "prototype".into(),
                    label: Label::Reject,
                    domain: None,
                    category: Some(category),
                    text: (*t).into(),
                });
            }
        }
        for t in prototypes::OFF_TOPIC {
            pending.push(Pending {
                id: "prototype".into(),
                label: Label::Reject,
                domain: None,
                category: Some("off_topic"),
                text: (*t).into(),
            });
        }
        let mut examples = Vec::with_capacity(pending.len());
        for chunk in pending.chunks(16) {
            let texts: Vec<&str> = chunk.iter().map(|p| p.text.as_str()).collect();
            for (p, vector) in chunk.iter().zip(embedder.embed(&texts)?) {
                examples.push(Example {
                    id: p.id.clone(),
                    label: p.label,
                    domain: p.domain,
                    category: p.category,
                    text: p.text.clone(),
                    vector,
                });
            }
        }
        let train = corpus::train()?;
        if train.len() != vectors.len() {
            return Err(GuardrailError::Corrupt(format!(
                "{} training vectors for {} training items",
                vectors.len(),
                train.len()
            )));
        }
        for (item, vector) in train.into_iter().zip(vectors) {
            // An approved item's category is the harm it works against: it names no harm here.
            let category = match item.label {
                Label::Approve => None,
                Label::Flag | Label::Reject => item.category.as_deref().and_then(static_category),
            };
            examples.push(Example {
                label: item.label,
                domain: item.domain.as_deref().and_then(|d| d.parse().ok()),
                category,
                id: item.id,
                text: item.text,
                vector,
            });
        }
        let anchors = [
            prototypes::IMPACT,
            prototypes::FEASIBILITY,
            prototypes::COST_EFFICIENCY,
        ]
        .iter()
        .map(|(strong, weak)| {
            let mut v = embedder.embed(&[strong, weak])?;
            let weak = v.pop().unwrap_or_default();
            let strong = v.pop().unwrap_or_default();
            Ok((strong, weak))
        })
        .collect::<Result<_, GuardrailError>>()?;
        let model = match weights {
            Some(model) => model,
            None => {
                let dev = dev_features(&embedder)?;
                let dev: Vec<(&Features, usize)> = dev.iter().map(|(f, c)| (f, *c)).collect();
                Self::fit(&examples, params.lambda, None).calibrated(&dev)
            }
        };
        Ok(Self {
            name: format!("semantic-{}@2", embed::MODEL),
            embedder,
            examples,
            model,
            anchors,
            params,
        })
    }

    /// Fits the linear model on `examples` (only those `keep` accepts, when given), uncalibrated.
    fn fit(examples: &[Example], lambda: f32, keep: Option<&dyn Fn(&Example) -> bool>) -> Linear {
        let kept: Vec<(Features, usize)> = examples
            .iter()
            .filter(|e| keep.is_none_or(|k| k(e)))
            .map(|e| (e.features(), e.label.index()))
            .collect();
        let data: Vec<(&Features, usize)> = kept.iter().map(|(f, c)| (f, *c)).collect();
        Linear::fit(&data, 3, lambda)
    }

    /// A model fitted without the examples whose id `exclude` names (cross-validation),
    /// uncalibrated.
    pub fn fit_without(&self, lambda: f32, exclude: &dyn Fn(&str) -> bool) -> Linear {
        Self::fit(&self.examples, lambda, Some(&|e: &Example| !exclude(&e.id)))
    }

    /// The model in use: fitted on every example, calibrated on the dev split.
    pub fn model(&self) -> &Linear {
        &self.model
    }

    /// The examples the classifier compares with.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// Measures `text` (normalised; blocking).
    pub fn measure(&self, text: &str) -> Result<Measurement, GuardrailError> {
        let v = self
            .embedder
            .embed(&[text])?
            .pop()
            .ok_or_else(|| GuardrailError::Classifier {
                classifier: self.name.clone(),
                reason: "no vector".into(),
            })?;
        Ok(self.measure_vector(v, text))
    }

    /// Measures a text (normalised) by its vector (no embedding).
    pub fn measure_vector(&self, v: Vec<f32>, text: &str) -> Measurement {
        let mut neighbours: Vec<(f32, usize)> = self
            .examples
            .iter()
            .enumerate()
            .map(|(i, e)| (embed::cosine(&v, &e.vector), i))
            .collect();
        neighbours.sort_by(|a, b| b.0.total_cmp(&a.0));
        neighbours.truncate(32);
        let quality = [0, 1, 2].map(|i| {
            let (strong, weak) = &self.anchors[i];
            embed::cosine(&v, strong) - embed::cosine(&v, weak)
        });
        Measurement {
            features: Features::of(v, text),
            neighbours,
            quality,
        }
    }

    /// Why: the probabilities `p`, the harm categories closest to the measurement and its three
    /// nearest labelled corpus items (leaving out `exclude`).
    fn explain(&self, p: &[f32], m: &Measurement, exclude: Option<&str>) -> Explanation {
        let neighbours = || {
            m.neighbours
                .iter()
                .map(|(s, i)| (*s, &self.examples[*i]))
                .filter(move |(_, e)| exclude.is_none_or(|id| e.id != id))
        };
        let mut categories: Vec<CategoryScore> = Vec::new();
        for (similarity, e) in neighbours() {
            if let Some(c) = e.category.filter(|_| e.label != Label::Approve)
                && !categories.iter().any(|s| s.category == c)
            {
                categories.push(CategoryScore {
                    category: c.to_owned(),
                    score: f64::from(similarity),
                });
            }
        }
        categories.truncate(3);
        let nearest = neighbours()
            .filter(|(_, e)| e.id != "prototype")
            .take(3)
            .map(|(similarity, e)| NearestExample {
                id: e.id.clone(),
                label: e.label.as_str().to_owned(),
                category: e.category.map(str::to_owned),
                similarity: f64::from(similarity),
                excerpt: excerpt(&e.text, 100),
            })
            .collect();
        Explanation {
            approve: f64::from(p[CLASS_APPROVE]),
            flag: f64::from(p[CLASS_FLAG]),
            reject: f64::from(p[CLASS_REJECT]),
            categories,
            nearest,
        }
    }

    /// The assessment of a measurement with `model` under `params`, leaving the example `exclude`
    /// out of the neighbours (an item's own entry, when judging the training part).
    pub fn assess_measured(
        &self,
        model: &Linear,
        m: &Measurement,
        params: &SemanticParams,
        content_type: ContentType,
        exclude: Option<&str>,
    ) -> Assessment {
        let p = model.probabilities(&m.features);
        let top: Vec<&Example> = m
            .neighbours
            .iter()
            .map(|(_, i)| &self.examples[*i])
            .filter(|e| exclude.is_none_or(|id| e.id != id))
            .take(params.k.max(1))
            .collect();
        let rejects = top.iter().filter(|e| e.label == Label::Reject).count();
        let harmful = top
            .iter()
            .filter(|e| e.label == Label::Reject && e.category != Some("off_topic"))
            .count();
        let harmful_share = if rejects == 0 {
            0.0
        } else {
            harmful as f32 / rejects as f32
        };
        let mut alignment = (p[CLASS_APPROVE] + 0.5 * p[CLASS_FLAG]).clamp(0.0, 1.0);
        let harm = p[CLASS_REJECT] * harmful_share;
        let mut harm_risk = if harm >= params.harm_high {
            HarmRisk::High
        } else if harm >= params.harm_medium {
            HarmRisk::Medium
        } else if harm > 0.05 {
            HarmRisk::Low
        } else {
            HarmRisk::None
        };
        if content_type == ContentType::Mission {
            // The corpus holds no missions (their instructions and evidence lists read like nothing
            // it was fitted on): for a mission the classifier may stop an approval, never reject
            // alone — an admin decides what it doubts.
            harm_risk = harm_risk.min(HarmRisk::Medium);
            alignment = alignment.max(MISSION_ALIGNMENT_FLOOR);
        }
        let score = |q: f32| f64::from((50.0 + 250.0 * q).clamp(0.0, 100.0));
        Assessment {
            alignment: f64::from(alignment),
            aligned_domain: top.iter().find_map(|e| e.domain),
            harm_risk,
            harm_category: (harm_risk != HarmRisk::None)
                .then(|| {
                    top.iter()
                        .find_map(|e| e.category.filter(|c| *c != "off_topic"))
                        .map(str::to_owned)
                })
                .flatten(),
            solution_scores: (content_type == ContentType::Solution).then(|| SolutionScores {
                impact: score(m.quality[0]),
                feasibility: score(m.quality[1]),
                cost_efficiency: score(m.quality[2]),
            }),
            explanation: Some(self.explain(&p, m, exclude)),
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> SemanticParams {
        self.params
    }
}

impl Classifier for Arc<Semantic> {
    fn name(&self) -> &str {
        &self.name
    }

    fn assess<'a>(
        &'a self,
        content_type: ContentType,
        text: &'a str,
    ) -> BoxFuture<'a, Result<Option<Assessment>, GuardrailError>> {
        let this = Arc::clone(self);
        let text = text.to_owned();
        Box::pin(async move {
            let measuring = Arc::clone(&this);
            let measured = tokio::task::spawn_blocking(move || measuring.measure(&text))
                .await
                .map_err(|e| GuardrailError::Classifier {
                    classifier: this.name.clone(),
                    reason: e.to_string(),
                })??;
            Ok(Some(this.assess_measured(
                &this.model,
                &measured,
                &this.params,
                content_type,
                None,
            )))
        })
    }

    fn assess_embedded<'a>(
        &'a self,
        content_type: ContentType,
        text: &'a str,
        vector: Option<Vec<f32>>,
    ) -> BoxFuture<'a, Result<Option<Assessment>, GuardrailError>> {
        match vector.filter(|v| v.len() == embed::DIMENSIONS) {
            Some(v) => {
                let measured = self.measure_vector(v, text);
                let assessment =
                    self.assess_measured(&self.model, &measured, &self.params, content_type, None);
                Box::pin(async move { Ok(Some(assessment)) })
            }
            None => self.assess(content_type, text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_weights_were_fitted_on_the_compiled_in_corpus() {
        // Fails after train.jsonl, dev.jsonl, the reference texts or the features change, until
        // `betterworld guardrail train` writes guardrail/model/classifier.weights again.
        let model = Linear::decode(
            SHIPPED_WEIGHTS,
            &weights_digest(SemanticParams::default().lambda),
        )
        .expect("current weights");
        assert!(model.temperature() > 0.0);
    }

    #[test]
    fn an_excerpt_is_the_first_words_and_says_when_it_cuts() {
        assert_eq!(excerpt("short   text\nhere", 100), "short text here");
        assert_eq!(excerpt("ünïcode words go on", 7), "ünïcode…");
    }
}
