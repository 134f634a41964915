//! Missions and their claims: the marketplace (`GET /missions`, `/missions/nearby`), a mission's
//! page, an agent's missions and a person's claims.
//!
//! Coordinates are stored exactly; [`snap`] rounds them to two decimals (about 1 km) for anyone
//! who is not a claimant (§2.5). Distances are great-circle (haversine, mean Earth radius
//! 6,371 km), computed in SQL after a bounding-box filter that the `(latitude, longitude)` index
//! serves.

use bw_domain::mission::MissionEvent;
use bw_eventlog::envelope::EventEnvelope;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::decode;
use crate::{ProjectionError, runtime::Projection};

/// The projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Missions;

/// Its name (checkpoint row, consumer, metrics).
pub const NAME: &str = "missions";

/// Mean Earth radius in km, for distances.
pub const EARTH_RADIUS_KM: f64 = 6371.0;

impl Projection for Missions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        1
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Mission"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_missions", "rm_mission_claims"]
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let position = event.global_position;
            let mission_id: Uuid = event
                .aggregate_id
                .parse()
                .map_err(|_| super::apply_error(event, "aggregate id is not a UUID".into()))?;
            let updated = match decode::<MissionEvent>(event)? {
                MissionEvent::MissionCreated {
                    solution_id,
                    created_by,
                    domain,
                    spec,
                    status,
                    guardrail_status,
                    created_at,
                    ..
                } => {
                    let text = &spec.text;
                    sqlx::query(
                        "INSERT INTO rm_missions (mission_id, solution_id, agent_id, domain, title, description, instructions,
                             evidence_required, required_skills, location_name, latitude, longitude, location_radius_km,
                             estimated_duration_minutes, difficulty, mission_type, token_reward, bonus_for_quality, max_claims,
                             status, guardrail_status, expires_at, created_at, updated_at, position)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
                                 $22, $23, $23, $24)",
                    )
                    .bind(mission_id)
                    .bind(solution_id)
                    .bind(created_by)
                    .bind(domain.as_str())
                    .bind(&text.title)
                    .bind(&text.description)
                    .bind(serde_json::to_value(&text.instructions).unwrap_or_default())
                    .bind(serde_json::to_value(&text.evidence_required).unwrap_or_default())
                    .bind(&text.required_skills)
                    .bind(&spec.location_name)
                    .bind(spec.location.map(|l| l.latitude))
                    .bind(spec.location.map(|l| l.longitude))
                    .bind(i32::from(spec.location_radius_km))
                    .bind(i64::from(spec.estimated_duration_minutes))
                    .bind(spec.difficulty.as_str())
                    .bind(&spec.mission_type)
                    .bind(i64::from(spec.token_reward))
                    .bind(i64::from(spec.bonus_for_quality))
                    .bind(i32::from(spec.max_claims))
                    .bind(status.as_str())
                    .bind(guardrail_status.as_str())
                    .bind(spec.expires_at)
                    .bind(created_at)
                    .bind(position)
                    .execute(&mut *conn)
                    .await?;
                    return Ok(());
                }
                MissionEvent::MissionEdited {
                    text,
                    guardrail_status,
                    edited_at,
                    ..
                } => {
                    sqlx::query(
                        "UPDATE rm_missions SET title = $2, description = $3, instructions = $4, evidence_required = $5,
                             required_skills = $6, guardrail_status = $7, updated_at = $8, position = $9
                         WHERE mission_id = $1",
                    )
                    .bind(mission_id)
                    .bind(&text.title)
                    .bind(&text.description)
                    .bind(serde_json::to_value(&text.instructions).unwrap_or_default())
                    .bind(serde_json::to_value(&text.evidence_required).unwrap_or_default())
                    .bind(&text.required_skills)
                    .bind(guardrail_status.as_str())
                    .bind(edited_at)
                    .bind(position)
                    .execute(&mut *conn)
                    .await?
                }
                MissionEvent::MissionStatusChanged { to, changed_at, .. } => {
                    sqlx::query(
                        "UPDATE rm_missions SET status = $2, updated_at = $3, position = $4 WHERE mission_id = $1",
                    )
                    .bind(mission_id)
                    .bind(to.as_str())
                    .bind(changed_at)
                    .bind(position)
                    .execute(&mut *conn)
                    .await?
                }
                MissionEvent::MissionClaimed {
                    claim_id,
                    human_id,
                    claimed_at,
                    deadline_at,
                    ..
                } => {
                    sqlx::query(
                        "INSERT INTO rm_mission_claims (claim_id, mission_id, human_id, status, claimed_at, deadline_at, updated_at, position)
                         VALUES ($1, $2, $3, 'active', $4, $5, $4, $6)",
                    )
                    .bind(claim_id)
                    .bind(mission_id)
                    .bind(human_id)
                    .bind(claimed_at)
                    .bind(deadline_at)
                    .bind(position)
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query(
                        "UPDATE rm_missions SET active_claims = active_claims + 1, position = $2 WHERE mission_id = $1",
                    )
                    .bind(mission_id)
                    .bind(position)
                    .execute(&mut *conn)
                    .await?
                }
                MissionEvent::ClaimProgressed {
                    claim_id,
                    progress_percent,
                    notes,
                    updated_at,
                    ..
                } => {
                    sqlx::query(
                        "UPDATE rm_mission_claims SET progress_percent = COALESCE($2, progress_percent),
                             notes = COALESCE($3, notes), updated_at = $4, position = $5
                         WHERE claim_id = $1",
                    )
                    .bind(claim_id)
                    .bind(progress_percent.map(i32::from))
                    .bind(notes)
                    .bind(updated_at)
                    .bind(position)
                    .execute(&mut *conn)
                    .await?
                }
                MissionEvent::ClaimAbandoned {
                    claim_id,
                    notes,
                    abandoned_at,
                    ..
                } => end_claim(conn, event, mission_id, claim_id, "abandoned", notes, abandoned_at).await?,
                MissionEvent::ClaimReleased {
                    claim_id,
                    released_at,
                    ..
                } => end_claim(conn, event, mission_id, claim_id, "released", None, released_at).await?,
                MissionEvent::ClaimCompleted {
                    claim_id,
                    completed_at,
                    ..
                } => {
                    // The slot stays taken: `active_claims` counts completed claims too.
                    sqlx::query(
                        "UPDATE rm_mission_claims SET status = 'completed', progress_percent = 100, updated_at = $2,
                             position = $3
                         WHERE claim_id = $1",
                    )
                    .bind(claim_id)
                    .bind(completed_at)
                    .bind(position)
                    .execute(&mut *conn)
                    .await?
                }
                MissionEvent::GuardrailDecided(verdict) => {
                    sqlx::query(
                        "UPDATE rm_missions SET guardrail_status = $2, position = $3 WHERE mission_id = $1",
                    )
                    .bind(mission_id)
                    .bind(verdict.decision.as_str())
                    .bind(position)
                    .execute(&mut *conn)
                    .await?
                }
                MissionEvent::Reviewed(reviewed) => {
                    sqlx::query(
                        "UPDATE rm_missions SET guardrail_status = $2, position = $3 WHERE mission_id = $1",
                    )
                    .bind(mission_id)
                    .bind(reviewed.decision.as_str())
                    .bind(position)
                    .execute(&mut *conn)
                    .await?
                }
                MissionEvent::ReviewClaimed(_) | MissionEvent::MissionCancelled { .. } => {
                    return Ok(());
                }
            };
            super::expect_one(&updated, event, || {
                format!("mission {mission_id} or its claim is not in the read model")
            })
        })
    }
}

/// Ends an active claim (`abandoned` or `released`) and frees its slot.
async fn end_claim(
    conn: &mut PgConnection,
    event: &EventEnvelope,
    mission_id: Uuid,
    claim_id: Uuid,
    status: &str,
    notes: Option<String>,
    at: DateTime<Utc>,
) -> Result<sqlx::postgres::PgQueryResult, ProjectionError> {
    let claim = sqlx::query(
        "UPDATE rm_mission_claims SET status = $2, notes = COALESCE($3, notes), updated_at = $4, position = $5
         WHERE claim_id = $1 AND status = 'active'",
    )
    .bind(claim_id)
    .bind(status)
    .bind(notes)
    .bind(at)
    .bind(event.global_position)
    .execute(&mut *conn)
    .await?;
    super::expect_one(&claim, event, || format!("claim {claim_id} is not active"))?;
    Ok(sqlx::query(
        "UPDATE rm_missions SET active_claims = active_claims - 1, position = $2 WHERE mission_id = $1",
    )
    .bind(mission_id)
    .bind(event.global_position)
    .execute(&mut *conn)
    .await?)
}

/// Rounds a coordinate to two decimals (about 1.1 km), as non-claimants see it.
pub fn snap(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A mission as read.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MissionView {
    pub id: Uuid,
    pub solution_id: Uuid,
    pub agent_id: Uuid,
    pub domain: String,
    pub title: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub instructions: Value,
    #[schema(value_type = Object)]
    pub evidence_required: Value,
    pub required_skills: Vec<String>,
    pub location_name: Option<String>,
    /// Exact for claimants and the creating agent; otherwise rounded to 2 decimals (≈ 1 km).
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub location_radius_km: i32,
    pub estimated_duration_minutes: i32,
    pub difficulty: String,
    pub mission_type: Option<String>,
    pub token_reward: i32,
    pub bonus_for_quality: i32,
    pub max_claims: i32,
    pub active_claims: i32,
    /// `maxClaims - activeClaims`.
    pub slots_available: i32,
    /// `open`, `claimed`, `archived`, `expired`, `completed`, `cancelled`.
    pub status: String,
    pub guardrail_status: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// From the point the list was asked about, in km (distance queries only).
    pub distance_km: Option<f64>,
}

impl MissionView {
    /// Hides the exact location (for anyone but a claimant or the creating agent).
    pub fn snapped(mut self) -> Self {
        self.latitude = self.latitude.map(snap);
        self.longitude = self.longitude.map(snap);
        self
    }
}

const COLUMNS: &str = "m.mission_id AS id, m.solution_id, m.agent_id, m.domain, m.title, m.description, m.instructions,
    m.evidence_required, m.required_skills, m.location_name, m.latitude, m.longitude, m.location_radius_km,
    m.estimated_duration_minutes, m.difficulty, m.mission_type, m.token_reward, m.bonus_for_quality, m.max_claims,
    m.active_claims, m.max_claims - m.active_claims AS slots_available, m.status, m.guardrail_status, m.expires_at,
    m.created_at";

/// A point and a radius.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub latitude: f64,
    pub longitude: f64,
    pub radius_km: f64,
}

/// How the marketplace is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissionSort {
    /// Newest first.
    #[default]
    Recent,
    /// Highest reward first, then newest.
    Reward,
    /// Nearest first (needs a point).
    Distance,
}

/// The marketplace's filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MissionFilter {
    pub domain: Option<String>,
    /// Missions needing every one of these skills.
    pub skills: Vec<String>,
    pub difficulty: Option<String>,
    pub min_reward: Option<i32>,
    pub max_reward: Option<i32>,
    pub max_duration: Option<i32>,
    pub near: Option<Near>,
    pub sort: MissionSort,
}

/// Where a marketplace page starts: the `(rank, created_at, id)` of the last mission returned,
/// where the rank is the distance (nearest first), the reward, or nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MissionCursor {
    pub rank: f64,
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl MissionCursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        format!(
            "m{:x}.{:x}.{}",
            self.rank.to_bits(),
            self.created_at.timestamp_micros(),
            self.id.simple()
        )
    }

    /// Parses the opaque text form.
    pub fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.strip_prefix('m')?.split('.');
        let rank = f64::from_bits(u64::from_str_radix(parts.next()?, 16).ok()?);
        let created_at =
            DateTime::from_timestamp_micros(i64::from_str_radix(parts.next()?, 16).ok()?)?;
        let id = Uuid::parse_str(parts.next()?).ok()?;
        (parts.next().is_none() && rank.is_finite()).then_some(Self {
            rank,
            created_at,
            id,
        })
    }
}

/// The haversine distance in km from a bound point to the row's location.
fn push_distance(q: &mut QueryBuilder<'_, Postgres>, near: Near) {
    q.push("(2 * ")
        .push_bind(EARTH_RADIUS_KM)
        .push(" * asin(sqrt(power(sin(radians(m.latitude - ")
        .push_bind(near.latitude)
        .push(") / 2), 2) + cos(radians(")
        .push_bind(near.latitude)
        .push(")) * cos(radians(m.latitude)) * power(sin(radians(m.longitude - ")
        .push_bind(near.longitude)
        .push(") / 2), 2))))");
}

/// One page of the marketplace: approved missions that take claims, not expired.
pub async fn marketplace(
    pool: &PgPool,
    filter: &MissionFilter,
    after: Option<MissionCursor>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<(Vec<MissionView>, Option<MissionCursor>), ProjectionError> {
    // The page is chosen from the key columns alone (an index-only scan of `rm_missions_geo` for a
    // nearby search: no heap page per candidate), then its rows are fetched.
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS}, page.distance_km FROM (SELECT * FROM (SELECT m.mission_id AS id, m.created_at, m.token_reward, "
    ));
    match filter.near {
        Some(near) => push_distance(&mut q, near),
        None => {
            q.push("NULL::float8");
        }
    }
    q.push(
        " AS distance_km FROM rm_missions m
          WHERE m.guardrail_status = 'approved' AND m.status IN ('open', 'claimed') AND m.expires_at > ",
    )
    .push_bind(now);
    if let Some(d) = &filter.domain {
        q.push(" AND m.domain = ").push_bind(d.clone());
    }
    if !filter.skills.is_empty() {
        q.push(" AND m.required_skills @> ")
            .push_bind(filter.skills.clone());
    }
    if let Some(d) = &filter.difficulty {
        q.push(" AND m.difficulty = ").push_bind(d.clone());
    }
    if let Some(r) = filter.min_reward {
        q.push(" AND m.token_reward >= ").push_bind(r);
    }
    if let Some(r) = filter.max_reward {
        q.push(" AND m.token_reward <= ").push_bind(r);
    }
    if let Some(d) = filter.max_duration {
        q.push(" AND m.estimated_duration_minutes <= ").push_bind(d);
    }
    if let Some(near) = filter.near {
        // A box that contains the circle, for the index; the exact distance decides below.
        let dlat = (near.radius_km / EARTH_RADIUS_KM).to_degrees();
        let coslat = near.latitude.to_radians().cos().max(1e-6);
        let dlng = (dlat / coslat).min(180.0);
        q.push(" AND m.latitude BETWEEN ")
            .push_bind(near.latitude - dlat)
            .push(" AND ")
            .push_bind(near.latitude + dlat);
        if dlng < 180.0 && near.longitude.abs() + dlng <= 180.0 {
            q.push(" AND m.longitude BETWEEN ")
                .push_bind(near.longitude - dlng)
                .push(" AND ")
                .push_bind(near.longitude + dlng);
        } else {
            q.push(" AND m.longitude IS NOT NULL");
        }
    }
    q.push(") found WHERE true");
    if let Some(near) = filter.near {
        q.push(" AND distance_km <= ").push_bind(near.radius_km);
    }
    let (rank, descending) = match (filter.sort, filter.near) {
        (MissionSort::Distance, Some(_)) => (Some("distance_km"), false),
        (MissionSort::Reward, _) => (Some("token_reward::float8"), true),
        _ => (None, true),
    };
    if let Some(c) = after {
        match (rank, descending) {
            (Some(r), false) => {
                // Nearest first, then newest: after (d, t, id) means a larger distance, or the
                // same distance and older.
                q.push(format_args!(" AND ({r} > "))
                    .push_bind(c.rank)
                    .push(format_args!(" OR ({r} = "))
                    .push_bind(c.rank)
                    .push(" AND (created_at, id) < (")
                    .push_bind(c.created_at)
                    .push(", ")
                    .push_bind(c.id)
                    .push(")))");
            }
            (Some(r), true) => {
                q.push(format_args!(" AND ({r}, created_at, id) < ("))
                    .push_bind(c.rank)
                    .push(", ")
                    .push_bind(c.created_at)
                    .push(", ")
                    .push_bind(c.id)
                    .push(")");
            }
            (None, _) => {
                q.push(" AND (created_at, id) < (")
                    .push_bind(c.created_at)
                    .push(", ")
                    .push_bind(c.id)
                    .push(")");
            }
        }
    }
    let order = |prefix: &str| match (rank, descending) {
        (Some(r), false) => {
            format!(" ORDER BY {prefix}{r} ASC, {prefix}created_at DESC, {prefix}id DESC")
        }
        (Some(r), true) => {
            format!(" ORDER BY {prefix}{r} DESC, {prefix}created_at DESC, {prefix}id DESC")
        }
        (None, _) => format!(" ORDER BY {prefix}created_at DESC, {prefix}id DESC"),
    };
    q.push(order(""));
    q.push(" LIMIT ").push_bind(limit + 1);
    q.push(") page JOIN rm_missions m ON m.mission_id = page.id");
    q.push(order("page."));
    let rows: Vec<MissionView> = q.build_query_as().fetch_all(pool).await?;
    let rank_of = move |m: &MissionView| match (filter.sort, filter.near) {
        (MissionSort::Distance, Some(_)) => m.distance_km.unwrap_or_default(),
        (MissionSort::Reward, _) => f64::from(m.token_reward),
        _ => 0.0,
    };
    Ok(super::page(rows, limit, |m| MissionCursor {
        rank: rank_of(m),
        created_at: m.created_at,
        id: m.id,
    }))
}

/// One mission, in any state (the caller decides who may see what).
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<MissionView>, ProjectionError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS}, NULL::float8 AS distance_km FROM rm_missions m WHERE m.mission_id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// An agent's missions, newest first, in every state.
pub async fn by_agent(
    pool: &PgPool,
    agent_id: Uuid,
    after: Option<MissionCursor>,
    limit: i64,
) -> Result<(Vec<MissionView>, Option<MissionCursor>), ProjectionError> {
    let rows: Vec<MissionView> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, NULL::float8 AS distance_km FROM rm_missions m
         WHERE m.agent_id = $1 AND ($2::timestamptz IS NULL OR (m.created_at, m.mission_id) < ($2, $3))
         ORDER BY m.created_at DESC, m.mission_id DESC LIMIT $4"
    ))
    .bind(agent_id)
    .bind(after.map(|c| c.created_at))
    .bind(after.map(|c| c.id))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(super::page(rows, limit, |m| MissionCursor {
        rank: 0.0,
        created_at: m.created_at,
        id: m.id,
    }))
}

/// A claim as its claimant reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimView {
    pub claim_id: Uuid,
    pub mission_id: Uuid,
    /// `active`, `abandoned` or `released`.
    pub status: String,
    pub progress_percent: Option<i32>,
    pub notes: Option<String>,
    pub claimed_at: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
}

/// `human_id`'s claim on mission `mission_id` that is active, else their newest one.
pub async fn claim_of(
    pool: &PgPool,
    mission_id: Uuid,
    human_id: Uuid,
) -> Result<Option<ClaimView>, ProjectionError> {
    Ok(sqlx::query_as(
        "SELECT claim_id, mission_id, status, progress_percent, notes, claimed_at, deadline_at
         FROM rm_mission_claims WHERE mission_id = $1 AND human_id = $2
         ORDER BY status = 'active' DESC, claimed_at DESC LIMIT 1",
    )
    .bind(mission_id)
    .bind(human_id)
    .fetch_optional(pool)
    .await?)
}

/// A person's claims with their missions (exact locations: they are the claimant), newest first.
pub async fn claims_of(
    pool: &PgPool,
    human_id: Uuid,
    limit: i64,
) -> Result<Vec<(ClaimView, MissionView)>, ProjectionError> {
    let claims: Vec<ClaimView> = sqlx::query_as(
        "SELECT claim_id, mission_id, status, progress_percent, notes, claimed_at, deadline_at
         FROM rm_mission_claims WHERE human_id = $1 ORDER BY claimed_at DESC LIMIT $2",
    )
    .bind(human_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(claims.len());
    for claim in claims {
        if let Some(mission) = get(pool, claim.mission_id).await? {
            out.push((claim, mission));
        }
    }
    Ok(out)
}
