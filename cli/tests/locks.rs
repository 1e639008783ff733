//! Conditional payments through the `smartmesh` binary on `smartmesh dev`: a hashlock locked,
//! revealed and unlocked offline with messages handed over as files; and a lock settled on
//! chain for an offline receiver: Brandon registers the secret through the relayer and goes
//! offline, Alice closes declaring the lock, the watcher settles with the locks and Brandon
//! is paid the lock.

mod common;

use alloy::primitives::{B256, U256, keccak256, utils::parse_ether};
use common::dev::{Dev, file, opened};
use smartmesh_protocol::hashlock_condition_id;

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
    let said = dev.sm(&[
        "pay",
        "--wallet",
        "alice",
        "--channel",
        &channel,
        "--amount",
        "10",
        "--lock-secret-hash",
        &condition,
        "--expires-in",
        "30",
        "--out",
        &locked,
    ])?;
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

#[tokio::test]
async fn a_lock_registered_in_time_pays_the_offline_receiver_at_settle() -> eyre::Result<()> {
    let dev = Dev::start("locks-settle")?;
    let (alice, brandon) = (dev.wallet("alice"), dev.wallet("brandon"));
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
    let (secret, condition) = secret("registered");
    let locked = file(&dev.home, "locked.smr");
    dev.sm(&[
        "pay",
        "--wallet",
        "alice",
        "--channel",
        &id,
        "--amount",
        "10",
        "--lock-secret-hash",
        &condition.to_string(),
        "--expires-in",
        "300",
        "--out",
        &locked,
    ])?;
    dev.sm(&["receive", "--wallet", "brandon", &locked])?;
    // Brandon learns the secret and registers it through the relayer, then goes offline
    // before Alice unlocks.
    let said = dev.sm(&[
        "reveal",
        "--wallet",
        "brandon",
        "--secret",
        &secret.to_string(),
        "--on-chain",
    ])?;
    assert!(said.contains("registered"), "{said}");
    let synced = dev.sm(&["sync", "--wallet", "brandon"])?;
    assert!(synced.contains("1 receipt(s) stored"), "{synced}");
    let before = dev.smt(brandon).await?;

    // Alice closes honestly, declaring the lock; the watcher settles after the hold period.
    dev.sm(&["channel", "close", "--wallet", "alice", "--channel", &id])?;
    dev.rpc("evm_increaseTime", serde_json::json!([601]))
        .await?;
    dev.rpc("evm_mine", serde_json::json!([])).await?;
    let (_, brandon_payout, alice_payout) = dev
        .settled(channel, brandon, "the watcher's settle with locks")
        .await?;
    assert_eq!(
        brandon_payout,
        parse_ether("60")?,
        "his 50 and the lock's 10"
    );
    assert_eq!(alice_payout, parse_ether("90")?);
    assert_eq!(dev.smt(brandon).await? - before, parse_ether("60")?);
    let _ = (alice, U256::ZERO);
    Ok(())
}
