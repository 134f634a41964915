//! What claimants, peers, admins and the verifier ask of evidence.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::checks::*;
use crate::values::GeoPoint;

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
