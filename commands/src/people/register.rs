//! Registering a person: the `Human` stream's first event, with the person's key, credentials and
//! first code written in the same transaction.

use bw_domain::{
    human::{Human, HumanCommand},
    taxonomy::Role,
    values::{CodeCheck, EmailAddress, HumanName, Password, SealedField},
};
use bw_infra::crypto::{
    password,
    seal::{self, PersonKey},
};
use chrono::Utc;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    CommandBus, CommandContext, CommandError, Outcome, SideWrites, codes, error::unique_violation,
    idempotency::StoredResponse,
};

use super::keys;

/// A new person, parsed.
#[derive(Debug)]
pub struct NewHuman {
    pub email: EmailAddress,
    pub password: Password,
    pub display_name: HumanName,
    pub role: Role,
}

/// Registers `new` (and, for accounts the CLI creates, verifies the e-mail at once): generates the
/// person's key, seals the e-mail and name, hashes the password off the runtime, and writes key,
/// credentials and the first code in the registration's transaction. Returns the outcome and the
/// code to send (none on a replay or for a pre-verified account).
pub async fn register_human(
    bus: &CommandBus,
    email_secret: &[u8],
    new: NewHuman,
    ctx: &CommandContext,
    pre_verified: bool,
) -> Result<(Outcome, Uuid, Option<String>), CommandError> {
    let human_id = Uuid::now_v7();
    let key = PersonKey::generate();
    let seal_field = |field: &str, plain: &str| {
        SealedField::new(
            serde_json::to_value(seal::seal(&key, human_id, field, plain)).unwrap_or_default(),
        )
    };
    let fingerprint = seal::email_fingerprint(email_secret, new.email.as_str());
    let hash = password::hash(new.password.expose().to_owned())
        .await
        .map_err(CommandError::PasswordHashing)?;
    let code = (!pre_verified).then(codes::new_code);
    let command = HumanCommand::Register {
        human_id,
        email: seal_field("email", new.email.as_str()),
        display_name: seal_field("displayName", new.display_name.as_str()),
        role: new.role,
        at: Utc::now(),
    };
    let role = new.role;
    let first_code = code.clone();
    let side: SideWrites = Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            keys::store(conn, human_id, &key).await?;
            let inserted = sqlx::query(
                "INSERT INTO human_credentials (human_id, email_hmac, password_hash, role, email_verified_at)
                 VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)",
            )
            .bind(human_id)
            .bind(fingerprint.as_slice())
            .bind(hash)
            .bind(role.as_str())
            .bind(pre_verified)
            .execute(&mut *conn)
            .await;
            match inserted {
                Err(e)
                    if unique_violation(&e).as_deref() == Some("human_credentials_email_key") =>
                {
                    return Err(CommandError::EmailTaken);
                }
                other => {
                    other?;
                }
            }
            if let Some(code) = first_code {
                codes::HUMANS
                    .insert_first(conn, human_id, &code, Utc::now())
                    .await?;
            }
            Ok(())
        })
    });
    let outcome = bus
        .execute_with::<Human>(&human_id.to_string(), command, ctx, Some(side), |position| {
            StoredResponse {
                status: 201,
                body: json!({ "humanId": human_id, "role": role.as_str(), "emailVerified": pre_verified }),
                position,
            }
        })
        .await?;
    if pre_verified && matches!(outcome, Outcome::Executed { .. }) {
        bus.execute::<Human>(
            &human_id.to_string(),
            HumanCommand::VerifyEmail {
                // The operator creating the account vouches for the address.
                check: CodeCheck::Valid,
                at: Utc::now(),
            },
            &CommandContext {
                idempotency: None,
                ..ctx.clone()
            },
            |position| StoredResponse {
                status: 200,
                body: Value::Null,
                position,
            },
        )
        .await?;
    }
    let code = matches!(outcome, Outcome::Executed { .. })
        .then_some(code)
        .flatten();
    Ok((outcome, human_id, code))
}
