//! The phone's wallet: offline payments under the client discipline of DESIGN.md section 4.
//!
//! - Signing and persisting a payment hold the channel's lock: no two proofs share a nonce.
//! - A proof is in the journal before it is returned (write-ahead); a retry resends it.
//! - The close claim is the largest amount ever signed, acknowledged or not.
//! - Capacity counts withdrawals signed but not yet on chain.
//! - After signing a close, withdraw or cooperative settle, the channel is frozen until that
//!   lands or its deadline passes.
//! - A wallet restored from a backup refuses to close until it learned from the watcher the
//!   latest proof it signed.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use smartmesh_protocol::{
    BalanceProof, CooperativeSettle, PayerCapacity, Signature65, SignedProof, Withdraw,
    check_successor, sign_typed, token_network_domain,
};

use crate::{
    Capacity, Channel, MeshError,
    journal::{Journal, Stored},
    wallet::load_key,
};

/// Where the wallet's contracts and services are.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// The chain.
    pub chain_id: u64,
    /// The SMT token.
    pub token: Address,
    /// The SignedAgent relayed operations go through.
    pub signed_agent: Address,
    /// The TokenNetwork.
    pub token_network: Address,
    /// A JSON-RPC endpoint for reading the chain, when there is internet.
    pub rpc_url: Option<String>,
    /// The settlement watcher.
    pub watcher_url: Option<String>,
    /// The relayer.
    pub relayer_url: Option<String>,
    /// What the wallet's Watches pay the watcher for a successful dispute, in SMT wei.
    pub watch_reward: U256,
}

/// A payment [`Mesh::receive_text`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The payer's proof.
    pub proof: SignedProof,
    /// The journal already held exactly this proof (a retried handover): nothing changed.
    pub already_held: bool,
}

/// A wallet: its key and its journal.
pub struct Mesh {
    pub(crate) key: PrivateKeySigner,
    pub(crate) journal: Journal,
    pub(crate) config: MeshConfig,
    pub(crate) http: alloy::transports::http::reqwest::Client,
    locks: Mutex<HashMap<B256, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("address", &self.key.address())
            .finish_non_exhaustive()
    }
}

/// The key file inside a wallet directory.
pub const KEY_FILE: &str = "key";
/// The journal inside a wallet directory.
pub const JOURNAL_FILE: &str = "journal.sqlite";

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

impl Mesh {
    /// Opens the wallet in `dir` (its `key` and `journal.sqlite`).
    pub async fn open(dir: &Path, config: MeshConfig) -> Result<Self, MeshError> {
        let key = load_key(&dir.join(KEY_FILE))?;
        let journal = Journal::open(&dir.join(JOURNAL_FILE)).await?;
        Ok(Self {
            key,
            journal,
            config,
            http: alloy::transports::http::reqwest::Client::new(),
            locks: Mutex::default(),
        })
    }

    /// The wallet's address.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    /// Marks the journal as restored from a backup: it may miss proofs signed after the
    /// backup, so closing waits for [`Mesh::restore`].
    pub async fn mark_restored(&self) -> Result<(), MeshError> {
        self.journal.set_meta("restored", "1").await
    }

    /// Whether closing waits for [`Mesh::restore`].
    pub async fn needs_restore(&self) -> Result<bool, MeshError> {
        Ok(self.journal.meta("restored").await?.as_deref() == Some("1"))
    }

    /// Records a channel's on-chain state (from the chain, the watcher, or the caller).
    pub async fn track(&self, channel: &Channel) -> Result<(), MeshError> {
        self.journal.save_channel(channel).await
    }

    /// A channel in the journal.
    pub async fn channel(&self, id: B256) -> Result<Channel, MeshError> {
        self.journal
            .channel(id)
            .await?
            .ok_or(MeshError::UnknownChannel(id))
    }

    /// Every channel in the journal.
    pub async fn channels(&self) -> Result<Vec<Channel>, MeshError> {
        let mut channels = Vec::new();
        for id in self.journal.channels().await? {
            channels.push(self.channel(id).await?);
        }
        Ok(channels)
    }

    /// What can still move in the channel.
    pub async fn capacity(&self, id: B256) -> Result<Capacity, MeshError> {
        let channel = self.channel(id).await?;
        let sent = self
            .journal
            .latest_sent(id)
            .await?
            .map_or(U256::ZERO, |p| p.transferred);
        let received = self
            .journal
            .latest_received(id)
            .await?
            .map_or(U256::ZERO, |p| p.transferred);
        let now = now();
        Ok(Capacity::of(
            &channel,
            sent,
            received,
            self.journal
                .signed_withdrawal(id, self.address(), now)
                .await?,
            self.journal
                .signed_withdrawal(id, channel.partner, now)
                .await?,
        ))
    }

    /// The amount a close by this wallet must claim: the largest it ever signed.
    pub async fn close_claim(&self, id: B256) -> Result<U256, MeshError> {
        self.journal.most_signed(id).await
    }

    /// Pays `amount` more to the partner: signs the next proof and writes it to the journal
    /// before returning it, under the channel's lock. Hand the result over by any means
    /// (`to_text()` for a QR code or a file, `encode()` for a radio).
    pub async fn pay(&self, id: B256, amount: U256) -> Result<SignedProof, MeshError> {
        let lock = self.lock(id);
        let _held = lock.lock().await;
        let channel = self.usable(id).await?;
        let capacity = self.capacity(id).await?;
        if amount.is_zero() || amount > capacity.can_send {
            return Err(MeshError::OverCapacity {
                channel: id,
                amount,
                capacity: capacity.can_send,
            });
        }
        let last = self.journal.latest_sent(id).await?;
        let nonce = last
            .as_ref()
            .map_or(U256::ZERO, |p| p.nonce)
            .checked_add(U256::from(1))
            .ok_or(MeshError::OutOfRange {
                field: "nonce",
                value: U256::MAX.to_string(),
            })?;
        let proof = BalanceProof {
            channelId: id,
            nonce,
            transferredAmount: capacity.sent + amount,
            ..Default::default()
        };
        let signed = SignedProof {
            chain_id: self.config.chain_id,
            token_network: self.config.token_network,
            signature: sign_typed(&self.key, &proof, &self.domain()),
            proof,
        };
        let stored = Stored {
            nonce: signed.proof.nonce,
            transferred: signed.proof.transferredAmount,
            bytes: signed.encode()?,
        };
        // Written (and synced to disk) before anyone can see it.
        let mut tx = self.journal.pool().begin().await?;
        Journal::insert_sent(&mut tx, id, &stored).await?;
        tx.commit().await?;
        tracing::debug!(target: "smartmesh::mesh", channel = %id, partner = %channel.partner, nonce = %stored.nonce, "paid");
        Ok(signed)
    }

    /// The latest payment this wallet signed, to hand over again: a retry never re-signs.
    pub async fn last_payment(&self, id: B256) -> Result<Option<SignedProof>, MeshError> {
        self.journal
            .latest_sent(id)
            .await?
            .map(|stored| SignedProof::decode(&stored.bytes).map_err(MeshError::from))
            .transpose()
    }

    /// Accepts a payment in its text form (`smr1...`).
    pub async fn receive_text(&self, text: &str) -> Result<Received, MeshError> {
        self.receive(SignedProof::from_text(text)?).await
    }

    /// Accepts a payment in its binary form.
    pub async fn receive_bytes(&self, bytes: &[u8]) -> Result<Received, MeshError> {
        self.receive(SignedProof::decode(bytes)?).await
    }

    async fn receive(&self, signed: SignedProof) -> Result<Received, MeshError> {
        if signed.chain_id != self.config.chain_id
            || signed.token_network != self.config.token_network
        {
            return Err(MeshError::OtherDeployment {
                chain_id: signed.chain_id,
                token_network: signed.token_network,
            });
        }
        let id = signed.proof.channelId;
        let lock = self.lock(id);
        let _held = lock.lock().await;
        let bytes = signed.encode()?;
        // A handover retried (the payer did not hear back) brings the same proof again.
        if self.journal.holds_received(id, &bytes).await? {
            return Ok(Received {
                proof: signed,
                already_held: true,
            });
        }
        let channel = self.usable(id).await?;
        let signer = signed.signer()?;
        if signer != channel.partner {
            return Err(MeshError::NotFromPartner {
                signer,
                partner: channel.partner,
            });
        }
        let previous = match self.journal.latest_received(id).await? {
            Some(stored) => Some(SignedProof::decode(&stored.bytes)?.proof),
            None => None,
        };
        let sent = self
            .journal
            .latest_sent(id)
            .await?
            .map_or(U256::ZERO, |p| p.transferred);
        let capacity = PayerCapacity {
            deposit: channel.partner_deposit,
            withdrawn: channel.partner_withdrawn.max(
                self.journal
                    .signed_withdrawal(id, channel.partner, now())
                    .await?,
            ),
            received: sent,
        };
        check_successor(id, previous.as_ref(), &signed.proof, &capacity)?;
        self.journal
            .insert_received(
                id,
                &Stored {
                    nonce: signed.proof.nonce,
                    transferred: signed.proof.transferredAmount,
                    bytes,
                },
            )
            .await?;
        Ok(Received {
            proof: signed,
            already_held: false,
        })
    }

    /// Signs a withdrawal of `total` for `participant` (this wallet or its partner). Signing
    /// its own freezes the channel until it lands or `deadline` passes; either way the total
    /// counts against that participant's capacity until then.
    pub async fn sign_withdraw(
        &self,
        id: B256,
        participant: Address,
        total: U256,
        deadline: u64,
    ) -> Result<Signature65, MeshError> {
        let lock = self.lock(id);
        let _held = lock.lock().await;
        self.usable(id).await?;
        let message = Withdraw {
            channelId: id,
            participant,
            totalWithdraw: total,
            deadline: U256::from(deadline),
        };
        self.journal
            .insert_withdrawal(id, participant, total, deadline)
            .await?;
        if participant == self.address() {
            self.journal
                .set_frozen(id, Some(("withdraw", deadline)))
                .await?;
        }
        Ok(sign_typed(&self.key, &message, &self.domain()))
    }

    /// Signs a cooperative settle; the channel freezes until it lands or `deadline` passes.
    pub async fn sign_cooperative_settle(
        &self,
        id: B256,
        balance1: U256,
        balance2: U256,
        deadline: u64,
    ) -> Result<Signature65, MeshError> {
        let lock = self.lock(id);
        let _held = lock.lock().await;
        self.usable(id).await?;
        let message = CooperativeSettle {
            channelId: id,
            balance1,
            balance2,
            deadline: U256::from(deadline),
        };
        self.journal
            .set_frozen(id, Some(("cooperative settle", deadline)))
            .await?;
        Ok(sign_typed(&self.key, &message, &self.domain()))
    }

    /// Freezes the channel for a close this wallet is about to sign.
    pub(crate) async fn freeze_for_close(&self, id: B256, until: u64) -> Result<(), MeshError> {
        let lock = self.lock(id);
        let _held = lock.lock().await;
        self.usable(id).await?;
        if self.needs_restore().await? {
            return Err(MeshError::MustRestore);
        }
        self.journal.set_frozen(id, Some(("close", until))).await
    }

    /// The EIP-712 digest of a proof, as the watcher acknowledges it.
    pub fn proof_digest(&self, proof: &BalanceProof) -> B256 {
        proof.eip712_signing_hash(&self.domain())
    }

    pub(crate) fn domain(&self) -> alloy::sol_types::Eip712Domain {
        token_network_domain(self.config.chain_id, self.config.token_network)
    }

    /// The channel, if payments may move in it now.
    async fn usable(&self, id: B256) -> Result<Channel, MeshError> {
        let channel = self.channel(id).await?;
        if channel.state != "open" {
            return Err(MeshError::NotOpen {
                channel: id,
                state: channel.state,
            });
        }
        if let Some((reason, until)) = &channel.frozen
            && now() <= *until
        {
            return Err(MeshError::Frozen {
                channel: id,
                reason: reason.clone(),
                until: *until,
            });
        }
        Ok(channel)
    }

    fn lock(&self, id: B256) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default()
            .clone()
    }
}
