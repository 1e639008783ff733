//! Mediated payments between wallets over the in-memory transport: Alice pays Carol through
//! Brandon and Dana, every message signed, verified and journaled; each mediator keeps its fee,
//! and a link that is down holds the messages in the outbox until the next meeting.

mod common;

use alloy::primitives::{Address, U256, keccak256};
use common::{Line, line_of};

use smartmesh_protocol::{
    channel::ChannelMessage,
    mediated::{Hop, MediationSettings, Payment},
};

/// Four wallets on a line, a channel between neighbours (100 each way), every link up.
async fn line(test: &str) -> eyre::Result<Line> {
    let line = line_of(
        &format!("routed-{test}"),
        &["alice", "brandon", "dana", "carol"],
        U256::from(100),
    )
    .await?;
    for wallet in &line.wallets {
        wallet.set_mediation(MediationSettings::SHORT, U256::from(1));
    }
    Ok(line)
}

impl Line {
    /// Hands every waiting message over until none is left; returns how many.
    async fn pump(&self) -> eyre::Result<usize> {
        let mut handled = 0;
        loop {
            let mut any = false;
            for (wallet, transport) in self.wallets.iter().zip(&self.transports) {
                if wallet.flush(transport).await? > 0 {
                    any = true;
                }
                while let Some((from, bytes)) = transport.try_recv() {
                    let out = wallet
                        .receive_routed(from, ChannelMessage::decode(&bytes)?)
                        .await?;
                    wallet.send_or_queue(transport, out).await?;
                    handled += 1;
                    any = true;
                }
            }
            if !any {
                return Ok(handled);
            }
        }
    }

    fn payment(&self, amount: u128, seed: u8) -> eyre::Result<Payment> {
        Ok(Payment {
            mediators: [1, 2]
                .iter()
                .map(|n| Hop {
                    node: self.wallets[*n].address(),
                    fee: U256::from(1),
                })
                .collect(),
            target: self.wallets[3].address(),
            target_key: self.wallets[3].public_key()?,
            amount,
            secret: keccak256([b's', seed]),
            ephemeral: keccak256([b'e', seed]),
        })
    }

    /// What `payer` has paid `receiver` in all, as the receiver holds it.
    async fn paid(&self, payer: usize, receiver: usize) -> eyre::Result<U256> {
        let id = keccak256([payer.min(receiver) as u8]);
        let state = self.wallets[receiver].channel_state(id).await?;
        eyre::ensure!(state.theirs.locks.is_empty(), "a lock is still pending");
        Ok(state.theirs.transferred())
    }

    fn address(&self, n: usize) -> Address {
        self.wallets[n].address()
    }
}

#[tokio::test]
async fn alice_pays_carol_through_brandon_and_dana_and_each_keeps_its_fee() -> eyre::Result<()> {
    let line = line("paid").await?;
    let out = line.wallets[0].pay_routed(&line.payment(5, 1)?).await?;
    line.wallets[0]
        .send_or_queue(&line.transports[0], out)
        .await?;
    let handled = line.pump().await?;
    assert_eq!(line.paid(0, 1).await?, U256::from(7), "5 and two fees");
    assert_eq!(line.paid(1, 2).await?, U256::from(6), "Brandon kept 1");
    assert_eq!(
        line.paid(2, 3).await?,
        U256::from(5),
        "Dana kept 1; Carol got 5"
    );
    // Three locks, three reveals travelling back, three unlocks.
    assert_eq!(handled, 9);
    assert_eq!(line.net.traffic().0, 9);
    Ok(())
}

#[tokio::test]
async fn a_link_down_holds_the_reveal_until_the_next_meeting() -> eyre::Result<()> {
    let line = line("outbox").await?;
    let out = line.wallets[0].pay_routed(&line.payment(5, 2)?).await?;
    line.wallets[0]
        .send_or_queue(&line.transports[0], out)
        .await?;
    // Dana's link to Carol goes down right after she forwards: Carol's reveal cannot go back.
    for _ in 0..2 {
        for (wallet, transport) in line.wallets.iter().zip(&line.transports).take(3) {
            while let Some((from, bytes)) = transport.try_recv() {
                let out = wallet
                    .receive_routed(from, ChannelMessage::decode(&bytes)?)
                    .await?;
                wallet.send_or_queue(transport, out).await?;
            }
        }
    }
    line.net.link(line.address(2), line.address(3), false);
    line.pump().await?;
    let carol_to_dana = line.wallets[3].waiting(line.address(2)).await?;
    assert_eq!(
        carol_to_dana.len(),
        1,
        "the reveal waits: {carol_to_dana:?}"
    );
    // They meet again: everything completes.
    line.net.link(line.address(2), line.address(3), true);
    line.pump().await?;
    assert_eq!(line.paid(2, 3).await?, U256::from(5));
    assert_eq!(line.paid(0, 1).await?, U256::from(7));
    Ok(())
}
