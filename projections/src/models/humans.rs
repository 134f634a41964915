//! Humans: one row per person, personal fields still sealed (ADR 0003).
//!
//! The projector copies sealed fields as they are; [`profile`] opens them at read time with the
//! person's key from `person_keys`. A destroyed key therefore shows the person as forgotten on the
//! very next read, and a rebuild after forgetting cannot bring anything back.

use bw_domain::human::HumanEvent;
use bw_eventlog::envelope::EventEnvelope;
use bw_infra::crypto::{
    CryptoError,
    seal::{self, PersonKey, Sealed},
};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::decode;
use crate::{ProjectionError, runtime::Projection};

/// The projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Humans;

/// Its name (checkpoint row, consumer, metrics).
pub const NAME: &str = "humans";

/// What a forgotten person's text fields read as.
pub const FORGOTTEN: &str = "[forgotten]";

impl Projection for Humans {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Human"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_humans"]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let updated = match decode::<HumanEvent>(event)? {
                HumanEvent::HumanRegistered {
                    human_id,
                    email,
                    display_name,
                    role,
                    registered_at,
                    ..
                } => {
                    sqlx::query(
                        "INSERT INTO rm_humans (human_id, role, display_name, email, registered_at, updated_at, position)
                         VALUES ($1, $2, $3, $4, $5, $5, $6)",
                    )
                    .bind(human_id)
                    .bind(role.as_str())
                    .bind(display_name.value())
                    .bind(email.value())
                    .bind(registered_at)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                    return Ok(());
                }
                HumanEvent::HumanEmailVerified {
                    human_id,
                    verified_at,
                } => {
                    sqlx::query("UPDATE rm_humans SET email_verified = true, updated_at = $2, position = $3 WHERE human_id = $1")
                        .bind(human_id)
                        .bind(verified_at)
                        .bind(event.global_position)
                        .execute(&mut *conn)
                        .await?
                }
                HumanEvent::HumanProfileUpdated {
                    human_id,
                    changes,
                    updated_at,
                } => sqlx::query(
                    "UPDATE rm_humans SET display_name = COALESCE($2, display_name), skills = COALESCE($3, skills),
                         languages = COALESCE($4, languages), city = COALESCE($5, city), country = COALESCE($6, country),
                         location = COALESCE($7, location), service_radius_km = COALESCE($8, service_radius_km),
                         bio = COALESCE($9, bio), updated_at = $10, position = $11
                     WHERE human_id = $1",
                )
                .bind(human_id)
                .bind(changes.display_name.as_ref().map(|s| s.value()))
                .bind(&changes.skills)
                .bind(&changes.languages)
                .bind(&changes.city)
                .bind(&changes.country)
                .bind(changes.location.as_ref().map(|s| s.value()))
                .bind(changes.service_radius_km.map(i32::from))
                .bind(changes.bio.as_ref().map(|s| s.value()))
                .bind(updated_at)
                .bind(event.global_position)
                .execute(&mut *conn)
                .await?,
                HumanEvent::HumanForgotten {
                    human_id,
                    forgotten_at,
                    ..
                } => {
                    // The key is gone already; the sealed copies go too, along with the plain
                    // profile fields that could help single the person out.
                    sqlx::query(
                        "UPDATE rm_humans SET display_name = NULL, email = NULL, location = NULL, bio = NULL,
                             skills = '{}', languages = '{}', city = NULL, country = NULL,
                             forgotten_at = $2, updated_at = $2, position = $3
                         WHERE human_id = $1",
                    )
                    .bind(human_id)
                    .bind(forgotten_at)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?
                }
            };
            super::expect_one(&updated, event, || {
                "the person is not in the read model".into()
            })
        })
    }
}

/// An exact location (opened from its sealed form).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
}

/// A person's profile as they (or an admin) see it, personal fields opened.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HumanProfile {
    pub human_id: Uuid,
    pub role: String,
    /// `[forgotten]` once the person is forgotten.
    pub display_name: String,
    /// `[forgotten]` once the person is forgotten.
    pub email: String,
    pub email_verified: bool,
    pub skills: Vec<String>,
    pub languages: Vec<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub location: Option<Location>,
    pub service_radius_km: i32,
    pub bio: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub forgotten: bool,
}

#[derive(sqlx::FromRow)]
struct Row {
    human_id: Uuid,
    role: String,
    display_name: Option<Value>,
    email: Option<Value>,
    email_verified: bool,
    skills: Vec<String>,
    languages: Vec<String>,
    city: Option<String>,
    country: Option<String>,
    location: Option<Value>,
    service_radius_km: i32,
    bio: Option<Value>,
    registered_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    forgotten_at: Option<DateTime<Utc>>,
    key: Option<Vec<u8>>,
}

/// Opens `field` of `person`: `None` when absent, `[forgotten]` when the key is gone.
fn open(
    key: Option<&PersonKey>,
    person: Uuid,
    field: &str,
    sealed: Option<Value>,
) -> Result<Option<String>, ProjectionError> {
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let sealed: Sealed = serde_json::from_value(sealed)
        .map_err(|e| ProjectionError::Corrupt(format!("sealed {field}: {e}")))?;
    match seal::open(key, person, field, &sealed) {
        Ok(plain) => Ok(Some(plain)),
        Err(CryptoError::Forgotten) => Ok(Some(FORGOTTEN.to_owned())),
        Err(e) => Err(ProjectionError::Corrupt(format!("{field}: {e}"))),
    }
}

/// A person's profile, opened; `None` if unknown to the read model.
pub async fn profile(
    pool: &PgPool,
    human_id: Uuid,
) -> Result<Option<HumanProfile>, ProjectionError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT h.human_id, h.role, h.display_name, h.email, h.email_verified, h.skills, h.languages, h.city,
                h.country, h.location, h.service_radius_km, h.bio, h.registered_at, h.updated_at,
                h.forgotten_at, k.key
         FROM rm_humans h LEFT JOIN person_keys k ON k.person_id = h.human_id
         WHERE h.human_id = $1",
    )
    .bind(human_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let key = row.key.as_deref().and_then(PersonKey::from_bytes);
    let id = row.human_id;
    let forgotten = key.is_none();
    let text = |field: &str, value: Option<Value>| -> Result<String, ProjectionError> {
        Ok(open(key.as_ref(), id, field, value)?.unwrap_or_else(|| FORGOTTEN.to_owned()))
    };
    let location = match open(key.as_ref(), id, "location", row.location)? {
        Some(plain) if plain != FORGOTTEN => Some(
            serde_json::from_str(&plain)
                .map_err(|e| ProjectionError::Corrupt(format!("location: {e}")))?,
        ),
        _ => None,
    };
    let bio = open(key.as_ref(), id, "bio", row.bio)?.filter(|_| !forgotten);
    Ok(Some(HumanProfile {
        human_id: id,
        role: row.role,
        display_name: text("displayName", row.display_name)?,
        email: text("email", row.email)?,
        email_verified: row.email_verified,
        skills: if forgotten { Vec::new() } else { row.skills },
        languages: if forgotten { Vec::new() } else { row.languages },
        city: row.city.filter(|_| !forgotten),
        country: row.country.filter(|_| !forgotten),
        location,
        service_radius_km: row.service_radius_km,
        bio,
        registered_at: row.registered_at,
        updated_at: row.updated_at,
        forgotten: forgotten || row.forgotten_at.is_some(),
    }))
}
