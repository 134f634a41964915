//! The reward saga: verified evidence pays its claimant and completes the claim.
//!
//! It runs on the projector runtime (checkpoint `rewards`, consumer of `Evidence` events). On
//! `EvidenceVerified` it issues two commands, each deterministic and idempotent by construction:
//! a ledger credit keyed `evidence-reward:{evidenceId}` for `max(1, floor(tokenReward × confidence))`
//! (the `Ledger` aggregate records a key once) and the mission's `CompleteClaim` (which records
//! nothing for a claim already completed). A redelivered event, a replay or a crash between the two
//! commands therefore never pays twice and never leaves a claim open for good: the next delivery
//! finishes what is missing.

use std::sync::Arc;

use bw_commands::{CommandBus, CommandContext, idempotency::StoredResponse};
use bw_domain::{
    evidence::{EvidenceEvent, reward},
    ledger::{Entry, EntryKind, Ledger, LedgerCommand, Reference},
    meta::Actor,
    mission::{Mission, MissionCommand},
};
use bw_infra::envelope::EventEnvelope;
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

/// A database failure or a conflict is retried; a refusal by the domain stops the saga at this
/// event (`projections status` shows it) rather than retrying a command that cannot succeed.
fn failed(event: &EventEnvelope) -> impl Fn(bw_commands::CommandError) -> ProjectionError + '_ {
    move |e| match e {
        bw_commands::CommandError::Database(e) => ProjectionError::Database(e),
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
            if event.event_type != "EvidenceVerified" {
                return Ok(());
            }
            let verified: EvidenceEvent =
                serde_json::from_value(event.payload.clone()).map_err(|e| {
                    ProjectionError::Apply {
                        position: event.global_position,
                        event_type: event.event_type.clone(),
                        reason: e.to_string(),
                    }
                })?;
            let EvidenceEvent::EvidenceVerified {
                evidence_id,
                mission_id,
                claim_id,
                human_id,
                confidence,
                token_reward,
                verified_at,
                ..
            } = verified
            else {
                return Ok(());
            };
            let ctx = CommandContext {
                actor: Actor::System,
                correlation_id: event.metadata["correlationId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                causation_id: Some(event.event_id.to_string()),
                traceparent: event.metadata["traceparent"].as_str().map(str::to_owned),
                idempotency: None,
            };
            let respond = |position| StoredResponse {
                status: 200,
                body: serde_json::Value::Null,
                position,
            };
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
                    respond,
                )
                .await
                .map_err(failed(event))?;
            self.bus
                .execute_serialized_with::<Mission>(
                    &mission_id.to_string(),
                    MissionCommand::CompleteClaim {
                        claim_id,
                        evidence_id,
                        at: verified_at,
                    },
                    &ctx,
                    Some(bw_gateway::routes::missions::release_ended_claims(
                        mission_id,
                    )),
                    respond,
                )
                .await
                .map_err(failed(event))?;
            Ok(())
        })
    }
}
