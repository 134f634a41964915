//! The guardrail's events on the three streams that carry moderated content (problems, solutions
//! with their debate posts, missions), decoded once for the read models that follow moderation:
//! the admin queue and the agents' trust facts.

use bw_domain::{
    guardrail::{ReviewClaimed, Reviewed, Verdict},
    mission::MissionEvent,
    problem::ProblemEvent,
    solution::SolutionEvent,
};
use bw_eventlog::envelope::EventEnvelope;
use uuid::Uuid;

use super::decode;
use crate::ProjectionError;

/// The aggregates whose streams carry moderated content.
pub const AGGREGATES: &[&str] = &["Problem", "Solution", "Mission"];

/// A moderation event, whichever stream it is on.
#[derive(Debug)]
pub enum Moderation {
    /// The guardrail's verdict.
    Decided(Box<Verdict>),
    /// An admin claimed a flagged item.
    Claimed(ReviewClaimed),
    /// An admin decided a flagged item.
    Reviewed(Reviewed),
    /// An edit of `content_id`: it will be judged again, open items for it are superseded.
    Edited(Uuid),
    /// Anything else.
    Other,
}

/// Whether `event_type` can be a moderation event (the others need not be decoded).
pub fn is_moderation(event_type: &str) -> bool {
    matches!(
        event_type,
        "GuardrailDecided"
            | "ReviewClaimed"
            | "Reviewed"
            | "ProblemEdited"
            | "SolutionEdited"
            | "MissionEdited"
    )
}

/// Decodes `event` (of one of [`AGGREGATES`]).
pub fn moderation(event: &EventEnvelope) -> Result<Moderation, ProjectionError> {
    if !is_moderation(&event.event_type) {
        return Ok(Moderation::Other);
    }
    Ok(match event.aggregate_type.as_str() {
        "Problem" => match decode::<ProblemEvent>(event)? {
            ProblemEvent::GuardrailDecided(v) => Moderation::Decided(v),
            ProblemEvent::ReviewClaimed(c) => Moderation::Claimed(c),
            ProblemEvent::Reviewed(r) => Moderation::Reviewed(r),
            ProblemEvent::ProblemEdited { problem_id, .. } => Moderation::Edited(problem_id),
            _ => Moderation::Other,
        },
        "Solution" => match decode::<SolutionEvent>(event)? {
            SolutionEvent::GuardrailDecided(v) => Moderation::Decided(v),
            SolutionEvent::ReviewClaimed(c) => Moderation::Claimed(c),
            SolutionEvent::Reviewed(r) => Moderation::Reviewed(r),
            SolutionEvent::SolutionEdited { solution_id, .. } => Moderation::Edited(solution_id),
            _ => Moderation::Other,
        },
        "Mission" => match decode::<MissionEvent>(event)? {
            MissionEvent::GuardrailDecided(v) => Moderation::Decided(v),
            MissionEvent::ReviewClaimed(c) => Moderation::Claimed(c),
            MissionEvent::Reviewed(r) => Moderation::Reviewed(r),
            MissionEvent::MissionEdited { mission_id, .. } => Moderation::Edited(mission_id),
            _ => Moderation::Other,
        },
        _ => Moderation::Other,
    })
}
