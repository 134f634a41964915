//! The guardrail worker (see the crate documentation for the steps): judges one submission and
//! records its verdict through the content's aggregate, in the aggregate's own transaction.
//!
//! Submissions reach it through the queue ([`super::queue`]). Everything it reads per submission is
//! bounded by that submission, never by the size of the log: the content's own stream, the author's
//! registration (the first event of its stream), its approvals (the `agent_trust` read model), the
//! decision and embedding caches (by key) and the nearest approved problem (an HNSW index). If the
//! worker stops after a verdict commits and before its queue row is deleted, the submission comes
//! again, the aggregate sees that it has its verdict, and nothing is appended: exactly one verdict per
//! submission, however many workers run.

use std::{sync::Arc, time::Duration};

use bw_commands::{CommandBus, CommandContext, CommandError, Outcome, idempotency::StoredResponse};
use bw_domain::{
    guardrail::{
        self, Assessment, ContentType, ReviewCommand, TrustPolicy, Verdict, decide, layer_a,
        normalise, verdict_id,
    },
    meta::Actor,
    mission::{Mission, MissionCommand},
    problem::{Problem, ProblemCommand},
    solution::{Solution, SolutionCommand, SolutionEvent},
};
use bw_eventlog::envelope::EventEnvelope;
use bw_projections::ProjectionError;
use chrono::Utc;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use bw_guardrail::{
    Classifier, GuardrailError,
    content::{content_of, decode_event},
};

/// The events that submit content for judgment, by aggregate type: a report, proposal or creation,
/// an edit, a debate post.
pub const SUBMISSIONS: [(&str, &str); 7] = [
    ("Problem", "ProblemReported"),
    ("Problem", "ProblemEdited"),
    ("Solution", "SolutionProposed"),
    ("Solution", "SolutionEdited"),
    ("Solution", "DebatePosted"),
    ("Mission", "MissionCreated"),
    ("Mission", "MissionEdited"),
];

/// Whether an event of this type submits content for judgment.
pub fn is_submission(aggregate_type: &str, event_type: &str) -> bool {
    SUBMISSIONS.contains(&(aggregate_type, event_type))
}

/// The name of the guardrail's intake: its checkpoint and consumer.
pub const NAME: &str = "guardrail";

/// How the worker judges.
#[derive(Debug, Clone)]
pub struct GuardrailConfig {
    /// Tiers and thresholds.
    pub policy: TrustPolicy,
    /// How long a cached Layer B result is reused.
    pub cache_ttl: Duration,
    /// Cosine similarity to an approved problem from which a new problem is a near duplicate.
    pub duplicate_similarity: f64,
}

impl Default for GuardrailConfig {
    fn default() -> Self {
        Self {
            policy: TrustPolicy::default(),
            cache_ttl: Duration::from_secs(3600),
            duplicate_similarity: 0.92,
        }
    }
}

/// The worker.
#[derive(Debug, Clone)]
pub struct GuardrailWorker {
    bus: CommandBus,
    classifier: Arc<dyn Classifier>,
    config: GuardrailConfig,
    metrics: Option<bw_infra::metrics::GuardrailMetrics>,
    /// Embeds problems for the near-duplicate check (none: no check).
    embedder: Option<Arc<bw_guardrail::embed::Embedder>>,
}

/// A submission to judge.
#[derive(Debug, Clone, PartialEq)]
struct Submission {
    content_type: ContentType,
    content_id: Uuid,
    /// The stream (problem, or the solution a debate post belongs to).
    stream_id: Uuid,
    author: Uuid,
    /// The text as submitted (all fields, also after a partial edit).
    text: String,
}

impl GuardrailWorker {
    /// A worker issuing verdicts through `bus`, with `classifier` as Layer B.
    pub fn new(bus: CommandBus, classifier: Arc<dyn Classifier>, config: GuardrailConfig) -> Self {
        Self {
            bus,
            classifier,
            config,
            metrics: None,
            embedder: None,
        }
    }

    /// Checks new problems against approved ones in the semantic index with `embedder`.
    pub fn with_duplicate_check(mut self, embedder: Arc<bw_guardrail::embed::Embedder>) -> Self {
        self.embedder = Some(embedder);
        self
    }

    /// The approved problem nearest to `text`, other than `id`, with its similarity.
    async fn nearest_problem(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
        vector: &[f32],
    ) -> Result<Option<(Uuid, f64)>, GuardrailError> {
        Ok(sqlx::query_as(
            "SELECT content_id, 1 - (embedding <=> $1::vector) FROM rm_search
             WHERE content_type = 'problem' AND content_id <> $2
             ORDER BY embedding <=> $1::vector LIMIT 1",
        )
        .bind(bw_guardrail::index::vector_literal(vector))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
    }

    /// The metrics it records in, if any.
    pub fn metrics(&self) -> Option<&bw_infra::metrics::GuardrailMetrics> {
        self.metrics.as_ref()
    }

    /// Records durations, decisions and cache lookups in `metrics`.
    pub fn with_metrics(mut self, metrics: bw_infra::metrics::GuardrailMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn observe(&self, verdict: &Verdict, rejected_by_a: bool) {
        let Some(m) = &self.metrics else { return };
        let decision = verdict.decision.as_str().to_owned();
        m.duration
            .get_or_create(&bw_infra::metrics::DecisionLabels {
                decision: decision.clone(),
            })
            .observe(f64::from(verdict.duration_ms) / 1000.0);
        let layer = if rejected_by_a {
            "a"
        } else if verdict.assessment.is_some() {
            "b"
        } else {
            "none"
        };
        m.decisions
            .get_or_create(&bw_infra::metrics::LayerLabels {
                layer: layer.to_owned(),
                decision,
            })
            .inc();
        if !rejected_by_a {
            let result = if verdict.cache_hit { "hit" } else { "miss" };
            m.cache
                .get_or_create(&bw_infra::metrics::CacheLabels {
                    result: result.to_owned(),
                })
                .inc();
        }
    }

    /// The submission `event` makes, if it is one.
    async fn submission(
        conn: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<Option<Submission>, GuardrailError> {
        let stream_id: Uuid = event
            .aggregate_id
            .parse()
            .map_err(|_| GuardrailError::Corrupt("aggregate id is not a UUID".into()))?;
        match (event.aggregate_type.as_str(), event.event_type.as_str()) {
            ("Problem", "ProblemReported" | "ProblemEdited") => {
                let c = content_of(
                    conn,
                    &event.aggregate_type,
                    &event.aggregate_id,
                    event.sequence,
                    ContentType::Problem,
                )
                .await?;
                Ok(Some(Submission {
                    content_type: ContentType::Problem,
                    content_id: stream_id,
                    stream_id,
                    author: c.author,
                    text: c.text(),
                }))
            }
            ("Mission", "MissionCreated" | "MissionEdited") => {
                let c = content_of(
                    conn,
                    &event.aggregate_type,
                    &event.aggregate_id,
                    event.sequence,
                    ContentType::Mission,
                )
                .await?;
                Ok(Some(Submission {
                    content_type: ContentType::Mission,
                    content_id: stream_id,
                    stream_id,
                    author: c.author,
                    text: c.text(),
                }))
            }
            ("Solution", "SolutionProposed" | "SolutionEdited") => {
                let c = content_of(
                    conn,
                    &event.aggregate_type,
                    &event.aggregate_id,
                    event.sequence,
                    ContentType::Solution,
                )
                .await?;
                Ok(Some(Submission {
                    content_type: ContentType::Solution,
                    content_id: stream_id,
                    stream_id,
                    author: c.author,
                    text: c.text(),
                }))
            }
            ("Solution", "DebatePosted") => match decode_event::<SolutionEvent>(event)? {
                SolutionEvent::DebatePosted {
                    debate_id,
                    agent_id,
                    stance,
                    content,
                    ..
                } => Ok(Some(Submission {
                    content_type: ContentType::Debate,
                    content_id: debate_id,
                    stream_id,
                    author: agent_id,
                    text: format!("{}: {}", stance.as_str(), content.as_str()),
                })),
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// The author's trust tier facts: its age at the time of the event (from the first event of its
    /// stream) and its approvals so far (from the `agent_trust` read model).
    async fn tier_facts(
        conn: &mut PgConnection,
        author: Uuid,
        at: chrono::DateTime<Utc>,
    ) -> Result<(i64, i64), GuardrailError> {
        let registered =
            bw_eventlog::read::started_at(&mut *conn, "Agent", &author.to_string()).await?;
        let approvals = bw_projections::models::trust::approvals(&mut *conn, author)
            .await
            .map_err(|e| match e {
                ProjectionError::Database(e) => GuardrailError::Database(e),
                other => GuardrailError::Corrupt(other.to_string()),
            })?;
        let age_days = registered.map_or(0, |r| (at - r).num_days());
        Ok((age_days, approvals))
    }

    /// Layer B through the cache: `(assessment, cache hit)`. A classifier failure yields no
    /// assessment (an admin decides) and is logged.
    async fn assess(
        &self,
        conn: &mut PgConnection,
        content_type: ContentType,
        normalised: &str,
        vector: Option<Vec<f32>>,
    ) -> Result<(Option<Assessment>, bool), GuardrailError> {
        let classifier = self.classifier.name().to_owned();
        let key = Sha256::new()
            .chain_update(content_type.as_str().as_bytes())
            .chain_update(b":")
            .chain_update(normalised.as_bytes())
            .finalize()
            .to_vec();
        let cached: Option<serde_json::Value> = sqlx::query_scalar(
            "SELECT assessment FROM guardrail_cache
             WHERE key = $1 AND classifier = $2 AND created_at > now() - make_interval(secs => $3)",
        )
        .bind(&key)
        .bind(&classifier)
        .bind(self.config.cache_ttl.as_secs_f64())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(assessment) = cached.and_then(|v| serde_json::from_value(v).ok()) {
            return Ok((Some(assessment), true));
        }
        let assessment = match self
            .classifier
            .assess_embedded(content_type, normalised, vector)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "classifier failed; the content goes to the admin queue");
                None
            }
        };
        if let Some(a) = &assessment {
            sqlx::query(
                "INSERT INTO guardrail_cache (key, classifier, assessment) VALUES ($1, $2, $3)
                 ON CONFLICT (key, classifier) DO UPDATE SET assessment = EXCLUDED.assessment, created_at = now()",
            )
            .bind(&key)
            .bind(&classifier)
            .bind(serde_json::to_value(a).unwrap_or_default())
            .execute(&mut *conn)
            .await?;
        }
        Ok((assessment, false))
    }

    /// Judges one event; `Ok(None)` when it is not a submission.
    pub async fn judge(
        &self,
        conn: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<Option<Verdict>, GuardrailError> {
        // The verdict's `durationMs`: everything judging took, reading the content included.
        let started = std::time::Instant::now();
        let Some(submission) = Self::submission(conn, event).await? else {
            return Ok(None);
        };
        // A redelivery of a submission that has its verdict, or one an edit superseded, costs no
        // classifier call (an LLM judge would spend budget for nothing).
        let due = match submission.content_type {
            ContentType::Problem => self
                .bus
                .load::<Problem>(&event.aggregate_id)
                .await?
                .accepts_verdict(event.sequence),
            ContentType::Solution | ContentType::Debate => self
                .bus
                .load::<Solution>(&event.aggregate_id)
                .await?
                .accepts_verdict(submission.content_id, event.sequence),
            ContentType::Mission => self
                .bus
                .load::<Mission>(&event.aggregate_id)
                .await?
                .accepts_verdict(event.sequence),
        };
        if !due {
            return Ok(None);
        }
        let normalised = normalise(&submission.text);
        let hits = layer_a(&normalised);
        let rejected_by_a = hits
            .iter()
            .any(|h| h.action == guardrail::PatternAction::Reject);
        // One embedding (through the shared cache) serves Layer B and the duplicate check.
        let vector = match &self.embedder {
            Some(embedder) if !rejected_by_a => {
                Some(bw_guardrail::index::embed_cached(conn, embedder, &normalised).await?)
            }
            _ => None,
        };
        let (assessment, cache_hit) = if rejected_by_a {
            (None, false)
        } else {
            self.assess(conn, submission.content_type, &normalised, vector.clone())
                .await?
        };
        let (age_days, approvals) =
            Self::tier_facts(conn, submission.author, event.recorded_at).await?;
        let tier = self.config.policy.tier(age_days, approvals);
        let thresholds = self.config.policy.thresholds(tier);
        let (mut decision, mut reasons) = decide(&hits, assessment.as_ref(), thresholds);
        let mut duplicate_of = None;
        if let (ContentType::Problem, Some(vector)) = (submission.content_type, &vector) {
            // The index embeds the same normalised `title\nbody`, so the vectors compare.
            let nearest = self
                .nearest_problem(conn, submission.content_id, vector)
                .await?;
            decision = guardrail::check_duplicate(
                decision,
                &mut reasons,
                nearest,
                self.config.duplicate_similarity,
            );
            if nearest.is_some_and(|(_, s)| s >= self.config.duplicate_similarity) {
                duplicate_of = nearest.map(|(id, _)| id);
            }
        }
        Ok(Some(Verdict {
            content_id: submission.content_id,
            content_type: submission.content_type,
            author_agent_id: submission.author,
            verdict_id: verdict_id(event.event_id),
            source_sequence: event.sequence,
            decision,
            layer_a: hits,
            assessment,
            trust_tier: tier,
            thresholds,
            classifier: self.classifier.name().to_owned(),
            cache_hit,
            duration_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
            reasons,
            duplicate_of,
            decided_at: Utc::now(),
        }))
    }

    /// Records `verdict` on its content; `true` if it was appended (not a repeat).
    pub async fn record(
        &self,
        event: &EventEnvelope,
        verdict: Verdict,
    ) -> Result<bool, GuardrailError> {
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
        let stream = event.aggregate_id.clone();
        // A concurrent edit between load and append conflicts; loading again finds the verdict stale
        // (dropped) or still due (recorded). Past these tries the batch is retried later.
        for attempt in 1..=5 {
            let command = ReviewCommand::Decide(Box::new(verdict.clone()));
            let outcome = match verdict.content_type {
                ContentType::Problem => {
                    self.bus
                        .execute::<Problem>(&stream, ProblemCommand::Review(command), &ctx, respond)
                        .await
                }
                ContentType::Mission => {
                    self.bus
                        .execute::<Mission>(&stream, MissionCommand::Review(command), &ctx, respond)
                        .await
                }
                ContentType::Solution | ContentType::Debate => {
                    self.bus
                        .execute::<Solution>(
                            &stream,
                            SolutionCommand::Review {
                                target: verdict.content_id,
                                command,
                            },
                            &ctx,
                            respond,
                        )
                        .await
                }
            };
            match outcome {
                Ok(Outcome::Executed { events, .. }) => return Ok(!events.is_empty()),
                Ok(Outcome::Replayed(_)) => return Ok(false),
                Err(CommandError::Conflict { .. }) if attempt < 5 => {
                    tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
    }

    /// Embeds the submissions among `events` in one pass (Layer A rejections excepted), so that
    /// [`GuardrailWorker::judge`] finds each vector in the embedding cache. Without an embedder,
    /// nothing to do.
    pub async fn embed_batch(
        &self,
        conn: &mut PgConnection,
        events: &[EventEnvelope],
    ) -> Result<(), GuardrailError> {
        let Some(embedder) = &self.embedder else {
            return Ok(());
        };
        let mut texts = Vec::new();
        for event in events {
            if let Some(submission) = Self::submission(conn, event).await? {
                let normalised = normalise(&submission.text);
                let rejected = layer_a(&normalised)
                    .iter()
                    .any(|h| h.action == guardrail::PatternAction::Reject);
                if !rejected {
                    texts.push(normalised);
                }
            }
        }
        bw_guardrail::index::embed_cached_many(conn, embedder, &texts).await?;
        Ok(())
    }

    /// Judges `event` and records its verdict: `Some(decision)` when a verdict was appended, `None`
    /// when there was nothing to do (not a submission, judged already, superseded by an edit).
    pub async fn judge_and_record(
        &self,
        conn: &mut PgConnection,
        event: &EventEnvelope,
    ) -> Result<Option<bw_domain::taxonomy::GuardrailStatus>, GuardrailError> {
        let Some(verdict) = self.judge(conn, event).await? else {
            return Ok(None);
        };
        let decision = verdict.decision;
        let rejected_by_a = verdict
            .layer_a
            .iter()
            .any(|h| h.action == guardrail::PatternAction::Reject);
        let observed = verdict.clone();
        let recorded = self.record(event, verdict).await?;
        if recorded {
            self.observe(&observed, rejected_by_a);
        }
        tracing::debug!(
            event_id = %event.event_id,
            decision = decision.as_str(),
            recorded,
            "guardrail verdict"
        );
        Ok(recorded.then_some(decision))
    }
}
