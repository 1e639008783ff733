//! A 3-hop mediated payment over the in-memory transport (DESIGN.md 8): Alice pays Carol
//! through Brandon and Dana, every message signed, verified and journaled (SQLite,
//! `synchronous=FULL`), from Alice's first lock until Carol's unlock is in her journal; with
//! the messages and bytes each payment takes. Goal: p50 under 5 ms.
//! Run: `cargo bench -p smartmesh-mesh --bench mediated`.

mod common;

use std::time::{Duration, Instant};

use alloy::primitives::{U256, keccak256};
use common::{config, open_between, percentile};
use smartmesh_mesh::{KEY_FILE, MemoryNet, MemoryTransport, Mesh, create_key};
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
    let root =
        std::env::temp_dir().join(format!("smartmesh-mediated-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
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
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    let (p50, p99) = (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    );
    println!(
        "3-hop payment, in-memory transport, {PAYMENTS} payments: p50 {:.2} ms, p99 {:.2} ms; {:.1} messages and {:.0} bytes per payment; goal p50 < 5 ms {}",
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
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
