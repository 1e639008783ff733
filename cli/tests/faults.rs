//! Faults an operator meets, reproduced as they happen, on `smartmesh settlement` as a real
//! process against anvil: a full disk under its SQLite file, kills at each moment of a
//! dispute, the RPC gone, reorgs around a dispute.

mod common;

use std::{path::PathBuf, process::Command, time::Duration};

use alloy::{
    primitives::{B256, Bytes},
    providers::Provider,
    signers::local::PrivateKeySigner,
};
use common::{
    Options, Stack, WatcherProcess,
    proxy::Proxy,
    scratch,
    watcher::{block_timestamp, ether, event_blocks, eventually, nonce, proof, receipt, rpc},
    write_config,
};
use smartmesh_protocol::{
    BalanceProof,
    TokenNetwork::{ChannelClosed, CloserPenalized},
};
use smartmesh_settlement::ReceiptItem;

/// A tmpfs of `size` mounted for one test (the machine's root may mount one); unmounted on
/// drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(name: &str, size: &str) -> eyre::Result<Self> {
        let path = scratch(name)?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()?;
        eyre::ensure!(
            status.success(),
            "cannot mount a tmpfs at {} (the full-disk test needs root): {status}",
            path.display()
        );
        Ok(Self { path })
    }

    /// Writes a file until the file system is full.
    fn fill(&self) -> eyre::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path.join("filler"))?;
        let chunk = vec![0xa5u8; 64 * 1024];
        loop {
            if let Err(error) = file.write_all(&chunk).and_then(|()| file.sync_all()) {
                eyre::ensure!(error.raw_os_error() == Some(28), "not ENOSPC: {error}");
                return Ok(());
            }
        }
    }

    fn free(&self) -> eyre::Result<()> {
        Ok(std::fs::remove_file(self.path.join("filler"))?)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Uploads `items` to `watcher`; the status and the answer.
async fn post(
    watcher: &WatcherProcess,
    stack: &Stack,
    items: Vec<ReceiptItem>,
) -> eyre::Result<(u16, serde_json::Value)> {
    watcher
        .post(
            "/v1/receipts",
            &serde_json::json!({
                "chainId": stack.chain_id,
                "tokenNetwork": stack.network,
                "items": items,
            }),
        )
        .await
}

/// Alice's channel to Brandon, 100 and 50 SMT.
async fn channel(stack: &Stack) -> eyre::Result<(B256, PrivateKeySigner, PrivateKeySigner)> {
    let (alice, brandon) = (stack.keys[1].clone(), stack.keys[2].clone());
    let channel_id = stack.open_channel(&alice, &brandon).await?;
    stack
        .fund_and_deposit(channel_id, &alice, ether("100"))
        .await?;
    stack
        .fund_and_deposit(channel_id, &brandon, ether("50"))
        .await?;
    Ok((channel_id, alice, brandon))
}

#[tokio::test]
async fn after_a_full_disk_every_acknowledged_receipt_is_durable() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let (channel_id, alice, brandon) = channel(&stack).await?;
    let watcher_key = stack.keys[7].clone();
    let dir = scratch("full-disk")?;
    write_config(&stack, &dir, &watcher_key)?;
    let disk = Tmpfs::mount("full-disk-fs", "8m")?;
    let database = format!("sqlite://{}", disk.path.join("watcher.sqlite").display());
    let watcher = WatcherProcess::start(&stack, &dir, &database)?;
    eventually(30, "the channel to be indexed", || async {
        Ok(watcher.get(&format!("/v1/channels/{channel_id}")).await?["chain"].is_object())
    })
    .await?;
    let item = |nonce: u64| {
        let paid = proof(&stack, channel_id, &alice, nonce, ether(&nonce.to_string()));
        receipt(&stack, &paid, &brandon, watcher_key.address(), ether("1"))
    };

    disk.fill()?;
    let (status, body) = post(&watcher, &stack, vec![item(1)]).await?;
    assert_eq!(status, 503, "a full disk cannot store: {body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("database"),
        "{body}"
    );
    let health =
        alloy::transports::http::reqwest::get(format!("{}/v1/health", watcher.url)).await?;
    assert_eq!(
        health.status().as_u16(),
        503,
        "health says the database refuses writes"
    );
    let health: serde_json::Value = serde_json::from_str(&health.text().await?)?;
    assert_eq!(health["storageWritable"], false, "{health}");
    disk.free()?;

    // Space again: whatever the watcher acknowledges now must survive a kill.
    let mut acknowledged = 0;
    for nonce in 2..=6 {
        let (status, body) = post(&watcher, &stack, vec![item(nonce)]).await?;
        if status == 200 && body["items"][0]["status"] == "stored" {
            assert!(body["items"][0]["ack"].is_string(), "{body}");
            acknowledged = nonce;
        }
    }
    assert!(
        acknowledged >= 2,
        "the watcher stores again once there is space"
    );
    watcher.kill()?;
    let watcher = WatcherProcess::start(&stack, &dir, &database)?;
    let (status, body) = post(&watcher, &stack, vec![item(acknowledged)]).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["items"][0]["status"], "known",
        "the last acknowledged receipt (nonce {acknowledged}) survived the kill: {body}"
    );
    drop(watcher);
    drop(disk);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// A watcher guarding Alice and Brandon's channel, Brandon's receipt for 30 SMT held; what
/// each fault test starts from.
struct Scene {
    stack: Stack,
    channel_id: B256,
    alice: PrivateKeySigner,
    watcher_key: PrivateKeySigner,
    dir: PathBuf,
    database: String,
}

impl Scene {
    async fn new(name: &str) -> eyre::Result<Self> {
        let stack = Stack::deploy().await?;
        let (channel_id, alice, _) = channel(&stack).await?;
        let watcher_key = stack.keys[7].clone();
        let dir = scratch(name)?;
        write_config(&stack, &dir, &watcher_key)?;
        let database = format!("sqlite://{}", dir.join("watcher.sqlite").display());
        Ok(Self {
            stack,
            channel_id,
            alice,
            watcher_key,
            dir,
            database,
        })
    }

    fn start(&self, options: Options) -> eyre::Result<WatcherProcess> {
        WatcherProcess::start_with(&self.stack, &self.dir, &self.database, options)
    }

    /// Waits until `watcher` indexed the channel, then uploads Brandon's receipt.
    async fn sync(&self, watcher: &WatcherProcess) -> eyre::Result<()> {
        let path = format!("/v1/channels/{}", self.channel_id);
        eventually(30, "the channel to be indexed", || async {
            Ok(watcher.get(&path).await?["chain"].is_object())
        })
        .await?;
        let brandon = self.stack.keys[2].clone();
        let paid = proof(&self.stack, self.channel_id, &self.alice, 3, ether("30"));
        let item = receipt(
            &self.stack,
            &paid,
            &brandon,
            self.watcher_key.address(),
            ether("1"),
        );
        let (status, body) = post(watcher, &self.stack, vec![item]).await?;
        eyre::ensure!(
            status == 200 && body["items"][0]["status"] == "stored",
            "{body}"
        );
        Ok(())
    }

    /// Alice closes declaring 10 where she signed 30; the transaction is sent, and mined
    /// when the chain automines. Its `settleAt`.
    async fn close(&self) -> eyre::Result<u64> {
        let pending = self
            .stack
            .network(&self.alice)
            .close(
                self.channel_id,
                BalanceProof::default().into(),
                Bytes::new(),
                Bytes::new(),
                ether("10"),
                Bytes::new(),
            )
            .send()
            .await?;
        let hash = *pending.tx_hash();
        let provider = self.stack.provider(&self.stack.keys[0]);
        for _ in 0..200 {
            if let Some(receipt) = provider.get_transaction_receipt(hash).await? {
                return receipt
                    .inner
                    .logs()
                    .iter()
                    .find_map(|log| log.log_decode::<ChannelClosed>().ok())
                    .map(|log| log.inner.settleAt.saturating_to())
                    .ok_or_else(|| eyre::eyre!("no ChannelClosed"));
            }
            rpc(&self.stack, "evm_mine", serde_json::json!([])).await?;
        }
        eyre::bail!("the close was not mined")
    }

    /// Exactly one dispute on the final chain, mined before `settle_at`, and the watcher's
    /// key sent exactly one transaction.
    async fn disputed_once(&self, settle_at: u64) -> eyre::Result<()> {
        eventually(60, "the dispute", || async {
            Ok(
                !event_blocks::<CloserPenalized>(&self.stack, self.channel_id)
                    .await?
                    .is_empty(),
            )
        })
        .await?;
        let penalties = event_blocks::<CloserPenalized>(&self.stack, self.channel_id).await?;
        eyre::ensure!(penalties.len() == 1, "{} disputes", penalties.len());
        let mined_at = block_timestamp(&self.stack, penalties[0]).await?;
        eyre::ensure!(
            mined_at < settle_at,
            "mined at {mined_at}, after settleAt {settle_at}"
        );
        let sent = nonce(&self.stack, self.watcher_key.address()).await?;
        eyre::ensure!(sent == 1, "the watcher's key sent {sent} transactions");
        Ok(())
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn crash_at(moment: &str) -> Options {
    Options {
        env: vec![("SMARTMESH_CRASH_AT".into(), moment.into())],
        ..Options::default()
    }
}

#[tokio::test]
async fn killed_before_indexing_the_close_it_disputes_once_after_restart() -> eyre::Result<()> {
    let scene = Scene::new("kill-before-index").await?;
    let watcher = scene.start(Options::default())?;
    scene.sync(&watcher).await?;
    watcher.kill()?;
    let settle_at = scene.close().await?;
    let _watcher = scene.start(Options::default())?;
    scene.disputed_once(settle_at).await
}

#[tokio::test]
async fn killed_once_its_dispute_is_queued_it_disputes_once_after_restart() -> eyre::Result<()> {
    let scene = Scene::new("kill-queued").await?;
    let watcher = scene.start(crash_at("engine.queued"))?;
    scene.sync(&watcher).await?;
    let settle_at = scene.close().await?;
    let died = watcher.died(30)?;
    assert!(!died.success(), "it died at the crash point: {died:?}");
    assert_eq!(
        nonce(&scene.stack, scene.watcher_key.address()).await?,
        0,
        "queued, never sent"
    );
    let _watcher = scene.start(Options::default())?;
    scene.disputed_once(settle_at).await
}

#[tokio::test]
async fn killed_between_signing_and_broadcast_it_disputes_once_after_restart() -> eyre::Result<()> {
    let scene = Scene::new("kill-signed").await?;
    let watcher = scene.start(crash_at("sender.signed"))?;
    scene.sync(&watcher).await?;
    let settle_at = scene.close().await?;
    let died = watcher.died(30)?;
    assert!(!died.success(), "{died:?}");
    assert_eq!(
        nonce(&scene.stack, scene.watcher_key.address()).await?,
        0,
        "signed, never sent"
    );
    let _watcher = scene.start(Options::default())?;
    scene.disputed_once(settle_at).await
}

#[tokio::test]
async fn killed_after_broadcast_before_mining_it_disputes_once_after_restart() -> eyre::Result<()> {
    let scene = Scene::new("kill-broadcast").await?;
    let watcher = scene.start(crash_at("sender.broadcast"))?;
    scene.sync(&watcher).await?;
    rpc(&scene.stack, "evm_setAutomine", serde_json::json!([false])).await?;
    let settle_at = scene.close().await?;
    let died = watcher.died(30)?;
    assert!(!died.success(), "{died:?}");
    let pool = rpc(&scene.stack, "txpool_status", serde_json::json!([])).await?;
    assert_eq!(pool["pending"], "0x1", "broadcast, not mined: {pool}");
    let _watcher = scene.start(Options::default())?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rpc(&scene.stack, "evm_setAutomine", serde_json::json!([true])).await?;
    rpc(&scene.stack, "evm_mine", serde_json::json!([])).await?;
    scene.disputed_once(settle_at).await
}

/// The node unreachable for 10 s: health says so (503 naming the chain), the errors are
/// counted and logged with backoff rather than per attempt, and once it is back the close
/// Alice made meanwhile is disputed.
// The proxy runs on the test's runtime while the test thread waits for the watcher to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_rpc_gone_for_10_s_health_says_so_and_the_dispute_still_lands() -> eyre::Result<()>
{
    let scene = Scene::new("rpc-gone").await?;
    let proxy = Proxy::start(scene.stack.anvil.endpoint_url().socket_addrs(|| None)?[0]).await?;
    let log = scene.dir.join("watcher.log");
    let watcher = scene.start(Options {
        rpc_url: Some(proxy.url.clone()),
        stderr: Some(log.clone()),
        ..Options::default()
    })?;
    scene.sync(&watcher).await?;
    let (status, health) = get_status(&watcher, "/v1/health").await?;
    assert_eq!(status, 200, "{health}");

    proxy.cut();
    let settle_at = scene.close().await?;
    eventually(10, "health to say the node is gone", || async {
        let (status, health) = get_status(&watcher, "/v1/health").await?;
        Ok(status == 503 && health["problems"].to_string().contains("chain"))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let metrics = watcher_metrics(&watcher).await?;
    let errors = counter(&metrics, "smartmesh_rpc_errors_total");
    assert!(errors > 0, "{metrics}");
    proxy.restore();

    scene.disputed_once(settle_at).await?;
    eventually(30, "health to recover", || async {
        Ok(get_status(&watcher, "/v1/health").await?.0 == 200)
    })
    .await?;
    let warnings = std::fs::read_to_string(&log)?
        .lines()
        .filter(|line| line.contains("WARN"))
        .count();
    assert!(
        warnings <= 40,
        "{warnings} warnings over a 10 s outage, from {errors} errors"
    );
    Ok(())
}

async fn get_status(
    watcher: &WatcherProcess,
    path: &str,
) -> eyre::Result<(u16, serde_json::Value)> {
    let response = alloy::transports::http::reqwest::get(format!("{}{path}", watcher.url)).await?;
    let status = response.status().as_u16();
    Ok((status, serde_json::from_str(&response.text().await?)?))
}

async fn watcher_metrics(watcher: &WatcherProcess) -> eyre::Result<String> {
    Ok(
        alloy::transports::http::reqwest::get(format!("{}/metrics", watcher.url))
            .await?
            .text()
            .await?,
    )
}

fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} "))?.parse().ok())
        .unwrap_or_default()
}

/// A reorg of `depth` blocks takes the watcher's confirmed dispute away and the node forgets
/// it: the watcher (two confirmations, as by default) sends it again and it lands once.
async fn dispute_survives_a_reorg(depth: u64) -> eyre::Result<()> {
    let scene = Scene::new(&format!("reorg-{depth}")).await?;
    let watcher = scene.start(Options {
        args: vec!["--confirmations".into(), "2".into()],
        ..Options::default()
    })?;
    scene.sync(&watcher).await?;
    rpc(&scene.stack, "evm_setAutomine", serde_json::json!([false])).await?;
    let settle_at = scene.close().await?;
    // Two more blocks and the close is confirmed enough to index; the dispute waits in the pool.
    for _ in 0..2 {
        rpc(&scene.stack, "evm_mine", serde_json::json!([])).await?;
    }
    eventually(30, "the dispute's broadcast", || async {
        let pool = rpc(&scene.stack, "txpool_status", serde_json::json!([])).await?;
        Ok(pool["pending"] == "0x1")
    })
    .await?;
    let snapshot = rpc(&scene.stack, "evm_snapshot", serde_json::json!([])).await?;
    for _ in 0..depth {
        rpc(&scene.stack, "evm_mine", serde_json::json!([])).await?;
    }
    assert_eq!(
        event_blocks::<CloserPenalized>(&scene.stack, scene.channel_id)
            .await?
            .len(),
        1
    );
    // Give the watcher time to take the dispute as mined (and, at depth 2 and 3, confirmed).
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    rpc(&scene.stack, "evm_revert", serde_json::json!([snapshot])).await?;
    rpc(
        &scene.stack,
        "anvil_dropAllTransactions",
        serde_json::json!([]),
    )
    .await?;
    assert!(
        event_blocks::<CloserPenalized>(&scene.stack, scene.channel_id)
            .await?
            .is_empty()
    );
    rpc(&scene.stack, "evm_setAutomine", serde_json::json!([true])).await?;
    for _ in 0..depth + 1 {
        rpc(&scene.stack, "evm_mine", serde_json::json!([])).await?;
    }
    let provider = scene.stack.provider(&scene.stack.keys[0]);
    for _ in 0..300 {
        if !event_blocks::<CloserPenalized>(&scene.stack, scene.channel_id)
            .await?
            .is_empty()
        {
            break;
        }
        rpc(&scene.stack, "evm_mine", serde_json::json!([])).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = provider.get_block_number().await?;
    scene.disputed_once(settle_at).await?;
    drop(watcher);
    Ok(())
}

#[tokio::test]
async fn a_dispute_reorged_out_one_block_deep_lands_once() -> eyre::Result<()> {
    dispute_survives_a_reorg(1).await
}

#[tokio::test]
async fn a_dispute_reorged_out_two_blocks_deep_lands_once() -> eyre::Result<()> {
    dispute_survives_a_reorg(2).await
}

#[tokio::test]
async fn a_dispute_reorged_out_three_blocks_deep_lands_once() -> eyre::Result<()> {
    dispute_survives_a_reorg(3).await
}
