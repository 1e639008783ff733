//! `smartmesh settlement`: the watcher alone, configured by flags and environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use eyre::WrapErr;
use smartmesh_settlement::{EngineConfig, MAX_BODY_BYTES, Watcher, WatcherConfig};
use tokio::net::TcpListener;

use crate::{
    common::{ChainArgs, HttpArgs, SenderArgs, open_database},
    keys,
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    chain: ChainArgs,
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
    /// The address the HTTP API listens on (port 0: any free port, printed at start).
    #[arg(long, env = "SMARTMESH_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Milliseconds between the indexer's, the sender's and the engine's rounds.
    #[arg(long, env = "SMARTMESH_POLL_MS", default_value_t = 1_000)]
    poll_ms: u64,
    /// Seconds after a channel's hold period ends before the watcher settles it for its
    /// participants.
    #[arg(long, env = "SMARTMESH_SETTLE_GRACE_SECS", default_value_t = 600)]
    settle_grace_secs: u64,
    /// Seconds before a lock's deadline (`min(expiry, settleAt)`) at which the watcher
    /// registers a condition a phone handed it, if the lock is still pending.
    #[arg(long, env = "SMARTMESH_REGISTER_MARGIN_SECS", default_value_t = 3_600)]
    register_margin_secs: u64,
    /// The least fee, in SMT (decimal, e.g. 0.05), a phone's request to register a condition
    /// must pay the watcher.
    #[arg(long, env = "SMARTMESH_REGISTRATION_FEE", default_value = "0")]
    registration_fee: String,
    /// Seconds between checks of a close that needs nothing yet.
    #[arg(long, env = "SMARTMESH_RECHECK_SECS", default_value_t = 30)]
    recheck_secs: u64,
    /// Blocks beyond `--confirmations` the indexer may fall behind the chain before
    /// `/v1/health` answers 503.
    #[arg(long, env = "SMARTMESH_MAX_LAG_BLOCKS", default_value_t = 10)]
    max_lag_blocks: u64,
    #[command(flatten)]
    sender: SenderArgs,
    #[command(flatten)]
    http: HttpArgs,
}

pub(crate) async fn run(args: Args) -> eyre::Result<()> {
    let key = keys::load(args.key_file.as_deref(), "SMARTMESH_WATCHER_KEY")?;
    let (provider, deployment) = args.chain.connect().await?;
    let db = open_database(&args.database_url).await?;
    let poll = Duration::from_millis(args.poll_ms.max(1));
    let config = WatcherConfig {
        confirmations: args.sender.confirmations,
        max_range: 1_000,
        poll_interval: poll,
        engine: EngineConfig {
            recheck: Duration::from_secs(args.recheck_secs.max(1)),
            in_flight: 2 * poll,
            poll_interval: poll,
            settle_grace: Duration::from_secs(args.settle_grace_secs),
            register_margin: Duration::from_secs(args.register_margin_secs),
            ..EngineConfig::default()
        },
        registration_fee: alloy::primitives::utils::parse_ether(&args.registration_fee)
            .wrap_err_with(|| {
                format!(
                    "--registration-fee: {:?} is not an SMT amount",
                    args.registration_fee
                )
            })?,
        sender: args.sender.config()?,
        limits: args.http.limits(MAX_BODY_BYTES),
        max_lag_blocks: args.max_lag_blocks,
    };
    let watcher = Watcher::new(provider, db, deployment.clone(), key, config).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .wrap_err_with(|| format!("cannot listen on {}", args.listen))?;
    // One line on stdout that scripts (and tests) read for the endpoint.
    say!(
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
