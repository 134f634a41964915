//! Prometheus metrics: one registry per process, rendered by `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `method`, `route` (the matched route template, or `unmatched`), `status` |
//! | `http_request_duration_seconds` | histogram, 0.01 … 10 s | `method`, `route` |
//! | `http_requests_in_flight` | gauge | |
//! | `http_active_connections` | gauge (open TCP connections) | |
//! | `db_pool_connections` | gauge | `state` = `idle` \| `in_use` |
//! | `db_pool_max_connections` | gauge | |
//! | `bw_ready` | gauge, 1 ok / 0 failing, set by each `/readyz` | `check` |
//! | `bw_relay_published_total` | counter: events JetStream acknowledged | |
//! | `bw_relay_lag_events` | gauge: events in the log not yet published (capped at 100,000) | |
//! | `bw_relay_lag_seconds` | gauge: age of the oldest unpublished event | |
//! | `bw_relay_leader` | gauge, 1 while this process is the active relay | |
//! | `bw_projection_checkpoint` | gauge: global position of the last applied event | `projection` |
//! | `bw_projection_applied_total` | counter: events applied | `projection` |
//! | `bw_projection_lag_events` | gauge: events of its types in the log beyond its checkpoint (capped at 100,000) | `projection` |
//! | `bw_projection_failures_total` | counter: batches that failed | `projection` |
//! | `bw_projection_apply_seconds` | histogram: time to apply and commit one batch | `projection` |
//! | `bw_projection_state` | gauge, 1 for the current state | `projection`, `state` |
//! | `guardrail_failures_total` | counter: submissions a judge could not handle (tried again later) | |
//! | `guardrail_backlog` | gauge: submissions waiting for a verdict, as last measured by this process | |
//! | `guardrail_refused_total` | counter: agents' submissions refused with 429 at the backlog's bound | |
//! | `process_*` | resident/virtual memory, CPU seconds, open/max fds, start time | |

use std::{fs, sync::Arc};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::Histogram,
    },
    registry::Registry,
};
use sqlx::PgPool;

/// Bucket bounds of `http_request_duration_seconds`, in seconds.
pub const HTTP_DURATION_BUCKETS: [f64; 10] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Labels of `http_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

/// Labels of `http_request_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

/// Labels of `bw_ready`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub check: String,
}

/// Labels of the per-projection metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabels {
    pub projection: String,
}

/// Labels of `bw_projection_state`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionStateLabels {
    pub projection: String,
    pub state: String,
}

/// The relay's metrics.
#[derive(Debug, Clone, Default)]
pub struct RelayMetrics {
    pub published: Counter,
    pub lag_events: Gauge,
    pub lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub leader: Gauge,
}

/// The projectors' metrics.
#[derive(Debug, Clone)]
pub struct ProjectionMetrics {
    pub checkpoint: Family<ProjectionLabels, Gauge>,
    pub lag: Family<ProjectionLabels, Gauge>,
    pub applied: Family<ProjectionLabels, Counter>,
    pub failures: Family<ProjectionLabels, Counter>,
    pub apply_seconds: Family<ProjectionLabels, Histogram>,
    pub state: Family<ProjectionStateLabels, Gauge>,
}

impl ProjectionMetrics {
    /// Marks `projection` as being in `state` (and in no other).
    pub fn set_state(&self, projection: &str, state: &str) {
        for s in ["running", "failed", "rebuilding"] {
            self.state
                .get_or_create(&ProjectionStateLabels {
                    projection: projection.to_owned(),
                    state: s.to_owned(),
                })
                .set(i64::from(s == state));
        }
    }
}

/// Labels of the guardrail's decision metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `approved`, `flagged`, `rejected`.
    pub decision: String,
}

/// Labels of `guardrail_decisions_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LayerLabels {
    /// Which layer settled it: `a` (a pattern rejected), `b` (the classifier's score), `none` (no
    /// classifier verdict: an admin decides).
    pub layer: String,
    pub decision: String,
}

/// Labels of `guardrail_cache_lookups_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` or `miss`.
    pub result: String,
}

/// Labels of `guardrail_llm_calls_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LlmCallLabels {
    /// `answered`, `failed` (after its retries) or `over_budget` (not sent).
    pub outcome: String,
}

/// The guardrail's metrics.
#[derive(Debug, Clone)]
pub struct GuardrailMetrics {
    pub duration: Family<DecisionLabels, Histogram>,
    pub decisions: Family<LayerLabels, Counter>,
    pub cache: Family<CacheLabels, Counter>,
    /// LLM judge calls by outcome.
    pub llm_calls: Family<LlmCallLabels, Counter>,
    /// Cents of the LLM budget this process has taken (the day's total is in `model_spend`).
    pub llm_spend_cents: Counter,
    /// Vision model calls on evidence by outcome (also `no_image`: nothing it reads, not sent).
    pub vision_calls: Family<LlmCallLabels, Counter>,
    /// Submissions a judge could not handle (each is tried again later).
    pub failures: Counter,
    /// Submissions waiting for a verdict, as last measured by this process.
    pub backlog: Gauge,
    /// Agents' submissions refused with 429 because the backlog was at its bound.
    pub refused: Counter,
}

/// The HTTP server's metrics.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram>,
    pub in_flight: Gauge,
    pub active_connections: Gauge,
}

/// Every metric of one process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HTTP server metrics, updated by the gateway's middleware and listener.
    pub http: HttpMetrics,
    /// Readiness of each dependency, updated on every `/readyz`.
    pub ready: Family<CheckLabels, Gauge>,
    /// The relay's metrics (zero in processes that do not relay).
    pub relay: RelayMetrics,
    /// The projectors' metrics (empty in processes that do not project).
    pub projections: ProjectionMetrics,
    /// The guardrail worker's metrics (empty elsewhere).
    pub guardrail: GuardrailMetrics,
}

impl Metrics {
    /// A registry with the HTTP, readiness and process metrics, and the pool gauges when a pool is given.
    pub fn new(pool: Option<PgPool>) -> Arc<Self> {
        let mut registry = Registry::default();
        let http = HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(HTTP_DURATION_BUCKETS.iter().copied())
            }),
            in_flight: Gauge::default(),
            active_connections: Gauge::default(),
        };
        // prometheus-client appends `_total` to counter names when encoding.
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            http.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request received to response headers sent",
            http.duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being handled now",
            http.in_flight.clone(),
        );
        registry.register(
            "http_active_connections",
            "Open client connections (TCP)",
            http.active_connections.clone(),
        );
        let ready = Family::<CheckLabels, Gauge>::default();
        registry.register(
            "bw_ready",
            "1 when the named dependency passed its last readiness check, else 0",
            ready.clone(),
        );
        let relay = RelayMetrics::default();
        registry.register(
            "bw_relay_published",
            "Events JetStream acknowledged from the relay",
            relay.published.clone(),
        );
        registry.register(
            "bw_relay_lag_events",
            "Events in the log not yet published (capped at 100000)",
            relay.lag_events.clone(),
        );
        registry.register(
            "bw_relay_lag_seconds",
            "Age of the oldest unpublished event",
            relay.lag_seconds.clone(),
        );
        registry.register(
            "bw_relay_leader",
            "1 while this process is the active relay",
            relay.leader.clone(),
        );
        let projections = ProjectionMetrics {
            checkpoint: Family::default(),
            lag: Family::default(),
            applied: Family::default(),
            failures: Family::default(),
            apply_seconds: Family::new_with_constructor(|| {
                Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0])
            }),
            state: Family::default(),
        };
        registry.register(
            "bw_projection_checkpoint",
            "Global position of the last applied event",
            projections.checkpoint.clone(),
        );
        registry.register(
            "bw_projection_lag_events",
            "Events of the projection's types in the log beyond its checkpoint (capped at 100000)",
            projections.lag.clone(),
        );
        registry.register(
            "bw_projection_applied",
            "Events applied to the read model",
            projections.applied.clone(),
        );
        registry.register(
            "bw_projection_failures",
            "Batches a projection could not apply",
            projections.failures.clone(),
        );
        registry.register(
            "bw_projection_apply_seconds",
            "Time to apply and commit one batch",
            projections.apply_seconds.clone(),
        );
        registry.register(
            "bw_projection_state",
            "1 for the projection's current state",
            projections.state.clone(),
        );
        let guardrail = GuardrailMetrics {
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0])
            }),
            decisions: Family::default(),
            cache: Family::default(),
            llm_calls: Family::default(),
            llm_spend_cents: Counter::default(),
            vision_calls: Family::default(),
            failures: Counter::default(),
            backlog: Gauge::default(),
            refused: Counter::default(),
        };
        registry.register(
            "guardrail_failures",
            "Submissions a judge could not handle (tried again later)",
            guardrail.failures.clone(),
        );
        registry.register(
            "guardrail_backlog",
            "Submissions waiting for a verdict (queued or not yet queued), as last measured here",
            guardrail.backlog.clone(),
        );
        registry.register(
            "guardrail_refused",
            "Agents' submissions refused with 429 while the backlog was at its bound",
            guardrail.refused.clone(),
        );
        registry.register(
            "guardrail_evaluation_duration_seconds",
            "Time to judge one submission (Layer A, cache, Layer B, tier)",
            guardrail.duration.clone(),
        );
        registry.register(
            "guardrail_decisions",
            "Verdicts recorded, by the layer that settled them and the decision",
            guardrail.decisions.clone(),
        );
        registry.register(
            "guardrail_cache_lookups",
            "Layer B cache lookups by result",
            guardrail.cache.clone(),
        );
        registry.register(
            "guardrail_llm_calls",
            "LLM judge calls by outcome",
            guardrail.llm_calls.clone(),
        );
        registry.register(
            "evidence_vision_calls",
            "Vision model calls on evidence by outcome",
            guardrail.vision_calls.clone(),
        );
        registry.register(
            "guardrail_llm_spend_cents",
            "Cents of the daily LLM budget taken by this process",
            guardrail.llm_spend_cents.clone(),
        );
        if let Some(pool) = pool {
            registry.register_collector(Box::new(PoolCollector { pool }));
        }
        registry.register_collector(Box::new(ProcessCollector));
        Arc::new(Self {
            registry,
            http,
            ready,
            relay,
            projections,
            guardrail,
        })
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Reads the pool's state at scrape time.
#[derive(Debug)]
struct PoolCollector {
    pool: PgPool,
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let size = i64::from(self.pool.size());
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX);
        let max = i64::from(self.pool.options().get_max_connections());
        let mut family = encoder.encode_descriptor(
            "db_pool_connections",
            "PostgreSQL pool connections by state",
            None,
            MetricType::Gauge,
        )?;
        for (state, value) in [("idle", idle), ("in_use", (size - idle).max(0))] {
            ConstGauge::new(value).encode(family.encode_family(&[("state", state)])?)?;
        }
        gauge(
            &mut encoder,
            "db_pool_max_connections",
            "Configured pool size",
            max,
        )
    }
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// The standard `process_*` metrics, read from `/proc/self` at scrape time (Linux only; elsewhere
/// nothing is reported).
#[derive(Debug)]
struct ProcessCollector;

/// Linux reports CPU times in clock ticks of `USER_HZ`, which the kernel fixes at 100 for userspace on
/// every mainstream architecture (reading `sysconf(_SC_CLK_TCK)` would need `unsafe`).
const USER_HZ: f64 = 100.0;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(sample) = ProcessSample::read() else {
            return Ok(());
        };
        gauge(
            &mut encoder,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            sample.rss_bytes,
        )?;
        gauge(
            &mut encoder,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            sample.vsize_bytes,
        )?;
        let cpu = ConstCounter::new(sample.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        gauge(
            &mut encoder,
            "process_open_fds",
            "Number of open file descriptors",
            sample.open_fds,
        )?;
        gauge(
            &mut encoder,
            "process_max_fds",
            "Maximum number of open file descriptors",
            sample.max_fds,
        )?;
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            sample.start_time_seconds,
        )
    }
}

/// One reading of `/proc/self`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSample {
    pub rss_bytes: i64,
    pub vsize_bytes: i64,
    pub cpu_seconds: f64,
    pub open_fds: i64,
    pub max_fds: i64,
    pub start_time_seconds: i64,
}

impl ProcessSample {
    /// Reads the current process, or `None` where `/proc` is not available.
    pub fn read() -> Option<Self> {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let stat = fs::read_to_string("/proc/self/stat").ok()?;
        let limits = fs::read_to_string("/proc/self/limits").ok()?;
        let boot = fs::read_to_string("/proc/stat").ok()?;
        let open_fds = fs::read_dir("/proc/self/fd").ok()?.count();
        let (utime, stime, start_ticks) = parse_stat(&stat)?;
        let btime: i64 = boot
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())?;
        Some(Self {
            rss_bytes: status_kib(&status, "VmRSS:")? * 1024,
            vsize_bytes: status_kib(&status, "VmSize:")? * 1024,
            cpu_seconds: (utime + stime) as f64 / USER_HZ,
            open_fds: i64::try_from(open_fds).unwrap_or(i64::MAX),
            max_fds: limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1),
            start_time_seconds: btime + (start_ticks as f64 / USER_HZ) as i64,
        })
    }
}

fn status_kib(status: &str, key: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `(utime, stime, starttime)` in ticks from `/proc/self/stat`; the command name may contain spaces
/// and parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(u64, u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the man page, so field N is at index N - 3.
    Some((
        fields.get(14 - 3)?.parse().ok()?,
        fields.get(15 - 3)?.parse().ok()?,
        fields.get(22 - 3)?.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 9000 1000 200";
        assert_eq!(parse_stat(stat), Some((250, 50, 9000)));
    }

    #[test]
    fn process_metrics_are_rendered() {
        let metrics = Metrics::new(None);
        metrics
            .http
            .requests
            .get_or_create(&RequestLabels {
                method: "GET".into(),
                route: "/healthz".into(),
                status: 200,
            })
            .inc();
        let text = metrics.render().expect("renders");
        assert!(
            text.contains(
                "http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        assert!(text.contains("process_start_time_seconds "), "{text}");
    }
}
