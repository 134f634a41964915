//! Evidence upload (`domain-reference.md` §1.9, §6.1): `POST /missions/{id}/evidence`, multipart.
//!
//! Each file is read up to 10 MB (one byte more is `413 PAYLOAD_TOO_LARGE`), its type is decided
//! by its content — JPEG, PNG, HEIC, PDF, MP4, QuickTime — and must agree with the declared type
//! when one is declared; its SHA-256 is recorded and compared with every earlier submission's
//! files (an exact duplicate is recorded as such, for verification to weigh). EXIF is read for GPS
//! and capture time, and only an allow-list of fields is kept (no serial numbers, owner names,
//! comments or maker notes). Files are stored under keys built from the mission and evidence ids —
//! the client's file name is checked (a plain name) and kept nowhere. The submission then goes to
//! the `Evidence` aggregate with the claim facts read from the mission's stream.

use std::collections::BTreeMap;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Multipart, Path, multipart::MultipartRejection},
    http::HeaderMap,
    routing::post,
};
use bw_commands::{evidence_files, idempotency::StoredResponse};
use bw_domain::{
    evidence::{Capture, Evidence, EvidenceCommand, MAX_FILE_BYTES, MAX_FILES, StoredFile},
    meta::Actor,
    mission::{EvidenceKind, Mission},
    values::GeoPoint,
};
use bw_infra::storage::ObjectKey;
use bw_projections::models::evidence::{EvidenceSubmissions, EvidenceView};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    auth::HumanAuth,
    command::{CommandResponse, context_without_body},
    error::{ApiError, ErrorCode},
    state::{Api, AppState},
};

use super::{Fields, parse_path_id};

/// The evidence routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/missions/{id}/evidence",
            // Five files of 10 MB and the form fields.
            post(submit)
                .layer(DefaultBodyLimit::max(
                    MAX_FILES * MAX_FILE_BYTES + 1024 * 1024,
                ))
                .get(mine),
        )
        .route("/api/v1/evidence/{evidence_id}/appeal", post(appeal))
        .route("/api/v1/admin/disputes", axum::routing::get(disputes))
        .route(
            "/api/v1/admin/disputes/{evidence_id}/resolve",
            post(resolve),
        )
}

/// A type found in a file's first bytes.
fn sniff(bytes: &[u8]) -> Option<(&'static str, EvidenceKind, &'static str)> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(("image/jpeg", EvidenceKind::Photo, "jpg"));
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(("image/png", EvidenceKind::Photo, "png"));
    }
    if bytes.starts_with(b"%PDF-") {
        return Some(("application/pdf", EvidenceKind::Document, "pdf"));
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => {
                Some(("image/heic", EvidenceKind::Photo, "heic"))
            }
            b"qt  " => Some(("video/quicktime", EvidenceKind::Video, "mov")),
            b"isom" | b"iso2" | b"mp41" | b"mp42" | b"avc1" | b"M4V " | b"dash" => {
                Some(("video/mp4", EvidenceKind::Video, "mp4"))
            }
            _ => None,
        };
    }
    None
}

/// A declared MIME type in the form `sniff` names it (`None`: nothing useful was declared).
fn declared(content_type: Option<&str>) -> Option<String> {
    let t = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    match t.as_str() {
        "" | "application/octet-stream" => None,
        "image/jpg" | "image/pjpeg" => Some("image/jpeg".into()),
        "image/heif" => Some("image/heic".into()),
        _ => Some(t),
    }
}

/// A client's file name is a plain name or nothing.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && !name.contains("..")
        && !name.contains(['/', '\\', '\0'])
}

/// The EXIF facts kept from a file: GPS, capture time, orientation, dimensions — nothing personal.
#[derive(Debug, Default)]
struct ExifFacts {
    location: Option<GeoPoint>,
    captured_at: Option<DateTime<Utc>>,
    kept: BTreeMap<String, String>,
}

fn exif_facts(bytes: &[u8]) -> ExifFacts {
    use exif::{In, Tag, Value};
    let Ok(exif) = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes)) else {
        return ExifFacts::default();
    };
    let field = |tag| exif.get_field(tag, In::PRIMARY);
    let degrees = |tag| match field(tag).map(|f| &f.value) {
        Some(Value::Rational(v)) if v.len() >= 3 => {
            Some(v[0].to_f64() + v[1].to_f64() / 60.0 + v[2].to_f64() / 3600.0)
        }
        _ => None,
    };
    let reference = |tag| field(tag).map(|f| f.display_value().to_string());
    let signed = |value: Option<f64>, negative: &str, reference: Option<String>| {
        value.map(|v| {
            if reference.as_deref() == Some(negative) {
                -v
            } else {
                v
            }
        })
    };
    let latitude = signed(
        degrees(Tag::GPSLatitude),
        "S",
        reference(Tag::GPSLatitudeRef),
    );
    let longitude = signed(
        degrees(Tag::GPSLongitude),
        "W",
        reference(Tag::GPSLongitudeRef),
    );
    let location = latitude
        .zip(longitude)
        .and_then(|(lat, lng)| GeoPoint::parse(lat, lng).ok());
    // EXIF times carry no zone unless OffsetTimeOriginal is set; read as UTC.
    let captured_at = match field(Tag::DateTimeOriginal).map(|f| &f.value) {
        Some(Value::Ascii(v)) => v
            .first()
            .and_then(|raw| exif::DateTime::from_ascii(raw).ok())
            .and_then(|t| {
                NaiveDate::from_ymd_opt(i32::from(t.year), u32::from(t.month), u32::from(t.day))?
                    .and_hms_opt(u32::from(t.hour), u32::from(t.minute), u32::from(t.second))
                    .map(|n| n.and_utc())
            }),
        _ => None,
    };
    let mut kept = BTreeMap::new();
    if let Some(p) = location {
        kept.insert("gpsLatitude".into(), p.latitude.to_string());
        kept.insert("gpsLongitude".into(), p.longitude.to_string());
    }
    if let Some(t) = captured_at {
        kept.insert("dateTimeOriginal".into(), t.to_rfc3339());
    }
    for (tag, name) in [
        (Tag::Orientation, "orientation"),
        (Tag::PixelXDimension, "width"),
        (Tag::PixelYDimension, "height"),
    ] {
        if let Some(f) = field(tag) {
            kept.insert(name.into(), f.display_value().to_string());
        }
    }
    ExifFacts {
        location,
        captured_at,
        kept,
    }
}

/// One file as received.
struct Received {
    bytes: bytes::Bytes,
    mime: &'static str,
    kind: EvidenceKind,
    extension: &'static str,
    sha256: String,
}

/// The form, parsed.
#[derive(Default)]
struct Form {
    files: Vec<Received>,
    latitude: Option<String>,
    longitude: Option<String>,
    captured_at: Option<String>,
    notes: Option<String>,
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::refused(ErrorCode::PayloadTooLarge, "the upload is too large")
    } else {
        ApiError::refused(
            ErrorCode::BadRequest,
            format!("malformed multipart body: {e}"),
        )
    }
}

async fn read_form(mut multipart: Multipart) -> Result<Form, ApiError> {
    let mut form = Form::default();
    let mut fields = Fields::default();
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name != "files" {
            let text = field.text().await.map_err(multipart_error)?;
            let slot = match name.as_str() {
                "latitude" => &mut form.latitude,
                "longitude" => &mut form.longitude,
                "capturedAt" => &mut form.captured_at,
                "notes" => &mut form.notes,
                other => {
                    fields.error(other, "unknown field");
                    continue;
                }
            };
            *slot = Some(text);
            continue;
        }
        if form.files.len() == MAX_FILES {
            fields.error("files", "at most 5 files");
            break;
        }
        if field.file_name().is_some_and(|n| !plain_name(n)) {
            fields.error("files", "a file name must be a plain name (no path)");
            continue;
        }
        let declared = declared(field.content_type());
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if bytes.len() + chunk.len() > MAX_FILE_BYTES {
                return Err(ApiError::refused(
                    ErrorCode::PayloadTooLarge,
                    "each file may be at most 10 MB",
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        let Some((mime, kind, extension)) = sniff(&bytes) else {
            fields.error(
                "files",
                "not an accepted type by its content (JPEG, PNG, HEIC, PDF, MP4, QuickTime)",
            );
            continue;
        };
        if declared.as_deref().is_some_and(|d| d != mime) {
            fields.error(
                "files",
                format!(
                    "declared as {} but the content is {mime}",
                    declared.unwrap_or_default()
                ),
            );
            continue;
        }
        form.files.push(Received {
            sha256: hex::encode(Sha256::digest(&bytes)),
            bytes: bytes.into(),
            mime,
            kind,
            extension,
        });
    }
    if form.files.is_empty() {
        fields.error("files", "1–5 files");
    }
    fields.finish()?;
    Ok(form)
}

#[utoipa::path(
    post,
    path = "/api/v1/missions/{id}/evidence",
    tag = "evidence",
    params(
        ("id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat a submission safely")
    ),
    request_body(
        content_type = "multipart/form-data",
        description = "`files` (1–5, ≤ 10 MB each: JPEG, PNG, HEIC, PDF, MP4, QuickTime by content), `latitude`, `longitude`, `capturedAt` (RFC 3339, not in the future), `notes` (≤ 2,000)"
    ),
    security(("human_token" = [])),
    responses(
        (status = 201, description = "Submitted; stage pending", body = crate::schema::Ok<Object>),
        (
            status = 413,
            description = "PAYLOAD_TOO_LARGE: a file over 10 MB",
            body = crate::schema::ErrorEnvelope
        ),
        (
            status = "4XX",
            description = "Error envelope (403 without an active claim; 409 deadline passed or mission expired; 422 type, count, name, GPS or time)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn submit(
    Api(platform): Api,
    human: HumanAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<CommandResponse, ApiError> {
    let mission_id = parse_path_id(&id)?;
    let multipart = multipart.map_err(|_| ApiError::UnsupportedMediaType {
        expected: "multipart/form-data",
    })?;
    let form = read_form(multipart).await?;
    // The idempotency fingerprint covers the files and the form, so the same key with other files
    // is refused; a replay answers before anything is stored again.
    let mut fingerprint = Vec::new();
    for file in &form.files {
        fingerprint.extend_from_slice(file.sha256.as_bytes());
    }
    for value in [
        &form.latitude,
        &form.longitude,
        &form.captured_at,
        &form.notes,
    ] {
        fingerprint.push(0);
        fingerprint.extend_from_slice(value.as_deref().unwrap_or_default().as_bytes());
    }
    let mut ctx = context_without_body(
        &headers,
        "POST",
        &format!("/api/v1/missions/{mission_id}/evidence"),
        Actor::Human(human.human_id),
    )?;
    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        ctx.idempotency = Some(bw_commands::idempotency::IdempotencyKey::new(
            &Actor::Human(human.human_id).scope(),
            key,
            "POST",
            &format!("/api/v1/missions/{mission_id}/evidence"),
            &fingerprint,
        ));
    }
    if let Some(stored) = platform.bus.replayed(&ctx).await? {
        return Ok(CommandResponse(stored));
    }
    let mut f = Fields::default();
    let number = |f: &mut Fields, name: &str, raw: &Option<String>| {
        raw.as_deref().and_then(|r| {
            r.trim().parse::<f64>().ok().or_else(|| {
                f.error(name, "must be a number");
                None
            })
        })
    };
    let latitude = number(&mut f, "latitude", &form.latitude);
    let longitude = number(&mut f, "longitude", &form.longitude);
    let form_location = match (latitude, longitude) {
        (Some(lat), Some(lng)) => f.check(GeoPoint::parse(lat, lng)),
        (None, None) => None,
        _ => {
            f.error("latitude", "latitude and longitude go together");
            None
        }
    };
    let form_time = form.captured_at.as_deref().and_then(|raw| {
        DateTime::parse_from_rfc3339(raw.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| f.error("capturedAt", "an RFC 3339 time"))
            .ok()
    });
    f.finish()?;

    // EXIF fills in what the form did not give (§6.1), from the first file that has it. An EXIF
    // time is local time without a zone (read as UTC): one ahead of the clock is unknown, not a
    // reason to refuse what the client never sent.
    let horizon = Utc::now() + bw_domain::evidence::CLOCK_SKEW;
    let exif: Vec<ExifFacts> = form
        .files
        .iter()
        .map(|r| {
            let mut facts = exif_facts(&r.bytes);
            facts.captured_at = facts.captured_at.filter(|t| *t <= horizon);
            facts
        })
        .collect();
    let exif_location = exif.iter().find_map(|e| e.location);
    let capture = Capture {
        location: form_location.or(exif_location),
        location_source: if form_location.is_some() {
            Some("form".into())
        } else {
            exif_location.map(|_| "exif".into())
        },
        captured_at: form_time.or_else(|| exif.iter().find_map(|e| e.captured_at)),
        exif: exif.into_iter().next().map(|e| e.kept).unwrap_or_default(),
    };

    let at = Utc::now();
    let mission = platform
        .bus
        .load::<Mission>(&mission_id.to_string())
        .await?;
    let claim = mission.evidence_check(human.human_id, at);
    let evidence_id = Uuid::now_v7();
    let mut files = Vec::with_capacity(form.files.len());
    for (n, received) in form.files.iter().enumerate() {
        let duplicate_of = evidence_files::duplicate_of(&platform.pool, &received.sha256).await?;
        let key = ObjectKey::parse(&format!(
            "evidence/{}/{}/{n}.{}",
            mission_id.simple(),
            evidence_id.simple(),
            received.extension
        ))
        .map_err(ApiError::caused)?;
        files.push(StoredFile {
            key: key.as_str().to_owned(),
            sha256: received.sha256.clone(),
            size: received.bytes.len() as u64,
            mime: received.mime.to_owned(),
            kind: received.kind,
            duplicate_of,
        });
    }
    // Refused submissions store nothing: the claim is checked before any byte is written (the
    // aggregate checks it again on the same facts).
    claim.require_active()?;
    let facts = mission
        .facts_for(human.human_id)
        .ok_or_else(|| ApiError::internal("an active claim without its facts"))?;
    for (file, received) in files.iter().zip(&form.files) {
        let key = ObjectKey::parse(&file.key).map_err(ApiError::caused)?;
        platform
            .store
            .put(&key, received.bytes.clone(), received.mime)
            .await
            .map_err(|e| ApiError::Unavailable {
                message: format!("object storage is unavailable: {e}"),
                details: None,
            })?;
    }
    let hashes: Vec<String> = files.iter().map(|f| f.sha256.clone()).collect();
    let duplicates: Vec<Uuid> = files.iter().filter_map(|f| f.duplicate_of).collect();
    let count = files.len();
    let outcome = platform
        .bus
        .execute_with::<Evidence>(
            &evidence_id.to_string(),
            EvidenceCommand::Submit {
                evidence_id,
                mission_id,
                human_id: human.human_id,
                claim,
                mission: facts,
                exif_location,
                files,
                capture: Box::new(capture),
                notes: form.notes,
                at,
            },
            &ctx,
            Some(evidence_files::index_files(evidence_id, hashes)),
            move |position| StoredResponse {
                status: 201,
                body: json!({
                    "evidenceId": evidence_id, "missionId": mission_id, "status": "pending",
                    "filesUploaded": count, "duplicateOf": duplicates
                }),
                position,
            },
        )
        .await?;
    Ok(CommandResponse(outcome.response().clone()))
}

#[utoipa::path(
    get,
    path = "/api/v1/missions/{id}/evidence",
    tag = "evidence",
    params(
        ("id" = Uuid, Path),
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the evidence read model has applied this position"
        )
    ),
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "The caller's own submissions for this mission, newest first",
            body = crate::schema::Ok<Vec<EvidenceView>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn mine(
    Api(platform): Api,
    human: HumanAuth,
    min: crate::consistency::MinPosition,
    Path(id): Path<String>,
) -> Result<crate::envelope::ApiOk<Vec<EvidenceView>>, ApiError> {
    let mission_id = parse_path_id(&id)?;
    min.wait(&platform, &EvidenceSubmissions).await?;
    Ok(crate::envelope::ApiOk::new(
        bw_projections::models::evidence::of(&platform.pool, mission_id, human.human_id).await?,
    ))
}

/// `POST /evidence/{evidenceId}/appeal`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppealRequest {
    /// 20–2,000 characters.
    reason: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/evidence/{evidenceId}/appeal",
    tag = "evidence",
    request_body = AppealRequest,
    params(
        ("evidenceId" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat safely")
    ),
    security(("human_token" = [])),
    responses(
        (
            status = 201,
            description = "Appealed; an admin decides",
            body = crate::schema::Ok<Object>
        ),
        (
            status = "4XX",
            description = "Error envelope (403 not yours; 409 not rejected, or appealed already)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn appeal(
    Api(platform): Api,
    human: HumanAuth,
    Path(id): Path<String>,
    body: crate::command::CommandBody<AppealRequest>,
) -> Result<CommandResponse, ApiError> {
    let evidence_id = parse_path_id(&id)?;
    crate::command::execute::<Evidence, _>(
        &platform,
        Actor::Human(human.human_id),
        evidence_id,
        EvidenceCommand::Appeal {
            human_id: human.human_id,
            reason: body.body.reason.clone(),
            at: Utc::now(),
        },
        &body,
        move |position| StoredResponse {
            status: 201,
            body: json!({ "evidenceId": evidence_id, "newStage": "appealed" }),
            position,
        },
    )
    .await
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/disputes",
    tag = "admin",
    params(
        ("limit" = Option<u32>, Query, description = "1–100, default 20"),
        (
            "Bw-Min-Position" = Option<i64>,
            Header,
            description = "Wait until the evidence read model has applied this position"
        )
    ),
    security(("human_token" = [])),
    responses(
        (
            status = 200,
            description = "Appealed evidence awaiting an admin, oldest first",
            body = crate::schema::Ok<Vec<EvidenceView>>
        ),
        (status = "4XX", description = "Error envelope", body = crate::schema::ErrorEnvelope)
    )
)]
async fn disputes(
    Api(platform): Api,
    _admin: crate::auth::AdminAuth,
    min: crate::consistency::MinPosition,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<crate::envelope::ApiOk<Vec<EvidenceView>>, ApiError> {
    let mut f = Fields::default();
    let limit = super::page_limit(&mut f, query.get("limit").map(String::as_str));
    f.finish()?;
    min.wait(&platform, &EvidenceSubmissions).await?;
    Ok(crate::envelope::ApiOk::new(
        bw_projections::models::evidence::disputes(&platform.pool, limit).await?,
    ))
}

/// `POST /admin/disputes/{evidenceId}/resolve`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `approve` (verified, the full reward) or `reject` (final).
    decision: String,
    /// 10–5,000 characters.
    reasoning: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/disputes/{evidenceId}/resolve",
    tag = "admin",
    request_body = ResolveRequest,
    params(
        ("evidenceId" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat safely")
    ),
    security(("human_token" = [])),
    responses(
        (status = 200, description = "Resolved", body = crate::schema::Ok<Object>),
        (
            status = "4XX",
            description = "Error envelope (409 no open appeal)",
            body = crate::schema::ErrorEnvelope
        )
    )
)]
async fn resolve(
    Api(platform): Api,
    admin: crate::auth::AdminAuth,
    Path(id): Path<String>,
    body: crate::command::CommandBody<ResolveRequest>,
) -> Result<CommandResponse, ApiError> {
    let evidence_id = parse_path_id(&id)?;
    let approve = match body.body.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(ApiError::field("decision", "approve or reject")),
    };
    let admin_id = admin.0.human_id;
    crate::command::execute::<Evidence, _>(
        &platform,
        Actor::Human(admin_id),
        evidence_id,
        EvidenceCommand::ResolveAppeal {
            admin_id,
            approve,
            reasoning: body.body.reasoning.clone(),
            at: Utc::now(),
        },
        &body,
        move |position| StoredResponse {
            status: 200,
            body: json!({ "evidenceId": evidence_id, "stage": if approve { "verified" } else { "rejected" } }),
            position,
        },
    )
    .await
}

/// The OpenAPI paths of this module.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(submit, mine, appeal, disputes, resolve))]
pub struct EvidenceApi;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_decided_by_content() {
        assert_eq!(
            sniff(b"\xff\xd8\xff\xe0rest").map(|t| t.0),
            Some("image/jpeg")
        );
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\nrest").map(|t| t.0),
            Some("image/png")
        );
        assert_eq!(sniff(b"%PDF-1.7").map(|t| t.0), Some("application/pdf"));
        assert_eq!(
            sniff(b"\0\0\0\x18ftypheic\0\0").map(|t| t.0),
            Some("image/heic")
        );
        assert_eq!(
            sniff(b"\0\0\0\x18ftypqt  \0\0").map(|t| t.0),
            Some("video/quicktime")
        );
        assert_eq!(
            sniff(b"\0\0\0\x18ftypisom\0\0").map(|t| t.0),
            Some("video/mp4")
        );
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b"MZ\x90\0 an executable"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(declared(Some("image/JPG")), Some("image/jpeg".into()));
        assert_eq!(declared(Some("application/octet-stream")), None);
    }

    #[test]
    fn file_names_must_be_plain() {
        for bad in [
            "../../etc/passwd",
            "a/b.jpg",
            "..",
            "c:\\x.jpg",
            "",
            "nul\0.jpg",
        ] {
            assert!(!plain_name(bad), "{bad:?}");
        }
        assert!(plain_name("IMG_2041.JPG"));
    }
}
