//! `smartmesh relayer`: the relayer alone, configured by flags and environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use eyre::{WrapErr, eyre};
use smartmesh_relayer::{ApiLimits, RateSource, RelayPolicy, Relayer, RelayerConfig};
use tokio::net::TcpListener;

use crate::{
    common::{ChainArgs, HttpArgs, SenderArgs, ether, open_database},
    keys,
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    chain: ChainArgs,
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
    /// The address the HTTP API listens on (port 0: any free port, printed at start).
    #[arg(
        long,
        env = "SMARTMESH_RELAYER_LISTEN",
        default_value = "127.0.0.1:7071"
    )]
    listen: SocketAddr,
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
    /// Below this ETH balance a key takes only a few waiting requests.
    #[arg(long, env = "SMARTMESH_LOW_BALANCE_ETH", default_value = "0.1")]
    low_balance_eth: String,
    #[command(flatten)]
    sender: SenderArgs,
    #[command(flatten)]
    http: HttpArgs,
}

pub(crate) async fn run(args: Args) -> eyre::Result<()> {
    let keys = keys::load_many(&args.key_files, "SMARTMESH_RELAYER_KEYS")?;
    let (provider, deployment) = args.chain.connect().await?;
    let db = open_database(&args.database_url).await?;
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
        sender: args.sender.config()?,
        limits: args.http.limits(ApiLimits::default().max_body),
        poll_interval: Duration::from_millis(args.poll_ms.max(1)),
        follow_interval: Duration::from_millis(args.follow_ms.max(1)),
    };
    let relayer = Relayer::new(provider, db, deployment.clone(), keys, config).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .wrap_err_with(|| format!("cannot listen on {}", args.listen))?;
    // One line on stdout that scripts (and tests) read for the endpoint.
    say!(
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
