//! The `Human` aggregate: a person who completes missions (and admins and auditors).
//!
//! Personal data — the e-mail, an exact location, the free-text bio — reaches this aggregate only
//! sealed with the person's key ([`SealedField`], ADR 0003); uniqueness of e-mails is decided by the
//! command side with a keyed fingerprint in the same transaction — kept in `human_credentials` only,
//! never in an event, so a forgotten person's address cannot be tested against the log. Rules: a person registers once;
//! profile updates change at least one field and respect the limits of `domain-reference.md` §1.3;
//! once forgotten, a person refuses every command (their key is gone, their data unreadable).

use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, DomainEvent, event_sink::EventSink};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    DomainError,
    meta::Actor,
    taxonomy::Role,
    values::{CodeCheck, SealedField},
};

/// Profile fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HumanProfileChanges {
    /// Sealed display name (2–200 characters, checked before sealing): a name is personal data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<SealedField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Sealed `{latitude, longitude}`: an exact location is personal data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<SealedField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_radius_km: Option<u16>,
    /// Sealed free text (≤ 500 characters, checked before sealing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bio: Option<SealedField>,
}

impl HumanProfileChanges {
    /// Checks the limits of the plaintext fields (sealed ones are checked before sealing).
    pub fn validate(&self) -> Result<(), DomainError> {
        if let Some(skills) = &self.skills {
            if skills.is_empty() || skills.len() > 50 {
                return Err(DomainError::invalid("skills", "1–50 skills"));
            }
            if skills
                .iter()
                .any(|s| s.trim().is_empty() || s.chars().count() > 100)
            {
                return Err(DomainError::invalid(
                    "skills",
                    "each skill 1–100 characters",
                ));
            }
        }
        if let Some(languages) = &self.languages {
            if languages.is_empty() || languages.len() > 20 {
                return Err(DomainError::invalid("languages", "1–20 languages"));
            }
            if languages
                .iter()
                .any(|l| l.len() != 2 || !l.chars().all(|c| c.is_ascii_lowercase()))
            {
                return Err(DomainError::invalid(
                    "languages",
                    "ISO 639-1 codes: two lower-case letters",
                ));
            }
        }
        for (field, value, max) in [("city", &self.city, 200), ("country", &self.country, 100)] {
            if value
                .as_ref()
                .is_some_and(|v| v.trim().is_empty() || v.chars().count() > max)
            {
                return Err(DomainError::invalid(field, format!("1–{max} characters")));
            }
        }
        if self
            .service_radius_km
            .is_some_and(|r| !(5..=50).contains(&r))
        {
            return Err(DomainError::invalid("serviceRadius", "5–50 km"));
        }
        Ok(())
    }
}

/// Commands of the `Human` aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum HumanCommand {
    /// A person registers (or the CLI creates an admin or auditor).
    Register {
        human_id: Uuid,
        email: SealedField,
        display_name: SealedField,
        role: Role,
        at: DateTime<Utc>,
    },
    /// The person proves they control their e-mail address with the code that was sent.
    VerifyEmail { check: CodeCheck, at: DateTime<Utc> },
    /// The person changes their profile.
    UpdateProfile {
        changes: Box<HumanProfileChanges>,
        at: DateTime<Utc>,
    },
    /// The person (or an admin) asks to be forgotten: the key is destroyed by the command side in
    /// the same transaction.
    Forget { by: Actor, at: DateTime<Utc> },
}

/// Events of the `Human` aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum HumanEvent {
    /// A person registered; the e-mail is sealed. Version 1.
    #[serde(rename_all = "camelCase")]
    HumanRegistered {
        human_id: Uuid,
        email: SealedField,
        display_name: SealedField,
        role: Role,
        registered_at: DateTime<Utc>,
    },
    /// The person verified their e-mail address. Version 1.
    #[serde(rename_all = "camelCase")]
    HumanEmailVerified {
        human_id: Uuid,
        verified_at: DateTime<Utc>,
    },
    /// The person changed their profile. Version 1.
    #[serde(rename_all = "camelCase")]
    HumanProfileUpdated {
        human_id: Uuid,
        changes: Box<HumanProfileChanges>,
        updated_at: DateTime<Utc>,
    },
    /// The person was forgotten: their key is destroyed; this event carries no personal data.
    /// Version 1.
    #[serde(rename_all = "camelCase")]
    HumanForgotten {
        human_id: Uuid,
        forgotten_by: String,
        forgotten_at: DateTime<Utc>,
    },
}

impl DomainEvent for HumanEvent {
    fn event_type(&self) -> String {
        match self {
            Self::HumanRegistered { .. } => "HumanRegistered",
            Self::HumanEmailVerified { .. } => "HumanEmailVerified",
            Self::HumanProfileUpdated { .. } => "HumanProfileUpdated",
            Self::HumanForgotten { .. } => "HumanForgotten",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The person's state as far as decisions need it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Human {
    id: Option<Uuid>,
    email_verified: bool,
    forgotten: bool,
}

impl Aggregate for Human {
    const TYPE: &'static str = "Human";
    type Command = HumanCommand;
    type Event = HumanEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if self.forgotten {
            return Err(DomainError::InvalidState("this person was forgotten"));
        }
        match command {
            HumanCommand::Register {
                human_id,
                email,
                display_name,
                role,
                at,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists("human"));
                }
                let event = HumanEvent::HumanRegistered {
                    human_id,
                    email,
                    display_name,
                    role,
                    registered_at: at,
                };
                sink.write(event, self).await;
            }
            HumanCommand::VerifyEmail { check, at } => {
                let human_id = self.id.ok_or(DomainError::NotFound("human"))?;
                if self.email_verified {
                    return Err(DomainError::InvalidState("the e-mail is verified already"));
                }
                check.require_valid("no verification code was issued; ask for one")?;
                sink.write(
                    HumanEvent::HumanEmailVerified {
                        human_id,
                        verified_at: at,
                    },
                    self,
                )
                .await;
            }
            HumanCommand::UpdateProfile { changes, at } => {
                let human_id = self.id.ok_or(DomainError::NotFound("human"))?;
                if *changes == HumanProfileChanges::default() {
                    return Err(DomainError::invalid(
                        "body",
                        "an update must change at least one field",
                    ));
                }
                changes.validate()?;
                sink.write(
                    HumanEvent::HumanProfileUpdated {
                        human_id,
                        changes,
                        updated_at: at,
                    },
                    self,
                )
                .await;
            }
            HumanCommand::Forget { by, at } => {
                let human_id = self.id.ok_or(DomainError::NotFound("human"))?;
                sink.write(
                    HumanEvent::HumanForgotten {
                        human_id,
                        forgotten_by: by.scope(),
                        forgotten_at: at,
                    },
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            HumanEvent::HumanRegistered { human_id, .. } => self.id = Some(human_id),
            HumanEvent::HumanEmailVerified { .. } => self.email_verified = true,
            HumanEvent::HumanProfileUpdated { .. } => {}
            HumanEvent::HumanForgotten { .. } => self.forgotten = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use serde_json::json;

    use super::*;

    const HUMAN: Uuid = Uuid::from_u128(77);

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("valid")
    }

    fn sealed() -> SealedField {
        SealedField::new(json!({"sealed": "v1", "nonce": "bm9uY2U=", "ct": "Y2lwaGVydGV4dA=="}))
    }

    fn registered() -> HumanEvent {
        HumanEvent::HumanRegistered {
            human_id: HUMAN,
            email: sealed(),
            display_name: sealed(),
            role: Role::Human,
            registered_at: at(),
        }
    }

    fn register() -> HumanCommand {
        HumanCommand::Register {
            human_id: HUMAN,
            email: sealed(),
            display_name: sealed(),
            role: Role::Human,
            at: at(),
        }
    }

    fn forgotten() -> HumanEvent {
        HumanEvent::HumanForgotten {
            human_id: HUMAN,
            forgotten_by: format!("human:{HUMAN}"),
            forgotten_at: at(),
        }
    }

    #[test]
    fn given_nobody_when_registering_then_registered_with_the_email_sealed() {
        TestFramework::<Human>::with(())
            .given_no_previous_events()
            .when(register())
            .then_expect_events(vec![registered()]);
        let json = serde_json::to_string(&registered()).expect("json");
        assert!(json.contains(r#""sealed":"v1""#), "{json}");
    }

    #[test]
    fn given_a_person_when_registering_again_then_already_exists() {
        TestFramework::<Human>::with(())
            .given(vec![registered()])
            .when(register())
            .then_expect_error(DomainError::AlreadyExists("human"));
    }

    #[test]
    fn given_a_person_when_verifying_the_email_then_verified_once() {
        let verified = HumanEvent::HumanEmailVerified {
            human_id: HUMAN,
            verified_at: at(),
        };
        let verify = |check| HumanCommand::VerifyEmail { check, at: at() };
        TestFramework::<Human>::with(())
            .given(vec![registered()])
            .when(verify(CodeCheck::Valid))
            .then_expect_events(vec![verified.clone()]);
        TestFramework::<Human>::with(())
            .given(vec![registered()])
            .when(verify(CodeCheck::Expired))
            .then_expect_error(DomainError::invalid(
                "verificationCode",
                "has expired; ask for a new one",
            ));
        TestFramework::<Human>::with(())
            .given(vec![registered()])
            .when(verify(CodeCheck::Wrong))
            .then_expect_error(DomainError::invalid(
                "verificationCode",
                "does not match the code that was sent",
            ));
        TestFramework::<Human>::with(())
            .given(vec![registered(), verified])
            .when(verify(CodeCheck::Valid))
            .then_expect_error(DomainError::InvalidState("the e-mail is verified already"));
        TestFramework::<Human>::with(())
            .given_no_previous_events()
            .when(verify(CodeCheck::Valid))
            .then_expect_error(DomainError::NotFound("human"));
    }

    #[test]
    fn given_a_person_when_updating_the_profile_then_limits_apply() {
        let ok = HumanProfileChanges {
            skills: Some(vec!["first aid".into()]),
            languages: Some(vec!["sw".into(), "en".into()]),
            service_radius_km: Some(10),
            ..Default::default()
        };
        TestFramework::<Human>::with(())
            .given(vec![registered()])
            .when(HumanCommand::UpdateProfile {
                changes: Box::new(ok.clone()),
                at: at(),
            })
            .then_expect_events(vec![HumanEvent::HumanProfileUpdated {
                human_id: HUMAN,
                changes: Box::new(ok),
                updated_at: at(),
            }]);
        for (changes, field) in [
            (
                HumanProfileChanges {
                    service_radius_km: Some(70),
                    ..Default::default()
                },
                "serviceRadius",
            ),
            (
                HumanProfileChanges {
                    languages: Some(vec!["swa".into()]),
                    ..Default::default()
                },
                "languages",
            ),
            (
                HumanProfileChanges {
                    skills: Some(vec![]),
                    ..Default::default()
                },
                "skills",
            ),
            (
                HumanProfileChanges {
                    city: Some(" ".into()),
                    ..Default::default()
                },
                "city",
            ),
        ] {
            let result = TestFramework::<Human>::with(())
                .given(vec![registered()])
                .when(HumanCommand::UpdateProfile {
                    changes: Box::new(changes),
                    at: at(),
                })
                .inspect_result();
            assert!(
                matches!(result, Err(DomainError::InvalidValue { field: f, .. }) if f == field),
                "{field}: {result:?}"
            );
        }
    }

    #[test]
    fn given_a_person_when_forgotten_then_forgotten_once_and_nothing_else_is_accepted() {
        TestFramework::<Human>::with(())
            .given(vec![registered()])
            .when(HumanCommand::Forget {
                by: Actor::Human(HUMAN),
                at: at(),
            })
            .then_expect_events(vec![forgotten()]);
        let json = serde_json::to_string(&forgotten()).expect("json");
        assert!(
            !json.contains("sealed"),
            "no personal data in the forgetting: {json}"
        );
        TestFramework::<Human>::with(())
            .given(vec![registered(), forgotten()])
            .when(HumanCommand::Forget {
                by: Actor::Human(HUMAN),
                at: at(),
            })
            .then_expect_error(DomainError::InvalidState("this person was forgotten"));
        TestFramework::<Human>::with(())
            .given(vec![registered(), forgotten()])
            .when(HumanCommand::UpdateProfile {
                changes: Box::new(HumanProfileChanges {
                    city: Some("Nairobi".into()),
                    ..Default::default()
                }),
                at: at(),
            })
            .then_expect_error(DomainError::InvalidState("this person was forgotten"));
    }
}
