//! A relay's claim on chain when the sender of a data session vanishes, on `smartmesh dev`'s
//! real contracts: Alice streams to Carol through Brandon, pre-locking each window to Brandon
//! on Carol's acknowledgment of it, and is gone before any acknowledgment reaches her. Brandon
//! hands his watcher the lock's proof and Carol's acknowledgment (as a signed `registerAck`
//! request), closes the channel and goes offline; the watcher registers the acknowledgment
//! within its margin of the lock's expiry and settles, and the lock pays Brandon.

mod common;

use std::time::Duration;

use alloy::{
    primitives::{B256, U256, utils::parse_ether},
    providers::Provider,
};
use common::dev::Dev;
use smartmesh_mesh::{MemoryNet, MemoryTransport, Mesh};
use smartmesh_protocol::{ConditionRegistry, mediated::MediationSettings, relay::SessionTerms};

/// Hands every message over until none is left; nothing reaches the wallet at `gone`.
async fn pump(wallets: &[&Mesh], transports: &[MemoryTransport], gone: usize) -> eyre::Result<()> {
    loop {
        let mut any = false;
        for (n, (wallet, transport)) in wallets.iter().zip(transports).enumerate() {
            while let Some((from, bytes)) = transport.try_recv() {
                any = true;
                if n == gone {
                    continue;
                }
                let (_, out) = wallet.take(from, &bytes).await?;
                wallet.hand_over(transport, out).await?;
            }
        }
        if !any {
            return Ok(());
        }
    }
}

#[tokio::test]
async fn a_relay_claims_an_acknowledged_window_on_chain_when_the_sender_vanished()
-> eyre::Result<()> {
    let dev = Dev::start("relay-claim")?;
    // Hold periods of 600 s: a lock may not outlive its channel's (less finality).
    let alice_brandon = dev.open_funded("alice", "brandon", "100")?;
    let brandon_carol = dev.open_funded("brandon", "carol", "50")?;
    let names = ["alice", "brandon", "carol"];
    let mut wallets = Vec::new();
    for name in names {
        let wallet = dev.mesh(name).await?;
        wallet.set_mediation(MediationSettings::SHORT, U256::ZERO);
        wallets.push(wallet);
    }
    wallets[0].refresh(alice_brandon).await?;
    wallets[1].refresh(alice_brandon).await?;
    wallets[1].refresh(brandon_carol).await?;
    wallets[2].refresh(brandon_carol).await?;
    let net = MemoryNet::new();
    let transports: Vec<MemoryTransport> =
        wallets.iter().map(|w| net.endpoint(w.address())).collect();
    net.link(wallets[0].address(), wallets[1].address(), true);
    net.link(wallets[1].address(), wallets[2].address(), true);
    let (alice, brandon, carol) = (&wallets[0], &wallets[1], &wallets[2]);

    // 8 packets, 4 a checkpoint, Brandon's price a quarter SMT a packet: 1 SMT a window.
    let price = parse_ether("0.25")?.to::<u128>();
    let terms = SessionTerms {
        session: B256::repeat_byte(0xc1),
        sender: alice.address(),
        recipient: carol.address(),
        relays: vec![brandon.address()],
        prices: vec![price],
        k: 4,
        packets: 8,
    };
    let packets: Vec<Vec<u8>> = (0..8).map(|n| vec![n; 100]).collect();
    let out = alice.open_session(terms, packets, true).await?;
    alice.hand_over(&transports[0], out).await?;
    // Alice is gone: Carol's acknowledgment stops at Brandon, who forwarded the one window
    // of credit past what he was paid and holds its lock.
    pump(&[alice, brandon, carol], &transports, 0).await?;
    let summary = &brandon.session_summaries()[0];
    assert_eq!(
        (summary.packets, summary.acked, summary.earned),
        (4, Some(0), 0)
    );
    let held = brandon.channel_state(alice_brandon).await?.theirs.locks;
    let lock = held.locks()[0];
    assert_eq!(held.locks().len(), 1);
    assert_eq!(U256::from(lock.amount), parse_ether("1")?);

    // Brandon hands his watcher the lock's proof and Carol's acknowledgment, closes the
    // channel through the relayer, and goes offline.
    let report = brandon.sync().await?;
    assert_eq!(
        report.secrets, 1,
        "the acknowledgment's registration: {report:?}"
    );
    brandon.close(alice_brandon).await?;
    let registry = ConditionRegistry::new(dev.address("conditionRegistry"), dev.provider()?);
    let registered = || async {
        eyre::Ok(
            registry
                .registeredAt(lock.condition_id)
                .call()
                .await?
                .to::<u64>(),
        )
    };
    assert_eq!(
        registered().await?,
        0,
        "nothing registered while Alice might still unlock"
    );
    // Within the watcher's margin (60 s on dev) of the expiry, it registers the acknowledgment.
    let now = dev
        .provider()?
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await?
        .map(|block| block.header.timestamp)
        .unwrap_or_default();
    dev.advance(lock.expiry.saturating_sub(now).saturating_sub(30))
        .await?;
    let mut at = 0;
    for _ in 0..300 {
        at = registered().await?;
        if at != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        at > 0 && at < lock.expiry,
        "registered at {at}, the lock expires at {}",
        lock.expiry
    );

    // Once the hold period passed, the watcher settles for him, and the lock pays him.
    dev.advance(601).await?;
    let (_, brandon_payout, alice_payout) = dev
        .settled(
            alice_brandon,
            brandon.address(),
            "the watcher's settle with the lock",
        )
        .await?;
    assert_eq!(
        brandon_payout,
        parse_ether("51")?,
        "his 50 and the window's 1"
    );
    assert_eq!(alice_payout, parse_ether("99")?);
    Ok(())
}
