//! The `Evidence` aggregate: what a claimant submits to show a mission was done
//! (`domain-reference.md` §1.9, §2.5, §6.1).
//!
//! Rules: evidence is submitted by a person holding an active claim on the mission, before the
//! claim's deadline and while the mission has not expired (the command side reads these facts from
//! the mission's stream: [`ClaimCheck`]); it carries 1–5 stored files (type decided by content,
//! SHA-256, size ≤ 10 MB — checked at the edge), the capture point and time (time not in the
//! future) and notes of at most 2,000 characters. It starts at stage `pending`.

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::{Aggregate, DomainEvent, event_sink::EventSink};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DomainError, mission::spec::EvidenceKind, values::GeoPoint};

/// Files per submission.
pub const MAX_FILES: usize = 5;
/// Bytes per file (10 MB).
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// How far a capture time may lie ahead of the server's clock (phones drift).
pub const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredFile {
    /// The object key (built by the platform from ids, never from the client's file name).
    pub key: String,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    pub size: u64,
    /// The type found in the content (`image/jpeg`, `image/png`, `image/heic`, `application/pdf`,
    /// `video/mp4`, `video/quicktime`).
    pub mime: String,
    pub kind: EvidenceKind,
    /// An earlier submission holding a file with the same SHA-256, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<Uuid>,
}

/// Where and when the evidence was captured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capture {
    pub location: Option<GeoPoint>,
    /// `form` or `exif`: where the location came from (the form wins; EXIF fills in, §6.1).
    pub location_source: Option<String>,
    pub captured_at: Option<DateTime<Utc>>,
    /// EXIF fields kept after personal ones were stripped (a fixed allow-list).
    pub exif: std::collections::BTreeMap<String, String>,
}

/// The submitter's claim on the mission, as the command side found it on the mission's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimCheck {
    /// An active claim within its deadline.
    Active { claim_id: Uuid },
    /// The person holds no active claim on this mission (or it does not exist).
    NoActiveClaim,
    /// The active claim's deadline has passed.
    DeadlinePassed,
    /// The mission has expired.
    MissionExpired,
}

impl ClaimCheck {
    /// The active claim's id, or why evidence cannot be submitted.
    pub fn require_active(self) -> Result<Uuid, DomainError> {
        match self {
            Self::Active { claim_id } => Ok(claim_id),
            Self::NoActiveClaim => Err(DomainError::Forbidden(
                "evidence needs your active claim on this mission",
            )),
            Self::DeadlinePassed => {
                Err(DomainError::InvalidState("the claim's deadline has passed"))
            }
            Self::MissionExpired => Err(DomainError::InvalidState("the mission has expired")),
        }
    }
}

/// What the automatic checks need to know about the mission and the claim (read from the mission's
/// stream with the claim check).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MissionFacts {
    pub location: Option<GeoPoint>,
    pub radius_km: f64,
    pub token_reward: u32,
    pub claimed_at: DateTime<Utc>,
}

/// Confidence at or above which evidence is verified automatically (§2.6).
pub const AUTO_VERIFY: f64 = 0.80;
/// Confidence below which evidence is rejected automatically (§2.6).
pub const AUTO_REJECT: f64 = 0.50;
/// The highest confidence of evidence without an EXIF point (just below [`AUTO_VERIFY`]).
pub const UNBACKED_CAP: f64 = 0.79;

/// The automatic checks and the confidence they combine into (`docs/verification.md`):
/// `0.35·gps + 0.25·time + 0.15·consistency + 0.25·originality`, each in 0–1, capped at
/// [`UNBACKED_CAP`] when no file carries an EXIF point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    /// Distance from the mission's point, when both are known.
    pub distance_km: Option<f64>,
    /// 1 within the radius, 0.5 within twice it, 0 beyond; 0.4 without a point; 0.7 for a mission
    /// with no location.
    pub gps: f64,
    /// 1 when captured between the claim (less an hour) and now; 0 outside; 0.4 when unknown.
    pub time: f64,
    /// The form's point against the photo's EXIF point: 1 within 1 km, 0 beyond; 0.6 when only one
    /// is known; 0.4 when neither.
    pub consistency: f64,
    /// 0 when a file repeats an earlier submission's, else 1.
    pub originality: f64,
    /// A file carried an EXIF point; without one the confidence is capped at [`UNBACKED_CAP`]
    /// (absent in older events: taken as none).
    #[serde(default)]
    pub exif_point: bool,
    pub confidence: f64,
}

/// Great-circle distance in km (haversine, mean Earth radius).
pub fn distance_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let (la1, la2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dla = la2 - la1;
    let dlo = (b.longitude - a.longitude).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

impl Checks {
    /// Runs the checks on a submission at `at`.
    pub fn run(
        mission: &MissionFacts,
        capture: &Capture,
        exif_location: Option<GeoPoint>,
        files: &[StoredFile],
        at: DateTime<Utc>,
    ) -> Self {
        let distance = mission
            .location
            .zip(capture.location)
            .map(|(m, c)| distance_km(m, c));
        let gps = match (mission.location, distance) {
            (None, _) => 0.7,
            (Some(_), None) => 0.4,
            (Some(_), Some(d)) if d <= mission.radius_km => 1.0,
            (Some(_), Some(d)) if d <= 2.0 * mission.radius_km => 0.5,
            _ => 0.0,
        };
        let time = match capture.captured_at {
            None => 0.4,
            Some(t) if t >= mission.claimed_at - TimeDelta::hours(1) && t <= at + CLOCK_SKEW => 1.0,
            Some(_) => 0.0,
        };
        let form_location = (capture.location_source.as_deref() == Some("form"))
            .then_some(capture.location)
            .flatten();
        let consistency = match (form_location, exif_location) {
            (Some(f), Some(e)) if distance_km(f, e) <= 1.0 => 1.0,
            (Some(_), Some(_)) => 0.0,
            (None, None) => 0.4,
            _ => 0.6,
        };
        let originality = if files.iter().any(|f| f.duplicate_of.is_some()) {
            0.0
        } else {
            1.0
        };
        let mut confidence: f64 =
            0.35 * gps + 0.25 * time + 0.15 * consistency + 0.25 * originality;
        // What only the client asserted (a point, a time, no EXIF behind them) never verifies
        // automatically: without the photo's own EXIF point, peers decide.
        if exif_location.is_none() {
            confidence = confidence.min(UNBACKED_CAP);
        }
        Self {
            distance_km: distance,
            gps,
            time,
            consistency,
            originality,
            exif_point: exif_location.is_some(),
            confidence: (confidence * 1000.0).round() / 1000.0,
        }
    }
}

/// Where evidence stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    PeerReview,
    Verified,
    Rejected,
    /// The owner appealed a rejection; an admin decides.
    Appealed,
}

impl Stage {
    /// Where an automatic confidence sends evidence (§2.6): verified at [`AUTO_VERIFY`] or above,
    /// rejected below [`AUTO_REJECT`], peer review between.
    pub fn routed(confidence: f64) -> Self {
        if confidence >= AUTO_VERIFY {
            Self::Verified
        } else if confidence < AUTO_REJECT {
            Self::Rejected
        } else {
            Self::PeerReview
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PeerReview => "peer_review",
            Self::Verified => "verified",
            Self::Rejected => "rejected",
            Self::Appealed => "appealed",
        }
    }
}

/// Votes after which peer review decides (§6.3).
pub const PEER_REVIEWS_NEEDED: usize = 3;

/// A peer's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
}

/// One peer's vote as decisions need it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Vote {
    reviewer: Uuid,
    approve: bool,
    confidence: f64,
}

/// The decision of §6.3 over `votes`, with the automatic score `ai`: `(verified, final confidence)`.
/// `peer = Σ confidence of approvals / Σ confidence`; `final = 0.4·ai + 0.6·peer`; verified when
/// `final ≥ 0.6` and `peer ≥ 0.5`.
fn peer_decision(votes: &[Vote], ai: f64) -> (bool, f64) {
    let total: f64 = votes.iter().map(|v| v.confidence).sum();
    let approving: f64 = votes
        .iter()
        .filter(|v| v.approve)
        .map(|v| v.confidence)
        .sum();
    let peer = if total > 0.0 { approving / total } else { 0.0 };
    let final_confidence = ((0.4 * ai + 0.6 * peer) * 1000.0).round() / 1000.0;
    (final_confidence >= 0.6 && peer >= 0.5, final_confidence)
}

/// What a vision model said about evidence (§6.2); scores are clamped to 0–1 when recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VisionAssessment {
    /// The provider and model, e.g. `anthropic/claude-sonnet-4-5-20250929`.
    pub model: String,
    /// The photos show the mission's subject.
    pub relevance_score: f64,
    pub gps_plausibility: f64,
    pub timestamp_plausibility: f64,
    /// Not staged, edited or generated.
    pub authenticity_score: f64,
    pub requirement_checklist: Vec<RequirementCheck>,
    /// What routes the evidence: ≥ 0.80 verified, < 0.50 rejected, otherwise peer review.
    pub overall_confidence: f64,
    pub reasoning: String,
}

/// One evidence requirement of the mission, and whether the model found it met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequirementCheck {
    pub requirement: String,
    pub met: bool,
}

impl VisionAssessment {
    /// The scores clamped to 0–1 (a NaN becomes 0) and the texts bounded, as recorded.
    fn bounded(mut self) -> Self {
        let unit = |v: f64| if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        self.relevance_score = unit(self.relevance_score);
        self.gps_plausibility = unit(self.gps_plausibility);
        self.timestamp_plausibility = unit(self.timestamp_plausibility);
        self.authenticity_score = unit(self.authenticity_score);
        self.overall_confidence = (unit(self.overall_confidence) * 1000.0).round() / 1000.0;
        self.reasoning = self.reasoning.chars().take(4000).collect();
        self.model = self.model.chars().take(200).collect();
        self.requirement_checklist.truncate(50);
        for check in &mut self.requirement_checklist {
            check.requirement = check.requirement.chars().take(500).collect();
        }
        self
    }
}

/// The reward for verified evidence (§5.1): `max(1, floor(reward × confidence))`.
pub fn reward(token_reward: u32, confidence: f64) -> i64 {
    let paid = (f64::from(token_reward) * confidence.clamp(0.0, 1.0)).floor();
    // In range by construction: 0 ≤ paid ≤ token_reward ≤ u32::MAX.
    #[allow(clippy::cast_possible_truncation)]
    (paid as i64).max(1)
}

/// Commands of the `Evidence` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum EvidenceCommand {
    /// A claimant submits evidence.
    Submit {
        evidence_id: Uuid,
        mission_id: Uuid,
        human_id: Uuid,
        claim: ClaimCheck,
        mission: MissionFacts,
        /// The first file's EXIF point, for the consistency check.
        exif_location: Option<GeoPoint>,
        files: Vec<StoredFile>,
        capture: Box<Capture>,
        notes: Option<String>,
        at: DateTime<Utc>,
    },
    /// The submitter appeals a rejection (once).
    Appeal {
        human_id: Uuid,
        /// 20–2,000 characters.
        reason: String,
        at: DateTime<Utc>,
    },
    /// An admin resolves an appeal: approval verifies with confidence 1.0 (the full reward, §5.1),
    /// rejection is final.
    ResolveAppeal {
        admin_id: Uuid,
        approve: bool,
        /// 10–5,000 characters.
        reasoning: String,
        at: DateTime<Utc>,
    },
    /// A vision model's assessment of evidence awaiting peer review (§6.2, the vision worker).
    /// Before any peer has voted it routes the evidence like the automatic checks (≥ 0.80
    /// verified, < 0.50 rejected, else peer review; a duplicate, or evidence without an EXIF point,
    /// is never verified by it); after a
    /// vote it only becomes the automatic score the peers' decision weighs. Evidence no longer in
    /// peer review, or already assessed, records nothing (a redelivery is harmless).
    RecordVision {
        assessment: VisionAssessment,
        at: DateTime<Utc>,
    },
    /// A person other than the submitter votes on evidence in peer review.
    Vote {
        review_id: Uuid,
        reviewer: Uuid,
        verdict: Verdict,
        /// 0–1.
        confidence: f64,
        /// 20–2,000 characters.
        reasoning: String,
        at: DateTime<Utc>,
    },
}

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

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    const EVIDENCE: Uuid = Uuid::from_u128(1);
    const MISSION: Uuid = Uuid::from_u128(2);
    const HUMAN: Uuid = Uuid::from_u128(3);
    const CLAIM: Uuid = Uuid::from_u128(4);

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("valid")
    }

    fn point(lat: f64, lng: f64) -> GeoPoint {
        GeoPoint::parse(lat, lng).expect("point")
    }

    fn file(n: u8) -> StoredFile {
        StoredFile {
            key: format!("evidence/{MISSION}/{EVIDENCE}/{n}.jpg"),
            sha256: "ab".repeat(32),
            size: 1000,
            mime: "image/jpeg".into(),
            kind: EvidenceKind::Photo,
            duplicate_of: None,
        }
    }

    fn capture(location: Option<GeoPoint>, captured_at: DateTime<Utc>) -> Box<Capture> {
        Box::new(Capture {
            location,
            location_source: location.map(|_| "form".into()),
            captured_at: Some(captured_at),
            exif: Default::default(),
        })
    }

    fn mission() -> MissionFacts {
        MissionFacts {
            location: Some(point(-1.29, 36.82)),
            radius_km: 5.0,
            token_reward: 25,
            claimed_at: at() - TimeDelta::hours(2),
        }
    }

    fn submit_with(
        claim: ClaimCheck,
        files: Vec<StoredFile>,
        capture: Box<Capture>,
    ) -> EvidenceCommand {
        EvidenceCommand::Submit {
            evidence_id: EVIDENCE,
            mission_id: MISSION,
            human_id: HUMAN,
            claim,
            mission: mission(),
            exif_location: None,
            files,
            capture,
            notes: Some("Strip shows no contamination".into()),
            at: at(),
        }
    }

    fn submit(
        claim: ClaimCheck,
        files: Vec<StoredFile>,
        captured_at: DateTime<Utc>,
    ) -> EvidenceCommand {
        submit_with(
            claim,
            files,
            capture(Some(point(-1.30, 36.81)), captured_at),
        )
    }

    const ACTIVE: ClaimCheck = ClaimCheck::Active { claim_id: CLAIM };

    fn events_of(command: EvidenceCommand) -> Vec<EvidenceEvent> {
        TestFramework::<Evidence>::with(())
            .given_no_previous_events()
            .when(command)
            .inspect_result()
            .expect("accepted")
    }

    #[test]
    fn given_an_active_claim_when_good_evidence_is_submitted_then_checked_and_verified_automatically()
     {
        let mut command = submit(ACTIVE, vec![file(0)], at() - TimeDelta::hours(1));
        if let EvidenceCommand::Submit { exif_location, .. } = &mut command {
            *exif_location = Some(point(-1.301, 36.811));
        }
        let events = events_of(command);
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(
            matches!(&events[0], EvidenceEvent::EvidenceSubmitted { claim_id, .. } if *claim_id == CLAIM)
        );
        let EvidenceEvent::EvidenceChecked { checks, stage, .. } = &events[1] else {
            panic!("{events:?}")
        };
        // In the radius (1), in the claim window (1), the form's point by the photo's (1), original (1).
        assert_eq!(
            (
                checks.gps,
                checks.time,
                checks.consistency,
                checks.originality
            ),
            (1.0, 1.0, 1.0, 1.0)
        );
        assert_eq!(checks.confidence, 1.0);
        assert_eq!(*stage, Stage::Verified);
        assert!(matches!(
            &events[2],
            EvidenceEvent::EvidenceVerified { confidence, token_reward: 25, source, .. }
                if *confidence == 1.0 && source == "auto"
        ));
        // The same claims with no EXIF point behind them: 0.94 capped at 0.79, peers decide.
        let unbacked = events_of(submit(ACTIVE, vec![file(0)], at() - TimeDelta::hours(1)));
        assert!(
            matches!(
                &unbacked[1],
                EvidenceEvent::EvidenceChecked { stage: Stage::PeerReview, checks, .. } if checks.confidence == 0.79
            ),
            "{unbacked:?}"
        );
    }

    #[test]
    fn given_an_active_claim_when_the_checks_are_middling_then_peer_review_and_when_poor_then_rejected()
     {
        // No point at all: 0.35·0.4 + 0.25·1 + 0.15·0.4 + 0.25·1 = 0.70 → peer review.
        let events = events_of(submit_with(ACTIVE, vec![file(0)], capture(None, at())));
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            matches!(&events[1], EvidenceEvent::EvidenceChecked { stage: Stage::PeerReview, checks, .. } if checks.confidence == 0.7)
        );
        // A duplicate photo taken 40 km away: 0 + 0.25 + 0.09 + 0 = 0.34 → rejected.
        let mut copied = file(0);
        copied.duplicate_of = Some(Uuid::from_u128(77));
        let events = events_of(submit_with(
            ACTIVE,
            vec![copied],
            capture(Some(point(-1.03, 37.07)), at()),
        ));
        assert!(
            matches!(&events[1], EvidenceEvent::EvidenceChecked { stage: Stage::Rejected, checks, .. } if checks.confidence == 0.34),
            "{events:?}"
        );
        assert!(matches!(&events[2], EvidenceEvent::EvidenceRejected { .. }));
        // Taken before the claim: the time check fails.
        let events = events_of(submit(ACTIVE, vec![file(0)], at() - TimeDelta::days(3)));
        assert!(
            matches!(&events[1], EvidenceEvent::EvidenceChecked { checks, .. } if checks.time == 0.0)
        );
    }

    #[test]
    fn rewards_follow_the_confidence_and_are_never_zero() {
        assert_eq!(reward(25, 0.94), 23);
        assert_eq!(reward(25, 1.0), 25);
        assert_eq!(reward(3, 0.1), 1);
        assert_eq!(reward(10, 1.7), 10, "confidence is clamped");
    }

    #[test]
    fn given_no_usable_claim_when_evidence_is_submitted_then_refused() {
        for (claim, error) in [
            (
                ClaimCheck::NoActiveClaim,
                DomainError::Forbidden("evidence needs your active claim on this mission"),
            ),
            (
                ClaimCheck::DeadlinePassed,
                DomainError::InvalidState("the claim's deadline has passed"),
            ),
            (
                ClaimCheck::MissionExpired,
                DomainError::InvalidState("the mission has expired"),
            ),
        ] {
            TestFramework::<Evidence>::with(())
                .given_no_previous_events()
                .when(submit(claim, vec![file(0)], at()))
                .then_expect_error(error);
        }
    }

    #[test]
    fn given_a_claim_when_files_or_times_are_out_of_bounds_then_the_field_is_named() {
        let cases = [
            (submit(ACTIVE, vec![], at()), "files"),
            (submit(ACTIVE, (0..6).map(file).collect(), at()), "files"),
            (
                submit(ACTIVE, vec![file(0)], at() + TimeDelta::hours(1)),
                "capturedAt",
            ),
        ];
        for (command, field) in cases {
            let result = TestFramework::<Evidence>::with(())
                .given_no_previous_events()
                .when(command)
                .inspect_result();
            assert!(
                matches!(&result, Err(DomainError::InvalidValue { field: f, .. }) if *f == field),
                "{field}: {result:?}"
            );
        }
        // A phone a few minutes ahead is not "the future".
        TestFramework::<Evidence>::with(())
            .given_no_previous_events()
            .when(submit(ACTIVE, vec![file(0)], at() + TimeDelta::minutes(3)))
            .inspect_result()
            .expect("within the clock skew");
    }

    fn in_peer_review() -> Vec<EvidenceEvent> {
        events_of(submit_with(ACTIVE, vec![file(0)], capture(None, at())))
    }

    fn vote(reviewer: u128, verdict: Verdict, confidence: f64) -> EvidenceCommand {
        EvidenceCommand::Vote {
            review_id: Uuid::from_u128(1000 + reviewer),
            reviewer: Uuid::from_u128(reviewer),
            verdict,
            confidence,
            reasoning: "The strip and the bottle are clearly visible at the well.".into(),
            at: at(),
        }
    }

    fn cast(reviewer: u128, verdict: Verdict, confidence: f64) -> EvidenceEvent {
        EvidenceEvent::PeerVoteCast {
            evidence_id: EVIDENCE,
            review_id: Uuid::from_u128(1000 + reviewer),
            reviewer: Uuid::from_u128(reviewer),
            verdict,
            confidence,
            reasoning: "The strip and the bottle are clearly visible at the well.".into(),
            cast_at: at(),
        }
    }

    #[test]
    fn given_evidence_in_peer_review_when_three_peers_approve_then_verified_by_the_weighted_rule() {
        let mut given = in_peer_review();
        given.push(cast(10, Verdict::Approve, 0.9));
        given.push(cast(11, Verdict::Approve, 0.8));
        let events = TestFramework::<Evidence>::with(())
            .given(given)
            .when(vote(12, Verdict::Approve, 0.9))
            .inspect_result()
            .expect("voted");
        assert_eq!(events[0], cast(12, Verdict::Approve, 0.9));
        // final = 0.4 × 0.70 (the checks) + 0.6 × 1.0 (all approving) = 0.88
        assert!(
            matches!(
                &events[1],
                EvidenceEvent::EvidenceVerified { source, confidence, token_reward: 25, claim_id, .. }
                    if source == "peer" && *confidence == 0.88 && *claim_id == CLAIM
            ),
            "{events:?}"
        );
    }

    fn vision(overall_confidence: f64) -> EvidenceCommand {
        EvidenceCommand::RecordVision {
            assessment: VisionAssessment {
                model: "anthropic/test-vision".into(),
                relevance_score: 0.9,
                gps_plausibility: 0.8,
                timestamp_plausibility: 0.9,
                authenticity_score: 0.95,
                requirement_checklist: vec![RequirementCheck {
                    requirement: "Photo of the test strip".into(),
                    met: true,
                }],
                overall_confidence,
                reasoning: "The strip is visible next to the well.".into(),
            },
            at: at(),
        }
    }

    /// Evidence in peer review backed by an EXIF point: a photo taken before the claim (time 0),
    /// 0.35 + 0 + 0.15 + 0.25 = 0.75.
    fn backed_in_peer_review() -> Vec<EvidenceEvent> {
        let mut command = submit(ACTIVE, vec![file(0)], at() - TimeDelta::days(2));
        if let EvidenceCommand::Submit { exif_location, .. } = &mut command {
            *exif_location = Some(point(-1.301, 36.811));
        }
        let events = events_of(command);
        assert!(matches!(
            &events[1],
            EvidenceEvent::EvidenceChecked { stage: Stage::PeerReview, checks, .. } if checks.exif_point
        ));
        events
    }

    fn vision_events(given: Vec<EvidenceEvent>, command: EvidenceCommand) -> Vec<EvidenceEvent> {
        TestFramework::<Evidence>::with(())
            .given(given)
            .when(command)
            .inspect_result()
            .expect("recorded")
    }

    #[test]
    fn given_evidence_in_peer_review_when_the_vision_model_is_confident_then_verified_by_vision() {
        let events = vision_events(backed_in_peer_review(), vision(0.91));
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(
            &events[0],
            EvidenceEvent::EvidenceVisionAssessed { stage: Stage::Verified, assessment, .. }
                if assessment.overall_confidence == 0.91
        ));
        assert!(matches!(
            &events[1],
            EvidenceEvent::EvidenceVerified { source, confidence, token_reward: 25, .. }
                if source == "vision" && *confidence == 0.91
        ));
    }

    #[test]
    fn given_evidence_in_peer_review_when_the_vision_model_doubts_it_then_rejected_by_vision() {
        let events = vision_events(backed_in_peer_review(), vision(0.2));
        assert!(matches!(
            &events[1],
            EvidenceEvent::EvidenceRejected { source, confidence, .. }
                if source == "vision" && *confidence == 0.2
        ));
    }

    #[test]
    fn given_an_ambiguous_vision_score_when_peers_decide_then_it_is_the_automatic_score_they_weigh()
    {
        let mut given = in_peer_review();
        let assessed = vision_events(given.clone(), vision(0.65));
        assert!(
            matches!(
                &assessed[..],
                [EvidenceEvent::EvidenceVisionAssessed {
                    stage: Stage::PeerReview,
                    ..
                }]
            ),
            "{assessed:?}"
        );
        given.extend(assessed);
        given.push(cast(10, Verdict::Approve, 0.5));
        given.push(cast(11, Verdict::Reject, 0.5));
        let events = vision_events(given, vote(12, Verdict::Approve, 1.0));
        // peer = 1.5 / 2 = 0.75; final = 0.4 × 0.65 + 0.6 × 0.75 = 0.71 (with the checks' 0.7: 0.73)
        assert!(
            matches!(&events[1], EvidenceEvent::EvidenceVerified { source, confidence, .. } if source == "peer" && *confidence == 0.71),
            "{events:?}"
        );
    }

    #[test]
    fn given_a_duplicate_in_peer_review_when_the_vision_model_is_confident_then_peers_still_decide()
    {
        let mut copy = file(0);
        copy.duplicate_of = Some(Uuid::from_u128(99));
        let given = events_of(submit_with(
            ACTIVE,
            vec![copy],
            capture(Some(point(-1.30, 36.81)), at()),
        ));
        assert!(matches!(
            &given[1],
            EvidenceEvent::EvidenceChecked {
                stage: Stage::PeerReview,
                ..
            }
        ));
        let events = vision_events(given, vision(0.99));
        assert!(
            matches!(
                &events[..],
                [EvidenceEvent::EvidenceVisionAssessed {
                    stage: Stage::PeerReview,
                    ..
                }]
            ),
            "{events:?}"
        );
    }

    #[test]
    fn given_evidence_without_an_exif_point_when_the_vision_model_is_confident_then_peers_still_decide()
     {
        let events = vision_events(in_peer_review(), vision(0.99));
        assert!(
            matches!(
                &events[..],
                [EvidenceEvent::EvidenceVisionAssessed {
                    stage: Stage::PeerReview,
                    ..
                }]
            ),
            "{events:?}"
        );
    }

    #[test]
    fn given_a_peer_vote_when_the_vision_model_answers_then_it_informs_but_does_not_decide() {
        let mut given = backed_in_peer_review();
        given.push(cast(10, Verdict::Reject, 0.9));
        let events = vision_events(given, vision(0.95));
        assert!(
            matches!(
                &events[..],
                [EvidenceEvent::EvidenceVisionAssessed {
                    stage: Stage::PeerReview,
                    ..
                }]
            ),
            "{events:?}"
        );
    }

    #[test]
    fn given_assessed_or_decided_evidence_when_a_vision_assessment_comes_again_then_nothing_is_recorded()
     {
        let mut given = in_peer_review();
        given.extend(vision_events(given.clone(), vision(0.6)));
        TestFramework::<Evidence>::with(())
            .given(given)
            .when(vision(0.95))
            .then_expect_events(vec![]);
        let verified = events_of({
            let mut command = submit(ACTIVE, vec![file(0)], at() - TimeDelta::hours(1));
            if let EvidenceCommand::Submit { exif_location, .. } = &mut command {
                *exif_location = Some(point(-1.301, 36.811));
            }
            command
        });
        TestFramework::<Evidence>::with(())
            .given(verified)
            .when(vision(0.1))
            .then_expect_events(vec![]);
    }

    #[test]
    fn given_evidence_in_peer_review_when_a_vision_score_is_out_of_range_then_it_is_clamped() {
        let events = vision_events(backed_in_peer_review(), vision(f64::NAN));
        assert!(matches!(
            &events[..],
            [EvidenceEvent::EvidenceVisionAssessed { stage: Stage::Rejected, assessment, .. }, EvidenceEvent::EvidenceRejected { .. }]
                if assessment.overall_confidence == 0.0
        ));
        let events = vision_events(backed_in_peer_review(), vision(7.0));
        assert!(matches!(
            &events[1],
            EvidenceEvent::EvidenceVerified { confidence, .. } if *confidence == 1.0
        ));
    }

    #[test]
    fn given_evidence_in_peer_review_when_most_confidence_rejects_then_rejected() {
        let mut given = in_peer_review();
        given.push(cast(10, Verdict::Reject, 0.9));
        given.push(cast(11, Verdict::Approve, 0.3));
        let events = TestFramework::<Evidence>::with(())
            .given(given)
            .when(vote(12, Verdict::Reject, 0.6))
            .inspect_result()
            .expect("voted");
        // peer = 0.3 / 1.8 = 0.167; final = 0.28 + 0.1 = 0.38
        assert!(
            matches!(
                &events[1],
                EvidenceEvent::EvidenceRejected { source, confidence, .. } if source == "peer" && *confidence == 0.38
            ),
            "{events:?}"
        );
    }

    #[test]
    fn given_evidence_in_peer_review_when_a_vote_breaks_a_rule_then_refused() {
        TestFramework::<Evidence>::with(())
            .given(in_peer_review())
            .when(vote(3, Verdict::Approve, 0.9))
            .then_expect_error(DomainError::Forbidden(
                "you cannot review your own evidence",
            ));
        let mut voted = in_peer_review();
        voted.push(cast(10, Verdict::Approve, 0.9));
        TestFramework::<Evidence>::with(())
            .given(voted)
            .when(vote(10, Verdict::Reject, 0.9))
            .then_expect_error(DomainError::DuplicateVote);
        TestFramework::<Evidence>::with(())
            .given(in_peer_review())
            .when(vote(10, Verdict::Approve, 1.5))
            .then_expect_error(DomainError::invalid("confidence", "from 0 to 1"));
        let mut short = vote(10, Verdict::Approve, 0.5);
        if let EvidenceCommand::Vote { reasoning, .. } = &mut short {
            *reasoning = "looks fine".into();
        }
        TestFramework::<Evidence>::with(())
            .given(in_peer_review())
            .when(short)
            .then_expect_error(DomainError::invalid("reasoning", "20–2000 characters"));
        // Verified evidence takes no votes.
        let mut backed = submit(ACTIVE, vec![file(0)], at() - TimeDelta::hours(1));
        if let EvidenceCommand::Submit { exif_location, .. } = &mut backed {
            *exif_location = Some(point(-1.301, 36.811));
        }
        let verified = events_of(backed);
        TestFramework::<Evidence>::with(())
            .given(verified)
            .when(vote(10, Verdict::Approve, 0.9))
            .then_expect_error(DomainError::InvalidState(
                "this evidence is not awaiting peer review",
            ));
    }

    #[test]
    fn given_rejected_evidence_when_its_owner_appeals_and_an_admin_approves_then_verified_with_full_confidence()
     {
        let mut copied = file(0);
        copied.duplicate_of = Some(Uuid::from_u128(77));
        let rejected = events_of(submit_with(
            ACTIVE,
            vec![copied],
            capture(Some(point(-1.03, 37.07)), at()),
        ));
        let appeal = |human: Uuid, reason: &str| EvidenceCommand::Appeal {
            human_id: human,
            reason: reason.into(),
            at: at(),
        };
        let reason = "The photo is mine; I reused it by mistake, here is the context.";
        TestFramework::<Evidence>::with(())
            .given(rejected.clone())
            .when(appeal(Uuid::from_u128(9), reason))
            .then_expect_error(DomainError::Forbidden("only the submitter may appeal"));
        TestFramework::<Evidence>::with(())
            .given(rejected.clone())
            .when(appeal(HUMAN, "too short"))
            .then_expect_error(DomainError::invalid("reason", "20–2000 characters"));
        let appealed = TestFramework::<Evidence>::with(())
            .given(rejected.clone())
            .when(appeal(HUMAN, reason))
            .inspect_result()
            .expect("appealed");
        let mut given = rejected;
        given.extend(appealed);
        TestFramework::<Evidence>::with(())
            .given(given.clone())
            .when(appeal(HUMAN, reason))
            .then_expect_error(DomainError::InvalidState(
                "only a rejection may be appealed, once",
            ));
        let events = TestFramework::<Evidence>::with(())
            .given(given)
            .when(EvidenceCommand::ResolveAppeal {
                admin_id: Uuid::from_u128(99),
                approve: true,
                reasoning: "Checked with the ward office: genuine.".into(),
                at: at(),
            })
            .inspect_result()
            .expect("resolved");
        assert!(
            matches!(
                &events[1],
                EvidenceEvent::EvidenceVerified { source, confidence, token_reward: 25, .. }
                    if source == "admin" && *confidence == 1.0
            ),
            "{events:?}"
        );
    }

    #[test]
    fn given_no_open_appeal_when_an_admin_resolves_then_refused() {
        TestFramework::<Evidence>::with(())
            .given(in_peer_review())
            .when(EvidenceCommand::ResolveAppeal {
                admin_id: Uuid::from_u128(99),
                approve: true,
                reasoning: "Looks fine to me overall.".into(),
                at: at(),
            })
            .then_expect_error(DomainError::InvalidState(
                "no appeal is open on this evidence",
            ));
    }

    #[test]
    fn given_an_appeal_on_an_admins_own_evidence_when_they_resolve_it_then_refused() {
        let mut copied = file(0);
        copied.duplicate_of = Some(Uuid::from_u128(77));
        let mut given = events_of(submit_with(
            ACTIVE,
            vec![copied],
            capture(Some(point(-1.03, 37.07)), at()),
        ));
        given.extend(
            TestFramework::<Evidence>::with(())
                .given(given.clone())
                .when(EvidenceCommand::Appeal {
                    human_id: HUMAN,
                    reason: "The photo is mine and it is from the right well, truly.".into(),
                    at: at(),
                })
                .inspect_result()
                .expect("appealed"),
        );
        TestFramework::<Evidence>::with(())
            .given(given)
            .when(EvidenceCommand::ResolveAppeal {
                admin_id: HUMAN,
                approve: true,
                reasoning: "Approving my own appeal.".into(),
                at: at(),
            })
            .then_expect_error(DomainError::Forbidden(
                "an admin cannot resolve an appeal on their own evidence",
            ));
    }
}
