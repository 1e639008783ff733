//! `smartmesh dev`: the whole stack on one machine. Starts the npm anvil (or uses
//! `--rpc-url`), deploys the contracts, gives the demo wallets SMT and no ETH, runs the
//! relayer and the watcher in this process on SQLite under the home directory, writes
//! `dev.json` for the wallet commands, and stops cleanly on Ctrl-C or SIGTERM.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::providers::DynProvider;
use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, U256, utils::parse_ether},
    signers::local::PrivateKeySigner,
};
use eyre::{WrapErr, bail, eyre};
use serde::{Deserialize, Serialize};
use smartmesh_chain::{Database, Deployment, SenderConfig, connect};
use smartmesh_http::ApiLimits;
use smartmesh_mesh::{KEY_FILE, create_key, load_key};
use smartmesh_protocol::SmartMeshToken;
use smartmesh_relayer::{RateSource, RelayPolicy, Relayer, RelayerConfig};
use smartmesh_settlement::{EngineConfig, MAX_BODY_BYTES, Watcher, WatcherConfig};
use tokio::net::TcpListener;

use crate::common::HttpArgs;

use crate::{deploy, keys};

/// The demo wallets `smartmesh dev` funds.
pub(crate) const DEMO_WALLETS: [&str; 3] = ["alice", "brandon", "carol"];

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where the stack keeps its state: dev.json, the services' databases, the wallets.
    #[arg(long, env = "SMARTMESH_HOME", default_value = ".smartmesh")]
    home: PathBuf,
    /// Use this chain instead of starting anvil (then --private-key-file pays for everything).
    #[arg(long)]
    rpc_url: Option<String>,
    /// With --rpc-url: the key that deploys, watches and relays (hex in a file).
    #[arg(long)]
    private_key_file: Option<PathBuf>,
    /// The anvil binary; by default the npm one under contracts/node_modules, else `anvil`.
    #[arg(long, env = "SMARTMESH_ANVIL")]
    anvil: Option<PathBuf>,
    /// The port anvil listens on (0: any free port).
    #[arg(long, default_value_t = 8545)]
    port: u16,
    /// The watcher's port (0: any free port).
    #[arg(long, default_value_t = 7070)]
    watcher_port: u16,
    /// The relayer's port (0: any free port).
    #[arg(long, default_value_t = 7071)]
    relayer_port: u16,
    /// SMT given to each demo wallet.
    #[arg(long, default_value = "1000")]
    fund: String,
    /// The shortest hold period channels may have, in seconds (short, for demos).
    #[arg(long, default_value_t = 30)]
    min_settle_timeout: u64,
    #[command(flatten)]
    http: HttpArgs,
}

/// What the wallet commands need to reach the stack, written to `<home>/dev.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DevFile {
    pub(crate) rpc_url: String,
    pub(crate) watcher_url: String,
    pub(crate) relayer_url: String,
    pub(crate) deployment: Deployment,
    pub(crate) watcher: Address,
    pub(crate) relayers: Vec<Address>,
    pub(crate) wallets: Vec<(String, Address)>,
}

impl DevFile {
    pub(crate) fn read(home: &Path) -> eyre::Result<Option<Self>> {
        let path = home.join("dev.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)?;
        Ok(Some(serde_json::from_str(&text).wrap_err_with(|| {
            format!("{} does not parse", path.display())
        })?))
    }
}

fn step(number: usize, text: &str) {
    say!("[{number}/6] {text}");
}

pub(crate) async fn run(args: Args) -> eyre::Result<()> {
    std::fs::create_dir_all(&args.home)
        .wrap_err_with(|| format!("cannot create {}", args.home.display()))?;
    let _ = std::fs::remove_file(args.home.join("dev.json"));

    step(1, "starting the chain");
    let (anvil, rpc_url, deployer, watcher_key, relayer_key) = match &args.rpc_url {
        Some(url) => {
            let key = keys::load(args.private_key_file.as_deref(), "SMARTMESH_DEPLOYER_KEY")?;
            (None, url.clone(), key.clone(), key.clone(), key)
        }
        None => {
            let anvil = start_anvil(args.anvil.as_deref(), args.port)?;
            let keys: Vec<PrivateKeySigner> =
                anvil.keys().iter().map(|k| k.clone().into()).collect();
            let url = anvil.endpoint();
            // A new chain: the services' databases of an earlier one would not match it.
            for file in ["settlement.sqlite", "relayer.sqlite"] {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(args.home.join(format!("{file}{suffix}")));
                }
            }
            (
                Some(anvil),
                url,
                keys[0].clone(),
                keys[1].clone(),
                keys[2].clone(),
            )
        }
    };
    say!("      {rpc_url}");

    step(
        2,
        "deploying the SMT token, the SignedAgent and the TokenNetwork",
    );
    let signer = deploy::signing_provider(&rpc_url, &deployer)?;
    let deployment = deploy::deploy(
        &signer,
        deployer.address(),
        parse_ether("3141592653")?,
        args.min_settle_timeout,
        30 * 24 * 3_600,
    )
    .await?;
    deployment.write(&args.home.join("deployments"))?;
    say!(
        "      SMT token {}  SignedAgent {}  TokenNetwork {}",
        deployment.token,
        deployment.signed_agent,
        deployment.token_network
    );

    step(3, "funding the demo wallets with SMT (and no ETH)");
    let amount = parse_ether(&args.fund)
        .map_err(|_| eyre!("--fund {:?} is not an amount of SMT", args.fund))?;
    let token = SmartMeshToken::new(deployment.token, signer.clone());
    let mut wallets = Vec::new();
    for name in DEMO_WALLETS {
        let key_file = args.home.join("wallets").join(name).join(KEY_FILE);
        let key = if key_file.exists() {
            load_key(&key_file)?
        } else {
            create_key(&key_file)?
        };
        let receipt = token
            .transfer(key.address(), amount)
            .send()
            .await?
            .get_receipt()
            .await?;
        if !receipt.status() {
            bail!("funding {name} failed");
        }
        say!(
            "      {name:<8} {}  {} SMT  ({})",
            key.address(),
            args.fund,
            key_file.display()
        );
        wallets.push((name.to_owned(), key.address()));
    }

    step(4, "starting the settlement watcher");
    let provider = connect(&rpc_url)?;
    let limits = args.http.limits(MAX_BODY_BYTES);
    let poll = Duration::from_millis(200);
    let watcher = dev_watcher(
        &provider,
        &args.home,
        &deployment,
        watcher_key,
        limits,
        poll,
    )
    .await?;
    let watcher_address = watcher.address();
    let watcher_listener =
        TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.watcher_port))).await?;
    let watcher_url = format!("http://{}", watcher_listener.local_addr()?);
    say!(
        "      {watcher_url}  (watcher {watcher_address}; registers a phone's condition {DEV_REGISTER_MARGIN_SECS} s before its lock's deadline for {DEV_REGISTRATION_FEE} SMT)"
    );

    step(5, "starting the relayer");
    let relayer_limits = args
        .http
        .limits(smartmesh_http::ApiLimits::default().max_body);
    let relayer = dev_relayer(
        provider,
        &args.home,
        &deployment,
        relayer_key,
        relayer_limits,
        Duration::from_millis(100),
    )
    .await?;
    let relayers = relayer.keys().to_vec();
    let relayer_listener =
        TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.relayer_port))).await?;
    let relayer_url = format!("http://{}", relayer_listener.local_addr()?);
    say!(
        "      {relayer_url}  (relayer {}, agent overhead {} gas, 1000 SMT/ETH, 10% markup)",
        relayers[0],
        relayer.agent_overhead()
    );

    let dev = DevFile {
        rpc_url,
        watcher_url,
        relayer_url,
        deployment,
        watcher: watcher_address,
        relayers,
        wallets,
    };
    std::fs::write(
        args.home.join("dev.json"),
        serde_json::to_string_pretty(&dev)? + "\n",
    )?;
    step(
        6,
        &format!(
            "ready: {} (Ctrl-C stops everything)",
            args.home.join("dev.json").display()
        ),
    );

    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let stopped = |stop: &tokio::sync::broadcast::Sender<()>| {
        let mut receiver = stop.subscribe();
        async move {
            let _ = receiver.recv().await;
        }
    };
    let watching = tokio::spawn(watcher.run(watcher_listener, stopped(&stop)));
    let relaying = tokio::spawn(relayer.run(relayer_listener, stopped(&stop)));
    smartmesh_http::shutdown_signal().await;
    say!("stopping");
    let _ = stop.send(());
    watching.await??;
    relaying.await??;
    drop(anvil);
    let _ = std::fs::remove_file(args.home.join("dev.json"));
    say!("stopped");
    Ok(())
}

/// The dev watcher on SQLite under `home`: no confirmations, polling every `poll`, settling
/// at once after a hold period, registering conditions [`DEV_REGISTER_MARGIN_SECS`] before
/// their deadline.
pub(crate) async fn dev_watcher(
    provider: &DynProvider,
    home: &Path,
    deployment: &Deployment,
    key: PrivateKeySigner,
    limits: ApiLimits,
    poll: Duration,
) -> eyre::Result<Watcher> {
    let db = Database::connect(&format!(
        "sqlite://{}",
        home.join("settlement.sqlite").display()
    ))
    .await?;
    Ok(Watcher::new(
        provider.clone(),
        db,
        deployment.clone(),
        key,
        WatcherConfig {
            confirmations: 0,
            max_range: 1_000,
            poll_interval: poll,
            engine: EngineConfig {
                recheck: poll * 10,
                in_flight: poll,
                poll_interval: poll,
                settle_grace: Duration::ZERO,
                register_margin: Duration::from_secs(DEV_REGISTER_MARGIN_SECS),
                ..EngineConfig::default()
            },
            sender: SenderConfig {
                confirmations: 1,
                ..SenderConfig::default()
            },
            limits,
            registration_fee: parse_ether(DEV_REGISTRATION_FEE)?,
            ..WatcherConfig::default()
        },
    )
    .await?)
}

/// The dev relayer on SQLite under `home`: a fixed 1000 SMT/ETH, polling every `poll`.
pub(crate) async fn dev_relayer(
    provider: DynProvider,
    home: &Path,
    deployment: &Deployment,
    key: PrivateKeySigner,
    limits: ApiLimits,
    poll: Duration,
) -> eyre::Result<Relayer> {
    let db = Database::connect(&format!(
        "sqlite://{}",
        home.join("relayer.sqlite").display()
    ))
    .await?;
    Ok(Relayer::new(
        provider,
        db,
        deployment.clone(),
        vec![key],
        RelayerConfig {
            policy: RelayPolicy {
                rate: RateSource::fixed("1000")?,
                min_validity: Duration::from_secs(30),
                ..RelayPolicy::default()
            },
            sender: SenderConfig {
                confirmations: 1,
                ..SenderConfig::default()
            },
            limits,
            poll_interval: poll,
            follow_interval: poll * 2,
        },
    )
    .await?)
}

pub(crate) fn start_anvil(path: Option<&Path>, port: u16) -> eyre::Result<AnvilInstance> {
    let npm = PathBuf::from("contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    let path = match path {
        Some(path) => path.to_owned(),
        None if npm.is_file() => npm,
        None => PathBuf::from("anvil"),
    };
    Anvil::new()
        .path(&path)
        .port(port)
        .try_spawn()
        .map_err(|e| eyre!("cannot start anvil ({}): {e}; run scripts/setup, or pass --anvil PATH or --rpc-url", path.display()))
}

/// An amount in whole units (18 decimals) for display, to at most 6 decimals, cut not
/// rounded (an amount is never shown larger than it is).
/// On the dev chain the watcher registers a held condition this long before its lock's
/// deadline (a public network's default is an hour).
pub(crate) const DEV_REGISTER_MARGIN_SECS: u64 = 60;
/// What a phone's registration request pays the dev watcher, in SMT.
pub(crate) const DEV_REGISTRATION_FEE: &str = "0.01";

pub(crate) fn smt(amount: U256) -> String {
    let text =
        alloy::primitives::utils::format_units(amount, 18).unwrap_or_else(|_| amount.to_string());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let fraction = fraction.get(..6).unwrap_or(fraction).trim_end_matches('0');
    if fraction.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{fraction}")
    }
}
