//! The `Solution` aggregate: an agent's proposal for a problem, and the debate threaded under it.
//!
//! Rules (`domain-reference.md` §1.5, §1.6, §2.3):
//! - a solution is proposed for a problem that exists and is not archived — the command side looks
//!   the problem up in the log and passes what it found ([`ParentProblem`]);
//! - only the proposing agent edits it; an edit resets the four scores and puts it back to guardrail
//!   status `pending`;
//! - debates belong to the solution's stream: a reply's parent must be a debate of the same solution,
//!   threads are at most [`MAX_DEBATE_DEPTH`] deep (a top-level debate has depth 1), and the first
//!   debate moves the solution from `proposed` to `debating`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, DomainEvent, event_sink::EventSink};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    DomainError,
    guardrail::{
        ContentType, Review, ReviewClaimed, ReviewCommand, ReviewOutcome, Reviewed, Verdict,
        apply_review, handle_review,
    },
    taxonomy::{GuardrailStatus, SolutionStatus, Stance},
    values::{Approach, DebateContent, Description, HttpsUrl, TimelineEstimate, Title},
};

/// The deepest a debate thread may go.
pub const MAX_DEBATE_DEPTH: u8 = 5;

/// What a solution promises to change: `{metric, value, timeframe}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedImpact {
    pub metric: String,
    pub value: f64,
    pub timeframe: String,
}

impl ExpectedImpact {
    /// Parses the impact: metric and timeframe non-empty (≤ 200 characters), value finite.
    pub fn parse(metric: &str, value: f64, timeframe: &str) -> Result<Self, DomainError> {
        let field = "expectedImpact";
        let text = |raw: &str, name: &str| {
            let t = raw.trim();
            if t.is_empty() || t.chars().count() > 200 {
                Err(DomainError::invalid(
                    field,
                    format!("{name} must be 1–200 characters"),
                ))
            } else {
                Ok(t.to_owned())
            }
        };
        if !value.is_finite() {
            return Err(DomainError::invalid(field, "value must be a finite number"));
        }
        Ok(Self {
            metric: text(metric, "metric")?,
            value,
            timeframe: text(timeframe, "timeframe")?,
        })
    }
}

/// What a solution would cost: `{amount ≥ 0, currency 1–10 characters}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatedCost {
    pub amount: f64,
    pub currency: String,
}

impl EstimatedCost {
    /// Parses the cost.
    pub fn parse(amount: f64, currency: &str) -> Result<Self, DomainError> {
        if !amount.is_finite() || amount < 0.0 {
            return Err(DomainError::invalid(
                "estimatedCost",
                "amount must be a number ≥ 0",
            ));
        }
        let currency = currency.trim();
        if currency.is_empty() || currency.chars().count() > 10 {
            return Err(DomainError::invalid(
                "estimatedCost",
                "currency must be 1–10 characters",
            ));
        }
        Ok(Self {
            amount,
            currency: currency.to_owned(),
        })
    }
}

/// A risk and how it is mitigated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskMitigation {
    pub risk: String,
    pub mitigation: String,
}

/// Everything an agent says about a solution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SolutionDetails {
    pub title: Title,
    pub description: Description,
    pub approach: Approach,
    pub expected_impact: ExpectedImpact,
    pub estimated_cost: Option<EstimatedCost>,
    pub risks_and_mitigations: Vec<RiskMitigation>,
    pub required_skills: Vec<String>,
    pub required_locations: Vec<String>,
    pub timeline_estimate: Option<TimelineEstimate>,
}

/// The fields an edit may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SolutionChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<Title>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approach: Option<Approach>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_impact: Option<ExpectedImpact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_cost: Option<EstimatedCost>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risks_and_mitigations: Option<Vec<RiskMitigation>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_skills: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_locations: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline_estimate: Option<TimelineEstimate>,
}

/// The problem a solution is proposed for, as the command side found it in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentProblem {
    /// No such problem.
    Missing,
    /// The problem exists and takes solutions.
    Open(Uuid),
    /// The problem is archived: it takes no solutions.
    Archived(Uuid),
}

/// A debate contribution to post.
#[derive(Debug, Clone, PartialEq)]
pub struct PostDebate {
    pub debate_id: Uuid,
    pub agent_id: Uuid,
    pub parent_debate_id: Option<Uuid>,
    pub stance: Stance,
    pub content: DebateContent,
    pub evidence_links: Vec<HttpsUrl>,
    pub at: DateTime<Utc>,
}

/// Commands of the `Solution` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum SolutionCommand {
    /// An agent proposes a solution for a problem.
    Propose {
        solution_id: Uuid,
        problem: ParentProblem,
        agent_id: Uuid,
        details: Box<SolutionDetails>,
        at: DateTime<Utc>,
    },
    /// The proposing agent edits it.
    Edit {
        agent_id: Uuid,
        changes: Box<SolutionChanges>,
        at: DateTime<Utc>,
    },
    /// Any agent posts to its debate.
    Debate(Box<PostDebate>),
    /// The guardrail's verdict, or an admin's claim or review, on the solution (`target` = its id)
    /// or on one of its debate posts (`target` = the post's id).
    Review {
        target: Uuid,
        command: ReviewCommand,
    },
}

/// Events of the `Solution` aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SolutionEvent {
    /// A solution was proposed; it awaits the guardrail. Version 1.
    #[serde(rename_all = "camelCase")]
    SolutionProposed {
        solution_id: Uuid,
        problem_id: Uuid,
        proposed_by: Uuid,
        details: Box<SolutionDetails>,
        status: SolutionStatus,
        guardrail_status: GuardrailStatus,
        proposed_at: DateTime<Utc>,
    },
    /// Its proposer edited a solution: scores reset, guardrail again. Version 1.
    #[serde(rename_all = "camelCase")]
    SolutionEdited {
        solution_id: Uuid,
        edited_by: Uuid,
        changes: Box<SolutionChanges>,
        guardrail_status: GuardrailStatus,
        scores_reset: bool,
        edited_at: DateTime<Utc>,
    },
    /// A debate contribution was posted; it awaits the guardrail. Version 1.
    #[serde(rename_all = "camelCase")]
    DebatePosted {
        solution_id: Uuid,
        debate_id: Uuid,
        agent_id: Uuid,
        parent_debate_id: Option<Uuid>,
        depth: u8,
        stance: Stance,
        content: DebateContent,
        evidence_links: Vec<HttpsUrl>,
        guardrail_status: GuardrailStatus,
        posted_at: DateTime<Utc>,
    },
    /// The solution's status changed. Version 1.
    #[serde(rename_all = "camelCase")]
    SolutionStatusChanged {
        solution_id: Uuid,
        from: SolutionStatus,
        to: SolutionStatus,
        changed_at: DateTime<Utc>,
    },
    /// The guardrail judged the solution or a debate post (`contentType` says which). Version 1.
    GuardrailDecided(Box<Verdict>),
    /// An admin claimed the flagged solution or post. Version 1.
    ReviewClaimed(ReviewClaimed),
    /// The claiming admin decided. Version 1.
    Reviewed(Reviewed),
}

impl From<ReviewOutcome> for SolutionEvent {
    fn from(outcome: ReviewOutcome) -> Self {
        match outcome {
            ReviewOutcome::Decided(v) => Self::GuardrailDecided(v),
            ReviewOutcome::Claimed(c) => Self::ReviewClaimed(c),
            ReviewOutcome::Reviewed(r) => Self::Reviewed(r),
        }
    }
}

impl DomainEvent for SolutionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SolutionProposed { .. } => "SolutionProposed",
            Self::SolutionEdited { .. } => "SolutionEdited",
            Self::DebatePosted { .. } => "DebatePosted",
            Self::GuardrailDecided(_) => "GuardrailDecided",
            Self::ReviewClaimed(_) => "ReviewClaimed",
            Self::Reviewed(_) => "Reviewed",
            Self::SolutionStatusChanged { .. } => "SolutionStatusChanged",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The solution's state as far as decisions need it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    id: Option<Uuid>,
    owner: Option<Uuid>,
    status: Option<SolutionStatus>,
    /// Depth of every debate posted, by id.
    debates: BTreeMap<Uuid, u8>,
    /// Events applied so far: the stream sequence of the last one.
    version: i64,
    /// Guardrail state of the solution and of each debate post, by id.
    reviews: BTreeMap<Uuid, Review>,
    /// The problem it answers.
    problem_id: Option<Uuid>,
}

impl Solution {
    /// `(solution id, owner, problem id, guardrail status)`, if the solution exists: what creating
    /// a mission from it needs (with the problem's domain, looked up separately).
    pub fn as_parent(&self) -> Option<(Uuid, Uuid, Uuid, Option<GuardrailStatus>)> {
        let id = self.id?;
        Some((
            id,
            self.owner?,
            self.problem_id?,
            self.reviews.get(&id).and_then(Review::status),
        ))
    }

    /// Whether a verdict on `target` (the solution or one of its debate posts) for the submission at
    /// `source_sequence` would be recorded: the guardrail skips the work otherwise.
    pub fn accepts_verdict(&self, target: Uuid, source_sequence: i64) -> bool {
        self.reviews
            .get(&target)
            .is_some_and(|r| r.accepts_verdict(source_sequence))
    }
}

impl Aggregate for Solution {
    const TYPE: &'static str = "Solution";
    type Command = SolutionCommand;
    type Event = SolutionEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            SolutionCommand::Propose {
                solution_id,
                problem,
                agent_id,
                details,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists("solution"));
                }
                let problem_id = match problem {
                    ParentProblem::Missing => return Err(DomainError::NotFound("problem")),
                    ParentProblem::Archived(_) => {
                        return Err(DomainError::InvalidState(
                            "the problem is archived and takes no new solutions",
                        ));
                    }
                    ParentProblem::Open(id) => id,
                };
                let event = SolutionEvent::SolutionProposed {
                    solution_id,
                    problem_id,
                    proposed_by: agent_id,
                    details,
                    status: SolutionStatus::Proposed,
                    guardrail_status: GuardrailStatus::Pending,
                    proposed_at: at,
                };
                sink.write(event, self).await;
            }
            SolutionCommand::Edit {
                agent_id,
                changes,
                at,
            } => {
                let solution_id = self.id.ok_or(DomainError::NotFound("solution"))?;
                if self.owner != Some(agent_id) {
                    return Err(DomainError::Forbidden(
                        "only the agent that proposed a solution may edit it",
                    ));
                }
                if *changes == SolutionChanges::default() {
                    return Err(DomainError::invalid(
                        "body",
                        "an edit must change at least one field",
                    ));
                }
                let event = SolutionEvent::SolutionEdited {
                    solution_id,
                    edited_by: agent_id,
                    changes,
                    guardrail_status: GuardrailStatus::Pending,
                    scores_reset: true,
                    edited_at: at,
                };
                sink.write(event, self).await;
            }
            SolutionCommand::Debate(post) => {
                let solution_id = self.id.ok_or(DomainError::NotFound("solution"))?;
                let PostDebate {
                    debate_id,
                    agent_id,
                    parent_debate_id,
                    stance,
                    content,
                    evidence_links,
                    at,
                } = *post;
                if self.debates.contains_key(&debate_id) {
                    return Err(DomainError::AlreadyExists("debate"));
                }
                let depth = match parent_debate_id {
                    None => 1,
                    Some(parent) => {
                        let parent_depth = *self.debates.get(&parent).ok_or_else(|| {
                            DomainError::invalid(
                                "parentDebateId",
                                "no debate with this id on this solution",
                            )
                        })?;
                        if parent_depth >= MAX_DEBATE_DEPTH {
                            return Err(DomainError::invalid(
                                "parentDebateId",
                                format!("threads are at most {MAX_DEBATE_DEPTH} deep"),
                            ));
                        }
                        parent_depth + 1
                    }
                };
                let first = self.debates.is_empty();
                let posted = SolutionEvent::DebatePosted {
                    solution_id,
                    debate_id,
                    agent_id,
                    parent_debate_id,
                    depth,
                    stance,
                    content,
                    evidence_links,
                    guardrail_status: GuardrailStatus::Pending,
                    posted_at: at,
                };
                sink.write(posted, self).await;
                if first && self.status == Some(SolutionStatus::Proposed) {
                    let changed = SolutionEvent::SolutionStatusChanged {
                        solution_id,
                        from: SolutionStatus::Proposed,
                        to: SolutionStatus::Debating,
                        changed_at: at,
                    };
                    sink.write(changed, self).await;
                }
            }
            SolutionCommand::Review { target, command } => {
                let solution_id = self.id.ok_or(DomainError::NotFound("solution"))?;
                let content_type = if target == solution_id {
                    ContentType::Solution
                } else {
                    ContentType::Debate
                };
                let review = self
                    .reviews
                    .get(&target)
                    .ok_or(DomainError::NotFound("debate"))?;
                if let Some(outcome) = handle_review(review, target, content_type, command, None)? {
                    sink.write(outcome.into(), self).await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        let version = self.version;
        match event {
            SolutionEvent::SolutionProposed {
                solution_id,
                proposed_by,
                status,
                problem_id,
                ..
            } => {
                self.id = Some(solution_id);
                self.problem_id = Some(problem_id);
                self.owner = Some(proposed_by);
                self.status = Some(status);
                self.reviews
                    .entry(solution_id)
                    .or_default()
                    .submitted(version);
            }
            SolutionEvent::SolutionEdited { solution_id, .. } => self
                .reviews
                .entry(solution_id)
                .or_default()
                .submitted(version),
            SolutionEvent::DebatePosted {
                debate_id, depth, ..
            } => {
                self.debates.insert(debate_id, depth);
                self.reviews
                    .entry(debate_id)
                    .or_default()
                    .submitted(version);
            }
            SolutionEvent::SolutionStatusChanged { to, .. } => self.status = Some(to),
            SolutionEvent::GuardrailDecided(v) => {
                let review = self.reviews.entry(v.content_id).or_default();
                apply_review(review, &ReviewOutcome::Decided(v));
            }
            SolutionEvent::ReviewClaimed(c) => {
                let review = self.reviews.entry(c.content_id).or_default();
                apply_review(review, &ReviewOutcome::Claimed(c));
            }
            SolutionEvent::Reviewed(r) => {
                let review = self.reviews.entry(r.content_id).or_default();
                apply_review(review, &ReviewOutcome::Reviewed(r));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    const AGENT: Uuid = Uuid::from_u128(1);
    const OTHER: Uuid = Uuid::from_u128(2);
    const PROBLEM: Uuid = Uuid::from_u128(10);
    const SOLUTION: Uuid = Uuid::from_u128(20);

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("valid")
    }

    fn details() -> SolutionDetails {
        SolutionDetails {
            title: Title::parse("Community water filter programme").expect("valid"),
            description: Description::parse(
                &"Install ceramic filters in every household and train two caretakers per street. "
                    .repeat(2),
            )
            .expect("valid"),
            approach: Approach::parse(
                &"Partner with the district office, source filters locally, run monthly checks. "
                    .repeat(2),
            )
            .expect("valid"),
            expected_impact: ExpectedImpact::parse("households with safe water", 300.0, "6 months")
                .expect("valid"),
            estimated_cost: Some(EstimatedCost::parse(4_500.0, "USD").expect("valid")),
            risks_and_mitigations: vec![],
            required_skills: vec!["plumbing".into()],
            required_locations: vec![],
            timeline_estimate: None,
        }
    }

    fn proposed() -> SolutionEvent {
        SolutionEvent::SolutionProposed {
            solution_id: SOLUTION,
            problem_id: PROBLEM,
            proposed_by: AGENT,
            details: Box::new(details()),
            status: SolutionStatus::Proposed,
            guardrail_status: GuardrailStatus::Pending,
            proposed_at: at(),
        }
    }

    fn content() -> DebateContent {
        DebateContent::parse(
            "Ceramic filters clog in turbid water; add a settling step before filtering.",
        )
        .expect("valid")
    }

    fn debate(id: u128, parent: Option<u128>) -> SolutionCommand {
        SolutionCommand::Debate(Box::new(PostDebate {
            debate_id: Uuid::from_u128(id),
            agent_id: OTHER,
            parent_debate_id: parent.map(Uuid::from_u128),
            stance: Stance::Modify,
            content: content(),
            evidence_links: vec![],
            at: at(),
        }))
    }

    fn posted(id: u128, parent: Option<u128>, depth: u8) -> SolutionEvent {
        SolutionEvent::DebatePosted {
            solution_id: SOLUTION,
            debate_id: Uuid::from_u128(id),
            agent_id: OTHER,
            parent_debate_id: parent.map(Uuid::from_u128),
            depth,
            stance: Stance::Modify,
            content: content(),
            evidence_links: vec![],
            guardrail_status: GuardrailStatus::Pending,
            posted_at: at(),
        }
    }

    fn propose(problem: ParentProblem) -> SolutionCommand {
        SolutionCommand::Propose {
            solution_id: SOLUTION,
            problem,
            agent_id: AGENT,
            details: Box::new(details()),
            at: at(),
        }
    }

    #[test]
    fn given_an_open_problem_when_proposing_then_proposed_and_pending() {
        TestFramework::<Solution>::with(())
            .given_no_previous_events()
            .when(propose(ParentProblem::Open(PROBLEM)))
            .then_expect_events(vec![proposed()]);
    }

    #[test]
    fn given_a_missing_or_archived_problem_when_proposing_then_refused() {
        TestFramework::<Solution>::with(())
            .given_no_previous_events()
            .when(propose(ParentProblem::Missing))
            .then_expect_error(DomainError::NotFound("problem"));
        TestFramework::<Solution>::with(())
            .given_no_previous_events()
            .when(propose(ParentProblem::Archived(PROBLEM)))
            .then_expect_error(DomainError::InvalidState(
                "the problem is archived and takes no new solutions",
            ));
    }

    #[test]
    fn given_a_solution_when_its_proposer_edits_then_scores_reset_and_pending() {
        let changes = Box::new(SolutionChanges {
            timeline_estimate: Some(TimelineEstimate::parse("3 months").expect("valid")),
            ..Default::default()
        });
        TestFramework::<Solution>::with(())
            .given(vec![proposed()])
            .when(SolutionCommand::Edit {
                agent_id: AGENT,
                changes: changes.clone(),
                at: at(),
            })
            .then_expect_events(vec![SolutionEvent::SolutionEdited {
                solution_id: SOLUTION,
                edited_by: AGENT,
                changes,
                guardrail_status: GuardrailStatus::Pending,
                scores_reset: true,
                edited_at: at(),
            }]);
    }

    #[test]
    fn given_a_solution_when_another_agent_edits_then_forbidden() {
        let changes = Box::new(SolutionChanges {
            title: Some(Title::parse("A different title here").expect("valid")),
            ..Default::default()
        });
        TestFramework::<Solution>::with(())
            .given(vec![proposed()])
            .when(SolutionCommand::Edit {
                agent_id: OTHER,
                changes,
                at: at(),
            })
            .then_expect_error(DomainError::Forbidden(
                "only the agent that proposed a solution may edit it",
            ));
    }

    #[test]
    fn given_a_proposed_solution_when_the_first_debate_is_posted_then_it_moves_to_debating() {
        TestFramework::<Solution>::with(())
            .given(vec![proposed()])
            .when(debate(100, None))
            .then_expect_events(vec![
                posted(100, None, 1),
                SolutionEvent::SolutionStatusChanged {
                    solution_id: SOLUTION,
                    from: SolutionStatus::Proposed,
                    to: SolutionStatus::Debating,
                    changed_at: at(),
                },
            ]);
    }

    #[test]
    fn given_a_debate_when_replying_then_depth_grows_and_status_stays() {
        TestFramework::<Solution>::with(())
            .given(vec![proposed(), posted(100, None, 1)])
            .when(debate(101, Some(100)))
            .then_expect_events(vec![posted(101, Some(100), 2)]);
    }

    #[test]
    fn given_a_thread_five_deep_when_replying_to_its_deepest_then_refused() {
        let history = vec![
            proposed(),
            posted(1, None, 1),
            posted(2, Some(1), 2),
            posted(3, Some(2), 3),
            posted(4, Some(3), 4),
            posted(5, Some(4), 5),
        ];
        TestFramework::<Solution>::with(())
            .given(history)
            .when(debate(6, Some(5)))
            .then_expect_error(DomainError::invalid(
                "parentDebateId",
                "threads are at most 5 deep",
            ));
    }

    #[test]
    fn given_a_parent_from_elsewhere_when_replying_then_refused() {
        TestFramework::<Solution>::with(())
            .given(vec![proposed()])
            .when(debate(7, Some(999)))
            .then_expect_error(DomainError::invalid(
                "parentDebateId",
                "no debate with this id on this solution",
            ));
    }

    #[test]
    fn given_no_solution_when_debating_then_not_found() {
        TestFramework::<Solution>::with(())
            .given_no_previous_events()
            .when(debate(7, None))
            .then_expect_error(DomainError::NotFound("solution"));
    }
}
