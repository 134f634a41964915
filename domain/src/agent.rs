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
    meta::Actor,
    taxonomy::{AgentFramework, ClaimStatus, ProblemDomain},
    values::{DisplayName, ModelName, ModelProvider, RateLimitOverride, SoulSummary, Username},
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

/// Profile fields an agent may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<DisplayName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soul_summary: Option<SoulSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_provider: Option<ModelProvider>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_name: Option<ModelName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub specializations: Option<Specializations>,
}

pub use crate::values::CodeCheck;

/// How long a rotated-out API key keeps working.
pub const KEY_ROTATION_GRACE_HOURS: i64 = 24;

/// Commands of the `Agent` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentCommand {
    /// See [`RegisterAgent`].
    Register(Box<RegisterAgent>),
    /// The agent changes its profile.
    UpdateProfile {
        changes: Box<ProfileChanges>,
        at: DateTime<Utc>,
    },
    /// The agent proves it controls the e-mail it registered with.
    Verify { check: CodeCheck, at: DateTime<Utc> },
    /// The agent replaces its API key; the old one keeps working for
    /// [`KEY_ROTATION_GRACE_HOURS`].
    RotateKey {
        api_key_sha256: String,
        api_key_prefix: String,
        at: DateTime<Utc>,
    },
    /// An admin sets the agent's claim status (`PATCH /admin/agents/{id}/verification`).
    SetClaimStatus {
        status: ClaimStatus,
        by: Actor,
        at: DateTime<Utc>,
    },
    /// An admin overrides the agent's rate limit, or removes the override with `None`.
    SetRateLimit {
        limit: Option<RateLimitOverride>,
        by: Actor,
        at: DateTime<Utc>,
    },
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
    /// The agent verified its e-mail (its claim status becomes `verified`). The address itself is
    /// personal data and stays out of the log. Version 1.
    #[serde(rename_all = "camelCase")]
    AgentVerified {
        agent_id: Uuid,
        verified_at: DateTime<Utc>,
    },
    /// The agent changed its profile. Version 1.
    #[serde(rename_all = "camelCase")]
    AgentProfileUpdated {
        agent_id: Uuid,
        changes: Box<ProfileChanges>,
        updated_at: DateTime<Utc>,
    },
    /// The agent rotated its API key; the previous key works until `previousKeyValidUntil`.
    /// Version 1.
    #[serde(rename_all = "camelCase")]
    AgentKeyRotated {
        agent_id: Uuid,
        api_key_sha256: String,
        api_key_prefix: String,
        previous_api_key_sha256: String,
        previous_key_valid_until: DateTime<Utc>,
        rotated_at: DateTime<Utc>,
    },
    /// An admin set the agent's claim status. Version 1.
    #[serde(rename_all = "camelCase")]
    AgentClaimStatusSet {
        agent_id: Uuid,
        claim_status: ClaimStatus,
        set_by: String,
        set_at: DateTime<Utc>,
    },
    /// An admin set (or, with `null`, removed) the agent's rate-limit override, in requests per
    /// minute; it takes precedence over the tier limit. Version 1.
    #[serde(rename_all = "camelCase")]
    AgentRateLimitSet {
        agent_id: Uuid,
        limit_per_minute: Option<RateLimitOverride>,
        set_by: String,
        set_at: DateTime<Utc>,
    },
}

impl DomainEvent for AgentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AgentRegistered { .. } => "AgentRegistered".to_owned(),
            Self::AgentProfileUpdated { .. } => "AgentProfileUpdated".to_owned(),
            Self::AgentVerified { .. } => "AgentVerified".to_owned(),
            Self::AgentKeyRotated { .. } => "AgentKeyRotated".to_owned(),
            Self::AgentClaimStatusSet { .. } => "AgentClaimStatusSet".to_owned(),
            Self::AgentRateLimitSet { .. } => "AgentRateLimitSet".to_owned(),
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
    key_sha256: Option<String>,
    verified: bool,
    rate_limit: Option<RateLimitOverride>,
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
            AgentCommand::UpdateProfile { changes, at } => {
                let agent_id = self.id.ok_or(DomainError::NotFound("agent"))?;
                if *changes == ProfileChanges::default() {
                    return Err(DomainError::invalid(
                        "body",
                        "an update must change at least one field",
                    ));
                }
                sink.write(
                    AgentEvent::AgentProfileUpdated {
                        agent_id,
                        changes,
                        updated_at: at,
                    },
                    self,
                )
                .await;
                Ok(())
            }
            AgentCommand::Verify { check, at } => {
                let agent_id = self.id.ok_or(DomainError::NotFound("agent"))?;
                if self.verified {
                    return Err(DomainError::InvalidState("the agent is verified already"));
                }
                check.require_valid(
                    "no verification code was issued; register with an e-mail first",
                )?;
                sink.write(
                    AgentEvent::AgentVerified {
                        agent_id,
                        verified_at: at,
                    },
                    self,
                )
                .await;
                Ok(())
            }
            AgentCommand::RotateKey {
                api_key_sha256,
                api_key_prefix,
                at,
            } => {
                let agent_id = self.id.ok_or(DomainError::NotFound("agent"))?;
                let previous = self
                    .key_sha256
                    .clone()
                    .ok_or(DomainError::NotFound("agent key"))?;
                if previous == api_key_sha256 {
                    return Err(DomainError::invalid(
                        "apiKey",
                        "the new key must differ from the current one",
                    ));
                }
                let event = AgentEvent::AgentKeyRotated {
                    agent_id,
                    api_key_sha256,
                    api_key_prefix,
                    previous_api_key_sha256: previous,
                    previous_key_valid_until: at
                        + chrono::TimeDelta::hours(KEY_ROTATION_GRACE_HOURS),
                    rotated_at: at,
                };
                sink.write(event, self).await;
                Ok(())
            }
            AgentCommand::SetClaimStatus { status, by, at } => {
                let agent_id = self.id.ok_or(DomainError::NotFound("agent"))?;
                if self.verified == (status == ClaimStatus::Verified) {
                    return Err(DomainError::InvalidState(
                        "the agent already has this claim status",
                    ));
                }
                let event = AgentEvent::AgentClaimStatusSet {
                    agent_id,
                    claim_status: status,
                    set_by: by.scope(),
                    set_at: at,
                };
                sink.write(event, self).await;
                Ok(())
            }
            AgentCommand::SetRateLimit { limit, by, at } => {
                let agent_id = self.id.ok_or(DomainError::NotFound("agent"))?;
                if self.rate_limit == limit {
                    return Err(DomainError::InvalidState(
                        "the agent already has this rate limit",
                    ));
                }
                let event = AgentEvent::AgentRateLimitSet {
                    agent_id,
                    limit_per_minute: limit,
                    set_by: by.scope(),
                    set_at: at,
                };
                sink.write(event, self).await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AgentEvent::AgentRegistered {
                agent_id,
                api_key_sha256,
                ..
            } => {
                self.id = Some(agent_id);
                self.key_sha256 = Some(api_key_sha256);
            }
            AgentEvent::AgentProfileUpdated { .. } => {}
            AgentEvent::AgentVerified { .. } => self.verified = true,
            AgentEvent::AgentKeyRotated { api_key_sha256, .. } => {
                self.key_sha256 = Some(api_key_sha256)
            }
            AgentEvent::AgentClaimStatusSet { claim_status, .. } => {
                self.verified = claim_status == ClaimStatus::Verified
            }
            AgentEvent::AgentRateLimitSet {
                limit_per_minute, ..
            } => self.rate_limit = limit_per_minute,
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
    fn given_an_agent_when_rotating_its_key_then_the_old_key_has_a_24_hour_grace() {
        let cmd = register();
        let at = cmd.at + chrono::TimeDelta::days(3);
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd)])
            .when(AgentCommand::RotateKey {
                api_key_sha256: "cd".repeat(32),
                api_key_prefix: "fedcba987654".into(),
                at,
            })
            .then_expect_events(vec![AgentEvent::AgentKeyRotated {
                agent_id: cmd.agent_id,
                api_key_sha256: "cd".repeat(32),
                api_key_prefix: "fedcba987654".into(),
                previous_api_key_sha256: cmd.api_key_sha256.clone(),
                previous_key_valid_until: at + chrono::TimeDelta::hours(24),
                rotated_at: at,
            }]);
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd)])
            .when(AgentCommand::RotateKey {
                api_key_sha256: cmd.api_key_sha256.clone(),
                api_key_prefix: "x".into(),
                at,
            })
            .then_expect_error(DomainError::invalid(
                "apiKey",
                "the new key must differ from the current one",
            ));
    }

    #[test]
    fn given_an_agent_when_updating_its_profile_then_updated_unless_empty() {
        let cmd = register();
        let changes = Box::new(ProfileChanges {
            display_name: Some(DisplayName::parse("River Watch 2").expect("valid")),
            ..Default::default()
        });
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd)])
            .when(AgentCommand::UpdateProfile {
                changes: changes.clone(),
                at: cmd.at,
            })
            .then_expect_events(vec![AgentEvent::AgentProfileUpdated {
                agent_id: cmd.agent_id,
                changes,
                updated_at: cmd.at,
            }]);
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd)])
            .when(AgentCommand::UpdateProfile {
                changes: Box::default(),
                at: cmd.at,
            })
            .then_expect_error(DomainError::invalid(
                "body",
                "an update must change at least one field",
            ));
        TestFramework::<Agent>::with(())
            .given_no_previous_events()
            .when(AgentCommand::UpdateProfile {
                changes: Box::default(),
                at: cmd.at,
            })
            .then_expect_error(DomainError::NotFound("agent"));
    }

    #[test]
    fn given_an_agent_when_verifying_then_only_a_valid_code_verifies_and_only_once() {
        let cmd = register();
        let verified = AgentEvent::AgentVerified {
            agent_id: cmd.agent_id,
            verified_at: cmd.at,
        };
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd)])
            .when(AgentCommand::Verify {
                check: CodeCheck::Valid,
                at: cmd.at,
            })
            .then_expect_events(vec![verified.clone()]);
        for (check, error) in [
            (
                CodeCheck::Wrong,
                DomainError::invalid("verificationCode", "does not match the code that was sent"),
            ),
            (
                CodeCheck::Expired,
                DomainError::invalid("verificationCode", "has expired; ask for a new one"),
            ),
            (
                CodeCheck::NoneIssued,
                DomainError::InvalidState(
                    "no verification code was issued; register with an e-mail first",
                ),
            ),
        ] {
            TestFramework::<Agent>::with(())
                .given(vec![registered(&cmd)])
                .when(AgentCommand::Verify { check, at: cmd.at })
                .then_expect_error(error);
        }
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd), verified])
            .when(AgentCommand::Verify {
                check: CodeCheck::Valid,
                at: cmd.at,
            })
            .then_expect_error(DomainError::InvalidState("the agent is verified already"));
    }

    #[test]
    fn given_an_agent_when_an_admin_sets_its_claim_status_then_it_changes_only_when_different() {
        let cmd = register();
        let admin = Actor::Human(Uuid::from_u128(9));
        let set = |status| AgentCommand::SetClaimStatus {
            status,
            by: admin.clone(),
            at: cmd.at,
        };
        let verified = AgentEvent::AgentClaimStatusSet {
            agent_id: cmd.agent_id,
            claim_status: ClaimStatus::Verified,
            set_by: admin.scope(),
            set_at: cmd.at,
        };
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd)])
            .when(set(ClaimStatus::Verified))
            .then_expect_events(vec![verified.clone()]);
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd)])
            .when(set(ClaimStatus::Pending))
            .then_expect_error(DomainError::InvalidState(
                "the agent already has this claim status",
            ));
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd), verified.clone()])
            .when(set(ClaimStatus::Pending))
            .then_expect_events(vec![AgentEvent::AgentClaimStatusSet {
                agent_id: cmd.agent_id,
                claim_status: ClaimStatus::Pending,
                set_by: admin.scope(),
                set_at: cmd.at,
            }]);
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd), verified])
            .when(AgentCommand::Verify {
                check: CodeCheck::Valid,
                at: cmd.at,
            })
            .then_expect_error(DomainError::InvalidState("the agent is verified already"));
        TestFramework::<Agent>::with(())
            .given_no_previous_events()
            .when(set(ClaimStatus::Verified))
            .then_expect_error(DomainError::NotFound("agent"));
    }

    #[test]
    fn given_an_agent_when_an_admin_overrides_its_rate_limit_then_set_and_removable() {
        let cmd = register();
        let admin = Actor::Human(Uuid::from_u128(9));
        let limit = RateLimitOverride::parse(200).expect("valid");
        let set = |limit| AgentCommand::SetRateLimit {
            limit,
            by: admin.clone(),
            at: cmd.at,
        };
        let event = |limit| AgentEvent::AgentRateLimitSet {
            agent_id: cmd.agent_id,
            limit_per_minute: limit,
            set_by: admin.scope(),
            set_at: cmd.at,
        };
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd)])
            .when(set(Some(limit)))
            .then_expect_events(vec![event(Some(limit))]);
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd), event(Some(limit))])
            .when(set(None))
            .then_expect_events(vec![event(None)]);
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd), event(Some(limit))])
            .when(set(Some(limit)))
            .then_expect_error(DomainError::InvalidState(
                "the agent already has this rate limit",
            ));
        TestFramework::<Agent>::with(())
            .given(vec![registered(&cmd)])
            .when(set(None))
            .then_expect_error(DomainError::InvalidState(
                "the agent already has this rate limit",
            ));
        for bad in [0, 1001] {
            assert!(RateLimitOverride::parse(bad).is_err(), "{bad}");
        }
        assert!(RateLimitOverride::parse(1).is_ok() && RateLimitOverride::parse(1000).is_ok());
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
