//! The reward saga: verified evidence pays its claimant and completes the claim; each peer vote
//! pays its reviewer 2 tokens (key `peer-review-reward:{reviewId}`).
//!
//! It runs on the projector runtime (checkpoint `rewards`, consumer of `Evidence` events). On
//! `EvidenceVerified` it first sends the mission `CompleteClaim` (which completes an active claim
//! once, recording which evidence completed it), then — only when this evidence is the one that
//! completed the claim — a ledger credit keyed `evidence-reward:{evidenceId}` for
//! `max(1, floor(tokenReward × confidence))` (the `Ledger` aggregate records a key once). One claim
//! is therefore paid once however many of its submissions are verified, and a redelivered event, a
//! replay or a crash between the two commands never pays twice: the next delivery finishes what is
//! missing.

use std::sync::Arc;

use bw_commands::{CommandBus, CommandContext, idempotency::StoredResponse};
use bw_domain::{
    evidence::{EvidenceEvent, reward},
    ledger::{Entry, EntryKind, Ledger, LedgerCommand, PEER_REVIEW_REWARD, Reference},
    meta::Actor,
    mission::{Mission, MissionCommand},
};
use bw_eventlog::envelope::EventEnvelope;
use bw_projections::{ProjectionError, runtime::Projection};
use futures::future::BoxFuture;
use sqlx::PgConnection;

/// The checkpoint and consumer name.
pub const NAME: &str = "rewards";

/// The saga.
#[derive(Debug, Clone)]
pub struct RewardSaga {
    bus: CommandBus,
}

impl RewardSaga {
    /// A saga issuing its commands through `bus`.
    pub fn new(bus: CommandBus) -> Self {
        Self { bus }
    }

    /// Every saga this build runs, over `bus`.
    pub fn all(bus: &CommandBus) -> Vec<Arc<dyn Projection>> {
        vec![Arc::new(Self::new(bus.clone()))]
    }
}

/// The context of a command the saga sends because of `event`.
pub(crate) fn context(event: &EventEnvelope) -> CommandContext {
    CommandContext {
        actor: Actor::System,
        correlation_id: event.metadata["correlationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        causation_id: Some(event.event_id.to_string()),
        traceparent: event.metadata["traceparent"].as_str().map(str::to_owned),
        idempotency: None,
    }
}

pub(crate) fn no_body(position: Option<i64>) -> StoredResponse {
    StoredResponse {
        status: 200,
        body: serde_json::Value::Null,
        position,
    }
}

impl RewardSaga {
    /// 2 tokens for an accepted vote, once per review (§5.1).
    async fn pay_reviewer(
        &self,
        event: &EventEnvelope,
        review_id: uuid::Uuid,
        reviewer: uuid::Uuid,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ProjectionError> {
        self.bus
            .execute_serialized::<Ledger>(
                &reviewer.to_string(),
                LedgerCommand::Credit {
                    human_id: reviewer,
                    entry: Entry {
                        key: format!("peer-review-reward:{review_id}"),
                        amount: PEER_REVIEW_REWARD,
                        kind: EntryKind::EarnPeerReview,
                        reference: Some(Reference {
                            reference_type: "peer_review".into(),
                            reference_id: review_id,
                        }),
                        description: Some("Peer review vote".into()),
                    },
                    at,
                },
                &context(event),
                no_body,
            )
            .await
            .map_err(failed(event))?;
        Ok(())
    }
}

/// A database failure or a conflict is retried; a refusal by the domain stops the saga at this
/// event (`projections status` shows it) rather than retrying a command that cannot succeed.
pub(crate) fn failed(
    event: &EventEnvelope,
) -> impl Fn(bw_commands::CommandError) -> ProjectionError + '_ {
    move |e| match e {
        // Server-side failures too (a deadlock, a timeout): the batch is retried, never failed.
        bw_commands::CommandError::Database(e) => ProjectionError::Retry(e.to_string()),
        bw_commands::CommandError::Domain(refused) => ProjectionError::Apply {
            position: event.global_position,
            event_type: event.event_type.clone(),
            reason: refused.to_string(),
        },
        other => ProjectionError::Retry(other.to_string()),
    }
}

impl Projection for RewardSaga {
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
        _conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            if !matches!(
                event.event_type.as_str(),
                "EvidenceVerified" | "PeerVoteCast"
            ) {
                return Ok(());
            }
            let decoded: EvidenceEvent = bw_projections::models::decode(event)?;
            if let EvidenceEvent::PeerVoteCast {
                review_id,
                reviewer,
                cast_at,
                ..
            } = decoded
            {
                return self.pay_reviewer(event, review_id, reviewer, cast_at).await;
            }
            let EvidenceEvent::EvidenceVerified {
                evidence_id,
                mission_id,
                claim_id,
                human_id,
                confidence,
                token_reward,
                verified_at,
                ..
            } = decoded
            else {
                return Ok(());
            };
            let ctx = context(event);
            // The claim first: only the submission that completes it is paid, so a claimant with
            // several verified submissions on one claim is paid once.
            self.bus
                .execute_serialized_with::<Mission>(
                    &mission_id.to_string(),
                    MissionCommand::CompleteClaim {
                        claim_id,
                        evidence_id,
                        at: verified_at,
                    },
                    &ctx,
                    Some(bw_commands::claims::release_ended_claims(mission_id)),
                    no_body,
                )
                .await
                .map_err(failed(event))?;
            let mission: Mission = self
                .bus
                .load(&mission_id.to_string())
                .await
                .map_err(failed(event))?;
            if mission.completed_by(claim_id) != Some(evidence_id) {
                tracing::info!(%evidence_id, %claim_id, "verified evidence of a claim completed by another submission, or no longer active: no reward");
                return Ok(());
            }
            self.bus
                .execute_serialized::<Ledger>(
                    &human_id.to_string(),
                    LedgerCommand::Credit {
                        human_id,
                        entry: Entry {
                            key: format!("evidence-reward:{evidence_id}"),
                            amount: reward(token_reward, confidence),
                            kind: EntryKind::EarnEvidenceVerified,
                            reference: Some(Reference {
                                reference_type: "evidence".into(),
                                reference_id: evidence_id,
                            }),
                            description: Some("Mission evidence verified".into()),
                        },
                        at: verified_at,
                    },
                    &ctx,
                    no_body,
                )
                .await
                .map_err(failed(event))?;
            Ok(())
        })
    }
}
