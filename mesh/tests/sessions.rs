//! Data sessions between wallets over the in-memory transport: Alice streams packets to Carol
//! through Brandon and Dana; Carol acknowledges every 4; each checkpoint is paid hop by hop
//! with real channel payments, which each relay checks against its channel before it counts.
//! Pre-locked windows are locked on hop by hop; a payment counts for one session only, and a
//! mediated payment for none; every wallet restarted in the middle of a session goes on where
//! it stopped.

mod common;

use alloy::primitives::{Address, B256, U256, keccak256};
use common::{Line, line_of};
use smartmesh_mesh::SessionOut;
use smartmesh_protocol::{
    channel::ChannelMessage,
    mediated::{Hop, MediationSettings, Payment},
    relay::{Checkpoint, DataFrame, SessionTerms, chain_packet, is_data_frame},
};

const SESSION: B256 = B256::repeat_byte(0x5e);

async fn line(test: &str) -> eyre::Result<Line> {
    let line = line_of(
        &format!("sessions-{test}"),
        &["alice", "brandon", "dana", "carol"],
        U256::from(10_000),
    )
    .await?;
    for wallet in &line.wallets {
        wallet.set_data_price(2);
    }
    Ok(line)
}

/// What the faulty nodes do to frames they would pass on.
#[derive(Default, Clone, Copy)]
struct Faults {
    /// Dana drops every packet from this index on.
    dana_drops_from: Option<u64>,
    /// Carol never acknowledges.
    carol_silent: bool,
    /// Alice pre-locks each window.
    pre_lock: bool,
    /// Alice is gone once she sent: nothing reaches her.
    alice_gone: bool,
}

impl Line {
    fn address(&self, n: usize) -> Address {
        self.wallets[n].address()
    }

    fn terms_of(&self, session: B256, packets: u64) -> SessionTerms {
        SessionTerms {
            session,
            sender: self.address(0),
            recipient: self.address(3),
            relays: vec![self.address(1), self.address(2)],
            prices: vec![3, 2],
            k: 4,
            packets,
        }
    }

    async fn hand_over(&self, from: usize, out: SessionOut, faults: Faults) -> eyre::Result<()> {
        let wallet = &self.wallets[from];
        let transport = &self.transports[from];
        wallet.send_or_queue(transport, out.channel).await?;
        for (to, frame) in out.frames {
            let dropped = match &frame {
                DataFrame::Packet { index, .. } => {
                    from == 2 && faults.dana_drops_from.is_some_and(|at| *index >= at)
                }
                DataFrame::Ack(_) => {
                    (from == 3 && faults.carol_silent)
                        || (to == self.address(0) && faults.alice_gone)
                }
                _ => false,
            };
            if !dropped {
                smartmesh_mesh::Transport::send(transport, to, frame.encode()).await?;
            }
        }
        Ok(())
    }

    /// Hands every message over until none is left.
    async fn pump(&self, faults: Faults) -> eyre::Result<()> {
        while self.pump_some(faults, usize::MAX).await? > 0 {}
        Ok(())
    }

    /// Hands up to `most` messages over; returns how many it handed.
    async fn pump_some(&self, faults: Faults, most: usize) -> eyre::Result<usize> {
        let mut handed = 0;
        loop {
            let mut any = false;
            for (n, (wallet, transport)) in self.wallets.iter().zip(&self.transports).enumerate() {
                while handed < most
                    && let Some((from, bytes)) = transport.try_recv()
                {
                    any = true;
                    handed += 1;
                    if is_data_frame(&bytes) {
                        let out = wallet
                            .handle_frame(from, DataFrame::decode(&bytes)?)
                            .await?;
                        self.hand_over(n, out, faults).await?;
                    } else {
                        let out = wallet
                            .receive_routed(from, ChannelMessage::decode(&bytes)?)
                            .await?;
                        wallet.send_or_queue(transport, out).await?;
                    }
                }
            }
            if !any || handed >= most {
                return Ok(handed);
            }
        }
    }

    /// Every wallet closed and opened again from its directory, as a phone restarts.
    async fn restart(&mut self) -> eyre::Result<()> {
        for (wallet, dir) in self.wallets.iter_mut().zip(&self.dirs) {
            let price = wallet.data_price();
            let reopened = smartmesh_mesh::Mesh::open(dir, common::config()).await?;
            reopened.set_data_price(price);
            *wallet = reopened;
        }
        Ok(())
    }

    /// What `payer` paid `receiver` over their channel, as the receiver holds it.
    async fn paid(&self, payer: usize, receiver: usize) -> eyre::Result<U256> {
        let id = keccak256([payer.min(receiver) as u8]);
        Ok(self.wallets[receiver]
            .channel_state(id)
            .await?
            .theirs
            .transferred())
    }

    /// Opens session `b`, whose first window Carol acknowledges but Alice never hears of, so
    /// Brandon forwards it on credit and is never paid for it.
    async fn open_unpaid(&self, b: B256) -> eyre::Result<()> {
        let unpaid = Faults {
            alice_gone: true,
            ..Faults::default()
        };
        self.open(b, 8, unpaid).await?;
        self.pump(unpaid).await
    }

    /// Alice's notice that window `checkpoint` of `session` is paid, which Brandon must refuse
    /// as ahead of its payment.
    async fn brandon_refuses_paid_notice(
        &self,
        session: B256,
        checkpoint: u64,
    ) -> eyre::Result<()> {
        let forged = DataFrame::Paid {
            session,
            checkpoint,
        };
        let refused = self.wallets[1]
            .handle_frame(self.address(0), forged)
            .await
            .expect_err("a notice ahead of its payment");
        eyre::ensure!(
            refused.to_string().contains("ahead of the payment"),
            "{refused}"
        );
        Ok(())
    }

    /// What Brandon earned relaying, over all his sessions.
    fn brandon_earned(&self) -> u128 {
        self.wallets[1]
            .session_summaries()
            .iter()
            .map(|summary| summary.earned)
            .sum()
    }

    async fn stream(&self, packets: u64, faults: Faults) -> eyre::Result<Vec<u8>> {
        let data = self.open(SESSION, packets, faults).await?;
        self.pump(faults).await?;
        Ok(data)
    }

    /// Opens `session` of `packets` packets and hands its first frames over.
    async fn open(&self, session: B256, packets: u64, faults: Faults) -> eyre::Result<Vec<u8>> {
        let data: Vec<Vec<u8>> = (0..packets)
            .map(|n| format!("<{n}>").into_bytes())
            .collect();
        let out = self.wallets[0]
            .open_session(
                self.terms_of(session, packets),
                data.clone(),
                faults.pre_lock,
            )
            .await?;
        self.hand_over(0, out, faults).await?;
        Ok(data.concat())
    }
}

#[tokio::test]
async fn every_relay_is_paid_its_price_for_every_delivered_packet() -> eyre::Result<()> {
    let line = line("paid").await?;
    let sent = line.stream(40, Faults::default()).await?;
    assert_eq!(
        line.wallets[3].session_data(B256::repeat_byte(0x5e)),
        Some(sent)
    );
    // Alice paid Brandon 5 a packet; he kept 3 and paid Dana 2.
    assert_eq!(line.paid(0, 1).await?, U256::from(5 * 40));
    assert_eq!(line.paid(1, 2).await?, U256::from(2 * 40));
    let brandon = &line.wallets[1].session_summaries()[0];
    assert_eq!(
        (brandon.role, brandon.earned, brandon.acked),
        ("relay", 3 * 40, Some(9))
    );
    assert_eq!(line.wallets[2].session_summaries()[0].earned, 2 * 40);
    Ok(())
}

#[tokio::test]
async fn a_relay_that_drops_packets_earns_nothing_after_them() -> eyre::Result<()> {
    let line = line("dropped").await?;
    let faults = Faults {
        dana_drops_from: Some(10),
        ..Faults::default()
    };
    line.stream(40, faults).await?;
    // Checkpoints 0 and 1 were delivered and paid; window 2 never reached Carol.
    assert_eq!(line.paid(1, 2).await?, U256::from(2 * 8));
    assert_eq!(line.paid(0, 1).await?, U256::from(5 * 8));
    // Brandon forwarded window 2 on credit, then stopped.
    assert_eq!(line.wallets[1].session_summaries()[0].packets, 12);
    Ok(())
}

#[tokio::test]
async fn a_recipient_that_never_acknowledges_costs_each_relay_one_window() -> eyre::Result<()> {
    let line = line("silent").await?;
    line.stream(
        40,
        Faults {
            carol_silent: true,
            ..Faults::default()
        },
    )
    .await?;
    for relay in 1..=2 {
        let summary = &line.wallets[relay].session_summaries()[0];
        assert_eq!(
            (summary.packets, summary.earned),
            (4, 0),
            "one window, unpaid"
        );
    }
    assert_eq!(line.paid(0, 1).await?, U256::ZERO);
    Ok(())
}

#[tokio::test]
async fn a_payment_notice_ahead_of_the_payment_is_refused() -> eyre::Result<()> {
    let line = line("notice").await?;
    line.stream(8, Faults::default()).await?;
    // Alice claims checkpoint 2 paid; she paid through checkpoint 1 only.
    let forged = DataFrame::Paid {
        session: B256::repeat_byte(0x5e),
        checkpoint: 2,
    };
    assert!(
        line.wallets[1]
            .handle_frame(line.address(0), forged.clone())
            .await
            .is_err()
    );
    // And a notice from a node off the route counts for nothing either.
    assert!(
        line.wallets[1]
            .handle_frame(line.address(3), forged)
            .await
            .is_err()
    );
    assert_eq!(line.wallets[1].session_summaries()[0].earned, 3 * 8);
    Ok(())
}

#[tokio::test]
async fn pre_locked_windows_are_unlocked_on_acknowledgment_or_left_to_claim() -> eyre::Result<()> {
    // Alice there: each window locked as sent, then unlocked on its acknowledgment: the same
    // pay as without locks, and no lock left.
    let there = line("prelocked").await?;
    let faults = Faults {
        pre_lock: true,
        ..Faults::default()
    };
    there.stream(12, faults).await?;
    assert_eq!(there.paid(0, 1).await?, U256::from(5 * 12));
    assert_eq!(there.wallets[1].session_summaries()[0].earned, 3 * 12);
    let brandon = there.wallets[1].channel_state(keccak256([0u8])).await?;
    assert!(brandon.theirs.locks.is_empty(), "every lock was unlocked");
    // Brandon locked each window on to Dana and unlocked it in turn: Dana paid in full.
    assert_eq!(there.paid(1, 2).await?, U256::from(2 * 12));
    assert_eq!(there.wallets[2].session_summaries()[0].earned, 2 * 12);
    let dana = there.wallets[2].channel_state(keccak256([1u8])).await?;
    assert!(dana.theirs.locks.is_empty(), "every lock on was unlocked");

    // Alice gone after sending: Brandon holds the lock of the window Carol acknowledged, on
    // exactly the acknowledgment he passed back: his claim on chain (`registerAck`).
    let gone = line("prelocked-gone").await?;
    let faults = Faults {
        pre_lock: true,
        alice_gone: true,
        ..Faults::default()
    };
    gone.stream(12, faults).await?;
    assert_eq!(
        gone.paid(0, 1).await?,
        U256::ZERO,
        "no proof of payment came"
    );
    let brandon = gone.wallets[1].channel_state(keccak256([0u8])).await?;
    let summary = &gone.wallets[1].session_summaries()[0];
    assert_eq!(
        summary.acked,
        Some(0),
        "Carol acknowledged the first window"
    );
    let locks = brandon.theirs.locks.locks();
    assert_eq!(
        locks.len(),
        1,
        "the first window's lock; the next was never sent"
    );
    assert_eq!(locks[0].amount, 5 * 4);
    let digest = (0..4).fold(B256::ZERO, |digest, n| {
        chain_packet(digest, format!("<{n}>").as_bytes())
    });
    let first = Checkpoint {
        session: B256::repeat_byte(0x5e),
        index: 0,
        packets: 4,
        digest,
    };
    assert_eq!(
        locks[0].condition_id,
        first.condition_id(gone.address(3)),
        "the lock waits for Carol's acknowledgment of the first window"
    );
    // Brandon locked it on to Dana, for Dana's price alone, one margin sooner: the same
    // acknowledgment meets both locks, so Dana's claim does not hang on Brandon either.
    let dana = gone.wallets[2].channel_state(keccak256([1u8])).await?;
    let on = dana.theirs.locks.locks();
    assert_eq!(on.len(), 1);
    assert_eq!(on[0].condition_id, locks[0].condition_id);
    assert_eq!(on[0].amount, 2 * 4);
    let margin = smartmesh_protocol::mediated::MediationSettings::PUBLIC.delta();
    assert_eq!(on[0].expiry, locks[0].expiry - margin);
    Ok(())
}

#[tokio::test]
async fn one_payment_never_counts_for_two_sessions() -> eyre::Result<()> {
    let line = line("two-sessions").await?;
    // Session B: Carol acknowledges the first window, but the acknowledgment never reaches
    // Alice, so she never pays for it.
    let b = B256::repeat_byte(0xb0);
    line.open_unpaid(b).await?;
    // Session A, through the same channel, paid in full.
    line.stream(8, Faults::default()).await?;
    assert_eq!(line.paid(0, 1).await?, U256::from(5 * 8));
    // Alice claims session B's first window paid: the only pay on the channel was A's.
    line.brandon_refuses_paid_notice(b, 0).await?;
    assert_eq!(line.brandon_earned(), 3 * 8, "A's pay, counted once");
    Ok(())
}

#[tokio::test]
async fn a_mediated_payment_through_a_relay_never_counts_as_session_pay() -> eyre::Result<()> {
    let line = line("mediated").await?;
    for wallet in &line.wallets {
        wallet.set_mediation(MediationSettings::SHORT, U256::from(1));
    }
    // Session B: Brandon forwards a window on credit that Alice never pays.
    let b = B256::repeat_byte(0xb0);
    line.open_unpaid(b).await?;
    // Alice pays Carol 20 through Brandon and Dana: Brandon is unlocked 22 and pays Dana 21.
    let payment = Payment {
        mediators: [1, 2]
            .iter()
            .map(|n| Hop {
                node: line.address(*n),
                fee: U256::from(1),
            })
            .collect(),
        target: line.address(3),
        target_key: line.wallets[3].public_key()?,
        amount: 20,
        secret: keccak256(b"secret"),
        ephemeral: keccak256(b"ephemeral"),
    };
    let out = line.wallets[0].pay_routed(&payment).await?;
    line.wallets[0]
        .send_or_queue(&line.transports[0], out)
        .await?;
    line.pump(Faults::default()).await?;
    assert_eq!(line.paid(0, 1).await?, U256::from(22));
    assert_eq!(line.paid(2, 3).await?, U256::from(20));
    // Alice names that pay as window 0 of session B (Brandon's 3 a packet, 12 in all).
    line.brandon_refuses_paid_notice(b, 0).await?;
    // Session pay after the mediated payment still counts, once.
    line.stream(8, Faults::default()).await?;
    assert_eq!(line.paid(0, 1).await?, U256::from(22 + 5 * 8));
    assert_eq!(line.brandon_earned(), 3 * 8);
    Ok(())
}

#[tokio::test]
async fn every_wallet_restarted_mid_session_goes_on_where_it_stopped() -> eyre::Result<()> {
    for pre_lock in [false, true] {
        let mut line = line(&format!("restart-{pre_lock}")).await?;
        let faults = Faults {
            pre_lock,
            ..Faults::default()
        };
        let sent = line.open(SESSION, 20, faults).await?;
        // A restart every few messages, each wallet's sessions read back from its journal.
        let mut restarts = 0;
        while line.pump_some(faults, 7).await? > 0 {
            let before: Vec<_> = line.wallets.iter().map(|w| w.session_summaries()).collect();
            line.restart().await?;
            let after: Vec<_> = line.wallets.iter().map(|w| w.session_summaries()).collect();
            assert_eq!(before, after, "a restart changes no session");
            restarts += 1;
        }
        assert!(restarts > 5, "restarted in the middle: {restarts}");
        assert_eq!(line.wallets[3].session_data(SESSION), Some(sent));
        assert_eq!(line.paid(0, 1).await?, U256::from(5 * 20));
        assert_eq!(line.paid(1, 2).await?, U256::from(2 * 20));
        assert_eq!(line.wallets[1].session_summaries()[0].earned, 3 * 20);
    }
    Ok(())
}
