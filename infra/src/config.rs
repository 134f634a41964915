//! Typed configuration shared by every subcommand.
//!
//! Every flag is also an environment variable (`.env.example` documents each one with its default).
//! Values are parsed here, once, into the types the rest of the code uses; nothing downstream reads the
//! environment.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use clap::Args;

/// A value that must never appear in logs, errors or `Debug` output (passwords, keys, URLs with
/// credentials). Read it deliberately with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// Reads the secret; call sites are easy to audit with a search for `expose`.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret<String> {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Parses durations written like `5s`, `250ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 5s or 250ms: {e}"))
}

/// Configuration every role needs: where the dependencies are, how to log, how long to drain.
#[derive(Debug, Clone, Args)]
pub struct CommonConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub nats: NatsConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    /// How long in-flight requests and background tasks may take to drain after SIGTERM/SIGINT.
    /// The process exits at the latest 5 s after this, whatever is still running.
    #[arg(global = true, long, env = "BW_SHUTDOWN_GRACE", default_value = "25s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

/// PostgreSQL settings.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL connection URL (the event store and the read models live here).
    #[arg(
        global = true,
        hide_env_values = true,
        id = "database_url",
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/betterworld"
    )]
    pub url: Secret<String>,
    /// Maximum connections in the pool.
    #[arg(
        global = true,
        id = "db_max_connections",
        long = "db-max-connections",
        env = "BW_DB_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub max_connections: u32,
    /// How long to wait for a connection (at start-up and from the pool) before failing.
    #[arg(global = true, id = "db_connect_timeout", long = "db-connect-timeout", env = "BW_DB_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

/// NATS settings.
#[derive(Debug, Clone, Args)]
pub struct NatsConfig {
    /// NATS server URL (JetStream must be enabled).
    #[arg(
        global = true,
        hide_env_values = true,
        id = "nats_url",
        long = "nats-url",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: Secret<String>,
    /// How long to wait for NATS at start-up before failing.
    #[arg(global = true, id = "nats_connect_timeout", long = "nats-connect-timeout", env = "BW_NATS_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (the default; what log shippers expect).
    Json,
    /// Human-readable lines for a terminal.
    Text,
}

/// Logging and tracing settings.
#[derive(Debug, Clone, Args)]
pub struct TelemetryConfig {
    /// Log filter in `tracing` syntax, e.g. `info` or `info,bw_gateway=debug`.
    #[arg(
        global = true,
        id = "log",
        long = "log",
        env = "BW_LOG",
        default_value = "info,sqlx::postgres::notice=warn"
    )]
    pub log_filter: String,
    /// Log format.
    #[arg(
        global = true,
        id = "log_format",
        long = "log-format",
        env = "BW_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    pub log_format: LogFormat,
    /// OTLP/HTTP endpoint (e.g. `http://127.0.0.1:4318`); traces are exported only when set.
    #[arg(
        global = true,
        id = "otlp_endpoint",
        long = "otlp-endpoint",
        env = "OTEL_EXPORTER_OTLP_ENDPOINT"
    )]
    pub otlp_endpoint: Option<String>,
    /// Service name reported to the trace backend.
    #[arg(
        global = true,
        id = "service_name",
        long = "service-name",
        env = "OTEL_SERVICE_NAME",
        default_value = "betterworld"
    )]
    pub service_name: String,
}

/// Settings of the HTTP listener of a role.
#[derive(Debug, Clone, Args)]
pub struct HttpConfig {
    /// Address the public HTTP API listens on (`serve`, `dev`). Port 0 picks a free port.
    #[arg(
        id = "http_addr",
        long = "http-addr",
        env = "BW_HTTP_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub addr: SocketAddr,
    /// Longest time one request may take before it is answered with 503.
    #[arg(id = "request_timeout", long = "request-timeout", env = "BW_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Largest accepted request body in bytes (uploads have their own limit).
    #[arg(id = "body_limit", long = "body-limit", env = "BW_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// Multiplies every rate limit (per gateway instance; 0 turns limiting off). With N gateways
    /// behind a balancer that does not pin callers, use 1/N.
    #[arg(
        id = "rate_limit_scale",
        long = "rate-limit-scale",
        env = "BW_RATE_LIMIT_SCALE",
        default_value_t = 1.0
    )]
    pub rate_limit_scale: f64,
    /// Take the client address for rate limits from `X-Forwarded-For` (only behind a proxy that sets it).
    #[arg(
        id = "trust_forwarded_for",
        long = "trust-forwarded-for",
        env = "BW_TRUST_FORWARDED_FOR"
    )]
    pub trust_forwarded_for: bool,
}

/// The operations listener (`/healthz`, `/readyz`, `/metrics`) of roles without a public API.
#[derive(Debug, Clone, Args)]
pub struct OpsConfig {
    /// Address of the operations endpoints of `relay` and `project` (default 127.0.0.1:9091 for
    /// `relay`, 127.0.0.1:9092 for `project`, so both run side by side). Port 0 picks a free port.
    #[arg(id = "ops_addr", long = "ops-addr", env = "BW_OPS_ADDR")]
    pub addr: Option<SocketAddr>,
}

impl OpsConfig {
    /// The configured address, or `default_port` on the loopback interface.
    pub fn addr_or(&self, default_port: u16) -> SocketAddr {
        self.addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)))
    }
}

/// Removes the password from a URL so it can be shown in an error message or a log line.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[unparseable URL]".to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{user}:[redacted]@{host}")
            } else if scheme.starts_with("postgres") {
                format!("{user}@{host}")
            } else {
                // A lone userinfo in a NATS URL is a token: the whole thing is secret.
                format!("[redacted]@{host}")
            }
        }
        None => authority.to_owned(),
    };
    let path = path.split('?').next().unwrap_or_default();
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s:?} {s}"), "Secret([redacted]) [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn redact_url_hides_passwords_and_query() {
        assert_eq!(
            redact_url("postgres://bw:s3cret@db:5432/bw?sslmode=require&password=x"),
            "postgres://bw:[redacted]@db:5432/bw"
        );
        assert_eq!(redact_url("postgres://bw@db/bw"), "postgres://bw@db/bw");
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(
            redact_url("nats://tok@host:4222"),
            "nats://[redacted]@host:4222"
        );
        assert_eq!(redact_url("not a url"), "[unparseable URL]");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5").is_err());
    }
}
