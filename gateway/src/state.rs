//! State shared by every handler.

use std::{sync::Arc, time::Duration};

use bw_infra::{health::Readiness, metrics::Metrics};

/// What handlers and middleware share; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The process's metrics registry.
    pub metrics: Arc<Metrics>,
    /// The dependency checks behind `/readyz`.
    pub readiness: Readiness,
    /// Limits applied to every request.
    pub limits: Limits,
}

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted request body, in bytes.
    pub body_bytes: usize,
    /// Longest time a request may take before it is answered with 503.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}
