//! Conditional payments through the `smartmesh` binary on `smartmesh dev`: a hashlock locked,
//! revealed and unlocked offline with messages handed over as files; and locks settled on
//! chain for an offline receiver. Brandon learns the secret, syncs it to his watcher and goes
//! offline: when Alice closes declaring the lock, the watcher registers the secret within its
//! margin of the lock's expiry (paid its fee by Brandon's signed request) and settles, and
//! Brandon is paid the lock; when Alice closes dropping the lock, the watcher submits her
//! signed proof with the lock as evidence and the under-declaration costs her the channel. A
//! secret registered after its lock's expiry pays nothing: the lock goes back to Alice. A
//! wallet restored from an old backup learns its pending locks from the watcher and declares
//! them when it closes. A `LockExpired` is taken only on a registry read showing the condition
//! unregistered before the expiry: refused, by the payer's wallet and by the receiver's
//! reading the chain, once the secret was registered in time.

mod common;

use std::time::Duration;

use alloy::primitives::{Address, B256, U256, keccak256, utils::parse_ether};
use common::dev::{Dev, file, opened};
use smartmesh_protocol::{ConditionRegistry, TokenNetwork, hashlock_condition_id};

fn secret(name: &str) -> (B256, B256) {
    let secret = keccak256(name);
    (secret, hashlock_condition_id(&secret))
}

#[tokio::test]
async fn a_hashlock_is_locked_revealed_and_unlocked_through_the_cli() -> eyre::Result<()> {
    let dev = Dev::start("locks-offline")?;
    let channel = dev.alice_and_brandon()?.to_string();
    let (secret, condition) = secret("offline");
    let (secret, condition) = (secret.to_string(), condition.to_string());
    let locked = file(&dev.home, "locked.smr");
    let said = pay_locked(&dev, &channel, "10", &condition, "30", &locked)?;
    assert!(said.starts_with("locked 10 SMT on"), "{said}");
    let said = dev.sm(&["receive", "--wallet", "brandon", &locked])?;
    assert!(said.contains("10 SMT locked on"), "{said}");
    let status = dev.sm(&[
        "channel",
        "status",
        "--wallet",
        "brandon",
        "--channel",
        &channel,
    ])?;
    assert!(
        status.contains("pending lock from partner: 10 SMT"),
        "{status}"
    );
    // A lock that could outlive a close Brandon has not seen is refused at the source.
    let refused = dev.sm_fails(&[
        "pay",
        "--wallet",
        "alice",
        "--channel",
        &channel,
        "--amount",
        "1",
        "--lock-secret-hash",
        &B256::repeat_byte(1).to_string(),
        "--expires-in",
        "3600",
    ])?;
    assert!(refused.contains("after the latest allowed"), "{refused}");

    let reveal = file(&dev.home, "reveal.smr");
    dev.sm(&[
        "reveal", "--wallet", "brandon", "--secret", &secret, "--out", &reveal,
    ])?;
    let said = dev.sm(&["receive", "--wallet", "alice", &reveal])?;
    assert!(
        said.contains(&format!("next: smartmesh unlock --condition {condition}")),
        "{said}"
    );
    let unlock = file(&dev.home, "unlock.smr");
    dev.sm(&[
        "unlock",
        "--wallet",
        "alice",
        "--channel",
        &channel,
        "--condition",
        &condition,
        "--out",
        &unlock,
    ])?;
    let said = dev.sm(&["receive", "--wallet", "brandon", &unlock])?;
    assert!(said.contains("10 SMT paid in total"), "{said}");
    let status = dev.sm(&[
        "channel",
        "status",
        "--wallet",
        "brandon",
        "--channel",
        &channel,
    ])?;
    assert!(
        status.contains("received 10 SMT") && !status.contains("pending lock"),
        "{status}"
    );
    Ok(())
}

/// Alice (100) and Brandon (50) in a channel with a 600 s hold period; Alice locks 10 SMT to
/// Brandon on `name`'s secret, expiring in 300 s, and Brandon takes the lock. Returns the
/// channel, the secret and the lock's expiry.
async fn locked_ten(dev: &Dev, name: &str) -> eyre::Result<(B256, B256, u64)> {
    let channel = opened(&dev.sm(&[
        "channel",
        "open",
        "--wallet",
        "alice",
        "--partner",
        "brandon",
        "--settle-timeout",
        "600",
        "--deposit",
        "100",
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
        "50",
    ])?;
    let (secret, condition) = secret(name);
    let locked = file(&dev.home, &format!("{name}.smr"));
    let expiry = wall_clock() + 300;
    pay_locked(dev, &id, "10", &condition.to_string(), "300", &locked)?;
    dev.sm(&["receive", "--wallet", "brandon", &locked])?;
    Ok((channel, secret, expiry))
}

/// `smartmesh pay` by Alice of `amount` on `channel`, locked on `condition` for `expires_in`
/// seconds, handed over in the file `out`.
fn pay_locked(
    dev: &Dev,
    channel: &str,
    amount: &str,
    condition: &str,
    expires_in: &str,
    out: &str,
) -> eyre::Result<String> {
    dev.sm(&[
        "pay",
        "--wallet",
        "alice",
        "--channel",
        channel,
        "--amount",
        amount,
        "--lock-secret-hash",
        condition,
        "--expires-in",
        expires_in,
        "--out",
        out,
    ])
}

fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Brandon learns the secret offline and hands it, with his receipt of the lock, to his
/// watcher; then he goes offline.
fn brandon_syncs_the_secret(dev: &Dev, secret: B256) -> eyre::Result<()> {
    // What he would hand Alice is printed (RevealSecret): he never gets to.
    let said = dev.sm(&[
        "reveal",
        "--wallet",
        "brandon",
        "--secret",
        &secret.to_string(),
    ])?;
    assert!(said.starts_with("smr1"), "{said}");
    let synced = dev.sm(&["sync", "--wallet", "brandon"])?;
    assert!(
        synced.contains("1 receipt(s) stored") && synced.contains("1 secret(s)"),
        "{synced}"
    );
    Ok(())
}

/// When the registry registered `secret`'s condition, once it has (0: not within the wait).
async fn registered_at(dev: &Dev, secret: B256) -> eyre::Result<u64> {
    let registry = ConditionRegistry::new(dev.address("conditionRegistry"), dev.provider()?);
    for _ in 0..300 {
        let at = registry
            .registeredAt(hashlock_condition_id(&secret))
            .call()
            .await?
            .to::<u64>();
        if at != 0 {
            return Ok(at);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(0)
}

/// Moves the chain `seconds` on, into the watcher's margin before `expiry`, and checks that it
/// registers the secret before the expiry.
async fn registered_in_time(
    dev: &Dev,
    secret: B256,
    expiry: u64,
    seconds: u64,
) -> eyre::Result<()> {
    dev.advance(seconds).await?;
    let at = registered_at(dev, secret).await?;
    assert!(
        at > 0 && at < expiry,
        "registered at {at}, the lock expires at {expiry}"
    );
    Ok(())
}

fn watcher(dev: &Dev) -> Address {
    dev.dev["watcher"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_watcher_registers_an_offline_receivers_secret_in_time_and_settles() -> eyre::Result<()>
{
    let dev = Dev::start("locks-settle")?;
    let (alice, brandon) = (dev.wallet("alice"), dev.wallet("brandon"));
    let (channel, secret, expiry) = locked_ten(&dev, "registered").await?;
    brandon_syncs_the_secret(&dev, secret)?;
    let (before, watcher_before) = (dev.smt(brandon).await?, dev.smt(watcher(&dev)).await?);

    // Alice closes honestly, declaring the lock. Nothing is registered while the expiry is
    // more than the watcher's margin (60 s on dev) away: Alice might still unlock.
    dev.sm(&[
        "channel",
        "close",
        "--wallet",
        "alice",
        "--channel",
        &channel.to_string(),
    ])?;
    dev.advance(100).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let registry = ConditionRegistry::new(dev.address("conditionRegistry"), dev.provider()?);
    let early = registry
        .registeredAt(hashlock_condition_id(&secret))
        .call()
        .await?
        .to::<u64>();
    assert_eq!(early, 0, "registered long before it had to be");
    // Within the margin of the expiry, the watcher registers it through Brandon's request.
    registered_in_time(&dev, secret, expiry, 150).await?;

    dev.advance(400).await?;
    let (_, brandon_payout, alice_payout) = dev
        .settled(channel, brandon, "the watcher's settle with locks")
        .await?;
    assert_eq!(
        brandon_payout,
        parse_ether("60")?,
        "his 50 and the lock's 10"
    );
    assert_eq!(alice_payout, parse_ether("90")?);
    let fee = parse_ether("0.01")?;
    assert_eq!(
        dev.smt(brandon).await? - before,
        parse_ether("60")? - fee,
        "paid out 60, less the registration fee"
    );
    assert_eq!(
        dev.smt(watcher(&dev)).await? - watcher_before,
        fee,
        "the watcher earned its fee"
    );
    let _ = alice;
    Ok(())
}

#[tokio::test]
async fn a_close_dropping_a_lock_is_caught_by_the_watchers_evidence() -> eyre::Result<()> {
    let dev = Dev::start("locks-dropped")?;
    let brandon = dev.wallet("brandon");
    let (channel, secret, expiry) = locked_ten(&dev, "dropped").await?;
    brandon_syncs_the_secret(&dev, secret)?;
    let before = dev.smt(brandon).await?;

    let closed = dev.sm(&[
        "channel",
        "close",
        "--wallet",
        "alice",
        "--channel",
        &channel.to_string(),
        "--drop-locks",
        "--forfeit-deposit",
    ])?;
    assert!(closed.contains("closed"), "{closed}");
    for declared in dev
        .events::<TokenNetwork::ChannelLocksDeclared>(channel)
        .await?
    {
        assert!(
            declared.ownLocks.is_empty(),
            "Alice declared no lock of hers"
        );
    }
    // The watcher puts Alice's signed proof with the lock on chain during the hold period...
    let evidence = dev
        .eventually::<TokenNetwork::EvidenceSubmitted>(channel, "the watcher's lock evidence")
        .await?;
    assert_eq!(evidence.locks.len(), 64, "the one dropped lock");
    assert_eq!(evidence.watcher, watcher(&dev));
    // ... and registers the secret before the lock expires.
    registered_in_time(&dev, secret, expiry, 250).await?;

    dev.advance(400).await?;
    let (settled, brandon_payout, alice_payout) = dev
        .settled(channel, brandon, "the watcher's settle with locks")
        .await?;
    let reward = parse_ether("1")?;
    assert_eq!(
        brandon_payout,
        parse_ether("150")? - reward,
        "the whole channel, less the watcher's reward"
    );
    assert_eq!(
        alice_payout,
        U256::ZERO,
        "the under-declaration cost Alice her deposit"
    );
    assert_eq!(settled.reward, reward);
    assert_eq!(
        dev.smt(brandon).await? - before,
        parse_ether("149")? - parse_ether("0.01")?
    );
    Ok(())
}

#[tokio::test]
async fn a_secret_registered_after_its_locks_expiry_pays_the_lock_back() -> eyre::Result<()> {
    let dev = Dev::start("locks-late")?;
    let (alice, brandon) = (dev.wallet("alice"), dev.wallet("brandon"));
    let (channel, secret, expiry) = locked_ten(&dev, "late").await?;
    let synced = dev.sm(&["sync", "--wallet", "brandon"])?;
    assert!(synced.contains("1 receipt(s) stored"), "{synced}");

    // Brandon learns the secret only after the lock expired, and registers it himself.
    dev.advance(301).await?;
    let said = dev.sm(&[
        "reveal",
        "--wallet",
        "brandon",
        "--secret",
        &secret.to_string(),
        "--on-chain",
    ])?;
    assert!(said.contains("registered"), "{said}");
    let at = registered_at(&dev, secret).await?;
    assert!(
        at >= expiry,
        "registered at {at}, after the expiry {expiry}"
    );

    dev.sm(&[
        "channel",
        "close",
        "--wallet",
        "alice",
        "--channel",
        &channel.to_string(),
    ])?;
    dev.advance(601).await?;
    let (_, alice_payout, brandon_payout) = dev
        .settled(channel, alice, "the watcher's settle with locks")
        .await?;
    assert_eq!(
        alice_payout,
        parse_ether("100")?,
        "the late lock came back to Alice"
    );
    assert_eq!(brandon_payout, parse_ether("50")?);
    let _ = brandon;
    Ok(())
}

#[tokio::test]
async fn a_restored_wallet_learns_its_pending_locks_from_the_watcher() -> eyre::Result<()> {
    let dev = Dev::start("locks-restore")?;
    let (alice_phone, brandon_phone) = (dev.mesh("alice").await?, dev.mesh("brandon").await?);
    let (channel, _) = alice_phone.open_channel(dev.wallet("brandon"), 600).await?;
    alice_phone.deposit(channel, parse_ether("40")?).await?;
    brandon_phone.refresh(channel).await?;
    let wallet = dev.home.join("wallets").join("alice");
    let backup = dev.home.join("alice-backup");
    std::fs::create_dir_all(&backup)?;
    for file in ["key", "journal.sqlite", "journal.sqlite-wal"] {
        if wallet.join(file).exists() {
            std::fs::copy(wallet.join(file), backup.join(file))?;
        }
    }

    // After the backup, Alice locks 10 to Brandon and syncs her own proofs.
    let (_, condition) = secret("restored");
    let lock = smartmesh_protocol::Lock {
        expiry: wall_clock() + 300,
        amount: parse_ether("10")?.to::<u128>(),
        condition_id: condition,
    };
    let locked = alice_phone.lock(channel, lock, Vec::new()).await?;
    brandon_phone.receive(locked).await?;
    assert_eq!(alice_phone.sync().await?.backups, 1);
    drop(alice_phone);

    // Restored from the backup, the wallet knew nothing of the lock: the watcher tells it,
    // so its close declares the lock instead of forfeiting the deposit.
    std::fs::remove_dir_all(&wallet)?;
    std::fs::rename(&backup, &wallet)?;
    let restored = dev.mesh("alice").await?;
    restored.mark_restored().await?;
    assert!(restored.channel_state(channel).await?.mine.locks.is_empty());
    assert_eq!(restored.restore().await?, 1);
    let locks = restored.channel_state(channel).await?.mine.locks;
    assert_eq!(locks.locks(), &[lock], "the pending lock, learned");
    restored.close(channel).await?;
    let declared = dev
        .eventually::<TokenNetwork::ChannelLocksDeclared>(channel, "the close's lock lists")
        .await?;
    assert_eq!(declared.ownLocks.to_vec(), locks.encode());
    Ok(())
}

#[tokio::test]
async fn a_lock_expired_is_refused_once_the_registry_shows_the_secret_in_time() -> eyre::Result<()>
{
    let dev = Dev::start("locks-expired")?;
    let channel = dev.alice_and_brandon()?;
    let id = channel.to_string();
    // Wallets judge an expiry by their own clock, so these locks expire in wall-clock time:
    // 15 s leaves Brandon ample time to meet the first before it expires.
    let expiry = wall_clock() + 15;
    let (met, _) = secret("met");
    let (_, unmet) = secret("unmet");
    for (condition, amount) in [(hashlock_condition_id(&met), "10"), (unmet, "5")] {
        let locked = file(&dev.home, &format!("{condition}.smr"));
        pay_locked(&dev, &id, amount, &condition.to_string(), "15", &locked)?;
        dev.sm(&["receive", "--wallet", "brandon", &locked])?;
    }
    // Brandon meets the first lock in time, on chain; nobody meets the second.
    dev.sm(&[
        "reveal",
        "--wallet",
        "brandon",
        "--secret",
        &met.to_string(),
        "--on-chain",
    ])?;
    let at = registered_at(&dev, met).await?;
    assert!(
        at > 0 && at < expiry,
        "met at {at}, before the expiry {expiry}"
    );
    while wall_clock() <= expiry + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    dev.advance(2).await?;

    // The second lock expires unpaid: Alice's wallet and Brandon's each read the registry.
    let expired = file(&dev.home, "expired.smr");
    dev.sm(&[
        "expire",
        "--wallet",
        "alice",
        "--condition",
        &unmet.to_string(),
        "--out",
        &expired,
    ])?;
    let said = dev.sm(&["receive", "--wallet", "brandon", &expired])?;
    assert!(said.contains("expired unpaid"), "{said}");

    // The first was met before its expiry: Alice's wallet refuses to expire it ...
    let refused = dev.sm_fails(&[
        "expire",
        "--wallet",
        "alice",
        "--condition",
        &hashlock_condition_id(&met).to_string(),
    ])?;
    assert!(refused.contains("has not shown"), "{refused}");
    // ... and a wallet that lies to itself about the registry gets its LockExpired refused by
    // Brandon's, which reads the chain.
    let alice_phone = dev.mesh("alice").await?;
    let condition = hashlock_condition_id(&met);
    alice_phone
        .read_registry(
            condition,
            smartmesh_protocol::channel::RegistryRead {
                registered_at: 0,
                block_time: expiry + 10_000,
            },
        )
        .await?;
    let forged = alice_phone.expire(channel, condition).await?.to_text()?;
    drop(alice_phone);
    let refused = dev.sm_fails(&["receive", "--wallet", "brandon", &forged])?;
    assert!(refused.contains("has not shown"), "{refused}");
    let status = dev.sm(&["channel", "status", "--wallet", "brandon", "--channel", &id])?;
    assert!(
        status.contains(&format!("pending lock from partner: 10 SMT on {condition}")),
        "the met lock stays pending, to be unlocked or settled: {status}"
    );
    Ok(())
}
