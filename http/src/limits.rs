//! The limits every endpoint runs under.

use std::time::Duration;

use axum::{Router, error_handling::HandleErrorLayer, extract::DefaultBodyLimit, http::StatusCode};
use tower::ServiceBuilder;

use crate::{
    ApiError,
    ratelimit::{RateLimiter, WorkLimiter},
};

/// Limits of an HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Requests a client (by IP address) may make per second, on average.
    pub rate_per_second: u32,
    /// Requests a client may make at once after a quiet spell.
    pub burst: u32,
    /// The longest a request may take before it is answered 503.
    pub timeout: Duration,
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// Units of work (signatures to recover: items of a batch) a client may ask for per
    /// second, on average; charged by the handlers that do such work.
    pub work_per_second: u32,
    /// Units of work a client may ask for at once after a quiet spell.
    pub work_burst: u32,
    /// The longest a client may take to send a request's headers; slower connections are
    /// closed (a connection that never finishes its headers would otherwise stay open).
    pub header_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            rate_per_second: 20,
            burst: 40,
            timeout: Duration::from_secs(30),
            max_body: 2 * 1024 * 1024,
            work_per_second: 2_000,
            work_burst: 20_000,
            header_timeout: Duration::from_secs(10),
            max_connections: 1_024,
        }
    }
}

/// `router` under `limits`, with a JSON 404 for unknown paths and a JSON 405 for known paths
/// asked with another method. Requests over the rate get a 429 with `Retry-After`, over the
/// time a 503, over the body size a 413. Handlers find the [`WorkLimiter`] among the
/// request's extensions.
pub fn with_limits<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    limits: ApiLimits,
) -> Router<S> {
    let limiter = RateLimiter::new(limits.rate_per_second, limits.burst);
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::Extension(WorkLimiter::new(
            limits.work_per_second,
            limits.work_burst,
        )))
        .layer(DefaultBodyLimit::max(limits.max_body))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "timeout",
                        "the request took too long; retry it (a retry is harmless)",
                    )
                }))
                .timeout(limits.timeout),
        )
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            crate::ratelimit::limit,
        ))
}

async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this endpoint does not take {method}; see /v1/openapi.json"),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /v1/openapi.json",
    )
}
