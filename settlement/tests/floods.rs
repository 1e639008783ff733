//! One client trying to keep the watcher busy, over real HTTP on loopback: a 10,000-item batch
//! of junk signatures is refused after its first items, work is charged by items (a third
//! full batch in a row waits, with `Retry-After`), another client is not slowed, and a
//! connection that never finishes its headers is closed.

mod common;
#[allow(dead_code)]
#[path = "../../http/tests/common/slow.rs"]
mod slow;

use std::{net::IpAddr, time::Duration};

use alloy::{primitives::U256, transports::http::reqwest};
use common::{
    Stack, alice_and_brandon, sqlite,
    watcher::{RunningWatcher, ether, eventually, fast_config, post_batch, proof, receipt},
};
use smartmesh_protocol::SignedProof;
use smartmesh_settlement::{ApiLimits, JUNK_PROBE, ReceiptItem, WatcherConfig};

fn client_from(ip: [u8; 4]) -> eyre::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()?)
}

async fn counter(url: &str, name: &str) -> eyre::Result<u64> {
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix(&format!("smartmesh_{name} "))?
                .parse()
                .ok()
        })
        .ok_or_else(|| eyre::eyre!("no {name} in {text}"))
}

#[tokio::test]
async fn a_flood_costs_its_sender_not_the_watcher() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let channel_id = alice_and_brandon(&stack).await?;
    let (alice, brandon) = (stack.keys[1].clone(), stack.keys[2].clone());
    let config = WatcherConfig {
        limits: ApiLimits {
            work_per_second: 1_000,
            work_burst: 20_000,
            header_timeout: Duration::from_secs(1),
            ..fast_config().limits
        },
        ..fast_config()
    };
    let db = sqlite("floods").await?;
    let watcher = RunningWatcher::start(&stack, db, stack.keys[7].clone(), config).await?;
    eventually(30, "the channel to be indexed", || async {
        Ok(watcher
            .channel(channel_id)
            .await
            .is_ok_and(|view| view.chain.is_some()))
    })
    .await?;

    // Alice's real proof with its amount changed: each signature recovers some stranger.
    let genuine = receipt(
        &stack,
        &proof(&stack, channel_id, &alice, 1, ether("1")),
        &brandon,
        watcher.address,
        ether("1"),
    );
    let junk: Vec<ReceiptItem> = (0..10_000u64)
        .map(|n| {
            let mut signed = SignedProof::from_text(&genuine.proof).unwrap();
            signed.proof.transferredAmount = U256::from(n + 2);
            ReceiptItem {
                proof: signed.to_text().unwrap(),
                ..genuine.clone()
            }
        })
        .collect();
    let flooder = client_from([127, 0, 0, 1])?;
    let (status, _, body) = post_batch(&flooder, &watcher.url, &stack, junk.clone()).await?;
    assert_eq!(status, 422, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("items:") && detail.contains("not checked"),
        "{detail}"
    );
    assert_eq!(
        counter(&watcher.url, "receipt_items_verified_total").await?,
        JUNK_PROBE as u64,
        "only the probe was recovered"
    );

    // The work is charged all the same: the burst holds two full batches, not three.
    let (status, _, body) = post_batch(&flooder, &watcher.url, &stack, junk.clone()).await?;
    assert_eq!(status, 422, "{body}");
    let (status, retry, body) = post_batch(&flooder, &watcher.url, &stack, junk).await?;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("items"),
        "{body}"
    );
    assert!(retry.is_some_and(|secs| secs.parse::<u64>().is_ok_and(|secs| secs >= 1)));
    assert_eq!(
        counter(&watcher.url, "receipt_batches_refused_early_total").await?,
        2
    );

    // Brandon's phone, another client, syncs as usual.
    let phone = client_from([127, 0, 0, 2])?;
    let (status, _, body) = post_batch(&phone, &watcher.url, &stack, vec![genuine]).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["status"], "stored", "{body}");

    // A connection that never finishes its headers is closed after the header timeout.
    slow::is_cut_off(watcher.url.trim_start_matches("http://").parse()?).await?;
    watcher.stop().await
}
