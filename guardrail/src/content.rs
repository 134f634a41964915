//! The text of a submission, folded from its stream: what the guardrail judges and the semantic
//! index embeds.

use bw_domain::{
    guardrail::ContentType,
    mission::{MissionEvent, MissionText},
    problem::ProblemEvent,
    solution::SolutionEvent,
};
use bw_eventlog::envelope::EventEnvelope;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::GuardrailError;

/// A problem's or solution's text as of a stream position.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub title: String,
    /// Problems: the description; solutions: description and approach.
    pub body: String,
    /// Problems only.
    pub domain: Option<bw_domain::taxonomy::ProblemDomain>,
    pub author: Uuid,
    /// Every other public text field (location name, existing solutions, data sources, links;
    /// expected impact, risks and mitigations, skills, locations, timeline), one per line.
    pub extra: String,
}

impl Content {
    /// Everything the public will read: what the guardrail judges and the index embeds.
    pub fn text(&self) -> String {
        [self.title.as_str(), self.body.as_str(), self.extra.as_str()]
            .iter()
            .filter(|t| !t.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A mission's text into `content_of`'s fields: title, description, then each other field.
fn mission_text(
    fields: &mut [String; 3],
    other: &mut std::collections::BTreeMap<&'static str, Vec<String>>,
    text: &MissionText,
) {
    fields[0].clone_from(&text.title);
    fields[1].clone_from(&text.description);
    other.insert(
        "instructions",
        text.instructions.iter().map(|s| s.text.clone()).collect(),
    );
    other.insert(
        "evidenceRequired",
        text.evidence_required
            .iter()
            .map(|e| e.description.clone())
            .collect(),
    );
    other.insert("requiredSkills", text.required_skills.clone());
}

/// The text of the problem, solution or mission on stream `aggregate_id` as of sequence `upto`, folded from the
/// log (a report or proposal, then every edit).
pub async fn content_of(
    conn: &mut PgConnection,
    aggregate_type: &str,
    aggregate_id: &str,
    upto: i64,
    content_type: ContentType,
) -> Result<Content, GuardrailError> {
    let history = bw_eventlog::read::history(conn, aggregate_type, aggregate_id, upto).await?;
    let (mut fields, mut author, mut domain) =
        ([String::new(), String::new(), String::new()], None, None);
    // Other public text, by field name, so an edit replaces a field's lines.
    let mut other: std::collections::BTreeMap<&'static str, Vec<String>> = Default::default();
    for stored in history {
        let payload = (
            aggregate_type,
            stored.event_type.as_str(),
            stored.event_version.as_str(),
            stored.payload,
        );
        match content_type {
            ContentType::Problem => match decode::<ProblemEvent>(payload)? {
                ProblemEvent::ProblemReported {
                    details,
                    reported_by,
                    ..
                } => {
                    fields[0] = details.title.as_str().to_owned();
                    fields[1] = details.description.as_str().to_owned();
                    domain = Some(details.domain);
                    author = Some(reported_by);
                    let links = |l: &[bw_domain::values::HttpsUrl]| {
                        l.iter().map(|l| l.as_str().to_owned()).collect()
                    };
                    other.insert(
                        "locationName",
                        details
                            .location_name
                            .iter()
                            .map(|l| l.as_str().to_owned())
                            .collect(),
                    );
                    other.insert("existingSolutions", details.existing_solutions.clone());
                    other.insert("dataSources", details.data_sources.clone());
                    other.insert("evidenceLinks", links(&details.evidence_links));
                }
                ProblemEvent::ProblemEdited { changes, .. } => {
                    if let Some(t) = &changes.title {
                        fields[0] = t.as_str().to_owned();
                    }
                    if let Some(d) = &changes.description {
                        fields[1] = d.as_str().to_owned();
                    }
                    if let Some(l) = &changes.location_name {
                        other.insert("locationName", vec![l.as_str().to_owned()]);
                    }
                    if let Some(v) = &changes.existing_solutions {
                        other.insert("existingSolutions", v.clone());
                    }
                    if let Some(v) = &changes.data_sources {
                        other.insert("dataSources", v.clone());
                    }
                    if let Some(v) = &changes.evidence_links {
                        other.insert(
                            "evidenceLinks",
                            v.iter().map(|l| l.as_str().to_owned()).collect(),
                        );
                    }
                }
                _ => {}
            },
            ContentType::Mission => match decode::<MissionEvent>(payload)? {
                MissionEvent::MissionCreated {
                    spec,
                    created_by,
                    domain: problem_domain,
                    ..
                } => {
                    author = Some(created_by);
                    domain = Some(problem_domain);
                    mission_text(&mut fields, &mut other, &spec.text);
                    other.insert("locationName", spec.location_name.iter().cloned().collect());
                    other.insert("missionType", spec.mission_type.iter().cloned().collect());
                }
                MissionEvent::MissionEdited { text, .. } => {
                    mission_text(&mut fields, &mut other, &text);
                }
                _ => {}
            },
            ContentType::Solution | ContentType::Debate => {
                match decode::<SolutionEvent>(payload)? {
                    SolutionEvent::SolutionProposed {
                        details,
                        proposed_by,
                        ..
                    } => {
                        fields = [
                            details.title.as_str().to_owned(),
                            details.description.as_str().to_owned(),
                            details.approach.as_str().to_owned(),
                        ];
                        author = Some(proposed_by);
                        let impact = &details.expected_impact;
                        other.insert(
                            "expectedImpact",
                            vec![format!("{} ({})", impact.metric, impact.timeframe)],
                        );
                        other.insert(
                            "risksAndMitigations",
                            details
                                .risks_and_mitigations
                                .iter()
                                .map(|r| format!("{}: {}", r.risk, r.mitigation))
                                .collect(),
                        );
                        other.insert("requiredSkills", details.required_skills.clone());
                        other.insert("requiredLocations", details.required_locations.clone());
                        other.insert(
                            "timelineEstimate",
                            details
                                .timeline_estimate
                                .iter()
                                .map(|t| t.as_str().to_owned())
                                .collect(),
                        );
                    }
                    SolutionEvent::SolutionEdited { changes, .. } => {
                        if let Some(t) = &changes.title {
                            fields[0] = t.as_str().to_owned();
                        }
                        if let Some(d) = &changes.description {
                            fields[1] = d.as_str().to_owned();
                        }
                        if let Some(a) = &changes.approach {
                            fields[2] = a.as_str().to_owned();
                        }
                        if let Some(e) = &changes.expected_impact {
                            other.insert(
                                "expectedImpact",
                                vec![format!("{} ({})", e.metric, e.timeframe)],
                            );
                        }
                        if let Some(r) = &changes.risks_and_mitigations {
                            other.insert(
                                "risksAndMitigations",
                                r.iter()
                                    .map(|r| format!("{}: {}", r.risk, r.mitigation))
                                    .collect(),
                            );
                        }
                        if let Some(v) = &changes.required_skills {
                            other.insert("requiredSkills", v.clone());
                        }
                        if let Some(v) = &changes.required_locations {
                            other.insert("requiredLocations", v.clone());
                        }
                        if let Some(t) = &changes.timeline_estimate {
                            other.insert("timelineEstimate", vec![t.as_str().to_owned()]);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let author = author
        .ok_or_else(|| GuardrailError::Corrupt(format!("{aggregate_id}: no report or proposal")))?;
    let [title, description, approach] = fields;
    let body = if approach.is_empty() {
        description
    } else {
        format!("{description}\n{approach}")
    };
    let extra = other.into_values().flatten().collect::<Vec<_>>().join("\n");
    Ok(Content {
        title,
        body,
        domain,
        author,
        extra,
    })
}

/// Reads a stored event payload (of `version`) as the current domain event type (upcast first).
pub(crate) fn decode<E: serde::de::DeserializeOwned>(
    stored: (&str, &str, &str, serde_json::Value),
) -> Result<E, GuardrailError> {
    let (aggregate_type, event_type, version, payload) = stored;
    let payload = bw_domain::upcast::upcast(aggregate_type, event_type, version, payload)
        .map_err(GuardrailError::Corrupt)?;
    serde_json::from_value(payload).map_err(|e| GuardrailError::Corrupt(e.to_string()))
}

/// [`decode`] for an envelope.
pub fn decode_event<E: serde::de::DeserializeOwned>(
    event: &EventEnvelope,
) -> Result<E, GuardrailError> {
    decode((
        &event.aggregate_type,
        &event.event_type,
        &event.event_version,
        event.payload.clone(),
    ))
}
