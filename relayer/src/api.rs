//! The HTTP surface: `app(state)` merges each module's router under the shared limits;
//! errors are JSON `{error, detail}` naming the offending field (`smartmesh-http`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy::{
    primitives::{Address, U256},
    providers::DynProvider,
};
use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde::{Deserialize, Serialize};
use smartmesh_chain::{Database, TxSender};
pub(crate) use smartmesh_http::ErrorBody;
use smartmesh_http::with_limits;
pub use smartmesh_http::{ApiError, ApiLimits};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::{AllowList, RateSource, estimate::Estimator};

/// How the relayer prices and screens requests.
#[derive(Debug, Clone)]
pub struct RelayPolicy {
    /// Where the SMT/ETH rate comes from.
    pub rate: RateSource,
    /// The relayer's margin over its gas cost, in basis points (1,000 = 10%).
    pub markup_bps: u32,
    /// How long a quote may be relayed; it is deleted after.
    pub quote_ttl: Duration,
    /// Quotes kept per user (anyone may ask in anyone's name): a new one beyond this
    /// replaces the user's oldest.
    pub max_quotes_per_sender: i64,
    /// The least validity a request's deadline must have left when it is relayed.
    pub min_validity: Duration,
    /// Requests of one user that may be in flight at once.
    pub max_in_flight_per_sender: i64,
    /// Below this ETH balance a key takes at most `low_balance_queue_cap` waiting requests.
    pub low_balance: U256,
    /// The requests a key short of ETH may still have waiting.
    pub low_balance_queue_cap: i64,
    /// Relay requests checked against the node at once (its calls and the simulation); the
    /// rest wait their turn. A node answering many simulations at once can answer each far
    /// more slowly (the relay bench shows it on anvil behind Postgres: `RELAY_CHECKS`).
    pub max_concurrent_checks: usize,
}

impl Default for RelayPolicy {
    fn default() -> Self {
        Self {
            rate: RateSource::Fixed(crate::pricing::ONE * U256::from(1_000)),
            markup_bps: 1_000,
            quote_ttl: Duration::from_secs(120),
            max_quotes_per_sender: 16,
            min_validity: Duration::from_secs(60),
            max_in_flight_per_sender: 8,
            low_balance: U256::from(100_000_000_000_000_000u64),
            low_balance_queue_cap: 16,
            max_concurrent_checks: 64,
        }
    }
}

/// What this relayer counted since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Quotes given.
    pub quotes: AtomicU64,
    /// Requests accepted and queued.
    pub accepted: AtomicU64,
    /// Requests refused.
    pub refused: AtomicU64,
    /// Repeats answered with the first answer.
    pub repeats: AtomicU64,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything the handlers share.
pub(crate) struct Core {
    pub(crate) db: Database,
    pub(crate) provider: DynProvider,
    pub(crate) sender: TxSender,
    pub(crate) chain_id: u64,
    pub(crate) token: Address,
    pub(crate) agent: Address,
    /// The relayer's keys: the `agent` a request may name.
    pub(crate) keys: Vec<Address>,
    pub(crate) estimator: Estimator,
    pub(crate) allow: AllowList,
    pub(crate) policy: RelayPolicy,
    pub(crate) metrics: Metrics,
    pub(crate) sender_wake: Notify,
    /// Turns for requests to question the node (`max_concurrent_checks`).
    pub(crate) node_turns: tokio::sync::Semaphore,
    /// One user's requests are checked one at a time: a lock per user, striped.
    pub(crate) user_turns: Vec<tokio::sync::Mutex<()>>,
    /// Whose turn it is among equally loaded keys.
    pub(crate) next_key: std::sync::atomic::AtomicUsize,
    /// The chain's latest timestamp and when it was read: deadlines are checked against it
    /// without asking the node for every request.
    pub(crate) chain_clock: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
}

/// Locks users' requests are striped over: users hashing to the same stripe wait for each
/// other's checks, nobody else's.
pub(crate) const USER_STRIPES: usize = 4_096;

impl Core {
    /// The lock `from`'s requests take while they are checked and queued.
    pub(crate) fn user_turn(&self, from: Address) -> &tokio::sync::Mutex<()> {
        let stripe =
            usize::from(u16::from_be_bytes([from.0[18], from.0[19]])) % self.user_turns.len();
        &self.user_turns[stripe]
    }

    /// The latest block's timestamp, read at most once a second.
    pub(crate) async fn chain_now(&self) -> Result<u64, crate::RelayerError> {
        let cached = *self.chain_clock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((read, timestamp)) = cached
            && read.elapsed() < Duration::from_secs(1)
        {
            return Ok(timestamp + read.elapsed().as_secs());
        }
        let timestamp =
            alloy::providers::Provider::get_block_by_number(&self.provider, Default::default())
                .await
                .map_err(|e| crate::RelayerError::Rpc(e.to_string()))?
                .map_or(0, |block| block.header.timestamp);
        *self.chain_clock.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), timestamp));
        Ok(timestamp)
    }
}

/// The handlers' state.
#[derive(Clone)]
pub struct AppState {
    pub(crate) core: Arc<Core>,
    /// The limits of the HTTP API.
    pub limits: ApiLimits,
}

impl AppState {
    /// What this replica counted.
    pub fn metrics(&self) -> &Metrics {
        &self.core.metrics
    }
}

/// The relayer's HTTP API.
pub fn app(state: AppState) -> Router {
    let limits = state.limits;
    let router = Router::new()
        .merge(crate::quote::router())
        .merge(crate::relay::router())
        .merge(crate::earnings::router())
        .merge(crate::openapi::router())
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics));
    with_limits(router, limits).with_state(state)
}

/// One relayer key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyHealth {
    /// The key's address: the `agent` a request names.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub address: Address,
    /// Its ETH balance, in wei.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub balance: U256,
    /// Its transactions not final yet.
    pub unfinished: i64,
    /// Whether it takes new requests.
    pub accepting: bool,
}

/// The relayer's health.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok`, or `paused` when no key holds enough ETH to send.
    pub status: String,
    /// The chain.
    pub chain_id: u64,
    /// The SignedAgent requests are sent through.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub signed_agent: Address,
    /// The fee token.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub fee_token: Address,
    /// Each key's state.
    pub keys: Vec<KeyHealth>,
}

/// The relayer's keys and whether it sends.
#[utoipa::path(get, path = "/v1/health", responses(
    (status = 200, body = Health),
    (status = 503, description = "the node does not answer", body = ErrorBody),
))]
pub(crate) async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let core = &state.core;
    let keys: Vec<KeyHealth> = core
        .sender
        .health()
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?
        .into_iter()
        .map(|key| KeyHealth {
            address: key.address,
            balance: key.balance,
            unfinished: key.unfinished,
            accepting: key.accepting,
        })
        .collect();
    Ok(Json(Health {
        status: if keys.iter().any(|key| key.accepting) {
            "ok"
        } else {
            "paused"
        }
        .into(),
        chain_id: core.chain_id,
        signed_agent: core.agent,
        fee_token: core.token,
        keys,
    }))
}

/// Prometheus text: this replica's counters.
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain"),
))]
pub(crate) async fn metrics(State(state): State<AppState>) -> String {
    let m = &state.core.metrics;
    let mut text = String::new();
    for (name, help, value) in [
        ("quotes_total", "Quotes given.", &m.quotes),
        (
            "relays_accepted_total",
            "Requests accepted and queued.",
            &m.accepted,
        ),
        ("relays_refused_total", "Requests refused.", &m.refused),
        (
            "relays_repeated_total",
            "Repeats answered with the first answer.",
            &m.repeats,
        ),
    ] {
        text.push_str(&format!(
            "# HELP smartmesh_relayer_{name} {help}\n# TYPE smartmesh_relayer_{name} counter\nsmartmesh_relayer_{name} {}\n",
            value.load(Ordering::Relaxed)
        ));
    }
    text
}
