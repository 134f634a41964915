//! Logs and traces.
//!
//! Logs go to stdout through [`log::LogLayer`] (JSON lines by default, redacted). Traces are exported
//! over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; otherwise no exporter exists at all.

pub mod log;
pub mod redact;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

use crate::{InfraError, config::TelemetryConfig};

/// Keeps the trace exporter alive; [`TelemetryGuard::shutdown`] flushes it.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether traces are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the trace exporter (blocking; call from a blocking context or at exit).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "trace exporter did not shut down cleanly");
        }
    }
}

/// Installs the process-wide subscriber: filter, redacted log lines on stdout, and the OTLP layer
/// when configured.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, InfraError> {
    init_to(config, false)
}

/// [`init`], with the log lines on stderr when `to_stderr` (for commands whose stdout is data, such
/// as `events export`).
pub fn init_to(config: &TelemetryConfig, to_stderr: bool) -> Result<TelemetryGuard, InfraError> {
    let filter = EnvFilter::try_new(&config.log_filter).map_err(|e| InfraError::Config {
        variable: "BW_LOG",
        message: e.to_string(),
    })?;
    let provider = match &config.otlp_endpoint {
        Some(endpoint) => Some(tracer_provider(endpoint, &config.service_name)?),
        None => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("betterworld")));
    tracing_subscriber::registry()
        .with(filter)
        .with(log::LogLayer::new(
            config.log_format,
            if to_stderr {
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr)
            } else {
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout)
            },
        ))
        .with(otel)
        .try_init()
        .map_err(|e| InfraError::Telemetry(e.to_string()))?;
    Ok(TelemetryGuard { provider })
}

fn tracer_provider(endpoint: &str, service_name: &str) -> Result<SdkTracerProvider, InfraError> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_headers(Default::default())
        .build()
        .map_err(|e| InfraError::Config {
            variable: "OTEL_EXPORTER_OTLP_ENDPOINT",
            message: e.to_string(),
        })?;
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
