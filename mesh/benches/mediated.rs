//! A 3-hop mediated payment over the in-memory transport (DESIGN.md 8): Alice pays Carol
//! through Brandon and Dana, every message signed, verified and journaled (SQLite,
//! `synchronous=FULL`), from Alice's first lock until Carol's unlock is in her journal; with
//! the messages and bytes each payment takes. Goal: p50 under 5 ms. Then the same over the
//! peer-to-peer transport on loopback: four `MeshNode`s (TCP, Noise, yamux), the route found
//! from gossiped hints, timed from `pay` until Alice's node reports the transfer paid.
//! Run: `cargo bench -p smartmesh-mesh --bench mediated`.

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::primitives::{U256, keccak256};
use common::{config, open_between, percentile};
use smartmesh_mesh::{
    KEY_FILE, MemoryNet, MemoryTransport, Mesh, MeshNode, NodeConfig, NodeEvent, P2pConfig,
    TransferOutcome, create_key,
};
use smartmesh_protocol::{
    channel::ChannelMessage,
    mediated::{Hop, MediationSettings, Payment},
};

const PAYMENTS: usize = 300;
const WARM_UP: usize = 30;

async fn pump(wallets: &[Mesh], transports: &[MemoryTransport]) -> eyre::Result<()> {
    loop {
        let mut any = false;
        for (wallet, transport) in wallets.iter().zip(transports) {
            while let Some((from, bytes)) = transport.try_recv() {
                let out = wallet
                    .receive_routed(from, ChannelMessage::decode(&bytes)?)
                    .await?;
                wallet.send_or_queue(transport, out).await?;
                any = true;
            }
        }
        if !any {
            return Ok(());
        }
    }
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    in_memory().await?;
    peer_to_peer().await
}

/// Four wallets on a line in `root`, channels between neighbours with a large deposit.
async fn line(root: &std::path::Path) -> eyre::Result<Vec<Mesh>> {
    let _ = std::fs::remove_dir_all(root);
    let mut wallets = Vec::new();
    for name in ["alice", "brandon", "dana", "carol"] {
        let dir = root.join(name);
        create_key(&dir.join(KEY_FILE))?;
        let wallet = Mesh::open(&dir, config()).await?;
        wallet.set_mediation(MediationSettings::SHORT, U256::from(1));
        wallets.push(wallet);
    }
    let deposit = U256::from(10).pow(U256::from(24));
    for n in 0..3 {
        open_between(&wallets[n], &wallets[n + 1], keccak256([n as u8]), deposit).await?;
    }
    Ok(wallets)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// Prints the figures of `samples` and the channel messages they took.
fn report(transport: &str, samples: &mut [Duration], messages: usize, bytes: usize) {
    let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
    println!(
        "3-hop payment, {transport}, {PAYMENTS} payments: p50 {:.2} ms, p99 {:.2} ms; {:.1} messages and {:.0} bytes of channel messages per payment; goal p50 < 5 ms {}",
        ms(p50),
        ms(p99),
        messages as f64 / PAYMENTS as f64,
        bytes as f64 / PAYMENTS as f64,
        if p50 < Duration::from_millis(5) {
            "met"
        } else {
            "missed"
        }
    );
}

async fn in_memory() -> eyre::Result<()> {
    let root =
        std::env::temp_dir().join(format!("smartmesh-mediated-bench-{}", std::process::id()));
    let wallets = line(&root).await?;
    let net = MemoryNet::new();
    let transports: Vec<MemoryTransport> =
        wallets.iter().map(|w| net.endpoint(w.address())).collect();
    for n in 0..3 {
        net.link(wallets[n].address(), wallets[n + 1].address(), true);
    }
    let target_key = wallets[3].public_key()?;
    let mediators: Vec<Hop> = [1, 2]
        .iter()
        .map(|n| Hop {
            node: wallets[*n].address(),
            fee: U256::from(1),
        })
        .collect();
    let mut samples = Vec::with_capacity(PAYMENTS);
    let mut traffic = (0, 0);
    for i in 0..WARM_UP + PAYMENTS {
        let payment = Payment {
            mediators: mediators.clone(),
            target: wallets[3].address(),
            target_key,
            amount: 5,
            secret: keccak256((i as u64).to_be_bytes()),
            ephemeral: keccak256(((i as u64 + 1) << 32).to_be_bytes()),
        };
        if i == WARM_UP {
            traffic = net.traffic();
        }
        let start = Instant::now();
        let out = wallets[0].pay_routed(&payment).await?;
        wallets[0].send_or_queue(&transports[0], out).await?;
        pump(&wallets, &transports).await?;
        if i >= WARM_UP {
            samples.push(start.elapsed());
        }
    }
    let (messages, bytes) = net.traffic();
    let (messages, bytes) = (messages - traffic.0, bytes - traffic.1);
    let carol = wallets[3].channel_state(keccak256([2u8])).await?;
    eyre::ensure!(
        carol.theirs.transferred() == U256::from(5 * (WARM_UP + PAYMENTS)),
        "every payment reached Carol"
    );
    report("in-memory transport", &mut samples, messages, bytes);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// Waits for `node`'s next event `pick` returns something for.
async fn next<T>(
    events: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    mut pick: impl FnMut(&NodeEvent) -> Option<T>,
) -> eyre::Result<T> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv()).await??;
        if let Some(found) = pick(&event) {
            return Ok(found);
        }
    }
}

async fn peer_to_peer() -> eyre::Result<()> {
    let root = std::env::temp_dir().join(format!("smartmesh-p2p-bench-{}", std::process::id()));
    let wallets = line(&root).await?;
    let carol = wallets[3].address();
    let mut nodes: Vec<Arc<MeshNode>> = Vec::new();
    let mut tasks = Vec::new();
    let mut previous: Option<smartmesh_mesh::Multiaddr> = None;
    // Each node dials the one before it: a line on loopback.
    for wallet in wallets {
        let config = NodeConfig {
            p2p: P2pConfig {
                listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
                dial: previous.iter().cloned().collect(),
                mdns: false,
                request_timeout: Duration::from_secs(10),
            },
            hint_interval: Duration::from_millis(500),
            sync_interval: Duration::from_secs(3600),
            tick: Duration::from_secs(1),
            received_dir: None,
        };
        let node = Arc::new(MeshNode::start(Arc::new(wallet), config).await?);
        let mut events = node.subscribe();
        let running = node.clone();
        tasks.push(tokio::spawn(async move {
            running.run(std::future::pending()).await
        }));
        let listening = next(&mut events, |event| match event {
            NodeEvent::Listening(address) => Some(address.clone()),
            _ => None,
        })
        .await?;
        previous = Some(format!("{listening}/p2p/{}", node.transport().peer_id()).parse()?);
        nodes.push(node);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while nodes[0].route(carol, U256::from(5)).is_err() {
        eyre::ensure!(
            Instant::now() < deadline,
            "no route from the gossiped hints"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let route = nodes[0].route(carol, U256::from(5))?;
    eyre::ensure!(route.mediators.len() == 2, "a 3-hop route");
    let mut events = nodes[0].subscribe();
    let mut samples = Vec::with_capacity(PAYMENTS);
    let mut before = (0, 0);
    for i in 0..WARM_UP + PAYMENTS {
        if i == WARM_UP {
            before = traffic(&nodes);
        }
        let start = Instant::now();
        let started = nodes[0].pay(carol, U256::from(5), U256::from(10)).await?;
        let condition = started.condition_id.expect("a routed payment");
        let outcome = next(&mut events, |event| match event {
            NodeEvent::TransferEnded(summary) if summary.condition_id == condition => {
                Some(summary.outcome)
            }
            _ => None,
        })
        .await?;
        eyre::ensure!(outcome == TransferOutcome::Paid, "payment {i} {outcome:?}");
        if i >= WARM_UP {
            samples.push(start.elapsed());
        }
    }
    let after = traffic(&nodes);
    let (messages, bytes) = (after.0 - before.0, after.1 - before.1);
    report(
        "peer-to-peer transport on loopback (TCP, Noise, yamux)",
        &mut samples,
        messages,
        bytes,
    );
    for task in tasks {
        task.abort();
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

fn traffic(nodes: &[Arc<MeshNode>]) -> (usize, usize) {
    nodes.iter().fold((0, 0), |(m, b), node| {
        let (messages, bytes) = node.transport().traffic();
        (m + messages, b + bytes)
    })
}
