//! The channel state machine driven as two phones drive it: each step proposed, signed and
//! applied on the payer's side, its message encoded, decoded and applied on the receiver's.

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    signers::local::PrivateKeySigner,
};
use proptest::{
    prelude::*,
    test_runner::{Config, RngSeed},
};
use smartmesh_protocol::{
    Lock, ProtocolError, SignedProof,
    channel::{
        Action, ChannelMessage, ChannelState, Effect, Event, FreezeKind, MAX_MESSAGE_LEN, Phase,
        RegistryRead, Settings, apply, propose,
    },
    hashlock_condition_id, sign_typed, token_network_domain,
};

const CHAIN: u64 = 31337;
const NETWORK: Address = Address::repeat_byte(0x4e);
const CHANNEL: B256 = B256::repeat_byte(0xc4);
const OPENED: u64 = 1_700_000_000;
const TIMEOUT: u64 = 86_400;
const FINALITY: u64 = 60;

fn key(byte: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(byte)).unwrap()
}

fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(10).pow(U256::from(18))
}

/// One phone: its key and its view of the channel.
#[derive(Clone)]
struct Phone {
    key: PrivateKeySigner,
    state: ChannelState,
}

impl Phone {
    fn new(key: PrivateKeySigner, partner: Address, deposits: (U256, U256)) -> Self {
        let mut state = ChannelState::new(
            CHAIN,
            NETWORK,
            CHANNEL,
            key.address(),
            partner,
            TIMEOUT,
            OPENED,
            Settings { finality: FINALITY },
        );
        state.mine.deposit = deposits.0;
        state.theirs.deposit = deposits.1;
        Self { key, state }
    }

    fn apply(&mut self, event: Event, now: u64) -> Result<Vec<Effect>, ProtocolError> {
        let (state, effects) = apply(self.state.clone(), event, now)?;
        self.state = state;
        Ok(effects)
    }

    /// Proposes, signs and applies `action`; returns the message it sends, as bytes.
    fn act(&mut self, action: Action, now: u64) -> Result<Vec<u8>, ProtocolError> {
        let proof = propose(&self.state, &action, now)?;
        let signature = sign_typed(&self.key, &proof, &token_network_domain(CHAIN, NETWORK));
        let signed = SignedProof {
            chain_id: CHAIN,
            token_network: NETWORK,
            proof,
            signature,
        };
        let effects = self.apply(Event::Signed { action, signed }, now)?;
        let [Effect::PersistSent(persisted), Effect::Send(sent)] = effects.as_slice() else {
            panic!("a signed step persists, then sends: {effects:?}");
        };
        assert_eq!(persisted, sent, "what is persisted is what leaves");
        sent.encode()
    }

    fn receive(&mut self, bytes: &[u8], now: u64) -> Result<Vec<Effect>, ProtocolError> {
        self.apply(Event::Received(ChannelMessage::decode(bytes)?), now)
    }

    /// `Φ` of the partner's latest proof, as the chain would pay it at `settle_at` with the
    /// registry this phone has read.
    fn phi_received(&self, settle_at: u64) -> U256 {
        let registered = |id: &B256| self.state.registry.get(id).map_or(0, |r| r.registered_at);
        self.state.theirs.transferred() + self.state.theirs.locks.claimable(registered, settle_at)
    }
}

fn pair() -> (Phone, Phone) {
    let (a, b) = (key(0xa1), key(0xb2));
    let alice = Phone::new(a.clone(), b.address(), (ether(100), ether(50)));
    let brandon = Phone::new(b, a.address(), (ether(50), ether(100)));
    (alice, brandon)
}

fn hashlock(secret: B256, expiry: u64, amount: u64) -> Lock {
    Lock {
        expiry,
        amount: u128::from(amount) * 1_000_000_000_000_000_000,
        condition_id: hashlock_condition_id(&secret),
    }
}

fn read(registered_at: u64, block_time: u64) -> RegistryRead {
    RegistryRead {
        registered_at,
        block_time,
    }
}

const NOW: u64 = OPENED + 100;

#[test]
fn a_direct_payment_moves_both_views() {
    let (mut alice, mut brandon) = pair();
    let bytes = alice
        .act(
            Action::Pay {
                amount: ether(7),
                memo: B256::ZERO,
            },
            NOW,
        )
        .unwrap();
    assert_eq!(bytes[1], 1, "a direct payment keeps wire kind 1");
    let effects = brandon.receive(&bytes, NOW).unwrap();
    assert!(matches!(effects.as_slice(), [Effect::PersistReceived(_)]));
    assert_eq!(brandon.state.theirs.transferred(), ether(7));
    assert_eq!(
        brandon.state.theirs, alice.state.mine,
        "the two views agree"
    );
    assert_eq!(alice.state.can_send(NOW), ether(93));
    assert_eq!(brandon.state.can_receive(NOW), ether(93));
    // The same handover twice changes nothing.
    assert_eq!(
        brandon.receive(&bytes, NOW).unwrap(),
        vec![Effect::AlreadyHeld]
    );
}

#[test]
fn a_hashlock_is_locked_revealed_and_unlocked() {
    let (mut alice, mut brandon) = pair();
    let secret = keccak256("Brandon learns it");
    let lock = hashlock(secret, NOW + 3_600, 10);
    let bytes = alice
        .act(
            Action::Lock {
                lock,
                metadata: b"payment 1".to_vec(),
            },
            NOW,
        )
        .unwrap();
    assert!(bytes.len() <= MAX_MESSAGE_LEN);
    brandon.receive(&bytes, NOW).unwrap();
    assert_eq!(brandon.state.theirs.locks.locks(), &[lock]);
    assert_eq!(
        alice.state.can_send(NOW),
        ether(90),
        "a lock counts against capacity"
    );
    assert_eq!(
        brandon
            .state
            .theirs
            .latest
            .as_ref()
            .unwrap()
            .proof
            .messageHash,
        keccak256(b"payment 1"),
        "the metadata is bound to the proof"
    );

    let effects = brandon
        .apply(Event::SecretLearned(secret), NOW + 10)
        .unwrap();
    let reveal = effects
        .iter()
        .find_map(|effect| match effect {
            Effect::Send(message @ ChannelMessage::RevealSecret(_)) => {
                Some(message.encode().unwrap())
            }
            _ => None,
        })
        .expect("the payer is told the secret");
    assert!(effects.contains(&Effect::PersistSecret {
        condition_id: lock.condition_id,
        secret
    }));
    let effects = alice.receive(&reveal, NOW + 20).unwrap();
    assert!(effects.contains(&Effect::UnlockDue {
        condition_id: lock.condition_id
    }));

    let bytes = alice
        .act(
            Action::Unlock {
                condition_id: lock.condition_id,
            },
            NOW + 20,
        )
        .unwrap();
    brandon.receive(&bytes, NOW + 20).unwrap();
    assert_eq!(brandon.state.theirs.transferred(), ether(10));
    assert!(brandon.state.theirs.locks.is_empty());
    assert_eq!(brandon.state.theirs, alice.state.mine);
}

#[test]
fn a_lock_is_refused_when_it_could_outlive_an_unseen_close() {
    let (mut alice, mut brandon) = pair();
    let latest = OPENED + TIMEOUT - FINALITY;
    assert_eq!(alice.state.latest_lock_expiry(), latest);
    let too_late = hashlock(B256::repeat_byte(1), latest + 1, 1);
    assert_eq!(
        alice.act(
            Action::Lock {
                lock: too_late,
                metadata: vec![]
            },
            NOW
        ),
        Err(ProtocolError::LockExpiryTooLate {
            expiry: latest + 1,
            latest
        })
    );
    // A payer that ignores the rule is refused by the receiver.
    let mut careless = alice.clone();
    careless.state.open_seen_at = OPENED + 1_000;
    let bytes = careless
        .act(
            Action::Lock {
                lock: too_late,
                metadata: vec![],
            },
            NOW,
        )
        .unwrap();
    assert_eq!(
        brandon.receive(&bytes, NOW),
        Err(ProtocolError::LockExpiryTooLate {
            expiry: latest + 1,
            latest
        })
    );
    // Seeing the channel open in a later finalized block moves the bound.
    brandon
        .apply(Event::OpenSeen { at: OPENED + 1_000 }, NOW)
        .unwrap();
    brandon.receive(&bytes, NOW).unwrap();
    let past = hashlock(B256::repeat_byte(2), NOW, 1);
    assert_eq!(
        alice.act(
            Action::Lock {
                lock: past,
                metadata: vec![]
            },
            NOW
        ),
        Err(ProtocolError::LockAlreadyExpired {
            expiry: NOW,
            now: NOW
        })
    );
}

#[test]
fn a_lock_arriving_after_its_expiry_is_taken_pending_and_the_channel_goes_on() {
    let (mut alice, mut brandon) = pair();
    let lock = hashlock(B256::repeat_byte(3), NOW + 60, 5);
    let locked = alice
        .act(
            Action::Lock {
                lock,
                metadata: vec![],
            },
            NOW,
        )
        .unwrap();
    // It waited in an outbox past its expiry. Refusing it would leave every later proof of
    // Alice's not one step on: Brandon takes it, pending and worthless to him.
    let late = NOW + 600;
    brandon.receive(&locked, late).unwrap();
    assert_eq!(
        brandon.state.theirs.locks.locked_amount(),
        U256::from(lock.amount)
    );
    let paid = alice
        .act(
            Action::Pay {
                amount: ether(2),
                memo: B256::ZERO,
            },
            late,
        )
        .unwrap();
    brandon.receive(&paid, late).unwrap();
    assert_eq!(brandon.state.theirs.transferred(), ether(2));
    // Alice still cannot lock what has expired.
    assert!(matches!(
        alice.act(
            Action::Lock {
                lock: hashlock(B256::repeat_byte(4), late, 1),
                metadata: vec![]
            },
            late
        ),
        Err(ProtocolError::LockAlreadyExpired { .. })
    ));
}

#[test]
fn capacity_counts_pending_locks() {
    let (mut alice, mut brandon) = pair();
    let bytes = alice
        .act(
            Action::Lock {
                lock: hashlock(B256::repeat_byte(1), NOW + 60, 60),
                metadata: vec![],
            },
            NOW,
        )
        .unwrap();
    brandon.receive(&bytes, NOW).unwrap();
    assert_eq!(
        alice.act(
            Action::Pay {
                amount: ether(41),
                memo: B256::ZERO
            },
            NOW
        ),
        Err(ProtocolError::ExceedsCapacity {
            transferred: ether(101),
            capacity: ether(100)
        })
    );
    // A payer that overspends is refused by the receiver too.
    let mut greedy = alice.clone();
    greedy.state.mine.deposit = ether(1_000);
    let bytes = greedy
        .act(
            Action::Pay {
                amount: ether(41),
                memo: B256::ZERO,
            },
            NOW,
        )
        .unwrap();
    assert_eq!(
        brandon.receive(&bytes, NOW),
        Err(ProtocolError::ExceedsCapacity {
            transferred: ether(101),
            capacity: ether(100)
        })
    );
    alice
        .act(
            Action::Pay {
                amount: ether(40),
                memo: B256::ZERO,
            },
            NOW,
        )
        .unwrap();
}

#[test]
fn a_lock_expires_only_after_expiry_plus_finality_and_a_registry_read() {
    let (mut alice, mut brandon) = pair();
    let lock = hashlock(B256::repeat_byte(3), NOW + 600, 5);
    let expired = Action::Expire {
        condition_id: lock.condition_id,
    };
    let bytes = alice
        .act(
            Action::Lock {
                lock,
                metadata: vec![],
            },
            NOW,
        )
        .unwrap();
    brandon.receive(&bytes, NOW).unwrap();
    let due = lock.expiry + FINALITY;
    assert_eq!(
        alice.act(expired.clone(), due - 1),
        Err(ProtocolError::LockNotExpired {
            expiry: lock.expiry,
            due
        })
    );
    assert_eq!(
        alice.act(expired.clone(), due),
        Err(ProtocolError::ExpiryNotProven(lock.condition_id)),
        "no registry read yet"
    );
    // A read from a block before the expiry proves nothing.
    alice
        .apply(
            Event::RegistryRead {
                condition_id: lock.condition_id,
                read: read(0, lock.expiry - 1),
            },
            due,
        )
        .unwrap();
    assert_eq!(
        alice.act(expired.clone(), due),
        Err(ProtocolError::ExpiryNotProven(lock.condition_id))
    );

    alice
        .apply(
            Event::RegistryRead {
                condition_id: lock.condition_id,
                read: read(0, lock.expiry),
            },
            due,
        )
        .unwrap();
    let bytes = alice.act(expired, due).unwrap();
    assert_eq!(
        brandon.receive(&bytes, due),
        Err(ProtocolError::ExpiryNotProven(lock.condition_id)),
        "the receiver needs its own read"
    );
    brandon
        .apply(
            Event::RegistryRead {
                condition_id: lock.condition_id,
                read: read(0, lock.expiry + 5),
            },
            due,
        )
        .unwrap();
    brandon.receive(&bytes, due).unwrap();
    assert!(brandon.state.theirs.locks.is_empty());
    assert_eq!(brandon.state.theirs.transferred(), U256::ZERO);
}

/// DESIGN 3.4's expiry rule: an exhaustive model found that a `LockExpired` accepted while
/// the secret was registered before the expiry lets `Φ` fall and a mediator lose.
#[test]
fn a_lock_expired_is_refused_while_the_registry_shows_it_met_in_time() {
    let (mut alice, mut brandon) = pair();
    let lock = hashlock(B256::repeat_byte(4), NOW + 600, 5);
    let bytes = alice
        .act(
            Action::Lock {
                lock,
                metadata: vec![],
            },
            NOW,
        )
        .unwrap();
    brandon.receive(&bytes, NOW).unwrap();
    let due = lock.expiry + FINALITY;
    // Alice reads a stale view (not registered) and sends LockExpired anyway.
    alice
        .apply(
            Event::RegistryRead {
                condition_id: lock.condition_id,
                read: read(0, lock.expiry),
            },
            due,
        )
        .unwrap();
    let bytes = alice
        .act(
            Action::Expire {
                condition_id: lock.condition_id,
            },
            due,
        )
        .unwrap();
    // Brandon's read shows the secret registered one second before the expiry.
    brandon
        .apply(
            Event::RegistryRead {
                condition_id: lock.condition_id,
                read: read(lock.expiry - 1, due),
            },
            due,
        )
        .unwrap();
    let settle_at = due + TIMEOUT;
    let before = brandon.phi_received(settle_at);
    assert_eq!(before, ether(5), "the lock is claimable: Φ counts it");
    assert_eq!(
        brandon.receive(&bytes, due),
        Err(ProtocolError::ExpiryNotProven(lock.condition_id))
    );
    assert_eq!(brandon.phi_received(settle_at), before, "Φ did not fall");
}

#[test]
fn a_proof_that_is_not_one_step_is_refused() {
    let (mut alice, mut brandon) = pair();
    let lock = hashlock(B256::repeat_byte(5), NOW + 600, 5);
    let bytes = alice
        .act(
            Action::Lock {
                lock,
                metadata: vec![],
            },
            NOW,
        )
        .unwrap();
    brandon.receive(&bytes, NOW).unwrap();
    // An unlock that pays less than the lock: hand-made, validly signed by Alice.
    let mut cheat = alice.clone();
    let bytes = cheat
        .act(
            Action::Unlock {
                condition_id: lock.condition_id,
            },
            NOW,
        )
        .unwrap();
    let ChannelMessage::Unlock(mut unlock) = ChannelMessage::decode(&bytes).unwrap() else {
        panic!("an unlock")
    };
    unlock.proof.proof.transferredAmount -= U256::from(1);
    unlock.proof.signature = sign_typed(
        &alice.key,
        &unlock.proof.proof,
        &token_network_domain(CHAIN, NETWORK),
    );
    let forged = ChannelMessage::Unlock(unlock).encode().unwrap();
    assert!(matches!(
        brandon.receive(&forged, NOW),
        Err(ProtocolError::NotOneStep(_))
    ));
    // A lock on a condition already pending.
    let mut twice = alice.clone();
    assert_eq!(
        twice.act(
            Action::Lock {
                lock,
                metadata: vec![]
            },
            NOW
        ),
        Err(ProtocolError::DuplicateLock(lock.condition_id))
    );
    // A proof from someone else.
    let mut stranger = Phone::new(key(0xcc), brandon.key.address(), (ether(100), ether(50)));
    let bytes = stranger
        .act(
            Action::Pay {
                amount: ether(1),
                memo: B256::ZERO,
            },
            NOW,
        )
        .unwrap();
    assert_eq!(
        brandon.receive(&bytes, NOW),
        Err(ProtocolError::NotFromPartner {
            signer: key(0xcc).address(),
            partner: alice.key.address()
        })
    );
}

#[test]
fn withdrawals_and_cooperative_settles_wait_for_pending_locks() {
    let (mut alice, _) = pair();
    let lock = hashlock(B256::repeat_byte(6), NOW + 600, 5);
    alice
        .act(
            Action::Lock {
                lock,
                metadata: vec![],
            },
            NOW,
        )
        .unwrap();
    let me = alice.key.address();
    assert_eq!(
        alice.apply(
            Event::WithdrawSigned {
                participant: me,
                total: ether(1),
                deadline: NOW + 60
            },
            NOW
        ),
        Err(ProtocolError::LocksPending(1))
    );
    assert_eq!(
        alice.apply(Event::CooperativeSettleSigned { deadline: NOW + 60 }, NOW),
        Err(ProtocolError::LocksPending(1))
    );
    // A close freezes the channel; a close on chain ends payments.
    alice
        .apply(Event::CloseSigned { until: NOW + 60 }, NOW)
        .unwrap();
    assert!(matches!(
        alice.act(Action::Pay { amount: ether(1), memo: B256::ZERO }, NOW),
        Err(ProtocolError::ChannelFrozen(freeze)) if freeze.kind == FreezeKind::Close
    ));
    alice.apply(Event::Closed, NOW).unwrap();
    assert!(matches!(
        alice.act(
            Action::Pay {
                amount: ether(1),
                memo: B256::ZERO
            },
            NOW + 61
        ),
        Err(ProtocolError::ChannelNotOpen(Phase::Closed))
    ));
}

#[test]
fn every_message_kind_round_trips_in_binary_and_text() {
    let (mut alice, mut brandon) = pair();
    let secret = B256::repeat_byte(7);
    let lock = hashlock(secret, NOW + 600, 5);
    let mut messages = vec![
        alice
            .act(
                Action::Pay {
                    amount: ether(1),
                    memo: B256::repeat_byte(9),
                },
                NOW,
            )
            .unwrap(),
        alice
            .act(
                Action::Lock {
                    lock,
                    metadata: vec![0xab; 128],
                },
                NOW,
            )
            .unwrap(),
    ];
    for bytes in &messages {
        brandon.receive(bytes, NOW).unwrap();
    }
    let effects = brandon.apply(Event::SecretLearned(secret), NOW).unwrap();
    for effect in effects {
        if let Effect::Send(message) = effect {
            messages.push(message.encode().unwrap());
        }
    }
    messages.push(
        alice
            .act(
                Action::Unlock {
                    condition_id: lock.condition_id,
                },
                NOW,
            )
            .unwrap(),
    );
    for bytes in messages {
        let message = ChannelMessage::decode(&bytes).unwrap();
        assert_eq!(message.encode().unwrap(), bytes);
        assert_eq!(
            ChannelMessage::from_text(&message.to_text().unwrap()).unwrap(),
            message
        );
    }
}

#[test]
fn the_largest_locked_transfer_fits_in_512_bytes() {
    let (mut alice, _) = pair();
    alice.state.mine.deposit = U256::MAX;
    alice.state.mine.latest = None;
    let lock = Lock {
        expiry: OPENED + 1_000,
        amount: u128::MAX,
        condition_id: B256::repeat_byte(0xff),
    };
    let bytes = alice
        .act(
            Action::Lock {
                lock,
                metadata: vec![0xff; smartmesh_protocol::channel::MAX_METADATA_LEN],
            },
            NOW,
        )
        .unwrap();
    assert!(bytes.len() <= 512, "{} bytes", bytes.len());
}

/// Deterministic runs (fixed seed), no regression files written into the tree.
fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x5eed),
        failure_persistence: None,
        ..Config::default()
    }
}

#[derive(Debug, Clone)]
enum Step {
    Pay(u64),
    Lock {
        amount: u64,
        lifetime: u64,
        secret: u8,
    },
    Reveal(usize),
    Expire(usize),
    Register(usize),
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u64..20).prop_map(Step::Pay),
        (1u64..20, 60u64..4_000, any::<u8>()).prop_map(|(amount, lifetime, secret)| Step::Lock {
            amount,
            lifetime,
            secret
        }),
        (0usize..8).prop_map(Step::Reveal),
        (0usize..8).prop_map(Step::Expire),
        (0usize..8).prop_map(Step::Register),
        (1u64..3_000).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Honest sequences in any order and timing: the two views always agree, every message
    /// decodes to itself, and `Φ` of what Brandon holds never falls, whenever the channel
    /// settles.
    #[test]
    fn phi_never_falls_along_an_honest_sequence(steps in prop::collection::vec(step(), 1..40)) {
        let (mut alice, mut brandon) = pair();
        let mut now = NOW;
        let mut registered: std::collections::BTreeMap<B256, u64> = Default::default();
        let mut secrets: std::collections::BTreeMap<B256, B256> = Default::default();
        let settle_ats = [NOW + 1_000, NOW + 10_000, NOW + TIMEOUT];
        let phi = |brandon: &Phone, registered: &std::collections::BTreeMap<B256, u64>, at: u64| {
            let theirs = &brandon.state.theirs;
            theirs.transferred()
                + theirs.locks.claimable(|id| registered.get(id).copied().unwrap_or(0), at)
        };
        let mut last: Vec<U256> = settle_ats.iter().map(|at| phi(&brandon, &registered, *at)).collect();
        let mut moved = 0;
        for step in steps {
            let sent = match step {
                Step::Pay(amount) => alice.act(Action::Pay { amount: ether(amount), memo: B256::ZERO }, now).ok(),
                Step::Lock { amount, lifetime, secret } => {
                    let secret = keccak256([secret]);
                    let lock = hashlock(secret, now + lifetime, amount);
                    secrets.insert(lock.condition_id, secret);
                    alice.act(Action::Lock { lock, metadata: vec![] }, now).ok()
                }
                Step::Reveal(index) => alice.state.mine.locks.locks().get(index).copied().and_then(|lock| {
                    alice.act(Action::Unlock { condition_id: lock.condition_id }, now).ok()
                }),
                Step::Expire(index) => alice.state.mine.locks.locks().get(index).copied().and_then(|lock| {
                    // Both read the registry now, from a finalized block.
                    let at = registered.get(&lock.condition_id).copied().unwrap_or(0);
                    for phone in [&mut alice, &mut brandon] {
                        phone.apply(Event::RegistryRead { condition_id: lock.condition_id, read: read(at, now) }, now).unwrap();
                    }
                    alice.act(Action::Expire { condition_id: lock.condition_id }, now).ok()
                }),
                Step::Register(index) => {
                    if let Some(lock) = alice.state.mine.locks.locks().get(index) {
                        registered.entry(lock.condition_id).or_insert(now);
                    }
                    None
                }
                Step::Wait(seconds) => {
                    now += seconds;
                    None
                }
            };
            if let Some(bytes) = sent {
                prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
                prop_assert_eq!(ChannelMessage::decode(&bytes).unwrap().encode().unwrap(), bytes.clone());
                brandon.receive(&bytes, now).unwrap();
                moved += 1;
            }
            prop_assert_eq!(&brandon.state.theirs, &alice.state.mine);
            for (i, at) in settle_ats.iter().enumerate() {
                let now_phi = phi(&brandon, &registered, *at);
                prop_assert!(now_phi >= last[i], "Φ fell at settleAt {}: {} < {}", at, now_phi, last[i]);
                last[i] = now_phi;
            }
            prop_assert!(
                alice.state.mine.transferred() + alice.state.mine.locks.locked_amount() <= ether(100),
                "capacity held"
            );
        }
        let _ = (moved, secrets);
    }

    /// Any bytes: a typed error or a message that encodes back to the same bytes, never a
    /// panic.
    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(message) = ChannelMessage::decode(&bytes) {
            prop_assert_eq!(message.encode().unwrap(), bytes);
        }
    }

    /// A valid message with one byte changed is refused or decodes to another message.
    #[test]
    fn any_single_byte_change_is_refused_or_changes_the_message(index in 0usize..400, value in any::<u8>()) {
        let (mut alice, _) = pair();
        let lock = hashlock(B256::repeat_byte(8), NOW + 600, 5);
        let bytes = alice.act(Action::Lock { lock, metadata: b"meta".to_vec() }, NOW).unwrap();
        let original = ChannelMessage::decode(&bytes).unwrap();
        let mut changed = bytes.clone();
        let index = index % changed.len();
        prop_assume!(changed[index] != value);
        changed[index] = value;
        if let Ok(message) = ChannelMessage::decode(&changed) {
            prop_assert_ne!(message, original);
        }
    }
}
