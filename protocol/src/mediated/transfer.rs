//! One mediated transfer as each node of its route sees it: the initiator, a mediator, the
//! target (DESIGN.md 4.1). Pure: `apply(state, event, now) -> (state, effects)` over what the
//! node's channels accepted, returning the channel steps to take (`TransferEffect`); the shell
//! turns each into a channel action or message, and tells the transfer what the channels did.
//!
//! The rules, with `Δ = W + S + F + σ` ([`MediationSettings::delta`]):
//! - the initiator's lock to the first hop expires `hops · Δ` from now, each hop's `Δ` sooner;
//! - a mediator forwards only with its fee and with `expiry_down = expiry_up - Δ` still ahead
//!   (by more than `σ`), so after the last moment downstream can claim it has `Δ` to claim
//!   upstream;
//! - a payer unlocks downstream only while `now < expiry_down - σ`; later the receiver's claim
//!   is the registry's, which pays it at settle anyway;
//! - once a node knows the secret and its upstream has not unlocked by
//!   `expiry_up - (S + F + σ)`, it registers the secret (the registry is global: one
//!   registration before every hop's expiry pays every hop; an offline node's watcher does it
//!   from the secrets it synced);
//! - a payer removes a lock unpaid only after `expiry + F` (the channel machine also wants the
//!   registry read of DESIGN 3.4).

use alloy::primitives::{Address, B256, U256};

use super::metadata::{Hop, RouteMetadata, SealedSecret};
use crate::{Lock, ProtocolError, hashlock_condition_id};

/// The deployment's timing of mediated payments, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediationSettings {
    /// `W`: the longest a phone may be offline while it holds a secret.
    pub offline: u64,
    /// `S`: the time to get a relayed transaction mined.
    pub mining: u64,
    /// `F`: finality.
    pub finality: u64,
    /// `σ`: the clock skew between phones.
    pub skew: u64,
    /// The most hops (channels) a route has.
    pub max_hops: usize,
}

impl MediationSettings {
    /// A public network: a phone may be offline six hours, a transaction takes ten minutes,
    /// finality fifteen, clocks disagree by five: `Δ` = 6 h 30 min.
    pub const PUBLIC: Self = Self {
        offline: 6 * 3_600,
        mining: 600,
        finality: 900,
        skew: 300,
        max_hops: 3,
    };

    /// Short settings for tests and the dev chain: `Δ` = 80 s.
    pub const SHORT: Self = Self {
        offline: 60,
        mining: 10,
        finality: 0,
        skew: 10,
        max_hops: 3,
    };

    /// `Δ = W + S + F + σ`: how much sooner each hop's lock expires.
    pub fn delta(&self) -> u64 {
        self.offline
            .saturating_add(self.mining)
            .saturating_add(self.finality)
            .saturating_add(self.skew)
    }

    /// When a node that knows the secret and has not been unlocked registers it: early enough
    /// for the transaction to be mined and final before the expiry, whatever the clocks say.
    /// (Its offline time `W` is its watcher's to cover: the watcher holds the secret.)
    fn register_from(&self, expiry: u64) -> u64 {
        expiry.saturating_sub(
            self.mining
                .saturating_add(self.finality)
                .saturating_add(self.skew),
        )
    }
}

/// What the node is in the transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It pays.
    Initiator,
    /// It forwards, keeping a fee.
    Mediator,
    /// It is paid.
    Target,
}

/// A lock of the transfer in one of the node's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopLock {
    /// The node at the channel's other end.
    pub partner: Address,
    /// The lock.
    pub lock: Lock,
    /// How it ended, if it has.
    pub settled: Option<LockOutcome>,
}

/// How a lock ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    /// Unlocked off chain: its amount moved into the payer's transferred amount.
    Unlocked,
    /// Removed unpaid after its expiry.
    Expired,
}

/// One node's view of one transfer, named by its condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferState {
    /// This node's part.
    pub role: Role,
    /// The hashlock's condition: the transfer's name.
    pub condition_id: B256,
    /// The secret, once known (the initiator's from the start).
    pub secret: Option<B256>,
    /// The lock this node receives (none for the initiator).
    pub upstream: Option<HopLock>,
    /// The lock this node pays (none for the target).
    pub downstream: Option<HopLock>,
    /// Whether the next node revealed the secret (the target: whether it opened it), so
    /// that this node's downstream lock is to be unlocked.
    pub revealed: bool,
    /// Whether this node asked for the secret's registration (or saw it registered).
    pub registering: bool,
    /// The metadata this node forwards with its lock (empty for the target).
    pub forward: Vec<u8>,
    /// The settings it runs under.
    pub settings: MediationSettings,
}

/// Something that happened to the transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferEvent {
    /// The secret became known: revealed by the next node, opened by the target, or read
    /// from the registry.
    SecretRevealed(B256),
    /// The channel with `partner` accepted a step on this transfer's lock.
    LockSettled {
        /// The channel's other end.
        partner: Address,
        /// What became of the lock.
        outcome: LockOutcome,
    },
    /// The registry shows the condition registered.
    Registered,
    /// Time passed (the shell ticks every transfer it holds).
    Tick,
}

/// A channel step the shell takes for the transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferEffect {
    /// Lock `lock` toward `to` with `metadata` (`Action::Lock`).
    Lock {
        /// The next node.
        to: Address,
        /// The lock.
        lock: Lock,
        /// The metadata for it.
        metadata: Vec<u8>,
    },
    /// Tell the payer `to` the secret (`Event::SecretLearned` on that channel sends it).
    Reveal {
        /// The upstream node.
        to: Address,
        /// The secret.
        secret: B256,
    },
    /// Unlock the lock toward `to` (`Action::Unlock`).
    Unlock {
        /// The downstream node.
        to: Address,
    },
    /// Remove the lock toward `to` unpaid (`Action::Expire`, after a registry read).
    Expire {
        /// The downstream node.
        to: Address,
    },
    /// Register the secret in the ConditionRegistry (through the relayer, or the watcher
    /// that holds it).
    Register {
        /// The secret.
        secret: B256,
    },
}

/// What the initiator decides: the route's mediators with their fees, the target and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The mediators in order, each with the fee it keeps.
    pub mediators: Vec<Hop>,
    /// Who is paid.
    pub target: Address,
    /// The target's compressed secp256k1 public key, to seal the secret to.
    pub target_key: [u8; 33],
    /// What the target receives.
    pub amount: u128,
    /// The secret (fresh randomness of the shell's).
    pub secret: B256,
    /// The key the secret is sealed with (fresh randomness of the shell's).
    pub ephemeral: B256,
}

impl Payment {
    /// What the initiator pays in all: the amount and every fee.
    pub fn total(&self) -> Result<u128, ProtocolError> {
        self.mediators.iter().try_fold(self.amount, |sum, hop| {
            u128::try_from(hop.fee)
                .ok()
                .and_then(|fee| sum.checked_add(fee))
                .ok_or(ProtocolError::Overflow)
        })
    }
}

/// Starts a payment: the initiator's state and its first lock.
pub fn initiate(
    payment: &Payment,
    settings: MediationSettings,
    now: u64,
) -> Result<(TransferState, Vec<TransferEffect>), ProtocolError> {
    let hops = payment.mediators.len() + 1;
    if hops > settings.max_hops {
        return Err(ProtocolError::RouteTooLong(hops));
    }
    if payment.amount == 0 {
        return Err(ProtocolError::LockAmountZero { index: 0 });
    }
    let condition_id = hashlock_condition_id(&payment.secret);
    let sealed = SealedSecret::seal(payment.secret, &payment.target_key, payment.ephemeral)?;
    let expiry = now.saturating_add(settings.delta().saturating_mul(hops as u64));
    let lock = Lock {
        expiry,
        amount: payment.total()?,
        condition_id,
    };
    let (first, metadata) = match payment.mediators.split_first() {
        Some((first, later)) => (
            first.node,
            RouteMetadata {
                fee: first.fee,
                later: later.to_vec(),
                target: payment.target,
                sealed,
            },
        ),
        None => (
            payment.target,
            RouteMetadata {
                fee: U256::ZERO,
                later: Vec::new(),
                target: payment.target,
                sealed,
            },
        ),
    };
    let metadata = metadata.encode()?;
    let state = TransferState {
        role: Role::Initiator,
        condition_id,
        secret: Some(payment.secret),
        upstream: None,
        downstream: Some(HopLock {
            partner: first,
            lock,
            settled: None,
        }),
        revealed: false,
        registering: false,
        forward: metadata.clone(),
        settings,
    };
    Ok((
        state,
        vec![TransferEffect::Lock {
            to: first,
            lock,
            metadata,
        }],
    ))
}

/// A node of the mesh as its transfers need it.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    /// Its address.
    pub me: Address,
    /// Its secp256k1 key, to open secrets sealed to it.
    pub key: &'a [u8; 32],
    /// The least fee it mediates for.
    pub min_fee: U256,
    /// The deployment's timing.
    pub settings: MediationSettings,
}

impl std::fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("me", &self.me)
            .field("min_fee", &self.min_fee)
            .finish_non_exhaustive()
    }
}

/// What `node` does with a lock its channel with `from` accepted, carrying `metadata`: as
/// the target it opens the secret and reveals it; as a mediator it forwards, if the fee and
/// the time allow.
pub fn receive_lock(
    node: Node<'_>,
    from: Address,
    lock: Lock,
    metadata: &[u8],
    now: u64,
) -> Result<(TransferState, Vec<TransferEffect>), ProtocolError> {
    let Node {
        me,
        key,
        min_fee,
        settings,
    } = node;
    let route = RouteMetadata::decode(metadata)?;
    let upstream = Some(HopLock {
        partner: from,
        lock,
        settled: None,
    });
    if route.target == me {
        if lock.expiry <= now.saturating_add(settings.skew) {
            return Err(ProtocolError::LockTooShort {
                expiry: lock.expiry,
                needed: now.saturating_add(settings.skew),
            });
        }
        let secret = route.sealed.open(key, lock.condition_id)?;
        let state = TransferState {
            role: Role::Target,
            condition_id: lock.condition_id,
            secret: Some(secret),
            upstream,
            downstream: None,
            revealed: true,
            registering: false,
            forward: Vec::new(),
            settings,
        };
        return Ok((state, vec![TransferEffect::Reveal { to: from, secret }]));
    }
    if route.fee < min_fee {
        return Err(ProtocolError::FeeTooLow {
            offered: route.fee,
            asked: min_fee,
        });
    }
    let fee = u128::try_from(route.fee).map_err(|_| ProtocolError::Overflow)?;
    let amount = lock
        .amount
        .checked_sub(fee)
        .filter(|amount| *amount > 0)
        .ok_or(ProtocolError::FeeTooLow {
            offered: route.fee,
            asked: min_fee,
        })?;
    let expiry = lock.expiry.saturating_sub(settings.delta());
    if expiry <= now.saturating_add(settings.skew) {
        return Err(ProtocolError::LockTooShort {
            expiry: lock.expiry,
            needed: now
                .saturating_add(settings.skew)
                .saturating_add(settings.delta()),
        });
    }
    let next = route.next_node();
    let forward = match route.for_next() {
        Some((_, rest)) => rest,
        None => RouteMetadata {
            fee: U256::ZERO,
            later: Vec::new(),
            ..route
        },
    }
    .encode()?;
    let down = Lock {
        expiry,
        amount,
        condition_id: lock.condition_id,
    };
    let state = TransferState {
        role: Role::Mediator,
        condition_id: lock.condition_id,
        secret: None,
        upstream,
        downstream: Some(HopLock {
            partner: next,
            lock: down,
            settled: None,
        }),
        revealed: false,
        registering: false,
        forward: forward.clone(),
        settings,
    };
    Ok((
        state,
        vec![TransferEffect::Lock {
            to: next,
            lock: down,
            metadata: forward,
        }],
    ))
}

/// Applies `event` at the node's time `now`.
pub fn apply(
    mut state: TransferState,
    event: TransferEvent,
    now: u64,
) -> Result<(TransferState, Vec<TransferEffect>), ProtocolError> {
    let mut effects = Vec::new();
    match event {
        TransferEvent::SecretRevealed(secret) => {
            if hashlock_condition_id(&secret) != state.condition_id {
                return Err(ProtocolError::SecretNotSealedToUs(state.condition_id));
            }
            let first = !state.revealed;
            state.secret = Some(secret);
            state.revealed = true;
            if first && let Some(up) = &state.upstream {
                effects.push(TransferEffect::Reveal {
                    to: up.partner,
                    secret,
                });
            }
        }
        TransferEvent::LockSettled { partner, outcome } => {
            for hop in [&mut state.upstream, &mut state.downstream]
                .into_iter()
                .flatten()
            {
                if hop.partner == partner && hop.settled.is_none() {
                    hop.settled = Some(outcome);
                }
            }
        }
        TransferEvent::Registered => state.registering = true,
        TransferEvent::Tick => {}
    }
    effects.extend(due(&mut state, now));
    Ok((state, effects))
}

/// The steps the time and what is known call for.
fn due(state: &mut TransferState, now: u64) -> Vec<TransferEffect> {
    let settings = state.settings;
    let mut effects = Vec::new();
    if let Some(down) = &state.downstream
        && down.settled.is_none()
    {
        if state.revealed {
            // Downstream holds the secret: pay it while it surely has not given up on the
            // lock; after that its claim is the registry's.
            if now < down.lock.expiry.saturating_sub(settings.skew) {
                effects.push(TransferEffect::Unlock { to: down.partner });
            }
        } else if now >= down.lock.expiry.saturating_add(settings.finality) {
            effects.push(TransferEffect::Expire { to: down.partner });
        }
    }
    if let (Some(secret), Some(up)) = (state.secret, &state.upstream)
        && up.settled.is_none()
        && !state.registering
        && now >= settings.register_from(up.lock.expiry)
        && now < up.lock.expiry
    {
        state.registering = true;
        effects.push(TransferEffect::Register { secret });
    }
    effects
}
