//! Claims and their limit, on the command side: each person holds at most [`MAX_ACTIVE_CLAIMS`]
//! active claims across missions (§2.5, ADR 0005). `active_claims` is written in the same
//! transaction as the claim's events — reserved under a lock on the person when a claim is made,
//! freed when the log says a claim ended — so the limit holds however many gateways take claims.

use bw_domain::DomainError;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{CommandError, SideWrites};

/// Active claims one person may hold at once (§2.5).
pub const MAX_ACTIVE_CLAIMS: i64 = 3;

/// Records the claim in `active_claims` after counting the person's others under a lock on them.
pub fn reserve_claim(
    claim_id: Uuid,
    human_id: Uuid,
    mission_id: Uuid,
    at: DateTime<Utc>,
) -> SideWrites {
    Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
                .bind(format!("active-claims:{human_id}"))
                .execute(&mut *conn)
                .await?;
            let active: i64 =
                sqlx::query_scalar("SELECT count(*) FROM active_claims WHERE human_id = $1")
                    .bind(human_id)
                    .fetch_one(&mut *conn)
                    .await?;
            if active >= MAX_ACTIVE_CLAIMS {
                return Err(CommandError::Domain(DomainError::Forbidden(
                    "Maximum 3 active missions reached",
                )));
            }
            sqlx::query(
                "INSERT INTO active_claims (claim_id, human_id, mission_id, claimed_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(claim_id)
            .bind(human_id)
            .bind(mission_id)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    })
}

/// Frees the places among their people's active claims of every claim on `mission_id` that the
/// log (including this transaction's events) says has ended.
pub fn release_ended_claims(mission_id: Uuid) -> SideWrites {
    Box::new(move |conn: &mut PgConnection| {
        Box::pin(async move {
            let ended = bw_eventlog::read::of_types(
                &mut *conn,
                "Mission",
                &mission_id.to_string(),
                &["ClaimAbandoned", "ClaimReleased", "ClaimCompleted"],
            )
            .await?;
            let ended: Vec<String> = ended
                .iter()
                .filter_map(|e| e.payload["data"]["claimId"].as_str().map(str::to_owned))
                .collect();
            sqlx::query(
                "DELETE FROM active_claims WHERE mission_id = $1 AND claim_id::text = ANY($2)",
            )
            .bind(mission_id)
            .bind(&ended)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    })
}
