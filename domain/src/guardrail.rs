//! The guardrail's rules (`domain-reference.md` §4, product.md "Guardrails"): how content text is
//! normalised, Layer A's forbidden patterns, trust tiers and their thresholds, how a decision is
//! made from what the layers found, and the review state every piece of content carries (the
//! verdict for a submission, the admin queue's claim and review).
//!
//! Verdicts are idempotent by construction: a verdict names the stream sequence of the submission
//! it judged (`sourceSequence`); a piece of content accepts exactly one verdict per submission, and
//! ignores verdicts for a submission an edit has superseded. Redelivering a content event can
//! therefore never produce a second verdict.

mod layer_a;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use layer_a::{PatternAction, PatternHit, layer_a, normalise};

use crate::{
    DomainError,
    taxonomy::{GuardrailStatus, ProblemDomain},
};

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

/// A guardrail verdict on one submission of one piece of content. Version 1 of
/// `GuardrailDecided`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub content_id: Uuid,
    pub content_type: ContentType,
    /// The agent whose content it is (for its trust tier).
    pub author_agent_id: Uuid,
    pub verdict_id: Uuid,
    /// The stream sequence of the report or edit judged.
    pub source_sequence: i64,
    pub decision: GuardrailStatus,
    pub layer_a: Vec<PatternHit>,
    pub assessment: Option<Assessment>,
    pub trust_tier: TrustTier,
    pub thresholds: Thresholds,
    /// `name@version` of the Layer B classifier.
    pub classifier: String,
    pub cache_hit: bool,
    pub duration_ms: u32,
    pub reasons: Vec<String>,
    /// The approved problem this one nearly duplicates, when the check found one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<Uuid>,
    pub decided_at: DateTime<Utc>,
}

/// An admin took a flagged item to review it. Version 1 of `ReviewClaimed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewClaimed {
    pub content_id: Uuid,
    pub content_type: ContentType,
    pub claimed_by: Uuid,
    pub claimed_at: DateTime<Utc>,
}

/// An admin decided a flagged item. Version 1 of `Reviewed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reviewed {
    pub content_id: Uuid,
    pub content_type: ContentType,
    pub reviewed_by: Uuid,
    /// `approved` or `rejected`.
    pub decision: GuardrailStatus,
    /// 10–2,000 characters.
    pub notes: String,
    pub reviewed_at: DateTime<Utc>,
}

/// An admin's review decision, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewDecision {
    decision: GuardrailStatus,
    notes: String,
}

impl ReviewDecision {
    /// `approve` or `reject`, with notes of 10–2,000 characters.
    pub fn parse(decision: &str, notes: &str) -> Result<Self, DomainError> {
        let decision = match decision {
            "approve" => GuardrailStatus::Approved,
            "reject" => GuardrailStatus::Rejected,
            other => {
                return Err(DomainError::invalid(
                    "decision",
                    format!("`{other}` is not one of: approve, reject"),
                ));
            }
        };
        let notes = notes.trim();
        if !(10..=2000).contains(&notes.chars().count()) {
            return Err(DomainError::invalid("notes", "10–2000 characters"));
        }
        Ok(Self {
            decision,
            notes: notes.to_owned(),
        })
    }
}

/// Where one piece of content stands with the guardrail.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// The sequence of the submission awaiting (or holding) a verdict.
    submitted: Option<i64>,
    /// Whether that submission has its verdict.
    judged: bool,
    /// The verdict on the current submission (what an admin claims and reviews).
    #[serde(default)]
    verdict: Option<Uuid>,
    status: Option<GuardrailStatus>,
    claimed_by: Option<Uuid>,
}

impl Review {
    /// A report or edit at stream `sequence`: pending again, any claim released.
    pub fn submitted(&mut self, sequence: i64) {
        *self = Self {
            submitted: Some(sequence),
            judged: false,
            verdict: None,
            status: Some(GuardrailStatus::Pending),
            claimed_by: None,
        };
    }

    /// The current status.
    pub fn status(&self) -> Option<GuardrailStatus> {
        self.status
    }

    /// Whether a verdict on the submission at `source_sequence` is to be recorded: `false` for a
    /// verdict already given (a redelivery) or on a submission an edit superseded.
    pub fn accepts_verdict(&self, source_sequence: i64) -> bool {
        self.submitted == Some(source_sequence) && !self.judged
    }

    /// Records a verdict.
    pub fn judged(&mut self, decision: GuardrailStatus, verdict_id: Uuid) {
        self.judged = true;
        self.verdict = Some(verdict_id);
        self.status = Some(decision);
    }

    /// Refuses an admin's action on a queue item (`verdict_id`) other than the current submission's.
    fn check_current(&self, verdict_id: Uuid) -> Result<(), DomainError> {
        if self.verdict == Some(verdict_id) {
            Ok(())
        } else {
            Err(DomainError::InvalidState(
                "this item was superseded by an edit; review the newer one",
            ))
        }
    }

    /// Checks that `admin` may claim the item: it must be flagged and unclaimed (`Ok(false)` when
    /// `admin` holds the claim already: nothing to record).
    pub fn check_claim(&self, admin: Uuid) -> Result<bool, DomainError> {
        if self.status != Some(GuardrailStatus::Flagged) {
            return Err(DomainError::InvalidState(
                "only flagged content waits for review",
            ));
        }
        match self.claimed_by {
            Some(holder) if holder == admin => Ok(false),
            Some(_) => Err(DomainError::AlreadyClaimed(
                "another admin is reviewing this item",
            )),
            None => Ok(true),
        }
    }

    /// Records a claim.
    pub fn claimed(&mut self, admin: Uuid) {
        self.claimed_by = Some(admin);
    }

    /// Checks that `admin` may decide the item: flagged, and claimed by `admin`.
    pub fn check_review(&self, admin: Uuid) -> Result<(), DomainError> {
        if self.status != Some(GuardrailStatus::Flagged) {
            return Err(DomainError::InvalidState(
                "only flagged content waits for review",
            ));
        }
        if self.claimed_by != Some(admin) {
            return Err(DomainError::Forbidden(
                "only the admin who claimed the item may review it",
            ));
        }
        Ok(())
    }

    /// Records a review.
    pub fn reviewed(&mut self, decision: GuardrailStatus) {
        self.status = Some(decision);
        self.claimed_by = None;
    }
}

/// The review commands every content aggregate takes.
#[derive(Debug, Clone, PartialEq)]
pub enum ReviewCommand {
    /// The guardrail's verdict (issued by the guardrail worker).
    Decide(Box<Verdict>),
    /// An admin claims the flagged item `verdict_id` (the queue item they looked at).
    Claim {
        admin: Uuid,
        verdict_id: Uuid,
        at: DateTime<Utc>,
    },
    /// The claiming admin decides the item `verdict_id`.
    Review {
        admin: Uuid,
        verdict_id: Uuid,
        decision: ReviewDecision,
        at: DateTime<Utc>,
    },
}

/// The event a review command produces, if any, given the item's `review` state.
#[derive(Debug, Clone, PartialEq)]
pub enum ReviewOutcome {
    Decided(Box<Verdict>),
    Claimed(ReviewClaimed),
    Reviewed(Reviewed),
}

/// Decides a review command on content `content_id` of `content_type` — the review arm every judged
/// aggregate shares. `withdrawn` names why the content is judged no more (it was archived): a late
/// verdict is then dropped without an event, and an admin's claim or review is refused with it.
pub fn handle_review(
    review: &Review,
    content_id: Uuid,
    content_type: ContentType,
    command: ReviewCommand,
    withdrawn: Option<&'static str>,
) -> Result<Option<ReviewOutcome>, DomainError> {
    if let Some(why) = withdrawn {
        return match command {
            ReviewCommand::Decide(_) => Ok(None),
            _ => Err(DomainError::InvalidState(why)),
        };
    }
    match command {
        ReviewCommand::Decide(verdict) => {
            if verdict.content_id != content_id || verdict.content_type != content_type {
                return Err(DomainError::invalid(
                    "contentId",
                    "the verdict is about other content",
                ));
            }
            Ok(review
                .accepts_verdict(verdict.source_sequence)
                .then_some(ReviewOutcome::Decided(verdict)))
        }
        ReviewCommand::Claim {
            admin,
            verdict_id,
            at,
        } => {
            review.check_current(verdict_id)?;
            Ok(review
                .check_claim(admin)?
                .then_some(ReviewOutcome::Claimed(ReviewClaimed {
                    content_id,
                    content_type,
                    claimed_by: admin,
                    claimed_at: at,
                })))
        }
        ReviewCommand::Review {
            admin,
            verdict_id,
            decision,
            at,
        } => {
            review.check_current(verdict_id)?;
            review.check_review(admin)?;
            Ok(Some(ReviewOutcome::Reviewed(Reviewed {
                content_id,
                content_type,
                reviewed_by: admin,
                decision: decision.decision,
                notes: decision.notes,
                reviewed_at: at,
            })))
        }
    }
}

/// Applies a review event to the item's state.
pub fn apply_review(review: &mut Review, outcome: &ReviewOutcome) {
    match outcome {
        ReviewOutcome::Decided(verdict) => review.judged(verdict.decision, verdict.verdict_id),
        ReviewOutcome::Claimed(claim) => review.claimed(claim.claimed_by),
        ReviewOutcome::Reviewed(reviewed) => review.reviewed(reviewed.decision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assessment(alignment: f64, harm: HarmRisk) -> Assessment {
        Assessment {
            alignment,
            aligned_domain: Some(ProblemDomain::CleanWaterSanitation),
            harm_risk: harm,
            harm_category: None,
            solution_scores: None,
            explanation: None,
        }
    }

    const VERIFIED: Thresholds = Thresholds {
        approve: 0.70,
        reject_below: 0.40,
    };

    #[test]
    fn normalising_removes_what_hides_a_word() {
        assert_eq!(
            normalise("  W\u{200b}eapon\u{00ad}s  and\tbo\u{301}mbs "),
            "weapons and bombs"
        );
        assert_eq!(normalise("Caf\u{e9}"), "cafe");
    }

    #[test]
    fn given_an_unambiguous_statement_of_intent_when_screened_then_rejected_whatever_layer_b_says()
    {
        let hits = layer_a(&normalise("Here is how to build pipe bombs at home"));
        assert_eq!(hits[0].action, PatternAction::Reject);
        let (decision, reasons) = decide(&hits, Some(&assessment(0.99, HarmRisk::None)), VERIFIED);
        assert_eq!(decision, GuardrailStatus::Rejected, "{reasons:?}");
    }

    #[test]
    fn given_an_ambiguous_category_when_screened_then_a_human_looks() {
        let hits = layer_a(&normalise(
            "Elderly residents lose savings to phone fraud; a volunteer hotline helps them check callers",
        ));
        assert_eq!(
            hits,
            vec![PatternHit {
                category: "financial_exploitation".into(),
                action: PatternAction::Flag
            }]
        );
        let (decision, _) = decide(&hits, Some(&assessment(0.95, HarmRisk::None)), VERIFIED);
        assert_eq!(decision, GuardrailStatus::Flagged);
        assert!(layer_a(&normalise("Households lack clean water after the flood")).is_empty());
    }

    #[test]
    fn given_a_score_when_decided_then_the_tier_bands_apply() {
        for (alignment, want) in [
            (0.70, GuardrailStatus::Approved),
            (0.69, GuardrailStatus::Flagged),
            (0.40, GuardrailStatus::Flagged),
            (0.39, GuardrailStatus::Rejected),
        ] {
            assert_eq!(
                decide(&[], Some(&assessment(alignment, HarmRisk::None)), VERIFIED).0,
                want,
                "{alignment}"
            );
        }
        let new = TrustPolicy::default().thresholds(TrustTier::New);
        assert_eq!(
            decide(&[], Some(&assessment(0.84, HarmRisk::None)), new).0,
            GuardrailStatus::Flagged,
            "a new agent needs a very high score"
        );
        assert_eq!(
            decide(&[], Some(&assessment(0.85, HarmRisk::None)), new).0,
            GuardrailStatus::Approved
        );
        assert_eq!(
            decide(&[], Some(&assessment(0.95, HarmRisk::High)), VERIFIED).0,
            GuardrailStatus::Rejected
        );
        assert_eq!(
            decide(&[], Some(&assessment(0.95, HarmRisk::Medium)), VERIFIED).0,
            GuardrailStatus::Flagged
        );
        assert_eq!(
            decide(&[], None, VERIFIED).0,
            GuardrailStatus::Flagged,
            "no classifier: an admin decides"
        );
    }

    #[test]
    fn given_an_approved_solution_when_its_composite_is_low_then_it_is_flagged_or_rejected() {
        let with = |impact, feasibility, cost_efficiency| Assessment {
            solution_scores: Some(SolutionScores {
                impact,
                feasibility,
                cost_efficiency,
            }),
            ..assessment(0.9, HarmRisk::None)
        };
        assert_eq!(
            decide(&[], Some(&with(80.0, 80.0, 80.0)), VERIFIED).0,
            GuardrailStatus::Approved
        );
        assert_eq!(
            decide(&[], Some(&with(50.0, 50.0, 50.0)), VERIFIED).0,
            GuardrailStatus::Flagged
        );
        assert_eq!(
            decide(&[], Some(&with(30.0, 30.0, 30.0)), VERIFIED).0,
            GuardrailStatus::Rejected
        );
    }

    #[test]
    fn given_a_near_duplicate_when_decided_then_an_approval_becomes_a_flag_naming_it() {
        let other = Uuid::from_u128(42);
        let mut reasons = Vec::new();
        assert_eq!(
            check_duplicate(
                GuardrailStatus::Approved,
                &mut reasons,
                Some((other, 0.95)),
                0.92
            ),
            GuardrailStatus::Flagged
        );
        assert!(reasons[0].contains(&other.to_string()), "{reasons:?}");
        assert_eq!(
            check_duplicate(
                GuardrailStatus::Rejected,
                &mut Vec::new(),
                Some((other, 0.99)),
                0.92
            ),
            GuardrailStatus::Rejected,
            "a rejection stays a rejection"
        );
        assert_eq!(
            check_duplicate(
                GuardrailStatus::Approved,
                &mut Vec::new(),
                Some((other, 0.80)),
                0.92
            ),
            GuardrailStatus::Approved
        );
        assert_eq!(
            check_duplicate(GuardrailStatus::Approved, &mut Vec::new(), None, 0.92),
            GuardrailStatus::Approved
        );
    }

    #[test]
    fn tiers_need_both_age_and_approvals() {
        let policy = TrustPolicy::default();
        assert_eq!(policy.tier(8, 3), TrustTier::Verified);
        assert_eq!(policy.tier(7, 30), TrustTier::New);
        assert_eq!(policy.tier(80, 2), TrustTier::New);
    }

    fn verdict(sequence: i64, decision: GuardrailStatus) -> Verdict {
        Verdict {
            content_id: Uuid::from_u128(1),
            content_type: ContentType::Problem,
            author_agent_id: Uuid::from_u128(2),
            verdict_id: verdict_id(Uuid::from_u128(3)),
            source_sequence: sequence,
            decision,
            layer_a: vec![],
            assessment: None,
            trust_tier: TrustTier::New,
            thresholds: VERIFIED,
            classifier: "test@1".into(),
            cache_hit: false,
            duration_ms: 1,
            reasons: vec![],
            duplicate_of: None,
            decided_at: DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
        }
    }

    #[test]
    fn given_withdrawn_content_when_a_verdict_or_an_admin_comes_then_the_verdict_is_dropped_and_the_admin_told()
     {
        let mut review = Review::default();
        review.submitted(1);
        let late = ReviewCommand::Decide(Box::new(verdict(1, GuardrailStatus::Approved)));
        assert!(
            handle_review(
                &review,
                Uuid::from_u128(1),
                ContentType::Problem,
                late.clone(),
                None
            )
            .expect("decides")
            .is_some(),
            "live content takes the verdict"
        );
        let withdrawn = Some("the problem is archived");
        assert_eq!(
            handle_review(
                &review,
                Uuid::from_u128(1),
                ContentType::Problem,
                late,
                withdrawn
            ),
            Ok(None),
            "no event, no error: the worker moves on"
        );
        let claim = ReviewCommand::Claim {
            admin: Uuid::from_u128(9),
            verdict_id: Uuid::from_u128(5),
            at: DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
        };
        assert_eq!(
            handle_review(
                &review,
                Uuid::from_u128(1),
                ContentType::Problem,
                claim,
                withdrawn
            ),
            Err(DomainError::InvalidState("the problem is archived"))
        );
    }

    #[test]
    fn given_a_submission_when_verdicts_arrive_then_only_the_first_for_the_latest_submission_counts()
     {
        let mut review = Review::default();
        review.submitted(1);
        let decide = |review: &Review, sequence| {
            handle_review(
                review,
                Uuid::from_u128(1),
                ContentType::Problem,
                ReviewCommand::Decide(Box::new(verdict(sequence, GuardrailStatus::Flagged))),
                None,
            )
            .expect("decides")
        };
        let first = decide(&review, 1).expect("recorded");
        apply_review(&mut review, &first);
        assert_eq!(decide(&review, 1), None, "a redelivery records nothing");
        review.submitted(3);
        assert_eq!(
            decide(&review, 1),
            None,
            "a verdict on a superseded submission is dropped"
        );
        assert!(decide(&review, 3).is_some());
        assert_eq!(
            verdict_id(Uuid::from_u128(3)),
            verdict_id(Uuid::from_u128(3))
        );
    }

    #[test]
    fn given_a_flagged_item_when_admins_claim_and_review_then_one_claims_and_only_they_decide() {
        let (alice, bob) = (Uuid::from_u128(10), Uuid::from_u128(11));
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let mut review = Review::default();
        review.submitted(1);
        assert_eq!(
            review.check_claim(alice),
            Err(DomainError::InvalidState(
                "only flagged content waits for review"
            ))
        );
        let item = Uuid::from_u128(77);
        review.judged(GuardrailStatus::Flagged, item);
        assert_eq!(
            handle_review(
                &review,
                Uuid::from_u128(1),
                ContentType::Problem,
                ReviewCommand::Claim {
                    admin: alice,
                    verdict_id: Uuid::from_u128(76),
                    at
                },
                None,
            ),
            Err(DomainError::InvalidState(
                "this item was superseded by an edit; review the newer one"
            )),
            "an admin acts on the submission they saw, not a newer one"
        );
        let claimed = handle_review(
            &review,
            Uuid::from_u128(1),
            ContentType::Problem,
            ReviewCommand::Claim {
                admin: alice,
                verdict_id: item,
                at,
            },
            None,
        )
        .expect("claims")
        .expect("an event");
        apply_review(&mut review, &claimed);
        assert_eq!(
            review.check_claim(alice),
            Ok(false),
            "claiming twice records nothing"
        );
        assert_eq!(
            review.check_claim(bob),
            Err(DomainError::AlreadyClaimed(
                "another admin is reviewing this item"
            ))
        );
        let decision =
            ReviewDecision::parse("approve", "Anti-fraud hotline for elders; legitimate")
                .expect("valid");
        assert_eq!(
            handle_review(
                &review,
                Uuid::from_u128(1),
                ContentType::Problem,
                ReviewCommand::Review {
                    admin: bob,
                    verdict_id: item,
                    decision: decision.clone(),
                    at
                },
                None
            ),
            Err(DomainError::Forbidden(
                "only the admin who claimed the item may review it"
            ))
        );
        let reviewed = handle_review(
            &review,
            Uuid::from_u128(1),
            ContentType::Problem,
            ReviewCommand::Review {
                admin: alice,
                verdict_id: item,
                decision,
                at,
            },
            None,
        )
        .expect("reviews")
        .expect("an event");
        apply_review(&mut review, &reviewed);
        assert_eq!(review.status(), Some(GuardrailStatus::Approved));
        assert!(ReviewDecision::parse("maybe", "long enough notes").is_err());
        assert!(ReviewDecision::parse("reject", "short").is_err());
    }
}
