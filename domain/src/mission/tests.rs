use chrono::TimeDelta;
use cqrs_es::test::TestFramework;

use super::*;
use crate::{
    guardrail::{TrustPolicy, TrustTier, Verdict, verdict_id},
    taxonomy::ProblemDomain,
};

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
        description: "Take a sample from the well, run the strip test and photograph the result."
            .into(),
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
fn given_a_claim_when_its_evidence_is_verified_then_it_completes_once_and_so_does_a_full_mission() {
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
