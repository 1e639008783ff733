//! `smartmesh relayer`: the relayer alone, configured by flags and environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::primitives::utils::parse_ether;
use eyre::{WrapErr, eyre};
use smartmesh_chain::{Database, SenderConfig, connect};
use smartmesh_relayer::{ApiLimits, RateSource, RelayPolicy, Relayer, RelayerConfig};
use tokio::net::TcpListener;

use crate::{
    keys,
    settlement::{load_deployment, open_database},
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The JSON-RPC endpoint of the chain.
    #[arg(
        long,
        env = "SMARTMESH_RPC_URL",
        default_value = "http://127.0.0.1:8545"
    )]
    rpc_url: String,
    /// `sqlite://FILE` or `postgres://...`.
    #[arg(
        long,
        env = "SMARTMESH_RELAYER_DATABASE_URL",
        default_value = "sqlite://.smartmesh/relayer.sqlite"
    )]
    database_url: String,
    /// A file holding a relayer key (hex); repeat for several keys. Else the comma-separated
    /// keys of $SMARTMESH_RELAYER_KEYS. The keys pay the gas and earn the fees.
    #[arg(long = "key-file")]
    key_files: Vec<PathBuf>,
    /// The deployment manifest; by default `<deployments-dir>/<chainId>.json`.
    #[arg(long, env = "SMARTMESH_DEPLOYMENT")]
    deployment: Option<PathBuf>,
    /// Where manifests are looked up by chain id.
    #[arg(long, env = "SMARTMESH_DEPLOYMENTS_DIR", default_value = "deployments")]
    deployments_dir: PathBuf,
    /// The address the HTTP API listens on (port 0: any free port, printed at start).
    #[arg(
        long,
        env = "SMARTMESH_RELAYER_LISTEN",
        default_value = "127.0.0.1:7071"
    )]
    listen: SocketAddr,
    /// Blocks on top of a relay's transaction before it is final.
    #[arg(long, env = "SMARTMESH_CONFIRMATIONS", default_value_t = 2)]
    confirmations: u64,
    /// A fixed SMT/ETH rate (SMT per ETH, decimal), for testnets.
    #[arg(
        long,
        env = "SMARTMESH_SMT_PER_ETH",
        default_value = "1000",
        conflicts_with = "rate_file"
    )]
    smt_per_eth: String,
    /// A JSON file `{"smtPerEth": "...", "updatedAt": unix}` a price feed keeps fresh.
    #[arg(long, env = "SMARTMESH_RATE_FILE")]
    rate_file: Option<PathBuf>,
    /// The oldest rate file accepted, in seconds.
    #[arg(long, env = "SMARTMESH_RATE_MAX_AGE_SECS", default_value_t = 600)]
    rate_max_age_secs: u64,
    /// The margin over the gas cost, in basis points (1000 = 10%).
    #[arg(long, env = "SMARTMESH_MARKUP_BPS", default_value_t = 1_000)]
    markup_bps: u32,
    /// Seconds a quote may be relayed.
    #[arg(long, env = "SMARTMESH_QUOTE_TTL_SECS", default_value_t = 120)]
    quote_ttl_secs: u64,
    /// Seconds of validity a request's deadline must have left.
    #[arg(long, env = "SMARTMESH_MIN_VALIDITY_SECS", default_value_t = 60)]
    min_validity_secs: u64,
    /// Requests of one user in flight at once.
    #[arg(long, env = "SMARTMESH_MAX_IN_FLIGHT", default_value_t = 8)]
    max_in_flight: i64,
    /// Relay requests checked against the node at once; lower it when the node slows down
    /// under many simulations at once.
    #[arg(long, env = "SMARTMESH_MAX_CONCURRENT_CHECKS", default_value_t = 64)]
    max_concurrent_checks: usize,
    /// Milliseconds a queued request may wait for its broadcast (a relay wakes the sender).
    #[arg(long, env = "SMARTMESH_POLL_MS", default_value_t = 1_000)]
    poll_ms: u64,
    /// Milliseconds between rounds of following sent transactions.
    #[arg(long, env = "SMARTMESH_FOLLOW_MS", default_value_t = 1_000)]
    follow_ms: u64,
    /// Seconds a broadcast transaction may wait unmined before it is replaced with higher fees.
    #[arg(long, env = "SMARTMESH_STUCK_AFTER_SECS", default_value_t = 30)]
    stuck_after_secs: u64,
    /// The highest max fee per gas paid, in gwei.
    #[arg(long, env = "SMARTMESH_MAX_FEE_GWEI", default_value_t = 500)]
    max_fee_gwei: u64,
    /// Below this ETH balance a key takes no new request.
    #[arg(long, env = "SMARTMESH_MIN_BALANCE_ETH", default_value = "0.01")]
    min_balance_eth: String,
    /// Below this ETH balance a key takes only a few waiting requests.
    #[arg(long, env = "SMARTMESH_LOW_BALANCE_ETH", default_value = "0.1")]
    low_balance_eth: String,
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

fn ether(flag: &str, text: &str) -> eyre::Result<alloy::primitives::U256> {
    parse_ether(text).map_err(|_| eyre!("{flag} {text:?} is not an amount of ETH"))
}

pub(crate) async fn run(args: Args) -> eyre::Result<()> {
    let keys = keys::load_many(&args.key_files, "SMARTMESH_RELAYER_KEYS")?;
    let provider = connect(&args.rpc_url)?;
    let chain_id = alloy::providers::Provider::get_chain_id(&provider)
        .await
        .wrap_err_with(|| format!("cannot reach the chain at {}", args.rpc_url))?;
    let deployment = load_deployment(args.deployment.as_deref(), &args.deployments_dir, chain_id)?;
    let db: Database = open_database(&args.database_url).await?;
    let rate = match &args.rate_file {
        Some(path) => RateSource::File {
            path: path.clone(),
            max_age: Duration::from_secs(args.rate_max_age_secs),
        },
        None => RateSource::fixed(&args.smt_per_eth).map_err(|e| eyre!("--smt-per-eth: {e}"))?,
    };
    let config = RelayerConfig {
        policy: RelayPolicy {
            rate,
            markup_bps: args.markup_bps,
            quote_ttl: Duration::from_secs(args.quote_ttl_secs),
            min_validity: Duration::from_secs(args.min_validity_secs),
            max_in_flight_per_sender: args.max_in_flight.max(1),
            max_concurrent_checks: args.max_concurrent_checks.max(1),
            low_balance: ether("--low-balance-eth", &args.low_balance_eth)?,
            ..RelayPolicy::default()
        },
        sender: SenderConfig {
            confirmations: args.confirmations.max(1),
            stuck_after: Duration::from_secs(args.stuck_after_secs),
            max_fee_cap: u128::from(args.max_fee_gwei) * 1_000_000_000,
            min_balance: ether("--min-balance-eth", &args.min_balance_eth)?,
            ..SenderConfig::default()
        },
        limits: ApiLimits {
            rate_per_second: args.rate_limit,
            burst: args.burst,
            timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
            ..ApiLimits::default()
        },
        poll_interval: Duration::from_millis(args.poll_ms.max(1)),
        follow_interval: Duration::from_millis(args.follow_ms.max(1)),
    };
    let relayer = Relayer::new(provider, db, deployment.clone(), keys, config).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .wrap_err_with(|| format!("cannot listen on {}", args.listen))?;
    // One line on stdout that scripts (and tests) read for the endpoint.
    println!(
        "smartmesh relayer: serving http://{} keys {} chain {} SignedAgent {} (agent overhead {} gas)",
        listener.local_addr()?,
        relayer
            .keys()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        deployment.chain_id,
        deployment.signed_agent,
        relayer.agent_overhead()
    );
    relayer
        .run(listener, smartmesh_http::shutdown_signal())
        .await?;
    Ok(())
}
