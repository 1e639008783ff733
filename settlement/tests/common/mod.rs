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
pub(crate) use storage::databases;
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

/// A fresh SQLite database for one test.
pub(crate) async fn sqlite(test: &str) -> eyre::Result<Database> {
    let file = std::env::temp_dir().join(format!("smartmesh_{test}_{}.sqlite", std::process::id()));
    for path in [
        file.clone(),
        file.with_extension("sqlite-wal"),
        file.with_extension("sqlite-shm"),
    ] {
        let _ = std::fs::remove_file(path);
    }
    Ok(Database::connect(&format!("sqlite://{}", file.display())).await?)
}

/// The database `#[sqlx::test]` made for one test, migrated by the watcher's own code.
pub(crate) async fn postgres(options: &sqlx::postgres::PgConnectOptions) -> eyre::Result<Database> {
    Ok(Database::connect(&watcher::postgres_url(options)).await?)
}

/// Runs `$body(db)` on SQLite as `$sqlite` and on Postgres as `$pg`, a `#[sqlx::test]` that
/// gets a database of its own on the server at `DATABASE_URL`.
#[macro_export]
macro_rules! on_both_backends {
    ($body:path => $sqlite:ident, $pg:ident) => {
        #[tokio::test]
        async fn $sqlite() -> eyre::Result<()> {
            $body(common::sqlite(stringify!($sqlite)).await?).await
        }

        #[sqlx::test(migrations = false)]
        async fn $pg(
            _: sqlx::postgres::PgPoolOptions,
            options: sqlx::postgres::PgConnectOptions,
        ) -> eyre::Result<()> {
            $body(common::postgres(&options).await?).await
        }
    };
}
