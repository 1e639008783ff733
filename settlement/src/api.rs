//! The HTTP surface: `app(state)` merges each module's router under the limits every endpoint
//! shares (body size, per-client rate, request timeout); errors are JSON `{error, detail}`
//! naming the offending field (`smartmesh-http`).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use alloy::{
    primitives::{Address, U256},
    signers::local::PrivateKeySigner,
};
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use smartmesh_chain::{Database, unix_millis};
pub(crate) use smartmesh_http::ErrorBody;
use smartmesh_http::with_limits;
pub use smartmesh_http::{ApiError, ApiLimits};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::{Metrics, Registrations};

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
    /// The transaction sender, for its stuck-time series in `GET /metrics` (none in a bare
    /// API).
    pub sender: Option<smartmesh_chain::TxSender>,
    /// When `GET /v1/health` says the watcher cannot protect anyone.
    pub health: HealthLimits,
    /// Where and for what fee it registers conditions phones hand it.
    pub registrations: Registrations,
}

/// When the watcher is too unwell to protect anyone: `GET /v1/health` answers 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthLimits {
    /// The blocks the indexer stays behind the head on purpose.
    pub confirmations: u64,
    /// How many more blocks behind the indexer may fall.
    pub max_lag_blocks: u64,
}

impl Default for HealthLimits {
    fn default() -> Self {
        Self {
            confirmations: 2,
            max_lag_blocks: 10,
        }
    }
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
            sender: None,
            health: HealthLimits::default(),
            registrations: Registrations::default(),
        }
    }

    /// Takes conditions to register in `terms.registry`.
    pub fn with_registrations(mut self, terms: Registrations) -> Self {
        self.registrations = terms;
        self
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

/// Whether the watcher can protect anyone, and what it sees.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok`, or `unavailable` when it cannot protect anyone (see `problems`).
    pub status: String,
    /// The chain guarded.
    pub chain_id: u64,
    /// The TokenNetwork guarded.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token_network: Address,
    /// The watcher's address, to name in Watches and as the `agent` of registration requests.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub watcher: Address,
    /// The least fee, in SMT wei, a condition's registration request must pay the watcher.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub registration_fee: U256,
    /// The chain's latest block as this replica last read it.
    pub chain_head: Option<u64>,
    /// The last block the indexer committed, if it has started.
    pub indexed_block: Option<u64>,
    /// Blocks between the two.
    pub lag_blocks: Option<u64>,
    /// The latest failed call to the node, when it is more recent than the latest success.
    pub last_rpc_error: Option<String>,
    /// Whether the database took a write just now.
    pub storage_writable: bool,
    /// Whether this replica leads: indexes the chain and sends transactions. Every replica
    /// serves the API and works disputes.
    pub leader: bool,
    /// What keeps the watcher from protecting anyone; empty when `ok`.
    pub problems: Vec<String>,
    /// `unavailable` when not `ok` (the error body every endpoint answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The problems in one line when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The watcher's health: 503 when it cannot protect anyone (the node unreachable, the
/// indexer fallen behind, the database refusing writes).
#[utoipa::path(get, path = "/v1/health", responses(
    (status = 200, body = Health),
    (status = 503, description = "the watcher cannot protect anyone now; `problems` says why", body = Health),
))]
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    let storage_writable = match storage_probe(&state).await {
        Ok(()) => true,
        Err(error) => {
            Metrics::failed(&state.metrics, smartmesh_chain::Fault::Storage, &error);
            problems.push(format!("database: refuses writes ({error})"));
            false
        }
    };
    let indexed_block = match crate::indexer::indexed_block(state.db.pool()).await {
        Ok(block) => block,
        Err(error) => {
            problems.push(format!(
                "database: cannot read the indexer's cursor ({error})"
            ));
            None
        }
    };
    let rpc = state.metrics.rpc_state();
    let last_rpc_error = rpc
        .last_error
        .filter(|(_, at)| *at > rpc.last_ok)
        .map(|(error, at)| {
            let secs = (unix_millis() - at).max(0) / 1_000;
            problems.push(format!("chain: the node fails ({error}), {secs} s ago"));
            error
        });
    let head = state.metrics.chain_head.load(Ordering::Relaxed);
    let chain_head = (head > 0).then_some(head);
    let lag_blocks = chain_head.map(|head| head.saturating_sub(indexed_block.unwrap_or_default()));
    let allowed = state.health.confirmations + state.health.max_lag_blocks;
    if let Some(lag) = lag_blocks
        && lag > allowed
    {
        problems.push(format!(
            "indexer: {lag} blocks behind the chain head {head} (at most {allowed})"
        ));
    }
    let ok = problems.is_empty();
    let body = Health {
        status: if ok { "ok" } else { "unavailable" }.into(),
        chain_id: state.chain_id,
        token_network: state.token_network,
        watcher: state.watcher.address(),
        registration_fee: state.registrations.fee,
        chain_head,
        indexed_block,
        lag_blocks,
        last_rpc_error,
        storage_writable,
        leader: state.leading.load(Ordering::Relaxed),
        error: (!ok).then(|| "unavailable".into()),
        detail: (!ok).then(|| problems.join("; ")),
        problems,
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// A write the database must take for the watcher to store anything.
async fn storage_probe(state: &AppState) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO watcher_health (id, checked_at) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
    )
    .bind(unix_millis())
    .execute(state.db.pool())
    .await?;
    Ok(())
}
