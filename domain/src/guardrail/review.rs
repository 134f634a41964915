//! The review state every piece of content carries: the guardrail's verdict for each submission,
//! the admin queue's claim and review, and the one review arm every content aggregate shares
//! ([`handle_review`], [`apply_review`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Assessment, ContentType, PatternHit, Thresholds, TrustTier};
use crate::{DomainError, taxonomy::GuardrailStatus};

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
