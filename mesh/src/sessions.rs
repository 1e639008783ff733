//! Data sessions in the wallet (DESIGN.md 4.2): a shell around `smartmesh_protocol::relay`.
//! The sender streams packets along a route of relays to a recipient; the recipient signs a
//! delivery acknowledgment every `k` packets; each checkpoint is paid hop by hop with ordinary
//! channel payments, each followed by a `Paid` notice naming the checkpoint, which the next
//! node checks against what its channel actually received. A relay forwards at most one window
//! past what it was paid for.

use std::collections::HashMap;

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

use crate::{Mesh, MeshError, Outgoing};

/// A node's part in one data session.
#[derive(Debug, Clone)]
pub(crate) enum Session {
    Sender {
        state: SenderState,
        /// The packets not sent yet, in order.
        waiting: std::collections::VecDeque<Vec<u8>>,
    },
    Relay {
        state: RelayState,
        /// What the previous node had paid on the channel when the session opened: the pay
        /// for this session is what it paid since.
        baseline: U256,
    },
    Recipient {
        state: RecipientState,
        data: Vec<u8>,
    },
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
            Self::Relay { state, .. } => SessionSummary {
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
        let state = SenderState::new(terms.clone(), pre_lock)?;
        let first = terms.relays[0];
        self.channel_with(first).await?;
        let mut out = SessionOut::default();
        out.frames.push((first, DataFrame::Open(terms.clone())));
        self.sessions().insert(
            terms.session,
            Session::Sender {
                state,
                waiting: packets.into(),
            },
        );
        let locks = self.send_what_credit_allows(terms.session, &mut out);
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
    /// first relay, each payment followed by its notice.
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
                    condition_id,
                    amount,
                    ..
                } => {
                    let channel = self.channel_with(to).await?;
                    // Long enough for the acknowledgment to come back along the route and,
                    // if this wallet is gone by then, for the relay to register it.
                    let hops = self.session_hops(session);
                    let lock = Lock {
                        expiry: self.now() + self.mediation().delta().saturating_mul(hops),
                        amount,
                        condition_id,
                    };
                    let message = self.lock(channel, lock, Vec::new()).await?;
                    out.channel.push(Outgoing { to, message });
                }
                SenderEffect::Unlock {
                    to,
                    checkpoint,
                    condition_id,
                } => {
                    let channel = self.channel_with(to).await?;
                    let message = self.unlock(channel, condition_id).await?;
                    out.paid(to, message, session, checkpoint);
                }
            }
        }
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
            } => self.take_packet(from, session, index, bytes, &mut out)?,
            DataFrame::Ack(ack) => self.take_ack(from, ack, &mut out).await?,
            DataFrame::Paid {
                session,
                checkpoint,
            } => self.take_paid(from, session, checkpoint, &mut out).await?,
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
            let channel = self.channel_with(from).await?;
            let baseline = self.channel_state(channel).await?.theirs.transferred();
            let next = terms.downstream_of(position);
            self.channel_with(next).await?;
            out.frames.push((next, DataFrame::Open(terms.clone())));
            Session::Relay {
                state: RelayState::new(terms.clone(), position)?,
                baseline,
            }
        };
        self.sessions().insert(terms.session, session);
        Ok(())
    }

    fn take_packet(
        &self,
        from: Address,
        session: B256,
        index: u64,
        bytes: Vec<u8>,
        out: &mut SessionOut,
    ) -> Result<(), MeshError> {
        let domain = self.conditions_domain();
        let mut sessions = self.sessions();
        match sessions.get_mut(&session) {
            Some(Session::Relay { state, .. }) => {
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
            }
            Some(Session::Recipient { state, data }) => {
                if state.terms.relays.last() != Some(&from) {
                    return Err(MeshError::Malformed("packet from a node off the route"));
                }
                let upstream = from;
                if let Ok(checkpoint) = state.receive(index, &bytes) {
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
                }
            }
            _ => return Err(MeshError::Malformed("packet of an unknown session")),
        }
        Ok(())
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
                Some(Session::Relay { state, .. }) => {
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
        self.carry_out_sender(session, pay.unwrap_or_default(), out)
            .await?;
        let locks = self.send_what_credit_allows(session, out);
        self.carry_out_sender(session, locks, out).await
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

    async fn take_paid(
        &self,
        from: Address,
        session: B256,
        checkpoint: u64,
        out: &mut SessionOut,
    ) -> Result<(), MeshError> {
        let domain = self.conditions_domain();
        let (state, baseline) = match self.sessions().get(&session) {
            Some(Session::Relay { state, baseline }) => (state.clone(), *baseline),
            _ => return Err(MeshError::Malformed("payment notice of an unknown session")),
        };
        let terms = &state.stream.terms;
        let position = state.position;
        let upstream = terms.upstream_of(position);
        if from != upstream {
            return Err(MeshError::Malformed(
                "payment notice from a node off the route",
            ));
        }
        // The notice counts only as far as the channel shows the pay arrived.
        let owed = terms.pay_for(position, terms.packets_paid(Some(checkpoint)))?;
        let channel = self.channel_with(from).await?;
        let received = self.channel_state(channel).await?.theirs.transferred();
        if received < baseline + U256::from(owed) {
            return Err(MeshError::Malformed("payment notice ahead of the payment"));
        }
        let (state, effects) = state.apply(RelayEvent::Paid { checkpoint }, &domain)?;
        if let Some(Session::Relay { state: kept, .. }) = self.sessions().get_mut(&session) {
            *kept = state;
        }
        for effect in effects {
            if let RelayEffect::PayNext {
                to,
                checkpoint,
                amount,
            } = effect
            {
                self.pay_checkpoint(session, to, checkpoint, amount, out)
                    .await?;
            }
        }
        Ok(())
    }
}
