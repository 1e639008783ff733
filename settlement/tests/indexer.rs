//! The channel indexer under the log follower, on anvil with the real contracts, against
//! SQLite and the Postgres at `DATABASE_URL`: channel rows follow opens, deposits, closes,
//! penalties and settles, and a reorg that removes a close puts the channel back to open.

// The protocol crate's deployed stack and the chain crate's fresh databases, shared as-is.
#[allow(dead_code)]
#[path = "../../protocol/tests/common/mod.rs"]
mod stack;
#[allow(dead_code)]
#[path = "../../chain/tests/common/mod.rs"]
mod storage;

use std::time::Duration;

use alloy::{
    primitives::{B256, Bytes, U256, utils::parse_ether},
    providers::Provider,
    signers::local::PrivateKeySigner,
};
use smartmesh_chain::{Database, FollowerConfig, LogFollower, Progress, connect};
use smartmesh_protocol::{BalanceProof, TokenNetwork, Watch, sign_typed, token_network_domain};
use smartmesh_settlement::{ChannelIndexer, ChannelPhase, load_channel};
use stack::Stack;
use storage::databases;

fn follower(stack: &Stack, db: &Database) -> eyre::Result<LogFollower> {
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

async fn catch_up(follower: &LogFollower) -> eyre::Result<Vec<Progress>> {
    let mut steps = Vec::new();
    loop {
        match follower.poll_once(&mut ChannelIndexer).await? {
            Progress::UpToDate => return Ok(steps),
            step => steps.push(step),
        }
    }
}

async fn rpc(
    stack: &Stack,
    method: &'static str,
    params: serde_json::Value,
) -> eyre::Result<serde_json::Value> {
    Ok(stack
        .provider(&stack.keys[0])
        .raw_request(method.into(), params)
        .await?)
}

async fn open_and_fund(
    stack: &Stack,
    a: &PrivateKeySigner,
    b: &PrivateKeySigner,
) -> eyre::Result<B256> {
    let receipt = stack
        .network(a)
        .open(b.address(), U256::from(3_600))
        .send()
        .await?
        .get_receipt()
        .await?;
    let channel_id = receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| log.log_decode::<TokenNetwork::ChannelOpened>().ok())
        .ok_or_else(|| eyre::eyre!("no ChannelOpened"))?
        .inner
        .channelId;
    for (who, amount) in [(a, "100"), (b, "50")] {
        let amount = parse_ether(amount)?;
        stack.fund(who.address(), amount).await?;
        stack
            .token(who)
            .approve(stack.network, amount)
            .send()
            .await?
            .get_receipt()
            .await?;
        stack
            .network(who)
            .deposit(channel_id, who.address(), amount)
            .send()
            .await?
            .get_receipt()
            .await?;
    }
    Ok(channel_id)
}

#[tokio::test]
async fn channel_rows_follow_the_chain_through_a_reorg() -> eyre::Result<()> {
    for db in databases("settlement_indexer").await? {
        let stack = Stack::deploy().await?;
        let (alice, brandon) = (&stack.keys[1], &stack.keys[2]);
        let follower = follower(&stack, &db)?;
        let channel_id = open_and_fund(&stack, alice, brandon).await?;
        catch_up(&follower).await?;
        let row = load_channel(db.pool(), channel_id).await?.expect("indexed");
        assert_eq!(row.phase, ChannelPhase::Open, "{:?}", db.backend());
        let (alice_deposit, brandon_deposit) = if alice.address() == row.participant1 {
            (row.deposit1, row.deposit2)
        } else {
            (row.deposit2, row.deposit1)
        };
        assert_eq!(
            (alice_deposit, brandon_deposit),
            (parse_ether("100")?, parse_ether("50")?)
        );

        // A close that a reorg then removes.
        let snapshot = rpc(&stack, "evm_snapshot", serde_json::json!([])).await?;
        let close = |claim: &str| {
            let claim = parse_ether(claim);
            let network = stack.network(alice);
            async move {
                let empty = TokenNetwork::BalanceProof {
                    channelId: B256::ZERO,
                    nonce: U256::ZERO,
                    transferredAmount: U256::ZERO,
                    lockedAmount: U256::ZERO,
                    locksRoot: B256::ZERO,
                    messageHash: B256::ZERO,
                };
                let receipt = network
                    .close(channel_id, empty, Bytes::new(), claim?)
                    .send()
                    .await?
                    .get_receipt()
                    .await?;
                eyre::ensure!(receipt.status(), "close reverted");
                eyre::Ok(receipt.block_number.unwrap_or_default())
            }
        };
        close("1").await?;
        catch_up(&follower).await?;
        let row = load_channel(db.pool(), channel_id).await?.expect("indexed");
        assert_eq!(row.phase, ChannelPhase::Closed);
        assert_eq!(row.closer, Some(alice.address()));
        assert_eq!(row.claim_transferred, Some(parse_ether("1")?));

        assert_eq!(
            rpc(&stack, "evm_revert", serde_json::json!([snapshot])).await?,
            serde_json::json!(true)
        );
        rpc(&stack, "evm_mine", serde_json::json!([])).await?;
        rpc(&stack, "evm_mine", serde_json::json!([])).await?;
        let steps = catch_up(&follower).await?;
        assert!(
            matches!(steps.first(), Some(Progress::RolledBack { .. })),
            "{:?}: {steps:?}",
            db.backend()
        );
        let row = load_channel(db.pool(), channel_id)
            .await?
            .expect("still indexed");
        assert_eq!(
            row.phase,
            ChannelPhase::Open,
            "{:?}: the orphaned close is undone",
            db.backend()
        );
        assert_eq!(row.closer, None);

        // The close lands again, stale; Brandon disputes it; after the hold period, settle.
        let closed_block = close("2").await?;
        let domain = token_network_domain(stack.chain_id, stack.network);
        let alice_paid = BalanceProof {
            channelId: channel_id,
            nonce: U256::from(3),
            transferredAmount: parse_ether("9")?,
            ..Default::default()
        };
        let receipt = stack
            .network(brandon)
            .updateClaim(
                channel_id,
                alice_paid.clone().into(),
                Bytes::copy_from_slice(sign_typed(alice, &alice_paid, &domain).as_bytes()),
                Watch::default().into(),
                Bytes::new(),
            )
            .send()
            .await?
            .get_receipt()
            .await?;
        assert!(receipt.status(), "dispute accepted");
        catch_up(&follower).await?;
        let row = load_channel(db.pool(), channel_id).await?.expect("indexed");
        assert!(
            row.penalized && row.phase == ChannelPhase::Closed,
            "{row:?}"
        );
        assert_eq!(row.closed_block, Some(closed_block));

        rpc(&stack, "evm_increaseTime", serde_json::json!([3_601])).await?;
        rpc(&stack, "evm_mine", serde_json::json!([])).await?;
        stack
            .network(brandon)
            .settle(channel_id)
            .send()
            .await?
            .get_receipt()
            .await?;
        catch_up(&follower).await?;
        let row = load_channel(db.pool(), channel_id).await?.expect("indexed");
        assert_eq!(row.phase, ChannelPhase::Settled, "{:?}", db.backend());
    }
    Ok(())
}
