//! The channel state machine: `apply(state, event, now) -> (state, effects)`, with no I/O.
//!
//! A participant's own step is two calls: [`propose`] builds the next proof for an
//! [`Action`]; the shell signs it and applies [`Event::Signed`], which checks the proof is the
//! proposed one and returns the effects (persist it, then send it). A partner's message is
//! [`Event::Received`]. Everything the chain says comes in as its own event.
//!
//! A receiver accepts a proof only when it is exactly one step from the last it holds
//! (DESIGN.md 3.4): a payment (`T` up, or the same `T` signed again; locks unchanged), a lock appended (`T` unchanged), an
//! unlock (one lock removed, `T` up by its amount), or a lock expired (one lock removed, `T`
//! unchanged, only after `expiry + F` and a registry read at or after `expiry` that shows the
//! condition unregistered before it). So `Φ = T + claimable(locks)` never falls along what an
//! honest receiver accepts, and its latest proof dominates every older one.

use alloy::primitives::{Address, B256, U256, keccak256};

use super::{
    message::{ChannelMessage, LockExpired, LockedTransfer, RevealSecret, Unlock},
    state::{ChannelState, Freeze, FreezeKind, Phase, RegistryRead, SignedWithdrawal},
};
use crate::{
    BalanceProof, Lock, LockList, MAX_LOCKS, ProtocolError, SignedProof, hashlock_condition_id,
};

/// One of this participant's own steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pay `amount` more, with an optional memo hash.
    Pay {
        /// What to add to the transferred amount.
        amount: U256,
        /// The proof's `messageHash` (zero for none).
        memo: B256,
    },
    /// Lock `lock.amount` on `lock.condition_id` until `lock.expiry`.
    Lock {
        /// The lock to append.
        lock: Lock,
        /// What the payment carries; the proof's `messageHash` is its keccak256.
        metadata: Vec<u8>,
    },
    /// Pay one of this participant's locks: fold it into the transferred amount.
    Unlock {
        /// The lock's condition.
        condition_id: B256,
    },
    /// Remove one of this participant's locks unpaid, after its expiry.
    Expire {
        /// The lock's condition.
        condition_id: B256,
    },
}

/// Something that happened to the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// This participant signed the proof [`propose`] built for `action`.
    Signed {
        /// The step.
        action: Action,
        /// The proposed proof with this participant's signature.
        signed: SignedProof,
    },
    /// A message from the partner.
    Received(ChannelMessage),
    /// This participant learned a secret (from a `RevealSecret`, the target, its own payment).
    SecretLearned(B256),
    /// A finalized block at `at` shows the channel still open.
    OpenSeen {
        /// The block's timestamp.
        at: u64,
    },
    /// A participant's total deposit on chain.
    Deposited {
        /// Whose.
        participant: Address,
        /// The new total.
        total: U256,
    },
    /// A participant's total withdrawal on chain.
    Withdrawn {
        /// Whose.
        participant: Address,
        /// The new total.
        total: U256,
    },
    /// The channel was closed.
    Closed,
    /// The channel was settled.
    Settled,
    /// The registry, read from a finalized block.
    RegistryRead {
        /// The condition.
        condition_id: B256,
        /// What the block shows.
        read: RegistryRead,
    },
    /// This participant signed a withdrawal of `total` for `participant`.
    WithdrawSigned {
        /// Who withdraws.
        participant: Address,
        /// The new total.
        total: U256,
        /// The signatures' deadline.
        deadline: u64,
    },
    /// This participant signed a cooperative settle valid until `deadline`.
    CooperativeSettleSigned {
        /// The deadline.
        deadline: u64,
    },
    /// This participant is about to sign a close that may land until `until`.
    CloseSigned {
        /// The last second it may land.
        until: u64,
    },
}

/// What the shell must do, in order, once it has the new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Write this participant's message to the journal before it leaves the device.
    PersistSent(ChannelMessage),
    /// Hand the message to the partner (any transport).
    Send(ChannelMessage),
    /// Write the partner's message to the journal.
    PersistReceived(ChannelMessage),
    /// The message was already held: nothing changed.
    AlreadyHeld,
    /// Keep the secret (the journal, then the watcher at the next sync).
    PersistSecret {
        /// Its condition.
        condition_id: B256,
        /// The secret.
        secret: B256,
    },
    /// The partner revealed the secret of one of this participant's locks: unlock it.
    UnlockDue {
        /// The lock's condition.
        condition_id: B256,
    },
}

/// The next proof for `action`, for this participant to sign.
pub fn propose(
    state: &ChannelState,
    action: &Action,
    now: u64,
) -> Result<BalanceProof, ProtocolError> {
    usable(state, now)?;
    let (transferred, locks, message_hash) = next_state(state, action, now)?;
    let nonce = state
        .mine
        .nonce()
        .checked_add(U256::from(1))
        .ok_or(ProtocolError::NonceExhausted)?;
    Ok(BalanceProof {
        channelId: state.id,
        nonce,
        transferredAmount: transferred,
        lockedAmount: locks.locked_amount(),
        locksRoot: locks.root(),
        messageHash: message_hash,
    })
}

/// Moves the channel by one event.
pub fn apply(
    mut state: ChannelState,
    event: Event,
    now: u64,
) -> Result<(ChannelState, Vec<Effect>), ProtocolError> {
    let mut effects = Vec::new();
    match event {
        Event::Signed { action, signed } => {
            let proposed = propose(&state, &action, now)?;
            if signed.proof != proposed
                || signed.chain_id != state.chain_id
                || signed.token_network != state.token_network
            {
                return Err(ProtocolError::NotProposed);
            }
            let signer = signed.signer()?;
            if signer != state.me {
                return Err(ProtocolError::WrongSigner {
                    expected: state.me,
                    actual: signer,
                });
            }
            let (_, locks, _) = next_state(&state, &action, now)?;
            let message = message_for(&action, signed.clone());
            state.mine.latest = Some(signed);
            state.mine.locks = locks;
            effects.push(Effect::PersistSent(message.clone()));
            effects.push(Effect::Send(message));
        }
        Event::Received(message) => return receive(state, message, now),
        Event::SecretLearned(secret) => {
            let condition_id = hashlock_condition_id(&secret);
            if state.secrets.insert(condition_id, secret).is_none() {
                effects.push(Effect::PersistSecret {
                    condition_id,
                    secret,
                });
            }
            // The payer of a lock on it unlocks once it knows: tell it, or do it.
            if find(&state.theirs.locks, &condition_id).is_some() {
                effects.push(Effect::Send(ChannelMessage::RevealSecret(RevealSecret {
                    chain_id: state.chain_id,
                    token_network: state.token_network,
                    channel_id: state.id,
                    secret,
                })));
            }
            if find(&state.mine.locks, &condition_id).is_some() {
                effects.push(Effect::UnlockDue { condition_id });
            }
        }
        Event::OpenSeen { at } => state.open_seen_at = state.open_seen_at.max(at),
        Event::Deposited { participant, total } => {
            side_of(&mut state, participant)?.deposit = total
        }
        Event::Withdrawn { participant, total } => {
            side_of(&mut state, participant)?.withdrawn = total
        }
        Event::Closed => {
            state.phase = Phase::Closed;
            state.freeze = None;
        }
        Event::Settled => state.phase = Phase::Settled,
        Event::RegistryRead { condition_id, read } => {
            let newer = state
                .registry
                .get(&condition_id)
                .is_none_or(|held| read.block_time >= held.block_time);
            if newer {
                state.registry.insert(condition_id, read);
            }
        }
        Event::WithdrawSigned {
            participant,
            total,
            deadline,
        } => {
            usable(&state, now)?;
            no_pending_locks(&state)?;
            let mine = participant == state.me;
            side_of(&mut state, participant)?
                .signed_withdrawals
                .push(SignedWithdrawal { total, deadline });
            if mine {
                state.freeze = Some(Freeze {
                    kind: FreezeKind::Withdraw,
                    until: deadline,
                });
            }
        }
        Event::CooperativeSettleSigned { deadline } => {
            usable(&state, now)?;
            no_pending_locks(&state)?;
            state.freeze = Some(Freeze {
                kind: FreezeKind::CooperativeSettle,
                until: deadline,
            });
        }
        Event::CloseSigned { until } => {
            usable(&state, now)?;
            state.freeze = Some(Freeze {
                kind: FreezeKind::Close,
                until,
            });
        }
    }
    Ok((state, effects))
}

/// The transferred amount, lock list and message hash `action` leads to.
fn next_state(
    state: &ChannelState,
    action: &Action,
    now: u64,
) -> Result<(U256, LockList, B256), ProtocolError> {
    let transferred = state.mine.transferred();
    let locks = &state.mine.locks;
    match action {
        Action::Pay { amount, memo } => {
            if amount.is_zero() {
                return Err(ProtocolError::ZeroAmount);
            }
            let next = checked_add(transferred, *amount)?;
            within_capacity(state, true, next, locks, now)?;
            Ok((next, locks.clone(), *memo))
        }
        Action::Lock { lock, metadata } => {
            check_new_lock(state, lock, locks.len(), now, true)?;
            let next = appended(locks, lock)?;
            within_capacity(state, true, transferred, &next, now)?;
            let hash = if metadata.is_empty() {
                B256::ZERO
            } else {
                keccak256(metadata)
            };
            Ok((transferred, next, hash))
        }
        Action::Unlock { condition_id } => {
            let (index, lock) =
                find(locks, condition_id).ok_or(ProtocolError::UnknownLock(*condition_id))?;
            let next = checked_add(transferred, U256::from(lock.amount))?;
            Ok((next, removed(locks, index), B256::ZERO))
        }
        Action::Expire { condition_id } => {
            let (index, lock) =
                find(locks, condition_id).ok_or(ProtocolError::UnknownLock(*condition_id))?;
            check_expired(state, &lock, now)?;
            Ok((transferred, removed(locks, index), B256::ZERO))
        }
    }
}

fn receive(
    mut state: ChannelState,
    message: ChannelMessage,
    now: u64,
) -> Result<(ChannelState, Vec<Effect>), ProtocolError> {
    let channel_id = message.channel_id();
    if channel_id != state.id {
        return Err(ProtocolError::ChannelMismatch {
            expected: state.id,
            actual: channel_id,
        });
    }
    let Some(signed) = message.proof().cloned() else {
        let ChannelMessage::RevealSecret(reveal) = &message else {
            unreachable!("only a RevealSecret carries no proof")
        };
        check_deployment(&state, reveal.chain_id, reveal.token_network)?;
        return apply(state, Event::SecretLearned(reveal.secret), now);
    };
    check_deployment(&state, signed.chain_id, signed.token_network)?;
    if state.theirs.latest.as_ref() == Some(&signed) {
        return Ok((state, vec![Effect::AlreadyHeld]));
    }
    usable(&state, now)?;
    let signer = signed.signer()?;
    if signer != state.partner {
        return Err(ProtocolError::NotFromPartner {
            signer,
            partner: state.partner,
        });
    }
    let proof = &signed.proof;
    if proof.nonce <= state.theirs.nonce() {
        return Err(ProtocolError::NonceNotIncreased {
            last: state.theirs.nonce(),
            got: proof.nonce,
        });
    }
    let previous = state.theirs.transferred();
    let locks = &state.theirs.locks;
    // Only a payment or a new lock adds to what the payer uses; an unlock or an expiry moves
    // within it and is accepted whatever the capacity has become since.
    let (next_locks, adds) = match &message {
        // A payment raises T; the same T signed again at a higher nonce (a new memo) moves
        // nothing and is taken too: Φ does not fall either way.
        ChannelMessage::Payment(_) => {
            if proof.transferredAmount < previous {
                return Err(ProtocolError::TransferredDecreased {
                    last: previous,
                    got: proof.transferredAmount,
                });
            }
            (locks.clone(), true)
        }
        ChannelMessage::LockedTransfer(LockedTransfer { lock, .. }) => {
            if proof.transferredAmount != previous {
                return Err(ProtocolError::NotOneStep(
                    "a lock must leave the transferred amount",
                ));
            }
            check_new_lock(&state, lock, locks.len(), now, false)?;
            (appended(locks, lock)?, true)
        }
        ChannelMessage::Unlock(Unlock { condition_id, .. }) => {
            let (index, lock) =
                find(locks, condition_id).ok_or(ProtocolError::UnknownLock(*condition_id))?;
            if Some(proof.transferredAmount) != previous.checked_add(U256::from(lock.amount)) {
                return Err(ProtocolError::NotOneStep(
                    "an unlock must raise the transferred amount by the lock's amount",
                ));
            }
            (removed(locks, index), false)
        }
        ChannelMessage::LockExpired(LockExpired { condition_id, .. }) => {
            let (index, lock) =
                find(locks, condition_id).ok_or(ProtocolError::UnknownLock(*condition_id))?;
            if proof.transferredAmount != previous {
                return Err(ProtocolError::NotOneStep(
                    "an expiry must leave the transferred amount",
                ));
            }
            check_expired(&state, &lock, now)?;
            (removed(locks, index), false)
        }
        ChannelMessage::RevealSecret(_) => unreachable!("handled above"),
    };
    if proof.locksRoot != next_locks.root() || proof.lockedAmount != next_locks.locked_amount() {
        return Err(ProtocolError::NotOneStep(
            "the signed locks are not the held list with this one step",
        ));
    }
    if adds {
        within_capacity(&state, false, proof.transferredAmount, &next_locks, now)?;
    }
    state.theirs.latest = Some(signed);
    state.theirs.locks = next_locks;
    Ok((state, vec![Effect::PersistReceived(message)]))
}

fn message_for(action: &Action, signed: SignedProof) -> ChannelMessage {
    match action {
        Action::Pay { .. } => ChannelMessage::Payment(signed),
        Action::Lock { lock, metadata } => ChannelMessage::LockedTransfer(LockedTransfer {
            proof: signed,
            lock: *lock,
            metadata: metadata.clone(),
        }),
        Action::Unlock { condition_id } => ChannelMessage::Unlock(Unlock {
            proof: signed,
            condition_id: *condition_id,
        }),
        Action::Expire { condition_id } => ChannelMessage::LockExpired(LockExpired {
            proof: signed,
            condition_id: *condition_id,
        }),
    }
}

fn usable(state: &ChannelState, now: u64) -> Result<(), ProtocolError> {
    if state.phase != Phase::Open {
        return Err(ProtocolError::ChannelNotOpen(state.phase));
    }
    if let Some(freeze) = state.frozen_at(now) {
        return Err(ProtocolError::ChannelFrozen(freeze));
    }
    Ok(())
}

fn no_pending_locks(state: &ChannelState) -> Result<(), ProtocolError> {
    let pending = state.mine.locks.len() + state.theirs.locks.len();
    if pending != 0 {
        return Err(ProtocolError::LocksPending(pending));
    }
    Ok(())
}

fn check_deployment(
    state: &ChannelState,
    chain_id: u64,
    token_network: Address,
) -> Result<(), ProtocolError> {
    if chain_id != state.chain_id || token_network != state.token_network {
        return Err(ProtocolError::OtherDeployment {
            chain_id,
            token_network,
        });
    }
    Ok(())
}

/// A new lock must expire before any close the receiver has not seen could settle:
/// `expiry <= t_open + settle_timeout - F`; and a payer locks only what expires in the
/// future. A receiver takes a lock that arrives already expired (it waited in an outbox
/// longer than its life): the proof is one step on, and refusing it would stall the channel
/// for good, since the payer has moved on. Such a lock is pending and worthless to the
/// receiver (nobody forwards on it); the payer's `LockExpired` removes it.
fn check_new_lock(
    state: &ChannelState,
    lock: &Lock,
    index: usize,
    now: u64,
    paying: bool,
) -> Result<(), ProtocolError> {
    if lock.amount == 0 {
        return Err(ProtocolError::LockAmountZero { index });
    }
    if paying && lock.expiry <= now {
        return Err(ProtocolError::LockAlreadyExpired {
            expiry: lock.expiry,
            now,
        });
    }
    let latest = state.latest_lock_expiry();
    if lock.expiry > latest {
        return Err(ProtocolError::LockExpiryTooLate {
            expiry: lock.expiry,
            latest,
        });
    }
    Ok(())
}

/// A lock may go unpaid only after `expiry + F`, and only when a registry read at or after
/// its expiry shows its condition not registered before it.
fn check_expired(state: &ChannelState, lock: &Lock, now: u64) -> Result<(), ProtocolError> {
    let due = lock.expiry.saturating_add(state.settings.finality);
    if now < due {
        return Err(ProtocolError::LockNotExpired {
            expiry: lock.expiry,
            due,
        });
    }
    if !state.expired_unregistered(&lock.condition_id, lock.expiry) {
        return Err(ProtocolError::ExpiryNotProven(lock.condition_id));
    }
    Ok(())
}

/// The capacity rule with locks: `T + L <= D - W* + T_other` for the payer after the step.
fn within_capacity(
    state: &ChannelState,
    payer_is_me: bool,
    transferred: U256,
    locks: &LockList,
    now: u64,
) -> Result<(), ProtocolError> {
    let limit = state.limit(payer_is_me, now)?;
    let used = checked_add(transferred, locks.locked_amount())?;
    if used > limit {
        return Err(ProtocolError::ExceedsCapacity {
            transferred: used,
            capacity: limit,
        });
    }
    Ok(())
}

fn find(locks: &LockList, condition_id: &B256) -> Option<(usize, Lock)> {
    locks
        .locks()
        .iter()
        .enumerate()
        .find(|(_, lock)| lock.condition_id == *condition_id)
        .map(|(index, lock)| (index, *lock))
}

fn appended(locks: &LockList, lock: &Lock) -> Result<LockList, ProtocolError> {
    if locks.len() >= MAX_LOCKS {
        return Err(ProtocolError::TooManyLocks(locks.len() + 1));
    }
    if find(locks, &lock.condition_id).is_some() {
        return Err(ProtocolError::DuplicateLock(lock.condition_id));
    }
    let mut next = locks.locks().to_vec();
    next.push(*lock);
    LockList::from_locks(next)
}

fn removed(locks: &LockList, index: usize) -> LockList {
    let mut next = locks.locks().to_vec();
    next.remove(index);
    LockList::from_locks(next).expect("a sublist of a valid list is valid")
}

fn checked_add(a: U256, b: U256) -> Result<U256, ProtocolError> {
    a.checked_add(b).ok_or(ProtocolError::Overflow)
}

fn side_of(
    state: &mut ChannelState,
    participant: Address,
) -> Result<&mut super::state::Side, ProtocolError> {
    if participant == state.me {
        Ok(&mut state.mine)
    } else if participant == state.partner {
        Ok(&mut state.theirs)
    } else {
        Err(ProtocolError::NotParticipant(participant))
    }
}
