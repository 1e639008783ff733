//! The HTTP surface: `app(state)` merges each module's router under the limits every endpoint
//! shares (body size, per-client rate, request timeout); errors are JSON `{error, detail}`
//! naming the offending field.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use axum::{
    Json, Router,
    error_handling::HandleErrorLayer,
    extract::{
        DefaultBodyLimit, State,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use smartmesh_chain::Database;
use tokio::sync::Notify;
use tower::ServiceBuilder;
use utoipa::ToSchema;

use crate::{Metrics, ratelimit::RateLimiter};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The storage.
    pub db: Database,
    /// The chain this watcher guards.
    pub chain_id: u64,
    /// The TokenNetwork it guards.
    pub token_network: Address,
    /// The key it signs acknowledgments and disputes with: the `watcher` phones name in their
    /// Watches.
    pub watcher: Arc<PrivateKeySigner>,
    /// Counters for `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// Wakes the dispute engine when a receipt for a closed channel arrives.
    pub wake: Arc<Notify>,
    /// The limits of the HTTP API.
    pub limits: ApiLimits,
    /// Whether this replica leads (indexes and sends); for `GET /v1/health`.
    pub leading: Arc<AtomicBool>,
}

impl AppState {
    /// The state of a watcher guarding `token_network` on `chain_id`, with default limits.
    pub fn new(
        db: Database,
        chain_id: u64,
        token_network: Address,
        watcher: PrivateKeySigner,
    ) -> Self {
        Self {
            db,
            chain_id,
            token_network,
            watcher: Arc::new(watcher),
            metrics: Arc::default(),
            wake: Arc::default(),
            limits: ApiLimits::default(),
            leading: Arc::default(),
        }
    }
}

/// Limits of the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Requests a client (by IP address) may make per second, on average.
    pub rate_per_second: u32,
    /// Requests a client may make at once after a quiet spell.
    pub burst: u32,
    /// The longest a request may take before it is answered 503.
    pub timeout: Duration,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            rate_per_second: 20,
            burst: 40,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The largest request body: a full batch of text proofs with their Watches.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The watcher's HTTP API.
pub fn app(state: AppState) -> Router {
    let limiter = RateLimiter::new(state.limits.rate_per_second, state.limits.burst);
    let timeout = state.limits.timeout;
    Router::new()
        .merge(crate::receipts::router())
        .merge(crate::channels::router())
        .merge(crate::metrics::router())
        .merge(crate::openapi::router())
        .route("/v1/health", get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "timeout",
                        "the request took too long; retry it (re-sending a batch is harmless)",
                    )
                }))
                .timeout(timeout),
        )
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            crate::ratelimit::limit,
        ))
        .with_state(state)
}

/// Whether the watcher can serve: its database answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Health {
    /// `ok`.
    status: &'static str,
    /// The chain guarded.
    chain_id: u64,
    /// The TokenNetwork guarded.
    #[schema(value_type = String)]
    token_network: Address,
    /// The watcher's address, to name in Watches.
    #[schema(value_type = String)]
    watcher: Address,
    /// The last block the indexer committed, if it has started.
    indexed_block: Option<i64>,
    /// Whether this replica leads: indexes the chain and sends transactions. Every replica
    /// serves the API and works disputes.
    leader: bool,
}

/// The watcher's health and identity.
#[utoipa::path(get, path = "/v1/health", responses(
    (status = 200, body = Health),
    (status = 503, description = "the database does not answer", body = ErrorBody),
))]
pub(crate) async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let indexed_block: Option<i64> =
        sqlx::query_scalar("SELECT block_number FROM follower_cursor WHERE follower = $1")
            .bind(crate::INDEXER_NAME)
            .fetch_optional(state.db.pool())
            .await
            .map_err(|error| {
                tracing::error!(target: "smartmesh::api", %error, "health: database failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database does not answer",
                )
            })?;
    Ok(Json(Health {
        status: "ok",
        chain_id: state.chain_id,
        token_network: state.token_network,
        watcher: state.watcher.address(),
        indexed_block,
        leader: state.leading.load(Ordering::Relaxed),
    }))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /v1/openapi.json",
    )
}

/// An HTTP error with a JSON body `{error, detail}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// A stable code: `malformed_request`, `invalid_field`, `too_large`, `not_found`,
    /// `rate_limited`, `timeout`, `unavailable` or `internal`.
    error: &'static str,
    /// What was wrong, starting with the offending field where there is one.
    detail: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            error,
            detail: detail.into(),
        }
    }

    /// A field's value is not acceptable.
    pub fn invalid(field: &str, detail: String) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {detail}"),
        )
    }

    /// The request is larger than allowed.
    pub fn too_large(field: &str, detail: String) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("{field}: {detail}"),
        )
    }

    /// Nothing is known under the given key.
    pub fn not_found(field: &str, detail: String) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{field}: {detail}"),
        )
    }

    /// The body is not the JSON the endpoint takes; serde's message names the field.
    pub fn from_json(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "malformed_request"
        };
        Self::new(status, error, rejection.body_text())
    }

    /// The query string does not parse; serde's message names the parameter.
    pub fn from_query(rejection: QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            rejection.body_text(),
        )
    }

    /// A path segment does not parse.
    pub fn from_path(field: &str, rejection: PathRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            format!("{field}: {}", rejection.body_text()),
        )
    }

    /// A failure of the server itself; the detail is logged, not returned.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(target: "smartmesh::api", %error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.error,
                detail: self.detail,
            }),
        )
            .into_response()
    }
}
