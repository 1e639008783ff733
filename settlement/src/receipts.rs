//! `POST /v1/receipts`: phones upload batches of the balance proofs they received, each with
//! a `Watch` that lets this watcher dispute a stale close for them, and optionally backups of
//! the proofs they sent. Every item is checked (signature, channel, participants, nonce,
//! amount, Watch) and answered on its own; the accepted ones are stored in one database
//! transaction and acknowledged with the watcher's signature, so a phone can prove what the
//! watcher holds.
//!
//! A proof with locks comes with the lock list behind its `locksRoot` (checked against the
//! root and `lockedAmount`), which the watcher needs to submit it; a batch may also carry the
//! conditions the uploader can meet (see [`crate::conditions`]).
//!
//! The signatures are recovered first, on every core, with no database connection held; the
//! database then sees a few bulk statements per batch rather than several per item.

use std::collections::HashMap;

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    sol_types::{Eip712Domain, SolStruct},
};
use axum::{Extension, Json, Router, extract::State, routing::post};
use serde::{Deserialize, Serialize};
use smartmesh_chain::Backend;
use smartmesh_http::{Client, WorkLimiter};
use smartmesh_protocol::{
    BalanceProof, LockList, ProofSummary, ProtocolError, SecpSigner, Signature65, SignedProof,
    Verdict, Watch, WatcherAck, judge_upload, recover, token_network_domain, watcher_domain,
    within_deposits,
};
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use crate::{
    AppState, ChannelPhase, ChannelRow, Metrics,
    api::{ApiError, ErrorBody},
    conditions::{self, CheckedCondition, ConditionUpload, Registrations},
    indexer::load_channels,
    sql,
};

/// The largest batch a phone may upload at once (received proofs and backups together).
pub const MAX_BATCH: usize = 10_000;

/// A batch whose first this many received proofs all fail their signature checks is junk:
/// refused before the rest costs any work.
pub const JUNK_PROBE: usize = 32;

/// The domain of the watcher's acknowledgments: the TokenNetwork it guards.
pub fn ack_domain(chain_id: u64, token_network: Address) -> Eip712Domain {
    watcher_domain(chain_id, token_network)
}

/// A batch of received proofs, and backups of the uploader's sent ones.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceiptBatch {
    /// Every item's proof must be of this chain ...
    pub chain_id: u64,
    /// ... and this TokenNetwork.
    #[schema(value_type = String, example = "0x5FC8d32690cc91D4c39d9d3abcBD16989F875707", pattern = "^0x[0-9a-fA-F]{40}$")]
    pub token_network: Address,
    /// Received proofs, each with the receiver's Watch.
    #[schema(max_items = 10_000)]
    pub items: Vec<ReceiptItem>,
    /// The uploader's own sent proofs, kept so that a phone restored from an old backup can
    /// learn the largest amount it signed, and its pending locks, before it closes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 10_000)]
    pub sent: Vec<SentBackup>,
    /// Conditions the uploader can meet, each with the request that registers it and pays
    /// this watcher.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 10_000)]
    pub conditions: Vec<ConditionUpload>,
}

/// A backup of one of the uploader's own proofs.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SentBackup {
    /// A proof without locks, in its text form (`smr1...`).
    #[schema(value_type = ProofText)]
    Text(String),
    /// A proof and the lock list behind its `locksRoot`.
    WithLocks {
        /// The proof in its text form (`smr1...`).
        #[schema(pattern = "^smr1[A-Za-z0-9_-]{4,430}$")]
        proof: String,
        /// The 64-byte locks concatenated, hex.
        #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{128}){0,32}$")]
        locks: Bytes,
    },
}

/// A signed proof in its text form: `smr1` and unpadded base64url.
#[derive(ToSchema)]
#[schema(pattern = "^smr1[A-Za-z0-9_-]{4,430}$")]
#[allow(dead_code)]
struct ProofText(String);

/// One received proof and the receiver's `Watch` for it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceiptItem {
    /// The payer's signed proof in its text form (`smr1...`).
    #[schema(pattern = "^smr1[A-Za-z0-9_-]{4,430}$")]
    pub proof: String,
    /// The receiver's authorization to submit it.
    pub watch: WatchAuthorization,
    /// The lock list behind the proof's `locksRoot`: the 64-byte locks concatenated, hex.
    /// Required when the root is not zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^0x([0-9a-fA-F]{128}){0,32}$")]
    pub locks: Option<Bytes>,
}

/// The fields of a `Watch` that are not derived from the proof, and its signature.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchAuthorization {
    /// This watcher's address, or the zero address for anyone (then without reward).
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub watcher: Address,
    /// The reward the watcher earns from a successful dispute, in token wei (decimal or hex).
    #[schema(value_type = String, example = "1000000000000000000", pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub reward: U256,
    /// The latest close the Watch covers (unix seconds).
    #[schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")]
    pub deadline: U256,
    /// The receiver's 65-byte signature of the Watch, hex.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{130}$")]
    pub signature: Bytes,
}

/// The answer for one item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemOutcome {
    /// The item's position in its list.
    pub index: usize,
    /// `stored`, `known` or `rejected`.
    pub status: ItemStatus,
    /// Why it was rejected, starting with the offending field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a stored received proof: the watcher's EIP-712 signature of
    /// `WatcherAck(channelId, proofDigest)` under [`ack_domain`].
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{130}$")]
    pub ack: Option<Bytes>,
}

/// What became of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// It proves more than anything held (or renews the held proof's Watch with a later
    /// deadline): stored and, for a received proof, acknowledged.
    Stored,
    /// Exactly this proof is already held, with a Watch at least as good.
    Known,
    /// Refused; nothing of it was stored.
    Rejected,
}

/// The answer to a batch, item by item.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct BatchOutcome {
    /// One outcome per received proof, in order.
    pub items: Vec<ItemOutcome>,
    /// One outcome per sent-proof backup, in order.
    #[serde(default)]
    pub sent: Vec<ItemOutcome>,
    /// One outcome per condition, in order.
    #[serde(default)]
    pub conditions: Vec<ItemOutcome>,
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/receipts", post(upload))
}

/// Stores received proofs with their Watches, and backups of sent proofs.
#[utoipa::path(post, path = "/v1/receipts", request_body = ReceiptBatch, responses(
    (status = 200, description = "every item answered on its own", body = BatchOutcome),
    (status = 400, description = "the body is not JSON", body = ErrorBody),
    (status = 413, description = "more than 10,000 items, backups and conditions, or a body over 8 MiB", body = ErrorBody),
    (status = 422, description = "an unknown field, or another chain or TokenNetwork", body = ErrorBody),
    (status = 429, description = "too many requests from this client", body = ErrorBody),
))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    Extension(work): Extension<WorkLimiter>,
    client: Client,
    batch: Result<Json<ReceiptBatch>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<BatchOutcome>, ApiError> {
    let Json(batch) = batch.map_err(ApiError::from_json)?;
    let count = batch.items.len() + batch.sent.len() + batch.conditions.len();
    if count > MAX_BATCH {
        return Err(ApiError::too_large(
            "items",
            format!("{count} items, backups and conditions; at most {MAX_BATCH} per batch"),
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
    // Every item is a signature or two to recover: the client pays for what it asks.
    work.charge(client, count, "items")?;
    let context = Context {
        chain_id: state.chain_id,
        token_network: state.token_network,
        watcher: state.watcher.address(),
        registrations: state.registrations,
    };
    let mut items = batch.items;
    let rest = items.split_off(items.len().min(JUNK_PROBE));
    let mut received = tokio::task::spawn_blocking(move || {
        items
            .into_iter()
            .map(|item| context.verify_received(item))
            .collect::<Vec<Checked>>()
    })
    .await
    .map_err(ApiError::internal)?;
    Metrics::add(&state.metrics.items_verified, received.len() as u64);
    let later = rest.len() + batch.sent.len() + batch.conditions.len();
    if received.len() == JUNK_PROBE && later > 0 {
        refuse_junk(&state, &received).await?;
    }
    Metrics::add(&state.metrics.items_verified, later as u64);
    let (sent, uploads) = (batch.sent, batch.conditions);
    let now = smartmesh_chain::unix_millis().max(0) as u64 / 1_000;
    let (rest, sent, uploads) = tokio::task::spawn_blocking(move || {
        (
            parallel_map(rest, |item| context.verify_received(item)),
            parallel_map(sent, |backup| context.verify_sent(backup)),
            parallel_map(uploads, |upload| context.verify_condition(&upload, now)),
        )
    })
    .await
    .map_err(ApiError::internal)?;
    received.extend(rest);

    let mut tx = state.db.pool().begin().await.map_err(ApiError::storage)?;
    let domain = token_network_domain(state.chain_id, state.token_network);
    let mut book = Book::load(&mut tx, &domain, &received, &sent, &uploads).await?;
    let items: Vec<Decision> = received.into_iter().map(|c| book.decide(c)).collect();
    let backups: Vec<Decision> = sent.into_iter().map(|c| book.decide(c)).collect();
    let uploads: Vec<Decision> = uploads
        .into_iter()
        .map(|c| book.decide_condition(c))
        .collect();

    // The acknowledgments are signed while the batch is written; they are handed out only
    // once it is committed.
    let signer = SecpSigner::new(&state.watcher);
    let ack_domain = ack_domain(state.chain_id, state.token_network);
    let signing = tokio::task::spawn_blocking(move || {
        parallel_map(items.into_iter().enumerate().collect(), |(index, d)| {
            d.outcome(index, Some((&signer, &ack_domain)))
        })
    });
    let stored = async {
        book.write(&mut tx, state.db.backend()).await?;
        // All accepted items of the batch land together, or none does.
        tx.commit().await.map_err(ApiError::storage)
    };
    let (signed, stored) = tokio::join!(signing, stored);
    stored?;
    if !book.closed.is_empty() {
        state.wake.notify_one();
    }
    let outcome = BatchOutcome {
        items: signed.map_err(ApiError::internal)?,
        sent: backups
            .into_iter()
            .enumerate()
            .map(|(index, d)| d.outcome(index, None))
            .collect(),
        conditions: uploads
            .into_iter()
            .enumerate()
            .map(|(index, d)| d.outcome(index, None))
            .collect(),
    };

    let m = &state.metrics;
    let count = |list: &[ItemOutcome], status| list.iter().filter(|o| o.status == status).count();
    Metrics::add(&m.batches, 1);
    Metrics::add(
        &m.receipts_stored,
        count(&outcome.items, ItemStatus::Stored) as u64,
    );
    Metrics::add(
        &m.receipts_known,
        count(&outcome.items, ItemStatus::Known) as u64,
    );
    Metrics::add(
        &m.receipts_rejected,
        count(&outcome.items, ItemStatus::Rejected) as u64,
    );
    Metrics::add(
        &m.backups_stored,
        count(&outcome.sent, ItemStatus::Stored) as u64,
    );
    Metrics::add(
        &m.conditions_stored,
        count(&outcome.conditions, ItemStatus::Stored) as u64,
    );
    Ok(Json(outcome))
}

/// Refuses the batch when none of its first items (`probe`) is a proof of a known channel's
/// participant with its partner's Watch: junk, whose rest is not worth recovering.
async fn refuse_junk(state: &AppState, probe: &[Checked]) -> Result<(), ApiError> {
    let mut ids: Vec<B256> = probe
        .iter()
        .filter_map(|c| c.as_ref().ok().map(|c| c.channel_id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut conn = state.db.pool().acquire().await.map_err(ApiError::storage)?;
    let channels = load_channels(&mut conn, &ids)
        .await
        .map_err(ApiError::storage)?;
    drop(conn);
    let plausible = probe.iter().flatten().any(|c| {
        channels.get(&c.channel_id).is_some_and(|channel| {
            let pair = [channel.participant1, channel.participant2];
            let watcher = c.watch.as_ref().map(|(_, _, signer)| *signer);
            pair.contains(&c.payer) && watcher.is_some_and(|w| pair.contains(&w) && w != c.payer)
        })
    });
    if plausible {
        return Ok(());
    }
    Metrics::add(&state.metrics.batches_refused_early, 1);
    let first = match &probe[0] {
        Err(reason) => reason.clone(),
        Ok(c) => format!(
            "proof: signed by {} for channel {}, not a participant of a known channel with its partner's Watch",
            c.payer, c.channel_id
        ),
    };
    Err(ApiError::invalid(
        "items",
        format!(
            "none of the first {JUNK_PROBE} items is a participant's proof with its partner's Watch \
             (items[0]: {first}); the rest of the batch was not checked"
        ),
    ))
}

/// Maps `items` in order on every core; the receipts' signatures dominate a batch's cost.
fn parallel_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads == 1 || items.len() < 64 {
        return items.into_iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut items = items.into_iter();
    loop {
        let part: Vec<T> = items.by_ref().take(chunk).collect();
        if part.is_empty() {
            break;
        }
        chunks.push(part);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|part| scope.spawn(move || part.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("a verifying thread panicked"))
            .collect()
    })
}

#[derive(Clone, Copy)]
struct Context {
    chain_id: u64,
    token_network: Address,
    watcher: Address,
    registrations: Registrations,
}

/// A proof whose signatures are recovered, waiting for the checks that need the database.
struct Candidate {
    channel_id: B256,
    payer: Address,
    nonce: U256,
    transferred: U256,
    digest: B256,
    encoded: Vec<u8>,
    /// The lock list behind its `locksRoot` (empty for none).
    locks: Vec<u8>,
    /// For a received proof: its Watch, signature and recovered signer.
    watch: Option<(Watch, Signature65, Address)>,
}

type Checked = Result<Candidate, String>;

impl Candidate {
    fn summary(&self) -> ProofSummary {
        ProofSummary {
            transferred: self.transferred,
            nonce: self.nonce,
            digest: self.digest,
            watch_deadline: self.watch.as_ref().map(|(watch, _, _)| watch.deadline),
        }
    }
}

impl Context {
    fn domain(&self) -> Eip712Domain {
        token_network_domain(self.chain_id, self.token_network)
    }

    /// Decodes a proof, checks its lock list and recovers its payer.
    fn verify_proof(&self, text: &str, locks: Option<&[u8]>, domain: &Eip712Domain) -> Checked {
        let signed = SignedProof::from_text(text).map_err(|e| format!("proof: {e}"))?;
        if signed.chain_id != self.chain_id || signed.token_network != self.token_network {
            return Err("proof: signed for another chain or TokenNetwork".into());
        }
        let locks = check_locks(&signed.proof, locks)?;
        let digest = signed.proof.eip712_signing_hash(domain);
        let payer = recover(&digest, &signed.signature).map_err(|e| format!("proof: {e}"))?;
        Ok(Candidate {
            channel_id: signed.proof.channelId,
            payer,
            nonce: signed.proof.nonce,
            transferred: signed.proof.transferredAmount,
            digest,
            encoded: signed.encode().map_err(|e| format!("proof: {e}"))?,
            locks,
            watch: None,
        })
    }

    fn verify_received(&self, item: ReceiptItem) -> Checked {
        let domain = self.domain();
        let mut candidate = self.verify_proof(
            &item.proof,
            item.locks.as_ref().map(|b| b.as_ref()),
            &domain,
        )?;
        let watch = Watch {
            channelId: candidate.channel_id,
            proofDigest: candidate.digest,
            watcher: item.watch.watcher,
            reward: item.watch.reward,
            deadline: item.watch.deadline,
        };
        if watch.watcher != self.watcher && watch.watcher != Address::ZERO {
            return Err(format!(
                "watch.watcher: names {}, not this watcher",
                watch.watcher
            ));
        }
        if watch.watcher == Address::ZERO && !watch.reward.is_zero() {
            return Err("watch.reward: a Watch open to anyone must carry no reward".into());
        }
        let signature = Signature65::from_slice(&item.watch.signature)
            .map_err(|e| format!("watch.signature: {e}"))?;
        let signer = recover(&watch.eip712_signing_hash(&domain), &signature)
            .map_err(|e| format!("watch.signature: {e}"))?;
        candidate.watch = Some((watch, signature, signer));
        Ok(candidate)
    }

    fn verify_sent(&self, backup: SentBackup) -> Checked {
        match backup {
            SentBackup::Text(text) => self.verify_proof(&text, None, &self.domain()),
            SentBackup::WithLocks { proof, locks } => {
                self.verify_proof(&proof, Some(&locks), &self.domain())
            }
        }
    }

    fn verify_condition(&self, upload: &ConditionUpload, now: u64) -> CheckedUpload {
        conditions::verify(
            upload,
            self.chain_id,
            self.watcher,
            &self.registrations,
            now,
        )
    }
}

type CheckedUpload = Result<CheckedCondition, String>;

/// The lock list a proof's `locksRoot` and `lockedAmount` commit to, or why `given` is not it.
fn check_locks(proof: &BalanceProof, given: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let given = given.unwrap_or_default();
    if proof.locksRoot.is_zero() {
        if !given.is_empty() {
            return Err("locks: the proof's locksRoot is zero: it has no locks".into());
        }
        if !proof.lockedAmount.is_zero() {
            return Err("proof.lockedAmount: not zero though the proof has no locks".into());
        }
        return Ok(Vec::new());
    }
    if given.is_empty() {
        return Err(
            "locks: required: the proof has locks, and the watcher cannot submit it without their list"
                .into(),
        );
    }
    let list = LockList::decode(given).map_err(|e| format!("locks: {e}"))?;
    if list.root() != proof.locksRoot {
        return Err(format!(
            "locks: their root {} is not the proof's locksRoot {}",
            list.root(),
            proof.locksRoot
        ));
    }
    if list.locked_amount() != proof.lockedAmount {
        return Err(format!(
            "locks: they lock {} in all, the proof's lockedAmount is {}",
            list.locked_amount(),
            proof.lockedAmount
        ));
    }
    Ok(given.to_vec())
}

/// An item's fate, before the acknowledgment is signed.
enum Decision {
    Stored(B256, B256),
    Known,
    Rejected(String),
}

impl Decision {
    fn outcome(self, index: usize, ack: Option<(&SecpSigner, &Eip712Domain)>) -> ItemOutcome {
        let (status, reason, ack) = match self {
            Self::Stored(channel_id, digest) => {
                let ack = ack.map(|(signer, domain)| {
                    let message = WatcherAck {
                        channelId: channel_id,
                        proofDigest: digest,
                    };
                    Bytes::copy_from_slice(signer.sign_typed(&message, domain).as_bytes())
                });
                (ItemStatus::Stored, None, ack)
            }
            Self::Known => (ItemStatus::Known, None, None),
            Self::Rejected(reason) => (ItemStatus::Rejected, Some(reason), None),
        };
        ItemOutcome {
            index,
            status,
            reason,
            ack,
        }
    }
}

/// What the batch's transaction knows: the channels it names, the proofs already held for
/// them, and what the batch will write.
struct Book {
    channels: HashMap<B256, ChannelRow>,
    /// (channel, signer, is a received proof) -> what is held.
    held: HashMap<(B256, Address, bool), ProofSummary>,
    /// The winners to write, by the same key.
    writes: HashMap<(B256, Address, bool), Candidate>,
    /// Closed channels that got a newer proof: their dispute jobs look again at once.
    closed: Vec<B256>,
    /// Conditions to keep, by id.
    conditions: HashMap<B256, CheckedCondition>,
    /// Conditions of the batch already held (and not expired).
    held_conditions: std::collections::HashSet<B256>,
}

impl Book {
    async fn load(
        conn: &mut AnyConnection,
        domain: &Eip712Domain,
        received: &[Checked],
        sent: &[Checked],
        uploads: &[CheckedUpload],
    ) -> Result<Self, ApiError> {
        let mut ids: Vec<B256> = received
            .iter()
            .chain(sent)
            .filter_map(|c| c.as_ref().ok().map(|c| c.channel_id))
            .chain(
                uploads
                    .iter()
                    .filter_map(|c| c.as_ref().ok().map(|c| c.channel_id)),
            )
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let channels = load_channels(&mut *conn, &ids)
            .await
            .map_err(ApiError::storage)?;
        let mut held = HashMap::new();
        for (table, received) in [("receipts", true), ("proof_backups", false)] {
            for part in ids.chunks(sql::CHUNK) {
                let query = format!(
                    "SELECT channel_id, signer, nonce, transferred_amount, {} FROM {table} WHERE channel_id IN ({})",
                    if received {
                        "proof_digest, watch_deadline"
                    } else {
                        "proof"
                    },
                    sql::placeholders(1, part.len())
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(query));
                for id in part {
                    query = query.bind(id.to_vec());
                }
                for row in query
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(ApiError::storage)?
                {
                    let read = || -> Result<_, crate::SettlementError> {
                        let key = (sql::b256(&row, 0)?, sql::address(&row, 1)?, received);
                        let (digest, watch_deadline) = if received {
                            (sql::b256(&row, 4)?, Some(sql::u256(&row, 5)?))
                        } else {
                            let bytes: Vec<u8> = row.try_get(4)?;
                            let signed = SignedProof::decode(&bytes).map_err(|e| {
                                crate::SettlementError::Stored {
                                    field: "proof_backups.proof".into(),
                                    value: e.to_string(),
                                }
                            })?;
                            (signed.proof.eip712_signing_hash(domain), None)
                        };
                        let summary = ProofSummary {
                            transferred: sql::u256(&row, 3)?,
                            nonce: sql::u256_be(&row, 2)?,
                            digest,
                            watch_deadline,
                        };
                        Ok((key, summary))
                    };
                    let (key, summary) = read().map_err(ApiError::storage)?;
                    held.insert(key, summary);
                }
            }
        }
        let mut condition_ids: Vec<B256> = uploads
            .iter()
            .filter_map(|c| c.as_ref().ok().map(|c| c.condition_id))
            .collect();
        condition_ids.sort_unstable();
        condition_ids.dedup();
        let mut held_conditions = std::collections::HashSet::new();
        for part in condition_ids.chunks(sql::CHUNK) {
            let query = format!(
                "SELECT condition_id FROM watcher_conditions WHERE state <> 'expired' AND condition_id IN ({})",
                sql::placeholders(1, part.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(query));
            for id in part {
                query = query.bind(id.to_vec());
            }
            for row in query
                .fetch_all(&mut *conn)
                .await
                .map_err(ApiError::storage)?
            {
                held_conditions.insert(sql::b256(&row, 0).map_err(ApiError::storage)?);
            }
        }
        Ok(Self {
            channels,
            held,
            writes: HashMap::new(),
            closed: Vec::new(),
            conditions: HashMap::new(),
            held_conditions,
        })
    }

    fn decide_condition(&mut self, checked: CheckedUpload) -> Decision {
        let checked = match checked {
            Ok(checked) => checked,
            Err(reason) => return Decision::Rejected(reason),
        };
        let channel = match self.channels.get(&checked.channel_id) {
            Some(channel) if channel.phase != ChannelPhase::Settled => channel,
            Some(_) => return Decision::Rejected("channelId: the channel is settled".into()),
            None => return Decision::Rejected("channelId: unknown channel".into()),
        };
        if checked.from != channel.participant1 && checked.from != channel.participant2 {
            return Decision::Rejected(format!(
                "request.from: {} is not a participant of the channel",
                checked.from
            ));
        }
        if self.held_conditions.contains(&checked.condition_id)
            || self.conditions.contains_key(&checked.condition_id)
        {
            return Decision::Known;
        }
        let decision = Decision::Stored(checked.channel_id, checked.condition_id);
        self.conditions.insert(checked.condition_id, checked);
        decision
    }

    fn decide(&mut self, checked: Checked) -> Decision {
        match self.check(checked) {
            Ok(decision) => decision,
            Err(reason) => Decision::Rejected(reason),
        }
    }

    fn check(&mut self, checked: Checked) -> Result<Decision, String> {
        let candidate = checked?;
        let channel = match self.channels.get(&candidate.channel_id) {
            Some(channel) if channel.phase != ChannelPhase::Settled => channel,
            Some(_) => return Err("proof: the channel is settled".into()),
            None => return Err("proof: unknown channel".into()),
        };
        let payer = candidate.payer;
        let receiver = if payer == channel.participant1 {
            channel.participant2
        } else if payer == channel.participant2 {
            channel.participant1
        } else {
            return Err(format!(
                "proof: signer {payer} is not a participant of the channel"
            ));
        };
        if !within_deposits(candidate.transferred, channel.deposit1, channel.deposit2) {
            return Err("proof: transferred amount exceeds the channel's deposits".into());
        }
        if let Some((_, _, signer)) = &candidate.watch
            && *signer != receiver
        {
            return Err(format!(
                "watch.signature: signed by {signer}, not by the receiver {receiver}"
            ));
        }
        let closed = channel.phase == ChannelPhase::Closed;
        let key = (candidate.channel_id, payer, candidate.watch.is_some());
        let offered = candidate.summary();
        match judge_upload(self.held.get(&key), &offered) {
            Verdict::Store | Verdict::RenewWatch => {}
            Verdict::Known => return Ok(Decision::Known),
            Verdict::Refuse(error @ ProtocolError::TransferredDecreased { .. }) => {
                return Err(format!(
                    "proof.transferredAmount: {error}: the watcher keeps the proof that proves the most"
                ));
            }
            Verdict::Refuse(error) => return Err(format!("proof.nonce: {error}")),
        }
        if closed && !self.closed.contains(&candidate.channel_id) {
            self.closed.push(candidate.channel_id);
        }
        let decision = Decision::Stored(candidate.channel_id, candidate.digest);
        self.held.insert(key, offered);
        self.writes.insert(key, candidate);
        Ok(decision)
    }

    /// Writes the winners in bulk. The upserts replace only what proves less (or the same
    /// proof with an earlier Watch), so replicas storing the same channel's proofs at once
    /// cannot move it backwards.
    async fn write(&self, conn: &mut AnyConnection, backend: Backend) -> Result<(), ApiError> {
        let (received, sent): (Vec<&Candidate>, Vec<&Candidate>) =
            self.writes.values().partition(|c| c.watch.is_some());
        match backend {
            // SQLite runs in this process: one cached single-row statement per receipt costs
            // less than one huge statement built and prepared for every batch.
            Backend::Sqlite => {
                for c in &received {
                    bind_receipt(sqlx::query(UPSERT_RECEIPT), c)
                        .execute(&mut *conn)
                        .await
                        .map_err(ApiError::storage)?;
                }
            }
            // Postgres is a round trip away: a few multi-row statements per batch.
            Backend::Postgres => {
                for part in received.chunks(sql::CHUNK / 11) {
                    let query = UPSERT_RECEIPT.replace(
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                        &format!("VALUES {}", sql::rows(part.len(), 11)),
                    );
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(query));
                    for c in part {
                        query = bind_receipt(query, c);
                    }
                    query.execute(&mut *conn).await.map_err(ApiError::storage)?;
                }
            }
        }
        for part in sent.chunks(sql::CHUNK / 6) {
            let query = format!(
                "INSERT INTO proof_backups (channel_id, signer, nonce, transferred_amount, proof, locks) VALUES {} \
                 ON CONFLICT (channel_id, signer) DO UPDATE SET nonce = excluded.nonce, \
                 transferred_amount = excluded.transferred_amount, proof = excluded.proof, locks = excluded.locks \
                 WHERE proof_backups.transferred_amount < excluded.transferred_amount \
                 OR (proof_backups.transferred_amount = excluded.transferred_amount AND proof_backups.nonce < excluded.nonce)",
                sql::rows(part.len(), 6)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(query));
            for c in part {
                query = query
                    .bind(c.channel_id.to_vec())
                    .bind(c.payer.to_string())
                    .bind(c.nonce.to_be_bytes::<32>().to_vec())
                    .bind(sql::sortable(c.transferred))
                    .bind(c.encoded.clone())
                    .bind(c.locks.clone());
            }
            query.execute(&mut *conn).await.map_err(ApiError::storage)?;
        }
        let uploads: Vec<&CheckedCondition> = self.conditions.values().collect();
        for part in uploads.chunks(sql::CHUNK / 7) {
            // A condition held (or registered) stays as it is; one that expired unregistered
            // takes the new request.
            let query = format!(
                "INSERT INTO watcher_conditions (condition_id, channel_id, request, signature, state, due_at, uploaded_at) \
                 VALUES {} ON CONFLICT (condition_id) DO UPDATE SET channel_id = excluded.channel_id, \
                 request = excluded.request, signature = excluded.signature, state = excluded.state, \
                 due_at = excluded.due_at, due_chain_time = NULL, tx_id = NULL, detail = NULL \
                 WHERE watcher_conditions.state = 'expired'",
                sql::rows(part.len(), 7)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(query));
            let now = smartmesh_chain::unix_millis();
            for c in part {
                query = query
                    .bind(c.condition_id.to_vec())
                    .bind(c.channel_id.to_vec())
                    .bind(c.request.clone())
                    .bind(c.signature.clone())
                    .bind(crate::ConditionState::Held.as_str())
                    .bind(now)
                    .bind(now);
            }
            query.execute(&mut *conn).await.map_err(ApiError::storage)?;
        }
        for part in self.closed.chunks(sql::CHUNK) {
            let query = format!(
                "UPDATE watcher_jobs SET due_at = $1 WHERE state = 'active' AND channel_id IN ({})",
                sql::placeholders(2, part.len())
            );
            let mut query =
                sqlx::query(sqlx::AssertSqlSafe(query)).bind(smartmesh_chain::unix_millis());
            for id in part {
                query = query.bind(id.to_vec());
            }
            query.execute(&mut *conn).await.map_err(ApiError::storage)?;
        }
        Ok(())
    }
}

const UPSERT_RECEIPT: &str = "INSERT INTO receipts (channel_id, signer, nonce, transferred_amount, proof_digest, \
     proof, watcher, reward, watch_deadline, watch_signature, locks) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (channel_id, signer) DO UPDATE SET nonce = excluded.nonce, \
     transferred_amount = excluded.transferred_amount, proof_digest = excluded.proof_digest, \
     proof = excluded.proof, locks = excluded.locks, watcher = excluded.watcher, reward = excluded.reward, \
     watch_deadline = excluded.watch_deadline, watch_signature = excluded.watch_signature \
     WHERE receipts.transferred_amount < excluded.transferred_amount \
     OR (receipts.transferred_amount = excluded.transferred_amount AND receipts.nonce < excluded.nonce) \
     OR (receipts.proof_digest = excluded.proof_digest AND receipts.watch_deadline < excluded.watch_deadline)";

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind_receipt<'q>(query: AnyQuery<'q>, c: &Candidate) -> AnyQuery<'q> {
    let (watch, signature, _) = c.watch.as_ref().expect("a received proof has its Watch");
    query
        .bind(c.channel_id.to_vec())
        .bind(c.payer.to_string())
        .bind(c.nonce.to_be_bytes::<32>().to_vec())
        .bind(sql::sortable(c.transferred))
        .bind(c.digest.to_vec())
        .bind(c.encoded.clone())
        .bind(watch.watcher.to_string())
        .bind(watch.reward.to_string())
        .bind(sql::sortable(watch.deadline))
        .bind(signature.as_bytes().to_vec())
        .bind(c.locks.clone())
}
