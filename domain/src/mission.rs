//! The `Mission` aggregate: a task an agent derives from its approved solution, which humans nearby
//! claim and complete (`domain-reference.md` §1.7, §1.8, §2.4, §2.5; product.md "Missions").
//!
//! Rules:
//! - created by the agent that owns the solution, only from an `approved` solution (the command
//!   side looks the solution up in the log and passes what it found: [`ParentSolution`]); the
//!   mission copies the problem's domain; like all content it waits for the guardrail (`pending`);
//! - only the creating agent edits or archives it, and not while claims are active; an edit puts it
//!   back to `pending`;
//! - a human claims it only while it is approved, open and not past `expiresAt`; never more than
//!   `maxClaims` active claims, never two active claims of one human on it; a claim's deadline is
//!   7 days after it was made. (The limit of 3 active claims per human spans missions; the command
//!   side enforces it in the claim's transaction, ADR 0005.)
//! - the claimant reports progress or notes on an active claim before its deadline, or abandons it;
//! - the mission's status changes are explicit events: `open → claimed` when the last slot is
//!   taken, back to `open` when a slot frees, `archived` when withdrawn.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::{Aggregate, DomainEvent, event_sink::EventSink};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    DomainError,
    guardrail::{
        ContentType, Review, ReviewClaimed, ReviewCommand, ReviewOutcome, Reviewed, Verdict,
        apply_review, handle_review,
    },
    taxonomy::{GuardrailStatus, ProblemDomain},
    values::GeoPoint,
};

/// How long a claim lasts (§2.5: fixed, 7 days).
pub const CLAIM_DEADLINE: TimeDelta = TimeDelta::days(7);
/// The most claims one mission may take at once.
pub const MAX_CLAIMS_LIMIT: u16 = 100;
/// The largest reward one mission may pay.
pub const MAX_REWARD: u32 = 10_000;

/// How hard a mission is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Difficulty {
    Beginner,
    #[default]
    Intermediate,
    Advanced,
    Expert,
}

impl Difficulty {
    /// Every difficulty.
    pub const ALL: [Self; 4] = [
        Self::Beginner,
        Self::Intermediate,
        Self::Advanced,
        Self::Expert,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Beginner => "beginner",
            Self::Intermediate => "intermediate",
            Self::Advanced => "advanced",
            Self::Expert => "expert",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// One step of a mission's instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Positive.
    pub step: u32,
    /// 1–2,000 characters.
    pub text: String,
    #[serde(default)]
    pub optional: bool,
}

/// What kind of evidence a mission asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    Photo,
    Document,
    Video,
}

/// One piece of evidence a mission asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceRequirement {
    #[serde(rename = "type")]
    pub kind: EvidenceKind,
    /// 1–500 characters.
    pub description: String,
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// The text a mission's claimants follow (the part the guardrail judges; editable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MissionText {
    /// 1–500 characters.
    pub title: String,
    /// 10–5,000 characters.
    pub description: String,
    /// 1–50 steps.
    pub instructions: Vec<Step>,
    /// 1–20 items.
    pub evidence_required: Vec<EvidenceRequirement>,
    /// Up to 20 skills of 1–100 characters.
    pub required_skills: Vec<String>,
}

/// An edit of a mission's text; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MissionTextChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub instructions: Option<Vec<Step>>,
    pub evidence_required: Option<Vec<EvidenceRequirement>>,
    pub required_skills: Option<Vec<String>>,
}

impl MissionTextChanges {
    /// `text` with these changes.
    pub fn applied_to(&self, text: &MissionText) -> MissionText {
        MissionText {
            title: self.title.clone().unwrap_or_else(|| text.title.clone()),
            description: self
                .description
                .clone()
                .unwrap_or_else(|| text.description.clone()),
            instructions: self
                .instructions
                .clone()
                .unwrap_or_else(|| text.instructions.clone()),
            evidence_required: self
                .evidence_required
                .clone()
                .unwrap_or_else(|| text.evidence_required.clone()),
            required_skills: self
                .required_skills
                .clone()
                .unwrap_or_else(|| text.required_skills.clone()),
        }
    }
}

/// Everything an agent says about a mission when creating it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MissionSpec {
    #[serde(flatten)]
    pub text: MissionText,
    /// Up to 200 characters.
    pub location_name: Option<String>,
    pub location: Option<GeoPoint>,
    /// 1–200 km.
    pub location_radius_km: u16,
    /// 15–10,080 minutes.
    pub estimated_duration_minutes: u32,
    pub difficulty: Difficulty,
    /// Up to 50 characters.
    pub mission_type: Option<String>,
    /// 1–10,000 tokens.
    pub token_reward: u32,
    /// Not paid (§5.1); recorded for the agent's intent.
    pub bonus_for_quality: u32,
    /// 1–100.
    pub max_claims: u16,
    pub expires_at: DateTime<Utc>,
}

fn chars_within(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), DomainError> {
    let n = value.trim().chars().count();
    if n < min || value.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("{min}–{max} characters"),
        ));
    }
    Ok(())
}

impl MissionText {
    /// Checks the limits of §1.7.
    pub fn validate(&self) -> Result<(), DomainError> {
        chars_within("title", &self.title, 1, 500)?;
        chars_within("description", &self.description, 10, 5000)?;
        if self.instructions.is_empty() || self.instructions.len() > 50 {
            return Err(DomainError::invalid("instructions", "1–50 steps"));
        }
        for step in &self.instructions {
            if step.step == 0 {
                return Err(DomainError::invalid(
                    "instructions",
                    "steps are numbered from 1",
                ));
            }
            chars_within("instructions", &step.text, 1, 2000)?;
        }
        if self.evidence_required.is_empty() || self.evidence_required.len() > 20 {
            return Err(DomainError::invalid("evidenceRequired", "1–20 items"));
        }
        for item in &self.evidence_required {
            chars_within("evidenceRequired", &item.description, 1, 500)?;
        }
        if self.required_skills.len() > 20 {
            return Err(DomainError::invalid("requiredSkills", "at most 20 skills"));
        }
        for skill in &self.required_skills {
            chars_within("requiredSkills", skill, 1, 100)?;
        }
        Ok(())
    }

    /// Every public text of the mission, for the guardrail.
    pub fn judged_text(&self) -> String {
        let mut parts = vec![self.title.clone(), self.description.clone()];
        parts.extend(self.instructions.iter().map(|s| s.text.clone()));
        parts.extend(self.evidence_required.iter().map(|e| e.description.clone()));
        parts.extend(self.required_skills.iter().cloned());
        parts.join("\n")
    }
}

impl MissionSpec {
    /// Checks the limits of §1.7; `now` for "expires in the future".
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), DomainError> {
        self.text.validate()?;
        if let Some(name) = &self.location_name {
            chars_within("requiredLocationName", name, 1, 200)?;
        }
        if !(1..=200).contains(&self.location_radius_km) {
            return Err(DomainError::invalid("locationRadiusKm", "1–200 km"));
        }
        if !(15..=10_080).contains(&self.estimated_duration_minutes) {
            return Err(DomainError::invalid(
                "estimatedDurationMinutes",
                "15–10080 minutes",
            ));
        }
        if let Some(kind) = &self.mission_type {
            chars_within("missionType", kind, 1, 50)?;
        }
        if !(1..=MAX_REWARD).contains(&self.token_reward) {
            return Err(DomainError::invalid(
                "tokenReward",
                format!("1–{MAX_REWARD} tokens"),
            ));
        }
        if self.bonus_for_quality > MAX_REWARD {
            return Err(DomainError::invalid(
                "bonusForQuality",
                format!("0–{MAX_REWARD} tokens"),
            ));
        }
        if !(1..=MAX_CLAIMS_LIMIT).contains(&self.max_claims) {
            return Err(DomainError::invalid(
                "maxClaims",
                format!("1–{MAX_CLAIMS_LIMIT}"),
            ));
        }
        if self.expires_at <= now {
            return Err(DomainError::invalid("expiresAt", "must be in the future"));
        }
        Ok(())
    }
}

/// The solution a mission is created from, as the command side found it in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentSolution {
    /// No such solution.
    Missing,
    /// The solution exists: its owner, guardrail status and problem domain.
    Found {
        solution_id: Uuid,
        problem_id: Uuid,
        owner: Uuid,
        guardrail_status: Option<GuardrailStatus>,
        domain: ProblemDomain,
    },
}

/// A mission's status (explicit lifecycle events: `MissionStatusChanged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissionStatus {
    /// Takes claims.
    Open,
    /// Every slot is taken.
    Claimed,
    /// Withdrawn by its agent.
    Archived,
    /// Past `expiresAt` with no claim still running.
    Expired,
    /// Every slot's claim completed.
    Completed,
    /// Stopped by an admin; its active claims were released.
    Cancelled,
}

impl MissionStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Claimed => "claimed",
            Self::Archived => "archived",
            Self::Expired => "expired",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A claim's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    Active,
    Abandoned,
    /// Past its deadline, or its mission expired.
    Released,
    /// Its evidence was verified; the slot stays taken.
    Completed,
}

impl ClaimStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Abandoned => "abandoned",
            Self::Released => "released",
            Self::Completed => "completed",
        }
    }
}

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

/// A claim as decisions need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    human_id: Uuid,
    status: ClaimStatus,
    claimed_at: DateTime<Utc>,
    deadline_at: DateTime<Utc>,
    /// The evidence whose verification completed the claim.
    #[serde(default)]
    completed_by: Option<Uuid>,
}

/// The mission's state as far as decisions need it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mission {
    id: Option<Uuid>,
    owner: Option<Uuid>,
    status: Option<MissionStatus>,
    max_claims: u16,
    expires_at: Option<DateTime<Utc>>,
    claims: BTreeMap<Uuid, Claim>,
    version: i64,
    review: Review,
    text: Option<MissionText>,
    location: Option<GeoPoint>,
    radius_km: u16,
    token_reward: u32,
}

impl Mission {
    /// Whether a verdict on the submission at `source_sequence` would be recorded.
    pub fn accepts_verdict(&self, source_sequence: i64) -> bool {
        self.status != Some(MissionStatus::Archived) && self.review.accepts_verdict(source_sequence)
    }

    fn active_claims(&self) -> usize {
        self.claims
            .values()
            .filter(|c| c.status == ClaimStatus::Active)
            .count()
    }

    /// Slots taken: active claims and completed ones (a completed claim keeps its slot).
    fn occupied(&self) -> usize {
        self.claims
            .values()
            .filter(|c| matches!(c.status, ClaimStatus::Active | ClaimStatus::Completed))
            .count()
    }

    /// What the evidence checks need (with the claim's time), when `human_id` holds an active claim.
    pub fn facts_for(&self, human_id: Uuid) -> Option<crate::evidence::MissionFacts> {
        let claim = self
            .claims
            .values()
            .find(|c| c.human_id == human_id && c.status == ClaimStatus::Active)?;
        Some(crate::evidence::MissionFacts {
            location: self.location,
            radius_km: f64::from(self.radius_km),
            token_reward: self.token_reward,
            claimed_at: claim.claimed_at,
        })
    }

    /// Whether `human_id` may submit evidence at `at` (§2.5: an active claim, before its deadline,
    /// on a mission that has not expired).
    pub fn evidence_check(&self, human_id: Uuid, at: DateTime<Utc>) -> crate::evidence::ClaimCheck {
        use crate::evidence::ClaimCheck;
        // Past `expiresAt` a running claim keeps the mission alive (§2.4) until the sweep expires it.
        if self.status == Some(MissionStatus::Expired) {
            return ClaimCheck::MissionExpired;
        }
        match self
            .claims
            .iter()
            .find(|(_, c)| c.human_id == human_id && c.status == ClaimStatus::Active)
        {
            None => ClaimCheck::NoActiveClaim,
            Some((_, c)) if c.deadline_at <= at => ClaimCheck::DeadlinePassed,
            Some((claim_id, _)) => ClaimCheck::Active {
                claim_id: *claim_id,
            },
        }
    }

    /// The evidence whose verification completed claim `claim_id`, if it is completed: the one
    /// submission of the claim that is paid.
    pub fn completed_by(&self, claim_id: Uuid) -> Option<Uuid> {
        self.claims.get(&claim_id).and_then(|c| c.completed_by)
    }

    /// The human who holds claim `claim_id`, if it is this mission's.
    pub fn claimant(&self, claim_id: Uuid) -> Option<Uuid> {
        self.claims.get(&claim_id).map(|c| c.human_id)
    }

    /// The status the slots call for: completed when every slot's claim completed, claimed when
    /// every slot is taken, else open.
    fn status_for(&self) -> MissionStatus {
        let done = self
            .claims
            .values()
            .filter(|c| c.status == ClaimStatus::Completed)
            .count();
        if done >= usize::from(self.max_claims) {
            MissionStatus::Completed
        } else if self.occupied() >= usize::from(self.max_claims) {
            MissionStatus::Claimed
        } else {
            MissionStatus::Open
        }
    }

    /// Releases every active claim that `due` picks, for `reason`.
    async fn release_claims(
        &mut self,
        mission_id: Uuid,
        reason: ReleaseReason,
        at: DateTime<Utc>,
        sink: &EventSink<Self>,
        due: impl Fn(&Claim) -> bool,
    ) {
        let released: Vec<(Uuid, Uuid)> = self
            .claims
            .iter()
            .filter(|(_, c)| c.status == ClaimStatus::Active && due(c))
            .map(|(id, c)| (*id, c.human_id))
            .collect();
        for (claim_id, human_id) in released {
            sink.write(
                MissionEvent::ClaimReleased {
                    mission_id,
                    claim_id,
                    human_id,
                    reason,
                    released_at: at,
                },
                self,
            )
            .await;
        }
    }

    /// Claim `claim_id` of this mission.
    fn claim(&self, claim_id: Uuid) -> Result<Claim, DomainError> {
        self.claims
            .get(&claim_id)
            .copied()
            .ok_or(DomainError::NotFound("claim"))
    }

    async fn change_status(
        &mut self,
        mission_id: Uuid,
        to: MissionStatus,
        at: DateTime<Utc>,
        sink: &EventSink<Self>,
    ) {
        if let Some(from) = self.status.filter(|from| *from != to) {
            sink.write(
                MissionEvent::MissionStatusChanged {
                    mission_id,
                    from,
                    to,
                    changed_at: at,
                },
                self,
            )
            .await;
        }
    }

    fn owned_by(&self, agent_id: Uuid, what: &'static str) -> Result<Uuid, DomainError> {
        let mission_id = self.id.ok_or(DomainError::NotFound("mission"))?;
        if self.owner != Some(agent_id) {
            return Err(DomainError::Forbidden(what));
        }
        if self.status == Some(MissionStatus::Archived) {
            return Err(DomainError::InvalidState("the mission is archived"));
        }
        if self.active_claims() > 0 {
            return Err(DomainError::InvalidState(
                "the mission has active claims; it can change only when none are active",
            ));
        }
        Ok(mission_id)
    }
}

impl Aggregate for Mission {
    const TYPE: &'static str = "Mission";
    type Command = MissionCommand;
    type Event = MissionEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            MissionCommand::Create {
                mission_id,
                agent_id,
                solution,
                spec,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists("mission"));
                }
                let ParentSolution::Found {
                    solution_id,
                    problem_id,
                    owner,
                    guardrail_status,
                    domain,
                } = solution
                else {
                    return Err(DomainError::invalid("solutionId", "no such solution"));
                };
                if owner != agent_id {
                    return Err(DomainError::Forbidden(
                        "only the agent that proposed a solution may create missions from it",
                    ));
                }
                if guardrail_status != Some(GuardrailStatus::Approved) {
                    return Err(DomainError::InvalidState(
                        "missions are created from approved solutions only",
                    ));
                }
                spec.validate(at)?;
                let event = MissionEvent::MissionCreated {
                    mission_id,
                    solution_id,
                    problem_id,
                    created_by: agent_id,
                    domain,
                    spec,
                    status: MissionStatus::Open,
                    guardrail_status: GuardrailStatus::Pending,
                    created_at: at,
                };
                sink.write(event, self).await;
            }
            MissionCommand::Edit {
                agent_id,
                changes,
                at,
            } => {
                let mission_id = self.owned_by(
                    agent_id,
                    "only the agent that created a mission may edit it",
                )?;
                let current = self.text.clone().unwrap_or_else(|| MissionText {
                    title: String::new(),
                    description: String::new(),
                    instructions: vec![],
                    evidence_required: vec![],
                    required_skills: vec![],
                });
                let text = Box::new(changes.applied_to(&current));
                if *text == current {
                    return Err(DomainError::invalid(
                        "body",
                        "an edit must change at least one field",
                    ));
                }
                text.validate()?;
                sink.write(
                    MissionEvent::MissionEdited {
                        mission_id,
                        edited_by: agent_id,
                        text,
                        guardrail_status: GuardrailStatus::Pending,
                        edited_at: at,
                    },
                    self,
                )
                .await;
            }
            MissionCommand::Archive { agent_id, at } => {
                let mission_id = self.owned_by(
                    agent_id,
                    "only the agent that created a mission may archive it",
                )?;
                self.change_status(mission_id, MissionStatus::Archived, at, sink)
                    .await;
            }
            MissionCommand::Claim {
                claim_id,
                human_id,
                at,
            } => {
                let mission_id = self.id.ok_or(DomainError::NotFound("mission"))?;
                if self.review.status() != Some(GuardrailStatus::Approved) {
                    return Err(DomainError::NotFound("mission"));
                }
                if self.status == Some(MissionStatus::Archived) {
                    return Err(DomainError::InvalidState("the mission is archived"));
                }
                if self.status == Some(MissionStatus::Expired)
                    || self.expires_at.is_some_and(|e| e <= at)
                {
                    return Err(DomainError::InvalidState("the mission has expired"));
                }
                if self.claims.contains_key(&claim_id) {
                    return Err(DomainError::AlreadyExists("claim"));
                }
                if self
                    .claims
                    .values()
                    .any(|c| c.human_id == human_id && c.status == ClaimStatus::Active)
                {
                    return Err(DomainError::InvalidState(
                        "you already have an active claim on this mission",
                    ));
                }
                if self
                    .claims
                    .values()
                    .any(|c| c.human_id == human_id && c.status == ClaimStatus::Completed)
                {
                    return Err(DomainError::InvalidState(
                        "you have completed this mission already",
                    ));
                }
                if self.status == Some(MissionStatus::Completed) {
                    return Err(DomainError::InvalidState("the mission is completed"));
                }
                if self.status == Some(MissionStatus::Cancelled) {
                    return Err(DomainError::InvalidState("the mission was cancelled"));
                }
                if self.occupied() >= usize::from(self.max_claims) {
                    return Err(DomainError::AlreadyClaimed(
                        "every slot of this mission is claimed",
                    ));
                }
                sink.write(
                    MissionEvent::MissionClaimed {
                        mission_id,
                        claim_id,
                        human_id,
                        claimed_at: at,
                        deadline_at: at + CLAIM_DEADLINE,
                    },
                    self,
                )
                .await;
                // The sink applied the claim: the slots count it.
                let to = self.status_for();
                self.change_status(mission_id, to, at, sink).await;
            }
            MissionCommand::UpdateClaim {
                claim_id,
                human_id,
                update,
                at,
            } => {
                let mission_id = self.id.ok_or(DomainError::NotFound("mission"))?;
                let claim = self.claim(claim_id)?;
                if claim.human_id != human_id {
                    return Err(DomainError::Forbidden(
                        "only the claimant may change a claim",
                    ));
                }
                if claim.status != ClaimStatus::Active {
                    return Err(DomainError::InvalidState("the claim is no longer active"));
                }
                let notes_ok = |notes: &Option<String>| {
                    if notes.as_ref().is_some_and(|n| n.chars().count() > 5000) {
                        Err(DomainError::invalid("notes", "at most 5000 characters"))
                    } else {
                        Ok(())
                    }
                };
                match update {
                    ClaimUpdate::Progress {
                        progress_percent,
                        notes,
                    } => {
                        notes_ok(&notes)?;
                        if progress_percent.is_none() && notes.is_none() {
                            return Err(DomainError::invalid(
                                "body",
                                "give progressPercent, notes, or abandon",
                            ));
                        }
                        if progress_percent.is_some_and(|p| p > 100) {
                            return Err(DomainError::invalid("progressPercent", "0–100"));
                        }
                        if claim.deadline_at <= at {
                            return Err(DomainError::InvalidState(
                                "the claim's deadline has passed",
                            ));
                        }
                        sink.write(
                            MissionEvent::ClaimProgressed {
                                mission_id,
                                claim_id,
                                human_id,
                                progress_percent,
                                notes,
                                updated_at: at,
                            },
                            self,
                        )
                        .await;
                    }
                    ClaimUpdate::Abandon { notes } => {
                        notes_ok(&notes)?;
                        sink.write(
                            MissionEvent::ClaimAbandoned {
                                mission_id,
                                claim_id,
                                human_id,
                                notes,
                                abandoned_at: at,
                            },
                            self,
                        )
                        .await;
                        if self.status == Some(MissionStatus::Claimed) {
                            let to = self.status_for();
                            self.change_status(mission_id, to, at, sink).await;
                        }
                    }
                }
            }
            MissionCommand::Sweep { at } => {
                let mission_id = self.id.ok_or(DomainError::NotFound("mission"))?;
                if matches!(
                    self.status,
                    Some(
                        MissionStatus::Archived | MissionStatus::Expired | MissionStatus::Completed
                    )
                ) {
                    return Ok(());
                }
                self.release_claims(mission_id, ReleaseReason::Deadline, at, sink, |c| {
                    c.deadline_at <= at
                })
                .await;
                let to = if self.expires_at.is_some_and(|e| e <= at) && self.active_claims() == 0 {
                    MissionStatus::Expired
                } else {
                    self.status_for()
                };
                self.change_status(mission_id, to, at, sink).await;
            }
            MissionCommand::Cancel {
                admin_id,
                reason,
                at,
            } => {
                let mission_id = self.id.ok_or(DomainError::NotFound("mission"))?;
                if !matches!(
                    self.status,
                    Some(MissionStatus::Open | MissionStatus::Claimed)
                ) {
                    return Err(DomainError::InvalidState(
                        "only an open or claimed mission can be cancelled",
                    ));
                }
                chars_within("reason", &reason, 10, 2000)?;
                sink.write(
                    MissionEvent::MissionCancelled {
                        mission_id,
                        cancelled_by: admin_id,
                        reason,
                        cancelled_at: at,
                    },
                    self,
                )
                .await;
                self.release_claims(
                    mission_id,
                    ReleaseReason::MissionCancelled,
                    at,
                    sink,
                    |_| true,
                )
                .await;
                self.change_status(mission_id, MissionStatus::Cancelled, at, sink)
                    .await;
            }
            MissionCommand::CompleteClaim {
                claim_id,
                evidence_id,
                at,
            } => {
                let mission_id = self.id.ok_or(DomainError::NotFound("mission"))?;
                let claim = self.claim(claim_id)?;
                // Only an active claim completes, once: the first verified submission completes it
                // (and is the one paid); a claim that ended (abandoned, released) records nothing.
                if claim.status != ClaimStatus::Active {
                    return Ok(());
                }
                sink.write(
                    MissionEvent::ClaimCompleted {
                        mission_id,
                        claim_id,
                        human_id: claim.human_id,
                        evidence_id,
                        completed_at: at,
                    },
                    self,
                )
                .await;
                if !matches!(
                    self.status,
                    Some(MissionStatus::Open | MissionStatus::Claimed)
                ) {
                    // An archived or expired mission stays so.
                    return Ok(());
                }
                let to = self.status_for();
                self.change_status(mission_id, to, at, sink).await;
            }
            MissionCommand::Review(command) => {
                let mission_id = self.id.ok_or(DomainError::NotFound("mission"))?;
                if self.status == Some(MissionStatus::Archived) {
                    return match command {
                        ReviewCommand::Decide(_) => Ok(()),
                        _ => Err(DomainError::InvalidState("the mission is archived")),
                    };
                }
                if let Some(outcome) =
                    handle_review(&self.review, mission_id, ContentType::Mission, command)?
                {
                    sink.write(outcome.into(), self).await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            MissionEvent::MissionCreated {
                mission_id,
                created_by,
                spec,
                status,
                ..
            } => {
                self.id = Some(mission_id);
                self.owner = Some(created_by);
                self.status = Some(status);
                self.max_claims = spec.max_claims;
                self.expires_at = Some(spec.expires_at);
                self.location = spec.location;
                self.radius_km = spec.location_radius_km;
                self.token_reward = spec.token_reward;
                self.text = Some(spec.text);
                self.review.submitted(self.version);
            }
            MissionEvent::MissionEdited { text, .. } => {
                self.text = Some(*text);
                self.review.submitted(self.version);
            }
            MissionEvent::MissionStatusChanged { to, .. } => self.status = Some(to),
            MissionEvent::MissionClaimed {
                claim_id,
                human_id,
                claimed_at,
                deadline_at,
                ..
            } => {
                self.claims.insert(
                    claim_id,
                    Claim {
                        human_id,
                        status: ClaimStatus::Active,
                        claimed_at,
                        deadline_at,
                        completed_by: None,
                    },
                );
            }
            MissionEvent::ClaimCompleted {
                claim_id,
                evidence_id,
                ..
            } => {
                if let Some(claim) = self.claims.get_mut(&claim_id) {
                    claim.status = ClaimStatus::Completed;
                    claim.completed_by = Some(evidence_id);
                }
            }
            MissionEvent::ClaimProgressed { .. } => {}
            MissionEvent::ClaimAbandoned { claim_id, .. } => {
                if let Some(claim) = self.claims.get_mut(&claim_id) {
                    claim.status = ClaimStatus::Abandoned;
                }
            }
            MissionEvent::MissionCancelled { .. } => {}
            MissionEvent::ClaimReleased { claim_id, .. } => {
                if let Some(claim) = self.claims.get_mut(&claim_id) {
                    claim.status = ClaimStatus::Released;
                }
            }
            MissionEvent::GuardrailDecided(v) => {
                apply_review(&mut self.review, &ReviewOutcome::Decided(v))
            }
            MissionEvent::ReviewClaimed(c) => {
                apply_review(&mut self.review, &ReviewOutcome::Claimed(c))
            }
            MissionEvent::Reviewed(r) => {
                apply_review(&mut self.review, &ReviewOutcome::Reviewed(r))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::guardrail::{TrustPolicy, TrustTier, verdict_id};

    const MISSION: Uuid = Uuid::from_u128(10);
    const SOLUTION: Uuid = Uuid::from_u128(20);
    const PROBLEM: Uuid = Uuid::from_u128(21);
    const AGENT: Uuid = Uuid::from_u128(30);
    const ANA: Uuid = Uuid::from_u128(40);
    const BEN: Uuid = Uuid::from_u128(41);
    const CLAIM_A: Uuid = Uuid::from_u128(50);
    const CLAIM_B: Uuid = Uuid::from_u128(51);

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("valid")
    }

    fn text() -> MissionText {
        MissionText {
            title: "Test the water of the ward 4 well".into(),
            description:
                "Take a sample from the well, run the strip test and photograph the result.".into(),
            instructions: vec![Step {
                step: 1,
                text: "Collect 100 ml in the clean bottle".into(),
                optional: false,
            }],
            evidence_required: vec![EvidenceRequirement {
                kind: EvidenceKind::Photo,
                description: "The strip next to the bottle".into(),
                required: true,
            }],
            required_skills: vec!["water testing".into()],
        }
    }

    fn spec(max_claims: u16) -> MissionSpec {
        MissionSpec {
            text: text(),
            location_name: Some("Ward 4".into()),
            location: Some(GeoPoint::parse(-1.29, 36.82).expect("point")),
            location_radius_km: 5,
            estimated_duration_minutes: 60,
            difficulty: Difficulty::Beginner,
            mission_type: None,
            token_reward: 25,
            bonus_for_quality: 0,
            max_claims,
            expires_at: at() + TimeDelta::days(30),
        }
    }

    fn approved_solution() -> ParentSolution {
        ParentSolution::Found {
            solution_id: SOLUTION,
            problem_id: PROBLEM,
            owner: AGENT,
            guardrail_status: Some(GuardrailStatus::Approved),
            domain: ProblemDomain::CleanWaterSanitation,
        }
    }

    fn create(solution: ParentSolution, max_claims: u16) -> MissionCommand {
        MissionCommand::Create {
            mission_id: MISSION,
            agent_id: AGENT,
            solution,
            spec: Box::new(spec(max_claims)),
            at: at(),
        }
    }

    fn created(max_claims: u16) -> MissionEvent {
        MissionEvent::MissionCreated {
            mission_id: MISSION,
            solution_id: SOLUTION,
            problem_id: PROBLEM,
            created_by: AGENT,
            domain: ProblemDomain::CleanWaterSanitation,
            spec: Box::new(spec(max_claims)),
            status: MissionStatus::Open,
            guardrail_status: GuardrailStatus::Pending,
            created_at: at(),
        }
    }

    fn approved() -> MissionEvent {
        MissionEvent::GuardrailDecided(Box::new(Verdict {
            content_id: MISSION,
            content_type: ContentType::Mission,
            author_agent_id: AGENT,
            verdict_id: verdict_id(Uuid::from_u128(99)),
            source_sequence: 1,
            decision: GuardrailStatus::Approved,
            layer_a: vec![],
            assessment: None,
            trust_tier: TrustTier::Verified,
            thresholds: TrustPolicy::default().thresholds(TrustTier::Verified),
            classifier: "test@1".into(),
            cache_hit: false,
            duration_ms: 1,
            reasons: vec![],
            duplicate_of: None,
            decided_at: at(),
        }))
    }

    fn claim(claim_id: Uuid, human_id: Uuid) -> MissionCommand {
        MissionCommand::Claim {
            claim_id,
            human_id,
            at: at(),
        }
    }

    fn claimed(claim_id: Uuid, human_id: Uuid) -> MissionEvent {
        MissionEvent::MissionClaimed {
            mission_id: MISSION,
            claim_id,
            human_id,
            claimed_at: at(),
            deadline_at: at() + CLAIM_DEADLINE,
        }
    }

    fn status(from: MissionStatus, to: MissionStatus) -> MissionEvent {
        MissionEvent::MissionStatusChanged {
            mission_id: MISSION,
            from,
            to,
            changed_at: at(),
        }
    }

    fn abandon(claim_id: Uuid, human_id: Uuid) -> MissionCommand {
        MissionCommand::UpdateClaim {
            claim_id,
            human_id,
            update: ClaimUpdate::Abandon { notes: None },
            at: at(),
        }
    }

    #[test]
    fn given_an_approved_solution_when_its_agent_creates_a_mission_then_it_is_open_and_pending() {
        TestFramework::<Mission>::with(())
            .given_no_previous_events()
            .when(create(approved_solution(), 1))
            .then_expect_events(vec![created(1)]);
    }

    #[test]
    fn given_a_solution_not_approved_or_not_owned_when_creating_then_refused() {
        let pending = ParentSolution::Found {
            solution_id: SOLUTION,
            problem_id: PROBLEM,
            owner: AGENT,
            guardrail_status: Some(GuardrailStatus::Pending),
            domain: ProblemDomain::CleanWaterSanitation,
        };
        TestFramework::<Mission>::with(())
            .given_no_previous_events()
            .when(create(pending, 1))
            .then_expect_error(DomainError::InvalidState(
                "missions are created from approved solutions only",
            ));
        let someone_elses = ParentSolution::Found {
            solution_id: SOLUTION,
            problem_id: PROBLEM,
            owner: Uuid::from_u128(31),
            guardrail_status: Some(GuardrailStatus::Approved),
            domain: ProblemDomain::CleanWaterSanitation,
        };
        TestFramework::<Mission>::with(())
            .given_no_previous_events()
            .when(create(someone_elses, 1))
            .then_expect_error(DomainError::Forbidden(
                "only the agent that proposed a solution may create missions from it",
            ));
        TestFramework::<Mission>::with(())
            .given_no_previous_events()
            .when(create(ParentSolution::Missing, 1))
            .then_expect_error(DomainError::invalid("solutionId", "no such solution"));
    }

    #[test]
    fn given_any_spec_when_a_limit_is_broken_then_the_field_is_named() {
        let now = at();
        type Breaks = Box<dyn Fn(&mut MissionSpec)>;
        let cases: Vec<(&str, Breaks)> = vec![
            ("title", Box::new(|s| s.text.title = " ".into())),
            (
                "description",
                Box::new(|s| s.text.description = "short".into()),
            ),
            ("instructions", Box::new(|s| s.text.instructions.clear())),
            (
                "evidenceRequired",
                Box::new(|s| s.text.evidence_required.clear()),
            ),
            (
                "requiredSkills",
                Box::new(|s| s.text.required_skills = vec!["x".into(); 21]),
            ),
            ("locationRadiusKm", Box::new(|s| s.location_radius_km = 201)),
            (
                "estimatedDurationMinutes",
                Box::new(|s| s.estimated_duration_minutes = 10),
            ),
            ("tokenReward", Box::new(|s| s.token_reward = 0)),
            ("maxClaims", Box::new(|s| s.max_claims = 0)),
            ("expiresAt", Box::new(move |s| s.expires_at = now)),
        ];
        for (field, break_it) in cases {
            let mut s = spec(1);
            break_it(&mut s);
            match s.validate(now) {
                Err(DomainError::InvalidValue { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert_eq!(spec(1).validate(now), Ok(()));
    }

    #[test]
    fn given_a_pending_mission_when_a_human_claims_then_it_is_not_found() {
        TestFramework::<Mission>::with(())
            .given(vec![created(1)])
            .when(claim(CLAIM_A, ANA))
            .then_expect_error(DomainError::NotFound("mission"));
    }

    #[test]
    fn given_an_approved_mission_with_one_slot_when_claimed_then_claimed_and_full() {
        TestFramework::<Mission>::with(())
            .given(vec![created(1), approved()])
            .when(claim(CLAIM_A, ANA))
            .then_expect_events(vec![
                claimed(CLAIM_A, ANA),
                status(MissionStatus::Open, MissionStatus::Claimed),
            ]);
    }

    #[test]
    fn given_a_full_mission_when_another_human_claims_then_already_claimed() {
        TestFramework::<Mission>::with(())
            .given(vec![
                created(1),
                approved(),
                claimed(CLAIM_A, ANA),
                status(MissionStatus::Open, MissionStatus::Claimed),
            ])
            .when(claim(CLAIM_B, BEN))
            .then_expect_error(DomainError::AlreadyClaimed(
                "every slot of this mission is claimed",
            ));
    }

    #[test]
    fn given_two_slots_when_one_human_claims_twice_then_the_second_is_refused() {
        TestFramework::<Mission>::with(())
            .given(vec![created(2), approved(), claimed(CLAIM_A, ANA)])
            .when(claim(CLAIM_B, ANA))
            .then_expect_error(DomainError::InvalidState(
                "you already have an active claim on this mission",
            ));
        TestFramework::<Mission>::with(())
            .given(vec![created(2), approved(), claimed(CLAIM_A, ANA)])
            .when(claim(CLAIM_B, BEN))
            .then_expect_events(vec![
                claimed(CLAIM_B, BEN),
                status(MissionStatus::Open, MissionStatus::Claimed),
            ]);
    }

    #[test]
    fn given_an_expired_or_archived_mission_when_claimed_then_refused() {
        let late = MissionCommand::Claim {
            claim_id: CLAIM_A,
            human_id: ANA,
            at: at() + TimeDelta::days(31),
        };
        TestFramework::<Mission>::with(())
            .given(vec![created(1), approved()])
            .when(late)
            .then_expect_error(DomainError::InvalidState("the mission has expired"));
        TestFramework::<Mission>::with(())
            .given(vec![
                created(1),
                approved(),
                status(MissionStatus::Open, MissionStatus::Archived),
            ])
            .when(claim(CLAIM_A, ANA))
            .then_expect_error(DomainError::InvalidState("the mission is archived"));
    }

    #[test]
    fn given_a_full_mission_when_the_claimant_abandons_then_the_slot_opens_again() {
        TestFramework::<Mission>::with(())
            .given(vec![
                created(1),
                approved(),
                claimed(CLAIM_A, ANA),
                status(MissionStatus::Open, MissionStatus::Claimed),
            ])
            .when(abandon(CLAIM_A, ANA))
            .then_expect_events(vec![
                MissionEvent::ClaimAbandoned {
                    mission_id: MISSION,
                    claim_id: CLAIM_A,
                    human_id: ANA,
                    notes: None,
                    abandoned_at: at(),
                },
                status(MissionStatus::Claimed, MissionStatus::Open),
            ]);
    }

    #[test]
    fn given_a_claim_when_someone_else_or_a_finished_claim_is_updated_then_refused() {
        TestFramework::<Mission>::with(())
            .given(vec![created(2), approved(), claimed(CLAIM_A, ANA)])
            .when(abandon(CLAIM_A, BEN))
            .then_expect_error(DomainError::Forbidden(
                "only the claimant may change a claim",
            ));
        TestFramework::<Mission>::with(())
            .given(vec![
                created(2),
                approved(),
                claimed(CLAIM_A, ANA),
                MissionEvent::ClaimAbandoned {
                    mission_id: MISSION,
                    claim_id: CLAIM_A,
                    human_id: ANA,
                    notes: None,
                    abandoned_at: at(),
                },
            ])
            .when(abandon(CLAIM_A, ANA))
            .then_expect_error(DomainError::InvalidState("the claim is no longer active"));
    }

    #[test]
    fn given_an_active_claim_when_progress_is_reported_then_recorded_until_the_deadline() {
        let progress = |at| MissionCommand::UpdateClaim {
            claim_id: CLAIM_A,
            human_id: ANA,
            update: ClaimUpdate::Progress {
                progress_percent: Some(50),
                notes: Some("Sample taken".into()),
            },
            at,
        };
        TestFramework::<Mission>::with(())
            .given(vec![created(2), approved(), claimed(CLAIM_A, ANA)])
            .when(progress(at()))
            .then_expect_events(vec![MissionEvent::ClaimProgressed {
                mission_id: MISSION,
                claim_id: CLAIM_A,
                human_id: ANA,
                progress_percent: Some(50),
                notes: Some("Sample taken".into()),
                updated_at: at(),
            }]);
        TestFramework::<Mission>::with(())
            .given(vec![created(2), approved(), claimed(CLAIM_A, ANA)])
            .when(progress(at() + CLAIM_DEADLINE))
            .then_expect_error(DomainError::InvalidState("the claim's deadline has passed"));
    }

    #[test]
    fn given_active_claims_when_its_agent_edits_or_archives_then_refused_and_otherwise_allowed() {
        let retitled = MissionText {
            title: "Test the water of the ward 5 well".into(),
            ..text()
        };
        let edit = MissionCommand::Edit {
            agent_id: AGENT,
            changes: Box::new(MissionTextChanges {
                title: Some(retitled.title.clone()),
                ..MissionTextChanges::default()
            }),
            at: at(),
        };
        TestFramework::<Mission>::with(())
            .given(vec![created(2), approved(), claimed(CLAIM_A, ANA)])
            .when(edit.clone())
            .then_expect_error(DomainError::InvalidState(
                "the mission has active claims; it can change only when none are active",
            ));
        TestFramework::<Mission>::with(())
            .given(vec![created(2), approved()])
            .when(edit)
            .then_expect_events(vec![MissionEvent::MissionEdited {
                mission_id: MISSION,
                edited_by: AGENT,
                text: Box::new(retitled),
                guardrail_status: GuardrailStatus::Pending,
                edited_at: at(),
            }]);
        TestFramework::<Mission>::with(())
            .given(vec![created(2), approved()])
            .when(MissionCommand::Edit {
                agent_id: AGENT,
                changes: Box::new(MissionTextChanges {
                    title: Some(text().title),
                    ..MissionTextChanges::default()
                }),
                at: at(),
            })
            .then_expect_error(DomainError::invalid(
                "body",
                "an edit must change at least one field",
            ));
        TestFramework::<Mission>::with(())
            .given(vec![created(2), approved()])
            .when(MissionCommand::Archive {
                agent_id: AGENT,
                at: at(),
            })
            .then_expect_events(vec![status(MissionStatus::Open, MissionStatus::Archived)]);
        TestFramework::<Mission>::with(())
            .given(vec![created(2), approved()])
            .when(MissionCommand::Archive {
                agent_id: Uuid::from_u128(31),
                at: at(),
            })
            .then_expect_error(DomainError::Forbidden(
                "only the agent that created a mission may archive it",
            ));
    }

    #[test]
    fn given_an_edited_mission_when_claimed_before_its_new_verdict_then_not_found() {
        TestFramework::<Mission>::with(())
            .given(vec![
                created(2),
                approved(),
                MissionEvent::MissionEdited {
                    mission_id: MISSION,
                    edited_by: AGENT,
                    text: Box::new(text()),
                    guardrail_status: GuardrailStatus::Pending,
                    edited_at: at(),
                },
            ])
            .when(claim(CLAIM_A, ANA))
            .then_expect_error(DomainError::NotFound("mission"));
    }

    #[test]
    fn given_a_claim_past_its_deadline_when_swept_then_released_and_the_slot_opens() {
        let sweep = MissionCommand::Sweep {
            at: at() + CLAIM_DEADLINE,
        };
        TestFramework::<Mission>::with(())
            .given(vec![
                created(1),
                approved(),
                claimed(CLAIM_A, ANA),
                status(MissionStatus::Open, MissionStatus::Claimed),
            ])
            .when(sweep)
            .then_expect_events(vec![
                MissionEvent::ClaimReleased {
                    mission_id: MISSION,
                    claim_id: CLAIM_A,
                    human_id: ANA,
                    reason: ReleaseReason::Deadline,
                    released_at: at() + CLAIM_DEADLINE,
                },
                MissionEvent::MissionStatusChanged {
                    mission_id: MISSION,
                    from: MissionStatus::Claimed,
                    to: MissionStatus::Open,
                    changed_at: at() + CLAIM_DEADLINE,
                },
            ]);
    }

    #[test]
    fn given_nothing_due_when_swept_then_nothing_is_recorded() {
        TestFramework::<Mission>::with(())
            .given(vec![created(2), approved(), claimed(CLAIM_A, ANA)])
            .when(MissionCommand::Sweep {
                at: at() + TimeDelta::days(1),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn given_an_expired_mission_when_swept_then_expired_only_once_no_claim_is_running() {
        let expiry = at() + TimeDelta::days(30);
        let running = vec![created(2), approved(), claimed(CLAIM_A, ANA)];
        // Past expiry but the claim made at() ran out long ago: released, then expired.
        TestFramework::<Mission>::with(())
            .given(running.clone())
            .when(MissionCommand::Sweep { at: expiry })
            .then_expect_events(vec![
                MissionEvent::ClaimReleased {
                    mission_id: MISSION,
                    claim_id: CLAIM_A,
                    human_id: ANA,
                    reason: ReleaseReason::Deadline,
                    released_at: expiry,
                },
                MissionEvent::MissionStatusChanged {
                    mission_id: MISSION,
                    from: MissionStatus::Open,
                    to: MissionStatus::Expired,
                    changed_at: expiry,
                },
            ]);
        // A claim made a day before expiry keeps the mission alive until its own deadline.
        let late_claim = MissionEvent::MissionClaimed {
            mission_id: MISSION,
            claim_id: CLAIM_B,
            human_id: BEN,
            claimed_at: expiry - TimeDelta::days(1),
            deadline_at: expiry - TimeDelta::days(1) + CLAIM_DEADLINE,
        };
        TestFramework::<Mission>::with(())
            .given(vec![created(2), approved(), late_claim])
            .when(MissionCommand::Sweep { at: expiry })
            .then_expect_events(vec![]);
        TestFramework::<Mission>::with(())
            .given(vec![
                created(2),
                approved(),
                MissionEvent::MissionStatusChanged {
                    mission_id: MISSION,
                    from: MissionStatus::Open,
                    to: MissionStatus::Expired,
                    changed_at: expiry,
                },
            ])
            .when(MissionCommand::Sweep {
                at: expiry + TimeDelta::days(1),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn given_a_claim_when_its_evidence_is_verified_then_it_completes_once_and_so_does_a_full_mission()
     {
        let given = vec![
            created(1),
            approved(),
            claimed(CLAIM_A, ANA),
            status(MissionStatus::Open, MissionStatus::Claimed),
        ];
        let complete = MissionCommand::CompleteClaim {
            claim_id: CLAIM_A,
            evidence_id: Uuid::from_u128(60),
            at: at(),
        };
        let completed = MissionEvent::ClaimCompleted {
            mission_id: MISSION,
            claim_id: CLAIM_A,
            human_id: ANA,
            evidence_id: Uuid::from_u128(60),
            completed_at: at(),
        };
        TestFramework::<Mission>::with(())
            .given(given.clone())
            .when(complete.clone())
            .then_expect_events(vec![
                completed.clone(),
                status(MissionStatus::Claimed, MissionStatus::Completed),
            ]);
        let mut done = given;
        done.push(completed);
        done.push(status(MissionStatus::Claimed, MissionStatus::Completed));
        TestFramework::<Mission>::with(())
            .given(done.clone())
            .when(complete)
            .then_expect_events(vec![]);
        TestFramework::<Mission>::with(())
            .given(done)
            .when(claim(CLAIM_B, BEN))
            .then_expect_error(DomainError::InvalidState("the mission is completed"));
    }

    #[test]
    fn given_a_claim_that_ended_or_a_person_who_completed_when_completing_or_claiming_again_then_nothing_or_refused()
     {
        let abandoned = MissionEvent::ClaimAbandoned {
            mission_id: MISSION,
            claim_id: CLAIM_A,
            human_id: ANA,
            notes: None,
            abandoned_at: at(),
        };
        TestFramework::<Mission>::with(())
            .given(vec![
                created(2),
                approved(),
                claimed(CLAIM_A, ANA),
                abandoned,
            ])
            .when(MissionCommand::CompleteClaim {
                claim_id: CLAIM_A,
                evidence_id: Uuid::from_u128(60),
                at: at(),
            })
            .then_expect_events(vec![]);
        let completed = MissionEvent::ClaimCompleted {
            mission_id: MISSION,
            claim_id: CLAIM_A,
            human_id: ANA,
            evidence_id: Uuid::from_u128(60),
            completed_at: at(),
        };
        TestFramework::<Mission>::with(())
            .given(vec![
                created(2),
                approved(),
                claimed(CLAIM_A, ANA),
                completed,
            ])
            .when(claim(CLAIM_B, ANA))
            .then_expect_error(DomainError::InvalidState(
                "you have completed this mission already",
            ));
    }

    #[test]
    fn given_a_running_claim_past_the_missions_expiry_when_evidence_comes_then_it_is_accepted() {
        let mut mission = Mission::default();
        for event in [created(1), approved(), claimed(CLAIM_A, ANA)] {
            mission.apply(event);
        }
        let after_expiry = at() + TimeDelta::days(30) + TimeDelta::hours(1);
        // The claim made at at() ran out after 7 days: past its deadline.
        assert_eq!(
            mission.evidence_check(ANA, after_expiry),
            crate::evidence::ClaimCheck::DeadlinePassed
        );
        let mut late = Mission::default();
        for event in [
            created(1),
            approved(),
            MissionEvent::MissionClaimed {
                mission_id: MISSION,
                claim_id: CLAIM_A,
                human_id: ANA,
                claimed_at: at() + TimeDelta::days(29),
                deadline_at: at() + TimeDelta::days(29) + CLAIM_DEADLINE,
            },
        ] {
            late.apply(event);
        }
        assert_eq!(
            late.evidence_check(ANA, after_expiry),
            crate::evidence::ClaimCheck::Active { claim_id: CLAIM_A },
            "a running claim keeps an expired mission open for its evidence"
        );
    }

    #[test]
    fn given_a_claimed_mission_when_an_admin_cancels_it_then_its_claims_are_released_and_it_takes_no_more()
     {
        let reason = "The site is unsafe after the floods.";
        TestFramework::<Mission>::with(())
            .given(vec![
                created(1),
                approved(),
                claimed(CLAIM_A, ANA),
                status(MissionStatus::Open, MissionStatus::Claimed),
            ])
            .when(MissionCommand::Cancel {
                admin_id: Uuid::from_u128(99),
                reason: reason.into(),
                at: at(),
            })
            .then_expect_events(vec![
                MissionEvent::MissionCancelled {
                    mission_id: MISSION,
                    cancelled_by: Uuid::from_u128(99),
                    reason: reason.into(),
                    cancelled_at: at(),
                },
                MissionEvent::ClaimReleased {
                    mission_id: MISSION,
                    claim_id: CLAIM_A,
                    human_id: ANA,
                    reason: ReleaseReason::MissionCancelled,
                    released_at: at(),
                },
                status(MissionStatus::Claimed, MissionStatus::Cancelled),
            ]);
        TestFramework::<Mission>::with(())
            .given(vec![
                created(1),
                approved(),
                MissionEvent::MissionCancelled {
                    mission_id: MISSION,
                    cancelled_by: Uuid::from_u128(99),
                    reason: reason.into(),
                    cancelled_at: at(),
                },
                status(MissionStatus::Open, MissionStatus::Cancelled),
            ])
            .when(claim(CLAIM_B, BEN))
            .then_expect_error(DomainError::InvalidState("the mission was cancelled"));
        TestFramework::<Mission>::with(())
            .given(vec![created(1), approved()])
            .when(MissionCommand::Cancel {
                admin_id: Uuid::from_u128(99),
                reason: "short".into(),
                at: at(),
            })
            .then_expect_error(DomainError::invalid("reason", "10–2000 characters"));
    }
}
