//! Alice pays Carol through Brandon with three `smartmesh node` processes on `smartmesh dev`'s
//! chain, each in its own network namespace (channels Alice-Brandon and Brandon-Carol only),
//! found by mDNS on their links, with the chain and services out of reach while they pay; and
//! sends her a file through Brandon, who is paid per delivered packet.
//! Then the hard cases: Carol vanishes before revealing (every lock expires back, and she is
//! told at the next meeting); Brandon's link to Alice goes down right after he paid Carol (his
//! watcher registers the secret he synced), and Alice closes dropping the pending lock (the
//! watcher's evidence wins: Brandon is made whole on chain).

mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use alloy::primitives::{B256, U256, utils::parse_ether};
use common::{
    dev::{Dev, interrupt},
    village::Village,
};
use smartmesh_protocol::{ConditionRegistry, TokenNetwork};

/// A `smartmesh node`, killed on drop.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    fn stop(&mut self) {
        interrupt(&mut self.child);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

const NAMES: [&str; 3] = ["alice", "brandon", "carol"];

/// Where the three run: namespaces, or loopback where they cannot be made.
struct Hosts {
    village: Option<Village>,
    /// Each node's service URLs: rpc, watcher, relayer.
    urls: Vec<[String; 3]>,
    /// On loopback, each node's port, picked free at the start.
    ports: Vec<u16>,
}

impl Hosts {
    async fn new(dev: &Dev) -> eyre::Result<Self> {
        let direct = [
            dev.field("rpcUrl"),
            dev.field("watcherUrl"),
            dev.field("relayerUrl"),
        ];
        let Some(mut village) = Village::create("m")? else {
            let mut ports = Vec::new();
            for _ in 0..3 {
                ports.push(
                    std::net::TcpListener::bind("127.0.0.1:0")?
                        .local_addr()?
                        .port(),
                );
            }
            return Ok(Self {
                village: None,
                urls: vec![direct.clone(), direct.clone(), direct],
                ports,
            });
        };
        let mut urls = Vec::new();
        for n in 0..3 {
            let mut forwarded = Vec::new();
            for url in &direct {
                forwarded.push(village.forward(n, url).await?);
            }
            urls.push(forwarded.try_into().expect("three services"));
        }
        Ok(Self {
            village: Some(village),
            urls,
            ports: Vec::new(),
        })
    }

    /// Starts node `n`. On loopback it listens on a port of its own and dials Brandon's.
    fn start(&self, dev: &Dev, n: usize) -> eyre::Result<Node> {
        let log = dev.home.join(format!("{}-node.log", NAMES[n]));
        let mut command = match &self.village {
            Some(village) => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", village.namespace(n)])
                    .arg(env!("CARGO_BIN_EXE_smartmesh"))
                    .args(["node", "--listen", "/ip4/0.0.0.0/tcp/4001"]);
                command
            }
            None => {
                let mut command = Command::new(env!("CARGO_BIN_EXE_smartmesh"));
                command.args([
                    "node",
                    "--no-mdns",
                    "--listen",
                    &format!("/ip4/127.0.0.1/tcp/{}", self.ports[n]),
                ]);
                if n != 1 {
                    command.args(["--peer", &format!("/ip4/127.0.0.1/tcp/{}", self.ports[1])]);
                }
                command
            }
        };
        let [rpc, watcher, relayer] = &self.urls[n];
        command
            .args(["--wallet", NAMES[n], "--home"])
            .arg(&dev.home)
            .args([
                "--rpc-url",
                rpc,
                "--watcher-url",
                watcher,
                "--relayer-url",
                relayer,
            ])
            .args([
                "--fee",
                "0.01",
                "--hint-interval",
                "1",
                "--sync-interval",
                "2",
            ])
            // Δ = 10 + 5 + 0 + 2 = 17 s a hop: the locks of a 2-hop payment last 34 s.
            .args([
                "--offline-secs",
                "10",
                "--mining-secs",
                "5",
                "--skew-secs",
                "2",
            ])
            // SMARTMESH_NODE_LOG=smartmesh=debug,libp2p_mdns=debug says more when it fails.
            .env(
                "RUST_LOG",
                std::env::var("SMARTMESH_NODE_LOG").unwrap_or_else(|_| "smartmesh=info".into()),
            )
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        Ok(Node {
            child: command.spawn()?,
            log,
        })
    }

    /// Brings link 0 (Alice-Brandon) or 1 (Brandon-Carol) up or down; on loopback, where
    /// links cannot be cut, by stopping and starting the node at the far end from Brandon.
    fn set_link(&self, dev: &Dev, nodes: &mut [Node], link: usize, up: bool) -> eyre::Result<()> {
        match &self.village {
            Some(village) => village.set_link(link, up),
            None => {
                let far = if link == 0 { 0 } else { 2 };
                if up {
                    nodes[far] = self.start(dev, far)?;
                } else {
                    nodes[far].stop();
                }
                Ok(())
            }
        }
    }

    fn set_online(&self, up: bool) -> eyre::Result<()> {
        if let Some(village) = &self.village {
            for n in 0..3 {
                village.set_online(n, up)?;
            }
        }
        Ok(())
    }
}

/// Waits until `check` holds, up to `seconds`.
async fn until(
    seconds: u64,
    what: &str,
    mut check: impl FnMut() -> eyre::Result<bool>,
) -> eyre::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if check()? {
            return Ok(());
        }
        eyre::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The outcome of transfer `condition` in `wallet`'s journal.
fn outcome(dev: &Dev, wallet: &str, condition: B256) -> eyre::Result<Option<String>> {
    let listed: serde_json::Value =
        serde_json::from_str(&dev.sm(&["transfers", "--json", "--wallet", wallet])?)?;
    Ok(listed
        .as_array()
        .into_iter()
        .flatten()
        .find(|transfer| transfer["condition_id"] == condition.to_string())
        .map(|transfer| transfer["outcome"].as_str().unwrap_or_default().to_owned()))
}

/// `smartmesh pay --to carol` by Alice through her node; the transfer's condition.
fn alice_pays_carol(dev: &Dev, amount: &str) -> eyre::Result<B256> {
    let said = dev.sm(&[
        "pay", "--wallet", "alice", "--to", "carol", "--amount", amount,
    ])?;
    assert!(
        said.contains(&format!(
            "through {} asking 0.01 SMT",
            dev.wallet("brandon")
        )),
        "{said}"
    );
    said.split("transfer ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| eyre::eyre!("no transfer in {said:?}"))
}

#[tokio::test]
async fn alice_pays_carol_through_brandon_offline_and_the_hard_cases_end_well() -> eyre::Result<()>
{
    let dev = Dev::start("mediated")?;
    let ab = dev.open_funded("alice", "brandon", "100")?;
    dev.open_funded("brandon", "carol", "100")?;
    let hosts = Hosts::new(&dev).await?;
    let mut nodes = Vec::new();
    for n in 0..3 {
        nodes.push(hosts.start(&dev, n)?);
    }
    let result = scenario(&dev, &hosts, &mut nodes, ab).await;
    if result.is_err() || std::env::var_os("SMARTMESH_NODE_LOGS").is_some() {
        for name in NAMES {
            let log = dev.home.join(format!("{name}-node.log"));
            eprintln!(
                "--- {} ---\n{}",
                log.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }
    result
}

async fn scenario(dev: &Dev, hosts: &Hosts, nodes: &mut [Node], ab: B256) -> eyre::Result<()> {
    // A block a second, as a live chain makes them: a registry read proves a lock expired
    // only at a block past its expiry.
    let provider = dev.provider()?;
    let miner = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _: Result<serde_json::Value, _> = alloy::providers::Provider::raw_request(
                &provider,
                "evm_mine".into(),
                serde_json::json!([]),
            )
            .await;
        }
    });
    let _stop_mining = AbortOnDrop(miner);

    // Each node reads the channel graph from the chain, and learns from the gossiped hints
    // that Brandon can carry the payment to Carol. Then everyone goes offline.
    until(60, "Alice's route to Carol", || {
        Ok(dev
            .sm(&[
                "route", "--wallet", "alice", "--to", "carol", "--amount", "5",
            ])
            .is_ok_and(|route| route.contains("fees 0.01 SMT")))
    })
    .await?;
    hosts.set_online(false)?;
    let paid = alice_pays_carol(dev, "5")?;
    until(30, "Carol paid", || {
        Ok(outcome(dev, "carol", paid)?.as_deref() == Some("paid"))
    })
    .await?;
    until(30, "Alice and Brandon done", || {
        Ok(outcome(dev, "alice", paid)?.as_deref() == Some("paid")
            && outcome(dev, "brandon", paid)?.as_deref() == Some("paid"))
    })
    .await?;
    let brandon = dev.sm(&["transfers", "--wallet", "brandon"])?;
    assert!(
        brandon.contains("mediator  received 5.01 paid 5 SMT: Paid"),
        "Brandon kept his fee: {brandon}"
    );

    // Still offline, Alice sends Carol a file through Brandon, paying him per delivered
    // packet: 5 packets of at most 1,024 bytes, acknowledged by Carol every 2, each window
    // pre-locked to Brandon and unlocked on its acknowledgment.
    let file = dev.home.join("photo.bin");
    let content: Vec<u8> = (0..4_500u32).map(|n| (n * 7 % 251) as u8).collect();
    std::fs::write(&file, &content)?;
    let said = dev.sm(&[
        "send",
        "--wallet",
        "alice",
        "--to",
        "carol",
        "--price",
        "0.001",
        "--k",
        "2",
        "--pre-lock",
        &file.display().to_string(),
    ])?;
    let session = said
        .split("session ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| eyre::eyre!("no session in {said:?}"))?
        .to_owned();
    let received = dev.home.join("wallets/carol/received").join(&session);
    until(30, "Carol to have the whole file", || {
        Ok(std::fs::read(&received).is_ok_and(|got| got == content))
    })
    .await?;
    until(30, "Brandon to be paid for every packet", || {
        Ok(dev
            .sm(&["sessions", "--wallet", "brandon"])?
            .contains("earned relaying: 0.005 SMT"))
    })
    .await?;
    hosts.set_online(true)?;

    // Carol vanishes before revealing: both locks expire back to their payers, and Carol's
    // channel is told at the next meeting.
    nodes[2].stop();
    let vanished = alice_pays_carol(dev, "2")?;
    until(90, "the locks to expire back", || {
        Ok(
            outcome(dev, "alice", vanished)?.as_deref() == Some("refunded")
                && outcome(dev, "brandon", vanished)?.as_deref() == Some("refunded"),
        )
    })
    .await?;
    nodes[2] = hosts.start(dev, 2)?;
    let carol_log = nodes[2].log.clone();
    until(30, "Carol to hear of the expired lock", || {
        Ok(std::fs::read_to_string(&carol_log)?.contains("lock_expired"))
    })
    .await?;
    let status = dev.sm(&["channel", "status", "--wallet", "carol"])?;
    assert!(
        !status.contains("pending lock") && status.contains("received 5 SMT"),
        "Carol holds the 5 she was paid and no lock: {status}"
    );

    // Brandon's link to Alice goes down right after he paid Carol: Carol's link is down while
    // Alice pays, so Brandon's lock waits; then Alice's link goes down and Carol's comes up.
    let watcher: alloy::primitives::Address = dev.field("watcher").parse()?;
    let watcher_before = dev.smt(watcher).await?;
    hosts.set_link(dev, nodes, 1, false)?;
    let cut = alice_pays_carol(dev, "3")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    hosts.set_link(dev, nodes, 0, false)?;
    hosts.set_link(dev, nodes, 1, true)?;
    until(30, "Carol paid", || {
        Ok(outcome(dev, "carol", cut)?.as_deref() == Some("paid"))
    })
    .await?;
    // Brandon's node synced his receipt and the secret: his watcher registers it in time.
    let registry = ConditionRegistry::new(dev.address("conditionRegistry"), dev.provider()?);
    let mut registered = 0;
    for _ in 0..150 {
        registered = registry.registeredAt(cut).call().await?.to::<u64>();
        if registered != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        registered > 0,
        "the watcher never registered Brandon's secret"
    );
    assert_eq!(
        dev.smt(watcher).await? - watcher_before,
        parse_ether("0.01")?,
        "the watcher registered it, paid its fee by Brandon's signed request"
    );

    // Alice, cut off from Brandon, closes dropping the pending lock: the watcher's evidence
    // puts it back, and the settle pays Brandon what he is owed.
    nodes[0].stop();
    let before = dev.smt(dev.wallet("brandon")).await?;
    dev.sm(&[
        "channel",
        "close",
        "--wallet",
        "alice",
        "--channel",
        &ab.to_string(),
        "--drop-locks",
        "--forfeit-deposit",
    ])?;
    let evidence = dev
        .eventually::<TokenNetwork::EvidenceSubmitted>(ab, "the watcher's lock evidence")
        .await?;
    assert_eq!(evidence.locks.len(), 64, "the one dropped lock");
    dev.rpc("evm_increaseTime", serde_json::json!([601]))
        .await?;
    dev.rpc("evm_mine", serde_json::json!([])).await?;
    let (_, brandon_payout, alice_payout) = dev
        .settled(ab, dev.wallet("brandon"), "the watcher's settle with locks")
        .await?;
    assert_eq!(
        brandon_payout,
        parse_ether("150")? - parse_ether("1")?,
        "the whole channel, less the watcher's reward: the lock is in it"
    );
    assert_eq!(
        alice_payout,
        U256::ZERO,
        "the dropped lock cost Alice her deposit"
    );
    assert!(dev.smt(dev.wallet("brandon")).await? > before);
    Ok(())
}
