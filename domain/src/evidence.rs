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

use crate::{DomainError, mission::EvidenceKind, values::GeoPoint};

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

/// Commands of the `Evidence` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum EvidenceCommand {
    /// A claimant submits evidence.
    Submit {
        evidence_id: Uuid,
        mission_id: Uuid,
        human_id: Uuid,
        claim: ClaimCheck,
        files: Vec<StoredFile>,
        capture: Box<Capture>,
        notes: Option<String>,
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
        submitted_at: DateTime<Utc>,
    },
}

impl DomainEvent for EvidenceEvent {
    fn event_type(&self) -> String {
        match self {
            Self::EvidenceSubmitted { .. } => "EvidenceSubmitted",
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
                sink.write(
                    EvidenceEvent::EvidenceSubmitted {
                        evidence_id,
                        mission_id,
                        claim_id,
                        human_id,
                        files,
                        capture,
                        notes,
                        submitted_at: at,
                    },
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            EvidenceEvent::EvidenceSubmitted {
                evidence_id,
                human_id,
                ..
            } => {
                self.id = Some(evidence_id);
                self.submitter = Some(human_id);
            }
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

    fn capture(captured_at: DateTime<Utc>) -> Box<Capture> {
        Box::new(Capture {
            location: Some(GeoPoint::parse(-1.29, 36.82).expect("point")),
            location_source: Some("form".into()),
            captured_at: Some(captured_at),
            exif: Default::default(),
        })
    }

    fn submit(
        claim: ClaimCheck,
        files: Vec<StoredFile>,
        captured_at: DateTime<Utc>,
    ) -> EvidenceCommand {
        EvidenceCommand::Submit {
            evidence_id: EVIDENCE,
            mission_id: MISSION,
            human_id: HUMAN,
            claim,
            files,
            capture: capture(captured_at),
            notes: Some("Strip shows no contamination".into()),
            at: at(),
        }
    }

    #[test]
    fn given_an_active_claim_when_evidence_is_submitted_then_it_is_recorded_for_that_claim() {
        TestFramework::<Evidence>::with(())
            .given_no_previous_events()
            .when(submit(
                ClaimCheck::Active { claim_id: CLAIM },
                vec![file(0)],
                at() - TimeDelta::hours(1),
            ))
            .then_expect_events(vec![EvidenceEvent::EvidenceSubmitted {
                evidence_id: EVIDENCE,
                mission_id: MISSION,
                claim_id: CLAIM,
                human_id: HUMAN,
                files: vec![file(0)],
                capture: capture(at() - TimeDelta::hours(1)),
                notes: Some("Strip shows no contamination".into()),
                submitted_at: at(),
            }]);
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
        let active = ClaimCheck::Active { claim_id: CLAIM };
        let cases = [
            (submit(active, vec![], at()), "files"),
            (submit(active, (0..6).map(file).collect(), at()), "files"),
            (
                submit(active, vec![file(0)], at() + TimeDelta::hours(1)),
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
            .when(submit(active, vec![file(0)], at() + TimeDelta::minutes(3)))
            .inspect_result()
            .expect("within the clock skew");
    }
}
