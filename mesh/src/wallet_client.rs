//! The phone's wallet: offline payments under the client discipline of DESIGN.md section 4.
//!
//! - Signing and persisting a payment hold the channel's lock: no two proofs share a nonce.
//! - A proof is in the journal before it is returned (write-ahead); a retry resends it.
//! - The close claim is the largest amount ever signed, acknowledged or not.
//! - Capacity counts pending locks and withdrawals signed but not yet on chain.
//!
//! The rules themselves are `smartmesh_protocol::channel`'s state machine; this is its shell:
//! load the channel from the journal, apply, persist the effects, hand back what to send.
//! - After signing a close, withdraw or cooperative settle, the channel is frozen until that
//!   lands or its deadline passes.
//! - A wallet restored from a backup refuses to close until it learned from the watcher the
//!   latest proof it signed.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use smartmesh_protocol::{
    BalanceProof, CooperativeSettle, Lock, LockList, ProtocolError, Signature65, SignedProof,
    Withdraw,
    channel::{
        Action, ChannelMessage, ChannelState, Effect, Event, Phase, RegistryRead, Settings,
        SignedWithdrawal, apply, propose,
    },
    hashlock_condition_id, sign_typed, token_network_domain,
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
    /// The ConditionRegistry whose entries decide locks.
    pub condition_registry: Address,
    /// The block the contracts were deployed in: where reading their events starts.
    pub deploy_block: u64,
    /// A JSON-RPC endpoint for reading the chain, when there is internet.
    pub rpc_url: Option<String>,
    /// The settlement watcher.
    pub watcher_url: Option<String>,
    /// The relayer.
    pub relayer_url: Option<String>,
    /// What the wallet's Watches pay the watcher for a successful dispute, in SMT wei.
    pub watch_reward: U256,
    /// `F`: seconds after which the chain's blocks are final (a lock expires at least `F`
    /// before any close this wallet has not seen settles; `LockExpired` waits `F`).
    pub finality: u64,
}

/// A message [`Mesh::receive`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The message.
    pub message: ChannelMessage,
    /// The journal already held exactly this proof (a retried handover): nothing changed.
    pub already_held: bool,
    /// What to hand back to the partner (a `RevealSecret` for a lock whose secret this
    /// wallet knows).
    pub replies: Vec<ChannelMessage>,
    /// Locks of this wallet whose secret the partner revealed: unlock them.
    pub unlock_due: Vec<B256>,
}

/// What the effects of one applied event asked the shell to do, beside persisting.
#[derive(Debug, Default)]
struct Outcome {
    already_held: bool,
    replies: Vec<ChannelMessage>,
    unlock_due: Vec<B256>,
    secret_learned: bool,
}

/// Writes what `effects` ask the journal to keep, collecting the rest.
async fn write_effects(
    conn: &mut sqlx::SqliteConnection,
    id: B256,
    state: &ChannelState,
    effects: Vec<Effect>,
) -> Result<Outcome, MeshError> {
    let mut outcome = Outcome::default();
    for effect in effects {
        match effect {
            Effect::PersistReceived(message) => {
                Journal::insert_received(conn, id, &stored(&message, &state.theirs.locks)?).await?
            }
            Effect::PersistSecret {
                condition_id,
                secret,
            } => {
                Journal::insert_secret(conn, condition_id, secret).await?;
                outcome.secret_learned = true;
            }
            Effect::AlreadyHeld => outcome.already_held = true,
            Effect::Send(message) => outcome.replies.push(message),
            Effect::UnlockDue { condition_id } => outcome.unlock_due.push(condition_id),
            Effect::PersistSent(_) => unreachable!("only a signed step persists a sent message"),
        }
    }
    Ok(outcome)
}

/// A message as a journal row: its proof, the message itself when it is more than the
/// proof, and the lock list behind the proof.
fn stored(message: &ChannelMessage, locks: &LockList) -> Result<Stored, MeshError> {
    let signed = message
        .proof()
        .expect("only proofs are journaled as sent or received");
    Ok(Stored {
        nonce: signed.proof.nonce,
        transferred: signed.proof.transferredAmount,
        bytes: signed.encode()?,
        message: match message {
            ChannelMessage::Payment(_) => None,
            other => Some(other.encode()?),
        },
        locks: locks.encode(),
    })
}

/// The channel machine's refusals, in the wallet's own terms where it has them.
fn machine(id: B256, error: ProtocolError) -> MeshError {
    match error {
        ProtocolError::ChannelNotOpen(state) => MeshError::NotOpen { channel: id, state },
        ProtocolError::ChannelFrozen(freeze) => MeshError::Frozen {
            channel: id,
            reason: freeze.kind,
            until: freeze.until,
        },
        ProtocolError::NotFromPartner { signer, partner } => {
            MeshError::NotFromPartner { signer, partner }
        }
        ProtocolError::OtherDeployment {
            chain_id,
            token_network,
        } => MeshError::OtherDeployment {
            chain_id,
            token_network,
        },
        other => MeshError::Protocol(other),
    }
}

/// A wallet: its key and its journal.
pub struct Mesh {
    pub(crate) key: PrivateKeySigner,
    pub(crate) journal: Journal,
    pub(crate) config: MeshConfig,
    pub(crate) http: alloy::transports::http::reqwest::Client,
    locks: Mutex<HashMap<B256, Arc<tokio::sync::Mutex<()>>>>,
    // Each channel's state as the journal holds it, kept after every step so that a payment
    // reads nothing back. Only this wallet writes its journal (one `Mesh` per journal); every
    // write outside the channel machine forgets the entry.
    states: Mutex<HashMap<B256, ChannelState>>,
    /// Each partner's channel and each mediated transfer, as the journal holds them (only this
    /// wallet writes them).
    pub(crate) partners: Mutex<HashMap<Address, B256>>,
    /// The peers with messages in the outbox, once read.
    pub(crate) queued: Mutex<Option<std::collections::HashSet<Address>>>,
    /// The peers whose messages are held until the chain can be read, once read.
    pub(crate) held: Mutex<Option<std::collections::BTreeSet<Address>>>,
    pub(crate) transfers: Mutex<HashMap<B256, smartmesh_protocol::mediated::TransferState>>,
    /// The data sessions this wallet takes part in, as the journal holds them.
    pub(crate) sessions: Mutex<HashMap<B256, crate::sessions::Session>>,
    /// The least price per packet, in wei, this wallet relays data for.
    pub(crate) data_price: Mutex<u128>,
    /// A virtual clock, when a simulator runs the wallet; else the system's.
    clock: Mutex<Option<crate::VirtualClock>>,
    /// Whether the phone has internet now: offline, the chain and the services are not
    /// called even when configured.
    online: std::sync::atomic::AtomicBool,
    /// The timing of mediated payments and the least fee this wallet mediates for.
    pub(crate) mediation: Mutex<(
        smartmesh_protocol::mediated::MediationSettings,
        alloy::primitives::U256,
    )>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("address", &self.key.address())
            .finish_non_exhaustive()
    }
}

/// How long a call to the chain or a service may take to connect, and in all.
const SERVICE_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const SERVICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The client every call to the chain and the services goes through. A phone's link can
/// vanish in the middle of a request, and a request left to TCP's retries would wait for
/// many minutes: it gives up instead, and the next round tries again.
fn service_client() -> Result<alloy::transports::http::reqwest::Client, MeshError> {
    alloy::transports::http::reqwest::Client::builder()
        .connect_timeout(SERVICE_CONNECT_TIMEOUT)
        .timeout(SERVICE_TIMEOUT)
        .build()
        .map_err(|e| MeshError::Network(format!("cannot make an HTTP client: {e}")))
}

/// The key file inside a wallet directory.
pub const KEY_FILE: &str = "key";
/// The journal inside a wallet directory.
pub const JOURNAL_FILE: &str = "journal.sqlite";

impl Mesh {
    /// Opens the wallet in `dir` (its `key` and `journal.sqlite`).
    pub async fn open(dir: &Path, config: MeshConfig) -> Result<Self, MeshError> {
        let key = load_key(&dir.join(KEY_FILE))?;
        let journal = Journal::open(&dir.join(JOURNAL_FILE)).await?;
        let sessions = crate::sessions::load_sessions(&journal).await?;
        Ok(Self {
            key,
            journal,
            config,
            http: service_client()?,
            locks: Mutex::default(),
            states: Mutex::default(),
            partners: Mutex::default(),
            queued: Mutex::default(),
            held: Mutex::default(),
            transfers: Mutex::default(),
            sessions: Mutex::new(sessions),
            data_price: Mutex::new(0),
            clock: Mutex::new(None),
            online: std::sync::atomic::AtomicBool::new(true),
            mediation: Mutex::new((
                smartmesh_protocol::mediated::MediationSettings::PUBLIC,
                alloy::primitives::U256::ZERO,
            )),
        })
    }

    /// Runs the wallet on `clock` instead of the system's (a simulator's virtual time).
    pub fn set_clock(&self, clock: crate::VirtualClock) {
        *self.clock.lock().unwrap_or_else(|e| e.into_inner()) = Some(clock);
    }

    /// The time the wallet judges by, in unix seconds.
    pub fn now(&self) -> u64 {
        match &*self.clock.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(clock) => clock.now(),
            None => crate::clock::system_now(),
        }
    }

    /// Tells the wallet whether it has internet now (a simulator's phones, an app that knows
    /// it is offline): offline, every call to the chain, the watcher or the relayer fails with
    /// [`MeshError::Offline`] at once, and the rules that read the chain when they can wait.
    pub fn set_online(&self, online: bool) {
        self.online
            .store(online, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the wallet may call the services now.
    pub fn is_online(&self) -> bool {
        self.online.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the chain can be read now: configured, and the phone online.
    pub fn reaches_chain(&self) -> bool {
        self.config.rpc_url.is_some() && self.is_online()
    }

    /// Whether the relayer can be asked now: configured, and the phone online.
    pub fn reaches_relayer(&self) -> bool {
        self.config.relayer_url.is_some() && self.is_online()
    }

    /// Whether the watcher can be synced to now: configured, and the phone online.
    pub fn reaches_watcher(&self) -> bool {
        self.config.watcher_url.is_some() && self.is_online()
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
        self.forget(Some(channel.id));
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

    /// The channel as the state machine sees it: the journal's row, the latest proof each
    /// side signed with its locks, the withdrawals signed, the secrets and registry reads.
    pub async fn channel_state(&self, id: B256) -> Result<ChannelState, MeshError> {
        let channel = self.channel(id).await?;
        let mut state = ChannelState::new(
            self.config.chain_id,
            self.config.token_network,
            id,
            self.address(),
            channel.partner,
            channel.settle_timeout,
            channel.open_seen_at,
            Settings {
                finality: self.config.finality,
            },
        );
        state.phase = channel.state;
        state.freeze = channel.frozen;
        state.mine.deposit = channel.my_deposit;
        state.mine.withdrawn = channel.my_withdrawn;
        state.theirs.deposit = channel.partner_deposit;
        state.theirs.withdrawn = channel.partner_withdrawn;
        for (side, who, stored) in [
            (
                &mut state.mine,
                self.address(),
                self.journal.latest_sent(id).await?,
            ),
            (
                &mut state.theirs,
                channel.partner,
                self.journal.latest_received(id).await?,
            ),
        ] {
            if let Some(stored) = stored {
                side.latest = Some(SignedProof::decode(&stored.bytes)?);
                side.locks = LockList::decode(&stored.locks)?;
            }
            side.signed_withdrawals = self
                .journal
                .withdrawals(id, who)
                .await?
                .into_iter()
                .map(|(total, deadline)| SignedWithdrawal { total, deadline })
                .collect();
        }
        state.secrets = self.journal.secrets().await?.into_iter().collect();
        state.registry = self.journal.registry_reads().await?.into_iter().collect();
        Ok(state)
    }

    /// The channel's state from the cache, or loaded from the journal into it.
    async fn cached_state(&self, id: B256) -> Result<ChannelState, MeshError> {
        if let Some(state) = self.states().get(&id) {
            return Ok(state.clone());
        }
        let state = self.channel_state(id).await?;
        self.states().insert(id, state.clone());
        Ok(state)
    }

    fn remember(&self, state: &ChannelState) {
        self.states().insert(state.id, state.clone());
    }

    /// Drops the cached state of `id`, or of every channel.
    pub(crate) fn forget(&self, id: Option<B256>) {
        // A channel read from outside (a close, a reopen) may change which one a partner's is.
        self.partners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        match id {
            Some(id) => self.states().remove(&id),
            None => {
                self.states().clear();
                None
            }
        };
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<B256, ChannelState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What can still move in the channel.
    pub async fn capacity(&self, id: B256) -> Result<Capacity, MeshError> {
        Ok(Capacity::of(&self.channel_state(id).await?, self.now()))
    }

    /// The amount a close by this wallet must claim: the largest it ever signed.
    pub async fn close_claim(&self, id: B256) -> Result<U256, MeshError> {
        self.journal.most_signed(id).await
    }

    /// Pays `amount` more to the partner: signs the next proof and writes it to the journal
    /// before returning it, under the channel's lock. Hand the result over by any means
    /// (`to_text()` for a QR code or a file, `encode()` for a radio).
    pub async fn pay(&self, id: B256, amount: U256) -> Result<SignedProof, MeshError> {
        let message = self
            .step(
                id,
                Action::Pay {
                    amount,
                    memo: B256::ZERO,
                },
            )
            .await?;
        Ok(message
            .proof()
            .cloned()
            .expect("a payment carries its proof"))
    }

    /// Locks `lock.amount` toward the partner on `lock.condition_id` until `lock.expiry`, with
    /// `metadata` bound to the proof. The `LockedTransfer` is journaled before it is returned.
    pub async fn lock(
        &self,
        id: B256,
        lock: Lock,
        metadata: Vec<u8>,
    ) -> Result<ChannelMessage, MeshError> {
        self.step(id, Action::Lock { lock, metadata }).await
    }

    /// Pays one of this wallet's pending locks: its amount moves into the transferred amount.
    pub async fn unlock(&self, id: B256, condition_id: B256) -> Result<ChannelMessage, MeshError> {
        self.step(id, Action::Unlock { condition_id }).await
    }

    /// Removes one of this wallet's pending locks unpaid, once `expiry + F` passed and the
    /// registry (read with [`Mesh::read_registry`]) shows its condition unregistered before
    /// the expiry.
    pub async fn expire(&self, id: B256, condition_id: B256) -> Result<ChannelMessage, MeshError> {
        self.step(id, Action::Expire { condition_id }).await
    }

    /// One of this wallet's own steps: proposed by the channel machine, signed, applied, and
    /// journaled before the message is returned, all under the channel's lock.
    async fn step(&self, id: B256, action: Action) -> Result<ChannelMessage, MeshError> {
        let lock = self.channel_mutex(id);
        let _held = lock.lock().await;
        let state = self.cached_state(id).await?;
        let now = self.now();
        if let Action::Pay { amount, .. } = &action {
            let capacity = state.can_send(now);
            if amount.is_zero() || *amount > capacity {
                return Err(MeshError::OverCapacity {
                    channel: id,
                    amount: *amount,
                    capacity,
                });
            }
        }
        let proof = propose(&state, &action, now).map_err(|e| machine(id, e))?;
        let signed = SignedProof {
            chain_id: self.config.chain_id,
            token_network: self.config.token_network,
            signature: sign_typed(&self.key, &proof, &self.domain()),
            proof,
        };
        let (state, effects) =
            apply(state, Event::Signed { action, signed }, now).map_err(|e| machine(id, e))?;
        let mut outgoing = None;
        // Written (and synced to disk) before anyone can see it. A step writes one row: one
        // statement, atomic by itself, without a transaction's two extra round trips.
        let mut conn = self.journal.pool().acquire().await?;
        for effect in effects {
            match effect {
                Effect::PersistSent(message) => {
                    Journal::insert_sent(&mut conn, id, &stored(&message, &state.mine.locks)?)
                        .await?
                }
                Effect::Send(message) => outgoing = Some(message),
                other => unreachable!("a signed step only persists and sends: {other:?}"),
            }
        }
        drop(conn);
        self.remember(&state);
        let message = outgoing.expect("a signed step sends its message");
        tracing::debug!(target: "smartmesh::mesh", channel = %id, partner = %state.partner, nonce = %state.mine.nonce(), "signed");
        Ok(message)
    }

    /// The latest payment this wallet signed, to hand over again: a retry never re-signs.
    pub async fn last_payment(&self, id: B256) -> Result<Option<SignedProof>, MeshError> {
        self.journal
            .latest_sent(id)
            .await?
            .map(|stored| SignedProof::decode(&stored.bytes).map_err(MeshError::from))
            .transpose()
    }

    /// The latest message this wallet signed in the channel, byte for byte as it first left.
    pub async fn last_message(&self, id: B256) -> Result<Option<ChannelMessage>, MeshError> {
        match self.journal.latest_sent(id).await? {
            Some(stored) => Ok(Some(match stored.message {
                Some(bytes) => ChannelMessage::decode(&bytes)?,
                None => ChannelMessage::Payment(SignedProof::decode(&stored.bytes)?),
            })),
            None => Ok(None),
        }
    }

    /// Accepts a payment in its text form (`smr1...`).
    pub async fn receive_text(&self, text: &str) -> Result<Received, MeshError> {
        self.receive(ChannelMessage::from_text(text)?).await
    }

    /// Accepts a payment in its binary form.
    pub async fn receive_bytes(&self, bytes: &[u8]) -> Result<Received, MeshError> {
        self.receive(ChannelMessage::decode(bytes)?).await
    }

    /// Accepts any channel message from the partner: a payment, a lock, an unlock, an expiry
    /// or a revealed secret.
    pub async fn receive(&self, message: ChannelMessage) -> Result<Received, MeshError> {
        if let Some(signed) = message.proof()
            && (signed.chain_id != self.config.chain_id
                || signed.token_network != self.config.token_network)
        {
            return Err(MeshError::OtherDeployment {
                chain_id: signed.chain_id,
                token_network: signed.token_network,
            });
        }
        let id = message.channel_id();
        let lock = self.channel_mutex(id);
        let _held = lock.lock().await;
        let state = self.cached_state(id).await?;
        // A handover retried (the payer did not hear back) brings the same proof again, maybe
        // after newer ones: only a proof not above the latest can be one.
        if let Some(signed) = message.proof()
            && signed.proof.nonce <= state.theirs.nonce()
            && self.journal.holds_received(id, &signed.encode()?).await?
        {
            return Ok(Received {
                message,
                already_held: true,
                replies: Vec::new(),
                unlock_due: Vec::new(),
            });
        }
        let (state, effects) = apply(state, Event::Received(message.clone()), self.now())
            .map_err(|e| machine(id, e))?;
        let outcome = self.persist(id, &state, effects).await?;
        Ok(Received {
            message,
            already_held: outcome.already_held,
            replies: outcome.replies,
            unlock_due: outcome.unlock_due,
        })
    }

    /// This wallet learned `secret` for the channel `id` only (a mediated transfer knows which
    /// one): what to hand the partner, if it locked on it.
    pub(crate) async fn learn_secret(
        &self,
        id: B256,
        secret: B256,
    ) -> Result<Vec<ChannelMessage>, MeshError> {
        let lock = self.channel_mutex(id);
        let _held = lock.lock().await;
        let state = self.cached_state(id).await?;
        let (state, effects) =
            apply(state, Event::SecretLearned(secret), self.now()).map_err(|e| machine(id, e))?;
        Ok(self.persist(id, &state, effects).await?.replies)
    }

    /// This wallet learned `secret`: it keeps it and returns what to hand to each partner that
    /// locked toward it on the secret's hashlock (a `RevealSecret`, so that it unlocks).
    pub async fn reveal(&self, secret: B256) -> Result<Vec<ChannelMessage>, MeshError> {
        let condition_id = hashlock_condition_id(&secret);
        let mut replies = Vec::new();
        let mut known = false;
        for id in self.journal.channels().await? {
            let lock = self.channel_mutex(id);
            let _held = lock.lock().await;
            let state = self.channel_state(id).await?;
            let relevant = state
                .theirs
                .locks
                .locks()
                .iter()
                .chain(state.mine.locks.locks())
                .any(|l| l.condition_id == condition_id);
            if !relevant {
                continue;
            }
            known = true;
            let (state, effects) = apply(state, Event::SecretLearned(secret), self.now())
                .map_err(|e| machine(id, e))?;
            replies.extend(self.persist(id, &state, effects).await?.replies);
        }
        if !known {
            return Err(MeshError::UnknownLock(condition_id));
        }
        Ok(replies)
    }

    /// Records what the registry showed for `condition_id` in a block at `block_time` (from a
    /// finalized block, or the watcher's signed read).
    pub async fn read_registry(
        &self,
        condition_id: B256,
        read: RegistryRead,
    ) -> Result<(), MeshError> {
        self.forget(None);
        self.journal.save_registry_read(condition_id, read).await
    }

    async fn persist(
        &self,
        id: B256,
        state: &ChannelState,
        effects: Vec<Effect>,
    ) -> Result<Outcome, MeshError> {
        let writes = effects
            .iter()
            .filter(|effect| {
                matches!(
                    effect,
                    Effect::PersistReceived(_) | Effect::PersistSecret { .. }
                )
            })
            .count();
        let learned: Vec<(B256, B256)> = effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::PersistSecret {
                    condition_id,
                    secret,
                } => Some((*condition_id, *secret)),
                _ => None,
            })
            .collect();
        // One row is one statement, atomic by itself, without a transaction's two extra round
        // trips; several rows are written together or not at all.
        let outcome = if writes > 1 {
            let mut tx = self.journal.pool().begin().await?;
            let outcome = write_effects(&mut tx, id, state, effects).await?;
            tx.commit().await?;
            outcome
        } else {
            let mut conn = self.journal.pool().acquire().await?;
            write_effects(&mut conn, id, state, effects).await?
        };
        // Secrets are the wallet's, not the channel's: every channel's state learns them, as a
        // reload from the journal would.
        if outcome.secret_learned {
            for cached in self.states().values_mut() {
                cached.secrets.extend(learned.iter().copied());
            }
        }
        self.remember(state);
        Ok(outcome)
    }

    /// Signs a withdrawal of `total` for `participant` (this wallet or its partner). Signing
    /// its own freezes the channel until it lands or `deadline` passes; either way the total
    /// counts against that participant's capacity until then. Refused while locks are
    /// pending.
    pub async fn sign_withdraw(
        &self,
        id: B256,
        participant: Address,
        total: U256,
        deadline: u64,
    ) -> Result<Signature65, MeshError> {
        let lock = self.channel_mutex(id);
        let _held = lock.lock().await;
        let state = self.channel_state(id).await?;
        let event = Event::WithdrawSigned {
            participant,
            total,
            deadline,
        };
        let (state, _) = apply(state, event, self.now()).map_err(|e| machine(id, e))?;
        let message = Withdraw {
            channelId: id,
            participant,
            totalWithdraw: total,
            deadline: U256::from(deadline),
        };
        self.journal
            .insert_withdrawal(id, participant, total, deadline)
            .await?;
        self.forget(Some(id));
        if participant == self.address() {
            self.journal.set_frozen(id, state.freeze).await?;
        }
        Ok(sign_typed(&self.key, &message, &self.domain()))
    }

    /// Signs a cooperative settle; the channel freezes until it lands or `deadline` passes.
    /// Refused while locks are pending.
    pub async fn sign_cooperative_settle(
        &self,
        id: B256,
        balance1: U256,
        balance2: U256,
        deadline: u64,
    ) -> Result<Signature65, MeshError> {
        let lock = self.channel_mutex(id);
        let _held = lock.lock().await;
        let state = self.channel_state(id).await?;
        let (state, _) = apply(
            state,
            Event::CooperativeSettleSigned { deadline },
            self.now(),
        )
        .map_err(|e| machine(id, e))?;
        let message = CooperativeSettle {
            channelId: id,
            balance1,
            balance2,
            deadline: U256::from(deadline),
        };
        self.journal.set_frozen(id, state.freeze).await?;
        self.forget(Some(id));
        Ok(sign_typed(&self.key, &message, &self.domain()))
    }

    /// Freezes the channel for a close this wallet is about to sign.
    pub(crate) async fn freeze_for_close(&self, id: B256, until: u64) -> Result<(), MeshError> {
        let lock = self.channel_mutex(id);
        let _held = lock.lock().await;
        let state = self.channel_state(id).await?;
        if state.phase != Phase::Open {
            return Err(machine(id, ProtocolError::ChannelNotOpen(state.phase)));
        }
        if self.needs_restore().await? {
            return Err(MeshError::MustRestore);
        }
        let (state, _) =
            apply(state, Event::CloseSigned { until }, self.now()).map_err(|e| machine(id, e))?;
        self.forget(Some(id));
        self.journal.set_frozen(id, state.freeze).await
    }

    /// The EIP-712 digest of a proof, as the watcher acknowledges it.
    pub fn proof_digest(&self, proof: &BalanceProof) -> B256 {
        proof.eip712_signing_hash(&self.domain())
    }

    pub(crate) fn domain(&self) -> alloy::sol_types::Eip712Domain {
        token_network_domain(self.config.chain_id, self.config.token_network)
    }

    fn channel_mutex(&self, id: B256) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default()
            .clone()
    }
}
