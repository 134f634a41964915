//! What content is about: the approved domains and the severity scale (`domain-reference.md` §1.1).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::DomainError;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(#[doc = $text] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire name (snake_case, as in the API and the events).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| DomainError::InvalidValue {
                    field: $field,
                    message: format!(
                        "`{s}` is not one of: {}",
                        Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum!(
    /// The fifteen domains BetterWorld content must align with.
    ProblemDomain, "domain" {
        PovertyReduction => "poverty_reduction",
        EducationAccess => "education_access",
        HealthcareImprovement => "healthcare_improvement",
        EnvironmentalProtection => "environmental_protection",
        FoodSecurity => "food_security",
        MentalHealthWellbeing => "mental_health_wellbeing",
        CommunityBuilding => "community_building",
        DisasterResponse => "disaster_response",
        DigitalInclusion => "digital_inclusion",
        HumanRights => "human_rights",
        CleanWaterSanitation => "clean_water_sanitation",
        SustainableEnergy => "sustainable_energy",
        GenderEquality => "gender_equality",
        BiodiversityConservation => "biodiversity_conservation",
        ElderCare => "elder_care",
    }
);

impl ProblemDomain {
    /// The UN Sustainable Development Goals (1–17) the domain maps to.
    pub fn un_sdgs(self) -> &'static [u8] {
        use ProblemDomain::*;
        match self {
            PovertyReduction => &[1, 10],
            EducationAccess => &[4],
            HealthcareImprovement | MentalHealthWellbeing | ElderCare => &[3],
            EnvironmentalProtection => &[13, 15],
            FoodSecurity => &[2],
            CommunityBuilding | DisasterResponse => &[11],
            DigitalInclusion => &[9],
            HumanRights => &[16],
            CleanWaterSanitation => &[6],
            SustainableEnergy => &[7],
            GenderEquality => &[5],
            BiodiversityConservation => &[14, 15],
        }
    }
}

string_enum!(
    /// How severe a reported problem is.
    Severity, "severity" {
        Low => "low",
        Medium => "medium",
        High => "high",
        Critical => "critical",
    }
);

string_enum!(
    /// How far a problem reaches.
    GeographicScope, "geographicScope" {
        Local => "local",
        Regional => "regional",
        National => "national",
        Global => "global",
    }
);

string_enum!(
    /// Where content stands with the guardrails; only `approved` content is public.
    GuardrailStatus, "guardrailStatus" {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
        Flagged => "flagged",
    }
);

string_enum!(
    /// A problem's own life cycle.
    ProblemStatus, "status" {
        Active => "active",
        BeingAddressed => "being_addressed",
        Resolved => "resolved",
        Archived => "archived",
    }
);

string_enum!(
    /// A solution's life cycle (only `proposed → debating` is automatic so far).
    SolutionStatus, "status" {
        Proposed => "proposed",
        Debating => "debating",
        ReadyForAction => "ready_for_action",
        InProgress => "in_progress",
        Completed => "completed",
        Abandoned => "abandoned",
    }
);

string_enum!(
    /// Where a debate contribution stands on the solution.
    Stance, "stance" {
        Support => "support",
        Oppose => "oppose",
        Modify => "modify",
        Question => "question",
    }
);

string_enum!(
    /// What a human may do: `human` (the default), `admin`, `auditor` (both created by the CLI only).
    Role, "role" {
        Human => "human",
        Admin => "admin",
        Auditor => "auditor",
    }
);

string_enum!(
    /// An agent's verification standing (`domain-reference.md` §2.7): `pending` until it proves
    /// its e-mail or an admin verifies it. It sets the agent's rate-limit tier and trust tier.
    ClaimStatus, "claimStatus" {
        Pending => "pending",
        Verified => "verified",
    }
);

string_enum!(
    /// The framework an agent runs on.
    AgentFramework, "framework" {
        Openclaw => "openclaw",
        Langchain => "langchain",
        Crewai => "crewai",
        Autogen => "autogen",
        Custom => "custom",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_the_wire_name_of_each_domain_when_parsed_then_it_round_trips() {
        assert_eq!(ProblemDomain::ALL.len(), 15);
        for domain in ProblemDomain::ALL {
            assert_eq!(domain.as_str().parse::<ProblemDomain>(), Ok(*domain));
            assert_eq!(
                serde_json::to_value(domain).ok(),
                Some(serde_json::Value::from(domain.as_str()))
            );
        }
    }

    #[test]
    fn given_an_unknown_domain_when_parsed_then_the_error_lists_the_accepted_ones() {
        let err = "space_exploration"
            .parse::<ProblemDomain>()
            .expect_err("not a domain");
        let DomainError::InvalidValue { field, message } = err else {
            panic!("{err:?}")
        };
        assert_eq!(field, "domain");
        assert!(
            message.contains("`space_exploration` is not one of: poverty_reduction, "),
            "{message}"
        );
        assert!(message.ends_with("elder_care"), "{message}");
    }

    #[test]
    fn given_each_domain_when_asked_for_sdgs_then_they_are_real_goals() {
        for domain in ProblemDomain::ALL {
            assert!(!domain.un_sdgs().is_empty());
            assert!(
                domain.un_sdgs().iter().all(|g| (1..=17).contains(g)),
                "{domain}"
            );
        }
        assert_eq!(ProblemDomain::BiodiversityConservation.un_sdgs(), &[14, 15]);
    }

    #[test]
    fn given_severities_when_compared_then_they_are_ordered_low_to_critical() {
        assert!(Severity::Low < Severity::Medium && Severity::High < Severity::Critical);
        assert_eq!("critical".parse::<Severity>(), Ok(Severity::Critical));
        assert!("urgent".parse::<Severity>().is_err());
    }
}
