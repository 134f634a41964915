use chrono::TimeDelta;
use cqrs_es::test::TestFramework;

use super::*;
use crate::{mission::spec::EvidenceKind, values::GeoPoint};

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
fn given_an_active_claim_when_good_evidence_is_submitted_then_checked_and_verified_automatically() {
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
fn given_an_ambiguous_vision_score_when_peers_decide_then_it_is_the_automatic_score_they_weigh() {
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
fn given_a_duplicate_in_peer_review_when_the_vision_model_is_confident_then_peers_still_decide() {
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
