//! Faults an operator meets, reproduced as they happen, on `smartmesh settlement` as a real
//! process against anvil: a full disk under its SQLite file, kills at each moment of a
//! dispute, the RPC gone, reorgs around a dispute.

mod common;

use std::{path::PathBuf, process::Command};

use alloy::{primitives::B256, signers::local::PrivateKeySigner};
use common::{
    Stack, WatcherProcess, scratch,
    watcher::{ether, eventually, proof, receipt},
    write_config,
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
    stack.fund_and_deposit(channel_id, &alice, ether("100")).await?;
    stack.fund_and_deposit(channel_id, &brandon, ether("50")).await?;
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
    assert!(status >= 500, "a full disk cannot store: {status} {body}");
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
    assert!(acknowledged >= 2, "the watcher stores again once there is space");
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
