//! The HTTP surface: `app(state)` merges each module's router under the limits every endpoint
//! shares (body size, per-client rate, request timeout); errors are JSON `{error, detail}`
//! naming the offending field (`smartmesh-http`).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde::Serialize;
use smartmesh_chain::Database;
pub(crate) use smartmesh_http::ErrorBody;
use smartmesh_http::with_limits;
pub use smartmesh_http::{ApiError, ApiLimits};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::Metrics;

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
            limits: ApiLimits {
                max_body: MAX_BODY_BYTES,
                ..ApiLimits::default()
            },
            leading: Arc::default(),
        }
    }
}

/// The largest request body: a full batch of text proofs with their Watches.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The watcher's HTTP API.
pub fn app(state: AppState) -> Router {
    let limits = state.limits;
    let router = Router::new()
        .merge(crate::receipts::router())
        .merge(crate::channels::router())
        .merge(crate::metrics::router())
        .merge(crate::openapi::router())
        .route("/v1/health", get(health));
    with_limits(router, limits).with_state(state)
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
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    token_network: Address,
    /// The watcher's address, to name in Watches.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    watcher: Address,
    /// The last block the indexer committed, if it has started.
    indexed_block: Option<u64>,
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
    let indexed_block = crate::indexer::indexed_block(state.db.pool())
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
