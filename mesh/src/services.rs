//! Talking to the services when there is internet: the watcher (sync receipts, restore) and
//! the relayer (gasless operations).

use std::time::Duration;

use alloy::sol_types::{SolCall, SolValue};
use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256},
    sol_types::SolStruct,
};
use serde_json::{Value, json};
use smartmesh_protocol::{
    AgentRequest, ConditionRegistry, REGISTRATION_GAS, SignedProof, Watch, WatcherRead,
    agent_domain,
    api::relayer::{
        Accepted, Quote, QuoteRequest, RelayRequest, RelayState, RelayStatus, SignedRequest,
    },
    sign_typed, watcher_domain,
};

use crate::{
    Mesh, MeshError,
    journal::{Stored, Unsynced},
};

/// Receipts uploaded per request.
const SYNC_BATCH: usize = 1_000;
/// How long a signed read of the watcher's holdings is good.
const READ_VALIDITY_SECS: u64 = 300;

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Receipts the watcher stored (newly).
    pub stored: usize,
    /// Receipts it already held.
    pub known: usize,
    /// Receipts it refused, with its reason (kept, and uploaded again next time).
    pub rejected: Vec<(B256, String)>,
    /// Backups of this wallet's own latest proofs it stored.
    pub backups: usize,
    /// Secrets it now holds, to register for this wallet if a lock they meet is still
    /// pending near its deadline (each with a signed request paying its fee).
    pub secrets: usize,
    /// Secrets it refused, by condition, with its reason (uploaded again next time).
    pub secrets_rejected: Vec<(B256, String)>,
}

/// A relayed operation that was mined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    /// The relayer's id for it.
    pub id: i64,
    /// Its transaction.
    pub tx_hash: B256,
    /// The fee paid, in SMT wei.
    pub fee: U256,
}

impl Mesh {
    async fn call(
        &self,
        service: &'static str,
        request: alloy::transports::http::reqwest::RequestBuilder,
    ) -> Result<Value, MeshError> {
        let response = request
            .send()
            .await
            .map_err(|e| MeshError::Network(format!("{service}: {e}")))?;
        let status = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .map_err(|e| MeshError::Network(format!("{service}: {e}")))?;
        if !(200..300).contains(&status) {
            return Err(MeshError::Refused {
                service,
                status,
                error: body["error"].as_str().unwrap_or_default().to_owned(),
                detail: body["detail"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(body)
    }

    /// A service's answer, read as its API type.
    async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        service: &'static str,
        request: alloy::transports::http::reqwest::RequestBuilder,
    ) -> Result<T, MeshError> {
        serde_json::from_value(self.call(service, request).await?).map_err(|e| {
            MeshError::Network(format!("{service}: an answer that does not parse: {e}"))
        })
    }

    fn watcher(&self) -> Result<&str, MeshError> {
        if !self.is_online() {
            return Err(MeshError::Offline("watcher"));
        }
        self.config
            .watcher_url
            .as_deref()
            .ok_or(MeshError::NoService("watcher"))
    }

    fn relayer(&self) -> Result<&str, MeshError> {
        if !self.is_online() {
            return Err(MeshError::Offline("relayer"));
        }
        self.config
            .relayer_url
            .as_deref()
            .ok_or(MeshError::NoService("relayer"))
    }

    /// The watcher's address, as its health says: the `watcher` Watches and reads name.
    async fn watcher_address(&self, url: &str) -> Result<Address, MeshError> {
        Ok(self.watcher_terms(url).await?.0)
    }

    /// The watcher's address and the fee it asks to register a condition.
    async fn watcher_terms(&self, url: &str) -> Result<(Address, U256), MeshError> {
        let health = self
            .call("watcher", self.http.get(format!("{url}/v1/health")))
            .await?;
        let address = health["watcher"]
            .as_str()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| MeshError::Network("the watcher did not say its address".into()))?;
        let fee = match &health["registrationFee"] {
            Value::Null => U256::ZERO,
            fee => serde_json::from_value(fee.clone()).map_err(|_| {
                MeshError::Network(format!(
                    "the watcher's registrationFee {fee} does not parse"
                ))
            })?,
        };
        Ok((address, fee))
    }

    /// For each secret or acknowledgment the watcher does not hold and that meets a lock
    /// pending in a channel's latest received proof: the SignedAgent request registering it,
    /// naming the watcher as the only agent and paying it `fee`, valid until the lock's expiry.
    async fn condition_uploads(
        &self,
        watcher: Address,
        fee: U256,
    ) -> Result<Vec<(B256, Value)>, MeshError> {
        let mut calls: Vec<(B256, Vec<u8>)> = self
            .journal
            .unsynced_secrets()
            .await?
            .into_iter()
            .map(|(condition_id, secret)| {
                let call = ConditionRegistry::registerSecretCall { secret };
                (condition_id, call.abi_encode())
            })
            .collect();
        calls.extend(self.journal.unsynced_acks().await?.into_iter().map(|ack| {
            let call = ConditionRegistry::registerAckCall {
                signer: ack.signer,
                messageHash: ack.message_hash,
                signature: ack.signature.into(),
            };
            (ack.condition_id, call.abi_encode())
        }));
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let mut pending: Vec<(B256, smartmesh_protocol::Lock)> = Vec::new();
        for id in self.journal.channels().await? {
            if let Some(latest) = self.journal.latest_received(id).await? {
                let list = smartmesh_protocol::LockList::decode(&latest.locks)?;
                pending.extend(list.locks().iter().map(|lock| (id, *lock)));
            }
        }
        let domain = agent_domain(self.config.chain_id, self.config.signed_agent);
        let mut uploads = Vec::new();
        for (condition_id, data) in calls {
            let Some((channel, lock)) = pending
                .iter()
                .find(|(_, lock)| lock.condition_id == condition_id)
            else {
                continue;
            };
            let request = AgentRequest {
                from: self.address(),
                agent: watcher,
                target: self.config.condition_registry,
                data: data.into(),
                gas: U256::from(REGISTRATION_GAS),
                feeToken: self.config.token,
                fee,
                nonce: fresh_nonce(self.address()),
                deadline: U256::from(lock.expiry),
            };
            let signature = sign_typed(&self.key, &request, &domain);
            uploads.push((
                condition_id,
                json!({
                    "channelId": channel,
                    "request": Bytes::from(request.abi_encode()),
                    "signature": Bytes::copy_from_slice(signature.as_bytes()),
                }),
            ));
        }
        Ok(uploads)
    }

    /// Uploads every receipt the watcher does not hold yet, each with a Watch that lets the
    /// watcher dispute a stale close for this wallet, and backups of this wallet's own latest
    /// proofs; keeps the watcher's signed acknowledgments.
    pub async fn sync(&self) -> Result<SyncReport, MeshError> {
        let url = self.watcher()?;
        let (watcher, fee) = self.watcher_terms(url).await?;
        let unsynced = self.journal.unsynced().await?;
        let mut backups = Vec::new();
        for id in self.journal.channels().await? {
            if let Some(stored) = self.journal.latest_sent(id).await? {
                let text = SignedProof::decode(&stored.bytes)?.to_text()?;
                backups.push(if stored.locks.is_empty() {
                    json!(text)
                } else {
                    json!({"proof": text, "locks": Bytes::from(stored.locks)})
                });
            }
        }
        let conditions = self.condition_uploads(watcher, fee).await?;
        let mut report = SyncReport::default();
        let mut chunks: Vec<&[Unsynced]> = unsynced.chunks(SYNC_BATCH).collect();
        if chunks.is_empty() && !(backups.is_empty() && conditions.is_empty()) {
            // Backups and secrets go even when no receipt is waiting.
            chunks.push(&[]);
        }
        for (round, chunk) in chunks.into_iter().enumerate() {
            let mut items = Vec::with_capacity(chunk.len());
            for receipt in chunk.iter() {
                let signed = SignedProof::decode(&receipt.proof)?;
                let watch = Watch {
                    channelId: signed.proof.channelId,
                    proofDigest: self.proof_digest(&signed.proof),
                    watcher,
                    reward: self.config.watch_reward,
                    // Good for any close to come: the closer cannot wait it out.
                    deadline: U256::from(u64::MAX),
                };
                let signature = sign_typed(&self.key, &watch, &self.domain());
                let mut item = json!({
                    "proof": signed.to_text()?,
                    "watch": {
                        "watcher": watcher,
                        "reward": watch.reward,
                        "deadline": watch.deadline,
                        "signature": Bytes::copy_from_slice(signature.as_bytes()),
                    },
                });
                if !receipt.locks.is_empty() {
                    item["locks"] = json!(Bytes::from(receipt.locks.clone()));
                }
                items.push(item);
            }
            let first = round == 0;
            let body = json!({
                "chainId": self.config.chain_id,
                "tokenNetwork": self.config.token_network,
                "items": items,
                "sent": if first { backups.clone() } else { Vec::new() },
                "conditions": if first {
                    conditions.iter().map(|(_, upload)| upload.clone()).collect()
                } else {
                    Vec::new()
                },
            });
            let answer = self
                .call(
                    "watcher",
                    self.http.post(format!("{url}/v1/receipts")).json(&body),
                )
                .await?;
            for (
                outcome,
                Unsynced {
                    channel_id: id,
                    nonce,
                    ..
                },
            ) in answer["items"]
                .as_array()
                .into_iter()
                .flatten()
                .zip(chunk.iter())
            {
                match outcome["status"].as_str() {
                    Some(status @ ("stored" | "known")) => {
                        let ack = outcome["ack"]
                            .as_str()
                            .and_then(|hex| alloy::hex::decode(hex).ok());
                        self.journal
                            .mark_synced(*id, *nonce, ack.as_deref())
                            .await?;
                        if status == "stored" {
                            report.stored += 1;
                        } else {
                            report.known += 1;
                        }
                    }
                    _ => report.rejected.push((
                        *id,
                        outcome["reason"].as_str().unwrap_or_default().to_owned(),
                    )),
                }
            }
            report.backups += answer["sent"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|outcome| outcome["status"] == "stored")
                .count();
            if !first {
                continue;
            }
            for (outcome, (condition_id, _)) in answer["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .zip(conditions.iter())
            {
                match outcome["status"].as_str() {
                    Some("stored" | "known") => {
                        self.journal.mark_condition_synced(*condition_id).await?;
                        report.secrets += 1;
                    }
                    _ => report.secrets_rejected.push((
                        *condition_id,
                        outcome["reason"].as_str().unwrap_or_default().to_owned(),
                    )),
                }
            }
        }
        Ok(report)
    }

    /// The watcher's signed acknowledgment that it holds a received proof.
    pub async fn acknowledgment(
        &self,
        id: B256,
        nonce: U256,
    ) -> Result<Option<Vec<u8>>, MeshError> {
        self.journal.ack(id, nonce).await
    }

    /// After restoring a wallet from a backup: asks the watcher, for every channel, for the
    /// latest proof this wallet signed, and journals any the backup missed, so the close claim
    /// covers them. Until this ran, the wallet refuses to close.
    pub async fn restore(&self) -> Result<usize, MeshError> {
        let url = self.watcher()?;
        let watcher = self.watcher_address(url).await?;
        let domain = watcher_domain(self.config.chain_id, self.config.token_network);
        let mut learned = 0;
        for id in self.journal.channels().await? {
            // The watcher shows what it holds only to a participant who signs the request.
            let expires = self.now() + READ_VALIDITY_SECS;
            let read = WatcherRead {
                channelId: id,
                participant: self.address(),
                watcher,
                expiresAt: U256::from(expires),
            };
            let signature = sign_typed(&self.key, &read, &domain);
            let answer = self
                .call(
                    "watcher",
                    self.http.get(format!(
                        "{url}/v1/proofs/latest?channel={id}&signer={}&expires={expires}&signature={}",
                        self.address(),
                        Bytes::copy_from_slice(signature.as_bytes())
                    )),
                )
                .await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(MeshError::Refused { status: 404, .. }) => continue,
                Err(error) => return Err(error),
            };
            let signed = SignedProof::from_text(answer["proof"].as_str().unwrap_or_default())?;
            if signed.signer()? != self.address() || signed.proof.channelId != id {
                return Err(MeshError::Network(format!(
                    "the watcher answered a proof that is not this wallet's for {id}"
                )));
            }
            // The pending locks behind it: the close must declare every one.
            let locks: Bytes = match &answer["locks"] {
                Value::Null => Bytes::new(),
                locks => serde_json::from_value(locks.clone()).map_err(|_| {
                    MeshError::Network(format!("the watcher's lock list {locks} does not parse"))
                })?,
            };
            let list = smartmesh_protocol::LockList::decode(&locks)?;
            if list.root() != signed.proof.locksRoot {
                return Err(MeshError::Network(format!(
                    "the watcher answered a lock list for {id} that is not the proof's (root {}, the proof's {})",
                    list.root(),
                    signed.proof.locksRoot
                )));
            }
            let known = self.journal.latest_sent(id).await?;
            let nonce = signed.proof.nonce;
            if known.is_none_or(|known| nonce > known.nonce) {
                let mut tx = self.journal.pool().begin().await?;
                crate::journal::Journal::insert_sent(
                    &mut tx,
                    id,
                    &Stored {
                        nonce,
                        transferred: signed.proof.transferredAmount,
                        bytes: signed.encode()?,
                        message: None,
                        locks: locks.to_vec(),
                    },
                )
                .await?;
                tx.commit().await?;
                self.forget(Some(id));
                learned += 1;
            }
        }
        self.journal.set_meta("restored", "0").await?;
        Ok(learned)
    }

    /// Has the relayer send `data` to `target` for this wallet: quote, sign the
    /// `AgentRequest` (bound to the quoted relayer, valid `validity` seconds), relay, and wait
    /// until it is mined or fails.
    pub async fn relay(
        &self,
        target: Address,
        data: Vec<u8>,
        validity: u64,
    ) -> Result<Relayed, MeshError> {
        let url = self.relayer()?;
        let data = Bytes::from(data);
        let quote: Quote = self
            .call_as(
                "relayer",
                self.http
                    .post(format!("{url}/v1/quote"))
                    .json(&QuoteRequest {
                        from: self.address(),
                        target,
                        data: data.clone(),
                    }),
            )
            .await?;
        // Never sign for another chain or agent than this wallet's, whatever a relayer says.
        if quote.chain_id != self.config.chain_id
            || quote.signed_agent != self.config.signed_agent
            || quote.fee_token != self.config.token
        {
            return Err(MeshError::Network(
                "the relayer quoted for another chain, SignedAgent or fee token".into(),
            ));
        }
        let request = AgentRequest {
            from: self.address(),
            agent: quote.agent,
            target,
            data,
            gas: quote.gas,
            feeToken: quote.fee_token,
            fee: quote.fee,
            nonce: fresh_nonce(self.address()),
            deadline: U256::from(self.now() + validity),
        };
        let domain = agent_domain(self.config.chain_id, self.config.signed_agent);
        let signature = sign_typed(&self.key, &request, &domain);
        let digest = request.eip712_signing_hash(&domain);
        let accepted: Accepted = self
            .call_as(
                "relayer",
                self.http
                    .post(format!("{url}/v1/relay"))
                    .json(&RelayRequest {
                        quote_id: quote.quote_id,
                        request: SignedRequest::from(request),
                        signature: Bytes::copy_from_slice(signature.as_bytes()),
                    }),
            )
            .await?;
        let id = accepted.id;
        tracing::debug!(target: "smartmesh::mesh", id, %digest, "relayed");
        // Asked again soon at first (a local chain mines at once), then every quarter second.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(validity.max(10));
        let mut pause = Duration::from_millis(10);
        while tokio::time::Instant::now() < deadline {
            let status: RelayStatus = self
                .call_as("relayer", self.http.get(format!("{url}/v1/relay/{id}")))
                .await?;
            match status.status {
                RelayState::Mined => {
                    return Ok(Relayed {
                        id,
                        tx_hash: status.tx_hash.unwrap_or_default(),
                        fee: quote.fee,
                    });
                }
                RelayState::Failed => {
                    return Err(MeshError::RelayFailed(
                        status
                            .reason
                            .unwrap_or_else(|| "no reason given".to_owned()),
                    ));
                }
                RelayState::Queued | RelayState::Submitted => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
            }
        }
        Err(MeshError::RelayFailed(format!(
            "relay {id} was not mined within {validity} s; its deadline has passed, so it never will be"
        )))
    }
}

/// An unordered SignedAgent nonce no other request of this wallet's takes: its address and
/// the time in nanoseconds, hashed, plus a counter for requests signed in the same nanosecond.
fn fresh_nonce(from: Address) -> U256 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    U256::from_be_bytes(
        keccak256([from.as_slice(), &nanos.to_be_bytes(), &count.to_be_bytes()].concat()).0,
    )
}
