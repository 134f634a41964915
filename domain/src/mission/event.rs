//! What a mission records (`docs/event-catalog.md`, "Missions").

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{command::ReleaseReason, spec::*};
use crate::{
    guardrail::{ReviewClaimed, ReviewOutcome, Reviewed, Verdict},
    taxonomy::{GuardrailStatus, ProblemDomain},
};

/// Events of the `Mission` aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum MissionEvent {
    /// A mission was created; it awaits the guardrail. Version 1.
    #[serde(rename_all = "camelCase")]
    MissionCreated {
        mission_id: Uuid,
        solution_id: Uuid,
        /// The solution's problem (for the problem feed's mission counts).
        problem_id: Uuid,
        created_by: Uuid,
        domain: ProblemDomain,
        spec: Box<MissionSpec>,
        status: MissionStatus,
        guardrail_status: GuardrailStatus,
        created_at: DateTime<Utc>,
    },
    /// Its agent replaced the mission's text; it awaits the guardrail again. Version 1.
    #[serde(rename_all = "camelCase")]
    MissionEdited {
        mission_id: Uuid,
        edited_by: Uuid,
        text: Box<MissionText>,
        guardrail_status: GuardrailStatus,
        edited_at: DateTime<Utc>,
    },
    /// The mission's status changed. Version 1.
    #[serde(rename_all = "camelCase")]
    MissionStatusChanged {
        mission_id: Uuid,
        from: MissionStatus,
        to: MissionStatus,
        changed_at: DateTime<Utc>,
    },
    /// A human claimed a slot. Version 1.
    #[serde(rename_all = "camelCase")]
    MissionClaimed {
        mission_id: Uuid,
        claim_id: Uuid,
        human_id: Uuid,
        claimed_at: DateTime<Utc>,
        deadline_at: DateTime<Utc>,
    },
    /// The claimant reported progress or notes. Version 1.
    #[serde(rename_all = "camelCase")]
    ClaimProgressed {
        mission_id: Uuid,
        claim_id: Uuid,
        human_id: Uuid,
        progress_percent: Option<u8>,
        notes: Option<String>,
        updated_at: DateTime<Utc>,
    },
    /// The claimant gave the mission up; the slot is free. Version 1.
    #[serde(rename_all = "camelCase")]
    ClaimAbandoned {
        mission_id: Uuid,
        claim_id: Uuid,
        human_id: Uuid,
        notes: Option<String>,
        abandoned_at: DateTime<Utc>,
    },
    /// An admin cancelled the mission; its active claims are released next. Version 1.
    #[serde(rename_all = "camelCase")]
    MissionCancelled {
        mission_id: Uuid,
        cancelled_by: Uuid,
        reason: String,
        cancelled_at: DateTime<Utc>,
    },
    /// The scheduler released a claim; the slot is free. Version 1.
    #[serde(rename_all = "camelCase")]
    ClaimReleased {
        mission_id: Uuid,
        claim_id: Uuid,
        human_id: Uuid,
        reason: ReleaseReason,
        released_at: DateTime<Utc>,
    },
    /// The claim's evidence was verified: the claim is completed and keeps its slot. Version 1.
    #[serde(rename_all = "camelCase")]
    ClaimCompleted {
        mission_id: Uuid,
        claim_id: Uuid,
        human_id: Uuid,
        evidence_id: Uuid,
        completed_at: DateTime<Utc>,
    },
    /// The guardrail judged the mission. Version 1.
    GuardrailDecided(Box<Verdict>),
    /// An admin claimed the flagged mission. Version 1.
    ReviewClaimed(ReviewClaimed),
    /// The claiming admin decided. Version 1.
    Reviewed(Reviewed),
}

impl From<ReviewOutcome> for MissionEvent {
    fn from(outcome: ReviewOutcome) -> Self {
        match outcome {
            ReviewOutcome::Decided(v) => Self::GuardrailDecided(v),
            ReviewOutcome::Claimed(c) => Self::ReviewClaimed(c),
            ReviewOutcome::Reviewed(r) => Self::Reviewed(r),
        }
    }
}

impl DomainEvent for MissionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::MissionCreated { .. } => "MissionCreated",
            Self::MissionEdited { .. } => "MissionEdited",
            Self::MissionStatusChanged { .. } => "MissionStatusChanged",
            Self::MissionClaimed { .. } => "MissionClaimed",
            Self::ClaimProgressed { .. } => "ClaimProgressed",
            Self::ClaimAbandoned { .. } => "ClaimAbandoned",
            Self::ClaimReleased { .. } => "ClaimReleased",
            Self::MissionCancelled { .. } => "MissionCancelled",
            Self::ClaimCompleted { .. } => "ClaimCompleted",
            Self::GuardrailDecided(_) => "GuardrailDecided",
            Self::ReviewClaimed(_) => "ReviewClaimed",
            Self::Reviewed(_) => "Reviewed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}
