use chrono::DateTime;

use super::*;
use crate::DomainError;

fn assessment(alignment: f64, harm: HarmRisk) -> Assessment {
    Assessment {
        alignment,
        aligned_domain: Some(ProblemDomain::CleanWaterSanitation),
        harm_risk: harm,
        harm_category: None,
        solution_scores: None,
        explanation: None,
    }
}

const VERIFIED: Thresholds = Thresholds {
    approve: 0.70,
    reject_below: 0.40,
};

#[test]
fn normalising_removes_what_hides_a_word() {
    assert_eq!(
        normalise("  W\u{200b}eapon\u{00ad}s  and\tbo\u{301}mbs "),
        "weapons and bombs"
    );
    assert_eq!(normalise("Caf\u{e9}"), "cafe");
}

#[test]
fn given_an_unambiguous_statement_of_intent_when_screened_then_rejected_whatever_layer_b_says() {
    let hits = layer_a(&normalise("Here is how to build pipe bombs at home"));
    assert_eq!(hits[0].action, PatternAction::Reject);
    let (decision, reasons) = decide(&hits, Some(&assessment(0.99, HarmRisk::None)), VERIFIED);
    assert_eq!(decision, GuardrailStatus::Rejected, "{reasons:?}");
}

#[test]
fn given_an_ambiguous_category_when_screened_then_a_human_looks() {
    let hits = layer_a(&normalise(
        "Elderly residents lose savings to phone fraud; a volunteer hotline helps them check callers",
    ));
    assert_eq!(
        hits,
        vec![PatternHit {
            category: "financial_exploitation".into(),
            action: PatternAction::Flag
        }]
    );
    let (decision, _) = decide(&hits, Some(&assessment(0.95, HarmRisk::None)), VERIFIED);
    assert_eq!(decision, GuardrailStatus::Flagged);
    assert!(layer_a(&normalise("Households lack clean water after the flood")).is_empty());
}

#[test]
fn given_a_score_when_decided_then_the_tier_bands_apply() {
    for (alignment, want) in [
        (0.70, GuardrailStatus::Approved),
        (0.69, GuardrailStatus::Flagged),
        (0.40, GuardrailStatus::Flagged),
        (0.39, GuardrailStatus::Rejected),
    ] {
        assert_eq!(
            decide(&[], Some(&assessment(alignment, HarmRisk::None)), VERIFIED).0,
            want,
            "{alignment}"
        );
    }
    let new = TrustPolicy::default().thresholds(TrustTier::New);
    assert_eq!(
        decide(&[], Some(&assessment(0.84, HarmRisk::None)), new).0,
        GuardrailStatus::Flagged,
        "a new agent needs a very high score"
    );
    assert_eq!(
        decide(&[], Some(&assessment(0.85, HarmRisk::None)), new).0,
        GuardrailStatus::Approved
    );
    assert_eq!(
        decide(&[], Some(&assessment(0.95, HarmRisk::High)), VERIFIED).0,
        GuardrailStatus::Rejected
    );
    assert_eq!(
        decide(&[], Some(&assessment(0.95, HarmRisk::Medium)), VERIFIED).0,
        GuardrailStatus::Flagged
    );
    assert_eq!(
        decide(&[], None, VERIFIED).0,
        GuardrailStatus::Flagged,
        "no classifier: an admin decides"
    );
}

#[test]
fn given_an_approved_solution_when_its_composite_is_low_then_it_is_flagged_or_rejected() {
    let with = |impact, feasibility, cost_efficiency| Assessment {
        solution_scores: Some(SolutionScores {
            impact,
            feasibility,
            cost_efficiency,
        }),
        ..assessment(0.9, HarmRisk::None)
    };
    assert_eq!(
        decide(&[], Some(&with(80.0, 80.0, 80.0)), VERIFIED).0,
        GuardrailStatus::Approved
    );
    assert_eq!(
        decide(&[], Some(&with(50.0, 50.0, 50.0)), VERIFIED).0,
        GuardrailStatus::Flagged
    );
    assert_eq!(
        decide(&[], Some(&with(30.0, 30.0, 30.0)), VERIFIED).0,
        GuardrailStatus::Rejected
    );
}

#[test]
fn given_a_near_duplicate_when_decided_then_an_approval_becomes_a_flag_naming_it() {
    let other = Uuid::from_u128(42);
    let mut reasons = Vec::new();
    assert_eq!(
        check_duplicate(
            GuardrailStatus::Approved,
            &mut reasons,
            Some((other, 0.95)),
            0.92
        ),
        GuardrailStatus::Flagged
    );
    assert!(reasons[0].contains(&other.to_string()), "{reasons:?}");
    assert_eq!(
        check_duplicate(
            GuardrailStatus::Rejected,
            &mut Vec::new(),
            Some((other, 0.99)),
            0.92
        ),
        GuardrailStatus::Rejected,
        "a rejection stays a rejection"
    );
    assert_eq!(
        check_duplicate(
            GuardrailStatus::Approved,
            &mut Vec::new(),
            Some((other, 0.80)),
            0.92
        ),
        GuardrailStatus::Approved
    );
    assert_eq!(
        check_duplicate(GuardrailStatus::Approved, &mut Vec::new(), None, 0.92),
        GuardrailStatus::Approved
    );
}

#[test]
fn tiers_need_both_age_and_approvals() {
    let policy = TrustPolicy::default();
    assert_eq!(policy.tier(8, 3), TrustTier::Verified);
    assert_eq!(policy.tier(7, 30), TrustTier::New);
    assert_eq!(policy.tier(80, 2), TrustTier::New);
}

fn verdict(sequence: i64, decision: GuardrailStatus) -> Verdict {
    Verdict {
        content_id: Uuid::from_u128(1),
        content_type: ContentType::Problem,
        author_agent_id: Uuid::from_u128(2),
        verdict_id: verdict_id(Uuid::from_u128(3)),
        source_sequence: sequence,
        decision,
        layer_a: vec![],
        assessment: None,
        trust_tier: TrustTier::New,
        thresholds: VERIFIED,
        classifier: "test@1".into(),
        cache_hit: false,
        duration_ms: 1,
        reasons: vec![],
        duplicate_of: None,
        decided_at: DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
    }
}

#[test]
fn given_withdrawn_content_when_a_verdict_or_an_admin_comes_then_the_verdict_is_dropped_and_the_admin_told()
 {
    let mut review = Review::default();
    review.submitted(1);
    let late = ReviewCommand::Decide(Box::new(verdict(1, GuardrailStatus::Approved)));
    assert!(
        handle_review(
            &review,
            Uuid::from_u128(1),
            ContentType::Problem,
            late.clone(),
            None
        )
        .expect("decides")
        .is_some(),
        "live content takes the verdict"
    );
    let withdrawn = Some("the problem is archived");
    assert_eq!(
        handle_review(
            &review,
            Uuid::from_u128(1),
            ContentType::Problem,
            late,
            withdrawn
        ),
        Ok(None),
        "no event, no error: the worker moves on"
    );
    let claim = ReviewCommand::Claim {
        admin: Uuid::from_u128(9),
        verdict_id: Uuid::from_u128(5),
        at: DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
    };
    assert_eq!(
        handle_review(
            &review,
            Uuid::from_u128(1),
            ContentType::Problem,
            claim,
            withdrawn
        ),
        Err(DomainError::InvalidState("the problem is archived"))
    );
}

#[test]
fn given_a_submission_when_verdicts_arrive_then_only_the_first_for_the_latest_submission_counts() {
    let mut review = Review::default();
    review.submitted(1);
    let decide = |review: &Review, sequence| {
        handle_review(
            review,
            Uuid::from_u128(1),
            ContentType::Problem,
            ReviewCommand::Decide(Box::new(verdict(sequence, GuardrailStatus::Flagged))),
            None,
        )
        .expect("decides")
    };
    let first = decide(&review, 1).expect("recorded");
    apply_review(&mut review, &first);
    assert_eq!(decide(&review, 1), None, "a redelivery records nothing");
    review.submitted(3);
    assert_eq!(
        decide(&review, 1),
        None,
        "a verdict on a superseded submission is dropped"
    );
    assert!(decide(&review, 3).is_some());
    assert_eq!(
        verdict_id(Uuid::from_u128(3)),
        verdict_id(Uuid::from_u128(3))
    );
}

#[test]
fn given_a_flagged_item_when_admins_claim_and_review_then_one_claims_and_only_they_decide() {
    let (alice, bob) = (Uuid::from_u128(10), Uuid::from_u128(11));
    let at = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
    let mut review = Review::default();
    review.submitted(1);
    assert_eq!(
        review.check_claim(alice),
        Err(DomainError::InvalidState(
            "only flagged content waits for review"
        ))
    );
    let item = Uuid::from_u128(77);
    review.judged(GuardrailStatus::Flagged, item);
    assert_eq!(
        handle_review(
            &review,
            Uuid::from_u128(1),
            ContentType::Problem,
            ReviewCommand::Claim {
                admin: alice,
                verdict_id: Uuid::from_u128(76),
                at
            },
            None,
        ),
        Err(DomainError::InvalidState(
            "this item was superseded by an edit; review the newer one"
        )),
        "an admin acts on the submission they saw, not a newer one"
    );
    let claimed = handle_review(
        &review,
        Uuid::from_u128(1),
        ContentType::Problem,
        ReviewCommand::Claim {
            admin: alice,
            verdict_id: item,
            at,
        },
        None,
    )
    .expect("claims")
    .expect("an event");
    apply_review(&mut review, &claimed);
    assert_eq!(
        review.check_claim(alice),
        Ok(false),
        "claiming twice records nothing"
    );
    assert_eq!(
        review.check_claim(bob),
        Err(DomainError::AlreadyClaimed(
            "another admin is reviewing this item"
        ))
    );
    let decision = ReviewDecision::parse("approve", "Anti-fraud hotline for elders; legitimate")
        .expect("valid");
    assert_eq!(
        handle_review(
            &review,
            Uuid::from_u128(1),
            ContentType::Problem,
            ReviewCommand::Review {
                admin: bob,
                verdict_id: item,
                decision: decision.clone(),
                at
            },
            None
        ),
        Err(DomainError::Forbidden(
            "only the admin who claimed the item may review it"
        ))
    );
    let reviewed = handle_review(
        &review,
        Uuid::from_u128(1),
        ContentType::Problem,
        ReviewCommand::Review {
            admin: alice,
            verdict_id: item,
            decision,
            at,
        },
        None,
    )
    .expect("reviews")
    .expect("an event");
    apply_review(&mut review, &reviewed);
    assert_eq!(review.status(), Some(GuardrailStatus::Approved));
    assert!(ReviewDecision::parse("maybe", "long enough notes").is_err());
    assert!(ReviewDecision::parse("reject", "short").is_err());
}
