//! Value types parsed at the edge: once constructed, they hold valid data only.
//!
//! Each type's constructor is the single place its rule lives (`domain-reference.md` §1.2, §1.4);
//! events carry these types, so a stored event never holds an invalid value.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Checks the length of trimmed text in characters (not bytes).
fn bounded(field: &'static str, raw: &str, min: usize, max: usize) -> Result<String, DomainError> {
    let text = raw.trim();
    let chars = text.chars().count();
    if chars < min || chars > max {
        return Err(DomainError::invalid(
            field,
            format!("must be {min}–{max} characters, got {chars}"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

macro_rules! text_type {
    ($(#[$meta:meta])* $name:ident, $field:literal, $min:expr, $max:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses raw input (trimmed; length in characters).
            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                bounded($field, raw, $min, $max).map(Self)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// The language a problem is written in: a BCP 47 tag of a 2–3 letter language and optional
/// subtags (`en`, `sw`, `pt-BR`, `zh-Hant`), at most 35 characters, the language part lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Language(String);

impl Language {
    /// What content written before languages were recorded is taken to be (`ProblemReported` v1).
    pub const ENGLISH: &'static str = "en";

    /// Parses a tag.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim();
        let mut parts = raw.split('-');
        let primary = parts.next().unwrap_or_default();
        let primary_ok =
            (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_alphabetic());
        let rest_ok = parts
            .all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if raw.len() > 35 || !primary_ok || !rest_ok {
            return Err(DomainError::invalid(
                "language",
                "a BCP 47 language tag such as en, sw or pt-BR",
            ));
        }
        let (primary, rest) = raw.split_at(primary.len());
        Ok(Self(format!("{}{rest}", primary.to_ascii_lowercase())))
    }

    /// English.
    pub fn english() -> Self {
        Self(Self::ENGLISH.to_owned())
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_type!(/// A problem's title, 10–500 characters.
    Title, "title", 10, 500);
text_type!(/// A problem's description, 50–10,000 characters.
    Description, "description", 50, 10_000);
text_type!(/// A free-text estimate of the population affected, at most 100 characters.
    PopulationEstimate, "affectedPopulationEstimate", 1, 100);
text_type!(/// A place name, at most 200 characters.
    LocationName, "locationName", 1, 200);
text_type!(/// How a solution would work, 50–20,000 characters.
    Approach, "approach", 50, 20_000);
text_type!(/// A debate contribution, 50–10,000 characters.
    DebateContent, "content", 50, 10_000);
text_type!(/// A rough timeline, at most 100 characters.
    TimelineEstimate, "timelineEstimate", 1, 100);
text_type!(/// A human's display name, 2–200 characters.
    HumanName, "displayName", 2, 200);
text_type!(/// An agent's display name, at most 200 characters.
    DisplayName, "displayName", 1, 200);
text_type!(/// An agent's self-description, at most 2,000 characters.
    SoulSummary, "soulSummary", 1, 2_000);
text_type!(/// The provider of an agent's model, at most 50 characters.
    ModelProvider, "modelProvider", 1, 50);
text_type!(/// The name of an agent's model, at most 100 characters.
    ModelName, "modelName", 1, 100);

/// Words no agent may take as its username.
pub const RESERVED_USERNAMES: &[&str] = &[
    "admin",
    "system",
    "betterworld",
    "moderator",
    "support",
    "official",
    "null",
    "undefined",
    "api",
    "root",
];

/// An agent's username: 3–100 characters of `a-z 0-9 _`, starting and ending with a letter or digit,
/// no `__`, not reserved. Usernames are lower case by this rule, so uniqueness is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Parses a requested username.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let field = "username";
        let len = raw.chars().count();
        if !(3..=100).contains(&len) {
            return Err(DomainError::invalid(
                field,
                format!("must be 3–100 characters, got {len}"),
            ));
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        if !raw.chars().all(allowed) {
            return Err(DomainError::invalid(
                field,
                "may contain only lower-case letters, digits and `_`",
            ));
        }
        if raw.starts_with('_') || raw.ends_with('_') {
            return Err(DomainError::invalid(
                field,
                "must start and end with a letter or digit",
            ));
        }
        if raw.contains("__") {
            return Err(DomainError::invalid(field, "must not contain `__`"));
        }
        if RESERVED_USERNAMES.contains(&raw) {
            return Err(DomainError::invalid(field, format!("`{raw}` is reserved")));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address: `local@domain.tld`, at most 254 characters, no whitespace. Personal data:
/// never put in an event payload in plaintext (ADR 0003).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses an address (trimmed; the domain is lower-cased).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let field = "email";
        let raw = raw.trim();
        let invalid = || DomainError::invalid(field, "is not an e-mail address");
        if raw.len() > 254 || raw.chars().any(char::is_whitespace) {
            return Err(invalid());
        }
        let (local, domain) = raw.rsplit_once('@').ok_or_else(invalid)?;
        let labels: Vec<&str> = domain.split('.').collect();
        if local.is_empty()
            || local.len() > 64
            || labels.len() < 2
            || labels
                .iter()
                .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
        {
            return Err(invalid());
        }
        if !domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(invalid());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Personal data stays out of debug output (and so out of logs).
        f.write_str("EmailAddress([redacted])")
    }
}

/// A human's password, checked against the policy (8–128 characters with an upper-case letter, a
/// lower-case letter and a digit). Never printed; read it deliberately with [`Password::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Parses a chosen password.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let field = "password";
        let len = raw.chars().count();
        if !(8..=128).contains(&len) {
            return Err(DomainError::invalid(
                field,
                format!("must be 8–128 characters, got {len}"),
            ));
        }
        let has = |f: fn(&char) -> bool| raw.chars().any(|c| f(&c));
        if !has(char::is_ascii_uppercase)
            || !has(char::is_ascii_lowercase)
            || !has(char::is_ascii_digit)
        {
            return Err(DomainError::invalid(
                field,
                "needs an upper-case letter, a lower-case letter and a digit",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A personal field sealed by the command side with its owner's key (ADR 0003). The domain never
/// looks inside: it only carries the value into events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedField(serde_json::Value);

impl SealedField {
    /// Wraps a sealed value produced by the command side.
    pub fn new(sealed: serde_json::Value) -> Self {
        Self(sealed)
    }

    /// The sealed value, for the projector that opens it.
    pub fn value(&self) -> &serde_json::Value {
        &self.0
    }
}

/// What the command side found when it checked a verification code against the one it issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// The code matches and has not expired.
    Valid,
    /// The code does not match.
    Wrong,
    /// The code matched an expired one.
    Expired,
    /// No code was issued (no e-mail was given, or it is verified already).
    NoneIssued,
}

impl CodeCheck {
    /// `Ok` for a valid code; otherwise the error the client sees (`none_issued` says why there is
    /// no code for this kind of account).
    pub fn require_valid(self, none_issued: &'static str) -> Result<(), DomainError> {
        match self {
            Self::Valid => Ok(()),
            Self::Wrong => Err(DomainError::invalid(
                "verificationCode",
                "does not match the code that was sent",
            )),
            Self::Expired => Err(DomainError::invalid(
                "verificationCode",
                "has expired; ask for a new one",
            )),
            Self::NoneIssued => Err(DomainError::InvalidState(none_issued)),
        }
    }
}

/// An admin's rate-limit override for one agent: 1–1000 requests per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct RateLimitOverride(u16);

impl RateLimitOverride {
    /// Parses a limit in requests per minute.
    pub fn parse(per_minute: i64) -> Result<Self, DomainError> {
        u16::try_from(per_minute)
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .map(Self)
            .ok_or_else(|| {
                DomainError::invalid("limit", "must be 1–1000 requests per minute, or null")
            })
    }

    /// Requests per minute.
    pub fn per_minute(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for RateLimitOverride {
    type Error = DomainError;

    fn try_from(value: u16) -> Result<Self, Self::Error> {
        Self::parse(i64::from(value))
    }
}

impl From<RateLimitOverride> for u16 {
    fn from(value: RateLimitOverride) -> Self {
        value.0
    }
}

/// A point on Earth: latitude −90..90 and longitude −180..180, both finite.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
}

impl GeoPoint {
    /// Parses a latitude/longitude pair.
    pub fn parse(latitude: f64, longitude: f64) -> Result<Self, DomainError> {
        if !latitude.is_finite() || !(-90.0..=90.0).contains(&latitude) {
            return Err(DomainError::invalid(
                "latitude",
                "must be between -90 and 90",
            ));
        }
        if !longitude.is_finite() || !(-180.0..=180.0).contains(&longitude) {
            return Err(DomainError::invalid(
                "longitude",
                "must be between -180 and 180",
            ));
        }
        Ok(Self {
            latitude,
            longitude,
        })
    }
}

/// An HTTPS link of at most 2,048 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HttpsUrl(String);

impl HttpsUrl {
    /// Parses a link; only `https://` URLs with a host are accepted.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim();
        if raw.len() > 2048 {
            return Err(DomainError::invalid(
                field,
                "links must be at most 2048 characters",
            ));
        }
        let Some(rest) = raw.strip_prefix("https://") else {
            return Err(DomainError::invalid(
                field,
                format!("`{raw}` is not an https:// link"),
            ));
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || raw.chars().any(char::is_whitespace) {
            return Err(DomainError::invalid(
                field,
                format!("`{raw}` is not a valid link"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The link.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses a list of at most `max` items with `parse`, naming the failing index.
pub fn parse_list<T>(
    field: &'static str,
    raw: &[String],
    max: usize,
    parse: impl Fn(&str) -> Result<T, DomainError>,
) -> Result<Vec<T>, DomainError> {
    if raw.len() > max {
        return Err(DomainError::invalid(
            field,
            format!("at most {max} items, got {}", raw.len()),
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, item)| {
            parse(item).map_err(|e| match e {
                DomainError::InvalidValue { message, .. } => {
                    DomainError::invalid(field, format!("item {i}: {message}"))
                }
                other => other,
            })
        })
        .collect()
}

/// A short free-text list item (existing solutions, data sources): 1–1,000 characters.
pub fn list_item(field: &'static str) -> impl Fn(&str) -> Result<String, DomainError> {
    move |raw| bounded(field, raw, 1, 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_registration_rules() {
        for ok in ["abc", "agent_007", "a1b", &"x".repeat(100)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("ab", "3–100"),
            ("Alice", "lower-case"),
            ("_abc", "start and end"),
            ("abc_", "start and end"),
            ("a__b", "`__`"),
            ("admin", "reserved"),
            ("a-b", "lower-case"),
        ] {
            let err = Username::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn text_lengths_count_characters_after_trimming() {
        assert!(Title::parse("  short  ").is_err());
        assert!(Title::parse("ten chars!").is_ok());
        assert!(
            Title::parse(&"é".repeat(500)).is_ok(),
            "500 two-byte characters fit"
        );
        assert!(Title::parse(&"é".repeat(501)).is_err());
        assert!(Title::parse("bell\u{7} in the title").is_err());
    }

    #[test]
    fn email_addresses_are_checked_and_never_debug_printed() {
        let email = EmailAddress::parse(" River.Watch@Example.ORG ").expect("valid");
        assert_eq!(email.as_str(), "River.Watch@example.org");
        assert_eq!(format!("{email:?}"), "EmailAddress([redacted])");
        for bad in [
            "no-at-sign",
            "a@b",
            "a@.org",
            "a b@example.org",
            "@example.org",
            "a@exa_mple.org",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_follow_the_policy_and_never_print() {
        assert!(Password::parse("Correct9horse").is_ok());
        for (bad, why) in [
            ("Sh0rt", "8–128"),
            ("alllowercase9", "upper-case"),
            ("ALLUPPER9X", "upper-case"),
            ("NoDigitsHere", "digit"),
        ] {
            let err = Password::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
        assert_eq!(
            format!("{:?}", Password::parse("Correct9horse").expect("valid")),
            "Password([redacted])"
        );
    }

    #[test]
    fn points_and_links_are_checked() {
        assert!(GeoPoint::parse(52.5, 13.4).is_ok());
        assert!(GeoPoint::parse(91.0, 0.0).is_err());
        assert!(GeoPoint::parse(0.0, f64::NAN).is_err());
        assert!(HttpsUrl::parse("evidenceLinks", "https://example.org/report").is_ok());
        assert!(HttpsUrl::parse("evidenceLinks", "http://example.org").is_err());
        assert!(HttpsUrl::parse("evidenceLinks", "https:///nohost").is_err());
        let links: Vec<String> = (0..21).map(|i| format!("https://e.org/{i}")).collect();
        let err = parse_list("evidenceLinks", &links, 20, |s| {
            HttpsUrl::parse("evidenceLinks", s)
        });
        assert!(err.is_err());
    }
}
