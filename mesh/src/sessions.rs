//! Data sessions in the wallet (DESIGN.md 4.2): a shell around `smartmesh_protocol::relay`.
//! The sender streams packets along a route of relays to a recipient; the recipient signs a
//! delivery acknowledgment every `k` packets; each checkpoint is paid hop by hop with ordinary
//! channel payments, each followed by a `Paid` notice naming the checkpoint, which the next
//! node checks against what its channel actually received. A relay forwards at most one window
//! past what it was paid for. A sender that may vanish pre-locks each window, and each relay
//! locks it on, each lock followed by a `Locked` notice the next node checks the same way.
//! Every session's state is in the journal, so a restarted node goes on where it stopped: its
//! state is saved before the payments it decides, so a crash can leave a payment unmade
//! (costing a relay at most the window of credit it extends), never made twice.

use std::collections::{HashMap, VecDeque};

use alloy::primitives::{Address, B256, U256};
use smartmesh_protocol::{
    Ack, Lock,
    channel::ChannelMessage,
    conditions_domain,
    relay::{
        DataFrame, DeliveryAck, RecipientState, RelayEffect, RelayEvent, RelayState, SenderEffect,
        SenderState, SessionTerms,
    },
    sign_typed,
};

use crate::{
    Mesh, MeshError, Outgoing,
    journal::{HeldAck, Journal},
};

/// A node's part in one data session.
#[derive(Debug, Clone)]
pub(crate) enum Session {
    Sender {
        state: SenderState,
        /// The packets not sent yet, in order.
        waiting: VecDeque<Vec<u8>>,
    },
    Relay {
        state: RelayState,
    },
    Recipient {
        state: RecipientState,
        data: Vec<u8>,
    },
}

/// A session's state machine as the journal keeps it; the packets are kept beside it.
/// Externally tagged: serde buffers an internally tagged enum's content in a form without
/// u128, which the prices and earnings are.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Stored {
    Sender(SenderState),
    Relay(RelayState),
    Recipient(RecipientState),
}

impl Session {
    fn stored(&self) -> Result<String, MeshError> {
        let stored = match self {
            Self::Sender { state, .. } => Stored::Sender(state.clone()),
            Self::Relay { state } => Stored::Relay(state.clone()),
            Self::Recipient { state, .. } => Stored::Recipient(state.clone()),
        };
        serde_json::to_string(&stored).map_err(|_| MeshError::Stored("session"))
    }
}

/// The sessions in the journal, as they stood when last saved.
pub(crate) async fn load_sessions(journal: &Journal) -> Result<HashMap<B256, Session>, MeshError> {
    let mut sessions = HashMap::new();
    for (id, text) in journal.sessions().await? {
        let stored: Stored =
            serde_json::from_str(&text).map_err(|_| MeshError::Stored("session"))?;
        let session = match stored {
            Stored::Sender(state) => {
                let waiting = journal
                    .session_packets(id, state.stream.forwarded)
                    .await?
                    .into();
                Session::Sender { state, waiting }
            }
            Stored::Relay(state) => Session::Relay { state },
            Stored::Recipient(state) => {
                let data = journal.session_packets(id, 0).await?.concat();
                Session::Recipient { state, data }
            }
        };
        sessions.insert(id, session);
    }
    Ok(sessions)
}

/// What handling a frame hands over: channel messages (payments, kept in the outbox when the
/// peer is out of reach) and data frames (sent if the link is up: a lost one stalls the
/// session, never its payments).
#[derive(Debug, Default)]
pub struct SessionOut {
    /// Payments and their notices' channel messages.
    pub channel: Vec<Outgoing>,
    /// Data frames, in order.
    pub frames: Vec<(Address, DataFrame)>,
}

impl SessionOut {
    /// A payment for a session's checkpoints through `checkpoint`, and its notice after it.
    fn paid(&mut self, to: Address, message: ChannelMessage, session: B256, checkpoint: u64) {
        self.channel.push(Outgoing { to, message });
        self.frames.push((
            to,
            DataFrame::Paid {
                session,
                checkpoint,
            },
        ));
    }

    /// A pre-lock of window `checkpoint`, and its notice after it.
    fn locked(&mut self, to: Address, message: ChannelMessage, session: B256, checkpoint: u64) {
        self.channel.push(Outgoing { to, message });
        self.frames.push((
            to,
            DataFrame::Locked {
                session,
                checkpoint,
            },
        ));
    }
}

/// How a session stands, for a person or an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session.
    pub session: B256,
    /// This node's part: `sender`, `relay` or `recipient`.
    pub role: &'static str,
    /// Packets passed on (sent, forwarded or received).
    pub packets: u64,
    /// The highest checkpoint acknowledged.
    pub acked: Option<u64>,
    /// What this node earned relaying, in wei.
    pub earned: u128,
}

impl Session {
    fn summary(&self) -> SessionSummary {
        match self {
            Self::Sender { state, .. } => SessionSummary {
                session: state.stream.terms.session,
                role: "sender",
                packets: state.stream.forwarded,
                acked: state.stream.acked,
                earned: 0,
            },
            Self::Relay { state } => SessionSummary {
                session: state.stream.terms.session,
                role: "relay",
                packets: state.stream.forwarded,
                acked: state.stream.acked,
                earned: state.earned,
            },
            Self::Recipient { state, .. } => SessionSummary {
                session: state.terms.session,
                role: "recipient",
                packets: state.received,
                acked: state
                    .received
                    .checked_div(state.terms.k)
                    .and_then(|n| n.checked_sub(1)),
                earned: 0,
            },
        }
    }
}

impl Mesh {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<B256, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Saves `session`'s state, with `packets` it sent or took, in one transaction.
    async fn save_session(&self, session: B256, packets: &[(u64, &[u8])]) -> Result<(), MeshError> {
        let state = match self.sessions().get(&session) {
            Some(kept) => kept.stored()?,
            None => return Ok(()),
        };
        self.journal.save_session(session, &state, packets).await
    }

    /// Opens a session sending `packets` along `terms`' route: the opening and the first
    /// window go to the first relay. With `pre_lock`, each window's pay is locked to the first
    /// relay as it is sent, on the recipient's acknowledgment of it (for a sender that may
    /// vanish), and unlocked when the acknowledgment comes back.
    pub async fn open_session(
        &self,
        terms: SessionTerms,
        packets: Vec<Vec<u8>>,
        pre_lock: bool,
    ) -> Result<SessionOut, MeshError> {
        if terms.sender != self.address() {
            return Err(MeshError::Malformed("session terms naming another sender"));
        }
        if u64::try_from(packets.len()).ok() != Some(terms.packets) {
            return Err(MeshError::Malformed(
                "session terms naming another packet count",
            ));
        }
        if self.sessions().contains_key(&terms.session) {
            return Err(MeshError::Malformed("session already open"));
        }
        let state = SenderState::new(terms.clone(), pre_lock)?;
        let first = terms.relays[0];
        self.channel_with(first).await?;
        let mut out = SessionOut::default();
        out.frames.push((first, DataFrame::Open(terms.clone())));
        let numbered: Vec<(u64, &[u8])> = (0u64..).zip(packets.iter().map(Vec::as_slice)).collect();
        let stored = Session::Sender {
            state,
            waiting: VecDeque::new(),
        }
        .stored()?;
        self.journal
            .save_session(terms.session, &stored, &numbered)
            .await?;
        self.sessions().insert(
            terms.session,
            Session::Sender {
                state: SenderState::new(terms.clone(), pre_lock)?,
                waiting: packets.into(),
            },
        );
        let locks = self.send_what_credit_allows(terms.session, &mut out);
        self.save_session(terms.session, &[]).await?;
        self.carry_out_sender(terms.session, locks, &mut out)
            .await?;
        Ok(out)
    }

    /// How each session this wallet takes part in stands.
    pub fn session_summaries(&self) -> Vec<SessionSummary> {
        let mut all: Vec<SessionSummary> = self.sessions().values().map(Session::summary).collect();
        all.sort_by_key(|summary| summary.session);
        all
    }

    /// What the recipient got of `session`, in order.
    pub fn session_data(&self, session: B256) -> Option<Vec<u8>> {
        match self.sessions().get(&session)? {
            Session::Recipient { data, .. } => Some(data.clone()),
            _ => None,
        }
    }

    /// Sends the packets the route's credit allows; returns the pre-locks of the windows
    /// sent, to carry out.
    fn send_what_credit_allows(&self, session: B256, out: &mut SessionOut) -> Vec<SenderEffect> {
        let mut sessions = self.sessions();
        let Some(Session::Sender { state, waiting }) = sessions.get_mut(&session) else {
            return Vec::new();
        };
        let first = state.stream.terms.relays[0];
        let mut locks = Vec::new();
        while let Some(packet) = waiting.front() {
            match state.send(packet) {
                Ok((index, lock)) => {
                    locks.extend(lock);
                    let bytes = waiting.pop_front().expect("a packet waits");
                    out.frames.push((
                        first,
                        DataFrame::Packet {
                            session,
                            index,
                            bytes,
                        },
                    ));
                }
                Err(_) => break,
            }
        }
        locks
    }

    /// Carries out a sender's payments: pays, pre-locks and unlocks over the channel with the
    /// first relay, each followed by its notice.
    async fn carry_out_sender(
        &self,
        session: B256,
        effects: Vec<SenderEffect>,
        out: &mut SessionOut,
    ) -> Result<(), MeshError> {
        for effect in effects {
            match effect {
                SenderEffect::Pay {
                    to,
                    checkpoint,
                    amount,
                } => {
                    self.pay_checkpoint(session, to, checkpoint, amount, out)
                        .await?
                }
                SenderEffect::PreLock {
                    to,
                    checkpoint,
                    condition_id,
                    amount,
                } => {
                    // Long enough for the acknowledgment to come back along the route and,
                    // if this wallet is gone by then, for every relay to claim in turn, each
                    // one margin sooner than the one before it.
                    let hops = self.session_hops(session);
                    let expiry = self.now() + self.mediation().delta().saturating_mul(hops);
                    self.pre_lock(session, to, checkpoint, condition_id, amount, expiry, out)
                        .await?;
                }
                SenderEffect::Unlock {
                    to,
                    checkpoint,
                    condition_id,
                } => {
                    self.unlock_checkpoint(session, to, checkpoint, condition_id, out)
                        .await?
                }
            }
        }
        Ok(())
    }

    /// Locks `amount` to `to` on `condition_id` until `expiry`, then tells it which window.
    #[allow(clippy::too_many_arguments)]
    async fn pre_lock(
        &self,
        session: B256,
        to: Address,
        checkpoint: u64,
        condition_id: B256,
        amount: u128,
        expiry: u64,
        out: &mut SessionOut,
    ) -> Result<(), MeshError> {
        let channel = self.channel_with(to).await?;
        let lock = Lock {
            expiry,
            amount,
            condition_id,
        };
        let message = self.lock(channel, lock, Vec::new()).await?;
        out.locked(to, message, session, checkpoint);
        Ok(())
    }

    /// The channels a session's data crosses.
    fn session_hops(&self, session: B256) -> u64 {
        match self.sessions().get(&session) {
            Some(Session::Sender { state, .. }) => {
                u64::try_from(state.stream.terms.relays.len()).unwrap_or(u64::MAX) + 1
            }
            _ => 1,
        }
    }

    fn conditions_domain(&self) -> alloy::sol_types::Eip712Domain {
        conditions_domain(self.config.chain_id, self.config.condition_registry)
    }

    /// Takes a data frame from `from`.
    pub async fn handle_frame(
        &self,
        from: Address,
        frame: DataFrame,
    ) -> Result<SessionOut, MeshError> {
        let mut out = SessionOut::default();
        match frame {
            DataFrame::Open(terms) => self.take_open(from, terms, &mut out).await?,
            DataFrame::Packet {
                session,
                index,
                bytes,
            } => {
                self.take_packet(from, session, index, bytes, &mut out)
                    .await?
            }
            DataFrame::Ack(ack) => self.take_ack(from, ack, &mut out).await?,
            DataFrame::Paid {
                session,
                checkpoint,
            } => self.take_paid(from, session, checkpoint, &mut out).await?,
            DataFrame::Locked {
                session,
                checkpoint,
            } => {
                self.take_locked(from, session, checkpoint, &mut out)
                    .await?
            }
        }
        Ok(out)
    }

    async fn take_open(
        &self,
        from: Address,
        terms: SessionTerms,
        out: &mut SessionOut,
    ) -> Result<(), MeshError> {
        if self.sessions().contains_key(&terms.session) {
            return Ok(());
        }
        let me = self.address();
        let session = if terms.recipient == me {
            if terms.relays.last() != Some(&from) {
                return Err(MeshError::Malformed(
                    "session opened by a node off its route",
                ));
            }
            Session::Recipient {
                state: RecipientState::new(terms.clone())?,
                data: Vec::new(),
            }
        } else {
            let position = terms
                .relays
                .iter()
                .position(|relay| *relay == me)
                .ok_or(MeshError::Malformed("session not routed through this node"))?;
            let upstream = terms.upstream_of(position);
            if upstream != from {
                return Err(MeshError::Malformed(
                    "session opened by a node off its route",
                ));
            }
            if terms.prices[position] < self.data_price() {
                return Err(MeshError::Malformed(
                    "session paying less than this relay asks",
                ));
            }
            self.channel_with(from).await?;
            let next = terms.downstream_of(position);
            self.channel_with(next).await?;
            out.frames.push((next, DataFrame::Open(terms.clone())));
            Session::Relay {
                state: RelayState::new(terms.clone(), position)?,
            }
        };
        let relays = matches!(session, Session::Relay { .. });
        self.sessions().insert(terms.session, session);
        self.save_session(terms.session, &[]).await?;
        if relays {
            self.start_credit(from, terms.session).await?;
        }
        Ok(())
    }

    /// Before a relay's first session with `upstream`, or when none of its sessions with it
    /// is waiting for pay: what `upstream` paid so far counts for no session.
    async fn start_credit(&self, upstream: Address, session: B256) -> Result<(), MeshError> {
        let waiting = self.sessions().iter().any(|(id, kept)| match kept {
            Session::Relay { state } => {
                let stream = &state.stream;
                *id != session
                    && stream.terms.upstream_of(state.position) == upstream
                    && stream.terms.packets_paid(stream.paid) < stream.forwarded
            }
            _ => false,
        });
        if waiting {
            return Ok(());
        }
        let received = self.session_pay_from(upstream).await?;
        let credited = self
            .journal
            .session_credit(upstream)
            .await?
            .unwrap_or_default();
        let state = self.stored_session(session)?;
        self.journal
            .credit_session(upstream, received.max(credited), session, &state)
            .await
    }

    /// What `upstream` paid over its channel that a session may count: all it transferred,
    /// less the mediated payments it unlocked to this wallet (pay this wallet passed on, or
    /// was paid as a payment's target, which no session notice may claim).
    async fn session_pay_from(&self, upstream: Address) -> Result<U256, MeshError> {
        let channel = self.channel_with(upstream).await?;
        let transferred = self.channel_state(channel).await?.theirs.transferred();
        let mediated = self.mediated_unlocked_by(upstream).await?;
        Ok(transferred.saturating_sub(mediated))
    }

    fn stored_session(&self, session: B256) -> Result<String, MeshError> {
        self.sessions()
            .get(&session)
            .ok_or(MeshError::Malformed("unknown session"))?
            .stored()
    }

    async fn take_packet(
        &self,
        from: Address,
        session: B256,
        index: u64,
        bytes: Vec<u8>,
        out: &mut SessionOut,
    ) -> Result<(), MeshError> {
        let domain = self.conditions_domain();
        let taken = {
            let mut sessions = self.sessions();
            match sessions.get_mut(&session) {
                Some(Session::Relay { state }) => {
                    let position = state.position;
                    let terms = &state.stream.terms;
                    let upstream = terms.upstream_of(position);
                    let next = terms.downstream_of(position);
                    if from != upstream {
                        return Err(MeshError::Malformed("packet from a node off the route"));
                    }
                    let (next_state, effects) = state
                        .clone()
                        .apply(RelayEvent::Packet { index, bytes }, &domain)?;
                    *state = next_state;
                    for effect in effects {
                        match effect {
                            RelayEffect::Forward { index, bytes } => out.frames.push((
                                next,
                                DataFrame::Packet {
                                    session,
                                    index,
                                    bytes,
                                },
                            )),
                            RelayEffect::Refuse { index, reason } => {
                                tracing::info!(target: "smartmesh::relay", %session, index, ?reason, "not forwarded");
                            }
                            other => unreachable!("a packet only forwards or refuses: {other:?}"),
                        }
                    }
                    None
                }
                Some(Session::Recipient { state, data }) => {
                    if state.terms.relays.last() != Some(&from) {
                        return Err(MeshError::Malformed("packet from a node off the route"));
                    }
                    let upstream = from;
                    match state.receive(index, &bytes) {
                        Ok(checkpoint) => {
                            data.extend_from_slice(&bytes);
                            if let Some(checkpoint) = checkpoint {
                                let signature = sign_typed(
                                    &self.key,
                                    &Ack {
                                        messageHash: checkpoint.message_hash(),
                                    },
                                    &domain,
                                );
                                out.frames.push((
                                    upstream,
                                    DataFrame::Ack(DeliveryAck {
                                        checkpoint,
                                        signature,
                                    }),
                                ));
                            }
                            Some(bytes)
                        }
                        Err(_) => return Ok(()),
                    }
                }
                _ => return Err(MeshError::Malformed("packet of an unknown session")),
            }
        };
        match taken {
            Some(bytes) => self.save_session(session, &[(index, &bytes)]).await,
            None => self.save_session(session, &[]).await,
        }
    }

    async fn take_ack(
        &self,
        from: Address,
        ack: DeliveryAck,
        out: &mut SessionOut,
    ) -> Result<(), MeshError> {
        let domain = self.conditions_domain();
        let session = ack.checkpoint.session;
        let pay = {
            let mut sessions = self.sessions();
            match sessions.get_mut(&session) {
                Some(Session::Relay { state }) => {
                    let terms = &state.stream.terms;
                    let position = state.position;
                    let next = terms.downstream_of(position);
                    let upstream = terms.upstream_of(position);
                    if from != next {
                        return Err(MeshError::Malformed(
                            "acknowledgment from a node off the route",
                        ));
                    }
                    let (next_state, _) = state.clone().apply(RelayEvent::Ack(ack), &domain)?;
                    *state = next_state;
                    out.frames.push((upstream, DataFrame::Ack(ack)));
                    None
                }
                Some(Session::Sender { state, .. }) => {
                    if from != state.stream.terms.relays[0] {
                        return Err(MeshError::Malformed(
                            "acknowledgment from a node off the route",
                        ));
                    }
                    Some(state.take_ack(&ack, &domain)?)
                }
                _ => return Err(MeshError::Malformed("acknowledgment of an unknown session")),
            }
        };
        let Some(pay) = pay else {
            // A relay keeps every acknowledgment it passes back: it meets, on chain, the
            // locks pre-locked to it on that checkpoint (uploaded only while one is pending).
            let recipient = self.session_recipient(session)?;
            self.journal
                .insert_ack(&HeldAck {
                    condition_id: ack.checkpoint.condition_id(recipient),
                    signer: recipient,
                    message_hash: ack.checkpoint.message_hash(),
                    signature: ack.signature.as_bytes().to_vec(),
                })
                .await?;
            return self.save_session(session, &[]).await;
        };
        // The notices go before the next window's packets: a relay forwards those only once
        // paid for the window before.
        self.save_session(session, &[]).await?;
        self.carry_out_sender(session, pay, out).await?;
        let locks = self.send_what_credit_allows(session, out);
        self.save_session(session, &[]).await?;
        self.carry_out_sender(session, locks, out).await
    }

    fn session_recipient(&self, session: B256) -> Result<Address, MeshError> {
        match self.sessions().get(&session) {
            Some(Session::Relay { state }) => Ok(state.stream.terms.recipient),
            Some(Session::Sender { state, .. }) => Ok(state.stream.terms.recipient),
            Some(Session::Recipient { state, .. }) => Ok(state.terms.recipient),
            None => Err(MeshError::Malformed("unknown session")),
        }
    }

    /// Pays `to` for the session's checkpoints through `checkpoint`, then tells it which.
    async fn pay_checkpoint(
        &self,
        session: B256,
        to: Address,
        checkpoint: u64,
        amount: u128,
        out: &mut SessionOut,
    ) -> Result<(), MeshError> {
        let channel = self.channel_with(to).await?;
        let proof = self.pay(channel, U256::from(amount)).await?;
        out.paid(to, ChannelMessage::Payment(proof), session, checkpoint);
        Ok(())
    }

    /// Unlocks the pre-lock of window `checkpoint` to `to`, then tells it which.
    async fn unlock_checkpoint(
        &self,
        session: B256,
        to: Address,
        checkpoint: u64,
        condition_id: B256,
        out: &mut SessionOut,
    ) -> Result<(), MeshError> {
        let channel = self.channel_with(to).await?;
        let message = self.unlock(channel, condition_id).await?;
        out.paid(to, message, session, checkpoint);
        Ok(())
    }

    /// A relay's session with the node before it, checked to be from that node.
    fn relay_session(&self, from: Address, session: B256) -> Result<RelayState, MeshError> {
        let state = match self.sessions().get(&session) {
            Some(Session::Relay { state }) => state.clone(),
            _ => return Err(MeshError::Malformed("notice of an unknown session")),
        };
        if from != state.stream.terms.upstream_of(state.position) {
            return Err(MeshError::Malformed("notice from a node off the route"));
        }
        Ok(state)
    }

    async fn take_paid(
        &self,
        from: Address,
        session: B256,
        checkpoint: u64,
        out: &mut SessionOut,
    ) -> Result<(), MeshError> {
        let domain = self.conditions_domain();
        let state = self.relay_session(from, session)?;
        let terms = &state.stream.terms;
        let position = state.position;
        // The notice counts only as far as the channel shows pay arrived that no other
        // notice counted: one payment never pays for two sessions.
        let newly = terms
            .packets_paid(Some(checkpoint))
            .saturating_sub(terms.packets_paid(state.stream.paid));
        let owed = U256::from(terms.pay_for(position, newly)?);
        let received = self.session_pay_from(from).await?;
        let credited = self.journal.session_credit(from).await?.unwrap_or_default();
        if received < credited + owed {
            return Err(MeshError::Malformed("payment notice ahead of the payment"));
        }
        let (state, effects) = state.apply(RelayEvent::Paid { checkpoint }, &domain)?;
        let stored = {
            let mut sessions = self.sessions();
            let Some(Session::Relay { state: kept }) = sessions.get_mut(&session) else {
                return Err(MeshError::Malformed("notice of an unknown session"));
            };
            *kept = state;
            Session::Relay {
                state: kept.clone(),
            }
            .stored()?
        };
        self.journal
            .credit_session(from, credited + owed, session, &stored)
            .await?;
        for effect in effects {
            match effect {
                RelayEffect::PayNext {
                    to,
                    checkpoint,
                    amount,
                } => {
                    self.pay_checkpoint(session, to, checkpoint, amount, out)
                        .await?
                }
                RelayEffect::UnlockNext {
                    to,
                    checkpoint,
                    condition_id,
                } => {
                    self.unlock_checkpoint(session, to, checkpoint, condition_id, out)
                        .await?
                }
                other => unreachable!("a payment only pays or unlocks on: {other:?}"),
            }
        }
        Ok(())
    }

    /// The node before takes a pre-lock notice: it counts once the channel holds that node's
    /// lock of the window's pay on the recipient's acknowledgment of it; the relay locks it on.
    async fn take_locked(
        &self,
        from: Address,
        session: B256,
        checkpoint: u64,
        out: &mut SessionOut,
    ) -> Result<(), MeshError> {
        let domain = self.conditions_domain();
        let state = self.relay_session(from, session)?;
        let stream = &state.stream;
        let Some(window) = stream.checkpoint(checkpoint) else {
            return Err(smartmesh_protocol::ProtocolError::LockBeforeWindow(checkpoint).into());
        };
        let condition_id = window.condition_id(stream.terms.recipient);
        let owed = stream
            .terms
            .pay_for(state.position, stream.window_packets(checkpoint))?;
        let channel = self.channel_with(from).await?;
        let held = self.channel_state(channel).await?.theirs.locks;
        let Some(lock) = held
            .locks()
            .iter()
            .find(|lock| lock.condition_id == condition_id && lock.amount >= owed)
            .copied()
        else {
            return Err(MeshError::Malformed("pre-lock notice ahead of the lock"));
        };
        let event = RelayEvent::Locked {
            checkpoint,
            expiry: lock.expiry,
            margin: self.mediation().delta(),
            now: self.now(),
        };
        let (state, effects) = state.apply(event, &domain)?;
        if let Some(Session::Relay { state: kept }) = self.sessions().get_mut(&session) {
            *kept = state;
        }
        self.save_session(session, &[]).await?;
        for effect in effects {
            if let RelayEffect::PreLockNext {
                to,
                checkpoint,
                condition_id,
                amount,
                expiry,
            } = effect
            {
                self.pre_lock(session, to, checkpoint, condition_id, amount, expiry, out)
                    .await?;
            }
        }
        Ok(())
    }
}
