//! Layer B: classifiers behind one trait.
//!
//! A classifier reads normalised content text and returns an [`Assessment`] (alignment 0–1, aligned
//! domain, harm risk, solution scores), or `None` when it cannot judge (switched off, over budget):
//! the decision is then `flagged` and an admin decides. Thresholds are applied by the worker after
//! the cache, never by the classifier.

use std::sync::Arc;

use bw_domain::{
    guardrail::{Assessment, ContentType, HarmRisk, SolutionScores},
    taxonomy::ProblemDomain,
};
use futures::future::BoxFuture;

use crate::{
    GuardrailError,
    corpus::{self, Label},
    embed::{self, Embedder},
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
    vector: Vec<f32>,
}

impl Example {
    /// Its unit vector.
    pub fn vector(&self) -> &[f32] {
        &self.vector
    }
}

/// What the classifier measured for one text: its nearest examples (similarity, index) and the
/// solution-quality anchor differences, before any parameter applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The text's unit vector.
    pub vector: Vec<f32>,
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

impl Semantic {
    /// Embeds the reference texts and the labelled training examples with `embedder` (blocking:
    /// call at start-up, off the runtime).
    pub fn new(embedder: Arc<Embedder>, params: SemanticParams) -> Result<Self, GuardrailError> {
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
                    vector,
                });
            }
        }
        // The training split (never the held-out one): its vectors as shipped, or embedded here
        // when the shipped file is stale.
        let train = corpus::train()?;
        let vectors = match vectors::shipped() {
            Some(v) => v,
            None => {
                tracing::warn!(
                    "guardrail/model/train.vectors does not match the training split; embedding it (run `betterworld guardrail train`)"
                );
                vectors::compute(&embedder, corpus::TRAIN)?
            }
        };
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
        let model = Self::fit(&examples, params.lambda, None);
        Ok(Self {
            name: format!("semantic-{}@1", embed::MODEL),
            embedder,
            examples,
            model,
            anchors,
            params,
        })
    }

    /// Fits the linear model on `examples` (only those `keep` accepts, when given).
    fn fit(examples: &[Example], lambda: f32, keep: Option<&dyn Fn(&Example) -> bool>) -> Linear {
        let data: Vec<(&[f32], usize)> = examples
            .iter()
            .filter(|e| keep.is_none_or(|k| k(e)))
            .map(|e| {
                let class = match e.label {
                    Label::Approve => CLASS_APPROVE,
                    Label::Flag => CLASS_FLAG,
                    Label::Reject => CLASS_REJECT,
                };
                (e.vector.as_slice(), class)
            })
            .collect();
        Linear::fit(&data, 3, lambda)
    }

    /// A model fitted without the examples whose id `exclude` names (cross-validation).
    pub fn fit_without(&self, lambda: f32, exclude: &dyn Fn(&str) -> bool) -> Linear {
        Self::fit(&self.examples, lambda, Some(&|e: &Example| !exclude(&e.id)))
    }

    /// The model fitted on every example.
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
        Ok(self.measure_vector(v))
    }

    /// Measures a text by its vector (no embedding).
    pub fn measure_vector(&self, v: Vec<f32>) -> Measurement {
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
            vector: v,
            neighbours,
            quality,
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
        let p = model.probabilities(&m.vector);
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
        let alignment = (p[CLASS_APPROVE] + 0.5 * p[CLASS_FLAG]).clamp(0.0, 1.0);
        let harm = p[CLASS_REJECT] * harmful_share;
        let harm_risk = if harm >= params.harm_high {
            HarmRisk::High
        } else if harm >= params.harm_medium {
            HarmRisk::Medium
        } else if harm > 0.05 {
            HarmRisk::Low
        } else {
            HarmRisk::None
        };
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
                let measured = self.measure_vector(v);
                let assessment =
                    self.assess_measured(&self.model, &measured, &self.params, content_type, None);
                Box::pin(async move { Ok(Some(assessment)) })
            }
            None => self.assess(content_type, text),
        }
    }
}
