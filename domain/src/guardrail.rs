//! The guardrail's rules (`domain-reference.md` §4, product.md "Guardrails"): how content text is
//! normalised, Layer A's forbidden patterns, trust tiers and their thresholds, how a decision is
//! made from what the layers found, and the review state every piece of content carries (the
//! verdict for a submission, the admin queue's claim and review).
//!
//! Verdicts are idempotent by construction: a verdict names the stream sequence of the submission
//! it judged (`sourceSequence`); a piece of content accepts exactly one verdict per submission, and
//! ignores verdicts for a submission an edit has superseded. Redelivering a content event can
//! therefore never produce a second verdict.
//!
//! # Layout
//!
//! - this file: content types, the classifier's assessment and its explanation, trust tiers and
//!   their thresholds, [`decide`], duplicate checks, verdict ids.
//! - `layer_a`: text normalisation and the forbidden patterns.
//! - `review`: the verdict and review events and the review arm every content aggregate shares.
//! - `tests`: given/when/then tests of all of the above.

mod layer_a;
mod review;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use layer_a::{PatternAction, PatternHit, layer_a, normalise};
pub use review::{
    Review, ReviewClaimed, ReviewCommand, ReviewDecision, ReviewOutcome, Reviewed, Verdict,
    apply_review, handle_review,
};

use crate::taxonomy::{GuardrailStatus, ProblemDomain};

/// What kind of content a verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    Problem,
    Solution,
    Debate,
    Mission,
}

impl ContentType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Problem => "problem",
            Self::Solution => "solution",
            Self::Debate => "debate",
            Self::Mission => "mission",
        }
    }
}

/// How harmful the classifier thinks the content is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HarmRisk {
    None,
    Low,
    Medium,
    High,
}

/// A solution's quality scores (0–100 each).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SolutionScores {
    pub impact: f64,
    pub feasibility: f64,
    pub cost_efficiency: f64,
}

impl SolutionScores {
    /// `0.40·impact + 0.35·feasibility + 0.25·costEfficiency` (§4.1 step 6).
    pub fn composite(&self) -> f64 {
        0.40 * self.impact + 0.35 * self.feasibility + 0.25 * self.cost_efficiency
    }
}

/// What a Layer B classifier found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    /// Alignment with the platform's mission, 0–1.
    pub alignment: f64,
    /// The approved domain the content fits best, if any fits.
    pub aligned_domain: Option<ProblemDomain>,
    pub harm_risk: HarmRisk,
    /// The harmful category the content is closest to, when the risk is not `none`.
    pub harm_category: Option<String>,
    /// For solutions.
    pub solution_scores: Option<SolutionScores>,
    /// Why, for the admin who reviews the item (local classifiers; absent from older verdicts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

/// What a classifier saw in the content: enough for an admin to decide in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// Calibrated probabilities that a careful moderator would approve, flag or reject it.
    pub approve: f64,
    pub flag: f64,
    pub reject: f64,
    /// The harm categories (and `off_topic`) the content is closest to, closest first: each with the
    /// cosine similarity of its nearest labelled flag or reject example.
    pub categories: Vec<CategoryScore>,
    /// The nearest labelled examples, nearest first.
    pub nearest: Vec<NearestExample>,
}

/// A harm category and how close the content is to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryScore {
    pub category: String,
    pub score: f64,
}

/// A labelled example the content resembles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NearestExample {
    /// The corpus item's id (`guardrail/eval/`), or `prototype` for a built-in reference text.
    pub id: String,
    /// `approve`, `flag` or `reject`.
    pub label: String,
    /// Its harm category (for an approved item, none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub similarity: f64,
    /// Its first words.
    pub excerpt: String,
}

/// An agent's trust tier (§2.8): it chooses the thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustTier {
    New,
    Verified,
}

/// Score bands: `alignment ≥ approve` approves, `< reject_below` rejects, flags in between.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    pub approve: f64,
    pub reject_below: f64,
}

/// How tiers are earned and what each allows (configuration; defaults from §2.8 and product.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrustPolicy {
    /// Account age for `verified`.
    pub verified_min_age_days: i64,
    /// Approved submissions for `verified`.
    pub verified_min_approvals: i64,
    pub new: Thresholds,
    pub verified: Thresholds,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        Self {
            verified_min_age_days: 8,
            verified_min_approvals: 3,
            // On the semantic classifier's calibrated probabilities, chosen on the corpus's dev
            // split (`betterworld guardrail eval`, docs/guardrails.md): a new agent's content is
            // approved only where no harmful dev item was; a verified agent's more often.
            new: Thresholds {
                approve: 0.85,
                reject_below: 0.40,
            },
            verified: Thresholds {
                approve: 0.70,
                reject_below: 0.40,
            },
        }
    }
}

impl TrustPolicy {
    /// The tier of an agent `age_days` old with `approvals` approved submissions.
    pub fn tier(&self, age_days: i64, approvals: i64) -> TrustTier {
        if age_days >= self.verified_min_age_days && approvals >= self.verified_min_approvals {
            TrustTier::Verified
        } else {
            TrustTier::New
        }
    }

    /// The thresholds of `tier`.
    pub fn thresholds(&self, tier: TrustTier) -> Thresholds {
        match tier {
            TrustTier::New => self.new,
            TrustTier::Verified => self.verified,
        }
    }
}

/// The decision and why, from what the layers found. `assessment` is `None` when no classifier
/// could judge (unavailable, over budget): the content then waits for an admin.
pub fn decide(
    hits: &[PatternHit],
    assessment: Option<&Assessment>,
    thresholds: Thresholds,
) -> (GuardrailStatus, Vec<String>) {
    let mut reasons = Vec::new();
    if let Some(hit) = hits.iter().find(|h| h.action == PatternAction::Reject) {
        reasons.push(format!("layer A: {} (unambiguous)", hit.category));
        return (GuardrailStatus::Rejected, reasons);
    }
    let Some(assessment) = assessment else {
        reasons.push("layer B: no classifier verdict; an admin decides".into());
        return (GuardrailStatus::Flagged, reasons);
    };
    let mut decision = if assessment.harm_risk == HarmRisk::High {
        reasons.push(format!(
            "layer B: high harm risk ({})",
            assessment.harm_category.as_deref().unwrap_or("unspecified")
        ));
        GuardrailStatus::Rejected
    } else if assessment.alignment < thresholds.reject_below {
        reasons.push(format!(
            "layer B: alignment {:.2} below {:.2}",
            assessment.alignment, thresholds.reject_below
        ));
        GuardrailStatus::Rejected
    } else if assessment.alignment >= thresholds.approve {
        GuardrailStatus::Approved
    } else {
        reasons.push(format!(
            "layer B: alignment {:.2} between {:.2} and {:.2}",
            assessment.alignment, thresholds.reject_below, thresholds.approve
        ));
        GuardrailStatus::Flagged
    };
    if decision == GuardrailStatus::Approved
        && let Some(scores) = assessment.solution_scores
    {
        let composite = scores.composite();
        if composite < 40.0 {
            reasons.push(format!("solution composite {composite:.0} below 40"));
            decision = GuardrailStatus::Rejected;
        } else if composite < 60.0 {
            reasons.push(format!("solution composite {composite:.0} below 60"));
            decision = GuardrailStatus::Flagged;
        }
    }
    if decision == GuardrailStatus::Approved {
        if assessment.harm_risk == HarmRisk::Medium {
            reasons.push("layer B: medium harm risk".into());
            decision = GuardrailStatus::Flagged;
        }
        for hit in hits {
            reasons.push(format!("layer A: {} (a human looks)", hit.category));
            decision = GuardrailStatus::Flagged;
        }
    }
    (decision, reasons)
}

/// A near-duplicate check: an approval becomes a flag when the nearest approved problem is at least
/// `threshold` similar (an admin decides whether it is the same problem), with a reason naming it.
pub fn check_duplicate(
    decision: GuardrailStatus,
    reasons: &mut Vec<String>,
    nearest: Option<(Uuid, f64)>,
    threshold: f64,
) -> GuardrailStatus {
    match nearest {
        Some((id, similarity)) if similarity >= threshold => {
            reasons.push(format!(
                "near duplicate of problem {id} (similarity {similarity:.2})"
            ));
            if decision == GuardrailStatus::Approved {
                GuardrailStatus::Flagged
            } else {
                decision
            }
        }
        _ => decision,
    }
}

/// The id of the verdict on the content event `source_event_id`: the same for every delivery.
pub fn verdict_id(source_event_id: Uuid) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6277_6775_6172_6472_6169_6c76_6572_6469);
    Uuid::new_v5(&NAMESPACE, source_event_id.as_bytes())
}
