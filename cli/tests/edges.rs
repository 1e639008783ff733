//! The wallet commands at their edges, through the binary on `smartmesh dev`: a channel a
//! partner opened is unknown until tracked, and the advice says how; a command whose output
//! pipe closes finishes what it started.

mod common;

use std::process::{Command, Stdio};

use alloy::primitives::{Address, B256};
use common::dev::{Dev, file, opened};
use smartmesh_protocol::TokenNetwork;

fn address_of(output: &str) -> eyre::Result<Address> {
    output
        .split_whitespace()
        .find_map(|word| word.trim_end_matches(',').parse().ok())
        .ok_or_else(|| eyre::eyre!("no address in {output:?}"))
}

#[tokio::test]
async fn a_channel_a_partner_opened_is_tracked_then_paid_into() -> eyre::Result<()> {
    let dev = Dev::start("track")?;
    let dana = address_of(&dev.sm(&["wallet", "new", "--wallet", "dana"])?)?;
    let channel = opened(&dev.sm(&[
        "channel",
        "open",
        "--wallet",
        "alice",
        "--partner",
        &dana.to_string(),
        "--settle-timeout",
        "60",
        "--deposit",
        "10",
    ])?)?;
    let id = channel.to_string();
    let payment = file(&dev.home, "to-dana.smr");
    dev.sm(&[
        "pay",
        "--wallet",
        "alice",
        "--channel",
        &id,
        "--amount",
        "2",
        "--out",
        &payment,
    ])?;

    let error = dev.sm_fails(&["receive", "--wallet", "dana", &payment])?;
    assert!(error.contains("unknown to this wallet"), "{error}");
    assert!(
        error.contains("smartmesh channel track --channel"),
        "the advice names a real command: {error}"
    );
    let tracked = dev.sm(&["channel", "track", "--wallet", "dana", "--channel", &id])?;
    assert!(tracked.contains("can receive 10 SMT"), "{tracked}");
    let received = dev.sm(&["receive", "--wallet", "dana", &payment])?;
    assert!(received.starts_with("received: 2 SMT"), "{received}");
    Ok(())
}

#[tokio::test]
async fn a_closed_output_pipe_does_not_stop_a_command_halfway() -> eyre::Result<()> {
    let dev = Dev::start("pipe")?;
    let dave = address_of(&dev.sm(&["wallet", "new", "--wallet", "dave"])?)?;
    // `smartmesh channel open --deposit 10 | awk '{exit}'`: the reader is gone before the
    // command has printed anything.
    let mut child = Command::new(env!("CARGO_BIN_EXE_smartmesh"))
        .args(["channel", "open", "--wallet", "alice", "--partner"])
        .arg(dave.to_string())
        .args(["--settle-timeout", "60", "--deposit", "10", "--home"])
        .arg(&dev.home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    drop(child.stdout.take());
    let output = child.wait_with_output()?;
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let (id, _): (B256, _) = TokenNetwork::new(dev.address("tokenNetwork"), dev.provider()?)
        .currentChannel(dev.wallet("alice"), dave)
        .call()
        .await?
        .into();
    let (deposit, _) = TokenNetwork::new(dev.address("tokenNetwork"), dev.provider()?)
        .participantInfo(id, dev.wallet("alice"))
        .call()
        .await?
        .into();
    assert_eq!(
        deposit,
        alloy::primitives::utils::parse_ether("10")?,
        "the deposit after the open landed too"
    );
    Ok(())
}
