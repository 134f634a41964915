//! Read-your-writes: `Bw-Min-Position`.
//!
//! A command's response carries `Bw-Position`, the global position of its last event. A query that
//! sends `Bw-Min-Position: <n>` is answered only once the read model it reads has applied
//! everything up to `n`; the gateway waits for that (bounded by `BW_CONSISTENCY_WAIT`) and answers
//! `503 SERVICE_UNAVAILABLE` with `Retry-After` if the read model does not get there in time.

use axum::{extract::FromRequestParts, http::request::Parts};

use bw_projections::runtime::Projection;

use crate::{error::ApiError, state::Platform};

/// The position a query must see, if the client asked for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinPosition(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for MinPosition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("bw-min-position") else {
            return Ok(Self(None));
        };
        value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|p| *p >= 0)
            .map(|p| Self(Some(p)))
            .ok_or_else(|| {
                ApiError::field(
                    "Bw-Min-Position",
                    "must be a non-negative integer (a Bw-Position value)",
                )
            })
    }
}

impl MinPosition {
    /// Waits until `projection` has passed the requested position.
    pub async fn wait(
        self,
        platform: &Platform,
        projection: &dyn Projection,
    ) -> Result<(), ApiError> {
        let Some(position) = self.0 else {
            return Ok(());
        };
        if bw_projections::status::wait_for(
            &platform.pool,
            projection,
            position,
            platform.consistency_wait,
        )
        .await?
        {
            return Ok(());
        }
        let name = projection.name();
        Err(ApiError::Unavailable {
            message: format!(
                "the {name} read model has not reached position {position} yet; retry"
            ),
            details: Some(serde_json::json!({ "projection": name, "minPosition": position })),
        })
    }
}
