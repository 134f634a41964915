//! The `Log` aggregate: what operators do to the log itself, recorded in it (ADR 0007).
//!
//! One stream, `Log/log`. Today it records one kind of act: re-deriving every event's hash in a new
//! canonical form (`betterworld events rehash`), with the reason, who did it, what was checked before
//! and the last checkpoint the old hashes were signed in. An auditor reading the log meets the
//! change where it happened instead of finding hashes that silently changed.

use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, DomainEvent, event_sink::EventSink};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;

/// The id of the log's one stream.
pub const STREAM: &str = "log";

/// Longest reason accepted.
pub const MAX_REASON: usize = 2_000;

/// Something a check of the old hashes found, accepted by the operator before the rehash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedFinding {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    pub detail: String,
}

/// The last checkpoint signed over the old hashes (kept in `log_superseded_checkpoints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupersededCheckpoint {
    pub tree_size: i64,
    pub up_to_position: i64,
    /// Hex.
    pub root: String,
    pub key_id: String,
    pub signed_at: DateTime<Utc>,
}

/// `LogRehashed`, version 1: every event's hash was re-derived in `toForm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rehashed {
    pub from_form: String,
    pub to_form: String,
    pub reason: String,
    /// Who ran it (the operator's name as given, or the OS user).
    pub operator: String,
    /// Events and streams whose hashes were re-derived (every one in the log before this event).
    pub events: u64,
    pub streams: u64,
    /// What the check under the old forms found and the operator accepted (empty when it was clean).
    pub accepted_findings: Vec<AcceptedFinding>,
    /// How many checkpoints were superseded, and the last of them.
    pub superseded_checkpoints: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_superseded: Option<SupersededCheckpoint>,
    pub rehashed_at: DateTime<Utc>,
}

/// Commands of the `Log` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum LogCommand {
    /// Record that every hash was re-derived in a new canonical form.
    RecordRehash(Box<Rehashed>),
}

/// Events of the `Log` aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum LogEvent {
    /// Every hash re-derived. Version 1.
    LogRehashed(Box<Rehashed>),
}

impl DomainEvent for LogEvent {
    fn event_type(&self) -> String {
        match self {
            Self::LogRehashed(_) => "LogRehashed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The log as operators' decisions need it: the forms it has been rehashed to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Log {
    forms: Vec<String>,
}

impl Aggregate for Log {
    const TYPE: &'static str = "Log";
    type Command = LogCommand;
    type Event = LogEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let LogCommand::RecordRehash(mut rehashed) = command;
        rehashed.reason = rehashed.reason.trim().to_owned();
        if rehashed.reason.is_empty() || rehashed.reason.chars().count() > MAX_REASON {
            return Err(DomainError::invalid(
                "reason",
                format!("say why the log is rehashed, in 1–{MAX_REASON} characters"),
            ));
        }
        if rehashed.operator.trim().is_empty() {
            return Err(DomainError::invalid(
                "operator",
                "name who rehashes the log",
            ));
        }
        if rehashed.from_form == rehashed.to_form {
            return Err(DomainError::InvalidState(
                "the log is in that canonical form already",
            ));
        }
        if self.forms.contains(&rehashed.to_form) {
            return Err(DomainError::InvalidState(
                "the log was rehashed to that canonical form before",
            ));
        }
        sink.write(LogEvent::LogRehashed(rehashed), self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let LogEvent::LogRehashed(r) = event;
        self.forms.push(r.to_form);
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn rehashed(reason: &str, from: &str, to: &str) -> Rehashed {
        Rehashed {
            from_form: from.into(),
            to_form: to.into(),
            reason: reason.into(),
            operator: "ops".into(),
            events: 3,
            streams: 2,
            accepted_findings: Vec::new(),
            superseded_checkpoints: 1,
            last_superseded: Some(SupersededCheckpoint {
                tree_size: 3,
                up_to_position: 1 << 20,
                root: "00".repeat(32),
                key_id: "k".into(),
                signed_at: DateTime::from_timestamp(1_700_000_000, 0).expect("valid"),
            }),
            rehashed_at: DateTime::from_timestamp(1_700_000_100, 0).expect("valid"),
        }
    }

    fn record(r: Rehashed) -> LogCommand {
        LogCommand::RecordRehash(Box::new(r))
    }

    #[test]
    fn given_a_log_never_rehashed_when_rehashing_to_v2_then_it_is_recorded_with_its_reason() {
        TestFramework::<Log>::with(())
            .given_no_previous_events()
            .when(record(rehashed(
                "  ADR 0007 ",
                "bw.event.v1",
                "bw.event.v2",
            )))
            .then_expect_events(vec![LogEvent::LogRehashed(Box::new(rehashed(
                "ADR 0007",
                "bw.event.v1",
                "bw.event.v2",
            )))]);
    }

    #[test]
    fn given_any_log_when_rehashing_without_a_reason_then_refused() {
        TestFramework::<Log>::with(())
            .given_no_previous_events()
            .when(record(rehashed("   ", "bw.event.v1", "bw.event.v2")))
            .then_expect_error(DomainError::invalid(
                "reason",
                format!("say why the log is rehashed, in 1–{MAX_REASON} characters"),
            ));
    }

    #[test]
    fn given_any_log_when_rehashing_to_the_form_it_is_in_then_refused() {
        TestFramework::<Log>::with(())
            .given_no_previous_events()
            .when(record(rehashed("why", "bw.event.v2", "bw.event.v2")))
            .then_expect_error(DomainError::InvalidState(
                "the log is in that canonical form already",
            ));
    }

    #[test]
    fn given_a_log_rehashed_to_v2_when_rehashing_to_v2_again_then_refused() {
        TestFramework::<Log>::with(())
            .given(vec![LogEvent::LogRehashed(Box::new(rehashed(
                "first",
                "bw.event.v1",
                "bw.event.v2",
            )))])
            .when(record(rehashed("again", "bw.event.v1", "bw.event.v2")))
            .then_expect_error(DomainError::InvalidState(
                "the log was rehashed to that canonical form before",
            ));
    }
}
