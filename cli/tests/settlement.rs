//! `smartmesh settlement` as real processes on anvil with the real contracts: a watcher killed
//! (SIGKILL) between seeing a close and its dispute being mined still gets the dispute mined
//! before `settleAt`, exactly once; two replicas on one Postgres dispute 200 stale closes
//! exactly once each, though the leader is killed halfway; SIGTERM stops a watcher cleanly.

mod common;

use std::{collections::HashSet, time::Duration};

use alloy::{
    primitives::{B256, Bytes, U256},
    providers::Provider,
    rpc::types::Filter,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use common::{
    Stack, WatcherProcess, scratch,
    watcher::{
        block_timestamp, close, ether, eventually, nonce, proof, receipt, rpc, upload,
        wait_for_event,
    },
    write_config,
};
use smartmesh_protocol::{
    BalanceProof,
    TokenNetwork::{ChannelOpened, CloserPenalized},
};

async fn pool_size(stack: &Stack) -> eyre::Result<u64> {
    let status = rpc(stack, "txpool_status", serde_json::json!([])).await?;
    let pending = status["pending"].as_str().unwrap_or("0x0");
    Ok(u64::from_str_radix(pending.trim_start_matches("0x"), 16)?)
}

#[tokio::test]
async fn a_watcher_killed_before_its_dispute_is_mined_disputes_once_after_restart()
-> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let (alice, brandon) = (stack.keys[1].clone(), stack.keys[2].clone());
    let watcher_key = stack.keys[7].clone();
    let channel_id = stack.open_channel(&alice, &brandon).await?;
    stack
        .fund_and_deposit(channel_id, &alice, ether("100"))
        .await?;
    stack
        .fund_and_deposit(channel_id, &brandon, ether("50"))
        .await?;
    let dir = scratch("kill")?;
    write_config(&stack, &dir, &watcher_key)?;
    let database = format!("sqlite://{}", dir.join("watcher.sqlite").display());

    let first = WatcherProcess::start(&stack, &dir, &database)?;
    eventually(30, "the channel to be indexed", || async {
        Ok(first.get(&format!("/v1/channels/{channel_id}")).await?["chain"].is_object())
    })
    .await?;
    let paid = proof(&stack, channel_id, &alice, 3, ether("30"));
    let item = receipt(&stack, &paid, &brandon, watcher_key.address(), ether("1"));
    let answer = upload(&first.url, &stack, vec![item]).await?;
    assert_eq!(answer["items"][0]["status"], "stored", "{answer}");

    // Blocks are mined by hand from here: the dispute waits in the pool.
    rpc(&stack, "evm_setAutomine", serde_json::json!([false])).await?;
    let pending = stack
        .network(&alice)
        .close(
            channel_id,
            BalanceProof::default().into(),
            Bytes::new(),
            Bytes::new(),
            ether("10"),
            Bytes::new(),
        )
        .send()
        .await?;
    rpc(&stack, "evm_mine", serde_json::json!([])).await?;
    let closed = pending.get_receipt().await?;
    assert!(closed.status());
    let settle_at: u64 = closed
        .inner
        .logs()
        .iter()
        .find_map(|log| {
            log.log_decode::<smartmesh_protocol::TokenNetwork::ChannelClosed>()
                .ok()
        })
        .map(|log| log.inner.settleAt.saturating_to())
        .unwrap();
    eventually(30, "the dispute's broadcast", || async {
        Ok(pool_size(&stack).await? == 1)
    })
    .await?;
    first.kill()?;

    // Restarted with its dispute still in the pool: it follows that one, sends no other.
    let second = WatcherProcess::start(&stack, &dir, &database)?;
    eventually(30, "the restarted watcher to see its dispute", || async {
        let view = second.get(&format!("/v1/channels/{channel_id}")).await?;
        Ok(view["decisions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["decision"] == "dispute_in_flight")))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool_size(&stack).await?, 1, "no second transaction");
    second.kill()?;

    // Killed again, and this time the node lost the transaction too.
    rpc(&stack, "anvil_dropAllTransactions", serde_json::json!([])).await?;
    assert_eq!(pool_size(&stack).await?, 0);
    let third = WatcherProcess::start(&stack, &dir, &database)?;
    eventually(30, "the dispute's rebroadcast", || async {
        Ok(pool_size(&stack).await? == 1)
    })
    .await?;
    rpc(&stack, "evm_setAutomine", serde_json::json!([true])).await?;
    rpc(&stack, "evm_mine", serde_json::json!([])).await?;
    let penalties = wait_for_event::<CloserPenalized>(&stack, channel_id, "the dispute").await?;
    assert_eq!(penalties.len(), 1);
    let mined_at = block_timestamp(&stack, penalties[0]).await?;
    assert!(mined_at < settle_at, "mined before settleAt");
    assert_eq!(
        nonce(&stack, watcher_key.address()).await?,
        1,
        "exactly one transaction"
    );

    let status = third.terminate()?;
    assert!(status.success(), "SIGTERM stops it cleanly: {status:?}");
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[tokio::test]
async fn a_watcher_refuses_a_missing_key_and_a_missing_manifest() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let dir = scratch("refusals")?;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_smartmesh"))
            .args(["settlement", "--rpc-url", &stack.anvil.endpoint()])
            .args(args)
            .env_remove("SMARTMESH_WATCHER_KEY")
            .output()
    };
    let output = run(&["--database-url", "sqlite::memory:"])?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--key-file"), "{stderr}");

    std::fs::write(dir.join("watcher.key"), "not a key")?;
    let key = dir.join("watcher.key");
    let output = run(&["--key-file", key.to_str().unwrap()])?;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("hex private key"));

    std::fs::write(&key, alloy::hex::encode(stack.keys[7].to_bytes()))?;
    let output = run(&[
        "--key-file",
        key.to_str().unwrap(),
        "--deployments-dir",
        dir.to_str().unwrap(),
    ])?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no deployment manifest") && stderr.contains("deploy first"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// 20 payers with 10 payees each: 200 channels of 10 SMT.
struct Crowd {
    payers: Vec<PrivateKeySigner>,
    payees: Vec<PrivateKeySigner>,
    /// (payer index, payee index, channel)
    channels: Vec<(usize, usize, B256)>,
}

async fn crowd(stack: &Stack) -> eyre::Result<Crowd> {
    let key = |byte: u8| PrivateKeySigner::from_bytes(&B256::repeat_byte(byte));
    let payers: Vec<_> = (0..20).map(|i| key(0x10 + i)).collect::<Result<_, _>>()?;
    let payees: Vec<_> = (0..10).map(|i| key(0x40 + i)).collect::<Result<_, _>>()?;
    for account in payers.iter().chain(&payees) {
        rpc(
            stack,
            "anvil_setBalance",
            serde_json::json!([account.address(), "0x3635C9ADC5DEA00000"]),
        )
        .await?;
    }
    let mut channels = Vec::new();
    for (i, payer) in payers.iter().enumerate() {
        stack.fund(payer.address(), ether("100")).await?;
        stack
            .token(payer)
            .approve(stack.network, U256::MAX)
            .send()
            .await?
            .get_receipt()
            .await?;
        // One provider per payer, so its nonces follow on without waiting for each receipt.
        let network = stack.network(payer);
        let mut pending = Vec::new();
        for payee in &payees {
            pending.push(
                network
                    .openWithDeposit(payee.address(), U256::from(3_600), ether("10"))
                    .send()
                    .await?,
            );
        }
        for (j, tx) in pending.into_iter().enumerate() {
            let receipt = tx.get_receipt().await?;
            let opened = receipt
                .inner
                .logs()
                .iter()
                .find_map(|log| log.log_decode::<ChannelOpened>().ok())
                .ok_or_else(|| eyre::eyre!("no ChannelOpened"))?;
            channels.push((i, j, opened.inner.channelId));
        }
    }
    Ok(Crowd {
        payers,
        payees,
        channels,
    })
}

#[tokio::test]
async fn pg_two_replicas_dispute_200_stale_closes_exactly_once() -> eyre::Result<()> {
    let Some(database) = common::storage::postgres_url("cli_two_replicas").await? else {
        return Ok(());
    };
    let stack = Stack::deploy().await?;
    let crowd = crowd(&stack).await?;
    let watcher_key = stack.keys[7].clone();
    let dir = scratch("replicas")?;
    write_config(&stack, &dir, &watcher_key)?;
    let first = WatcherProcess::start(&stack, &dir, &database)?;
    eventually(30, "the first replica to lead", || async {
        Ok(first.get("/v1/health").await?["leader"] == true)
    })
    .await?;
    let second = WatcherProcess::start(&stack, &dir, &database)?;
    assert_eq!(
        second.get("/v1/health").await?["leader"],
        false,
        "one leader at a time"
    );
    let head = stack.provider(&stack.keys[0]).get_block_number().await?;
    eventually(60, "the channels to be indexed", || async {
        Ok(second.get("/v1/health").await?["indexedBlock"].as_u64() >= Some(head))
    })
    .await?;

    // Every payee uploads its receipts, half to each replica.
    for (j, payee) in crowd.payees.iter().enumerate() {
        let items = crowd
            .channels
            .iter()
            .filter(|(_, payee_index, _)| *payee_index == j)
            .map(|(i, _, channel)| {
                let paid = proof(&stack, *channel, &crowd.payers[*i], 1, ether("5"));
                receipt(&stack, &paid, payee, watcher_key.address(), ether("0.1"))
            })
            .collect();
        let url = if j % 2 == 0 { &first.url } else { &second.url };
        let answer = upload(url, &stack, items).await?;
        let stored = answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| item["status"] == "stored")
            .count();
        assert_eq!(stored, 20, "{answer}");
    }

    // Every payer closes every channel declaring it paid nothing; the leader dies halfway.
    let mut first = Some(first);
    for (round, payer) in crowd.payers.iter().enumerate() {
        if round == crowd.payers.len() / 2 {
            first.take().expect("still running").kill()?;
        }
        for (_, _, channel) in crowd.channels.iter().filter(|(i, _, _)| *i == round) {
            close(&stack, *channel, payer, U256::ZERO).await?;
        }
    }
    eventually(30, "the second replica to lead", || async {
        Ok(second.get("/v1/health").await?["leader"] == true)
    })
    .await?;
    let penalized = || async {
        let filter = Filter::new()
            .address(stack.network)
            .event_signature(CloserPenalized::SIGNATURE_HASH)
            .from_block(0);
        let logs = stack.provider(&stack.keys[0]).get_logs(&filter).await?;
        eyre::Ok(
            logs.iter()
                .filter_map(|log| log.topics().get(1).copied())
                .collect::<Vec<B256>>(),
        )
    };
    eventually(120, "200 disputes", || async {
        Ok(penalized().await?.len() >= 200)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let disputed = penalized().await?;
    let unique: HashSet<B256> = disputed.iter().copied().collect();
    let all: HashSet<B256> = crowd.channels.iter().map(|(_, _, c)| *c).collect();
    assert_eq!(disputed.len(), 200, "no channel disputed twice");
    assert_eq!(unique, all, "every channel disputed");
    assert_eq!(
        nonce(&stack, watcher_key.address()).await?,
        200,
        "200 transactions: no dispute sent twice, none wasted"
    );
    drop(second);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
