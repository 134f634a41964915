//! The semantic index: approved problems and solutions with their all-MiniLM-L6-v2 embedding (384
//! dimensions, model recorded per row) in `rm_search` (pgvector, HNSW cosine index) and a full-text
//! vector (tsvector) — for "similar problems" and for search, which fuses the keyword and the vector
//! rankings by reciprocal rank fusion.
//!
//! A projection: content enters when it is approved (by the guardrail or an admin) and leaves when it
//! is edited (pending again), rejected or archived. Embeddings are cached by (model, SHA-256 of the
//! text) in `embedding_cache`, which a rebuild reuses instead of recomputing every text.

use std::sync::Arc;

use bw_domain::{
    guardrail::ContentType, problem::ProblemEvent, solution::SolutionEvent,
    taxonomy::GuardrailStatus,
};
use bw_eventlog::envelope::EventEnvelope;
use bw_projections::{ProjectionError, runtime::Projection};
use futures::future::BoxFuture;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    GuardrailError,
    content::{Content, content_of, decode_event},
    embed::{Embedder, MODEL},
};

/// The projection's name.
pub const NAME: &str = "semantic_index";
/// The projection's schema version.
pub const VERSION: i32 = 1;

/// The projection.
#[derive(Debug, Clone)]
pub struct SemanticIndex {
    embedder: Arc<Embedder>,
}

impl SemanticIndex {
    /// An index embedding with `embedder`.
    pub fn new(embedder: Arc<Embedder>) -> Self {
        Self { embedder }
    }
}

/// pgvector's text form of a vector.
pub fn vector_literal(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
    format!("[{}]", parts.join(","))
}

fn parse_vector(text: &str) -> Option<Vec<f32>> {
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|x| x.trim().parse().ok())
        .collect()
}

/// Texts per forward pass when embedding a batch: sorted by length first, so little is padding.
const EMBED_CHUNK: usize = 16;

/// The embedding of `text`, from the cache or computed (on a blocking thread) and cached.
pub async fn embed_cached(
    conn: &mut PgConnection,
    embedder: &Arc<Embedder>,
    text: &str,
) -> Result<Vec<f32>, GuardrailError> {
    embed_cached_many(conn, embedder, &[text.to_owned()])
        .await?
        .pop()
        .ok_or_else(|| GuardrailError::Corrupt("the embedder returned no vector".into()))
}

/// The embeddings of `texts`, in order: those in the cache read in one query, the others computed
/// together on a blocking thread (batched forward passes) and cached.
pub async fn embed_cached_many(
    conn: &mut PgConnection,
    embedder: &Arc<Embedder>,
    texts: &[String],
) -> Result<Vec<Vec<f32>>, GuardrailError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<Vec<u8>> = texts
        .iter()
        .map(|t| Sha256::digest(t.as_bytes()).to_vec())
        .collect();
    let cached: Vec<(Vec<u8>, String)> = sqlx::query_as(
        "SELECT text_sha256, embedding::text FROM embedding_cache WHERE model = $1 AND text_sha256 = ANY($2)",
    )
    .bind(MODEL)
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await?;
    let mut known: std::collections::HashMap<Vec<u8>, Vec<f32>> = cached
        .into_iter()
        .filter_map(|(k, v)| Some((k, parse_vector(&v)?)))
        .collect();
    let mut missing: Vec<(Vec<u8>, String)> = Vec::new();
    for (key, text) in keys.iter().zip(texts) {
        if !known.contains_key(key) && !missing.iter().any(|(k, _)| k == key) {
            missing.push((key.clone(), text.clone()));
        }
    }
    if !missing.is_empty() {
        missing.sort_by_key(|(_, text)| text.len());
        let embedder = Arc::clone(embedder);
        let owned: Vec<String> = missing.iter().map(|(_, t)| t.clone()).collect();
        let vectors = tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(owned.len());
            for chunk in owned.chunks(EMBED_CHUNK) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                out.extend(embedder.embed(&refs)?);
            }
            Ok::<_, GuardrailError>(out)
        })
        .await
        .map_err(|e| GuardrailError::Corrupt(e.to_string()))??;
        if vectors.len() != missing.len() {
            return Err(GuardrailError::Corrupt(
                "the embedder returned a different number of vectors".into(),
            ));
        }
        let literals: Vec<String> = vectors.iter().map(|v| vector_literal(v)).collect();
        let new_keys: Vec<Vec<u8>> = missing.iter().map(|(k, _)| k.clone()).collect();
        sqlx::query(
            "INSERT INTO embedding_cache (model, text_sha256, embedding)
             SELECT $1, k, v::vector FROM unnest($2::bytea[], $3::text[]) AS t(k, v)
             ON CONFLICT (model, text_sha256) DO NOTHING",
        )
        .bind(MODEL)
        .bind(&new_keys)
        .bind(&literals)
        .execute(&mut *conn)
        .await?;
        known.extend(new_keys.into_iter().zip(vectors));
    }
    keys.iter()
        .map(|k| {
            known
                .get(k)
                .cloned()
                .ok_or_else(|| GuardrailError::Corrupt("a cached embedding is unreadable".into()))
        })
        .collect()
}

enum Change {
    /// The content at this stream position is approved: index it.
    Approved(ContentType, Uuid),
    /// It is no longer public.
    Removed(ContentType, Uuid),
    Nothing,
}

fn change_of(event: &EventEnvelope) -> Result<Change, GuardrailError> {
    let judged = |content_type, id, decision| {
        if decision == GuardrailStatus::Approved {
            Change::Approved(content_type, id)
        } else {
            Change::Removed(content_type, id)
        }
    };
    Ok(match event.aggregate_type.as_str() {
        "Problem" => match decode_event::<ProblemEvent>(event)? {
            ProblemEvent::GuardrailDecided(v) => judged(v.content_type, v.content_id, v.decision),
            ProblemEvent::Reviewed(r) => judged(r.content_type, r.content_id, r.decision),
            ProblemEvent::ProblemEdited { problem_id, .. }
            | ProblemEvent::ProblemArchived { problem_id, .. } => {
                Change::Removed(ContentType::Problem, problem_id)
            }
            _ => Change::Nothing,
        },
        "Solution" => match decode_event::<SolutionEvent>(event)? {
            SolutionEvent::GuardrailDecided(v) if v.content_type == ContentType::Solution => {
                judged(v.content_type, v.content_id, v.decision)
            }
            SolutionEvent::Reviewed(r) if r.content_type == ContentType::Solution => {
                judged(r.content_type, r.content_id, r.decision)
            }
            SolutionEvent::SolutionEdited { solution_id, .. } => {
                Change::Removed(ContentType::Solution, solution_id)
            }
            _ => Change::Nothing,
        },
        _ => Change::Nothing,
    })
}

impl Projection for SemanticIndex {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> i32 {
        VERSION
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Problem", "Solution"]
    }

    fn prepare<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [EventEnvelope],
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            let mut texts = Vec::new();
            for event in events {
                if let Change::Approved(content_type, _) = change_of(event)? {
                    let content = content_of(
                        conn,
                        &event.aggregate_type,
                        &event.aggregate_id,
                        event.sequence,
                        content_type,
                    )
                    .await?;
                    texts.push(bw_domain::guardrail::normalise(&content.text()));
                }
            }
            embed_cached_many(conn, &self.embedder, &texts).await?;
            Ok(())
        })
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(async move {
            match change_of(event)? {
                Change::Approved(content_type, content_id) => {
                    let content: Content = content_of(
                        conn,
                        &event.aggregate_type,
                        &event.aggregate_id,
                        event.sequence,
                        content_type,
                    )
                    .await?;
                    // The text the guardrail judged, normalised the same way: one cached vector.
                    let vector = embed_cached(
                        conn,
                        &self.embedder,
                        &bw_domain::guardrail::normalise(&content.text()),
                    )
                    .await?;
                    let Content {
                        title,
                        body,
                        domain,
                        ..
                    } = content;
                    sqlx::query(
                        "INSERT INTO rm_search (content_type, content_id, domain, title, body, model, embedding, indexed_at, position)
                         VALUES ($1, $2, $3, $4, $5, $6, $7::vector, $8, $9)
                         ON CONFLICT (content_type, content_id) DO UPDATE SET domain = EXCLUDED.domain, title = EXCLUDED.title,
                             body = EXCLUDED.body, model = EXCLUDED.model, embedding = EXCLUDED.embedding,
                             indexed_at = EXCLUDED.indexed_at, position = EXCLUDED.position",
                    )
                    .bind(content_type.as_str())
                    .bind(content_id)
                    .bind(domain.map(|d| d.as_str()))
                    .bind(&title)
                    .bind(&body)
                    .bind(MODEL)
                    .bind(vector_literal(&vector))
                    .bind(event.recorded_at)
                    .bind(event.global_position)
                    .execute(&mut *conn)
                    .await?;
                }
                Change::Removed(content_type, content_id) => {
                    sqlx::query(
                        "DELETE FROM rm_search WHERE content_type = $1 AND content_id = $2",
                    )
                    .bind(content_type.as_str())
                    .bind(content_id)
                    .execute(&mut *conn)
                    .await?;
                }
                Change::Nothing => {}
            }
            Ok(())
        })
    }
}

/// A search or similarity hit.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hit {
    /// `problem` or `solution`.
    pub content_type: String,
    pub content_id: Uuid,
    pub title: String,
    pub domain: Option<String>,
    /// Cosine similarity (similar) or the fused score (search).
    pub score: f64,
    /// 1-based rank in the keyword list, if it is there (search only).
    pub keyword_rank: Option<i64>,
    /// 1-based rank in the vector list, if it is there (search only).
    pub vector_rank: Option<i64>,
}

/// The approved problems most similar to approved problem `id`, best first; `None` when `id` is not
/// an indexed (approved) problem.
pub async fn similar(pool: &PgPool, id: Uuid, limit: i64) -> Result<Option<Vec<Hit>>, sqlx::Error> {
    let indexed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM rm_search WHERE content_type = 'problem' AND content_id = $1)",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    if !indexed {
        return Ok(None);
    }
    let hits = sqlx::query_as(
        "SELECT s.content_type, s.content_id, s.title, s.domain,
                1 - (s.embedding <=> o.embedding) AS score, NULL::bigint AS keyword_rank, NULL::bigint AS vector_rank
         FROM rm_search s, (SELECT embedding FROM rm_search WHERE content_type = 'problem' AND content_id = $1) o
         WHERE s.content_type = 'problem' AND s.content_id <> $1
         ORDER BY s.embedding <=> o.embedding
         LIMIT $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(Some(hits))
}

/// Reciprocal rank fusion constant.
const RRF_K: f64 = 60.0;
/// Candidates taken from each list.
const CANDIDATES: i64 = 50;

/// How many candidates the HNSW index visits per vector query. Among a million clustered vectors
/// (the index built with pgvector's defaults, m 16 and ef_construction 64), pgvector's default of 40
/// finds 0.63 of the true 10 nearest, 100 finds 0.84, 200 0.92, 400 0.949 and 500 0.95+
/// (`docs/benchmarks.md`, P6).
pub const HNSW_EF_SEARCH: u32 = 500;

/// Search over approved content: full-text (`plainto_tsquery`, ranked by `ts_rank`) and, when a query
/// vector is given, nearest neighbours; fused by `Σ 1 / (60 + rank)`.
///
/// Each half takes its candidates straight from its own index (GIN for words, HNSW for meaning) and
/// only those candidates are joined back to their rows: no part of the query reads the whole table
/// (a shared CTE over every row, as an earlier version had, is materialised by PostgreSQL and cost
/// 13 s per query over a million rows).
pub async fn search(
    pool: &PgPool,
    query: &str,
    vector: Option<&[f32]>,
    content_type: Option<&str>,
    domain: Option<&str>,
    limit: i64,
) -> Result<Vec<Hit>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if vector.is_some() {
        sqlx::query(&format!("SET LOCAL hnsw.ef_search = {HNSW_EF_SEARCH}"))
            .execute(&mut *tx)
            .await?;
    }
    let hits = sqlx::query_as(
        "WITH keyword AS (
             SELECT content_type, content_id,
                    row_number() OVER (ORDER BY rank DESC, content_id) AS rank
             FROM (SELECT content_type, content_id, ts_rank(tsv, plainto_tsquery('english', $1)) AS rank
                   FROM rm_search
                   WHERE tsv @@ plainto_tsquery('english', $1)
                     AND ($3::text IS NULL OR content_type = $3) AND ($4::text IS NULL OR domain = $4)
                   ORDER BY rank DESC, content_id LIMIT $5) k
         ),
         semantic AS (
             SELECT content_type, content_id,
                    row_number() OVER (ORDER BY distance, content_id) AS rank
             FROM (SELECT content_type, content_id, embedding <=> $2::vector AS distance
                   FROM rm_search
                   WHERE $2::text IS NOT NULL
                     AND ($3::text IS NULL OR content_type = $3) AND ($4::text IS NULL OR domain = $4)
                   ORDER BY embedding <=> $2::vector LIMIT $5) s
         ),
         fused AS (
             SELECT content_type, content_id, k.rank AS keyword_rank, s.rank AS vector_rank
             FROM keyword k FULL JOIN semantic s USING (content_type, content_id)
         )
         SELECT f.content_type, f.content_id, r.title, r.domain,
                COALESCE(1.0 / ($6 + f.keyword_rank), 0) + COALESCE(1.0 / ($6 + f.vector_rank), 0) AS score,
                f.keyword_rank, f.vector_rank
         FROM fused f JOIN rm_search r USING (content_type, content_id)
         ORDER BY score DESC, f.content_id
         LIMIT $7",
    )
    .bind(query)
    .bind(vector.map(vector_literal))
    .bind(content_type)
    .bind(domain)
    .bind(CANDIDATES)
    .bind(RRF_K)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(hits)
}
