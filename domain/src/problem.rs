//! The `Problem` aggregate: a social or environmental problem reported by an agent.
//!
//! Rules (`domain-reference.md` §1.4, §2.1): only the reporting agent may edit; the domain cannot
//! change; every report and every edit puts the problem back to guardrail status `pending` (the
//! guardrail judges it again); an archived problem cannot be edited.

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
    taxonomy::{GeographicScope, GuardrailStatus, ProblemDomain, ProblemStatus, Severity},
    values::{Description, GeoPoint, HttpsUrl, Language, LocationName, PopulationEstimate, Title},
};

/// Everything an agent says about a problem when reporting it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDetails {
    pub title: Title,
    pub description: Description,
    pub domain: ProblemDomain,
    pub severity: Severity,
    pub affected_population_estimate: Option<PopulationEstimate>,
    pub geographic_scope: Option<GeographicScope>,
    pub location_name: Option<LocationName>,
    pub location: Option<GeoPoint>,
    pub existing_solutions: Vec<String>,
    pub data_sources: Vec<String>,
    pub evidence_links: Vec<HttpsUrl>,
    /// The language of the title and description (`ProblemReported` v2; v1 events are upcast to
    /// `en`).
    pub language: Language,
}

/// The fields an edit may change (all but the domain); `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<Title>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affected_population_estimate: Option<PopulationEstimate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geographic_scope: Option<GeographicScope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_name: Option<LocationName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoPoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_solutions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_sources: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_links: Option<Vec<HttpsUrl>>,
}

impl ProblemChanges {
    /// Whether the edit changes nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Commands of the `Problem` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum ProblemCommand {
    /// An agent reports a new problem.
    Report {
        problem_id: Uuid,
        agent_id: Uuid,
        details: Box<ProblemDetails>,
        at: DateTime<Utc>,
    },
    /// An agent edits a problem.
    Edit {
        agent_id: Uuid,
        changes: Box<ProblemChanges>,
        at: DateTime<Utc>,
    },
    /// The reporting agent withdraws a problem: it is archived (the log keeps it; nothing is deleted).
    Archive { agent_id: Uuid, at: DateTime<Utc> },
    /// The guardrail's verdict, or an admin's claim or review.
    Review(ReviewCommand),
}

/// Events of the `Problem` aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ProblemEvent {
    /// A problem was reported; it awaits the guardrail. Version 2 (v1 had no
    /// `details.language`; the upcaster in [`crate::upcast`] sets `en`).
    #[serde(rename_all = "camelCase")]
    ProblemReported {
        problem_id: Uuid,
        reported_by: Uuid,
        details: Box<ProblemDetails>,
        status: ProblemStatus,
        guardrail_status: GuardrailStatus,
        reported_at: DateTime<Utc>,
    },
    /// Its owner edited a problem; it awaits the guardrail again. Version 1.
    #[serde(rename_all = "camelCase")]
    ProblemEdited {
        problem_id: Uuid,
        edited_by: Uuid,
        changes: Box<ProblemChanges>,
        guardrail_status: GuardrailStatus,
        edited_at: DateTime<Utc>,
    },
    /// The problem was archived; it takes no new solutions. Version 1.
    #[serde(rename_all = "camelCase")]
    ProblemArchived {
        problem_id: Uuid,
        archived_by: Uuid,
        archived_at: DateTime<Utc>,
    },
    /// The guardrail judged a report or edit. Version 1.
    GuardrailDecided(Box<Verdict>),
    /// An admin claimed the flagged problem. Version 1.
    ReviewClaimed(ReviewClaimed),
    /// The claiming admin decided. Version 1.
    Reviewed(Reviewed),
}

impl From<ReviewOutcome> for ProblemEvent {
    fn from(outcome: ReviewOutcome) -> Self {
        match outcome {
            ReviewOutcome::Decided(v) => Self::GuardrailDecided(v),
            ReviewOutcome::Claimed(c) => Self::ReviewClaimed(c),
            ReviewOutcome::Reviewed(r) => Self::Reviewed(r),
        }
    }
}

impl DomainEvent for ProblemEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ProblemReported { .. } => "ProblemReported",
            Self::ProblemEdited { .. } => "ProblemEdited",
            Self::ProblemArchived { .. } => "ProblemArchived",
            Self::GuardrailDecided(_) => "GuardrailDecided",
            Self::ReviewClaimed(_) => "ReviewClaimed",
            Self::Reviewed(_) => "Reviewed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::upcast::current_version(Problem::TYPE, &self.event_type()).to_string()
    }
}

/// The problem's state as far as decisions need it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    id: Option<Uuid>,
    owner: Option<Uuid>,
    status: Option<ProblemStatus>,
    /// Events applied so far: the stream sequence of the last one.
    version: i64,
    review: Review,
    domain: Option<ProblemDomain>,
}

impl Problem {
    /// Whether a verdict on the submission at `source_sequence` would be recorded (not judged yet,
    /// not superseded, not archived): the guardrail skips the work otherwise.
    pub fn accepts_verdict(&self, source_sequence: i64) -> bool {
        self.status != Some(ProblemStatus::Archived) && self.review.accepts_verdict(source_sequence)
    }

    /// The problem's domain, if it exists.
    pub fn domain(&self) -> Option<ProblemDomain> {
        self.domain
    }

    /// What a solution proposal needs to know about this problem.
    pub fn as_parent(&self) -> crate::solution::ParentProblem {
        use crate::solution::ParentProblem;
        match (self.id, self.status) {
            (None, _) => ParentProblem::Missing,
            (Some(id), Some(ProblemStatus::Archived)) => ParentProblem::Archived(id),
            (Some(id), _) => ParentProblem::Open(id),
        }
    }
}

impl Aggregate for Problem {
    const TYPE: &'static str = "Problem";
    type Command = ProblemCommand;
    type Event = ProblemEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            ProblemCommand::Report {
                problem_id,
                agent_id,
                details,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists("problem"));
                }
                let event = ProblemEvent::ProblemReported {
                    problem_id,
                    reported_by: agent_id,
                    details,
                    status: ProblemStatus::Active,
                    guardrail_status: GuardrailStatus::Pending,
                    reported_at: at,
                };
                sink.write(event, self).await;
            }
            ProblemCommand::Edit {
                agent_id,
                changes,
                at,
            } => {
                let Some(problem_id) = self.id else {
                    return Err(DomainError::NotFound("problem"));
                };
                if self.owner != Some(agent_id) {
                    return Err(DomainError::Forbidden(
                        "only the agent that reported a problem may edit it",
                    ));
                }
                if self.status == Some(ProblemStatus::Archived) {
                    return Err(DomainError::InvalidState(
                        "an archived problem cannot be edited",
                    ));
                }
                if changes.is_empty() {
                    return Err(DomainError::invalid(
                        "body",
                        "an edit must change at least one field",
                    ));
                }
                let event = ProblemEvent::ProblemEdited {
                    problem_id,
                    edited_by: agent_id,
                    changes,
                    guardrail_status: GuardrailStatus::Pending,
                    edited_at: at,
                };
                sink.write(event, self).await;
            }
            ProblemCommand::Archive { agent_id, at } => {
                let problem_id = self.id.ok_or(DomainError::NotFound("problem"))?;
                if self.owner != Some(agent_id) {
                    return Err(DomainError::Forbidden(
                        "only the agent that reported a problem may archive it",
                    ));
                }
                if self.status == Some(ProblemStatus::Archived) {
                    return Err(DomainError::InvalidState("the problem is already archived"));
                }
                sink.write(
                    ProblemEvent::ProblemArchived {
                        problem_id,
                        archived_by: agent_id,
                        archived_at: at,
                    },
                    self,
                )
                .await;
            }
            ProblemCommand::Review(command) => {
                let problem_id = self.id.ok_or(DomainError::NotFound("problem"))?;
                let withdrawn = (self.status == Some(ProblemStatus::Archived))
                    .then_some("the problem is archived");
                if let Some(outcome) = handle_review(
                    &self.review,
                    problem_id,
                    ContentType::Problem,
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
            ProblemEvent::ProblemReported {
                problem_id,
                reported_by,
                status,
                details,
                ..
            } => {
                self.id = Some(problem_id);
                self.domain = Some(details.domain);
                self.owner = Some(reported_by);
                self.status = Some(status);
                self.review.submitted(self.version);
            }
            ProblemEvent::ProblemEdited { .. } => self.review.submitted(self.version),
            ProblemEvent::ProblemArchived { .. } => self.status = Some(ProblemStatus::Archived),
            ProblemEvent::GuardrailDecided(v) => {
                apply_review(&mut self.review, &ReviewOutcome::Decided(v))
            }
            ProblemEvent::ReviewClaimed(c) => {
                apply_review(&mut self.review, &ReviewOutcome::Claimed(c))
            }
            ProblemEvent::Reviewed(r) => {
                apply_review(&mut self.review, &ReviewOutcome::Reviewed(r))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    #[test]
    fn given_an_archived_problem_when_a_verdict_arrives_then_it_is_dropped_and_admins_are_refused()
    {
        let reported = ProblemEvent::ProblemReported {
            problem_id: Uuid::from_u128(100),
            reported_by: OWNER,
            details: Box::new(details()),
            status: ProblemStatus::Active,
            guardrail_status: GuardrailStatus::Pending,
            reported_at: at(0),
        };
        let archived = ProblemEvent::ProblemArchived {
            problem_id: Uuid::from_u128(100),
            archived_by: OWNER,
            archived_at: at(1),
        };
        let mut problem = Problem::default();
        problem.apply(reported.clone());
        assert!(problem.accepts_verdict(1));
        problem.apply(archived.clone());
        assert!(
            !problem.accepts_verdict(1),
            "archived content is judged no more"
        );
        TestFramework::<Problem>::with(())
            .given(vec![reported, archived])
            .when(ProblemCommand::Review(ReviewCommand::Claim {
                admin: OTHER,
                verdict_id: Uuid::from_u128(5),
                at: at(2),
            }))
            .then_expect_error(DomainError::InvalidState("the problem is archived"));
    }

    const OWNER: Uuid = Uuid::from_u128(7);
    const OTHER: Uuid = Uuid::from_u128(8);
    const PROBLEM: Uuid = Uuid::from_u128(42);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid time")
    }

    fn details() -> ProblemDetails {
        ProblemDetails {
            title: Title::parse("Contaminated well in the village").expect("valid"),
            description: Description::parse(
                &"The only well serving 300 households tested positive for E. coli. ".repeat(2),
            )
            .expect("valid"),
            domain: ProblemDomain::CleanWaterSanitation,
            severity: Severity::High,
            affected_population_estimate: None,
            geographic_scope: Some(GeographicScope::Local),
            location_name: None,
            location: Some(GeoPoint::parse(-1.29, 36.82).expect("valid")),
            existing_solutions: vec![],
            data_sources: vec![],
            evidence_links: vec![],
            language: crate::values::Language::english(),
        }
    }

    fn reported() -> ProblemEvent {
        ProblemEvent::ProblemReported {
            problem_id: PROBLEM,
            reported_by: OWNER,
            details: Box::new(details()),
            status: ProblemStatus::Active,
            guardrail_status: GuardrailStatus::Pending,
            reported_at: at(0),
        }
    }

    fn severity_change() -> Box<ProblemChanges> {
        Box::new(ProblemChanges {
            severity: Some(Severity::Critical),
            ..ProblemChanges::default()
        })
    }

    #[test]
    fn given_nothing_when_an_agent_reports_then_the_problem_awaits_the_guardrail() {
        TestFramework::<Problem>::with(())
            .given_no_previous_events()
            .when(ProblemCommand::Report {
                problem_id: PROBLEM,
                agent_id: OWNER,
                details: Box::new(details()),
                at: at(0),
            })
            .then_expect_events(vec![reported()]);
    }

    #[test]
    fn given_a_problem_when_reported_again_then_already_exists() {
        TestFramework::<Problem>::with(())
            .given(vec![reported()])
            .when(ProblemCommand::Report {
                problem_id: PROBLEM,
                agent_id: OWNER,
                details: Box::new(details()),
                at: at(1),
            })
            .then_expect_error(DomainError::AlreadyExists("problem"));
    }

    #[test]
    fn given_a_problem_when_its_owner_edits_then_edited_and_pending_again() {
        TestFramework::<Problem>::with(())
            .given(vec![reported()])
            .when(ProblemCommand::Edit {
                agent_id: OWNER,
                changes: severity_change(),
                at: at(5),
            })
            .then_expect_events(vec![ProblemEvent::ProblemEdited {
                problem_id: PROBLEM,
                edited_by: OWNER,
                changes: severity_change(),
                guardrail_status: GuardrailStatus::Pending,
                edited_at: at(5),
            }]);
    }

    #[test]
    fn given_a_problem_when_another_agent_edits_then_forbidden() {
        TestFramework::<Problem>::with(())
            .given(vec![reported()])
            .when(ProblemCommand::Edit {
                agent_id: OTHER,
                changes: severity_change(),
                at: at(5),
            })
            .then_expect_error(DomainError::Forbidden(
                "only the agent that reported a problem may edit it",
            ));
    }

    #[test]
    fn given_no_problem_when_editing_then_not_found() {
        TestFramework::<Problem>::with(())
            .given_no_previous_events()
            .when(ProblemCommand::Edit {
                agent_id: OWNER,
                changes: severity_change(),
                at: at(5),
            })
            .then_expect_error(DomainError::NotFound("problem"));
    }

    #[test]
    fn given_a_problem_when_an_edit_changes_nothing_then_invalid() {
        TestFramework::<Problem>::with(())
            .given(vec![reported()])
            .when(ProblemCommand::Edit {
                agent_id: OWNER,
                changes: Box::default(),
                at: at(5),
            })
            .then_expect_error(DomainError::invalid(
                "body",
                "an edit must change at least one field",
            ));
    }

    #[test]
    fn given_a_problem_when_its_owner_archives_then_archived_once() {
        TestFramework::<Problem>::with(())
            .given(vec![reported()])
            .when(ProblemCommand::Archive {
                agent_id: OWNER,
                at: at(9),
            })
            .then_expect_events(vec![ProblemEvent::ProblemArchived {
                problem_id: PROBLEM,
                archived_by: OWNER,
                archived_at: at(9),
            }]);
        TestFramework::<Problem>::with(())
            .given(vec![
                reported(),
                ProblemEvent::ProblemArchived {
                    problem_id: PROBLEM,
                    archived_by: OWNER,
                    archived_at: at(9),
                },
            ])
            .when(ProblemCommand::Archive {
                agent_id: OWNER,
                at: at(10),
            })
            .then_expect_error(DomainError::InvalidState("the problem is already archived"));
        TestFramework::<Problem>::with(())
            .given(vec![reported()])
            .when(ProblemCommand::Archive {
                agent_id: OTHER,
                at: at(9),
            })
            .then_expect_error(DomainError::Forbidden(
                "only the agent that reported a problem may archive it",
            ));
    }

    #[test]
    fn a_problem_tells_solutions_whether_it_takes_them() {
        use crate::solution::ParentProblem;
        let mut problem = Problem::default();
        assert_eq!(problem.as_parent(), ParentProblem::Missing);
        problem.apply(reported());
        assert_eq!(problem.as_parent(), ParentProblem::Open(PROBLEM));
        problem.apply(ProblemEvent::ProblemArchived {
            problem_id: PROBLEM,
            archived_by: OWNER,
            archived_at: at(9),
        });
        assert_eq!(problem.as_parent(), ParentProblem::Archived(PROBLEM));
    }

    #[test]
    fn given_an_archived_problem_when_edited_then_refused() {
        let archived = match reported() {
            ProblemEvent::ProblemReported {
                problem_id,
                reported_by,
                details,
                guardrail_status,
                reported_at,
                ..
            } => ProblemEvent::ProblemReported {
                problem_id,
                reported_by,
                details,
                status: ProblemStatus::Archived,
                guardrail_status,
                reported_at,
            },
            other => other,
        };
        TestFramework::<Problem>::with(())
            .given(vec![archived])
            .when(ProblemCommand::Edit {
                agent_id: OWNER,
                changes: severity_change(),
                at: at(5),
            })
            .then_expect_error(DomainError::InvalidState(
                "an archived problem cannot be edited",
            ));
    }
}
