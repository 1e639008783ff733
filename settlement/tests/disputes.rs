//! The whole watcher end to end on anvil with the real contracts, on SQLite and on Postgres:
//! Brandon uploads his receipts and goes offline; Alice closes with a stale
//! claim; the watcher disputes within a block, and after the hold period settles, so Brandon
//! gets both deposits minus the watcher's reward. An honest close gets no dispute. A reorg
//! that moves the close ends with exactly one dispute. As `settleAt` nears, a dispute the
//! chain will not take gets higher fees.

mod common;

use alloy::primitives::U256;
use common::{
    Stack, alice_and_brandon,
    watcher::{
        RunningWatcher, block_timestamp, close, ether, event_blocks, eventually, fast_config,
        nonce, pass_hold_period, proof, receipt, receipt_until, rpc, smt, upload, wait_for_event,
    },
};
use smartmesh_chain::Database;
use smartmesh_protocol::TokenNetwork::{ChannelSettled, CloserPenalized};
use sqlx::Row;

/// Alice pays Brandon 10, 20 then 30 SMT in total; Brandon uploads the last proof with a
/// Watch rewarding the watcher 1 SMT.
async fn brandon_syncs(
    stack: &Stack,
    channel_id: alloy::primitives::B256,
    watcher: &RunningWatcher,
) -> eyre::Result<()> {
    let (alice, brandon) = (&stack.keys[1], &stack.keys[2]);
    // A phone uploads once the watcher has indexed its channel (it retries until then).
    eventually(30, "the channel to be indexed", || async {
        Ok(watcher
            .channel(channel_id)
            .await
            .is_ok_and(|view| view.chain.is_some()))
    })
    .await?;
    let proofs: Vec<_> = [(1, "10"), (2, "20"), (3, "30")]
        .into_iter()
        .map(|(n, amount)| proof(stack, channel_id, alice, n, ether(amount)))
        .collect();
    let item = receipt(stack, &proofs[2], brandon, watcher.address, ether("1"));
    let answer = upload(&watcher.url, stack, vec![item]).await?;
    assert_eq!(answer["items"][0]["status"], "stored", "{answer}");
    Ok(())
}

on_both_backends!(a_stale_close_is_disputed_and_settled => stale_close_sqlite, pg_stale_close);

async fn a_stale_close_is_disputed_and_settled(db: Database) -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let channel_id = alice_and_brandon(&stack).await?;
    let (alice, brandon) = (stack.keys[1].clone(), stack.keys[2].clone());
    let watcher = RunningWatcher::start(&stack, db, stack.keys[7].clone(), fast_config()).await?;
    let watcher_smt = smt(&stack, watcher.address).await?;
    brandon_syncs(&stack, channel_id, &watcher).await?;

    // Brandon is offline from here. Alice declares she paid 10 where she signed 30.
    let (close_block, settle_at) = close(&stack, channel_id, &alice, ether("10")).await?;
    let penalties = wait_for_event::<CloserPenalized>(&stack, channel_id, "the dispute").await?;
    assert_eq!(
        penalties,
        vec![close_block + 1],
        "disputed in the block after the close"
    );

    pass_hold_period(&stack, 3_601).await?;
    wait_for_event::<ChannelSettled>(&stack, channel_id, "the settle").await?;
    assert_eq!(
        smt(&stack, brandon.address()).await?,
        ether("149"),
        "both deposits minus the reward"
    );
    assert_eq!(
        smt(&stack, alice.address()).await?,
        U256::ZERO,
        "Alice's deposit confiscated"
    );
    assert_eq!(
        smt(&stack, watcher.address).await? - watcher_smt,
        ether("1"),
        "the reward"
    );
    assert_eq!(
        nonce(&stack, watcher.address).await?,
        2,
        "one dispute and one settle, nothing else"
    );
    let mined_at = block_timestamp(&stack, penalties[0]).await?;
    assert!(mined_at < settle_at);

    eventually(10, "the jobs to finish", || async {
        let view = watcher.channel(channel_id).await?;
        Ok(view.jobs.iter().all(|job| job.state == "done"))
    })
    .await?;
    let decisions = watcher.decisions(channel_id).await?;
    for expected in [
        "dispute:dispute_queued",
        "dispute:penalized",
        "settle:settle_queued",
        "settle:settled",
    ] {
        assert!(
            decisions.iter().any(|d| d == expected),
            "{expected} missing: {decisions:?}"
        );
    }
    watcher.stop().await
}

on_both_backends!(the_proof_that_proves_the_most_disputes => proves_most_sqlite, pg_proves_most);

/// What the watcher keeps decides what it can dispute. Brandon's uploads come in a hostile
/// order: Alice's proof for 140 SMT (nonce 6) with a useless Watch (deadline 0), then a proof
/// of hers for 30 SMT at a higher nonce (7), then the 140 proof again with a good Watch. The
/// watcher must keep the 140 proof, refuse the 30 one (its amount fell), take the better Watch,
/// and dispute Alice's close claiming 100.
async fn the_proof_that_proves_the_most_disputes(db: Database) -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let channel_id = alice_and_brandon(&stack).await?;
    let (alice, brandon) = (stack.keys[1].clone(), stack.keys[2].clone());
    let watcher = RunningWatcher::start(&stack, db, stack.keys[7].clone(), fast_config()).await?;
    eventually(30, "the channel to be indexed", || async {
        Ok(watcher
            .channel(channel_id)
            .await
            .is_ok_and(|view| view.chain.is_some()))
    })
    .await?;
    let most = proof(&stack, channel_id, &alice, 6, ether("140"));
    let less = proof(&stack, channel_id, &alice, 7, ether("30"));
    let reward = ether("1");
    let useless = receipt_until(&stack, &most, &brandon, watcher.address, reward, U256::ZERO);
    let answer = upload(&watcher.url, &stack, vec![useless]).await?;
    assert_eq!(answer["items"][0]["status"], "stored", "{answer}");

    let answer = upload(
        &watcher.url,
        &stack,
        vec![receipt(&stack, &less, &brandon, watcher.address, reward)],
    )
    .await?;
    assert_eq!(answer["items"][0]["status"], "rejected", "{answer}");
    let reason = answer["items"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("proof.transferredAmount"), "{reason}");

    let renewed = upload(
        &watcher.url,
        &stack,
        vec![receipt(&stack, &most, &brandon, watcher.address, reward)],
    )
    .await?;
    assert_eq!(
        renewed["items"][0]["status"], "stored",
        "a later Watch replaces: {renewed}"
    );
    assert!(renewed["items"][0]["ack"].is_string(), "{renewed}");

    close(&stack, channel_id, &alice, ether("100")).await?;
    wait_for_event::<CloserPenalized>(&stack, channel_id, "the dispute").await?;
    let penalty = event_blocks::<CloserPenalized>(&stack, channel_id).await?;
    assert_eq!(penalty.len(), 1);
    let logs = stack
        .network(&alice)
        .CloserPenalized_filter()
        .topic1(channel_id)
        .from_block(0)
        .query()
        .await?;
    assert_eq!(
        logs[0].0.provenTransferred,
        ether("140"),
        "disputed with the 140 proof"
    );
    watcher.stop().await
}

on_both_backends!(an_honest_close_is_not_disputed => honest_close_sqlite, pg_honest_close);

async fn an_honest_close_is_not_disputed(db: Database) -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let channel_id = alice_and_brandon(&stack).await?;
    let (alice, brandon) = (stack.keys[1].clone(), stack.keys[2].clone());
    let watcher = RunningWatcher::start(&stack, db, stack.keys[7].clone(), fast_config()).await?;
    brandon_syncs(&stack, channel_id, &watcher).await?;

    close(&stack, channel_id, &alice, ether("30")).await?;
    eventually(30, "the watcher to look at the close", || async {
        Ok(watcher
            .decisions(channel_id)
            .await?
            .contains(&"dispute:claim_covers_proof".to_owned()))
    })
    .await?;
    assert_eq!(nonce(&stack, watcher.address).await?, 0, "no dispute sent");

    // Brandon never comes back: the watcher settles for him, and he gets what he was owed.
    pass_hold_period(&stack, 3_601).await?;
    wait_for_event::<ChannelSettled>(&stack, channel_id, "the settle").await?;
    assert_eq!(smt(&stack, brandon.address()).await?, ether("80"));
    assert_eq!(smt(&stack, alice.address()).await?, ether("70"));
    assert_eq!(nonce(&stack, watcher.address).await?, 1, "only the settle");
    assert!(
        event_blocks::<CloserPenalized>(&stack, channel_id)
            .await?
            .is_empty()
    );
    let decisions = watcher.decisions(channel_id).await?;
    assert!(
        !decisions.iter().any(|d| d.contains("dispute_queued")),
        "{decisions:?}"
    );
    watcher.stop().await
}

on_both_backends!(a_reorged_close_ends_with_one_dispute => reorged_close_sqlite, pg_reorged_close);

/// The close and the dispute are mined, then a reorg removes both; the close lands again in
/// another block. The watcher ends with exactly one dispute on the canonical chain.
async fn a_reorged_close_ends_with_one_dispute(db: Database) -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let channel_id = alice_and_brandon(&stack).await?;
    let alice = stack.keys[1].clone();
    let mut config = fast_config();
    // Deeper than the reorg: the sender still follows its mined dispute when the block goes.
    config.sender.confirmations = 4;
    let watcher = RunningWatcher::start(&stack, db.clone(), stack.keys[7].clone(), config).await?;
    brandon_syncs(&stack, channel_id, &watcher).await?;

    let snapshot = rpc(&stack, "evm_snapshot", serde_json::json!([])).await?;
    let (first_close, _) = close(&stack, channel_id, &alice, ether("10")).await?;
    eventually(30, "the first dispute to be indexed", || async {
        Ok(watcher
            .channel(channel_id)
            .await?
            .chain
            .is_some_and(|c| c.penalized))
    })
    .await?;

    assert_eq!(
        rpc(&stack, "evm_revert", serde_json::json!([snapshot])).await?,
        true
    );
    rpc(&stack, "evm_mine", serde_json::json!([])).await?;
    let (second_close, settle_at) = close(&stack, channel_id, &alice, ether("10")).await?;
    assert_ne!(
        first_close, second_close,
        "the close moved to another block"
    );
    eventually(30, "the dispute on the new fork", || async {
        let penalized = !event_blocks::<CloserPenalized>(&stack, channel_id)
            .await?
            .is_empty();
        let indexed = watcher
            .channel(channel_id)
            .await?
            .chain
            .is_some_and(|c| c.penalized);
        Ok(penalized && indexed)
    })
    .await?;
    // A few more engine passes: nothing else is sent.
    for _ in 0..5 {
        rpc(&stack, "evm_mine", serde_json::json!([])).await?;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let penalties = event_blocks::<CloserPenalized>(&stack, channel_id).await?;
    assert_eq!(penalties.len(), 1, "exactly one dispute: {penalties:?}");
    assert!(penalties[0] > second_close);
    let mined_at = block_timestamp(&stack, penalties[0]).await?;
    assert!(mined_at < settle_at);
    // Every transaction the watcher sent after the reorg: the dispute again, at most once
    // more if the first was re-sent before the close came back (then it reverted).
    let sent: i64 = sqlx::query("SELECT COUNT(*) FROM sender_transactions")
        .fetch_one(db.pool())
        .await?
        .try_get(0)?;
    assert!(sent <= 2, "{sent} transactions");
    watcher.stop().await
}

#[tokio::test]
async fn a_dispute_gets_higher_fees_as_settle_at_nears() -> eyre::Result<()> {
    let db = common::sqlite("dispute_escalation").await?;
    let stack = Stack::deploy().await?;
    let channel_id = alice_and_brandon(&stack).await?;
    let alice = stack.keys[1].clone();
    let mut config = fast_config();
    // Only the escalation may replace the transaction, and high fees are allowed.
    config.sender.stuck_after = std::time::Duration::from_secs(3_600);
    config.sender.max_fee_cap = 10_000_000_000_000;
    let watcher = RunningWatcher::start(&stack, db.clone(), stack.keys[7].clone(), config).await?;
    brandon_syncs(&stack, channel_id, &watcher).await?;

    rpc(&stack, "evm_setAutomine", serde_json::json!([false])).await?;
    let network = stack.network(&alice);
    let pending = network
        .close(
            channel_id,
            smartmesh_protocol::BalanceProof::default().into(),
            alloy::primitives::Bytes::new(),
            alloy::primitives::Bytes::new(),
            ether("10"),
            alloy::primitives::Bytes::new(),
        )
        .send()
        .await?;
    rpc(&stack, "evm_mine", serde_json::json!([])).await?;
    let close_receipt = pending.get_receipt().await?;
    assert!(close_receipt.status());
    let attempts = || async {
        Ok::<i64, eyre::Report>(
            sqlx::query("SELECT COUNT(*) FROM sender_attempts")
                .fetch_one(db.pool())
                .await?
                .try_get(0)?,
        )
    };
    eventually(30, "the dispute's broadcast", || async {
        Ok(attempts().await? >= 1)
    })
    .await?;

    // Base fees soar: the dispute cannot be mined, and two thirds of the hold period pass.
    rpc(
        &stack,
        "anvil_setNextBlockBaseFeePerGas",
        serde_json::json!(["0xe8d4a51000"]),
    )
    .await?;
    rpc(&stack, "evm_increaseTime", serde_json::json!([2_400])).await?;
    rpc(&stack, "evm_mine", serde_json::json!([])).await?;
    assert!(
        event_blocks::<CloserPenalized>(&stack, channel_id)
            .await?
            .is_empty()
    );
    eventually(30, "a replacement with higher fees", || async {
        Ok(attempts().await? >= 2)
    })
    .await?;
    let fees: Vec<u128> = sqlx::query("SELECT max_fee_per_gas FROM sender_attempts ORDER BY id")
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>(0).unwrap().parse().unwrap())
        .collect();
    assert!(fees[1] > fees[0] * 110 / 100, "{fees:?}");

    // Past settleAt with the dispute still unmined (base fees soar higher still): nobody has
    // settled, so it can still land; the escalation says settleAt has passed, not that it is
    // near.
    rpc(
        &stack,
        "anvil_setNextBlockBaseFeePerGas",
        serde_json::json!(["0x5af3107a4000"]),
    )
    .await?;
    rpc(&stack, "evm_increaseTime", serde_json::json!([1_300])).await?;
    rpc(&stack, "evm_mine", serde_json::json!([])).await?;
    assert!(
        event_blocks::<CloserPenalized>(&stack, channel_id)
            .await?
            .is_empty()
    );
    let brandon = stack.keys[2].clone();
    eventually(30, "an escalation after settleAt", || async {
        let view = watcher
            .private_channel(&stack, channel_id, &brandon)
            .await?;
        Ok(view.decisions.iter().any(|d| {
            d.decision == "dispute_escalated"
                && d.detail
                    .as_deref()
                    .is_some_and(|detail| detail.contains("has passed"))
        }))
    })
    .await?;

    // Empty blocks bring the base fee down an eighth each, until the dispute's fee is enough.
    rpc(&stack, "evm_setAutomine", serde_json::json!([true])).await?;
    for _ in 0..60 {
        if !event_blocks::<CloserPenalized>(&stack, channel_id)
            .await?
            .is_empty()
        {
            break;
        }
        rpc(&stack, "evm_mine", serde_json::json!([])).await?;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    wait_for_event::<CloserPenalized>(&stack, channel_id, "the dispute").await?;
    let decisions = watcher.decisions(channel_id).await?;
    assert!(
        decisions.contains(&"dispute:dispute_escalated".to_owned()),
        "{decisions:?}"
    );
    watcher.stop().await
}

#[tokio::test]
async fn shutdown_finishes_the_batch_being_stored() -> eyre::Result<()> {
    let db = common::sqlite("shutdown_mid_batch").await?;
    let stack = Stack::deploy().await?;
    let channel_id = alice_and_brandon(&stack).await?;
    let (alice, brandon) = (stack.keys[1].clone(), stack.keys[2].clone());
    let mut config = fast_config();
    config.limits.timeout = std::time::Duration::from_secs(300);
    let watcher = RunningWatcher::start(&stack, db.clone(), stack.keys[7].clone(), config).await?;
    eventually(30, "the channel to be indexed", || async {
        Ok(watcher
            .channel(channel_id)
            .await
            .is_ok_and(|view| view.chain.is_some()))
    })
    .await?;
    // A batch long enough to be cut by a shutdown if it could be.
    let items: Vec<_> = (1..=2_000u64)
        .map(|n| {
            let paid = proof(&stack, channel_id, &alice, n, U256::from(n));
            receipt(&stack, &paid, &brandon, watcher.address, U256::ZERO)
        })
        .collect();
    let url = watcher.url.clone();
    // Made before the clock starts: on a loaded machine, encoding 2,000 items could take
    // longer than the wait below, and the shutdown would come before the request.
    let body = serde_json::to_string(&smartmesh_settlement::ReceiptBatch {
        chain_id: stack.chain_id,
        token_network: stack.network,
        items,
        sent: vec![],
        conditions: vec![],
    })?;
    let (sending, sent) = tokio::sync::oneshot::channel();
    let upload = tokio::spawn(async move {
        let request = alloy::transports::http::reqwest::Client::new()
            .post(format!("{url}/v1/receipts"))
            .header("content-type", "application/json")
            .body(body)
            .send();
        let _ = sending.send(());
        let response = request.await?;
        eyre::Ok((response.status(), response.text().await?))
    });
    // The request is on its way: give the loopback time to hand it over, then shut down
    // while the watcher stores it.
    sent.await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    watcher.stop().await?;
    let (status, body) = upload.await??;
    assert!(status.is_success(), "{status}: {body}");
    let answer: smartmesh_settlement::BatchOutcome = serde_json::from_str(&body)?;
    assert!(
        answer
            .items
            .iter()
            .all(|item| item.status == smartmesh_settlement::ItemStatus::Stored)
    );
    let held: Vec<u8> = sqlx::query("SELECT nonce FROM receipts")
        .fetch_one(db.pool())
        .await?
        .try_get(0)?;
    assert_eq!(
        U256::from_be_slice(&held),
        U256::from(2_000),
        "the whole batch is stored"
    );
    Ok(())
}

#[tokio::test]
async fn a_watcher_without_eth_says_so_and_disputes_once_funded() -> eyre::Result<()> {
    let db = common::sqlite("dispute_unfunded").await?;
    let stack = Stack::deploy().await?;
    let channel_id = alice_and_brandon(&stack).await?;
    let alice = stack.keys[1].clone();
    let broke = alloy::signers::local::PrivateKeySigner::from_bytes(&[0x5a; 32].into())?;
    let watcher = RunningWatcher::start(&stack, db, broke.clone(), fast_config()).await?;
    brandon_syncs(&stack, channel_id, &watcher).await?;

    close(&stack, channel_id, &alice, ether("10")).await?;
    let brandon = stack.keys[2].clone();
    eventually(30, "the watcher to say it cannot send", || async {
        let view = watcher
            .private_channel(&stack, channel_id, &brandon)
            .await?;
        Ok(view.decisions.iter().any(|d| {
            d.decision == "dispute_not_sent"
                && d.detail
                    .as_deref()
                    .is_some_and(|detail| detail.contains("fund"))
        }))
    })
    .await?;
    assert!(
        event_blocks::<CloserPenalized>(&stack, channel_id)
            .await?
            .is_empty()
    );

    rpc(
        &stack,
        "anvil_setBalance",
        serde_json::json!([broke.address(), "0xde0b6b3a7640000"]),
    )
    .await?;
    wait_for_event::<CloserPenalized>(&stack, channel_id, "the dispute once funded").await?;
    assert_eq!(nonce(&stack, broke.address()).await?, 1);
    watcher.stop().await
}

on_both_backends!(a_settle_past_a_held_proof_is_a_missed_dispute => missed_sqlite, pg_missed);

/// The watcher is down from Brandon's sync until after `settleAt`, and Alice, who declared 10
/// where she signed 30, settles first: Brandon gets 60 instead of 149. Back up, the watcher
/// says so: a missed dispute with the amount lost, on the channel and in the metrics.
async fn a_settle_past_a_held_proof_is_a_missed_dispute(db: Database) -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let channel_id = alice_and_brandon(&stack).await?;
    let (alice, brandon) = (stack.keys[1].clone(), stack.keys[2].clone());
    let key = stack.keys[7].clone();
    let watcher = RunningWatcher::start(&stack, db.clone(), key.clone(), fast_config()).await?;
    brandon_syncs(&stack, channel_id, &watcher).await?;
    watcher.stop().await?;

    close(&stack, channel_id, &alice, ether("10")).await?;
    pass_hold_period(&stack, 3_601).await?;
    let settled = stack
        .network(&alice)
        .settle(channel_id)
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(settled.status());
    assert_eq!(smt(&stack, brandon.address()).await?, ether("60"));

    let watcher = RunningWatcher::start(&stack, db, key, fast_config()).await?;
    eventually(30, "the missed dispute to be recorded", || async {
        Ok(watcher.channel(channel_id).await?.missed_dispute.is_some())
    })
    .await?;
    let view = watcher.channel(channel_id).await?;
    let missed = view.missed_dispute.expect("recorded");
    assert_eq!((missed.claimed, missed.proven), (ether("10"), ether("30")));
    assert_eq!(
        missed.lost,
        ether("89"),
        "149 owed after the reward, 60 paid"
    );
    assert!(
        view.decisions
            .iter()
            .any(|d| d.decision == "missed_dispute"),
        "{:?}",
        view.decisions
    );
    let metrics = alloy::transports::http::reqwest::get(format!("{}/metrics", watcher.url))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("smartmesh_missed_disputes_total 1"),
        "{metrics}"
    );
    watcher.stop().await
}

/// Makes `count` closed channels of strangers (no event behind them, no proof held) with a
/// `kind` job each, due now: load for the engine.
async fn waiting_jobs(db: &Database, kind: &str, count: u32, settle_at: u64) -> eyre::Result<()> {
    let mut tx = db.pool().begin().await?;
    for n in 0..count {
        let id = alloy::primitives::keccak256(format!("{kind} load {n}"));
        let (p1, p2) = (
            alloy::primitives::Address::from_word(alloy::primitives::keccak256(format!("p1 {n}"))),
            alloy::primitives::Address::from_word(alloy::primitives::keccak256(format!("p2 {n}"))),
        );
        sqlx::query(
            "INSERT INTO channels (channel_id, participant1, participant2, epoch, settle_timeout, state, \
             deposit1, deposit2, withdrawn1, withdrawn2, closer, claim_transferred, closer_received, settle_at, \
             closed_block, penalized, updated_block) VALUES ($1, $2, $3, 1, 3600, 'closed', '1', '1', '0', '0', \
             $2, '0', '0', $4, 1, 0, 1)",
        )
        .bind(id.to_vec())
        .bind(p1.to_string())
        .bind(p2.to_string())
        .bind(settle_at as i64)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO watcher_jobs (channel_id, kind, state, due_at) VALUES ($1, $2, 'active', 0)",
        )
        .bind(id.to_vec())
        .bind(kind)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn jobs_worked(watcher: &RunningWatcher) -> eyre::Result<u64> {
    let text = alloy::transports::http::reqwest::get(format!("{}/metrics", watcher.url))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix("smartmesh_jobs_worked_total ")?
                .parse()
                .ok()
        })
        .ok_or_else(|| eyre::eyre!("no jobs_worked_total in {text}"))
}

/// A thousand settles waiting out their hold period are looked at once, not every recheck;
/// two thousand disputes that are rechecked all the time do not keep a new stale close from
/// being planned and disputed, nor the watcher from stopping.
#[tokio::test]
async fn thousands_of_waiting_jobs_neither_starve_a_new_close_nor_shutdown() -> eyre::Result<()> {
    let db = common::sqlite("dispute_load").await?;
    let stack = Stack::deploy().await?;
    let channel_id = alice_and_brandon(&stack).await?;
    let alice = stack.keys[1].clone();
    let far = block_timestamp(&stack, 0).await? + 1_000_000;
    waiting_jobs(&db, "settle", 1_000, far).await?;
    let watcher =
        RunningWatcher::start(&stack, db.clone(), stack.keys[7].clone(), fast_config()).await?;
    eventually(60, "every waiting settle to be looked at once", || async {
        Ok(jobs_worked(&watcher).await? >= 1_000)
    })
    .await?;
    let looked = jobs_worked(&watcher).await?;
    // Five rechecks' worth of time: holding settles wait for the chain's clock instead.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let again = jobs_worked(&watcher).await? - looked;
    assert!(
        again < 100,
        "{again} looks at settles that cannot have changed"
    );

    waiting_jobs(&db, "dispute", 2_000, far).await?;
    brandon_syncs(&stack, channel_id, &watcher).await?;
    close(&stack, channel_id, &alice, ether("10")).await?;
    wait_for_event::<CloserPenalized>(&stack, channel_id, "the dispute among the load").await?;
    tokio::time::timeout(std::time::Duration::from_secs(10), watcher.stop())
        .await
        .map_err(|_| eyre::eyre!("stop() did not return within 10 s"))??;
    Ok(())
}
