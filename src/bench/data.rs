//! Data generators: large, realistic datasets loaded with `COPY`, kept between runs (a generator
//! adds only what is missing).
//!
//! - [`problem_log`]: `ProblemReported` events in the log, each its own stream, hashed and chained
//!   exactly as the command path does (`bw_eventlog::store::prepare`), at commit-safe positions —
//!   the input of a rebuild (P3).
//! - [`feed_problems`]: approved problems in the feed read model (P4, the browsing scenarios).
//! - [`missions`]: open, approved missions around 40 cities (P5, the geo scenarios).
//! - [`embeddings`]: clustered unit vectors in the semantic index, with its HNSW index built after
//!   the load (P6).

use std::fmt::Write as _;

use anyhow::Context as _;
use bw_domain::{problem::Problem, taxonomy::ProblemDomain};
use chrono::{DateTime, Duration as Span, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use sqlx::{PgPool, postgres::PgPoolCopyExt};
use uuid::Uuid;

/// Rows per `COPY` (and per transaction of the log generator: fewer than 2^20, the events one
/// transaction can hold).
const CHUNK: usize = 50_000;

/// Cities missions cluster around (latitude, longitude); the first is the original plan's query
/// point (San Francisco).
pub const CITIES: [(f64, f64); 40] = [
    (37.7749, -122.4194),
    (40.7128, -74.0060),
    (51.5074, -0.1278),
    (48.8566, 2.3522),
    (52.5200, 13.4050),
    (35.6762, 139.6503),
    (-33.8688, 151.2093),
    (-23.5505, -46.6333),
    (19.4326, -99.1332),
    (-1.2921, 36.8219),
    (6.5244, 3.3792),
    (30.0444, 31.2357),
    (28.6139, 77.2090),
    (19.0760, 72.8777),
    (23.8103, 90.4125),
    (31.2304, 121.4737),
    (39.9042, 116.4074),
    (13.7563, 100.5018),
    (-6.2088, 106.8456),
    (14.5995, 120.9842),
    (55.7558, 37.6173),
    (41.0082, 28.9784),
    (-34.6037, -58.3816),
    (4.7110, -74.0721),
    (-12.0464, -77.0428),
    (33.5731, -7.5898),
    (-26.2041, 28.0473),
    (9.0320, 38.7469),
    (24.8607, 67.0011),
    (35.6892, 51.3890),
    (33.3152, 44.3661),
    (43.6532, -79.3832),
    (34.0522, -118.2437),
    (41.8781, -87.6298),
    (45.4642, 9.1900),
    (40.4168, -3.7038),
    (59.3293, 18.0686),
    (-4.4419, 15.2663),
    (5.6037, -0.1870),
    (21.0278, 105.8342),
];

/// Dimensions of the semantic index's vectors (all-MiniLM-L6-v2).
pub const DIMENSIONS: usize = 384;

/// Escapes a value for PostgreSQL's `COPY … FROM STDIN` text format.
fn escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Appends one `COPY` text row.
fn row(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        if *f == NULL {
            out.push_str("\\N");
        } else {
            escape(f, out);
        }
    }
    out.push('\n');
}

/// The marker of SQL NULL in [`row`].
const NULL: &str = "\u{0}NULL";

async fn count(pool: &PgPool, sql: &str) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar(sql).fetch_one(pool).await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

fn title(i: usize) -> String {
    const WHAT: [&str; 8] = [
        "Contaminated well",
        "Flooded school road",
        "No clinic within walking distance",
        "Illegal dumping by the river",
        "Broken water pump",
        "Families without food reserves",
        "Collapsed footbridge",
        "Air pollution from open burning",
    ];
    format!("{} in district {}", WHAT[i % WHAT.len()], i % 9973)
}

fn description(i: usize) -> String {
    format!(
        "Residents of district {} report that the problem has lasted for {} weeks. About {} \
         households are affected; the local council has been told twice and nothing has changed. \
         Volunteers are documenting the situation with photos and dated notes so that the \
         response can be planned with the community.",
        i % 9973,
        2 + i % 30,
        50 + i % 950
    )
}

/// Makes sure the log holds at least `n` `ProblemReported` events; returns how many it added.
pub async fn problem_log(pool: &PgPool, n: usize) -> anyhow::Result<usize> {
    let have = count(
        pool,
        "SELECT count(*) FROM events WHERE aggregate_type = 'Problem' AND event_type = 'ProblemReported'",
    )
    .await?;
    let mut added = 0;
    let reporter = Uuid::now_v7();
    let metadata =
        json!({ "actor": format!("agent:{reporter}"), "correlationId": "bench-generator" });
    let start = Utc::now() - Span::days(365);
    while have + added < n {
        let take = CHUNK.min(n - have - added);
        let mut tx = pool.begin().await?;
        // As every event writer does, before the transaction id is assigned (ADR 0002).
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
            .bind(bw_eventlog::store::EVENT_WRITER_LOCK)
            .execute(&mut *tx)
            .await?;
        let xid: i64 = sqlx::query_scalar(
            "SELECT pg_current_xact_id()::text::bigint + xid_offset FROM log_epoch",
        )
        .fetch_one(&mut *tx)
        .await
        .context("log_epoch has no row")?;
        let mut text = String::with_capacity(take * 1400);
        for k in 0..take {
            let i = have + added + k;
            let at = start + Span::seconds(i as i64 % (365 * 86_400));
            let event = reported_event(i, reporter, at)?;
            let id = Uuid::now_v7();
            let prepared = bw_eventlog::store::prepare::<Problem>(
                &id.to_string(),
                0,
                bw_eventlog::canonical::GENESIS,
                &[event],
                &metadata,
                at,
            )?;
            let sealed = &prepared[0];
            let e = &sealed.event;
            let position = (xid << 20) | (k as i64 + 1);
            row(
                &mut text,
                &[
                    &position.to_string(),
                    &xid.to_string(),
                    &e.event_id.to_string(),
                    &e.aggregate_type,
                    &e.aggregate_id,
                    &e.sequence.to_string(),
                    &e.event_type,
                    &e.event_version,
                    &sealed.payload_json,
                    &sealed.metadata_json,
                    &e.recorded_at.to_rfc3339(),
                    &format!("\\x{}", hex::encode(sealed.hash)),
                ],
            );
        }
        let mut copy = tx
            .copy_in_raw(
                "COPY events (global_position, txid, event_id, aggregate_type, aggregate_id, sequence,
                              event_type, event_version, payload, metadata, recorded_at, hash) FROM STDIN",
            )
            .await?;
        copy.send(text.into_bytes()).await?;
        copy.finish().await?;
        tx.commit().await?;
        added += take;
        tracing::info!(added, total = have + added, "problem events generated");
    }
    if added > 0 {
        sqlx::query("ANALYZE events").execute(pool).await?;
    }
    Ok(added)
}

/// The `ProblemReported` event of generated problem `i`, through the domain's own types (so an
/// invalid value fails here, not in a projection).
fn reported_event(
    i: usize,
    reporter: Uuid,
    at: DateTime<Utc>,
) -> anyhow::Result<bw_domain::problem::ProblemEvent> {
    let (lat, lng) = CITIES[i % CITIES.len()];
    let severity = ["low", "medium", "high", "critical"][i % 4];
    let value = json!({
        "type": "ProblemReported",
        "data": {
            "problemId": Uuid::now_v7(),
            "reportedBy": reporter,
            "details": {
                "title": title(i),
                "description": description(i),
                "domain": ProblemDomain::ALL[i % ProblemDomain::ALL.len()].as_str(),
                "severity": severity,
                "affectedPopulationEstimate": null,
                "geographicScope": "local",
                "locationName": "Generated district",
                "location": { "latitude": lat, "longitude": lng },
                "existingSolutions": [],
                "dataSources": [],
                "evidenceLinks": [],
                "language": "en"
            },
            "status": "active",
            "guardrailStatus": "pending",
            "reportedAt": at
        }
    });
    serde_json::from_value(value).context("a generated ProblemReported does not parse")
}

/// Makes sure the problem feed holds at least `n` approved problems; returns how many it added.
pub async fn feed_problems(pool: &PgPool, n: usize) -> anyhow::Result<usize> {
    let have = count(
        pool,
        "SELECT count(*) FROM rm_problems WHERE guardrail_status = 'approved'",
    )
    .await?;
    let reporter = Uuid::now_v7().to_string();
    let start = Utc::now() - Span::days(365);
    let mut added = 0;
    while have + added < n {
        let take = CHUNK.min(n - have - added);
        let mut text = String::with_capacity(take * 700);
        for k in 0..take {
            let i = have + added + k;
            let (lat, lng) = CITIES[i % CITIES.len()];
            let at = (start + Span::seconds(i as i64 % (365 * 86_400))).to_rfc3339();
            row(
                &mut text,
                &[
                    &Uuid::now_v7().to_string(),
                    &reporter,
                    &title(i),
                    &description(i),
                    ProblemDomain::ALL[i % ProblemDomain::ALL.len()].as_str(),
                    ["low", "medium", "high", "critical"][i % 4],
                    "local",
                    "Generated district",
                    &lat.to_string(),
                    &lng.to_string(),
                    "active",
                    "approved",
                    &at,
                    &at,
                    "0",
                ],
            );
        }
        let mut copy = pool
            .copy_in_raw(
                "COPY rm_problems (problem_id, reported_by, title, description, domain, severity,
                                   geographic_scope, location_name, latitude, longitude, status,
                                   guardrail_status, reported_at, updated_at, position) FROM STDIN",
            )
            .await?;
        copy.send(text.into_bytes()).await?;
        copy.finish().await?;
        added += take;
        tracing::info!(added, total = have + added, "feed problems generated");
    }
    if added > 0 {
        sqlx::query("ANALYZE rm_problems").execute(pool).await?;
    }
    Ok(added)
}

/// Makes sure the missions read model holds at least `n` open, approved missions (normally spread
/// around [`CITIES`], σ ≈ 1°); returns how many it added.
pub async fn missions(pool: &PgPool, n: usize) -> anyhow::Result<usize> {
    let have = count(
        pool,
        "SELECT count(*) FROM rm_missions WHERE guardrail_status = 'approved' AND status = 'open'",
    )
    .await?;
    let mut rng = StdRng::seed_from_u64(have as u64);
    let agent = Uuid::now_v7().to_string();
    let solution = Uuid::now_v7().to_string();
    let now = Utc::now();
    let expires = (now + Span::days(3650)).to_rfc3339();
    let mut added = 0;
    while have + added < n {
        let take = CHUNK.min(n - have - added);
        let mut text = String::with_capacity(take * 600);
        for k in 0..take {
            let i = have + added + k;
            let (lat, lng) = CITIES[i % CITIES.len()];
            let lat = (lat + gaussian(&mut rng)).clamp(-89.9, 89.9);
            let lng = ((lng + gaussian(&mut rng) + 540.0) % 360.0) - 180.0;
            let created = (now - Span::seconds(i as i64 % (180 * 86_400))).to_rfc3339();
            row(
                &mut text,
                &[
                    &Uuid::now_v7().to_string(),
                    &solution,
                    &agent,
                    ProblemDomain::ALL[i % ProblemDomain::ALL.len()].as_str(),
                    &format!("Help on site {i}: {}", title(i)),
                    &description(i),
                    r#"[{"step":1,"text":"Go to the site and take photos of the problem."}]"#,
                    r#"[{"type":"photo","description":"The site, with a visible landmark"}]"#,
                    "{}",
                    "Generated site",
                    &format!("{lat:.5}"),
                    &format!("{lng:.5}"),
                    "5",
                    &(30 + (i % 8) * 30).to_string(),
                    ["beginner", "intermediate", "advanced", "expert"][i % 4],
                    NULL,
                    &(10 + i % 90).to_string(),
                    "0",
                    "3",
                    "open",
                    "approved",
                    &expires,
                    &created,
                    &created,
                    "0",
                ],
            );
        }
        let mut copy = pool
            .copy_in_raw(
                "COPY rm_missions (mission_id, solution_id, agent_id, domain, title, description,
                                   instructions, evidence_required, required_skills, location_name,
                                   latitude, longitude, location_radius_km, estimated_duration_minutes,
                                   difficulty, mission_type, token_reward, bonus_for_quality,
                                   max_claims, status, guardrail_status, expires_at, created_at,
                                   updated_at, position) FROM STDIN",
            )
            .await?;
        copy.send(text.into_bytes()).await?;
        copy.finish().await?;
        added += take;
        tracing::info!(added, total = have + added, "missions generated");
    }
    if added > 0 {
        // As autovacuum would after so many inserts: statistics, and the visibility map the nearby
        // search's index-only scan needs.
        sqlx::query("VACUUM (ANALYZE) rm_missions")
            .execute(pool)
            .await?;
    }
    Ok(added)
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    let v: f64 = rng.r#gen();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Cluster centres of the generated embeddings (fixed: the same seed gives the same centres).
pub fn centres(count: usize) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(0x0062_7762_656e_6368);
    (0..count)
        .map(|_| unit((0..DIMENSIONS).map(|_| gaussian(&mut rng) as f32).collect()))
        .collect()
}

/// Scales `v` to length 1.
pub fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    for x in &mut v {
        *x /= norm;
    }
    v
}

/// A point near `centre`: cosine similarity to it about 0.75, as texts on one topic are.
pub fn near(centre: &[f32], rng: &mut StdRng) -> Vec<f32> {
    let spread = 0.045_f32;
    unit(
        centre
            .iter()
            .map(|c| c + spread * gaussian(rng) as f32)
            .collect(),
    )
}

/// pgvector's text form of a vector.
pub fn vector_text(v: &[f32]) -> String {
    let mut out = String::with_capacity(v.len() * 8);
    out.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{x:.5}");
    }
    out.push(']');
    out
}

/// Clusters of the generated embeddings.
pub const CLUSTERS: usize = 2_000;
/// The `model` column of generated embeddings (no text was embedded to make them).
pub const SYNTHETIC_MODEL: &str = "bench-synthetic";

/// Makes sure the semantic index holds at least `n` generated embeddings (in [`CLUSTERS`]
/// clusters), loading without the HNSW index and building it afterwards; returns how many it added.
pub async fn embeddings(pool: &PgPool, n: usize) -> anyhow::Result<usize> {
    let have = count(pool, "SELECT count(*) FROM rm_search").await?;
    if have >= n {
        return Ok(0);
    }
    let centres = centres(CLUSTERS);
    let mut rng = StdRng::seed_from_u64(have as u64 + 1);
    sqlx::query("DROP INDEX IF EXISTS rm_search_embedding")
        .execute(pool)
        .await?;
    let now = Utc::now().to_rfc3339();
    let mut added = 0;
    while have + added < n {
        let take = CHUNK.min(n - have - added);
        let mut text = String::with_capacity(take * 3300);
        for k in 0..take {
            let i = have + added + k;
            let v = near(&centres[i % CLUSTERS], &mut rng);
            row(
                &mut text,
                &[
                    "problem",
                    &Uuid::now_v7().to_string(),
                    ProblemDomain::ALL[i % ProblemDomain::ALL.len()].as_str(),
                    &title(i),
                    "Generated for the similarity benchmark",
                    SYNTHETIC_MODEL,
                    &vector_text(&v),
                    &now,
                    "0",
                ],
            );
        }
        let mut copy = pool
            .copy_in_raw(
                "COPY rm_search (content_type, content_id, domain, title, body, model, embedding,
                                 indexed_at, position) FROM STDIN",
            )
            .await?;
        copy.send(text.into_bytes()).await?;
        copy.finish().await?;
        added += take;
        tracing::info!(added, total = have + added, "embeddings generated");
    }
    tracing::info!("building the HNSW index (minutes for a million vectors)");
    let mut conn = pool.acquire().await?;
    sqlx::query("SET maintenance_work_mem = '4GB'")
        .execute(&mut *conn)
        .await?;
    sqlx::query("SET max_parallel_maintenance_workers = 2")
        .execute(&mut *conn)
        .await?;
    // The index exactly as the migration defines it.
    sqlx::query(
        "CREATE INDEX IF NOT EXISTS rm_search_embedding ON rm_search USING hnsw (embedding vector_cosine_ops)",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("ANALYZE rm_search").execute(&mut *conn).await?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_text_with_copy_specials_when_escaped_then_copy_reads_it_back_unchanged() {
        let mut out = String::new();
        row(&mut out, &["a\tb", "c\\d\ne", NULL]);
        assert_eq!(out, "a\\tb\tc\\\\d\\ne\t\\N\n");
    }

    #[test]
    fn given_a_generated_problem_when_built_then_the_domain_accepts_it() {
        let event = reported_event(7, Uuid::now_v7(), Utc::now()).expect("valid");
        assert!(matches!(
            event,
            bw_domain::problem::ProblemEvent::ProblemReported { .. }
        ));
    }

    #[test]
    fn given_a_centre_when_points_are_drawn_near_it_then_they_are_unit_vectors_close_to_it() {
        let centre = &centres(2)[0];
        let mut rng = StdRng::seed_from_u64(1);
        let v = near(centre, &mut rng);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        let cosine: f32 = v.iter().zip(centre).map(|(a, b)| a * b).sum();
        assert!((0.6..0.9).contains(&cosine), "{cosine}");
        assert_eq!(vector_text(&[0.5, -0.25]), "[0.50000,-0.25000]");
    }
}
