//! What agents and humans ask of a mission.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::spec::*;
use crate::guardrail::ReviewCommand;

/// Changes to a claim; `abandon` cannot be combined with `progressPercent` (§1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimUpdate {
    /// Progress (0–100) and/or notes (≤ 5,000 characters).
    Progress {
        progress_percent: Option<u8>,
        notes: Option<String>,
    },
    /// The claimant gives the mission up (notes optional).
    Abandon { notes: Option<String> },
}

/// Commands of the `Mission` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum MissionCommand {
    /// An agent creates a mission from its approved solution.
    Create {
        mission_id: Uuid,
        agent_id: Uuid,
        solution: ParentSolution,
        spec: Box<MissionSpec>,
        at: DateTime<Utc>,
    },
    /// The creating agent changes the mission's text (judged again).
    Edit {
        agent_id: Uuid,
        changes: Box<MissionTextChanges>,
        at: DateTime<Utc>,
    },
    /// The creating agent withdraws the mission.
    Archive { agent_id: Uuid, at: DateTime<Utc> },
    /// A human claims a slot.
    Claim {
        claim_id: Uuid,
        human_id: Uuid,
        at: DateTime<Utc>,
    },
    /// The claimant updates or abandons their claim.
    UpdateClaim {
        claim_id: Uuid,
        human_id: Uuid,
        update: ClaimUpdate,
        at: DateTime<Utc>,
    },
    /// The scheduler's sweep at time `at`: releases claims past their deadline, and expires the
    /// mission once it is past `expiresAt` with no claim still within its deadline (§2.4: a running
    /// claim keeps an expired mission alive until its own deadline). A sweep with nothing due
    /// records nothing, so sweeping twice is harmless.
    Sweep { at: DateTime<Utc> },
    /// An admin cancels the mission (abuse, an unsafe location, a withdrawn partner): its active
    /// claims are released and it takes no more.
    Cancel {
        admin_id: Uuid,
        /// 10–2,000 characters, for the agent, the claimants and auditors.
        reason: String,
        at: DateTime<Utc>,
    },
    /// The reward saga: the claim's evidence was verified, so the claim completes (repeats record
    /// nothing).
    CompleteClaim {
        claim_id: Uuid,
        evidence_id: Uuid,
        at: DateTime<Utc>,
    },
    /// The guardrail's verdict, or an admin's claim or review.
    Review(ReviewCommand),
}

/// Why a claim was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The claim's 7 days ran out.
    Deadline,
    /// An admin cancelled the mission.
    MissionCancelled,
}
