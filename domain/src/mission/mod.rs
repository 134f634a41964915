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
//!
//! # Layout
//!
//! - [`spec`]: what a mission is — its text, spec, evidence requirements, statuses and limits;
//! - [`command`]: what agents and humans ask of it;
//! - [`event`]: what it records;
//! - this file: the aggregate, which decides commands and applies events.

pub mod command;
pub mod event;
pub mod spec;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, event_sink::EventSink};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    DomainError,
    guardrail::{ContentType, Review, ReviewOutcome, apply_review, handle_review},
    taxonomy::GuardrailStatus,
    values::GeoPoint,
};

pub use command::*;
pub use event::*;
pub use spec::*;

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
                let withdrawn = (self.status == Some(MissionStatus::Archived))
                    .then_some("the mission is archived");
                if let Some(outcome) = handle_review(
                    &self.review,
                    mission_id,
                    ContentType::Mission,
                    command,
                    withdrawn,
                )? {
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
