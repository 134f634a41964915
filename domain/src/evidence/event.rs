//! What evidence records (`docs/event-catalog.md`, "Evidence").

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::checks::*;

/// Events of the `Evidence` aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EvidenceEvent {
    /// Evidence was submitted; it awaits verification. Version 1.
    #[serde(rename_all = "camelCase")]
    EvidenceSubmitted {
        evidence_id: Uuid,
        mission_id: Uuid,
        claim_id: Uuid,
        human_id: Uuid,
        files: Vec<StoredFile>,
        capture: Box<Capture>,
        notes: Option<String>,
        /// The mission's reward when the evidence was submitted (what verification pays from).
        token_reward: u32,
        submitted_at: DateTime<Utc>,
    },
    /// The automatic checks ran; the confidence routes the evidence (≥ 0.80 verified, < 0.50
    /// rejected, else peer review). Version 1.
    #[serde(rename_all = "camelCase")]
    EvidenceChecked {
        evidence_id: Uuid,
        checks: Checks,
        stage: Stage,
        checked_at: DateTime<Utc>,
    },
    /// A vision model assessed evidence in peer review; `stage` is where it routed it
    /// (`EvidenceVerified`/`EvidenceRejected` with source `vision` follows a decision). Version 1.
    #[serde(rename_all = "camelCase")]
    EvidenceVisionAssessed {
        evidence_id: Uuid,
        assessment: VisionAssessment,
        stage: Stage,
        assessed_at: DateTime<Utc>,
    },
    /// The submitter appealed the rejection. Version 1.
    #[serde(rename_all = "camelCase")]
    EvidenceAppealed {
        evidence_id: Uuid,
        human_id: Uuid,
        reason: String,
        appealed_at: DateTime<Utc>,
    },
    /// An admin resolved the appeal; `EvidenceVerified` (source `admin`) or `EvidenceRejected`
    /// follows. Version 1.
    #[serde(rename_all = "camelCase")]
    EvidenceAppealResolved {
        evidence_id: Uuid,
        resolved_by: Uuid,
        approved: bool,
        reasoning: String,
        resolved_at: DateTime<Utc>,
    },
    /// A peer voted; the reviewer earns 2 tokens (reward saga). Version 1.
    #[serde(rename_all = "camelCase")]
    PeerVoteCast {
        evidence_id: Uuid,
        review_id: Uuid,
        reviewer: Uuid,
        verdict: Verdict,
        confidence: f64,
        reasoning: String,
        cast_at: DateTime<Utc>,
    },
    /// The evidence is verified: the claimant earns `max(1, floor(tokenReward × confidence))` and
    /// the claim completes (reward saga). Version 1.
    #[serde(rename_all = "camelCase")]
    EvidenceVerified {
        evidence_id: Uuid,
        mission_id: Uuid,
        claim_id: Uuid,
        human_id: Uuid,
        /// `auto`, `peer` or `admin`.
        source: String,
        confidence: f64,
        token_reward: u32,
        verified_at: DateTime<Utc>,
    },
    /// The evidence is rejected (the claimant may appeal). Version 1.
    #[serde(rename_all = "camelCase")]
    EvidenceRejected {
        evidence_id: Uuid,
        source: String,
        confidence: f64,
        rejected_at: DateTime<Utc>,
    },
}

impl DomainEvent for EvidenceEvent {
    fn event_type(&self) -> String {
        match self {
            Self::EvidenceSubmitted { .. } => "EvidenceSubmitted",
            Self::EvidenceChecked { .. } => "EvidenceChecked",
            Self::EvidenceVisionAssessed { .. } => "EvidenceVisionAssessed",
            Self::PeerVoteCast { .. } => "PeerVoteCast",
            Self::EvidenceAppealed { .. } => "EvidenceAppealed",
            Self::EvidenceAppealResolved { .. } => "EvidenceAppealResolved",
            Self::EvidenceVerified { .. } => "EvidenceVerified",
            Self::EvidenceRejected { .. } => "EvidenceRejected",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
