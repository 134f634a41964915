//! Test support: a fresh database per test, the real NATS, a TCP proxy that can cut a dependency off,
//! and helpers to run the real binary.
#![allow(dead_code)]

pub mod proxy;

use std::time::{SystemTime, UNIX_EPOCH};

use bw_infra::{
    CommonConfig, Secret,
    config::{DatabaseConfig, LogFormat, NatsConfig, TelemetryConfig},
};
use sqlx::{Connection, PgConnection};

/// The maintenance database URL tests create their databases through.
pub fn admin_url() -> String {
    std::env::var("BW_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The NATS the tests use.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn with_database(url: &str, db: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let (prefix, _) = base.rsplit_once('/').expect("database URL has a path");
    format!("{prefix}/{db}")
}

/// Creates an empty database of its own for one test (and, first thing in every test, installs the
/// TLS provider as the binary does) and returns its URL. Databases of earlier runs
/// older than an hour are dropped on the way.
pub async fn fresh_database() -> String {
    betterworld::install_crypto_provider();
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .expect("connect to BW_TEST_DATABASE_URL");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'bw_test_%'")
            .fetch_all(&mut admin)
            .await
            .expect("list test databases");
    for name in stale {
        let created = name
            .split('_')
            .nth(2)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) > 3600 {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    }
    let name = format!("bw_test_{now}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create test database");
    with_database(&admin_url(), &name)
}

/// A configuration pointing at `database_url` and `nats_url`, with short timeouts.
pub fn common_config(database_url: &str, nats_url: &str) -> CommonConfig {
    CommonConfig {
        database: DatabaseConfig {
            url: Secret::new(database_url.to_owned()),
            max_connections: 4,
            connect_timeout: std::time::Duration::from_secs(3),
        },
        nats: NatsConfig {
            url: Secret::new(nats_url.to_owned()),
            connect_timeout: std::time::Duration::from_secs(3),
        },
        telemetry: TelemetryConfig {
            log_filter: "info".to_owned(),
            log_format: LogFormat::Json,
            otlp_endpoint: None,
            service_name: "betterworld-test".to_owned(),
        },
        shutdown_grace: std::time::Duration::from_secs(10),
    }
}

/// The socket address a `scheme://[user@]host:port/...` URL points at.
pub async fn socket_addr_of(url: &str, default_port: u16) -> std::net::SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let target = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    tokio::net::lookup_host(target)
        .await
        .expect("resolve")
        .next()
        .expect("an address")
}

/// Log lines written while a test runs, for assertions on what reached the log.
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// The process-wide capture: installed once as the global subscriber (a thread-scoped one would
    /// miss events from other runtime threads and races with tracing's callsite cache). Tests share
    /// it and pick out their own lines by request id.
    pub fn global() -> Self {
        static GLOBAL: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};
                let capture = LogCapture::default();
                tracing_subscriber::registry()
                    .with(tracing_subscriber::EnvFilter::new("debug"))
                    .with(bw_infra::telemetry::log::LogLayer::new(
                        LogFormat::Json,
                        capture.clone(),
                    ))
                    .init();
                capture
            })
            .clone()
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("log lock").clone()).expect("utf-8 logs")
    }

    /// Captured lines parsed as JSON.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON log line"))
            .collect()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
