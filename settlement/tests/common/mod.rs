//! What the settlement tests share: the protocol tests' deployed stack, the chain tests' fresh
//! databases, a follower feeding the channel indexer, and Alice and Brandon's channel.

// Each test binary uses a different part of it.
#![allow(dead_code)]

#[path = "../../../protocol/tests/common/mod.rs"]
pub(crate) mod stack;
#[path = "../../../chain/tests/common/mod.rs"]
pub(crate) mod storage;

use std::time::Duration;

use alloy::primitives::{B256, utils::parse_ether};
use smartmesh_chain::{Database, FollowerConfig, LogFollower, Progress, connect};
use smartmesh_settlement::ChannelIndexer;
pub(crate) use stack::Stack;
#[allow(unused_imports)]
pub(crate) use storage::{databases, postgres, sqlite};
pub(crate) mod watcher;
pub(crate) mod world;

/// A follower of the stack's TokenNetwork into `db`, with no confirmations.
pub(crate) fn channel_follower(stack: &Stack, db: &Database) -> eyre::Result<LogFollower> {
    Ok(LogFollower::new(
        connect(stack.anvil.endpoint_url().as_ref())?,
        db.clone(),
        FollowerConfig {
            name: "channels".into(),
            addresses: vec![stack.network],
            start_block: 0,
            confirmations: 0,
            max_range: 50,
            keep_blocks: 64,
            poll_interval: Duration::from_millis(10),
        },
    ))
}

/// Polls until the follower is up to date, returning what each poll did.
pub(crate) async fn catch_up(follower: &LogFollower) -> eyre::Result<Vec<Progress>> {
    let mut steps = Vec::new();
    loop {
        match follower.poll_once(&mut ChannelIndexer).await? {
            Progress::UpToDate => return Ok(steps),
            step => steps.push(step),
        }
    }
}

/// Alice (key 1) opens a channel to Brandon (key 2); they deposit 100 and 50 SMT.
pub(crate) async fn alice_and_brandon(stack: &Stack) -> eyre::Result<B256> {
    let (alice, brandon) = (&stack.keys[1], &stack.keys[2]);
    let channel_id = stack.open_channel(alice, brandon).await?;
    stack
        .fund_and_deposit(channel_id, alice, parse_ether("100")?)
        .await?;
    stack
        .fund_and_deposit(channel_id, brandon, parse_ether("50")?)
        .await?;
    Ok(channel_id)
}
