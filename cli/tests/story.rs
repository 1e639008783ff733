//! The whitepaper's story end to end, through the `smartmesh` binary on `smartmesh dev`'s
//! stack (anvil, the contracts, the relayer, the watcher), as `scripts/demo` plays it: Alice
//! and Brandon hold SMT and no ETH; they open and fund a channel through the relayer; Alice
//! pays Brandon three times offline (the payments travel as files); Brandon syncs and goes
//! offline; Alice closes with a stale claim; the watcher disputes; after the hold period
//! Brandon holds both deposits minus the watcher's reward. Then the honest close (no dispute,
//! the watcher settles for Brandon) and a cooperative settle through the mesh crate.

mod common;

use alloy::{
    primitives::{Address, U256, utils::parse_ether},
    providers::Provider,
    sol_types::SolStruct,
};
use common::dev::{Dev, file, opened};
use smartmesh_protocol::TokenNetwork;

#[tokio::test]
async fn the_whitepaper_story_through_the_cli() -> eyre::Result<()> {
    let dev = Dev::start("whitepaper")?;
    let (alice, brandon) = (dev.wallet("alice"), dev.wallet("brandon"));
    let watcher: Address = dev.field("watcher").parse()?;
    let provider = dev.provider()?;
    for who in [alice, brandon] {
        assert_eq!(dev.smt(who).await?, parse_ether("1000")?);
        assert_eq!(provider.get_balance(who).await?, U256::ZERO, "no ETH");
    }

    // Alice and Brandon open and fund the channel through the relayer.
    let channel = dev.alice_and_brandon()?;
    let id = channel.to_string();
    let fees_so_far = |smt: U256, start: &str, moved: &str| -> eyre::Result<U256> {
        Ok(parse_ether(start)? - parse_ether(moved)? - smt)
    };
    let brandon_fees = fees_so_far(dev.smt(brandon).await?, "1000", "50")?;
    assert!(
        !brandon_fees.is_zero(),
        "the relayer earned a fee from Brandon"
    );

    // Offline: three payments of 10 SMT, as files.
    for n in 1..=3 {
        let path = file(&dev.home, &format!("payment-{n}.smr"));
        let paid = dev.sm(&[
            "pay",
            "--wallet",
            "alice",
            "--channel",
            &id,
            "--amount",
            "10",
            "--out",
            &path,
        ])?;
        assert!(paid.contains(&format!("total {} SMT", 10 * n)), "{paid}");
        let received = dev.sm(&["receive", "--wallet", "brandon", &path])?;
        assert!(
            received.contains(&format!("{} SMT paid in total", 10 * n)),
            "{received}"
        );
    }
    // A payment handed over twice is known the second time, and changes nothing.
    let again = dev.sm(&[
        "receive",
        "--wallet",
        "brandon",
        &file(&dev.home, "payment-3.smr"),
    ])?;
    assert!(again.starts_with("already received: 30 SMT"), "{again}");

    let synced = dev.sm(&["sync", "--wallet", "brandon"])?;
    assert!(synced.contains("1 receipt(s) stored"), "{synced}");

    // Alice closes declaring 10 where she signed 30; the watcher proves it.
    let closed = dev.sm(&[
        "channel",
        "close",
        "--wallet",
        "alice",
        "--channel",
        &id,
        "--claim",
        "10",
        "--forfeit-deposit",
    ])?;
    assert!(closed.contains("largest signed: 30 SMT"), "{closed}");
    let penalty = dev
        .eventually::<TokenNetwork::CloserPenalized>(channel, "the dispute")
        .await?;
    assert_eq!(penalty.watcher, watcher);
    assert_eq!(penalty.provenTransferred, parse_ether("30")?);
    let status = dev.sm(&["channel", "status", "--wallet", "brandon", "--channel", &id])?;
    assert!(status.contains("penalized"), "{status}");

    // After the hold period the watcher settles for the offline Brandon.
    dev.pass_hold_period().await?;
    let (settled, brandon_payout, alice_payout) =
        dev.settled(channel, brandon, "the settle").await?;
    assert_eq!(
        brandon_payout,
        parse_ether("149")?,
        "both deposits minus the reward"
    );
    assert_eq!(alice_payout, U256::ZERO, "Alice's deposit is confiscated");
    assert_eq!(
        (settled.watcher, settled.reward),
        (watcher, parse_ether("1")?)
    );
    assert_eq!(dev.smt(brandon).await?, parse_ether("1099")? - brandon_fees);
    assert_eq!(dev.smt(watcher).await?, parse_ether("1")?);
    assert_eq!(
        provider.get_balance(alice).await?,
        U256::ZERO,
        "Alice never held ETH"
    );
    let table = dev.sm(&["balances"])?;
    assert!(
        table.contains("brandon") && table.contains("relayer"),
        "{table}"
    );
    Ok(())
}

#[tokio::test]
async fn an_honest_close_and_a_cooperative_settle() -> eyre::Result<()> {
    let dev = Dev::start("honest")?;
    let (alice, brandon) = (dev.wallet("alice"), dev.wallet("brandon"));

    // Honest: Alice pays 5 twice and closes claiming all 10; Brandon stays offline.
    let channel = opened(&dev.sm(&[
        "channel",
        "open",
        "--wallet",
        "alice",
        "--partner",
        "brandon",
        "--settle-timeout",
        "60",
        "--deposit",
        "20",
    ])?)?;
    let id = channel.to_string();
    dev.sm(&[
        "channel",
        "deposit",
        "--wallet",
        "brandon",
        "--channel",
        &id,
        "--amount",
        "10",
    ])?;
    for _ in 0..2 {
        let payment = dev.sm(&[
            "pay",
            "--wallet",
            "alice",
            "--channel",
            &id,
            "--amount",
            "5",
        ])?;
        dev.sm(&["receive", "--wallet", "brandon", payment.trim()])?;
    }
    dev.sm(&["sync", "--wallet", "brandon"])?;
    let closed = dev.sm(&["channel", "close", "--wallet", "alice", "--channel", &id])?;
    assert!(closed.contains("claiming 10 SMT paid"), "{closed}");
    dev.pass_hold_period().await?;
    let (_, brandon_payout, alice_payout) = dev
        .settled(channel, brandon, "the watcher's settle")
        .await?;
    assert_eq!(
        brandon_payout,
        parse_ether("20")?,
        "his 10 and the 10 Alice paid"
    );
    assert_eq!(alice_payout, parse_ether("10")?);
    assert!(
        dev.events::<TokenNetwork::CloserPenalized>(channel)
            .await?
            .is_empty(),
        "an honest close is not disputed"
    );

    // Cooperative: a new channel through the mesh crate; both sign the split, Alice submits.
    let (alice_phone, brandon_phone) = (dev.mesh("alice").await?, dev.mesh("brandon").await?);
    let (channel, _) = alice_phone.open_channel(brandon, 60).await?;
    alice_phone.deposit(channel, parse_ether("30")?).await?;
    brandon_phone.refresh(channel).await?;
    let payment = alice_phone.pay(channel, parse_ether("4")?).await?;
    brandon_phone.receive_bytes(&payment.encode()?).await?;
    let (balance1, balance2) = if alice < brandon {
        (parse_ether("26")?, parse_ether("4")?)
    } else {
        (parse_ether("4")?, parse_ether("26")?)
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 600;
    let brandon_signature = brandon_phone
        .sign_cooperative_settle(channel, balance1, balance2, deadline)
        .await?;
    // The settle pays participant2 all beyond balance1: Brandon's phone deposits nothing
    // until it lands.
    let more = brandon_phone.channel(channel).await?.my_deposit + parse_ether("1")?;
    assert!(
        matches!(
            brandon_phone.deposit(channel, more).await,
            Err(smartmesh_mesh::MeshError::Frozen { .. })
        ),
        "no deposit while a cooperative settle is signed"
    );
    let before = dev.smt(brandon).await?;
    alice_phone
        .cooperative_settle(channel, balance1, balance2, deadline, &brandon_signature)
        .await?;
    let settled = dev
        .eventually::<TokenNetwork::ChannelCooperativelySettled>(channel, "the cooperative settle")
        .await?;
    assert_eq!((settled.balance1, settled.balance2), (balance1, balance2));
    assert_eq!(
        dev.smt(brandon).await? - before,
        parse_ether("4")?,
        "paid out at once"
    );
    assert_eq!(
        alice_phone.channel(channel).await?.state,
        smartmesh_protocol::channel::Phase::Settled
    );
    Ok(())
}

#[tokio::test]
async fn a_restored_wallet_learns_its_latest_payment_and_a_withdrawal_lands() -> eyre::Result<()> {
    let dev = Dev::start("restore")?;
    let (alice_phone, brandon_phone) = (dev.mesh("alice").await?, dev.mesh("brandon").await?);
    let brandon = dev.wallet("brandon");
    let (channel, _) = alice_phone.open_channel(brandon, 60).await?;
    alice_phone.deposit(channel, parse_ether("40")?).await?;
    brandon_phone.refresh(channel).await?;

    // A withdrawal: Brandon signs Alice's, Alice sends both signatures through the relayer.
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 600;
    let brandon_signature = brandon_phone
        .sign_withdraw(channel, alice_phone.address(), parse_ether("10")?, deadline)
        .await?;
    alice_phone
        .withdraw(channel, parse_ether("10")?, deadline, &brandon_signature)
        .await?;
    let after = alice_phone.refresh(channel).await?;
    assert_eq!(after.my_withdrawn, parse_ether("10")?);
    assert!(
        after.frozen.is_none(),
        "the withdrawal landed: the channel thaws"
    );
    brandon_phone.refresh(channel).await?;

    // Alice pays 5, backs her phone up, pays 5 more, and syncs her own payments as backups.
    let first = alice_phone.pay(channel, parse_ether("5")?).await?;
    brandon_phone.receive_bytes(&first.encode()?).await?;
    let wallet = dev.home.join("wallets").join("alice");
    let backup = dev.home.join("alice-backup");
    std::fs::create_dir_all(&backup)?;
    // The journal and its write-ahead log, as a file-level backup takes them.
    for file in ["key", "journal.sqlite", "journal.sqlite-wal"] {
        if wallet.join(file).exists() {
            std::fs::copy(wallet.join(file), backup.join(file))?;
        }
    }
    let second = alice_phone.pay(channel, parse_ether("5")?).await?;
    brandon_phone.receive_bytes(&second.encode()?).await?;
    let report = alice_phone.sync().await?;
    assert_eq!(report.backups, 1, "{report:?}");
    let report = brandon_phone.sync().await?;
    assert_eq!(report.stored, 1, "{report:?}");
    let ack = brandon_phone
        .acknowledgment(channel, U256::from(2))
        .await?
        .expect("the watcher acknowledged");
    let digest = smartmesh_settlement::WatcherAck {
        channelId: channel,
        proofDigest: brandon_phone.proof_digest(&second.proof),
    }
    .eip712_signing_hash(&smartmesh_settlement::ack_domain(
        dev.dev["deployment"]["chainId"]
            .as_u64()
            .unwrap_or_default(),
        dev.address("tokenNetwork"),
    ));
    let signer =
        smartmesh_protocol::recover(&digest, &smartmesh_protocol::Signature65::from_slice(&ack)?)?;
    assert_eq!(
        signer,
        dev.field("watcher").parse::<Address>()?,
        "the acknowledgment is the watcher's"
    );
    drop(alice_phone);

    // The phone is lost; Alice restores the backup, which knows only the first payment.
    std::fs::remove_dir_all(&wallet)?;
    std::fs::rename(&backup, &wallet)?;
    let restored = dev.mesh("alice").await?;
    restored.mark_restored().await?;
    assert_eq!(
        restored.close_claim(channel).await?,
        parse_ether("5")?,
        "the backup is stale"
    );
    assert!(matches!(
        restored.close(channel).await,
        Err(smartmesh_mesh::MeshError::MustRestore)
    ));
    assert_eq!(
        restored.restore().await?,
        1,
        "the watcher held the newer payment"
    );
    assert_eq!(restored.close_claim(channel).await?, parse_ether("10")?);
    restored.close(channel).await?;
    assert!(
        dev.events::<TokenNetwork::ChannelClosed>(channel).await?[0].claimTransferred
            == parse_ether("10")?,
        "the close claims everything Alice signed: no penalty to fear"
    );
    Ok(())
}
