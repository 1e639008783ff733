//! `POST /v1/quote`: the fee in SMT a request must carry, for a call the user has not signed
//! yet. `fee = estimated gas × max fee per gas × SMT per ETH × (1 + markup)`, rounded up;
//! the estimate covers the forwarded call, the agent's own measured overhead and the fee
//! payment. The quote is stored: a relay must name it before it expires.

use std::{
    sync::atomic::Ordering,
    time::{SystemTime, UNIX_EPOCH},
};

use alloy::primitives::{Address, U256, keccak256};
use axum::{
    Json, Router,
    extract::{State, rejection::JsonRejection},
    http::StatusCode,
    routing::post,
};
use smartmesh_protocol::{
    AgentRequest,
    api::relayer::{Quote, QuoteRequest},
};

use crate::{
    AppState,
    api::{ApiError, Core, ErrorBody, Metrics},
    estimate::request_gas,
    pricing,
};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/quote", post(quote))
}

/// Prices a call.
#[utoipa::path(post, path = "/v1/quote", request_body = QuoteRequest, responses(
    (status = 200, body = Quote),
    (status = 400, description = "the body is not JSON", body = ErrorBody),
    (status = 422, description = "a call not relayed, one that would revert, or a user that cannot pay a fee", body = ErrorBody),
    (status = 503, description = "no SMT/ETH rate fresh enough, or no key with ETH to send", body = ErrorBody),
))]
pub(crate) async fn quote(
    State(state): State<AppState>,
    request: Result<Json<QuoteRequest>, JsonRejection>,
) -> Result<Json<Quote>, ApiError> {
    let Json(request) = request.map_err(ApiError::from_json)?;
    let core = &state.core;
    core.allow
        .check(request.target, &request.data)
        .map_err(|(field, reason)| ApiError::invalid(field, reason))?;
    let rate = core.policy.rate.rate().map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    })?;
    let agent = pick_key(core).await?;
    let inner = core
        .estimator
        .inner_gas(request.from, request.target, &request.data)
        .await
        .map_err(ApiError::node)?
        .map_err(|reason| ApiError::invalid("data", format!("the call would revert: {reason}")))?;
    let fee_payment = core
        .estimator
        .fee_payment_gas(request.from, agent)
        .await
        .map_err(ApiError::node)?
        .map_err(|reason| {
            ApiError::invalid("from", format!("cannot pay a fee in SMT: {reason}"))
        })?;
    let gas = request_gas(inner);
    let template = AgentRequest {
        from: request.from,
        agent,
        target: request.target,
        data: request.data.clone(),
        gas: U256::from(gas),
        feeToken: core.token,
        ..Default::default()
    };
    let estimated_gas = core.estimator.total(&template, gas, fee_payment);
    // Priced at exactly what the sender will offer for it.
    let (max_fee_per_gas, _) = core.sender.current_fees().await.map_err(ApiError::node)?;
    let fee = pricing::fee(estimated_gas, max_fee_per_gas, rate, core.policy.markup_bps)
        .map_err(|e| ApiError::invalid("data", e.to_string()))?;
    let expires_at = now_secs() + core.policy.quote_ttl.as_secs();
    let mut tx = core.db.pool().begin().await.map_err(ApiError::storage)?;
    let quote_id: i64 = sqlx::query_scalar(
        "INSERT INTO relay_quotes (from_address, target, data_hash, agent, gas, estimated_gas, fee, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(request.from.to_string())
    .bind(request.target.to_string())
    .bind(keccak256(&request.data).to_vec())
    .bind(agent.to_string())
    .bind(smartmesh_chain::sql_int("gas", gas).map_err(ApiError::internal)?)
    .bind(smartmesh_chain::sql_int("estimated gas", estimated_gas).map_err(ApiError::internal)?)
    .bind(fee.to_string())
    .bind(smartmesh_chain::sql_int("expiresAt", expires_at).map_err(ApiError::internal)?)
    .fetch_one(&mut *tx)
    .await
    .map_err(ApiError::storage)?;
    // Anyone may ask quotes in anyone's name: each user keeps only its latest few.
    sqlx::query(
        "DELETE FROM relay_quotes WHERE from_address = $1 AND id NOT IN \
         (SELECT id FROM relay_quotes WHERE from_address = $1 ORDER BY id DESC LIMIT $2)",
    )
    .bind(request.from.to_string())
    .bind(core.policy.max_quotes_per_sender)
    .execute(&mut *tx)
    .await
    .map_err(ApiError::storage)?;
    tx.commit().await.map_err(ApiError::storage)?;
    Metrics::add(&core.metrics.quotes);
    Ok(Json(Quote {
        quote_id,
        from: request.from,
        target: request.target,
        agent,
        signed_agent: core.agent,
        chain_id: core.chain_id,
        fee_token: core.token,
        gas: U256::from(gas),
        fee,
        estimated_gas,
        max_fee_per_gas: U256::from(max_fee_per_gas),
        smt_per_eth: pricing::format_rate(rate),
        markup_bps: core.policy.markup_bps,
        expires_at,
    }))
}

/// The least loaded key that may send, taking turns among equals; a 503 when every key is
/// short of ETH.
async fn pick_key(core: &Core) -> Result<Address, ApiError> {
    let keys = core.sender.health().await.map_err(ApiError::node)?;
    let turn = core.next_key.fetch_add(1, Ordering::Relaxed);
    let count = keys.len().max(1);
    (0..keys.len())
        .map(|offset| &keys[(turn + offset) % count])
        .filter(|key| key.accepting)
        .min_by_key(|key| key.unfinished)
        .map(|key| key.address)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "paused",
                "relaying is paused: every relayer key is short of ETH",
            )
        })
}

/// Deletes the quotes that expired: nothing can be relayed against them any more (a relay
/// accepted before answers its repeats without its quote). Returns how many.
pub(crate) async fn forget_expired(core: &Core) -> Result<u64, crate::RelayerError> {
    Ok(
        sqlx::query("DELETE FROM relay_quotes WHERE expires_at < $1")
            .bind(smartmesh_chain::sql_int("now", now_secs())?)
            .execute(core.db.pool())
            .await?
            .rows_affected(),
    )
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
