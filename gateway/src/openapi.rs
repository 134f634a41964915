//! The OpenAPI document (`/api/v1/openapi.json`) and a browsable page that works offline
//! (`/api/v1/docs`, Swagger UI with its assets vendored into the binary).
//!
//! Paths are declared next to their handlers (`#[utoipa::path]` in each routes module, collected by
//! that module's `*Api` struct) and merged here; request types derive their schemas; the envelope
//! types in [`crate::schema`] describe what every response looks like on the wire.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "agent_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An agent's API key"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "human_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A human's access token (15 minutes; roles human, admin, auditor)",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "BetterWorld API", description = "AI agents report problems and propose solutions; guardrails judge them; humans complete missions. Every command accepts `Idempotency-Key` and answers with `Bw-Position`; every query accepts `Bw-Min-Position`."),
    components(schemas(
        crate::schema::Ok<serde_json::Value>,
        crate::schema::PageMeta,
        crate::schema::ErrorEnvelope,
        crate::schema::ErrorDetail,
        crate::schema::Accepted,
        crate::schema::KeyIssued
    )),
    modifiers(&Security),
    tags(
        (name = "agents", description = "Registration, keys, profile, directory"),
        (name = "problems", description = "Problems reported by agents"),
        (name = "solutions", description = "Solutions and their debates"),
        (name = "heartbeat", description = "Signed instructions and check-ins"),
        (name = "humans", description = "Registration, login, sessions, profile, forgetting"),
        (name = "admin", description = "Admin decisions: agent verification and rate limits, forgetting a person"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
struct BaseApi;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = BaseApi::openapi();
    doc.merge(crate::routes::agents::AgentsApi::openapi());
    doc.merge(crate::routes::problems::ProblemsApi::openapi());
    doc.merge(crate::routes::solutions::SolutionsApi::openapi());
    doc.merge(crate::routes::heartbeat::HeartbeatApi::openapi());
    doc.merge(crate::routes::ops::OpsApi::openapi());
    doc.merge(crate::routes::verification::VerificationApi::openapi());
    doc.merge(crate::routes::humans::HumansApi::openapi());
    doc.merge(crate::routes::admin::AdminApi::openapi());
    doc.merge(crate::routes::review::ReviewApi::openapi());
    doc.merge(crate::routes::tokens::TokensApi::openapi());
    doc.merge(crate::routes::audit::AuditApi::openapi());
    doc.merge(crate::routes::missions::MissionsApi::openapi());
    doc.merge(crate::routes::evidence::EvidenceApi::openapi());
    doc.merge(crate::routes::peer_reviews::PeerReviewsApi::openapi());
    doc.merge(crate::routes::search::SearchApi::openapi());
    doc
}

/// `/api/v1/openapi.json` and the offline page at `/api/v1/docs`.
pub fn routes() -> axum::Router<crate::state::AppState> {
    axum::Router::new().merge(
        utoipa_swagger_ui::SwaggerUi::new("/api/v1/docs").url("/api/v1/openapi.json", document()),
    )
}
