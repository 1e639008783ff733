//! Relay payments through the pure machines of `smartmesh_protocol::relay`: a sender streams
//! packets to a recipient through two relays, every acknowledgment signed by the recipient
//! and checked by each node, every checkpoint paid hop by hop. The honest run pays each relay
//! its price for every packet; a relay that drops packets earns nothing after them; a
//! recipient that never acknowledges costs each relay at most one window; a sender that stops
//! paying gets at most one window more; forged, replayed and foreign acknowledgments are
//! refused; a pre-locked window is met by the recipient's acknowledgment, locked on by each
//! relay one margin sooner, and unlocked hop by hop.

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
    sol_types::Eip712Domain,
};
use smartmesh_protocol::{
    Ack, ProtocolError, conditions_domain,
    relay::{
        Checkpoint, DeliveryAck, RecipientState, Refusal, RelayEffect, RelayEvent, RelayState,
        SenderEffect, SenderState, SessionTerms,
    },
    sign_typed,
};

const K: u64 = 4;
const PRICES: [u128; 2] = [3, 2];

fn key(byte: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(byte)).unwrap()
}

fn domain() -> Eip712Domain {
    conditions_domain(31_337, Address::repeat_byte(0xcc))
}

fn terms(session: u8) -> SessionTerms {
    SessionTerms {
        session: B256::repeat_byte(session),
        sender: key(1).address(),
        recipient: key(4).address(),
        relays: vec![key(2).address(), key(3).address()],
        prices: PRICES.to_vec(),
        k: K,
        packets: 1_000,
    }
}

fn sign(checkpoint: Checkpoint, signer: &PrivateKeySigner) -> DeliveryAck {
    DeliveryAck {
        checkpoint,
        signature: sign_typed(
            signer,
            &Ack {
                messageHash: checkpoint.message_hash(),
            },
            &domain(),
        ),
    }
}

/// How the others misbehave.
#[derive(Default, Clone, Copy)]
struct Faults {
    /// The second relay passes on no packet from this one on.
    drop_from: Option<u64>,
    /// The recipient never acknowledges.
    recipient_silent: bool,
    /// The sender pays for no checkpoint from this one on.
    sender_stops_paying_at: Option<u64>,
}

struct Run {
    sender: SenderState,
    relays: Vec<RelayState>,
    recipient: RecipientState,
    delivered: u64,
    refused: Vec<(usize, Refusal)>,
    paid_by_sender: u128,
    /// What each relay paid the next.
    paid_on: Vec<u128>,
    pre_locks: Vec<B256>,
    unlocked: Vec<B256>,
    /// What each relay pre-locked on to the next: condition, amount, expiry.
    locked_on: Vec<Vec<(B256, u128, u64)>>,
    /// What each relay unlocked to the next.
    unlocked_on: Vec<Vec<B256>>,
}

/// The sender's pre-locks expire this long after it sends; each hop keeps `MARGIN`.
const EXPIRY: u64 = 10_000;
const MARGIN: u64 = 600;

/// Streams up to `packets` packets of a longer stream, one at a time, until nothing moves.
fn run(packets: u64, faults: Faults, pre_lock: bool) -> Run {
    run_of(terms(7), packets, faults, pre_lock)
}

fn run_of(terms: SessionTerms, packets: u64, faults: Faults, pre_lock: bool) -> Run {
    let mut run = Run {
        sender: SenderState::new(terms.clone(), pre_lock).unwrap(),
        relays: (0..2)
            .map(|n| RelayState::new(terms.clone(), n).unwrap())
            .collect(),
        recipient: RecipientState::new(terms).unwrap(),
        delivered: 0,
        refused: Vec::new(),
        paid_by_sender: 0,
        paid_on: vec![0, 0],
        pre_locks: Vec::new(),
        unlocked: Vec::new(),
        locked_on: vec![Vec::new(), Vec::new()],
        unlocked_on: vec![Vec::new(), Vec::new()],
    };
    let recipient_key = key(4);
    for n in 0..packets {
        let packet = format!("packet {n}").into_bytes();
        let Ok((index, lock)) = run.sender.send(&packet) else {
            break;
        };
        // Down the route.
        let mut bytes = Some(packet);
        for (hop, relay) in run.relays.iter_mut().enumerate() {
            let Some(carried) = bytes.take() else { break };
            if hop == 1 && faults.drop_from.is_some_and(|from| index >= from) {
                break;
            }
            let (next, effects) = relay
                .clone()
                .apply(
                    RelayEvent::Packet {
                        index,
                        bytes: carried,
                    },
                    &domain(),
                )
                .unwrap();
            *relay = next;
            match effects.as_slice() {
                [RelayEffect::Forward { bytes: b, .. }] => bytes = Some(b.clone()),
                [RelayEffect::Refuse { reason, .. }] => run.refused.push((hop, *reason)),
                other => panic!("{other:?}"),
            }
        }
        // A window's pre-lock follows its last packet, and each relay locks it on.
        if let Some(SenderEffect::PreLock {
            condition_id,
            checkpoint,
            ..
        }) = lock
        {
            run.pre_locks.push(condition_id);
            let mut expiry = Some(EXPIRY);
            for (hop, relay) in run.relays.iter_mut().enumerate() {
                let Some(locked) = expiry.take() else { break };
                if relay.stream.checkpoint(checkpoint).is_none() {
                    break;
                }
                let (next, effects) = relay
                    .clone()
                    .apply(
                        RelayEvent::Locked {
                            checkpoint,
                            expiry: locked,
                            margin: MARGIN,
                            now: 0,
                        },
                        &domain(),
                    )
                    .unwrap();
                *relay = next;
                if let [
                    RelayEffect::PreLockNext {
                        condition_id,
                        amount,
                        expiry: on,
                        ..
                    },
                ] = effects.as_slice()
                {
                    run.locked_on[hop].push((*condition_id, *amount, *on));
                    expiry = Some(*on);
                }
            }
        }
        let Some(arrived) = bytes else { continue };
        run.delivered += 1;
        let Some(checkpoint) = run.recipient.receive(index, &arrived).unwrap() else {
            continue;
        };
        if faults.recipient_silent {
            continue;
        }
        // Back up the route, then paid hop by hop.
        let ack = sign(checkpoint, &recipient_key);
        for relay in run.relays.iter_mut().rev() {
            let (next, effects) = relay
                .clone()
                .apply(RelayEvent::Ack(ack), &domain())
                .unwrap();
            *relay = next;
            assert_eq!(effects, vec![RelayEffect::PassAck(ack)]);
        }
        if faults
            .sender_stops_paying_at
            .is_some_and(|at| checkpoint.index >= at)
        {
            continue;
        }
        for effect in run.sender.take_ack(&ack, &domain()).unwrap() {
            let (checkpoint, amount) = match effect {
                SenderEffect::Pay {
                    checkpoint, amount, ..
                } => (checkpoint, amount),
                SenderEffect::Unlock {
                    checkpoint,
                    condition_id,
                    ..
                } => {
                    run.unlocked.push(condition_id);
                    (checkpoint, run.sender.stream.terms.pay_for(0, K).unwrap())
                }
                SenderEffect::PreLock { .. } => unreachable!("pre-locks come with sends"),
            };
            run.paid_by_sender += amount;
            let mut pay = Some(checkpoint);
            for (hop, relay) in run.relays.iter_mut().enumerate() {
                let Some(checkpoint) = pay.take() else { break };
                let (next, effects) = relay
                    .clone()
                    .apply(RelayEvent::Paid { checkpoint }, &domain())
                    .unwrap();
                *relay = next;
                for effect in effects {
                    match effect {
                        RelayEffect::PayNext {
                            amount, checkpoint, ..
                        } => {
                            run.paid_on[hop] += amount;
                            pay = Some(checkpoint);
                        }
                        RelayEffect::UnlockNext {
                            checkpoint,
                            condition_id,
                            ..
                        } => {
                            let (_, amount, _) = run.locked_on[hop]
                                .iter()
                                .find(|(locked, ..)| *locked == condition_id)
                                .expect("unlocks only what it locked");
                            run.paid_on[hop] += amount;
                            run.unlocked_on[hop].push(condition_id);
                            pay = Some(checkpoint);
                        }
                        other => panic!("{other:?}"),
                    }
                }
            }
        }
    }
    run
}

#[test]
fn an_honest_session_pays_every_relay_its_price_for_every_packet() {
    let run = run(40, Faults::default(), false);
    assert_eq!(run.delivered, 40);
    assert!(run.refused.is_empty());
    assert_eq!(run.relays[0].earned, 3 * 40);
    assert_eq!(run.relays[1].earned, 2 * 40);
    assert_eq!(
        run.paid_by_sender,
        5 * 40,
        "the sender paid the whole route"
    );
    assert_eq!(
        run.paid_on[0],
        2 * 40,
        "the first relay passed on the second's share"
    );
    assert_eq!(
        run.paid_by_sender - run.paid_on[0],
        run.relays[0].earned,
        "a relay keeps exactly its price"
    );
}

#[test]
fn a_stream_ending_inside_a_window_is_paid_for_its_last_packets_too() {
    let terms = SessionTerms {
        packets: 10,
        ..terms(7)
    };
    let run = run_of(terms, 12, Faults::default(), false);
    assert_eq!(run.delivered, 10, "nothing past the stream's end is sent");
    assert_eq!(
        run.relays[0].stream.acked,
        Some(2),
        "checkpoints of 4, 4 and 2 packets"
    );
    assert_eq!(run.relays[0].earned, 3 * 10);
    assert_eq!(run.relays[1].earned, 2 * 10);
}

#[test]
fn a_relay_that_drops_packets_earns_nothing_after_them() {
    // The second relay drops from packet 10 (window 2): checkpoint 2 is never acknowledged.
    let run = run(
        40,
        Faults {
            drop_from: Some(10),
            ..Faults::default()
        },
        false,
    );
    assert_eq!(run.delivered, 10);
    assert_eq!(run.relays[1].earned, 2 * 8, "paid for windows 0 and 1 only");
    assert_eq!(run.relays[0].earned, 3 * 8);
    // The first relay forwarded window 2 on credit, then stopped at window 3.
    assert_eq!(run.relays[0].stream.forwarded, 12);
    assert_eq!(
        run.sender.stream.forwarded, 12,
        "the sender could send no more either"
    );
}

#[test]
fn a_recipient_that_never_acknowledges_costs_each_relay_at_most_one_window() {
    let run = run(
        40,
        Faults {
            recipient_silent: true,
            ..Faults::default()
        },
        false,
    );
    for relay in &run.relays {
        assert_eq!(
            relay.stream.forwarded, K,
            "one window of credit, then no more"
        );
        assert_eq!(relay.earned, 0);
    }
    assert_eq!(run.paid_by_sender, 0);
}

#[test]
fn a_sender_that_stops_paying_gets_one_window_more_then_nothing() {
    let run = run(
        40,
        Faults {
            sender_stops_paying_at: Some(3),
            ..Faults::default()
        },
        false,
    );
    // Paid through checkpoint 2 (12 packets): the relays forward window 3 on credit, no more.
    assert_eq!(run.relays[0].stream.forwarded, 16);
    assert_eq!(run.relays[0].earned, 3 * 12);
    // A packet beyond the credit is refused by the relay even if the sender sends it.
    let mut relay = run.relays[0].clone();
    let (next, effects) = relay
        .clone()
        .apply(
            RelayEvent::Packet {
                index: 16,
                bytes: b"more".to_vec(),
            },
            &domain(),
        )
        .unwrap();
    relay = next;
    assert_eq!(
        effects,
        vec![RelayEffect::Refuse {
            index: 16,
            reason: Refusal::NoCredit
        }]
    );
    assert_eq!(relay.stream.forwarded, 16);
}

#[test]
fn forged_replayed_and_foreign_acknowledgments_are_refused() {
    let run = run(8, Faults::default(), false);
    let relay = run.relays[0].clone();
    let last = Checkpoint {
        session: B256::repeat_byte(7),
        index: 1,
        packets: 8,
        digest: relay.stream.boundaries[1],
    };
    // Replayed: checkpoint 1 was taken already.
    assert_eq!(
        relay
            .clone()
            .apply(RelayEvent::Ack(sign(last, &key(4))), &domain())
            .unwrap_err(),
        ProtocolError::AckReplayed(1)
    );
    // Forged: signed by the second relay, not the recipient.
    let next = Checkpoint {
        index: 2,
        packets: 12,
        ..last
    };
    assert!(matches!(
        relay
            .clone()
            .apply(RelayEvent::Ack(sign(next, &key(3))), &domain())
            .unwrap_err(),
        ProtocolError::WrongSigner { .. }
    ));
    // Of packets this relay never passed on.
    assert_eq!(
        relay
            .clone()
            .apply(RelayEvent::Ack(sign(next, &key(4))), &domain())
            .unwrap_err(),
        ProtocolError::AckMismatch(2)
    );
    // Of another session, and of a partial window.
    let foreign = Checkpoint {
        session: B256::repeat_byte(8),
        ..last
    };
    assert_eq!(
        relay
            .clone()
            .apply(RelayEvent::Ack(sign(foreign, &key(4))), &domain())
            .unwrap_err(),
        ProtocolError::AckForAnotherSession(B256::repeat_byte(8))
    );
    let partial = Checkpoint { packets: 7, ..last };
    assert_eq!(
        relay
            .clone()
            .apply(RelayEvent::Ack(sign(partial, &key(4))), &domain())
            .unwrap_err(),
        ProtocolError::AckMismatch(1)
    );
    // A payment for a checkpoint not acknowledged is refused too.
    assert_eq!(
        relay
            .apply(RelayEvent::Paid { checkpoint: 5 }, &domain())
            .unwrap_err(),
        ProtocolError::PaidBeforeAck(5)
    );
}

#[test]
fn a_pre_locked_window_is_met_by_the_recipients_acknowledgment() {
    let run = run(12, Faults::default(), true);
    // Each window is pre-locked as it is sent, on the acknowledgment the recipient then signs.
    assert_eq!(run.pre_locks.len(), 3);
    let second = Checkpoint {
        session: B256::repeat_byte(7),
        index: 1,
        packets: 8,
        digest: run.relays[0].stream.boundaries[1],
    };
    assert_eq!(run.pre_locks[1], second.condition_id(key(4).address()));
    // The sender, still there, unlocks each lock rather than paying again.
    assert_eq!(run.unlocked, run.pre_locks);
    assert_eq!(run.paid_by_sender, 5 * 12);
    assert_eq!(run.relays[0].earned, 3 * 12);
    // The first relay locked each window on to the second, for the second's price alone and
    // one margin sooner; the second, the last relay, locks nothing on. Each unlocked in turn.
    let on: Vec<_> = run.locked_on[0].iter().map(|(id, ..)| *id).collect();
    assert_eq!(on, run.pre_locks, "the same conditions, hop after hop");
    assert!(
        run.locked_on[0]
            .iter()
            .all(|(_, amount, expiry)| *amount == 2 * K as u128 && *expiry == EXPIRY - MARGIN)
    );
    assert!(run.locked_on[1].is_empty());
    assert_eq!(run.unlocked_on[0], run.pre_locks);
    assert_eq!(run.paid_on[0], 2 * 12);
    assert_eq!(run.relays[1].earned, 2 * 12);
    assert_eq!(
        run.relays[1].locked_in.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2],
        "the last relay holds the claim of each window"
    );
    // Had the sender vanished, each relay holds the acknowledgment that meets its lock on
    // chain.
    let ack = sign(second, &key(4));
    assert_eq!(
        smartmesh_protocol::ack_condition_id(key(4).address(), ack.checkpoint.message_hash()),
        run.pre_locks[1]
    );
}

#[test]
fn data_frames_round_trip_and_malformed_ones_are_refused() {
    use smartmesh_protocol::relay::{DataFrame, MAX_PACKET, is_data_frame};
    let checkpoint = Checkpoint {
        session: B256::repeat_byte(7),
        index: 2,
        packets: 12,
        digest: B256::repeat_byte(9),
    };
    let frames = [
        DataFrame::Open(terms(7)),
        DataFrame::Packet {
            session: B256::repeat_byte(7),
            index: 5,
            bytes: vec![1; MAX_PACKET],
        },
        DataFrame::Ack(sign(checkpoint, &key(4))),
        DataFrame::Paid {
            session: B256::repeat_byte(7),
            checkpoint: 3,
        },
        DataFrame::Locked {
            session: B256::repeat_byte(7),
            checkpoint: 4,
        },
    ];
    for frame in &frames {
        let bytes = frame.encode();
        assert!(is_data_frame(&bytes));
        assert_eq!(&DataFrame::decode(&bytes).unwrap(), frame);
        // Every truncation is refused, never read as another frame.
        if !matches!(frame, DataFrame::Packet { .. }) {
            for cut in 0..bytes.len() {
                assert!(DataFrame::decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(
                DataFrame::decode(&longer),
                Err(ProtocolError::TrailingBytes(1))
            );
        }
    }
    let mut oversized = frames[1].encode();
    oversized.push(1);
    assert!(matches!(
        DataFrame::decode(&oversized),
        Err(ProtocolError::Oversized { .. })
    ));
    // A channel message is not a data frame.
    assert!(!is_data_frame(&[1, 1, 0]));
    let mut bad_terms = terms(7);
    bad_terms.k = 0;
    assert_eq!(
        DataFrame::decode(&DataFrame::Open(bad_terms).encode()),
        Err(ProtocolError::BadSessionTerms)
    );
}

#[test]
fn a_relay_locks_on_only_what_it_passed_on_and_leaves_the_next_a_margin() {
    let terms = terms(7);
    let relay = RelayState::new(terms.clone(), 0).unwrap();
    let locked = |relay: RelayState, expiry: u64, now: u64| {
        relay.apply(
            RelayEvent::Locked {
                checkpoint: 0,
                expiry,
                margin: MARGIN,
                now,
            },
            &domain(),
        )
    };
    assert_eq!(
        locked(relay.clone(), EXPIRY, 0).unwrap_err(),
        ProtocolError::LockBeforeWindow(0),
        "no condition to check before the window passed"
    );
    let mut passed = relay;
    for index in 0..K {
        let (next, _) = passed
            .apply(
                RelayEvent::Packet {
                    index,
                    bytes: vec![index as u8],
                },
                &domain(),
            )
            .unwrap();
        passed = next;
    }
    // Too close to its expiry to leave the next relay a margin: kept as a claim, not locked on.
    let late = EXPIRY - 2 * MARGIN + 1;
    let (kept, effects) = locked(passed.clone(), EXPIRY, late).unwrap();
    assert!(effects.is_empty());
    assert_eq!(kept.locked_in.get(&0), Some(&EXPIRY));
    assert!(kept.locked_out.is_empty());
    let (on, effects) = locked(passed, EXPIRY, late - 1).unwrap();
    assert!(matches!(
        effects.as_slice(),
        [RelayEffect::PreLockNext { expiry, .. }] if *expiry == EXPIRY - MARGIN
    ));
    // The same notice again locks nothing more.
    let (_, again) = locked(on, EXPIRY, 0).unwrap();
    assert!(again.is_empty());
    assert_eq!(
        smartmesh_protocol::relay::downstream_expiry(MARGIN - 1, MARGIN, 0),
        None
    );
}
