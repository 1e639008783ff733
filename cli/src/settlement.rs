//! `smartmesh settlement`: the watcher alone, configured by flags and environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::primitives::utils::parse_ether;
use eyre::{WrapErr, eyre};
use smartmesh_chain::{Database, Deployment, SenderConfig, connect};
use smartmesh_settlement::{ApiLimits, EngineConfig, Watcher, WatcherConfig};
use tokio::net::TcpListener;

use crate::keys;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The JSON-RPC endpoint of the chain to guard.
    #[arg(
        long,
        env = "SMARTMESH_RPC_URL",
        default_value = "http://127.0.0.1:8545"
    )]
    rpc_url: String,
    /// `sqlite://FILE` (one replica) or `postgres://...` (several replicas may share it).
    #[arg(
        long,
        env = "SMARTMESH_DATABASE_URL",
        default_value = "sqlite://.smartmesh/settlement.sqlite"
    )]
    database_url: String,
    /// A file holding the watcher's hex private key (else $SMARTMESH_WATCHER_KEY). Its
    /// address is the `watcher` phones name in their Watches, and it pays the gas.
    #[arg(long, env = "SMARTMESH_WATCHER_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// The deployment manifest; by default `<deployments-dir>/<chainId>.json`.
    #[arg(long, env = "SMARTMESH_DEPLOYMENT")]
    deployment: Option<PathBuf>,
    /// Where manifests are looked up by chain id.
    #[arg(long, env = "SMARTMESH_DEPLOYMENTS_DIR", default_value = "deployments")]
    deployments_dir: PathBuf,
    /// The address the HTTP API listens on (port 0: any free port, printed at start).
    #[arg(long, env = "SMARTMESH_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Blocks behind the head the indexer stays, for reorg safety.
    #[arg(long, env = "SMARTMESH_CONFIRMATIONS", default_value_t = 2)]
    confirmations: u64,
    /// Milliseconds between the indexer's, the sender's and the engine's rounds.
    #[arg(long, env = "SMARTMESH_POLL_MS", default_value_t = 1_000)]
    poll_ms: u64,
    /// Seconds after a channel's hold period ends before the watcher settles it for its
    /// participants.
    #[arg(long, env = "SMARTMESH_SETTLE_GRACE_SECS", default_value_t = 600)]
    settle_grace_secs: u64,
    /// Seconds between checks of a close that needs nothing yet.
    #[arg(long, env = "SMARTMESH_RECHECK_SECS", default_value_t = 30)]
    recheck_secs: u64,
    /// Seconds a broadcast transaction may wait unmined before it is replaced with higher fees.
    #[arg(long, env = "SMARTMESH_STUCK_AFTER_SECS", default_value_t = 30)]
    stuck_after_secs: u64,
    /// The highest max fee per gas the watcher pays, in gwei.
    #[arg(long, env = "SMARTMESH_MAX_FEE_GWEI", default_value_t = 500)]
    max_fee_gwei: u64,
    /// Below this ETH balance the watcher queues no transaction and says so.
    #[arg(long, env = "SMARTMESH_MIN_BALANCE_ETH", default_value = "0.01")]
    min_balance_eth: String,
    /// Requests per second each client may make.
    #[arg(long, env = "SMARTMESH_RATE_LIMIT", default_value_t = 20)]
    rate_limit: u32,
    /// Requests a client may make at once.
    #[arg(long, env = "SMARTMESH_BURST", default_value_t = 40)]
    burst: u32,
    /// Seconds before a request is answered 503.
    #[arg(long, env = "SMARTMESH_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    request_timeout_secs: u64,
}

pub(crate) async fn run(args: Args) -> eyre::Result<()> {
    let key = keys::load(args.key_file.as_deref(), "SMARTMESH_WATCHER_KEY")?;
    let provider = connect(&args.rpc_url)?;
    let chain_id = alloy::providers::Provider::get_chain_id(&provider)
        .await
        .wrap_err_with(|| format!("cannot reach the chain at {}", args.rpc_url))?;
    let deployment = load_deployment(args.deployment.as_deref(), &args.deployments_dir, chain_id)?;
    let db = open_database(&args.database_url).await?;
    let config = WatcherConfig {
        confirmations: args.confirmations,
        max_range: 1_000,
        poll_interval: Duration::from_millis(args.poll_ms.max(1)),
        engine: EngineConfig {
            recheck: Duration::from_secs(args.recheck_secs.max(1)),
            in_flight: Duration::from_millis((2 * args.poll_ms).max(1)),
            poll_interval: Duration::from_millis(args.poll_ms.max(1)),
            settle_grace: Duration::from_secs(args.settle_grace_secs),
        },
        sender: SenderConfig {
            confirmations: args.confirmations.max(1),
            stuck_after: Duration::from_secs(args.stuck_after_secs),
            max_fee_cap: u128::from(args.max_fee_gwei) * 1_000_000_000,
            min_balance: parse_ether(&args.min_balance_eth).map_err(|_| {
                eyre!(
                    "--min-balance-eth {:?} is not an amount of ETH",
                    args.min_balance_eth
                )
            })?,
            ..SenderConfig::default()
        },
        limits: ApiLimits {
            rate_per_second: args.rate_limit,
            burst: args.burst,
            timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
            max_body: smartmesh_settlement::MAX_BODY_BYTES,
        },
    };
    let watcher = Watcher::new(provider, db, deployment.clone(), key, config).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .wrap_err_with(|| format!("cannot listen on {}", args.listen))?;
    // One line on stdout that scripts (and tests) read for the endpoint.
    println!(
        "smartmesh settlement: serving http://{} watcher {} chain {} TokenNetwork {}",
        listener.local_addr()?,
        watcher.address(),
        deployment.chain_id,
        deployment.token_network
    );
    watcher
        .run(listener, smartmesh_http::shutdown_signal())
        .await?;
    Ok(())
}

/// The manifest given, or the one of `chain_id` under `dir`.
pub(crate) fn load_deployment(
    file: Option<&std::path::Path>,
    dir: &std::path::Path,
    chain_id: u64,
) -> eyre::Result<Deployment> {
    Ok(match file {
        Some(path) => Deployment::read(path)?,
        None => Deployment::load(dir, chain_id)?.ok_or_else(|| {
            eyre!(
                "no deployment manifest for chain {chain_id} at {}: deploy first, or pass --deployment FILE",
                Deployment::path(dir, chain_id).display()
            )
        })?,
    })
}

/// Opens (and migrates) the database, creating a SQLite file's directory first.
pub(crate) async fn open_database(url: &str) -> eyre::Result<Database> {
    if let Some(dir) = sqlite_parent(url) {
        std::fs::create_dir_all(&dir)
            .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    }
    Database::connect(url)
        .await
        .wrap_err_with(|| format!("cannot open the database {}", redact(url)))
}

/// The directory of a `sqlite://` file, to create before connecting.
fn sqlite_parent(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("sqlite://")?.split('?').next()?;
    let parent = PathBuf::from(path).parent()?.to_path_buf();
    (!parent.as_os_str().is_empty()).then_some(parent)
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
