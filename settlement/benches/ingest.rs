//! Receipts verified and durably stored per second, in batches of 1,000, through the real
//! `POST /v1/receipts` handler (`app(state)`, no socket): JSON in, both signatures of every
//! item recovered, channels and held proofs read, the batch committed, acknowledgments signed,
//! JSON out. Next to it, in the same run, the machine's raw signature-recovery rate with
//! libsecp256k1, on one core and on every core the handler uses.
//!
//! `cargo bench -p smartmesh-settlement --bench ingest` (SQLite; Postgres too when
//! `DATABASE_URL` is set).

#[path = "../../chain/tests/common/mod.rs"]
mod storage;

use std::time::{Duration, Instant};

use alloy::{
    primitives::{Address, B256, Bytes, LogData, U256, keccak256},
    rpc::types::Log,
    signers::local::PrivateKeySigner,
    sol_types::{SolEvent, SolStruct},
};
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use http_body_util::BodyExt;
use smartmesh_chain::{BlockLogs, Database, LogHandler};
use smartmesh_protocol::{
    BalanceProof, SecpSigner, Signature65, SignedProof, TokenNetwork, Watch, recover,
    token_network_domain,
};
use smartmesh_settlement::{
    ApiLimits, AppState, BatchOutcome, ChannelIndexer, ItemStatus, ReceiptBatch, ReceiptItem,
    WatchAuthorization, app,
};
use tower::ServiceExt;

const CHAIN_ID: u64 = 31_337;
const CHANNELS: usize = 1_000;
const BATCHES: usize = 10;
const RUNS: usize = 3;

fn key(seed: &str, index: usize) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(format!("{seed}{index}"))).expect("a valid key")
}

struct Fixture {
    network: Address,
    watcher: PrivateKeySigner,
    channels: Vec<(B256, PrivateKeySigner, PrivateKeySigner)>,
}

impl Fixture {
    fn new() -> Self {
        let channels = (0..CHANNELS)
            .map(|i| {
                (
                    keccak256(format!("channel{i}")),
                    key("payer", i),
                    key("payee", i),
                )
            })
            .collect();
        Self {
            network: Address::repeat_byte(0x42),
            watcher: key("watcher", 0),
            channels,
        }
    }

    /// Indexes every channel (opened, payer deposited 1,000 SMT) through the real indexer.
    async fn index(&self, db: &Database) -> eyre::Result<()> {
        let mut tx = db.pool().begin().await?;
        let mut logs = Vec::new();
        for (channel_id, payer, payee) in &self.channels {
            let (p1, p2) = if payer.address() < payee.address() {
                (payer.address(), payee.address())
            } else {
                (payee.address(), payer.address())
            };
            let opened = TokenNetwork::ChannelOpened {
                channelId: *channel_id,
                participant1: p1,
                participant2: p2,
                epoch: U256::from(1),
                settleTimeout: U256::from(3_600),
            };
            let deposited = TokenNetwork::ChannelDeposited {
                channelId: *channel_id,
                participant: payer.address(),
                totalDeposit: U256::from(10u128.pow(21)),
            };
            for data in [opened.encode_log_data(), deposited.encode_log_data()] {
                logs.push(self.log(data, logs.len()));
            }
        }
        ChannelIndexer
            .apply(
                &mut tx,
                &BlockLogs {
                    number: 1,
                    hash: B256::repeat_byte(1),
                    logs,
                },
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    fn log(&self, data: LogData, index: usize) -> Log {
        Log {
            inner: alloy::primitives::Log {
                address: self.network,
                data,
            },
            block_number: Some(1),
            log_index: Some(index as u64),
            ..Default::default()
        }
    }

    /// One batch: every channel's payer paid `nonce` wei in total, with the payee's Watch.
    fn batch(&self, nonce: u64) -> String {
        let domain = token_network_domain(CHAIN_ID, self.network);
        let items = self
            .channels
            .iter()
            .map(|(channel_id, payer, payee)| {
                let proof = BalanceProof {
                    channelId: *channel_id,
                    nonce: U256::from(nonce),
                    transferredAmount: U256::from(nonce),
                    ..Default::default()
                };
                let digest = proof.eip712_signing_hash(&domain);
                let signed = SignedProof {
                    chain_id: CHAIN_ID,
                    token_network: self.network,
                    signature: SecpSigner::new(payer).sign_digest(&digest),
                    proof,
                };
                let watch = Watch {
                    channelId: *channel_id,
                    proofDigest: digest,
                    watcher: self.watcher.address(),
                    reward: U256::from(1),
                    deadline: U256::MAX,
                };
                ReceiptItem {
                    proof: signed.to_text().expect("encodes"),
                    watch: WatchAuthorization {
                        watcher: watch.watcher,
                        reward: watch.reward,
                        deadline: watch.deadline,
                        signature: Bytes::copy_from_slice(
                            SecpSigner::new(payee)
                                .sign_typed(&watch, &domain)
                                .as_bytes(),
                        ),
                    },
                    locks: None,
                }
            })
            .collect();
        serde_json::to_string(&ReceiptBatch {
            chain_id: CHAIN_ID,
            token_network: self.network,
            items,
            sent: vec![],
            conditions: vec![],
        })
        .expect("serializes")
    }

    /// (digest, signature) pairs of distinct signers, for the raw recovery rate.
    fn signatures(&self) -> Vec<(B256, Signature65)> {
        self.channels
            .iter()
            .flat_map(|(channel_id, payer, payee)| {
                [payer, payee].map(|key| {
                    let digest = keccak256(channel_id);
                    (digest, SecpSigner::new(key).sign_digest(&digest))
                })
            })
            .collect()
    }
}

/// Recoveries per second over `signatures`, split across `threads`; best of `RUNS`.
fn recovery_rate(signatures: &[(B256, Signature65)], threads: usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..RUNS {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for part in signatures.chunks(signatures.len().div_ceil(threads)) {
                scope.spawn(move || {
                    for (digest, signature) in part {
                        std::hint::black_box(recover(digest, signature).expect("recovers"));
                    }
                });
            }
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    signatures.len() as f64 / best
}

/// Receipts whose signatures alone are handled per second: both recovered and the
/// acknowledgment signed, split across `threads`; best of `RUNS`.
fn signature_floor(fixture: &Fixture, signatures: &[(B256, Signature65)], threads: usize) -> f64 {
    let signer = SecpSigner::new(&fixture.watcher);
    let mut best = f64::MAX;
    for _ in 0..RUNS {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for part in signatures.chunks(signatures.len().div_ceil(threads)) {
                let signer = &signer;
                scope.spawn(move || {
                    for pair in part.chunks(2) {
                        for (digest, signature) in pair {
                            std::hint::black_box(recover(digest, signature).expect("recovers"));
                        }
                        std::hint::black_box(signer.sign_digest(&pair[0].0));
                    }
                });
            }
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    (signatures.len() / 2) as f64 / best
}

/// Receipts stored per second through the handler; best of `RUNS` rounds of `BATCHES`.
async fn ingest_rate(fixture: &Fixture, db: Database) -> eyre::Result<f64> {
    fixture.index(&db).await?;
    let mut state = AppState::new(db, CHAIN_ID, fixture.network, fixture.watcher.clone());
    state.limits = ApiLimits {
        rate_per_second: 1_000_000,
        burst: 1_000_000,
        timeout: Duration::from_secs(300),
        max_body: smartmesh_settlement::MAX_BODY_BYTES,
        work_per_second: u32::MAX,
        work_burst: u32::MAX,
        ..ApiLimits::default()
    };
    let router = app(state);
    let mut nonce = 0;
    let mut best = f64::MAX;
    for _ in 0..RUNS {
        // Built before the clock starts: phones sign, the watcher only verifies.
        let bodies: Vec<String> = (0..BATCHES)
            .map(|_| {
                nonce += 1;
                fixture.batch(nonce)
            })
            .collect();
        let start = Instant::now();
        for body in bodies {
            let request = Request::post("/v1/receipts")
                .header("content-type", "application/json")
                .body(Body::from(body))?;
            let response = router.clone().oneshot(request).await?;
            eyre::ensure!(
                response.status() == StatusCode::OK,
                "status {}",
                response.status()
            );
            let bytes = response.into_body().collect().await?.to_bytes();
            let outcome: BatchOutcome = serde_json::from_slice(&bytes)?;
            eyre::ensure!(
                outcome
                    .items
                    .iter()
                    .all(|item| item.status == ItemStatus::Stored),
                "every receipt is stored"
            );
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok((BATCHES * CHANNELS) as f64 / best)
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fixture = Fixture::new();
    let signatures = fixture.signatures();
    let one_core = recovery_rate(&signatures, 1);
    let all_cores = recovery_rate(&signatures, threads);
    println!(
        "raw libsecp256k1 recovery, {} distinct signers: {one_core:.0}/s on one core, {all_cores:.0}/s on {threads} cores",
        signatures.len()
    );
    let floor = signature_floor(&fixture, &signatures, threads);
    println!(
        "a receipt's signatures alone (two recoveries, one acknowledgment signed): {floor:.0} receipts/s on {threads} cores"
    );

    // A fresh SQLite file, and a fresh database on the Postgres of `DATABASE_URL` if set.
    let backends = storage::bench_databases("bench_ingest").await?;
    for db in backends {
        let name = db.backend().to_string();
        let rate = ingest_rate(&fixture, db).await?;
        println!(
            "{name}: {rate:.0} receipts/s stored in batches of {CHANNELS}, {:.0} signatures recovered/s: \
             {:.2} of the raw recovery rate counted per receipt, {:.2} counted per signature, \
             {:.2} of the signatures-alone floor",
            2.0 * rate,
            rate / all_cores,
            2.0 * rate / all_cores,
            rate / floor
        );
    }
    Ok(())
}
