//! Mediated payments through the real channel machines and transfer machines, every message
//! signed, encoded and decoded, over random schedules (fixed seeds): a route of one to three
//! hops, nodes that meet their neighbours only now and then, vanish for a while or for good,
//! clocks that disagree by up to `σ`, registrations mined within `S`. An absent node's
//! watcher registers the secrets it synced, by the same rule. After every lock's expiry the
//! nodes meet once more and the chain's claim rule settles every channel; then:
//! - an honest mediator ends with its fee or with nothing, never less;
//! - the payment is paid (the target got the amount, the initiator paid amount and fees) or
//!   refunded (nobody moved anything);
//!
//! and the runs must have reached both outcomes, a vanished node, a registration and an
//! on-chain claim, so a generator that stopped exercising them fails.

use std::collections::{BTreeMap, VecDeque};

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    signers::local::PrivateKeySigner,
};
use proptest::{
    prelude::*,
    test_runner::{Config, RngSeed, TestRunner},
};
use smartmesh_protocol::{
    Lock, SignedProof,
    channel::{
        Action, ChannelMessage, ChannelState, Effect, Event, RegistryRead, Settings, apply, propose,
    },
    hashlock_condition_id,
    mediated::{
        self, Hop, LockOutcome, MediationSettings, Node, Payment, TransferEffect, TransferEvent,
        TransferState, public_key,
    },
    sign_typed, token_network_domain,
};

const CHAIN: u64 = 31337;
const NETWORK: Address = Address::repeat_byte(0x4e);
const START: u64 = 1_700_000_000;
const DEPOSIT: u64 = 1_000;
const AMOUNT: u128 = 100;
const FEE: u64 = 3;
const SETTINGS: MediationSettings = MediationSettings::SHORT;

fn channel_id(a: usize, b: usize) -> B256 {
    keccak256([a.min(b) as u8, a.max(b) as u8])
}

struct Phone {
    key: PrivateKeySigner,
    secret_key: [u8; 32],
    skew: i64,
    /// Its side of the channel with each neighbour.
    channels: BTreeMap<Address, ChannelState>,
    transfer: Option<TransferState>,
    /// Away (meets nobody, acts only through its watcher) from `.0` until `.1` (true times;
    /// `u64::MAX`: for good).
    away: (u64, u64),
}

impl Phone {
    fn now(&self, t: u64) -> u64 {
        t.saturating_add_signed(self.skew)
    }

    fn address(&self) -> Address {
        self.key.address()
    }
}

/// The world: the phones on a line, the messages waiting on each link, the chain's registry.
struct World {
    phones: Vec<Phone>,
    queues: BTreeMap<(usize, usize), VecDeque<Vec<u8>>>,
    registry: BTreeMap<B256, u64>,
    pending_registrations: Vec<(u64, B256)>,
    t: u64,
    rng: u64,
    stats: Stats,
}

#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    paid: u32,
    refunded: u32,
    vanished: u32,
    registered: u32,
    claimed_on_chain: u32,
}

impl World {
    fn new(hops: usize, skews: &[i64]) -> Self {
        let phones: Vec<Phone> = (0..=hops)
            .map(|n| {
                let secret_key = B256::repeat_byte(0x11 + n as u8).0;
                Phone {
                    key: PrivateKeySigner::from_bytes(&B256::from(secret_key)).unwrap(),
                    secret_key,
                    skew: skews[n],
                    channels: BTreeMap::new(),
                    transfer: None,
                    away: (0, 0),
                }
            })
            .collect();
        let mut world = Self {
            phones,
            queues: BTreeMap::new(),
            registry: BTreeMap::new(),
            pending_registrations: Vec::new(),
            t: START,
            rng: 0,
            stats: Stats::default(),
        };
        for n in 0..hops {
            for (me, partner) in [(n, n + 1), (n + 1, n)] {
                let mut state = ChannelState::new(
                    CHAIN,
                    NETWORK,
                    channel_id(me, partner),
                    world.phones[me].address(),
                    world.phones[partner].address(),
                    10 * 86_400,
                    START,
                    Settings {
                        finality: SETTINGS.finality,
                    },
                );
                state.mine.deposit = U256::from(DEPOSIT);
                state.theirs.deposit = U256::from(DEPOSIT);
                let address = world.phones[partner].address();
                world.phones[me].channels.insert(address, state);
            }
        }
        world
    }

    fn index(&self, address: Address) -> usize {
        self.phones
            .iter()
            .position(|p| p.address() == address)
            .unwrap()
    }

    fn present(&self, n: usize) -> bool {
        let (from, until) = self.phones[n].away;
        !(from <= self.t && self.t < until)
    }

    /// Signs and applies a channel step of `n` toward `to`; queues its message.
    fn step(&mut self, n: usize, to: Address, action: Action) -> bool {
        let now = self.phones[n].now(self.t);
        let phone = &mut self.phones[n];
        let state = phone.channels.get(&to).unwrap().clone();
        let proof = match propose(&state, &action, now) {
            Ok(proof) => proof,
            Err(e) => {
                trace(self.t, format_args!("node {n}: {action:?} refused: {e}"));
                return false;
            }
        };
        let signed = SignedProof {
            chain_id: CHAIN,
            token_network: NETWORK,
            signature: sign_typed(&phone.key, &proof, &token_network_domain(CHAIN, NETWORK)),
            proof,
        };
        let (state, effects) = apply(state, Event::Signed { action, signed }, now).unwrap();
        phone.channels.insert(to, state);
        let to = self.index(to);
        for effect in effects {
            if let Effect::Send(message) = effect {
                self.send(n, to, &message);
            }
        }
        true
    }

    fn send(&mut self, from: usize, to: usize, message: &ChannelMessage) {
        self.queues
            .entry((from, to))
            .or_default()
            .push_back(message.encode().unwrap());
    }

    /// What the chain shows of `condition`, read now.
    fn read(&self, condition_id: B256) -> RegistryRead {
        RegistryRead {
            registered_at: self.registry.get(&condition_id).copied().unwrap_or(0),
            block_time: self.t,
        }
    }

    /// Carries out a transfer's effects for `n` (an absent node's watcher only registers).
    fn carry_out(&mut self, n: usize, effects: Vec<TransferEffect>) {
        for effect in effects {
            let present = self.present(n);
            match effect {
                TransferEffect::Register { secret } => {
                    let id = hashlock_condition_id(&secret);
                    if !self.registry.contains_key(&id) {
                        let mined = self.t + 1 + self.next() % (SETTINGS.mining - 1);
                        self.pending_registrations.push((mined, secret));
                    }
                }
                _ if !present => {}
                TransferEffect::Lock { to, lock, metadata } => {
                    self.step(n, to, Action::Lock { lock, metadata });
                }
                TransferEffect::Reveal { to, secret } => {
                    let now = self.phones[n].now(self.t);
                    let state = self.phones[n].channels.get(&to).unwrap().clone();
                    let (state, effects) = apply(state, Event::SecretLearned(secret), now).unwrap();
                    self.phones[n].channels.insert(to, state);
                    let to = self.index(to);
                    for effect in effects {
                        if let Effect::Send(message) = effect {
                            self.send(n, to, &message);
                        }
                    }
                }
                TransferEffect::Unlock { to } => {
                    let condition_id = self.phones[n].transfer.as_ref().unwrap().condition_id;
                    if self.step(n, to, Action::Unlock { condition_id }) {
                        self.transfer_event(
                            n,
                            TransferEvent::LockSettled {
                                partner: to,
                                outcome: LockOutcome::Unlocked,
                            },
                        );
                    }
                }
                TransferEffect::Expire { to } => {
                    let condition_id = self.phones[n].transfer.as_ref().unwrap().condition_id;
                    self.read_registry(n, to, condition_id);
                    if self.step(n, to, Action::Expire { condition_id }) {
                        self.transfer_event(
                            n,
                            TransferEvent::LockSettled {
                                partner: to,
                                outcome: LockOutcome::Expired,
                            },
                        );
                    }
                }
            }
        }
    }

    fn read_registry(&mut self, n: usize, partner: Address, condition_id: B256) {
        let read = self.read(condition_id);
        let now = self.phones[n].now(self.t);
        let state = self.phones[n].channels.get(&partner).unwrap().clone();
        let (state, _) = apply(state, Event::RegistryRead { condition_id, read }, now).unwrap();
        self.phones[n].channels.insert(partner, state);
    }

    fn transfer_event(&mut self, n: usize, event: TransferEvent) {
        let now = self.phones[n].now(self.t);
        let Some(state) = self.phones[n].transfer.clone() else {
            return;
        };
        let (state, effects) = mediated::apply(state, event, now).unwrap();
        self.phones[n].transfer = Some(state);
        self.carry_out(n, effects);
    }

    /// `a` and `b` meet: every waiting message goes across, both ways, in order.
    fn meet(&mut self, a: usize, b: usize) {
        while let Some((from, to)) = [(a, b), (b, a)]
            .into_iter()
            .find(|link| self.queues.get(link).is_some_and(|q| !q.is_empty()))
        {
            let bytes = self
                .queues
                .get_mut(&(from, to))
                .unwrap()
                .pop_front()
                .unwrap();
            self.deliver(from, to, &bytes);
        }
    }

    fn deliver(&mut self, from: usize, to: usize, bytes: &[u8]) {
        let message = ChannelMessage::decode(bytes).unwrap();
        let sender = self.phones[from].address();
        if let ChannelMessage::LockExpired(expired) = &message {
            // The receiver takes an expiry only on its own read of the registry.
            self.read_registry(to, sender, expired.condition_id);
        }
        let now = self.phones[to].now(self.t);
        let state = self.phones[to].channels.get(&sender).unwrap().clone();
        let (state, effects) = match apply(state, Event::Received(message.clone()), now) {
            Ok(done) => done,
            Err(e) => {
                trace(self.t, format_args!("node {to} refused from {from}: {e}"));
                // Refused (a lock expiring too soon, an expiry not proven): it stays as it was.
                return;
            }
        };
        trace(
            self.t,
            format_args!("node {to} took {} from {from}", kind(&message)),
        );
        self.phones[to].channels.insert(sender, state);
        if effects.contains(&Effect::AlreadyHeld) {
            return;
        }
        match message {
            ChannelMessage::LockedTransfer(transfer) if self.phones[to].transfer.is_none() => {
                let phone = &self.phones[to];
                let node = Node {
                    me: phone.address(),
                    key: &phone.secret_key,
                    min_fee: U256::from(FEE),
                    settings: SETTINGS,
                };
                match mediated::receive_lock(node, sender, transfer.lock, &transfer.metadata, now) {
                    Ok((state, effects)) => {
                        self.phones[to].transfer = Some(state);
                        self.carry_out(to, effects);
                    }
                    Err(e) => trace(self.t, format_args!("node {to} does not forward: {e}")),
                }
            }
            ChannelMessage::RevealSecret(reveal) => {
                self.transfer_event(to, TransferEvent::SecretRevealed(reveal.secret))
            }
            ChannelMessage::Unlock(_) => self.transfer_event(
                to,
                TransferEvent::LockSettled {
                    partner: sender,
                    outcome: LockOutcome::Unlocked,
                },
            ),
            ChannelMessage::LockExpired(_) => self.transfer_event(
                to,
                TransferEvent::LockSettled {
                    partner: sender,
                    outcome: LockOutcome::Expired,
                },
            ),
            _ => {}
        }
    }

    fn next(&mut self) -> u64 {
        // splitmix64: the schedule's own randomness, seeded by proptest.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Moves time on by `dt`: registrations get mined, every node ticks.
    fn advance(&mut self, dt: u64) {
        self.t += dt;
        let t = self.t;
        let (mined, pending): (Vec<_>, Vec<_>) = self
            .pending_registrations
            .drain(..)
            .partition(|(at, _)| *at <= t);
        self.pending_registrations = pending;
        for (at, secret) in mined {
            let id = hashlock_condition_id(&secret);
            if let std::collections::btree_map::Entry::Vacant(entry) = self.registry.entry(id) {
                entry.insert(at);
                self.stats.registered += 1;
            }
        }
        for n in 0..self.phones.len() {
            self.transfer_event(n, TransferEvent::Tick);
        }
    }

    /// What each phone ends with, as the chain settles every channel: for each direction the
    /// receiver's latest proof, its transferred amount plus the locks registered in time.
    fn balances(&mut self) -> Vec<i128> {
        let mut net = vec![0i128; self.phones.len()];
        for n in 0..self.phones.len() {
            for state in self.phones[n].channels.values() {
                let payer = self.index(state.partner);
                let registered = |id: &B256| self.registry.get(id).copied().unwrap_or(0);
                let paid =
                    state.theirs.transferred() + state.theirs.locks.claimable(registered, u64::MAX);
                if !state.theirs.locks.claimable(registered, u64::MAX).is_zero() {
                    self.stats.claimed_on_chain += 1;
                }
                let paid = i128::try_from(paid).unwrap();
                net[n] += paid;
                net[payer] -= paid;
            }
        }
        net
    }
}

/// One schedule, from its seed: returns the stats of the run.
/// `vanish`: a node, when it goes away (seconds after the start) and for how long.
fn run(hops: usize, seed: u64, skews: &[i64], vanish: Option<(usize, u64, u64)>) -> Stats {
    let mut world = World::new(hops, skews);
    world.rng = seed;
    let mediators: Vec<Hop> = (1..hops)
        .map(|n| Hop {
            node: world.phones[n].address(),
            fee: U256::from(FEE),
        })
        .collect();
    let target = &world.phones[hops];
    let payment = Payment {
        mediators,
        target: target.address(),
        target_key: public_key(&target.secret_key).unwrap(),
        amount: AMOUNT,
        secret: keccak256(seed.to_be_bytes()),
        ephemeral: keccak256((seed ^ 1).to_be_bytes()),
    };
    let now = world.phones[0].now(world.t);
    let (state, effects) = mediated::initiate(&payment, SETTINGS, now).unwrap();
    let last_expiry = state.downstream.unwrap().lock.expiry;
    world.phones[0].transfer = Some(state);
    world.carry_out(0, effects);
    if let Some((node, at, length)) = vanish {
        world.stats.vanished += 1;
        world.phones[node].away = (START + at, (START + at).saturating_add(length));
    }
    // Meetings now and then until every lock has long expired.
    while world.t < last_expiry + SETTINGS.finality + 2 * SETTINGS.delta() {
        // Neighbours meet every few seconds on average, well within `W` (a node away longer
        // is the vanishing case).
        let dt = 1 + world.next() % 5;
        world.advance(dt);
        for link in 0..hops {
            if world.next().is_multiple_of(2) && world.present(link) && world.present(link + 1) {
                world.meet(link, link + 1);
            }
        }
    }
    // Everyone is back: the next meeting, twice along the line for replies, then a last tick.
    for phone in &mut world.phones {
        phone.away = (0, 0);
    }
    for _ in 0..2 {
        for link in 0..hops {
            world.advance(1);
            world.meet(link, link + 1);
        }
    }
    let net = world.balances();
    let total = AMOUNT as i128 + FEE as i128 * (hops as i128 - 1);
    let paid = net[0] == -total && net[hops] == AMOUNT as i128;
    let refunded = net.iter().all(|n| *n == 0);
    assert!(
        paid || refunded,
        "neither paid nor refunded: {net:?} (hops {hops}, seed {seed}, skews {skews:?}, vanish {vanish:?})"
    );
    for (n, got) in net.iter().enumerate().take(hops).skip(1) {
        assert!(
            *got == if paid { FEE as i128 } else { 0 },
            "mediator {n} ends with {got} (hops {hops}, seed {seed}, {net:?})"
        );
    }
    let mut stats = world.stats;
    if paid {
        stats.paid += 1;
    } else {
        stats.refunded += 1;
    }
    stats
}

#[test]
fn every_payment_ends_paid_or_refunded_and_no_honest_mediator_loses() {
    let mut runner = TestRunner::new(Config {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x5eed),
        failure_persistence: None,
        ..Config::default()
    });
    let skew = -(SETTINGS.skew as i64 / 2)..=(SETTINGS.skew as i64 / 2);
    let strategy = (
        1usize..=3,
        any::<u64>(),
        proptest::collection::vec(skew, 4),
        proptest::option::of((
            0usize..4,
            0u64..40,
            prop_oneof![Just(u64::MAX), 1u64..3 * SETTINGS.delta()],
        )),
    );
    let totals = std::cell::Cell::new(Stats::default());
    runner
        .run(&strategy, |(hops, seed, skews, vanish)| {
            let vanish = vanish.map(|(node, at, length)| (node % (hops + 1), at, length));
            let stats = run(hops, seed, &skews, vanish);
            let mut sum = totals.get();
            sum.paid += stats.paid;
            sum.refunded += stats.refunded;
            sum.vanished += stats.vanished;
            sum.registered += stats.registered;
            sum.claimed_on_chain += stats.claimed_on_chain;
            totals.set(sum);
            Ok(())
        })
        .unwrap();
    let totals = totals.get();
    println!("{totals:?}");
    assert!(totals.paid > 0 && totals.refunded > 0, "{totals:?}");
    assert!(totals.vanished > 0 && totals.registered > 0, "{totals:?}");
    assert!(totals.claimed_on_chain > 0, "{totals:?}");
}

#[test]
fn a_three_hop_payment_pays_every_hop_when_they_all_meet() {
    // No absence, neighbours meeting at every step: paid, each mediator earning its fee.
    let stats = run(3, 7, &[0, 0, 0, 0], None);
    assert_eq!(stats.paid, 1);
}

#[test]
fn a_mediator_refuses_a_fee_below_its_own_or_a_lock_too_short_to_forward() {
    let target = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x22)).unwrap();
    let key = B256::repeat_byte(0x33).0;
    let me = PrivateKeySigner::from_bytes(&B256::from(key))
        .unwrap()
        .address();
    let payment = Payment {
        mediators: vec![Hop {
            node: me,
            fee: U256::from(1),
        }],
        target: target.address(),
        target_key: public_key(&B256::repeat_byte(0x22).0).unwrap(),
        amount: 10,
        secret: B256::repeat_byte(0x5e),
        ephemeral: B256::repeat_byte(0x01),
    };
    let (_, effects) = mediated::initiate(&payment, SETTINGS, START).unwrap();
    let [TransferEffect::Lock { lock, metadata, .. }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert_eq!(lock.amount, 11, "the amount and the fee");
    assert_eq!(lock.expiry, START + 2 * SETTINGS.delta());
    let node = |min_fee| Node {
        me,
        key: &key,
        min_fee: U256::from(min_fee),
        settings: SETTINGS,
    };
    let from = Address::repeat_byte(0xaa);
    assert!(matches!(
        mediated::receive_lock(node(2), from, *lock, metadata, START),
        Err(smartmesh_protocol::ProtocolError::FeeTooLow { .. })
    ));
    let late = START + SETTINGS.delta();
    assert!(matches!(
        mediated::receive_lock(node(1), from, *lock, metadata, late),
        Err(smartmesh_protocol::ProtocolError::LockTooShort { .. })
    ));
    let (state, effects) = mediated::receive_lock(node(1), from, *lock, metadata, START).unwrap();
    assert_eq!(state.secret, None, "a mediator cannot read the secret");
    let [TransferEffect::Lock { to, lock: down, .. }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert_eq!(*to, target.address());
    assert_eq!(
        *down,
        Lock {
            expiry: lock.expiry - SETTINGS.delta(),
            amount: 10,
            condition_id: lock.condition_id,
        }
    );
}

/// With `SIM_DEBUG` set, what each node did, for reading a failing schedule.
fn trace(t: u64, what: std::fmt::Arguments<'_>) {
    if std::env::var_os("SIM_DEBUG").is_some() {
        eprintln!("t={t} {what}");
    }
}

fn kind(message: &ChannelMessage) -> &'static str {
    match message {
        ChannelMessage::Payment(_) => "payment",
        ChannelMessage::LockedTransfer(_) => "lock",
        ChannelMessage::Unlock(_) => "unlock",
        ChannelMessage::LockExpired(_) => "expiry",
        ChannelMessage::RevealSecret(_) => "reveal",
    }
}
