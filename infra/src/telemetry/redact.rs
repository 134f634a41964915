//! Redaction of secrets and personal data before anything is written to a log.
//!
//! Two lines of defence: a field whose *name* says it holds a secret or personal data is replaced
//! whole ([`is_sensitive_name`]), and every string value is scanned for things that look like e-mail
//! addresses, bearer/basic credentials and passwords inside URLs ([`scrub`]).

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Name fragments (lower case, `-` and `_` equivalent) marking a field or header as sensitive.
const SENSITIVE: &[&str] = &[
    "authorization",
    "cookie",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "x_api_key",
    "bw_key",
    "credential",
    "private_key",
    "signature",
    "verification_code",
    "otp",
    "email",
    "e_mail",
    "idempotency",
];

/// Whether a field, header or query-parameter name marks its value as sensitive.
pub fn is_sensitive_name(name: &str) -> bool {
    let normalised = name.to_ascii_lowercase().replace('-', "_");
    SENSITIVE.iter().any(|s| normalised.contains(s))
}

/// Returns `value` with e-mail addresses, `Bearer`/`Basic` credentials and URL passwords replaced.
pub fn scrub(value: &str) -> std::borrow::Cow<'_, str> {
    if !(value.contains('@')
        || contains_ignore_case(value, "bearer ")
        || contains_ignore_case(value, "basic "))
    {
        return std::borrow::Cow::Borrowed(value);
    }
    let out = scrub_credentials(value);
    let out = scrub_url_passwords(&out);
    std::borrow::Cow::Owned(scrub_emails(&out))
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(needle)
}

fn scrub_credentials(value: &str) -> String {
    let lower = value.to_ascii_lowercase();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let rest = &lower[i..];
        let scheme = ["bearer ", "basic "]
            .into_iter()
            .find(|s| rest.starts_with(s));
        match scheme {
            Some(s) => {
                out.push_str(&value[i..i + s.len()]);
                out.push_str(REDACTED);
                i += s.len();
                while let Some(c) = value[i..].chars().next() {
                    if c.is_whitespace() || c == '"' || c == ',' {
                        break;
                    }
                    i += c.len_utf8();
                }
            }
            None => {
                let c = value[i..].chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

fn scrub_url_passwords(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', ' ', '"', '?', '#']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rsplit_once('@') {
            Some((userinfo, host)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or_default();
                out.push_str(user);
                out.push(':');
                out.push_str(REDACTED);
                out.push('@');
                out.push_str(host);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._%+-".contains(c)
}

fn is_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-'
}

fn scrub_emails(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    let mut emitted = 0;
    while i < chars.len() {
        if chars[i] == '@' {
            let mut start = i;
            while start > emitted && is_local_char(chars[start - 1]) {
                start -= 1;
            }
            let mut end = i + 1;
            while end < chars.len() && is_domain_char(chars[end]) {
                end += 1;
            }
            // Trailing dots belong to the sentence, not the domain.
            while end > i + 1 && chars[end - 1] == '.' {
                end -= 1;
            }
            let domain: String = chars[i + 1..end].iter().collect();
            let tld_ok = domain.rsplit_once('.').is_some_and(|(name, tld)| {
                !name.is_empty() && tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic())
            });
            if start < i && tld_ok {
                out.extend(&chars[emitted..start]);
                out.push_str("[email]");
                emitted = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.extend(&chars[emitted..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_names_cover_headers_and_fields() {
        for name in [
            "Authorization",
            "cookie",
            "Set-Cookie",
            "X-Api-Key",
            "password",
            "new_password",
            "refreshToken",
            "access_token",
            "email",
            "client_secret",
        ] {
            assert!(is_sensitive_name(name), "{name}");
        }
        assert!(
            is_sensitive_name("Idempotency-Key"),
            "replayable registrations make the key a secret"
        );
        for name in ["user-agent", "request_id", "status", "route"] {
            assert!(!is_sensitive_name(name), "{name}");
        }
    }

    #[test]
    fn scrub_removes_emails_credentials_and_url_passwords() {
        assert_eq!(
            scrub("user alice.smith+bw@example.org signed in."),
            "user [email] signed in."
        );
        assert_eq!(
            scrub("header was Bearer abc.def-123, retrying"),
            "header was Bearer [redacted], retrying"
        );
        assert_eq!(scrub("basic dXNlcjpwYXNz"), "basic [redacted]");
        assert_eq!(
            scrub("cannot connect to postgres://bw:hunter2@db:5432/bw"),
            "cannot connect to postgres://bw:[redacted]@db:5432/bw"
        );
        assert_eq!(scrub("no secrets @ all"), "no secrets @ all");
        assert_eq!(scrub("a@b"), "a@b");
    }
}
