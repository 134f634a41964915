//! What a mission is: its text and spec as an agent writes them, the evidence it asks for, its and its
//! claims' statuses, and the platform's limits on them.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    DomainError,
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

pub(crate) fn chars_within(
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
