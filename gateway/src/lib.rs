//! The HTTP gateway: everything between a socket and the command or query side.
//!
//! # Layout
//!
//! - [`app`]: [`Application`] binds a listener and serves a router until shutdown, draining in-flight
//!   requests; [`router`] assembles routes and middleware.
//! - [`state`]: [`AppState`], what handlers share; [`state::Platform`], the command bus and read
//!   models the API routes use.
//! - [`auth`]: authentication extractors: agents by API key (`AgentAuth`, `MaybeAgent`), humans by
//!   access token (`HumanAuth`, `AdminAuth`, `AuditorAuth`).
//! - [`codes`]: verification codes at the edge: parsing a submitted one, delivering a new one
//!   (issuing and checking them is `bw_commands::codes`).
//! - [`command`]: what command endpoints share: body bytes for the idempotency fingerprint,
//!   `Idempotency-Key`, `Bw-Position` on the response.
//! - [`consistency`]: `Bw-Min-Position`, read-your-writes for queries.
//! - [`error`]: [`ApiError`], the gateway's one error type, and its single mapping to HTTP
//!   (status + the error envelope of `api.md`).
//! - [`envelope`]: the success envelope and the request id of the request being served.
//! - [`extract`]: extractors that answer bad input with the error envelope ([`extract::AppJson`]).
//! - [`middleware`]: request id, request span, access log, metrics, and the guard that puts every
//!   error (including the framework's own 404/405/413/timeouts/panics) into the envelope.
//! - [`heartbeat`]: Ed25519-signed heartbeat instructions and the public key registry.
//! - [`openapi`]: the OpenAPI document and the offline Swagger UI page.
//! - [`schema`]: the envelope types the document describes every response with.
//! - [`backpressure`]: `429` on agents' submissions while the guardrail's backlog is at its bound.
//! - [`ratelimit`]: per-instance GCRA limits per role and per endpoint, `X-RateLimit-*`, `429`.
//! - [`listener`]: a TCP listener that counts open connections.
//! - [`routes`]: the route handlers, one module per area (`ops` for health, readiness, metrics;
//!   `agents`, `verification`, `heartbeat`, `problems`, `solutions`, `humans`, `admin`).

pub mod app;
pub mod auth;
pub mod backpressure;
pub mod codes;
pub mod command;
pub mod consistency;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod heartbeat;
pub mod listener;
pub mod middleware;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod schema;
pub mod state;

pub use app::{Application, ops_router, router, router_with};
pub use error::ApiError;
pub use state::AppState;
