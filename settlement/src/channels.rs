//! What the watcher knows of a channel: `GET /v1/channels/{id}` (on-chain state, the jobs
//! and every decision taken; to a participant who signs the request, the best proofs held per
//! payer and each decision's detail too), and `GET /v1/proofs/latest` (the latest proof a
//! participant signed, which a phone restored from a backup must learn before it closes;
//! only to that participant, signed).
//!
//! What the watcher holds is private: shown to anyone, it would tell a closer exactly how
//! little it can declare without being disputed. A participant proves who asks with a
//! short-lived `WatcherRead` signed under the watcher's domain.

use alloy::primitives::{Address, B256, Bytes, U256};
use axum::{
    Json, Router,
    extract::{
        Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    routing::get,
};
use serde::{Deserialize, Serialize};
use smartmesh_chain::unix_millis;
use smartmesh_protocol::{
    MAX_READ_VALIDITY_SECS, Signature65, SignedProof, WatcherRead, recover_typed, watcher_domain,
};
use sqlx::{AnyPool, Row, any::AnyRow};
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState, ChannelRow, SettlementError,
    api::{ApiError, ErrorBody},
    load_channel, sql,
};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/channels/{id}", get(channel))
        .route("/v1/proofs/latest", get(latest_proof))
}

/// A channel as the watcher sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    /// The channel id.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub channel_id: B256,
    /// The indexed on-chain state; absent when the channel is not indexed (yet).
    pub chain: Option<ChainState>,
    /// The best proof held per payer: only in a participant's signed view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proofs: Option<Vec<HeldProofView>>,
    /// The watcher's work on the channel.
    pub jobs: Vec<JobView>,
    /// The close settled unpenalized though a proof the watcher held proved the closer lied
    /// (the watcher was not there in time): what it cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_dispute: Option<MissedDispute>,
    /// Every decision taken, oldest first.
    pub decisions: Vec<DecisionView>,
}

/// A channel's indexed on-chain state. Amounts are decimal token wei.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainState {
    /// `open`, `closed` or `settled`.
    pub state: String,
    /// The lower participant.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub participant1: Address,
    /// The higher participant.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub participant2: Address,
    /// The pair's channel count when this one opened.
    pub epoch: u64,
    /// The hold period, in seconds.
    pub settle_timeout: u64,
    /// Participant 1's total deposit.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub deposit1: U256,
    /// Participant 2's total deposit.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub deposit2: U256,
    /// Participant 1's total withdrawal.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub withdrawn1: U256,
    /// Participant 2's total withdrawal.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub withdrawn2: U256,
    /// Who closed it.
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub closer: Option<Address>,
    /// What the closer declared it paid.
    #[schema(value_type = Option<String>, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub claim_transferred: Option<U256>,
    /// The end of the hold period (unix seconds).
    pub settle_at: Option<u64>,
    /// Whether a dispute proved the closer under-declared.
    pub penalized: bool,
    /// The block of the channel's last event.
    pub updated_block: u64,
    /// What the settlement paid participant 1, once settled.
    #[schema(value_type = Option<String>, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub payout1: Option<U256>,
    /// What it paid participant 2.
    #[schema(value_type = Option<String>, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub payout2: Option<U256>,
}

impl From<ChannelRow> for ChainState {
    fn from(row: ChannelRow) -> Self {
        Self {
            state: row.phase.as_str().to_owned(),
            participant1: row.participant1,
            participant2: row.participant2,
            epoch: row.epoch,
            settle_timeout: row.settle_timeout,
            deposit1: row.deposit1,
            deposit2: row.deposit2,
            withdrawn1: row.withdrawn1,
            withdrawn2: row.withdrawn2,
            closer: row.closer,
            claim_transferred: row.claim_transferred,
            settle_at: row.settle_at,
            penalized: row.penalized,
            updated_block: row.updated_block,
            payout1: row.payouts.map(|(p1, _)| p1),
            payout2: row.payouts.map(|(_, p2)| p2),
        }
    }
}

/// The best received proof held from one payer, with the Watch to submit it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldProofView {
    /// Who signed (paid).
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub signer: Address,
    /// The proof's nonce.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub nonce: U256,
    /// What the signer had paid in total.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub transferred_amount: U256,
    /// The proof's EIP-712 digest (what the watcher's acknowledgment signs).
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub proof_digest: B256,
    /// The reward the receiver's Watch grants.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub reward: U256,
}

/// A dispute the watcher missed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MissedDispute {
    /// Who closed and lied.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub closer: Address,
    /// What it declared it paid.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub claimed: U256,
    /// What the proof held shows it paid.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub proven: U256,
    /// What the victim got less than the penalty would have given it (after the reward).
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub lost: U256,
    /// When the watcher found out (unix milliseconds).
    pub recorded_at: i64,
}

/// A job of the watcher's on the channel.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// `dispute` or `settle`.
    pub kind: String,
    /// `active` or `done`.
    pub state: String,
    /// The last decision's code.
    pub last_decision: Option<String>,
    /// The sender transaction in flight, if any.
    pub tx_id: Option<i64>,
}

/// One decision of the watcher's.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionView {
    /// `dispute` or `settle`.
    pub kind: String,
    /// A stable code, such as `dispute_queued`, `claim_covers_proof` or `settled`.
    pub decision: String,
    /// What the watcher saw (amounts held among it): only in a participant's signed view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The transaction it queued, if any.
    pub tx_id: Option<i64>,
    /// When (unix milliseconds).
    pub decided_at: i64,
}

fn parse_b256(field: &str, text: &str) -> Result<B256, ApiError> {
    text.parse().map_err(|_| {
        ApiError::invalid(
            field,
            format!("{text:?} is not a 0x-prefixed 32-byte hex id"),
        )
    })
}

/// A participant's proof that it is the one asking: its signature of
/// `WatcherRead(channelId, participant, watcher, expiresAt)` under the watcher's domain.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReadAuth {
    /// The participant asking (with `expires` and `signature`, for its private view).
    #[param(pattern = "^0x[0-9a-fA-F]{40}$")]
    participant: Option<String>,
    /// When the signature stops being good: unix seconds, at most 600 s ahead.
    #[param(minimum = 0)]
    expires: Option<u64>,
    /// The participant's 65-byte signature of the `WatcherRead`, hex.
    #[param(pattern = "^0x[0-9a-fA-F]{130}$")]
    signature: Option<String>,
}

fn parse_address(field: &str, text: &str) -> Result<Address, ApiError> {
    text.parse()
        .map_err(|_| ApiError::invalid(field, format!("{text:?} is not a 0x-prefixed address")))
}

/// Checks that `participant` signed a read of `channel_id` for this watcher that is still
/// good, and that it is a participant of the indexed `channel`.
fn authorize(
    state: &AppState,
    channel_id: B256,
    channel: Option<&ChannelRow>,
    participant: Address,
    expires: u64,
    signature: &str,
) -> Result<(), ApiError> {
    let now = unix_millis() as u64 / 1_000;
    if expires < now {
        return Err(ApiError::unauthorized(
            "expires",
            format!("the signed read expired at {expires} (now {now}): sign a new one"),
        ));
    }
    if expires > now + MAX_READ_VALIDITY_SECS {
        return Err(ApiError::unauthorized(
            "expires",
            format!(
                "{expires} is more than {MAX_READ_VALIDITY_SECS} s ahead (now {now}): sign a short-lived read"
            ),
        ));
    }
    let bytes = alloy::hex::decode(signature)
        .map_err(|_| ApiError::unauthorized("signature", "is not hex".into()))?;
    let signature = Signature65::from_slice(&bytes)
        .map_err(|e| ApiError::unauthorized("signature", e.to_string()))?;
    let read = WatcherRead {
        channelId: channel_id,
        participant,
        watcher: state.watcher.address(),
        expiresAt: U256::from(expires),
    };
    match recover_typed(
        &read,
        &watcher_domain(state.chain_id, state.token_network),
        &signature,
    ) {
        Ok(signer) if signer == participant => {}
        Ok(signer) => {
            return Err(ApiError::unauthorized(
                "signature",
                format!(
                    "signed by {signer}, not by {participant} (or for another channel, watcher or expiry)"
                ),
            ));
        }
        Err(e) => return Err(ApiError::unauthorized("signature", e.to_string())),
    }
    let Some(channel) = channel else {
        return Err(ApiError::not_found(
            "id",
            format!("channel {channel_id} is not indexed: its participants are not known yet"),
        ));
    };
    if participant != channel.participant1 && participant != channel.participant2 {
        return Err(ApiError::forbidden(
            "participant",
            format!("{participant} is not a participant of channel {channel_id}"),
        ));
    }
    Ok(())
}

/// The watcher's view of one channel.
#[utoipa::path(get, path = "/v1/channels/{id}",
    params(
        ("id" = String, Path, description = "the channel id, 0x and 64 hex digits", pattern = "^0x[0-9a-fA-F]{64}$"),
        ReadAuth,
    ),
    responses(
        (status = 200, description = "the public view, or with a participant's signature its private view (held proofs, decision details)", body = ChannelView),
        (status = 400, description = "a parameter does not parse, is unknown, or comes without the other two", body = ErrorBody),
        (status = 401, description = "the signature is missing a part, expired, too long-lived or not the participant's", body = ErrorBody),
        (status = 403, description = "the signer is not a participant of the channel", body = ErrorBody),
        (status = 404, description = "not indexed", body = ErrorBody),
        (status = 422, description = "the id or the participant does not parse", body = ErrorBody),
        (status = 429, description = "too many requests from this client", body = ErrorBody),
    ))]
pub(crate) async fn channel(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    auth: Result<Query<ReadAuth>, QueryRejection>,
) -> Result<Json<ChannelView>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::from_path("id", e))?;
    let Query(auth) = auth.map_err(ApiError::from_query)?;
    let channel_id = parse_b256("id", &id)?;
    let pool = state.db.pool();
    let chain = load_channel(pool, channel_id)
        .await
        .map_err(ApiError::storage)?;
    let private = match (auth.participant, auth.expires, auth.signature) {
        (None, None, None) => false,
        (Some(participant), Some(expires), Some(signature)) => {
            let participant = parse_address("participant", &participant)?;
            authorize(
                &state,
                channel_id,
                chain.as_ref(),
                participant,
                expires,
                &signature,
            )?;
            true
        }
        _ => {
            return Err(ApiError::unauthorized(
                "signature",
                "a private view takes participant, expires and signature together".into(),
            ));
        }
    };
    if chain.is_none() {
        return Err(ApiError::not_found(
            "id",
            format!("channel {channel_id} is not indexed"),
        ));
    }
    let proofs = if private {
        Some(
            rows(
                pool,
                "SELECT signer, nonce, transferred_amount, proof_digest, reward FROM receipts WHERE channel_id = $1 ORDER BY signer",
                channel_id,
                |row| {
                    Ok(HeldProofView {
                        signer: sql::address(row, 0)?,
                        nonce: sql::u256_be(row, 1)?,
                        transferred_amount: sql::u256(row, 2)?,
                        proof_digest: sql::b256(row, 3)?,
                        reward: sql::u256(row, 4)?,
                    })
                },
            )
            .await?,
        )
    } else {
        None
    };
    let jobs = rows(
        pool,
        "SELECT kind, state, last_decision, tx_id FROM watcher_jobs WHERE channel_id = $1 ORDER BY kind",
        channel_id,
        |row| {
            Ok(JobView {
                kind: row.try_get(0)?,
                state: row.try_get(1)?,
                last_decision: row.try_get(2)?,
                tx_id: row.try_get(3)?,
            })
        },
    )
    .await?;
    let decisions = rows(
        pool,
        "SELECT kind, decision, detail, tx_id, decided_at FROM watcher_decisions WHERE channel_id = $1 ORDER BY id",
        channel_id,
        |row| {
            Ok(DecisionView {
                kind: row.try_get(0)?,
                decision: row.try_get(1)?,
                detail: if private { Some(row.try_get(2)?) } else { None },
                tx_id: row.try_get(3)?,
                decided_at: row.try_get(4)?,
            })
        },
    )
    .await?;
    let missed_dispute = rows(
        pool,
        "SELECT closer, claimed, proven, lost, recorded_at FROM missed_disputes WHERE channel_id = $1",
        channel_id,
        |row| {
            Ok(MissedDispute {
                closer: sql::address(row, 0)?,
                claimed: sql::u256(row, 1)?,
                proven: sql::u256(row, 2)?,
                lost: sql::u256(row, 3)?,
                recorded_at: row.try_get(4)?,
            })
        },
    )
    .await?
    .pop();
    Ok(Json(ChannelView {
        channel_id,
        chain: chain.map(ChainState::from),
        proofs,
        jobs,
        missed_dispute,
        decisions,
    }))
}

/// Which proof `GET /v1/proofs/latest` looks for.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LatestQuery {
    /// The channel id.
    #[param(pattern = "^0x[0-9a-fA-F]{64}$")]
    channel: String,
    /// The participant who signed the proof: the one asking.
    #[param(pattern = "^0x[0-9a-fA-F]{40}$")]
    signer: String,
    /// When the signature stops being good: unix seconds, at most 600 s ahead.
    #[param(minimum = 0)]
    expires: u64,
    /// The signer's 65-byte signature of `WatcherRead(channel, signer, watcher, expires)`,
    /// hex.
    #[param(pattern = "^0x[0-9a-fA-F]{130}$")]
    signature: String,
}

/// Every row `query` (with `$1` the channel id) returns, read by `read`.
async fn rows<T>(
    pool: &AnyPool,
    query: &'static str,
    channel_id: B256,
    read: impl Fn(&AnyRow) -> Result<T, SettlementError>,
) -> Result<Vec<T>, ApiError> {
    sqlx::query(query)
        .bind(channel_id.to_vec())
        .fetch_all(pool)
        .await
        .map_err(ApiError::storage)?
        .iter()
        .map(|row| read(row).map_err(ApiError::storage))
        .collect()
}

/// The latest proof a participant signed on a channel.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatestProof {
    /// The channel id.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub channel_id: B256,
    /// Who signed it.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub signer: Address,
    /// Its nonce.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub nonce: U256,
    /// What the signer had paid in total: the least a close by it must claim.
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub transferred_amount: U256,
    /// The signed proof, `smr1...`.
    #[schema(pattern = "^smr1[A-Za-z0-9_-]{4,430}$")]
    pub proof: String,
    /// The lock list behind its `locksRoot` (the 64-byte locks concatenated, hex; `0x` for
    /// none): the signer's pending locks, which its close must declare.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{128}){0,32}$")]
    pub locks: Bytes,
    /// Where the watcher has it from: `receipt` (the partner uploaded it) or `backup` (the
    /// signer did).
    pub source: String,
}

/// The best proof held of a signer's, from one table.
struct Held {
    /// `(transferredAmount, nonce)`: the proof proving the most wins.
    rank: (U256, U256),
    proof: Vec<u8>,
    locks: Option<Vec<u8>>,
    source: &'static str,
}

/// The latest proof `signer` signed on `channel` (the one proving the most), from the
/// partner's receipts or the signer's own backups; only to the signer, who signs the request.
#[utoipa::path(get, path = "/v1/proofs/latest", params(LatestQuery), responses(
    (status = 200, body = LatestProof),
    (status = 400, description = "a parameter is missing, unknown or does not parse", body = ErrorBody),
    (status = 401, description = "the signature expired, is too long-lived or is not the signer's", body = ErrorBody),
    (status = 403, description = "the signer is not a participant of the channel", body = ErrorBody),
    (status = 404, description = "the channel is not indexed, or no proof of that signer is held", body = ErrorBody),
    (status = 422, description = "the channel or the signer does not parse", body = ErrorBody),
    (status = 429, description = "too many requests from this client", body = ErrorBody),
))]
pub(crate) async fn latest_proof(
    State(state): State<AppState>,
    query: Result<Query<LatestQuery>, QueryRejection>,
) -> Result<Json<LatestProof>, ApiError> {
    let Query(query) = query.map_err(ApiError::from_query)?;
    let channel_id = parse_b256("channel", &query.channel)?;
    let signer = parse_address("signer", &query.signer)?;
    let channel = load_channel(state.db.pool(), channel_id)
        .await
        .map_err(ApiError::storage)?;
    authorize(
        &state,
        channel_id,
        channel.as_ref(),
        signer,
        query.expires,
        &query.signature,
    )?;
    // The proof that proves the most is the one a close must cover (the nonce breaks ties).
    let mut best: Option<Held> = None;
    for (table, source) in [("receipts", "receipt"), ("proof_backups", "backup")] {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT transferred_amount, nonce, proof, locks FROM {table} WHERE channel_id = $1 AND signer = $2"
        )))
        .bind(channel_id.to_vec())
        .bind(signer.to_string())
        .fetch_optional(state.db.pool())
        .await
        .map_err(ApiError::storage)?;
        if let Some(row) = row {
            let rank = (
                sql::u256(&row, 0).map_err(ApiError::storage)?,
                sql::u256_be(&row, 1).map_err(ApiError::storage)?,
            );
            if best.as_ref().is_none_or(|held| rank > held.rank) {
                best = Some(Held {
                    rank,
                    proof: row.try_get(2).map_err(ApiError::storage)?,
                    locks: row.try_get(3).map_err(ApiError::storage)?,
                    source,
                });
            }
        }
    }
    let Some(Held {
        rank: (transferred_amount, nonce),
        proof: bytes,
        locks,
        source,
    }) = best
    else {
        return Err(ApiError::not_found(
            "signer",
            format!("no proof signed by {signer} on channel {channel_id} is held"),
        ));
    };
    let signed = SignedProof::decode(&bytes).map_err(ApiError::storage)?;
    Ok(Json(LatestProof {
        channel_id,
        signer,
        nonce,
        transferred_amount,
        proof: signed.to_text().map_err(ApiError::storage)?,
        locks: Bytes::from(locks.unwrap_or_default()),
        source: source.to_owned(),
    }))
}
