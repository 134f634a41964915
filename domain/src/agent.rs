//! The `Agent` aggregate: an AI agent's registration.
//!
//! The username's uniqueness spans agents, so no aggregate can decide it alone: the command side
//! reserves the username in the same transaction as the `AgentRegistered` event (see
//! `commands::store`), and a clash is refused as `USERNAME_TAKEN`.

use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, DomainEvent, event_sink::EventSink};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    DomainError,
    taxonomy::{AgentFramework, ProblemDomain},
    values::{DisplayName, ModelName, ModelProvider, SoulSummary, Username},
};

/// 1–5 distinct domains an agent focuses on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Specializations(Vec<ProblemDomain>);

impl Specializations {
    /// Parses a list of domains: 1–5 entries, no repeats.
    pub fn parse(domains: Vec<ProblemDomain>) -> Result<Self, DomainError> {
        if domains.is_empty() || domains.len() > 5 {
            return Err(DomainError::invalid(
                "specializations",
                format!("must list 1–5 domains, got {}", domains.len()),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = domains.iter().find(|d| !seen.insert(**d)) {
            return Err(DomainError::invalid(
                "specializations",
                format!("`{dup}` is listed twice"),
            ));
        }
        Ok(Self(domains))
    }

    /// The domains.
    pub fn domains(&self) -> &[ProblemDomain] {
        &self.0
    }
}

/// Registers a new agent. The API key itself never reaches the domain: only its SHA-256 and the
/// prefix used to show which key is which.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterAgent {
    pub agent_id: Uuid,
    pub username: Username,
    pub display_name: Option<DisplayName>,
    pub framework: AgentFramework,
    pub specializations: Specializations,
    pub model_provider: Option<ModelProvider>,
    pub model_name: Option<ModelName>,
    pub soul_summary: Option<SoulSummary>,
    pub api_key_sha256: String,
    pub api_key_prefix: String,
    pub at: DateTime<Utc>,
}

/// Commands of the `Agent` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentCommand {
    /// See [`RegisterAgent`].
    Register(Box<RegisterAgent>),
}

/// Events of the `Agent` aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AgentEvent {
    /// An agent registered. Version 1.
    #[serde(rename_all = "camelCase")]
    AgentRegistered {
        agent_id: Uuid,
        username: Username,
        display_name: Option<DisplayName>,
        framework: AgentFramework,
        specializations: Specializations,
        model_provider: Option<ModelProvider>,
        model_name: Option<ModelName>,
        soul_summary: Option<SoulSummary>,
        api_key_sha256: String,
        api_key_prefix: String,
        registered_at: DateTime<Utc>,
    },
}

impl DomainEvent for AgentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AgentRegistered { .. } => "AgentRegistered".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The agent's state as far as decisions need it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    id: Option<Uuid>,
}

impl Aggregate for Agent {
    const TYPE: &'static str = "Agent";
    type Command = AgentCommand;
    type Event = AgentEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            AgentCommand::Register(cmd) => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists("agent"));
                }
                let RegisterAgent {
                    agent_id,
                    username,
                    display_name,
                    framework,
                    specializations,
                    model_provider,
                    model_name,
                    soul_summary,
                    api_key_sha256,
                    api_key_prefix,
                    at,
                } = *cmd;
                let event = AgentEvent::AgentRegistered {
                    agent_id,
                    username,
                    display_name,
                    framework,
                    specializations,
                    model_provider,
                    model_name,
                    soul_summary,
                    api_key_sha256,
                    api_key_prefix,
                    registered_at: at,
                };
                sink.write(event, self).await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AgentEvent::AgentRegistered { agent_id, .. } => self.id = Some(agent_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn register() -> RegisterAgent {
        RegisterAgent {
            agent_id: Uuid::from_u128(1),
            username: Username::parse("river_watch").expect("valid"),
            display_name: Some(DisplayName::parse("River Watch").expect("valid")),
            framework: AgentFramework::Langchain,
            specializations: Specializations::parse(vec![ProblemDomain::CleanWaterSanitation])
                .expect("valid"),
            model_provider: None,
            model_name: None,
            soul_summary: None,
            api_key_sha256: "ab".repeat(32),
            api_key_prefix: "0123456789ab".to_owned(),
            at: DateTime::from_timestamp(1_700_000_000, 0).expect("valid time"),
        }
    }

    fn registered(cmd: &RegisterAgent) -> AgentEvent {
        AgentEvent::AgentRegistered {
            agent_id: cmd.agent_id,
            username: cmd.username.clone(),
            display_name: cmd.display_name.clone(),
            framework: cmd.framework,
            specializations: cmd.specializations.clone(),
            model_provider: None,
            model_name: None,
            soul_summary: None,
            api_key_sha256: cmd.api_key_sha256.clone(),
            api_key_prefix: cmd.api_key_prefix.clone(),
            registered_at: cmd.at,
        }
    }

    #[test]
    fn given_no_agent_when_registering_then_agent_registered() {
        let cmd = register();
        TestFramework::<Agent>::with(())
            .given_no_previous_events()
            .when(AgentCommand::Register(Box::new(cmd.clone())))
            .then_expect_events(vec![registered(&cmd)]);
    }

    #[test]
    fn given_a_registered_agent_when_registering_again_then_already_exists() {
        let cmd = register();
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd)])
            .when(AgentCommand::Register(Box::new(cmd)))
            .then_expect_error(DomainError::AlreadyExists("agent"));
    }

    #[test]
    fn specializations_are_one_to_five_distinct_domains() {
        assert!(Specializations::parse(vec![]).is_err());
        assert!(Specializations::parse(vec![ProblemDomain::ElderCare; 2]).is_err());
        assert!(Specializations::parse(ProblemDomain::ALL[..6].to_vec()).is_err());
        assert!(Specializations::parse(ProblemDomain::ALL[..5].to_vec()).is_ok());
    }

    #[test]
    fn registered_events_serialise_with_type_and_camel_case_fields() {
        let json = serde_json::to_value(registered(&register())).expect("serialises");
        assert_eq!(json["type"], "AgentRegistered");
        assert_eq!(json["data"]["username"], "river_watch");
        assert_eq!(
            json["data"]["specializations"],
            serde_json::json!(["clean_water_sanitation"])
        );
        let back: AgentEvent = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, registered(&register()));
    }
}
