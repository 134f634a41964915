//! What evidence carries and how it is weighed: file limits, the facts of the claim and mission it
//! is checked against, the automatic checks, the vision model's assessment, peer votes, stages,
//! verdicts and the reward.

use chrono::{DateTime, TimeDelta, Utc};
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
pub(crate) struct Vote {
    pub(crate) reviewer: Uuid,
    pub(crate) approve: bool,
    pub(crate) confidence: f64,
}

/// The decision of §6.3 over `votes`, with the automatic score `ai`: `(verified, final confidence)`.
/// `peer = Σ confidence of approvals / Σ confidence`; `final = 0.4·ai + 0.6·peer`; verified when
/// `final ≥ 0.6` and `peer ≥ 0.5`.
pub(crate) fn peer_decision(votes: &[Vote], ai: f64) -> (bool, f64) {
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
    pub(crate) fn bounded(mut self) -> Self {
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
