//! The offline payment path, measured next to its floor in the same run (DESIGN.md 8): pay,
//! encode, receive, both journals committed to disk; a locked payment and its unlock; and 100
//! channels paid at once, twice: as fast as they go (closed loop: 100 payments always in
//! flight, so by Little's law each waits about 100 / rate), and at the goal's 1,000 payments/s
//! offered evenly across the 100 channels (open loop: each payment timed from when it was due,
//! so a stall counts against every payment it delayed). The floor is what no implementation can
//! avoid: two fdatasyncs of a small write (one journal each), one k256 signature and one
//! libsecp256k1 recovery.
//! Run: `cargo bench -p smartmesh-mesh --bench payment`.

mod common;

use std::{
    io::Write,
    path::Path,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy::{
    primitives::{B256, U256, keccak256},
    signers::local::PrivateKeySigner,
};
use common::{config, open_between, percentile};
use smartmesh_mesh::{KEY_FILE, Mesh, create_key};
use smartmesh_protocol::{Lock, hashlock_condition_id, recover, sign_digest};

const PAYMENTS: usize = 1_000;
const CHANNELS: usize = 100;
const PER_CHANNEL: usize = 20;
/// The offered rate of the open-loop run, across all channels.
const OFFERED_PER_SECOND: u64 = 1_000;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

async fn wallet(root: &Path, name: &str) -> eyre::Result<Mesh> {
    let dir = root.join(name);
    create_key(&dir.join(KEY_FILE))?;
    Ok(Mesh::open(&dir, config()).await?)
}

/// Alice and Brandon with one open channel, each holding a large deposit.
async fn pair(root: &Path, n: usize) -> eyre::Result<(Mesh, Mesh, B256)> {
    let alice = wallet(root, &format!("alice-{n}")).await?;
    let brandon = wallet(root, &format!("brandon-{n}")).await?;
    let id = keccak256(n.to_be_bytes());
    let deposit = U256::from(10).pow(U256::from(24));
    open_between(&alice, &brandon, id, deposit).await?;
    Ok((alice, brandon, id))
}

/// The floor: two fdatasyncs of a small write, one k256 signature, one recovery. Sampled
/// between the payments it is compared with, so both see the disk in the same state (its
/// latency drifts by tens of percent over seconds here).
struct Floor {
    key: PrivateKeySigner,
    files: Vec<std::fs::File>,
    samples: Vec<Duration>,
}

impl Floor {
    fn new(root: &Path) -> eyre::Result<Self> {
        let files = (0..2)
            .map(|i| std::fs::File::create(root.join(format!("floor-{i}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            key: PrivateKeySigner::random(),
            files,
            samples: Vec::new(),
        })
    }

    fn sample(&mut self) -> eyre::Result<()> {
        let i = self.samples.len();
        let digest = keccak256(i.to_be_bytes());
        let start = Instant::now();
        let signature = sign_digest(&self.key, &digest);
        for handle in &mut self.files {
            handle.write_all(&[i as u8; 200])?;
            handle.sync_data()?;
        }
        let signer = recover(&digest, &signature)?;
        self.samples.push(start.elapsed());
        eyre::ensure!(
            signer == self.key.address(),
            "the floor's recovery is wrong"
        );
        Ok(())
    }
}

fn row(name: &str, samples: &mut [Duration], floor_p50: Duration) {
    let p50 = percentile(samples, 0.5);
    let ratio = p50.as_secs_f64() / floor_p50.as_secs_f64();
    println!(
        "| {name} | {:.3} | {:.3} | {ratio:.2} |",
        ms(p50),
        ms(percentile(samples, 0.99))
    );
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let root = std::env::temp_dir().join(format!("smartmesh-payment-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;

    let mut floor = Floor::new(&root)?;

    let (alice, brandon, id) = pair(&root, 0).await?;
    // Unmeasured: the journals' first pages and write-ahead logs are allocated here, not in
    // the first measured payments.
    for _ in 0..PAYMENTS / 4 {
        let proof = alice.pay(id, U256::from(1)).await?;
        brandon.receive_bytes(&proof.encode()?).await?;
    }
    let mut direct = Vec::with_capacity(PAYMENTS);
    for _ in 0..PAYMENTS {
        floor.sample()?;
        let start = Instant::now();
        let proof = alice.pay(id, U256::from(1)).await?;
        brandon.receive_bytes(&proof.encode()?).await?;
        direct.push(start.elapsed());
    }

    let mut floor = floor.samples;
    let floor_p50 = percentile(&mut floor, 0.5);
    let (mut locked, mut unlocked) = (Vec::new(), Vec::new());
    for i in 0..PAYMENTS / 4 {
        let lock = Lock {
            expiry: now() + 3_600,
            amount: 1,
            condition_id: hashlock_condition_id(&keccak256(i.to_be_bytes())),
        };
        let start = Instant::now();
        let message = alice.lock(id, lock, Vec::new()).await?;
        brandon.receive_bytes(&message.encode()?).await?;
        locked.push(start.elapsed());
        let start = Instant::now();
        let message = alice.unlock(id, lock.condition_id).await?;
        brandon.receive_bytes(&message.encode()?).await?;
        unlocked.push(start.elapsed());
    }

    let mut pairs = Vec::new();
    for n in 1..=CHANNELS {
        pairs.push(Arc::new(pair(&root, n).await?));
    }
    let start = Instant::now();
    let tasks: Vec<_> = pairs
        .iter()
        .cloned()
        .map(|pair| {
            tokio::spawn(async move {
                let (alice, brandon, id) = &*pair;
                let mut samples = Vec::with_capacity(PER_CHANNEL);
                for _ in 0..PER_CHANNEL {
                    let start = Instant::now();
                    let proof = alice.pay(*id, U256::from(1)).await?;
                    brandon.receive_bytes(&proof.encode()?).await?;
                    samples.push(start.elapsed());
                }
                eyre::Ok(samples)
            })
        })
        .collect();
    let mut concurrent = Vec::new();
    for task in tasks {
        concurrent.extend(task.await??);
    }
    let rate = concurrent.len() as f64 / start.elapsed().as_secs_f64();

    // Open loop: channel n pays every CHANNELS / OFFERED_PER_SECOND seconds, its first payment
    // n / OFFERED_PER_SECOND seconds after the start.
    let interval = Duration::from_micros(1_000_000 * CHANNELS as u64 / OFFERED_PER_SECOND);
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let tasks: Vec<_> = pairs
        .iter()
        .cloned()
        .enumerate()
        .map(|(n, pair)| {
            tokio::spawn(async move {
                let (alice, brandon, id) = &*pair;
                let first =
                    start + Duration::from_micros(1_000_000 * n as u64 / OFFERED_PER_SECOND);
                let mut samples = Vec::with_capacity(PER_CHANNEL);
                for k in 0..PER_CHANNEL {
                    let due = first + interval * k as u32;
                    tokio::time::sleep_until(due).await;
                    let proof = alice.pay(*id, U256::from(1)).await?;
                    brandon.receive_bytes(&proof.encode()?).await?;
                    samples.push(due.elapsed());
                }
                eyre::Ok(samples)
            })
        })
        .collect();
    let mut offered = Vec::new();
    for task in tasks {
        offered.extend(task.await??);
    }
    let offered_rate = offered.len() as f64 / start.elapsed().as_secs_f64();

    println!("| path | p50 ms | p99 ms | p50 / floor |");
    println!("|---|---:|---:|---:|");
    row(
        "floor: 2 fdatasyncs + k256 sign + secp256k1 recover",
        &mut floor,
        floor_p50,
    );
    row(
        "direct payment (pay, encode, receive, both journals)",
        &mut direct,
        floor_p50,
    );
    row("locked payment (lock, receive)", &mut locked, floor_p50);
    row("unlock (unlock, receive)", &mut unlocked, floor_p50);
    row(
        &format!("{CHANNELS} channels at once, closed loop ({rate:.0} payments/s)"),
        &mut concurrent,
        floor_p50,
    );
    row(
        &format!(
            "{CHANNELS} channels at once, {OFFERED_PER_SECOND}/s offered ({offered_rate:.0} payments/s done)"
        ),
        &mut offered,
        floor_p50,
    );
    let ratio = percentile(&mut direct, 0.5).as_secs_f64() / floor_p50.as_secs_f64();
    let p99 = percentile(&mut offered, 0.99);
    println!(
        "goal: direct p50 <= 2x floor: {ratio:.2}x {}; {CHANNELS} channels at >= 1,000/s (most {rate:.0}/s) with p99 < 50 ms at 1,000/s offered: p99 {:.1} ms {}",
        if ratio <= 2.0 { "met" } else { "missed" },
        ms(p99),
        if rate >= 1_000.0
            && offered_rate >= 0.98 * OFFERED_PER_SECOND as f64
            && p99 < Duration::from_millis(50)
        {
            "met"
        } else {
            "missed"
        }
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
