//! E-mail verification codes at the edge: parsing a submitted code and delivering a new one. The
//! codes themselves (issuing, budget, checking, voiding) are the command side's
//! ([`bw_commands::codes`]).

use crate::{error::ApiError, state::Platform};

/// Parses a submitted code: exactly 6 digits.
pub fn parse(raw: &str) -> Result<&str, ApiError> {
    let code = raw.trim();
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(code)
    } else {
        Err(ApiError::field(
            "verificationCode",
            "must be exactly 6 digits",
        ))
    }
}

/// Sends a code; a failure to deliver is logged (the owner can ask for another).
pub async fn send(platform: &Platform, email: &str, code: &str) {
    let body = format!("Your BetterWorld verification code is {code}. It is valid for 15 minutes.");
    if let Err(e) = platform
        .notifier
        .send(email, "BetterWorld verification code", &body)
        .await
    {
        tracing::warn!(error = %e, "verification code not delivered");
    }
}
