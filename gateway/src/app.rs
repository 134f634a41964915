//! Building and running the HTTP server.

use std::{future::Future, io, net::SocketAddr};

use axum::{Router, extract::DefaultBodyLimit, http::StatusCode, middleware::from_fn_with_state};
use tokio::net::TcpListener;
use tower_http::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer};

use crate::{error::ApiError, listener::CountingListener, middleware, routes, state::AppState};

/// The full public router: the API and the operations endpoints.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The full router with `extra` routes merged in (tests mount probe routes through this, so they
/// run behind exactly the production middleware).
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let api = routes::agents::routes()
        .merge(routes::problems::routes())
        .merge(routes::solutions::routes())
        .merge(routes::heartbeat::routes())
        .merge(routes::verification::routes())
        .merge(routes::humans::routes())
        .merge(routes::admin::routes())
        .merge(routes::review::routes())
        .merge(routes::search::routes())
        .merge(routes::tokens::routes())
        .merge(routes::missions::routes())
        .merge(routes::evidence::routes())
        .merge(routes::peer_reviews::routes())
        .merge(routes::audit::routes());
    with_middleware(
        state,
        routes::ops::routes()
            .merge(api)
            .merge(crate::openapi::routes())
            .merge(extra),
    )
}

/// Only the operations endpoints (`relay`, `project`: no public API).
pub fn ops_router(state: AppState) -> Router {
    with_middleware(state, routes::ops::routes())
}

fn with_middleware(state: AppState, routes: Router<AppState>) -> Router {
    let limits = state.limits;
    routes
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Innermost first: body limit, timeout, panic guard, the guardrail's backpressure, rate limits, then the request context
        // outermost, so the envelope guard and metrics see timeouts, panics and 429s too.
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(from_fn_with_state(
            state.clone(),
            crate::backpressure::guard,
        ))
        .layer(from_fn_with_state(state.clone(), crate::ratelimit::limit))
        .layer(from_fn_with_state(
            state.clone(),
            middleware::request_context,
        ))
        .with_state(state)
}

/// A bound HTTP server, ready to run.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Binds `addr` (port 0 picks a free port) for `router`.
    pub async fn bind(addr: SocketAddr, router: Router, state: AppState) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish and
    /// returns once every connection is closed. The caller bounds how long that may take.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let connections = self.state.metrics.http.active_connections.clone();
        let listener = CountingListener::new(self.listener, connections);
        axum::serve(
            listener,
            self.router
                .into_make_service_with_connect_info::<crate::listener::ClientAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}
