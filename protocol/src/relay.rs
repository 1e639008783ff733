//! Paying relays for data (DESIGN.md 4.2): a sender streams packets to a recipient along a
//! route of relays; the recipient signs a cumulative delivery acknowledgment every `k`
//! packets; each checkpoint acknowledged is paid hop by hop along the route (the sender pays
//! the first relay for everyone after it, each relay the next for those after it), with
//! ordinary channel proofs. A relay forwards at most one window past what it was paid for, so a
//! recipient that never acknowledges costs it at most one window of work; a relay that drops
//! packets stops the acknowledgments, and earns nothing after them. A sender that may vanish
//! pre-locks each window as it sends it to the first relay, as a signature lock on the
//! recipient's acknowledgment of it, and each relay locks the window on to the next, one margin
//! sooner ([`downstream_expiry`]): once the recipient signs, every relay can claim on chain
//! (one `registerAck` meets every hop's lock), and a sender still there unlocks instead of
//! paying, each relay unlocking on in turn.
//!
//! The acknowledgment is the ConditionRegistry's own `Ack(messageHash)` signed by the
//! recipient, `messageHash` naming the checkpoint, so one signature both proves delivery
//! off chain and meets a signature lock on chain (`registerAck`).

use std::collections::{BTreeMap, BTreeSet};

use alloy::{
    primitives::{Address, B256, keccak256},
    sol_types::{Eip712Domain, SolValue},
};

use crate::{Ack, ProtocolError, Signature65, ack_condition_id, recover_typed};

/// The most relays a data route has.
pub const MAX_RELAYS: usize = 3;

/// What sender and relays agreed for a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionTerms {
    /// The session's name: fresh randomness of the sender's, so acknowledgments of one session
    /// never count for another.
    pub session: B256,
    /// Who sends and pays.
    pub sender: Address,
    /// Who receives and acknowledges.
    pub recipient: Address,
    /// The relays in order from the sender.
    pub relays: Vec<Address>,
    /// Each relay's price per delivered packet, in wei.
    pub prices: Vec<u128>,
    /// Packets per checkpoint.
    pub k: u64,
    /// Packets in the whole stream: the last checkpoint covers what is left after the last
    /// whole window, so every delivered packet is paid.
    pub packets: u64,
}

impl SessionTerms {
    /// Checks the terms are usable.
    pub fn check(&self) -> Result<(), ProtocolError> {
        if self.k == 0
            || self.packets == 0
            || self.relays.len() != self.prices.len()
            || self.relays.len() > MAX_RELAYS
        {
            return Err(ProtocolError::BadSessionTerms);
        }
        // Whole streams' pay must fit: then no partial sum overflows.
        self.pay_for(0, self.packets)?;
        Ok(())
    }

    /// The node before relay `position` on the route: the previous relay, or the sender.
    pub fn upstream_of(&self, position: usize) -> Address {
        match position.checked_sub(1) {
            Some(previous) => self.relays[previous],
            None => self.sender,
        }
    }

    /// The node after relay `position` on the route: the next relay, or the recipient.
    pub fn downstream_of(&self, position: usize) -> Address {
        self.relays
            .get(position + 1)
            .copied()
            .unwrap_or(self.recipient)
    }

    /// What the node before relay `hop` pays it per delivered packet: the prices of that
    /// relay and every later one.
    pub fn route_price(&self, hop: usize) -> Result<u128, ProtocolError> {
        self.prices[hop.min(self.prices.len())..]
            .iter()
            .try_fold(0u128, |sum, price| sum.checked_add(*price))
            .ok_or(ProtocolError::Overflow)
    }

    /// What the node before relay `hop` pays it for `packets` delivered packets.
    pub fn pay_for(&self, hop: usize, packets: u64) -> Result<u128, ProtocolError> {
        self.route_price(hop)?
            .checked_mul(u128::from(packets))
            .ok_or(ProtocolError::Overflow)
    }

    /// Packets delivered in all once every checkpoint through `paid` is (none: 0).
    pub fn packets_paid(&self, paid: Option<u64>) -> u64 {
        paid.and_then(|index| self.packets_through(index))
            .unwrap_or(0)
    }

    /// Packets delivered in all once checkpoint `index` is: whole windows, the last one short.
    pub fn packets_through(&self, index: u64) -> Option<u64> {
        let whole = index.checked_add(1)?.checked_mul(self.k)?;
        let last = self.window(self.packets - 1);
        (index <= last).then(|| whole.min(self.packets))
    }

    /// Whether a checkpoint ends after `passed` packets.
    pub fn ends_checkpoint(&self, passed: u64) -> bool {
        passed > 0 && (passed.is_multiple_of(self.k) || passed == self.packets)
    }

    /// The window (checkpoint index) packet `index` belongs to.
    pub fn window(&self, index: u64) -> u64 {
        index / self.k
    }

    /// The highest window a node may forward, having been paid through `paid`: one past it.
    pub fn credit_limit(&self, paid: Option<u64>) -> u64 {
        paid.map_or(0, |paid| paid.saturating_add(1))
    }
}

/// The running digest of the packets delivered: each packet chained onto the previous.
pub fn chain_packet(previous: B256, packet: &[u8]) -> B256 {
    keccak256((previous, keccak256(packet)).abi_encode())
}

/// A checkpoint: the first `packets` packets of `session`, whose running digest is `digest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The session.
    pub session: B256,
    /// Which checkpoint (0 for the first `k` packets).
    pub index: u64,
    /// Packets delivered in all.
    pub packets: u64,
    /// Their running digest.
    pub digest: B256,
}

impl Checkpoint {
    /// The `messageHash` the recipient acknowledges.
    pub fn message_hash(&self) -> B256 {
        keccak256((self.session, self.index, self.packets, self.digest).abi_encode())
    }

    /// The signature lock a window is pre-locked on: the recipient's acknowledgment of it.
    pub fn condition_id(&self, recipient: Address) -> B256 {
        ack_condition_id(recipient, self.message_hash())
    }
}

/// The recipient's signed acknowledgment of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryAck {
    /// What it acknowledges.
    pub checkpoint: Checkpoint,
    /// The recipient's EIP-712 signature of `Ack(checkpoint.message_hash())` under the
    /// ConditionRegistry's domain.
    pub signature: Signature65,
}

impl DeliveryAck {
    /// Checks the acknowledgment is the recipient's, for this session, and whole (`k` packets
    /// a checkpoint).
    pub fn check(&self, terms: &SessionTerms, domain: &Eip712Domain) -> Result<(), ProtocolError> {
        let checkpoint = &self.checkpoint;
        if checkpoint.session != terms.session {
            return Err(ProtocolError::AckForAnotherSession(checkpoint.session));
        }
        if terms.packets_through(checkpoint.index) != Some(checkpoint.packets) {
            return Err(ProtocolError::AckMismatch(checkpoint.index));
        }
        let ack = Ack {
            messageHash: checkpoint.message_hash(),
        };
        let signer = recover_typed(&ack, domain, &self.signature)?;
        if signer != terms.recipient {
            return Err(ProtocolError::WrongSigner {
                expected: terms.recipient,
                actual: signer,
            });
        }
        Ok(())
    }
}

/// What a node of the route saw of the stream, shared by relays and the sender: the digests
/// at each checkpoint boundary, and how far it was acknowledged and paid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stream {
    /// The terms.
    pub terms: SessionTerms,
    /// Packets passed on so far.
    pub forwarded: u64,
    /// Their running digest.
    pub digest: B256,
    /// The running digest at the end of each whole window, in order.
    pub boundaries: Vec<B256>,
    /// The highest checkpoint acknowledged.
    pub acked: Option<u64>,
    /// The highest checkpoint this node was paid for (the sender: it paid for).
    pub paid: Option<u64>,
}

impl Stream {
    /// A stream under `terms`, nothing passed on yet.
    pub fn new(terms: SessionTerms) -> Result<Self, ProtocolError> {
        terms.check()?;
        Ok(Self {
            terms,
            forwarded: 0,
            digest: B256::ZERO,
            boundaries: Vec::new(),
            acked: None,
            paid: None,
        })
    }

    /// Whether the next packet may go on: in order, and within one window of credit.
    pub fn may_forward(&self, index: u64) -> Result<(), Refusal> {
        if index != self.forwarded || index >= self.terms.packets {
            return Err(Refusal::OutOfOrder);
        }
        if self.terms.window(index) > self.terms.credit_limit(self.paid) {
            return Err(Refusal::NoCredit);
        }
        Ok(())
    }

    /// The checkpoint the recipient acknowledges after window `index`, once this node passed
    /// it on.
    pub fn checkpoint(&self, index: u64) -> Option<Checkpoint> {
        let digest = *self.boundaries.get(usize::try_from(index).ok()?)?;
        Some(Checkpoint {
            session: self.terms.session,
            index,
            packets: self.terms.packets_through(index)?,
            digest,
        })
    }

    /// The packets of window `index` alone.
    pub fn window_packets(&self, index: u64) -> u64 {
        self.terms.packets_paid(Some(index)) - self.terms.packets_paid(index.checked_sub(1))
    }

    fn pass(&mut self, packet: &[u8]) {
        self.digest = chain_packet(self.digest, packet);
        self.forwarded += 1;
        if self.terms.ends_checkpoint(self.forwarded) {
            self.boundaries.push(self.digest);
        }
    }

    /// Takes an acknowledgment: the recipient's, newer than the last, and of exactly the
    /// packets this node passed on.
    fn take_ack(&mut self, ack: &DeliveryAck, domain: &Eip712Domain) -> Result<(), ProtocolError> {
        ack.check(&self.terms, domain)?;
        let index = ack.checkpoint.index;
        if self.acked.is_some_and(|acked| index <= acked) {
            return Err(ProtocolError::AckReplayed(index));
        }
        let passed = usize::try_from(index)
            .ok()
            .and_then(|index| self.boundaries.get(index));
        if passed != Some(&ack.checkpoint.digest) {
            return Err(ProtocolError::AckMismatch(index));
        }
        self.acked = Some(index);
        Ok(())
    }
}

/// Why a packet was not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not the next packet of the stream.
    OutOfOrder,
    /// A whole window is already forwarded unpaid.
    NoCredit,
}

/// What happens to a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// The previous node hands it packet `index`.
    Packet {
        /// The packet's place in the stream.
        index: u64,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// The next node hands back an acknowledgment.
    Ack(DeliveryAck),
    /// The previous node's proof now pays for every checkpoint through this one.
    Paid {
        /// The checkpoint.
        checkpoint: u64,
    },
    /// The previous node's channel now holds its pre-lock of window `checkpoint`'s pay to this
    /// relay, on the recipient's acknowledgment of it, expiring at `expiry` (the shell checked
    /// the lock's condition and amount against the channel).
    Locked {
        /// The window.
        checkpoint: u64,
        /// The lock's expiry.
        expiry: u64,
        /// The time each hop keeps to pass the acknowledgment back or register it on chain:
        /// this relay's own pre-lock to the next expires that much sooner.
        margin: u64,
        /// Now.
        now: u64,
    },
}

/// The expiry a relay gives its pre-lock to the next node, having been pre-locked until
/// `expiry`: one `margin` sooner, so that after the next node is paid or claims on chain this
/// relay still has a margin to do the same. None when that leaves the next node less than a
/// margin from `now`: the relay then locks nothing on and pays the window when paid.
pub fn downstream_expiry(expiry: u64, margin: u64, now: u64) -> Option<u64> {
    let shorter = expiry.checked_sub(margin)?;
    (shorter >= now.checked_add(margin)?).then_some(shorter)
}

/// What a relay does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEffect {
    /// Pass the packet to the next node.
    Forward {
        /// Its place in the stream.
        index: u64,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// Not passed on.
    Refuse {
        /// The packet's place.
        index: u64,
        /// Why.
        reason: Refusal,
    },
    /// Hand the acknowledgment back to the previous node.
    PassAck(DeliveryAck),
    /// Pay the next relay for the checkpoints now paid for, out of what this relay was paid.
    PayNext {
        /// The next relay.
        to: Address,
        /// Through which checkpoint.
        checkpoint: u64,
        /// How much more.
        amount: u128,
    },
    /// Lock a window's pay for the rest of the route to the next relay, on the same
    /// acknowledgment the previous node's lock waits for, expiring sooner.
    PreLockNext {
        /// The next relay.
        to: Address,
        /// Which window.
        checkpoint: u64,
        /// The recipient's acknowledgment of it.
        condition_id: B256,
        /// Its pay for the relays after this one.
        amount: u128,
        /// One margin before the lock this relay holds.
        expiry: u64,
    },
    /// The previous node unlocked a pre-locked window, or paid for it: unlock this relay's
    /// pre-lock of it to the next relay, which becomes the payment.
    UnlockNext {
        /// The next relay.
        to: Address,
        /// Which window.
        checkpoint: u64,
        /// The lock's condition.
        condition_id: B256,
    },
}

/// A relay's part in a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelayState {
    /// Its place on the route (0: next to the sender).
    pub position: usize,
    /// The stream as it passed on.
    pub stream: Stream,
    /// What it earned so far (its own price for every paid packet).
    pub earned: u128,
    /// The windows the previous node pre-locked to this relay, with their locks' expiries:
    /// the recipient's acknowledgment of one is this relay's claim on chain.
    pub locked_in: BTreeMap<u64, u64>,
    /// The windows this relay pre-locked on to the next relay.
    pub locked_out: BTreeSet<u64>,
}

impl RelayState {
    /// The relay at `position` of `terms`.
    pub fn new(terms: SessionTerms, position: usize) -> Result<Self, ProtocolError> {
        if position >= terms.relays.len() {
            return Err(ProtocolError::BadSessionTerms);
        }
        Ok(Self {
            position,
            stream: Stream::new(terms)?,
            earned: 0,
            locked_in: BTreeMap::new(),
            locked_out: BTreeSet::new(),
        })
    }

    /// Applies an event. A bad acknowledgment or payment is refused and changes nothing.
    pub fn apply(
        mut self,
        event: RelayEvent,
        domain: &Eip712Domain,
    ) -> Result<(Self, Vec<RelayEffect>), ProtocolError> {
        let effects = match event {
            RelayEvent::Packet { index, bytes } => match self.stream.may_forward(index) {
                Ok(()) => {
                    self.stream.pass(&bytes);
                    vec![RelayEffect::Forward { index, bytes }]
                }
                Err(reason) => vec![RelayEffect::Refuse { index, reason }],
            },
            RelayEvent::Ack(ack) => {
                self.stream.take_ack(&ack, domain)?;
                vec![RelayEffect::PassAck(ack)]
            }
            RelayEvent::Paid { checkpoint } => self.take_paid(checkpoint)?,
            RelayEvent::Locked {
                checkpoint,
                expiry,
                margin,
                now,
            } => self.take_lock(checkpoint, expiry, margin, now)?,
        };
        Ok((self, effects))
    }

    /// The next relay, if this one is not the last.
    fn next_relay(&self) -> Option<Address> {
        self.stream.terms.relays.get(self.position + 1).copied()
    }

    fn take_paid(&mut self, checkpoint: u64) -> Result<Vec<RelayEffect>, ProtocolError> {
        if self.stream.acked.is_none_or(|acked| checkpoint > acked) {
            return Err(ProtocolError::PaidBeforeAck(checkpoint));
        }
        if self.stream.paid.is_some_and(|paid| checkpoint <= paid) {
            return Ok(Vec::new());
        }
        let from = self.stream.paid.map_or(0, |paid| paid + 1);
        let terms = &self.stream.terms;
        let newly = terms.packets_paid(Some(checkpoint)) - terms.packets_paid(self.stream.paid);
        let own = terms.prices[self.position]
            .checked_mul(u128::from(newly))
            .ok_or(ProtocolError::Overflow)?;
        let earned = self
            .earned
            .checked_add(own)
            .ok_or(ProtocolError::Overflow)?;
        let Some(to) = self.next_relay() else {
            self.stream.paid = Some(checkpoint);
            self.earned = earned;
            return Ok(Vec::new());
        };
        // In window order: a pre-locked window is paid by its unlock, the windows between
        // pre-locked ones by one payment through the last of them, each before its notice.
        let mut effects = Vec::new();
        let mut owed = 0u128;
        for window in from..=checkpoint {
            if self.locked_out.contains(&window) {
                if owed > 0 {
                    effects.push(RelayEffect::PayNext {
                        to,
                        checkpoint: window - 1,
                        amount: owed,
                    });
                    owed = 0;
                }
                let condition_id = self
                    .stream
                    .checkpoint(window)
                    .ok_or(ProtocolError::AckMismatch(window))?
                    .condition_id(self.stream.terms.recipient);
                effects.push(RelayEffect::UnlockNext {
                    to,
                    checkpoint: window,
                    condition_id,
                });
            } else {
                let pay = terms.pay_for(self.position + 1, self.stream.window_packets(window))?;
                owed = owed.checked_add(pay).ok_or(ProtocolError::Overflow)?;
            }
        }
        if owed > 0 {
            effects.push(RelayEffect::PayNext {
                to,
                checkpoint,
                amount: owed,
            });
        }
        self.stream.paid = Some(checkpoint);
        self.earned = earned;
        Ok(effects)
    }

    fn take_lock(
        &mut self,
        checkpoint: u64,
        expiry: u64,
        margin: u64,
        now: u64,
    ) -> Result<Vec<RelayEffect>, ProtocolError> {
        let Some(locked) = self.stream.checkpoint(checkpoint) else {
            return Err(ProtocolError::LockBeforeWindow(checkpoint));
        };
        if self.stream.paid.is_some_and(|paid| checkpoint <= paid)
            || self.locked_in.contains_key(&checkpoint)
        {
            return Ok(Vec::new());
        }
        self.locked_in.insert(checkpoint, expiry);
        let (Some(to), Some(expiry)) = (self.next_relay(), downstream_expiry(expiry, margin, now))
        else {
            return Ok(Vec::new());
        };
        let amount = self
            .stream
            .terms
            .pay_for(self.position + 1, self.stream.window_packets(checkpoint))?;
        self.locked_out.insert(checkpoint);
        Ok(vec![RelayEffect::PreLockNext {
            to,
            checkpoint,
            condition_id: locked.condition_id(self.stream.terms.recipient),
            amount,
            expiry,
        }])
    }
}

/// What a sender does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderEffect {
    /// Pay the first relay for the checkpoints now acknowledged that were not pre-locked.
    Pay {
        /// The first relay.
        to: Address,
        /// Through which checkpoint.
        checkpoint: u64,
        /// How much more.
        amount: u128,
    },
    /// Lock a window's pay for the whole route to the first relay, on the recipient's
    /// acknowledgment of it: a sender that may vanish before the acknowledgment comes back
    /// leaves the relays a claim on chain (`registerAck`).
    PreLock {
        /// The first relay.
        to: Address,
        /// Which checkpoint.
        checkpoint: u64,
        /// The condition: the recipient's acknowledgment of that checkpoint.
        condition_id: B256,
        /// One window's pay for the whole route.
        amount: u128,
    },
    /// Unlock a pre-locked window now acknowledged: its lock becomes the payment.
    Unlock {
        /// The first relay.
        to: Address,
        /// Which checkpoint.
        checkpoint: u64,
        /// The lock's condition.
        condition_id: B256,
    },
}

/// A sender's part in a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SenderState {
    /// The stream as it sent it.
    pub stream: Stream,
    /// Whether to pre-lock each window as it is sent.
    pub pre_lock: bool,
}

impl SenderState {
    /// A sender under `terms`.
    pub fn new(terms: SessionTerms, pre_lock: bool) -> Result<Self, ProtocolError> {
        if terms.relays.is_empty() {
            return Err(ProtocolError::BadSessionTerms);
        }
        Ok(Self {
            stream: Stream::new(terms)?,
            pre_lock,
        })
    }

    /// Sends `packet` as the next one, if the route's credit allows it: its index, and the
    /// pre-lock of its window when it completes one.
    pub fn send(&mut self, packet: &[u8]) -> Result<(u64, Option<SenderEffect>), Refusal> {
        let index = self.stream.forwarded;
        self.stream.may_forward(index)?;
        self.stream.pass(packet);
        let window = self.stream.terms.window(index);
        let completed = self.stream.terms.ends_checkpoint(self.stream.forwarded);
        let lock = match (self.pre_lock && completed, self.checkpoint(window)) {
            (true, Some(checkpoint)) => {
                let packets = self.stream.window_packets(window);
                self.stream
                    .terms
                    .pay_for(0, packets)
                    .ok()
                    .map(|amount| SenderEffect::PreLock {
                        to: self.stream.terms.relays[0],
                        checkpoint: window,
                        condition_id: checkpoint.condition_id(self.stream.terms.recipient),
                        amount,
                    })
            }
            _ => None,
        };
        Ok((index, lock))
    }

    /// The checkpoint the recipient acknowledges after window `index`, once it is sent.
    pub fn checkpoint(&self, index: u64) -> Option<Checkpoint> {
        self.stream.checkpoint(index)
    }

    /// Takes the acknowledgment back from the first relay and pays for every checkpoint it
    /// newly covers: unlocking the pre-locked ones, one payment for the rest.
    pub fn take_ack(
        &mut self,
        ack: &DeliveryAck,
        domain: &Eip712Domain,
    ) -> Result<Vec<SenderEffect>, ProtocolError> {
        self.stream.take_ack(ack, domain)?;
        let index = ack.checkpoint.index;
        let previously = self.stream.paid;
        self.stream.paid = Some(index);
        let terms = &self.stream.terms;
        let to = terms.relays[0];
        if !self.pre_lock {
            let packets = terms.packets_paid(Some(index)) - terms.packets_paid(previously);
            return Ok(vec![SenderEffect::Pay {
                to,
                checkpoint: index,
                amount: terms.pay_for(0, packets)?,
            }]);
        }
        // Every window was pre-locked as it was sent: its unlock is its payment.
        let from = previously.map_or(0, |paid| paid + 1);
        Ok((from..=index)
            .filter_map(|checkpoint| {
                self.checkpoint(checkpoint)
                    .map(|locked| SenderEffect::Unlock {
                        to,
                        checkpoint,
                        condition_id: locked.condition_id(terms.recipient),
                    })
            })
            .collect())
    }
}

/// A recipient's part: it takes packets in order and acknowledges every `k`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecipientState {
    /// The terms.
    pub terms: SessionTerms,
    /// Packets received in order.
    pub received: u64,
    /// Their running digest.
    pub digest: B256,
}

impl RecipientState {
    /// A recipient under `terms`.
    pub fn new(terms: SessionTerms) -> Result<Self, ProtocolError> {
        terms.check()?;
        Ok(Self {
            terms,
            received: 0,
            digest: B256::ZERO,
        })
    }

    /// Takes packet `index`; returns the checkpoint to acknowledge when it completes one.
    pub fn receive(&mut self, index: u64, packet: &[u8]) -> Result<Option<Checkpoint>, Refusal> {
        if index != self.received || index >= self.terms.packets {
            return Err(Refusal::OutOfOrder);
        }
        self.digest = chain_packet(self.digest, packet);
        self.received += 1;
        Ok(self
            .terms
            .ends_checkpoint(self.received)
            .then(|| Checkpoint {
                session: self.terms.session,
                index: self.terms.window(self.received - 1),
                packets: self.received,
                digest: self.digest,
            }))
    }
}

/// Wire kind of a session's opening (after the channel messages' kinds 1 to 5).
pub const KIND_SESSION_OPEN: u8 = 6;
/// Wire kind of a data packet.
pub const KIND_DATA_PACKET: u8 = 7;
/// Wire kind of a delivery acknowledgment.
pub const KIND_DELIVERY_ACK: u8 = 8;
/// Wire kind of a payment notice.
pub const KIND_SESSION_PAID: u8 = 9;
/// Wire kind of a pre-lock notice.
pub const KIND_SESSION_LOCKED: u8 = 10;
/// The most bytes of data one packet carries.
pub const MAX_PACKET: usize = 1024;

/// What travels along a data route, beside the channel messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataFrame {
    /// The sender opens a session: its terms travel along the route, each relay taking its
    /// price or refusing it.
    Open(SessionTerms),
    /// A packet of the stream.
    Packet {
        /// The session.
        session: B256,
        /// The packet's place.
        index: u64,
        /// Its bytes (at most [`MAX_PACKET`]).
        bytes: Vec<u8>,
    },
    /// The recipient's acknowledgment, travelling back.
    Ack(DeliveryAck),
    /// The previous node's notice that its latest channel payment pays for the session's
    /// checkpoints through `checkpoint` (checked against the channel before it counts).
    Paid {
        /// The session.
        session: B256,
        /// Through which checkpoint.
        checkpoint: u64,
    },
    /// The previous node's notice that its latest channel message pre-locks window
    /// `checkpoint`'s pay (checked against the channel before it counts).
    Locked {
        /// The session.
        session: B256,
        /// Which window.
        checkpoint: u64,
    },
}

/// Whether `bytes` hold a data frame rather than a channel message.
pub fn is_data_frame(bytes: &[u8]) -> bool {
    matches!(bytes, [crate::WIRE_VERSION, kind, ..] if (KIND_SESSION_OPEN..=KIND_SESSION_LOCKED).contains(kind))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtocolError> {
        let part = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or(ProtocolError::Truncated { field })?;
        self.at += n;
        Ok(part)
    }

    fn b256(&mut self, field: &'static str) -> Result<B256, ProtocolError> {
        Ok(B256::from_slice(self.take(32, field)?))
    }

    fn address(&mut self, field: &'static str) -> Result<Address, ProtocolError> {
        Ok(Address::from_slice(self.take(20, field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        let bytes: [u8; 8] = self.take(8, field)?.try_into().expect("eight bytes");
        Ok(u64::from_be_bytes(bytes))
    }

    fn end(&self) -> Result<(), ProtocolError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            trailing => Err(ProtocolError::TrailingBytes(trailing)),
        }
    }
}

impl DataFrame {
    /// The frame's wire form: the version, the kind, then the fields in order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![crate::WIRE_VERSION];
        match self {
            Self::Open(terms) => {
                out.push(KIND_SESSION_OPEN);
                out.extend_from_slice(terms.session.as_slice());
                out.extend_from_slice(terms.sender.as_slice());
                out.extend_from_slice(terms.recipient.as_slice());
                out.extend_from_slice(&terms.k.to_be_bytes());
                out.extend_from_slice(&terms.packets.to_be_bytes());
                out.push(terms.relays.len().min(usize::from(u8::MAX)) as u8);
                for (relay, price) in terms.relays.iter().zip(&terms.prices) {
                    out.extend_from_slice(relay.as_slice());
                    out.extend_from_slice(&price.to_be_bytes());
                }
            }
            Self::Packet {
                session,
                index,
                bytes,
            } => {
                out.push(KIND_DATA_PACKET);
                out.extend_from_slice(session.as_slice());
                out.extend_from_slice(&index.to_be_bytes());
                out.extend_from_slice(bytes);
            }
            Self::Ack(ack) => {
                out.push(KIND_DELIVERY_ACK);
                let checkpoint = &ack.checkpoint;
                out.extend_from_slice(checkpoint.session.as_slice());
                out.extend_from_slice(&checkpoint.index.to_be_bytes());
                out.extend_from_slice(&checkpoint.packets.to_be_bytes());
                out.extend_from_slice(checkpoint.digest.as_slice());
                out.extend_from_slice(ack.signature.as_bytes());
            }
            Self::Paid {
                session,
                checkpoint,
            } => {
                out.push(KIND_SESSION_PAID);
                out.extend_from_slice(session.as_slice());
                out.extend_from_slice(&checkpoint.to_be_bytes());
            }
            Self::Locked {
                session,
                checkpoint,
            } => {
                out.push(KIND_SESSION_LOCKED);
                out.extend_from_slice(session.as_slice());
                out.extend_from_slice(&checkpoint.to_be_bytes());
            }
        }
        out
    }

    /// Reads a frame; refuses anything malformed, oversized or with bytes left over.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let mut reader = Reader { bytes, at: 0 };
        let head = reader.take(2, "header")?;
        if head[0] != crate::WIRE_VERSION {
            return Err(ProtocolError::UnknownVersion(head[0]));
        }
        let frame = match head[1] {
            KIND_SESSION_OPEN => {
                let session = reader.b256("session")?;
                let sender = reader.address("sender")?;
                let recipient = reader.address("recipient")?;
                let k = reader.u64("k")?;
                let packets = reader.u64("packets")?;
                let relays = usize::from(reader.take(1, "relays")?[0]);
                if relays > MAX_RELAYS {
                    return Err(ProtocolError::BadSessionTerms);
                }
                let (mut route, mut prices) = (Vec::new(), Vec::new());
                for _ in 0..relays {
                    route.push(reader.address("relay")?);
                    let price: [u8; 16] = reader.take(16, "price")?.try_into().expect("16 bytes");
                    prices.push(u128::from_be_bytes(price));
                }
                let terms = SessionTerms {
                    session,
                    sender,
                    recipient,
                    relays: route,
                    prices,
                    k,
                    packets,
                };
                terms.check()?;
                Self::Open(terms)
            }
            KIND_DATA_PACKET => {
                let session = reader.b256("session")?;
                let index = reader.u64("index")?;
                let data = &bytes[reader.at..];
                if data.len() > MAX_PACKET {
                    return Err(ProtocolError::Oversized {
                        len: bytes.len(),
                        max: 2 + 32 + 8 + MAX_PACKET,
                    });
                }
                reader.at = bytes.len();
                Self::Packet {
                    session,
                    index,
                    bytes: data.to_vec(),
                }
            }
            KIND_DELIVERY_ACK => {
                let checkpoint = Checkpoint {
                    session: reader.b256("session")?,
                    index: reader.u64("checkpoint")?,
                    packets: reader.u64("packets")?,
                    digest: reader.b256("digest")?,
                };
                let signature = Signature65::from_slice(reader.take(65, "signature")?)?;
                Self::Ack(DeliveryAck {
                    checkpoint,
                    signature,
                })
            }
            KIND_SESSION_PAID => Self::Paid {
                session: reader.b256("session")?,
                checkpoint: reader.u64("checkpoint")?,
            },
            KIND_SESSION_LOCKED => Self::Locked {
                session: reader.b256("session")?,
                checkpoint: reader.u64("checkpoint")?,
            },
            kind => return Err(ProtocolError::UnknownKind(kind)),
        };
        reader.end()?;
        Ok(frame)
    }
}
