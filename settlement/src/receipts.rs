//! `POST /v1/receipts`: phones upload batches of the balance proofs they received, each with
//! a `Watch` that lets this watcher dispute a stale close for them. Every item is checked
//! (signature, channel, participants, nonce, amount, Watch) and answered on its own; the
//! accepted ones are stored in one database transaction and acknowledged with the watcher's
//! signature, so a phone can prove what the watcher holds.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    sol_types::{Eip712Domain, SolStruct, eip712_domain},
};
use axum::{Json, Router, extract::State, routing::post};
use serde::{Deserialize, Serialize};
use smartmesh_protocol::{
    ProtocolError, Signature65, SignedProof, Watch, sign_typed, token_network_domain, verify_typed,
};
use sqlx::{AnyConnection, Row};

use crate::{AppState, ChannelPhase, api::ApiError, load_channel};

/// The largest batch a phone may upload at once.
pub const MAX_BATCH: usize = 10_000;

alloy::sol! {
    /// The watcher's signed statement that it holds the proof with this digest.
    #[derive(Debug, PartialEq, Eq)]
    struct WatcherAck {
        bytes32 channelId;
        bytes32 proofDigest;
    }
}

/// The domain of the watcher's acknowledgments: the TokenNetwork it guards.
pub fn ack_domain(chain_id: u64, token_network: Address) -> Eip712Domain {
    eip712_domain! {
        name: "SmartMesh Watcher",
        version: "1",
        chain_id: chain_id,
        verifying_contract: token_network,
    }
}

/// A batch of received proofs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceiptBatch {
    /// Every item's proof must be of this chain ...
    pub chain_id: u64,
    /// ... and this TokenNetwork.
    pub token_network: Address,
    /// At most [`MAX_BATCH`] received proofs.
    pub items: Vec<ReceiptItem>,
}

/// One received proof and the receiver's `Watch` for it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceiptItem {
    /// The payer's signed proof in its text form (`smr1...`).
    pub proof: String,
    /// The receiver's authorization to submit it.
    pub watch: WatchAuthorization,
}

/// The fields of a `Watch` that are not derived from the proof, and its signature.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchAuthorization {
    /// This watcher's address, or the zero address for anyone (then without reward).
    pub watcher: Address,
    /// The reward the watcher earns from a successful dispute.
    pub reward: U256,
    /// The latest close the Watch covers.
    pub deadline: U256,
    /// The receiver's 65-byte signature of the Watch.
    pub signature: Bytes,
}

/// The answer for one item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemOutcome {
    /// The item's position in the batch.
    pub index: usize,
    /// `stored`, `known` or `rejected`.
    pub status: ItemStatus,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a stored item: the watcher's EIP-712 signature of `WatcherAck(channelId, proofDigest)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<Bytes>,
}

/// What became of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Newer than anything held: stored and acknowledged.
    Stored,
    /// Exactly this proof is already held.
    Known,
    /// Refused; nothing of it was stored.
    Rejected,
}

/// The answer to a batch, item by item.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BatchOutcome {
    /// One outcome per item, in order.
    pub items: Vec<ItemOutcome>,
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/receipts", post(upload))
}

async fn upload(
    State(state): State<AppState>,
    batch: Result<Json<ReceiptBatch>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<BatchOutcome>, ApiError> {
    let Json(batch) = batch.map_err(ApiError::from_json)?;
    if batch.items.len() > MAX_BATCH {
        return Err(ApiError::too_large(
            "items",
            format!("{} items; at most {MAX_BATCH} per batch", batch.items.len()),
        ));
    }
    if batch.chain_id != state.chain_id {
        return Err(ApiError::invalid(
            "chainId",
            format!("this watcher guards chain {}", state.chain_id),
        ));
    }
    if batch.token_network != state.token_network {
        return Err(ApiError::invalid(
            "tokenNetwork",
            format!("this watcher guards {}", state.token_network),
        ));
    }
    let mut tx = state.db.pool().begin().await.map_err(ApiError::internal)?;
    let mut outcomes = Vec::with_capacity(batch.items.len());
    for (index, item) in batch.items.iter().enumerate() {
        let outcome = match check_and_store(&state, &mut tx, item).await? {
            Ok(Accepted::Stored(channel_id, digest)) => {
                let ack = WatcherAck {
                    channelId: channel_id,
                    proofDigest: digest,
                };
                let signature = sign_typed(
                    &state.watcher,
                    &ack,
                    &ack_domain(state.chain_id, state.token_network),
                );
                ItemOutcome {
                    index,
                    status: ItemStatus::Stored,
                    reason: None,
                    ack: Some(Bytes::copy_from_slice(signature.as_bytes())),
                }
            }
            Ok(Accepted::Known) => ItemOutcome {
                index,
                status: ItemStatus::Known,
                reason: None,
                ack: None,
            },
            Err(reason) => ItemOutcome {
                index,
                status: ItemStatus::Rejected,
                reason: Some(reason),
                ack: None,
            },
        };
        outcomes.push(outcome);
    }
    // All accepted items of the batch land together, or none does.
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(Json(BatchOutcome { items: outcomes }))
}

enum Accepted {
    Stored(B256, B256),
    Known,
}

/// Checks one item; `Ok(Err(reason))` is a per-item rejection, `Err` a server failure.
async fn check_and_store(
    state: &AppState,
    conn: &mut AnyConnection,
    item: &ReceiptItem,
) -> Result<Result<Accepted, String>, ApiError> {
    let reject = |reason: String| Ok(Err(reason));
    let signed = match SignedProof::from_text(&item.proof) {
        Ok(signed) => signed,
        Err(e) => return reject(format!("proof: {e}")),
    };
    if signed.chain_id != state.chain_id || signed.token_network != state.token_network {
        return reject("proof: signed for another chain or TokenNetwork".into());
    }
    let payer = match signed.signer() {
        Ok(payer) => payer,
        Err(e) => return reject(format!("proof: {e}")),
    };
    let proof = &signed.proof;
    let channel = match load_channel(&mut *conn, proof.channelId)
        .await
        .map_err(ApiError::internal)?
    {
        Some(channel) if channel.phase != ChannelPhase::Settled => channel,
        Some(_) => return reject("proof: the channel is settled".into()),
        None => return reject("proof: unknown channel".into()),
    };
    let receiver = if payer == channel.participant1 {
        channel.participant2
    } else if payer == channel.participant2 {
        channel.participant1
    } else {
        return reject(format!(
            "proof: signer {payer} is not a participant of the channel"
        ));
    };
    // What the payer can have paid at most: both deposits. The receiver's own payments are
    // not always known here, so the exact capacity is the phone's check, not the watcher's.
    if proof.transferredAmount > channel.deposit1.saturating_add(channel.deposit2) {
        return reject("proof: transferred amount exceeds the channel's deposits".into());
    }

    let domain = token_network_domain(state.chain_id, state.token_network);
    let digest = proof.eip712_signing_hash(&domain);
    let watch = Watch {
        channelId: proof.channelId,
        proofDigest: digest,
        watcher: item.watch.watcher,
        reward: item.watch.reward,
        deadline: item.watch.deadline,
    };
    if watch.watcher != state.watcher.address() && watch.watcher != Address::ZERO {
        return reject(format!(
            "watch.watcher: names {}, not this watcher",
            watch.watcher
        ));
    }
    if watch.watcher == Address::ZERO && !watch.reward.is_zero() {
        return reject("watch.reward: a Watch open to anyone must carry no reward".into());
    }
    let watch_signature = match Signature65::from_slice(&item.watch.signature) {
        Ok(signature) => signature,
        Err(e) => return reject(format!("watch.signature: {e}")),
    };
    match verify_typed(&watch, &domain, &watch_signature, receiver) {
        Ok(()) => {}
        Err(ProtocolError::WrongSigner { actual, .. }) => {
            return reject(format!(
                "watch.signature: signed by {actual}, not by the receiver {receiver}"
            ));
        }
        Err(e) => return reject(format!("watch.signature: {e}")),
    }

    let held = sqlx::query(
        "SELECT nonce, proof_digest FROM receipts WHERE channel_id = $1 AND signer = $2",
    )
    .bind(proof.channelId.to_vec())
    .bind(payer.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(ApiError::internal)?;
    if let Some(held) = held {
        let held_digest: Vec<u8> = held.try_get(1).map_err(ApiError::internal)?;
        if held_digest == digest.as_slice() {
            return Ok(Ok(Accepted::Known));
        }
        let held_nonce: String = held.try_get(0).map_err(ApiError::internal)?;
        let held_nonce: U256 = held_nonce.parse().map_err(ApiError::internal)?;
        if proof.nonce <= held_nonce {
            return reject(format!(
                "proof.nonce: {} is not above the held {held_nonce}",
                proof.nonce
            ));
        }
    }
    sqlx::query("DELETE FROM receipts WHERE channel_id = $1 AND signer = $2")
        .bind(proof.channelId.to_vec())
        .bind(payer.to_string())
        .execute(&mut *conn)
        .await
        .map_err(ApiError::internal)?;
    sqlx::query(
        "INSERT INTO receipts (channel_id, signer, nonce, transferred_amount, proof_digest, proof, watcher, reward, \
         watch_deadline, watch_signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(proof.channelId.to_vec())
    .bind(payer.to_string())
    .bind(proof.nonce.to_string())
    .bind(proof.transferredAmount.to_string())
    .bind(digest.to_vec())
    .bind(signed.encode().map_err(ApiError::internal)?)
    .bind(watch.watcher.to_string())
    .bind(watch.reward.to_string())
    .bind(watch.deadline.to_string())
    .bind(watch_signature.as_bytes().to_vec())
    .execute(&mut *conn)
    .await
    .map_err(ApiError::internal)?;
    Ok(Ok(Accepted::Stored(proof.channelId, digest)))
}
