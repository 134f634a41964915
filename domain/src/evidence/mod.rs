//! The `Evidence` aggregate: what a claimant submits to show a mission was done
//! (`domain-reference.md` §1.9, §2.5, §6.1).
//!
//! Rules: evidence is submitted by a person holding an active claim on the mission, before the
//! claim's deadline and while the mission has not expired (the command side reads these facts from
//! the mission's stream: [`ClaimCheck`]); it carries 1–5 stored files (type decided by content,
//! SHA-256, size ≤ 10 MB — checked at the edge), the capture point and time (time not in the
//! future) and notes of at most 2,000 characters. It starts at stage `pending`.
//!
//! # Layout
//!
//! - [`checks`]: what evidence carries and how it is weighed — file limits, the claim and mission
//!   facts it is checked against, the automatic checks, the vision model's assessment, peer votes,
//!   stages, verdicts and the reward;
//! - [`command`]: what claimants, peers, admins and the verifier ask of it;
//! - [`event`]: what it records;
//! - this file: the aggregate, which decides commands and applies events.

pub mod checks;
pub mod command;
pub mod event;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, event_sink::EventSink};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;

pub use checks::*;
pub use command::*;
pub use event::*;

/// The evidence as decisions need it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    id: Option<Uuid>,
    submitter: Option<Uuid>,
    stage: Option<Stage>,
    mission_id: Option<Uuid>,
    claim_id: Option<Uuid>,
    token_reward: u32,
    ai_confidence: Option<f64>,
    votes: Vec<Vote>,
    appealed: bool,
    /// A file repeats an earlier submission's (the checks' originality was 0).
    #[serde(default)]
    duplicate: bool,
    /// No file carried an EXIF point: the location and time are the client's word alone.
    #[serde(default)]
    unbacked: bool,
    #[serde(default)]
    vision_assessed: bool,
}

impl Evidence {
    /// In peer review and not yet assessed by a vision model (what `RecordVision` acts on).
    pub fn awaits_vision(&self) -> bool {
        self.stage == Some(Stage::PeerReview) && !self.vision_assessed
    }

    /// The event that decides the evidence when `stage` is a decision (`source`: `auto`,
    /// `vision`, `peer` or `admin`); `None` for peer review.
    fn decision(
        &self,
        stage: Stage,
        source: &str,
        confidence: f64,
        at: DateTime<Utc>,
    ) -> Result<Option<EvidenceEvent>, DomainError> {
        let (Some(evidence_id), Some(mission_id), Some(claim_id), Some(human_id)) =
            (self.id, self.mission_id, self.claim_id, self.submitter)
        else {
            return Err(DomainError::NotFound("evidence"));
        };
        Ok(match stage {
            Stage::Verified => Some(EvidenceEvent::EvidenceVerified {
                evidence_id,
                mission_id,
                claim_id,
                human_id,
                source: source.into(),
                confidence,
                token_reward: self.token_reward,
                verified_at: at,
            }),
            Stage::Rejected => Some(EvidenceEvent::EvidenceRejected {
                evidence_id,
                source: source.into(),
                confidence,
                rejected_at: at,
            }),
            Stage::PeerReview | Stage::Appealed => None,
        })
    }
}

impl Aggregate for Evidence {
    const TYPE: &'static str = "Evidence";
    type Command = EvidenceCommand;
    type Event = EvidenceEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            EvidenceCommand::Submit {
                evidence_id,
                mission_id,
                human_id,
                claim,
                mission,
                exif_location,
                files,
                capture,
                notes,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists("evidence"));
                }
                let claim_id = claim.require_active()?;
                if files.is_empty() || files.len() > MAX_FILES {
                    return Err(DomainError::invalid("files", "1–5 files"));
                }
                if files
                    .iter()
                    .any(|f| f.size == 0 || f.size > MAX_FILE_BYTES as u64)
                {
                    return Err(DomainError::invalid("files", "each file 1 byte to 10 MB"));
                }
                if capture.captured_at.is_some_and(|t| t > at + CLOCK_SKEW) {
                    return Err(DomainError::invalid(
                        "capturedAt",
                        "must not be in the future",
                    ));
                }
                if notes.as_ref().is_some_and(|n| n.chars().count() > 2000) {
                    return Err(DomainError::invalid("notes", "at most 2000 characters"));
                }
                let checks = Checks::run(&mission, &capture, exif_location, &files, at);
                let confidence = checks.confidence;
                let stage = Stage::routed(confidence);
                sink.write(
                    EvidenceEvent::EvidenceSubmitted {
                        evidence_id,
                        mission_id,
                        claim_id,
                        human_id,
                        files,
                        capture,
                        notes,
                        token_reward: mission.token_reward,
                        submitted_at: at,
                    },
                    self,
                )
                .await;
                sink.write(
                    EvidenceEvent::EvidenceChecked {
                        evidence_id,
                        checks,
                        stage,
                        checked_at: at,
                    },
                    self,
                )
                .await;
                if let Some(decided) = self.decision(stage, "auto", confidence, at)? {
                    sink.write(decided, self).await;
                }
            }
            EvidenceCommand::Appeal {
                human_id,
                reason,
                at,
            } => {
                let evidence_id = self.id.ok_or(DomainError::NotFound("evidence"))?;
                if self.submitter != Some(human_id) {
                    return Err(DomainError::Forbidden("only the submitter may appeal"));
                }
                if self.stage != Some(Stage::Rejected) || self.appealed {
                    return Err(DomainError::InvalidState(
                        "only a rejection may be appealed, once",
                    ));
                }
                let n = reason.trim().chars().count();
                if !(20..=2000).contains(&n) {
                    return Err(DomainError::invalid("reason", "20–2000 characters"));
                }
                sink.write(
                    EvidenceEvent::EvidenceAppealed {
                        evidence_id,
                        human_id,
                        reason,
                        appealed_at: at,
                    },
                    self,
                )
                .await;
            }
            EvidenceCommand::ResolveAppeal {
                admin_id,
                approve,
                reasoning,
                at,
            } => {
                let evidence_id = self.id.ok_or(DomainError::NotFound("evidence"))?;
                if self.submitter == Some(admin_id) {
                    return Err(DomainError::Forbidden(
                        "an admin cannot resolve an appeal on their own evidence",
                    ));
                }
                if self.stage != Some(Stage::Appealed) {
                    return Err(DomainError::InvalidState(
                        "no appeal is open on this evidence",
                    ));
                }
                let n = reasoning.trim().chars().count();
                if !(10..=5000).contains(&n) {
                    return Err(DomainError::invalid("reasoning", "10–5000 characters"));
                }
                sink.write(
                    EvidenceEvent::EvidenceAppealResolved {
                        evidence_id,
                        resolved_by: admin_id,
                        approved: approve,
                        reasoning,
                        resolved_at: at,
                    },
                    self,
                )
                .await;
                let (stage, confidence) = if approve {
                    (Stage::Verified, 1.0)
                } else {
                    (Stage::Rejected, 0.0)
                };
                if let Some(decided) = self.decision(stage, "admin", confidence, at)? {
                    sink.write(decided, self).await;
                }
            }
            EvidenceCommand::RecordVision { assessment, at } => {
                let evidence_id = self.id.ok_or(DomainError::NotFound("evidence"))?;
                if self.stage != Some(Stage::PeerReview) || self.vision_assessed {
                    return Ok(());
                }
                let assessment = assessment.bounded();
                let mut confidence = assessment.overall_confidence;
                // Neither a copied file nor the client's word alone is verified without peers: the
                // model sees the photo, but only the client's claim of where and when.
                if self.duplicate || self.unbacked {
                    confidence = confidence.min(UNBACKED_CAP);
                }
                let stage = if self.votes.is_empty() {
                    Stage::routed(confidence)
                } else {
                    Stage::PeerReview
                };
                sink.write(
                    EvidenceEvent::EvidenceVisionAssessed {
                        evidence_id,
                        assessment,
                        stage,
                        assessed_at: at,
                    },
                    self,
                )
                .await;
                if let Some(decided) = self.decision(stage, "vision", confidence, at)? {
                    sink.write(decided, self).await;
                }
            }
            EvidenceCommand::Vote {
                review_id,
                reviewer,
                verdict,
                confidence,
                reasoning,
                at,
            } => {
                let evidence_id = self.id.ok_or(DomainError::NotFound("evidence"))?;
                if self.submitter == Some(reviewer) {
                    return Err(DomainError::Forbidden(
                        "you cannot review your own evidence",
                    ));
                }
                if self.stage != Some(Stage::PeerReview) {
                    return Err(DomainError::InvalidState(
                        "this evidence is not awaiting peer review",
                    ));
                }
                if self.votes.iter().any(|v| v.reviewer == reviewer) {
                    return Err(DomainError::DuplicateVote);
                }
                if !(0.0..=1.0).contains(&confidence) {
                    return Err(DomainError::invalid("confidence", "from 0 to 1"));
                }
                let n = reasoning.trim().chars().count();
                if !(20..=2000).contains(&n) {
                    return Err(DomainError::invalid("reasoning", "20–2000 characters"));
                }
                sink.write(
                    EvidenceEvent::PeerVoteCast {
                        evidence_id,
                        review_id,
                        reviewer,
                        verdict,
                        confidence,
                        reasoning,
                        cast_at: at,
                    },
                    self,
                )
                .await;
                if self.votes.len() >= PEER_REVIEWS_NEEDED {
                    let (verified, final_confidence) =
                        peer_decision(&self.votes, self.ai_confidence.unwrap_or(0.5));
                    let stage = if verified {
                        Stage::Verified
                    } else {
                        Stage::Rejected
                    };
                    if let Some(decided) = self.decision(stage, "peer", final_confidence, at)? {
                        sink.write(decided, self).await;
                    }
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            EvidenceEvent::EvidenceSubmitted {
                evidence_id,
                human_id,
                mission_id,
                claim_id,
                token_reward,
                ..
            } => {
                self.id = Some(evidence_id);
                self.submitter = Some(human_id);
                self.mission_id = Some(mission_id);
                self.claim_id = Some(claim_id);
                self.token_reward = token_reward;
            }
            EvidenceEvent::EvidenceChecked { stage, checks, .. } => {
                self.stage = Some(stage);
                self.ai_confidence = Some(checks.confidence);
                self.duplicate = checks.originality == 0.0;
                self.unbacked = !checks.exif_point;
            }
            EvidenceEvent::EvidenceVisionAssessed {
                assessment, stage, ..
            } => {
                self.stage = Some(stage);
                self.ai_confidence = Some(assessment.overall_confidence);
                self.vision_assessed = true;
            }
            EvidenceEvent::EvidenceAppealed { .. } => {
                self.stage = Some(Stage::Appealed);
                self.appealed = true;
            }
            EvidenceEvent::EvidenceAppealResolved { .. } => {}
            EvidenceEvent::PeerVoteCast {
                reviewer,
                verdict,
                confidence,
                ..
            } => self.votes.push(Vote {
                reviewer,
                approve: verdict == Verdict::Approve,
                confidence,
            }),
            EvidenceEvent::EvidenceVerified { .. } => self.stage = Some(Stage::Verified),
            EvidenceEvent::EvidenceRejected { .. } => self.stage = Some(Stage::Rejected),
        }
    }
}
