//! `POST /v1/relay`: a user's signed `AgentRequest`, checked from the cheapest check to the
//! dearest (quote, agent, fee, deadline, allow-list, signature, nonce, SMT balance, the
//! user's requests in flight, the relayer's ETH, a simulation against the pending state), then
//! queued through the transaction sender in the same database transaction that records it.
//! A repeat of an accepted `(from, nonce)` gets the first answer. `GET /v1/relay/{id}` follows
//! it to the chain.

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    providers::Provider,
    sol_types::SolStruct,
};
use axum::{
    Json, Router,
    extract::{
        Path, State,
        rejection::{JsonRejection, PathRejection},
    },
    http::StatusCode,
    routing::{get, post},
};
use smartmesh_chain::{ChainError, Prepared, TxRequest, TxStatus, Unmined, unix_millis};
use smartmesh_protocol::{
    AgentRequest, ProtocolError, Signature65, SignedAgent, SmartMeshToken, agent_domain,
    api::relayer::{Accepted, RelayRequest, RelayState, RelayStatus},
    recover,
};
use sqlx::Row;

use crate::{
    AppState,
    api::{ApiError, Core, ErrorBody, Metrics},
    estimate::execute_calldata,
    quote::now_secs,
};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/relay", post(relay))
        .route("/v1/relay/{id}", get(status))
}

/// Relays a signed request.
#[utoipa::path(post, path = "/v1/relay", request_body = RelayRequest, responses(
    (status = 200, description = "accepted (or accepted before: the same answer)", body = Accepted),
    (status = 400, description = "the body is not JSON", body = ErrorBody),
    (status = 409, description = "the nonce is used by another request or on chain", body = ErrorBody),
    (status = 422, description = "a field is refused; the detail names it", body = ErrorBody),
    (status = 429, description = "too many requests of this user in flight", body = ErrorBody),
    (status = 503, description = "relaying is paused: the relayer is short of ETH", body = ErrorBody),
))]
pub(crate) async fn relay(
    State(state): State<AppState>,
    body: Result<Json<RelayRequest>, JsonRejection>,
) -> Result<Json<Accepted>, ApiError> {
    let Json(body) = body.map_err(ApiError::from_json)?;
    let core = &state.core;
    let result = accept(core, body).await;
    Metrics::add(match &result {
        Ok((_, true)) => &core.metrics.repeats,
        Ok(_) => &core.metrics.accepted,
        Err(_) => &core.metrics.refused,
    });
    let (id, _) = result?;
    core.sender_wake.notify_one();
    Ok(Json(Accepted {
        id,
        status: RelayState::Queued,
    }))
}

/// The relay's id, and whether it was a repeat.
async fn accept(core: &Core, body: RelayRequest) -> Result<(i64, bool), ApiError> {
    let request = AgentRequest::from(body.request);
    let domain = agent_domain(core.chain_id, core.agent);
    let digest = request.eip712_signing_hash(&domain);
    let nonce_bytes = request.nonce.to_be_bytes::<32>().to_vec();
    if let Some(id) = repeat(core, request.from, &nonce_bytes, digest).await? {
        return Ok((id, true));
    }

    let quote = sqlx::query(
        "SELECT from_address, target, data_hash, agent, gas, fee, expires_at, estimated_gas FROM relay_quotes WHERE id = $1",
    )
    .bind(body.quote_id)
    .fetch_optional(core.db.pool())
    .await
    .map_err(ApiError::storage)?
    .ok_or_else(|| ApiError::invalid("quoteId", format!("no quote {}", body.quote_id)))?;
    let text = |index: usize| -> Result<String, ApiError> {
        quote.try_get(index).map_err(ApiError::storage)
    };
    let quoted_agent: Address = text(3)?.parse().map_err(ApiError::storage)?;
    let quoted_fee: U256 = text(5)?.parse().map_err(ApiError::storage)?;
    let quoted_gas: i64 = quote.try_get(4).map_err(ApiError::storage)?;
    let expires_at: i64 = quote.try_get(6).map_err(ApiError::storage)?;
    let estimated_gas: i64 = quote.try_get(7).map_err(ApiError::storage)?;
    let data_hash: Vec<u8> = quote.try_get(2).map_err(ApiError::storage)?;
    if text(0)? != request.from.to_string()
        || text(1)? != request.target.to_string()
        || data_hash != keccak256(&request.data).as_slice()
    {
        return Err(ApiError::invalid(
            "quoteId",
            format!("quote {} was made for another call", body.quote_id),
        ));
    }
    if now_secs() > expires_at as u64 {
        return Err(ApiError::invalid(
            "quoteId",
            format!("stale quote: it expired at {expires_at}; ask for a new one"),
        ));
    }
    // An open request (agent 0) could be copied from the mempool by anyone, who would then
    // take its fee and leave this relayer's own transaction to revert at its cost.
    if request.agent == Address::ZERO {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            format!(
                "request.agent: must name this relayer's key {quoted_agent} (the quote's agent): \
                 a request open to any agent can be front-run for its fee"
            ),
        ));
    }
    if !core.keys.contains(&request.agent) {
        return Err(ApiError::invalid(
            "request.agent",
            format!(
                "names {}, not a key of this relayer (quoted {quoted_agent})",
                request.agent
            ),
        ));
    }
    let key = request.agent;
    if request.feeToken != core.token {
        return Err(ApiError::invalid(
            "request.feeToken",
            format!("fees are paid in SMT, {}", core.token),
        ));
    }
    if request.fee < quoted_fee {
        return Err(ApiError::invalid(
            "request.fee",
            format!("{} is below the quoted {quoted_fee}", request.fee),
        ));
    }
    if request.gas != U256::from(quoted_gas) {
        return Err(ApiError::invalid(
            "request.gas",
            format!("must be the quoted {quoted_gas}"),
        ));
    }
    let chain_now = core.chain_now().await.map_err(ApiError::node)?;
    let earliest = now_secs().max(chain_now) + core.policy.min_validity.as_secs();
    if request.deadline < U256::from(earliest) {
        return Err(ApiError::invalid(
            "request.deadline",
            format!(
                "{} leaves less than the {} s a relay needs; sign a later deadline",
                request.deadline,
                core.policy.min_validity.as_secs()
            ),
        ));
    }
    core.allow
        .check(request.target, &request.data)
        .map_err(|(field, reason)| ApiError::invalid(&format!("request.{field}"), reason))?;
    let signature = Signature65::from_slice(&body.signature)
        .map_err(|e| ApiError::invalid("signature", e.to_string()))?;
    match recover(&digest, &signature) {
        Ok(signer) if signer == request.from => {}
        Ok(signer) => {
            return Err(ApiError::invalid(
                "signature",
                format!(
                    "signed by {signer}, not by {} (or for another chain or SignedAgent)",
                    request.from
                ),
            ));
        }
        Err(ProtocolError::HighS) => {
            return Err(ApiError::invalid(
                "signature",
                "has a high s value: use its low-s twin".into(),
            ));
        }
        Err(e) => return Err(ApiError::invalid("signature", e.to_string())),
    }
    // One user's requests are checked one at a time, each against those accepted before it,
    // so that requests arriving together cannot all count the same SMT. Taken before a turn
    // at the node, so that a request waiting for its user holds no turn.
    let _user = core.user_turn(request.from).lock().await;
    // The node's questions, a bounded number of requests at a time (`max_concurrent_checks`).
    let _turn = core.node_turns.acquire().await.map_err(ApiError::storage)?;
    let agent = SignedAgent::new(core.agent, core.provider.clone());
    if agent
        .nonceUsed(request.from, request.nonce)
        .call()
        .await
        .map_err(ApiError::node)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "request.nonce: {} is used or canceled on chain",
                request.nonce
            ),
        ));
    }
    let in_flight = in_flight(core, request.from).await?;
    if in_flight.count >= core.policy.max_in_flight_per_sender {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "request.from: {} requests of {} are in flight; wait for one",
                in_flight.count, request.from
            ),
        )
        .retry_after(2));
    }
    let balance = SmartMeshToken::new(core.token, core.provider.clone())
        .balanceOf(request.from)
        .call()
        .await
        .map_err(ApiError::node)?;
    let needed = in_flight.reserved.checked_add(request.fee);
    if needed.is_none_or(|needed| balance < needed) {
        return Err(ApiError::invalid(
            "request.fee",
            if in_flight.unmined.is_empty() {
                format!(
                    "{} holds {balance} SMT wei, less than the fee",
                    request.from
                )
            } else {
                format!(
                    "{} holds {balance} SMT wei, of which {} is reserved for the fees of its {} \
                     requests not yet mined: less than the fee is left",
                    request.from,
                    in_flight.reserved,
                    in_flight.unmined.len()
                )
            },
        ));
    }
    let prepared = prepare(core, key).await?;
    // The gas the fee was priced for, with a margin: the quote's estimate covers what the
    // agent's up-front gas check demands.
    let gas = estimated_gas as u64;
    let gas_limit = gas + gas / 10;
    let simulated = if in_flight.unmined.is_empty() {
        core.estimator
            .check(key, &request, signature.as_bytes())
            .await
    } else {
        core.estimator
            .check_after(
                &in_flight.unmined,
                key,
                &request,
                signature.as_bytes(),
                gas_limit,
            )
            .await
    };
    simulated.map_err(ApiError::node)?.map_err(|reason| {
        let after = if in_flight.unmined.is_empty() {
            String::new()
        } else {
            format!(
                " after its {} requests not yet mined",
                in_flight.unmined.len()
            )
        };
        ApiError::invalid("request", format!("the call would revert{after}: {reason}"))
    })?;

    let mut tx = core.db.pool().begin().await.map_err(ApiError::storage)?;
    let tx_id = core
        .sender
        .submit_in(
            &mut tx,
            &TxRequest {
                to: core.agent,
                input: execute_calldata(&request, signature.as_bytes()).into(),
                value: U256::ZERO,
                gas_limit,
            },
            &prepared,
        )
        .await
        .map_err(ApiError::storage)?;
    let inserted = sqlx::query_scalar::<_, i64>(
        "INSERT INTO relays (from_address, nonce, request_hash, agent, target, selector, fee, quote_id, tx_id, accepted_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(request.from.to_string())
    .bind(nonce_bytes.clone())
    .bind(digest.to_vec())
    .bind(key.to_string())
    .bind(request.target.to_string())
    .bind(request.data[..4].to_vec())
    .bind(request.fee.to_string())
    .bind(body.quote_id)
    .bind(tx_id)
    .bind(unix_millis())
    .fetch_one(&mut *tx)
    .await;
    match inserted {
        Ok(id) => {
            tx.commit().await.map_err(ApiError::storage)?;
            tracing::info!(target: "smartmesh::relayer", id, from = %request.from, nonce = %request.nonce, tx_id, "accepted");
            Ok((id, false))
        }
        // The same (from, nonce) accepted at the same moment by another request.
        Err(error) => {
            drop(tx);
            match repeat(core, request.from, &nonce_bytes, digest).await? {
                Some(id) => Ok((id, true)),
                None => Err(ApiError::storage(error)),
            }
        }
    }
}

/// A user's requests accepted and not final yet.
struct InFlight {
    /// How many.
    count: i64,
    /// Those whose transaction is not mined yet, in order: their fees are not paid yet, and
    /// a new request must succeed after them.
    unmined: Vec<Unmined>,
    /// The fees of `unmined`.
    reserved: U256,
}

async fn in_flight(core: &Core, from: Address) -> Result<InFlight, ApiError> {
    let rows =
        sqlx::query("SELECT tx_id, fee FROM relays WHERE from_address = $1 AND settled_at IS NULL")
            .bind(from.to_string())
            .fetch_all(core.db.pool())
            .await
            .map_err(ApiError::storage)?;
    let mut fees = std::collections::HashMap::new();
    for row in &rows {
        let tx_id: i64 = row.try_get(0).map_err(ApiError::storage)?;
        let fee: U256 = row
            .try_get::<String, _>(1)
            .map_err(ApiError::storage)?
            .parse()
            .map_err(ApiError::storage)?;
        fees.insert(tx_id, fee);
    }
    let ids: Vec<i64> = fees.keys().copied().collect();
    let unmined = if ids.is_empty() {
        Vec::new()
    } else {
        core.sender.unmined(&ids).await.map_err(ApiError::storage)?
    };
    let reserved = unmined
        .iter()
        .map(|tx| fees[&tx.id])
        .fold(U256::ZERO, U256::saturating_add);
    Ok(InFlight {
        count: i64::try_from(rows.len()).unwrap_or(i64::MAX),
        unmined,
        reserved,
    })
}

/// The id of an accepted relay of `(from, nonce)`; a 409 when it carried another request.
async fn repeat(
    core: &Core,
    from: Address,
    nonce: &[u8],
    digest: B256,
) -> Result<Option<i64>, ApiError> {
    let Some(row) =
        sqlx::query("SELECT id, request_hash FROM relays WHERE from_address = $1 AND nonce = $2")
            .bind(from.to_string())
            .bind(nonce.to_vec())
            .fetch_optional(core.db.pool())
            .await
            .map_err(ApiError::storage)?
    else {
        return Ok(None);
    };
    let hash: Vec<u8> = row.try_get(1).map_err(ApiError::storage)?;
    if hash != digest.as_slice() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "request.nonce: {} of {from} already carries another request",
                U256::from_be_slice(nonce)
            ),
        ));
    }
    Ok(Some(row.try_get(0).map_err(ApiError::storage)?))
}

/// `key` prepared for the relay's transaction; a 503 when it may not take another: it is
/// short of ETH, or low and its queue full.
async fn prepare(core: &Core, key: Address) -> Result<Prepared, ApiError> {
    let paused = |detail: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "paused", detail);
    let prepared = match core.sender.prepare(Some(key)).await {
        Ok(prepared) => prepared,
        Err(ChainError::LowBalance { .. }) => {
            return Err(paused(format!(
                "relaying is paused: key {key} is short of ETH"
            )));
        }
        Err(error) => return Err(ApiError::node(error)),
    };
    if prepared.balance() < core.policy.low_balance {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sender_transactions WHERE signer = $1 AND status NOT IN ('confirmed', 'failed')",
        )
        .bind(key.to_string())
        .fetch_one(core.db.pool())
        .await
        .map_err(ApiError::storage)?;
        if waiting >= core.policy.low_balance_queue_cap {
            return Err(paused(format!(
                "key {key} runs low on ETH and has {waiting} transactions waiting; retry later"
            )));
        }
    }
    Ok(prepared)
}

/// Where a relay stands.
#[utoipa::path(get, path = "/v1/relay/{id}",
    params(("id" = i64, Path, description = "the id `POST /v1/relay` returned")),
    responses(
        (status = 200, body = RelayStatus),
        (status = 400, description = "the id is not a number", body = ErrorBody),
        (status = 404, description = "no such relay", body = ErrorBody),
    ))]
pub(crate) async fn status(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<RelayStatus>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::from_path("id", e))?;
    let core = &state.core;
    let row = sqlx::query("SELECT from_address, nonce, fee, tx_id FROM relays WHERE id = $1")
        .bind(id)
        .fetch_optional(core.db.pool())
        .await
        .map_err(ApiError::storage)?
        .ok_or_else(|| ApiError::not_found("id", format!("no relay {id}")))?;
    let from: String = row.try_get(0).map_err(ApiError::storage)?;
    let nonce: Vec<u8> = row.try_get(1).map_err(ApiError::storage)?;
    let fee: String = row.try_get(2).map_err(ApiError::storage)?;
    let tx_id: i64 = row.try_get(3).map_err(ApiError::storage)?;
    let mut answer = RelayStatus {
        id,
        status: RelayState::Queued,
        from: from.parse().map_err(ApiError::storage)?,
        nonce: U256::from_be_slice(&nonce),
        tx_hash: None,
        block: None,
        confirmations: None,
        reason: None,
        fee_earned: U256::ZERO,
    };
    match core.sender.status(tx_id).await.map_err(ApiError::storage)? {
        TxStatus::Queued => {}
        TxStatus::Pending { hash } => {
            answer.status = RelayState::Submitted;
            answer.tx_hash = Some(hash);
        }
        TxStatus::Mined {
            hash,
            block,
            succeeded,
        }
        | TxStatus::Confirmed {
            hash,
            block,
            succeeded,
        } => {
            let head = core
                .provider
                .get_block_number()
                .await
                .map_err(ApiError::node)?;
            answer.tx_hash = Some(hash);
            answer.block = Some(block);
            answer.confirmations = Some(head.saturating_sub(block) + 1);
            if succeeded {
                answer.status = RelayState::Mined;
                answer.fee_earned = fee.parse().map_err(ApiError::storage)?;
            } else {
                answer.status = RelayState::Failed;
                answer.reason = Some(format!(
                    "the transaction reverted on chain in block {block}"
                ));
            }
        }
        TxStatus::Failed { reason } => {
            answer.status = RelayState::Failed;
            answer.reason = Some(reason);
        }
    }
    Ok(Json(answer))
}
