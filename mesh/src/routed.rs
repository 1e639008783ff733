//! Mediated payments in the wallet: a shell around `smartmesh_protocol::mediated`. Each
//! transfer's state is loaded, the event applied, the state written, and its effects carried
//! out as channel steps; what they produce for peers comes back as [`Outgoing`], for a
//! transport to hand over (or the outbox to keep).

use std::collections::VecDeque;

use alloy::primitives::{Address, B256, U256};
use smartmesh_protocol::{
    LockList,
    channel::{ChannelMessage, Phase},
    mediated::{
        self, HopLock, LockOutcome, MediationSettings, Node, Payment, Role, TransferEffect,
        TransferEvent, TransferState,
    },
};
use sqlx::Row;

use crate::{
    Mesh, MeshError,
    transport::{Transport, TransportError},
};

/// A channel message for a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The peer.
    pub to: Address,
    /// The message.
    pub message: ChannelMessage,
}

impl Mesh {
    /// This wallet's compressed secp256k1 public key: what a payer seals a mediated payment's
    /// secret to.
    pub fn public_key(&self) -> Result<[u8; 33], MeshError> {
        let key: [u8; 32] = self.key.credential().to_bytes().into();
        Ok(smartmesh_protocol::mediated::public_key(&key)?)
    }

    /// Starts a mediated payment: locks toward the first hop. Returns what to hand over.
    pub async fn pay_routed(&self, payment: &Payment) -> Result<Vec<Outgoing>, MeshError> {
        let (state, effects) = mediated::initiate(payment, self.mediation(), self.now())?;
        self.save_transfer(&state).await?;
        self.carry_out(state.condition_id, effects).await
    }

    /// Takes a channel message from `from` and runs the transfer it belongs to, if any.
    /// Returns what to hand over (replies, forwarded locks, unlocks).
    pub async fn receive_routed(
        &self,
        from: Address,
        message: ChannelMessage,
    ) -> Result<Vec<Outgoing>, MeshError> {
        let received = self.receive(message.clone()).await?;
        if received.already_held {
            return Ok(Vec::new());
        }
        let mut out: Vec<Outgoing> = received
            .replies
            .into_iter()
            .map(|message| Outgoing { to: from, message })
            .collect();
        let (condition_id, event) = match &message {
            ChannelMessage::LockedTransfer(transfer) if !transfer.metadata.is_empty() => {
                let condition_id = transfer.lock.condition_id;
                if self.load_transfer(condition_id).await?.is_none() {
                    let key: [u8; 32] = self.key.credential().to_bytes().into();
                    let node = Node {
                        me: self.address(),
                        key: &key,
                        min_fee: self.min_fee(),
                        settings: self.mediation(),
                    };
                    match mediated::receive_lock(
                        node,
                        from,
                        transfer.lock,
                        &transfer.metadata,
                        self.now(),
                    ) {
                        Ok((state, effects)) => {
                            self.save_transfer(&state).await?;
                            out.extend(self.carry_out(condition_id, effects).await?);
                        }
                        // The lock stays pending in the channel and expires back to its payer.
                        Err(error) => {
                            tracing::info!(target: "smartmesh::mesh", %condition_id, %from, %error, "not forwarding")
                        }
                    }
                }
                return Ok(out);
            }
            ChannelMessage::RevealSecret(reveal) => (
                smartmesh_protocol::hashlock_condition_id(&reveal.secret),
                TransferEvent::SecretRevealed(reveal.secret),
            ),
            ChannelMessage::Unlock(unlock) => (
                unlock.condition_id,
                TransferEvent::LockSettled {
                    partner: from,
                    outcome: LockOutcome::Unlocked,
                },
            ),
            ChannelMessage::LockExpired(expired) => (
                expired.condition_id,
                TransferEvent::LockSettled {
                    partner: from,
                    outcome: LockOutcome::Expired,
                },
            ),
            _ => return Ok(out),
        };
        out.extend(self.transfer_event(condition_id, event).await?);
        Ok(out)
    }

    /// Lets time act on every transfer still under way (expiries, registrations).
    pub async fn tick_transfers(&self) -> Result<Vec<Outgoing>, MeshError> {
        let mut out = Vec::new();
        for condition_id in self.transfer_ids().await? {
            let ended = self.load_transfer(condition_id).await?.is_none_or(|state| {
                [state.upstream, state.downstream]
                    .iter()
                    .flatten()
                    .all(|hop| hop.settled.is_some())
            });
            if ended {
                continue;
            }
            out.extend(
                self.transfer_event(condition_id, TransferEvent::Tick)
                    .await?,
            );
        }
        Ok(out)
    }

    /// Every transfer this wallet takes part in, by condition.
    pub async fn transfers(&self) -> Result<Vec<TransferState>, MeshError> {
        let mut states = Vec::new();
        for condition_id in self.transfer_ids().await? {
            states.extend(self.load_transfer(condition_id).await?);
        }
        Ok(states)
    }

    /// What `partner` paid this wallet by unlocking the locks of mediated transfers.
    pub(crate) async fn mediated_unlocked_by(&self, partner: Address) -> Result<U256, MeshError> {
        let mut sum = U256::ZERO;
        for state in self.transfers().await? {
            if let Some(hop) = &state.upstream
                && hop.partner == partner
                && hop.settled == Some(LockOutcome::Unlocked)
            {
                sum = sum.saturating_add(U256::from(hop.lock.amount));
            }
        }
        Ok(sum)
    }

    /// The transfer of `condition_id`, if this wallet takes part in it.
    pub async fn transfer(&self, condition_id: B256) -> Result<Option<TransferState>, MeshError> {
        self.load_transfer(condition_id).await
    }

    /// Hands `out` over `transport`; what cannot go now waits in the outbox.
    pub async fn send_or_queue(
        &self,
        transport: &impl Transport,
        out: Vec<Outgoing>,
    ) -> Result<(), MeshError> {
        for Outgoing { to, message } in out {
            // Whatever already waits for the peer goes first, so the order holds.
            if self.has_waiting(to).await? {
                self.queue(to, &message).await?;
                continue;
            }
            match transport.send(to, message.encode()?).await {
                Ok(()) => {}
                Err(TransportError::Unreachable(_)) => self.queue(to, &message).await?,
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    async fn transfer_event(
        &self,
        condition_id: B256,
        event: TransferEvent,
    ) -> Result<Vec<Outgoing>, MeshError> {
        let Some(state) = self.load_transfer(condition_id).await? else {
            return Ok(Vec::new());
        };
        let (next, effects) = mediated::apply(state.clone(), event, self.now())?;
        // A tick that changed nothing writes nothing.
        if next != state {
            self.save_transfer(&next).await?;
        }
        self.carry_out(condition_id, effects).await
    }

    /// Carries out effects, and the events their steps cause, until none is left.
    async fn carry_out(
        &self,
        condition_id: B256,
        effects: Vec<TransferEffect>,
    ) -> Result<Vec<Outgoing>, MeshError> {
        let mut out = Vec::new();
        let mut queue: VecDeque<TransferEffect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            let settled = match effect {
                TransferEffect::Lock { to, lock, metadata } => {
                    let id = self.channel_with(to).await?;
                    let message = self.lock(id, lock, metadata).await?;
                    out.push(Outgoing { to, message });
                    None
                }
                TransferEffect::Reveal { to, secret } => {
                    let id = self.channel_with(to).await?;
                    for message in self.learn_secret(id, secret).await? {
                        out.push(Outgoing { to, message });
                    }
                    None
                }
                TransferEffect::Unlock { to } => {
                    let id = self.channel_with(to).await?;
                    let message = self.unlock(id, condition_id).await?;
                    out.push(Outgoing { to, message });
                    Some((to, LockOutcome::Unlocked))
                }
                TransferEffect::Expire { to } => {
                    let id = self.channel_with(to).await?;
                    // The registry read the expiry needs comes from the chain when it is
                    // reachable; offline the lock stays until a read proves it expired.
                    if self.reaches_chain() {
                        self.check_registry(condition_id).await?;
                    }
                    match self.expire(id, condition_id).await {
                        Ok(message) => {
                            out.push(Outgoing { to, message });
                            Some((to, LockOutcome::Expired))
                        }
                        Err(error) => {
                            tracing::debug!(target: "smartmesh::mesh", %condition_id, %error, "expiry not yet");
                            None
                        }
                    }
                }
                TransferEffect::Register { secret } => {
                    // Online, through the relayer; else the watcher registers it from the
                    // secrets synced to it.
                    if self.reaches_relayer() {
                        self.register_secrets(vec![secret]).await?;
                    }
                    None
                }
            };
            if let Some((partner, outcome)) = settled
                && let Some(state) = self.load_transfer(condition_id).await?
            {
                let (state, more) = mediated::apply(
                    state,
                    TransferEvent::LockSettled { partner, outcome },
                    self.now(),
                )?;
                self.save_transfer(&state).await?;
                queue.extend(more);
            }
        }
        Ok(out)
    }

    /// The open channel with `partner`.
    pub async fn channel_with(&self, partner: Address) -> Result<B256, MeshError> {
        let known = self
            .partners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&partner)
            .copied();
        if let Some(id) = known {
            return Ok(id);
        }
        for channel in self.channels().await? {
            if channel.partner == partner && channel.state == Phase::Open {
                self.partners
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(partner, channel.id);
                return Ok(channel.id);
            }
        }
        Err(MeshError::NoChannelWith(partner))
    }

    async fn transfer_ids(&self) -> Result<Vec<B256>, MeshError> {
        let rows = sqlx::query("SELECT condition_id FROM transfers ORDER BY condition_id")
            .fetch_all(self.journal.pool())
            .await?;
        rows.iter()
            .map(|row| {
                B256::try_from(row.try_get::<Vec<u8>, _>(0)?.as_slice())
                    .map_err(|_| MeshError::Stored("transfer condition"))
            })
            .collect()
    }

    async fn load_transfer(&self, condition_id: B256) -> Result<Option<TransferState>, MeshError> {
        let cached = self
            .transfers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&condition_id)
            .cloned();
        if cached.is_some() {
            return Ok(cached);
        }
        let row = sqlx::query("SELECT state FROM transfers WHERE condition_id = ?")
            .bind(condition_id.as_slice())
            .fetch_optional(self.journal.pool())
            .await?;
        row.map(|row| decode(&row.try_get::<Vec<u8>, _>(0)?, self.mediation()))
            .transpose()
    }

    async fn save_transfer(&self, state: &TransferState) -> Result<(), MeshError> {
        sqlx::query(
            "INSERT INTO transfers (condition_id, state) VALUES (?, ?) \
             ON CONFLICT (condition_id) DO UPDATE SET state = excluded.state",
        )
        .bind(state.condition_id.as_slice())
        .bind(encode(state))
        .execute(self.journal.pool())
        .await?;
        self.transfers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(state.condition_id, state.clone());
        Ok(())
    }

    pub(crate) fn mediation(&self) -> MediationSettings {
        self.mediation.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    pub(crate) fn min_fee(&self) -> alloy::primitives::U256 {
        self.mediation.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// The least price per packet, in wei, this wallet relays data for.
    pub fn data_price(&self) -> u128 {
        *self.data_price.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the least price per packet, in wei, this wallet relays data for.
    pub fn set_data_price(&self, price: u128) {
        *self.data_price.lock().unwrap_or_else(|e| e.into_inner()) = price;
    }

    /// Sets the timing of mediated payments (the deployment's) and the least fee this wallet
    /// mediates for.
    pub fn set_mediation(&self, settings: MediationSettings, min_fee: alloy::primitives::U256) {
        *self.mediation.lock().unwrap_or_else(|e| e.into_inner()) = (settings, min_fee);
    }
}

// The stored form: role, condition, secret, the two hop locks, flags, the forwarded metadata.
fn encode(state: &TransferState) -> Vec<u8> {
    let mut out = Vec::with_capacity(400);
    out.push(match state.role {
        Role::Initiator => 0,
        Role::Mediator => 1,
        Role::Target => 2,
    });
    out.extend_from_slice(state.condition_id.as_slice());
    match state.secret {
        Some(secret) => {
            out.push(1);
            out.extend_from_slice(secret.as_slice());
        }
        None => out.push(0),
    }
    for hop in [&state.upstream, &state.downstream] {
        match hop {
            Some(hop) => {
                out.push(1);
                out.extend_from_slice(hop.partner.as_slice());
                out.extend_from_slice(&hop.lock.encode().expect("a lock the channel took"));
                out.push(match hop.settled {
                    None => 0,
                    Some(LockOutcome::Unlocked) => 1,
                    Some(LockOutcome::Expired) => 2,
                });
            }
            None => out.push(0),
        }
    }
    out.push(u8::from(state.revealed) | u8::from(state.registering) << 1);
    out.extend_from_slice(&(state.forward.len() as u16).to_be_bytes());
    out.extend_from_slice(&state.forward);
    out
}

fn decode(bytes: &[u8], settings: MediationSettings) -> Result<TransferState, MeshError> {
    let bad = || MeshError::Stored("transfer");
    let mut at = 0;
    let mut take = |n: usize| -> Result<&[u8], MeshError> {
        let part = bytes.get(at..at + n).ok_or_else(bad)?;
        at += n;
        Ok(part)
    };
    let role = match take(1)?[0] {
        0 => Role::Initiator,
        1 => Role::Mediator,
        2 => Role::Target,
        _ => return Err(bad()),
    };
    let condition_id = B256::from_slice(take(32)?);
    let secret = match take(1)?[0] {
        1 => Some(B256::from_slice(take(32)?)),
        _ => None,
    };
    let mut hops = [None, None];
    for hop in &mut hops {
        if take(1)?[0] == 1 {
            let partner = Address::from_slice(take(20)?);
            let lock = LockList::decode(take(64)?)?.locks()[0];
            let settled = match take(1)?[0] {
                0 => None,
                1 => Some(LockOutcome::Unlocked),
                2 => Some(LockOutcome::Expired),
                _ => return Err(bad()),
            };
            *hop = Some(HopLock {
                partner,
                lock,
                settled,
            });
        }
    }
    let flags = take(1)?[0];
    let len = u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad())?) as usize;
    let forward = take(len)?.to_vec();
    let [upstream, downstream] = hops;
    Ok(TransferState {
        role,
        condition_id,
        secret,
        upstream,
        downstream,
        revealed: flags & 1 != 0,
        registering: flags & 2 != 0,
        forward,
        settings,
    })
}
