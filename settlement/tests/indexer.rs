//! The channel indexer under the log follower, on anvil with the real contracts, against
//! SQLite and the Postgres at `DATABASE_URL`: channel rows follow opens, deposits, closes,
//! penalties and settles, and a reorg that removes a close puts the channel back to open.

mod common;

use alloy::primitives::{B256, Bytes, U256, utils::parse_ether};
use common::{Stack, alice_and_brandon, catch_up, channel_follower, databases, watcher::rpc};
use smartmesh_chain::Progress;
use smartmesh_protocol::{BalanceProof, TokenNetwork, Watch, sign_typed, token_network_domain};
use smartmesh_settlement::{ChannelPhase, load_channel};

#[tokio::test]
async fn channel_rows_follow_the_chain_through_a_reorg() -> eyre::Result<()> {
    for db in databases("settlement_indexer").await? {
        let stack = Stack::deploy().await?;
        let (alice, brandon) = (&stack.keys[1], &stack.keys[2]);
        let follower = channel_follower(&stack, &db)?;
        let channel_id = alice_and_brandon(&stack).await?;
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
                    .close(
                        channel_id,
                        empty,
                        Bytes::new(),
                        Bytes::new(),
                        claim?,
                        Bytes::new(),
                    )
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
                Bytes::new(),
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
