//! Event upcasting: stored events keep the version they were written with; when the shape of an
//! event changes, its version goes up and an upcaster here turns the old shape into the next, so
//! every reader — an aggregate being loaded, a projection applying or rebuilding, a saga, the
//! guardrail — sees the current shape. The log itself is never rewritten (its hashes cover what was
//! written).
//!
//! | stream | event | version | change |
//! |---|---|---|---|
//! | `Problem` | `ProblemReported` | 1 → 2 | `details.language` added; v1 problems were written in English: `en` |

use serde_json::Value;

/// One step of the chain: `from` → `from + 1`.
struct Upcaster {
    aggregate_type: &'static str,
    event_type: &'static str,
    from: u32,
    apply: fn(Value) -> Result<Value, String>,
}

/// Every upcaster, in any order (the chain for one event type is followed by version).
const CHAIN: &[Upcaster] = &[Upcaster {
    aggregate_type: "Problem",
    event_type: "ProblemReported",
    from: 1,
    apply: problem_reported_v1_to_v2,
}];

/// `ProblemReported` v1 → v2: `details.language` = `en` (the platform took English only).
fn problem_reported_v1_to_v2(mut payload: Value) -> Result<Value, String> {
    let details = payload
        .get_mut("data")
        .and_then(|d| d.get_mut("details"))
        .and_then(Value::as_object_mut)
        .ok_or("ProblemReported v1 without data.details")?;
    details
        .entry("language")
        .or_insert_with(|| Value::String(crate::values::Language::ENGLISH.into()));
    Ok(payload)
}

/// The version events of this type are written with now.
pub fn current_version(aggregate_type: &str, event_type: &str) -> u32 {
    1 + CHAIN
        .iter()
        .filter(|u| u.aggregate_type == aggregate_type && u.event_type == event_type)
        .count() as u32
}

/// `payload`, stored at `version`, in the current shape of its event type. A version this build
/// does not know (newer than its own, or not a number) is an error: the event was written by a
/// newer release, and guessing would corrupt the read.
pub fn upcast(
    aggregate_type: &str,
    event_type: &str,
    version: &str,
    mut payload: Value,
) -> Result<Value, String> {
    let current = current_version(aggregate_type, event_type);
    let mut at: u32 = version.parse().map_err(|_| {
        format!("{aggregate_type} {event_type}: version `{version}` is not a number")
    })?;
    if at == 0 || at > current {
        return Err(format!(
            "{aggregate_type} {event_type} v{at}: this build knows versions 1 to {current} (written by a newer release?)"
        ));
    }
    while at < current {
        let step = CHAIN
            .iter()
            .find(|u| {
                u.aggregate_type == aggregate_type && u.event_type == event_type && u.from == at
            })
            .ok_or_else(|| format!("{aggregate_type} {event_type}: no upcaster from v{at}"))?;
        payload = (step.apply)(payload)?;
        at += 1;
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use cqrs_es::DomainEvent as _;
    use serde_json::json;

    use super::*;
    use crate::problem::ProblemEvent;

    fn v1() -> Value {
        json!({"type": "ProblemReported", "data": {"problemId": "0192f5e4-7c1a-7b3e-9a51-3f1c2d4e5f60",
            "reportedBy": "0192f5e4-7c1a-7b3e-9a51-3f1c2d4e5f61",
            "details": {"title": "Broken water pump number 1",
                "description": "Pump 1 has been broken for weeks and three hundred families walk two hours for water.",
                "domain": "clean_water_sanitation", "severity": "high", "affectedPopulationEstimate": null,
                "geographicScope": null, "locationName": null, "location": null, "existingSolutions": [],
                "dataSources": [], "evidenceLinks": []},
            "status": "active", "guardrailStatus": "pending", "reportedAt": "2026-11-01T10:00:00Z"}})
    }

    #[test]
    fn given_a_v1_problem_report_when_read_then_it_is_a_v2_report_in_english() {
        let upcast = upcast("Problem", "ProblemReported", "1", v1()).expect("upcast");
        let event: ProblemEvent =
            serde_json::from_value(upcast).expect("reads as the current shape");
        let ProblemEvent::ProblemReported { details, .. } = &event else {
            panic!("a report")
        };
        assert_eq!(details.language.as_str(), "en");
        assert_eq!(details.title.as_str(), "Broken water pump number 1");
        assert_eq!(event.event_version(), "2", "written as v2 from now on");
        assert!(
            serde_json::from_value::<ProblemEvent>(v1()).is_err(),
            "without the upcaster a v1 report does not read"
        );
    }

    #[test]
    fn current_versions_pass_through_and_unknown_ones_are_refused() {
        let current = upcast("Problem", "ProblemReported", "1", v1()).expect("upcast");
        assert_eq!(
            upcast("Problem", "ProblemReported", "2", current.clone()),
            Ok(current)
        );
        assert!(upcast("Problem", "ProblemReported", "3", v1()).is_err());
        assert!(upcast("Problem", "ProblemReported", "x", v1()).is_err());
        assert_eq!(current_version("Problem", "ProblemEdited"), 1);
        let other = json!({"type": "ProblemEdited", "data": {}});
        assert_eq!(
            upcast("Problem", "ProblemEdited", "1", other.clone()),
            Ok(other)
        );
    }
}
