//! The vision worker: shows a [`VisionProvider`] the photos of evidence the automatic checks sent
//! to peer review, and records its assessment on the `Evidence` aggregate (`RecordVision`), which
//! routes it (`docs/verification.md`).
//!
//! It runs on the projector runtime (checkpoint `vision`, consumer of `Evidence` events) when
//! `BW_VISION_PROVIDER` is set. For each `EvidenceChecked` at stage `peer_review` it:
//!
//! 1. loads the evidence from the log and skips it unless it is still in peer review and not yet
//!    assessed (a redelivery or a replay costs no second call),
//! 2. reads the submission (`EvidenceSubmitted`) from the log and the mission from its read model,
//! 3. fetches the JPEG and PNG files of at most 5 MB from the object store (other files — PDFs,
//!    videos, HEIC — are for peers),
//! 4. asks the provider and sends `RecordVision`.
//!
//! The model is an optional accelerator, never a gate: no readable photo, a spent budget or a
//! provider that keeps failing leaves the evidence in peer review, with a log line and
//! `evidence_vision_calls_total{outcome}`.

use std::sync::Arc;

use bw_commands::CommandBus;
use bw_domain::{
    evidence::{Evidence, EvidenceCommand, EvidenceEvent, Stage},
    mission::EvidenceRequirement,
    values::GeoPoint,
};
use bw_eventlog::envelope::EventEnvelope;
use bw_guardrail::vision::{MAX_IMAGE_BYTES, READABLE, VisionImage, VisionProvider, VisionRequest};
use bw_infra::{
    metrics::LlmCallLabels,
    storage::{ObjectKey, ObjectStore},
};
use bw_projections::{
    ProjectionError,
    models::{apply_error, decode},
    runtime::Projection,
};
use futures::future::BoxFuture;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::sagas::{context, failed, no_body};

/// The checkpoint and consumer name.
pub const NAME: &str = "vision";

/// The worker.
#[derive(Debug, Clone)]
pub struct VisionWorker {
    bus: CommandBus,
    provider: Arc<dyn VisionProvider>,
    store: Arc<dyn ObjectStore>,
    metrics: Option<bw_infra::metrics::GuardrailMetrics>,
}

impl VisionWorker {
    /// A worker asking `provider` about files in `store`, recording through `bus`.
    pub fn new(
        bus: CommandBus,
        provider: Arc<dyn VisionProvider>,
        store: Arc<dyn ObjectStore>,
    ) -> Self {
        Self {
            bus,
            provider,
            store,
            metrics: None,
        }
    }

    /// Counts calls by outcome in `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: bw_infra::metrics::GuardrailMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.vision_calls
                .get_or_create(&LlmCallLabels {
                    outcome: outcome.to_owned(),
                })
                .inc();
        }
    }

    /// What the model is shown about `evidence_id`, or `None` when no file is a photo it reads.
    async fn request(
        &self,
        conn: &mut PgConnection,
        event: &EventEnvelope,
        evidence_id: Uuid,
    ) -> Result<Option<VisionRequest>, ProjectionError> {
        let submitted = bw_eventlog::read::first_of_type(
            &mut *conn,
            "Evidence",
            &evidence_id.to_string(),
            "EvidenceSubmitted",
        )
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
        let EvidenceEvent::EvidenceSubmitted {
            mission_id,
            files,
            capture,
            notes,
            ..
        } = decode(&submitted)?
        else {
            return Err(apply_error(event, "not a submission".into()));
        };
        let mission: Option<MissionRow> = sqlx::query_as(
            "SELECT title, description, evidence_required, latitude, longitude, location_radius_km
             FROM rm_missions WHERE mission_id = $1",
        )
        .bind(mission_id)
        .fetch_optional(&mut *conn)
        .await?;
        // The mission's projection may not have caught up yet: try again shortly.
        let Some(mission) = mission else {
            return Err(ProjectionError::Retry(format!(
                "mission {mission_id} is not in the read model yet"
            )));
        };
        let mut images = Vec::new();
        for file in files
            .iter()
            .filter(|f| READABLE.contains(&f.mime.as_str()) && f.size <= MAX_IMAGE_BYTES as u64)
        {
            let key = ObjectKey::parse(&file.key).map_err(|e| apply_error(event, e.to_string()))?;
            match self.store.get(&key).await {
                Ok(Some(bytes)) => images.push(VisionImage {
                    media_type: file.mime.clone(),
                    bytes,
                }),
                Ok(None) => {
                    tracing::warn!(%evidence_id, key = %file.key, "an evidence file is missing from the object store")
                }
                Err(e) => return Err(ProjectionError::Retry(e.to_string())),
            }
        }
        if images.is_empty() {
            return Ok(None);
        }
        let requirements: Vec<EvidenceRequirement> =
            serde_json::from_value(mission.evidence_required).unwrap_or_default();
        Ok(Some(VisionRequest {
            mission_title: mission.title,
            mission_description: mission.description,
            requirements: requirements.into_iter().map(|r| r.description).collect(),
            mission_location: mission
                .latitude
                .zip(mission.longitude)
                .and_then(|(lat, lng)| GeoPoint::parse(lat, lng).ok()),
            radius_km: f64::from(mission.location_radius_km),
            evidence_location: capture.location,
            captured_at: capture.captured_at,
            notes,
            images,
        }))
    }
}

#[derive(sqlx::FromRow)]
struct MissionRow {
    title: String,
    description: String,
    evidence_required: serde_json::Value,
    latitude: Option<f64>,
    longitude: Option<f64>,
    location_radius_km: i32,
}

impl Projection for VisionWorker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Evidence"]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            if event.event_type != "EvidenceChecked" {
                return Ok(());
            }
            let EvidenceEvent::EvidenceChecked {
                evidence_id,
                stage: Stage::PeerReview,
                ..
            } = decode(event)?
            else {
                return Ok(());
            };
            let evidence: Evidence = self
                .bus
                .load(&evidence_id.to_string())
                .await
                .map_err(failed(event))?;
            if !evidence.awaits_vision() {
                return Ok(());
            }
            let Some(request) = self.request(conn, event, evidence_id).await? else {
                self.count("no_image");
                tracing::info!(%evidence_id, "no photo the vision model reads: peers decide");
                return Ok(());
            };
            let assessment = match self.provider.assess(&request).await {
                Ok(Some(assessment)) => assessment,
                Ok(None) => {
                    self.count("over_budget");
                    tracing::warn!(%evidence_id, "the day's vision budget is spent: peers decide");
                    return Ok(());
                }
                Err(e) => {
                    self.count("failed");
                    tracing::warn!(%evidence_id, error = %e, "the vision model did not answer: peers decide");
                    return Ok(());
                }
            };
            self.count("answered");
            self.bus
                .execute::<Evidence>(
                    &evidence_id.to_string(),
                    EvidenceCommand::RecordVision {
                        assessment,
                        at: chrono::Utc::now(),
                    },
                    &context(event),
                    no_body,
                )
                .await
                .map_err(failed(event))?;
            Ok(())
        })
    }
}
