//! What the service commands share: the chain and deployment they run on, the transaction
//! sender's flags, and the HTTP API's limits.

use std::{path::PathBuf, time::Duration};

use alloy::{primitives::utils::parse_ether, providers::DynProvider};
use eyre::{WrapErr, eyre};
use smartmesh_chain::{Database, Deployment, SenderConfig, connect};
use smartmesh_http::ApiLimits;

/// The chain and the contracts on it.
#[derive(Debug, clap::Args)]
pub(crate) struct ChainArgs {
    /// The JSON-RPC endpoint of the chain.
    #[arg(
        long,
        env = "SMARTMESH_RPC_URL",
        default_value = "http://127.0.0.1:8545"
    )]
    pub(crate) rpc_url: String,
    /// The deployment manifest; by default `<deployments-dir>/<chainId>.json`.
    #[arg(long, env = "SMARTMESH_DEPLOYMENT")]
    deployment: Option<PathBuf>,
    /// Where manifests are looked up by chain id.
    #[arg(long, env = "SMARTMESH_DEPLOYMENTS_DIR", default_value = "deployments")]
    deployments_dir: PathBuf,
}

impl ChainArgs {
    /// The provider and the deployment of its chain.
    pub(crate) async fn connect(&self) -> eyre::Result<(DynProvider, Deployment)> {
        let provider = connect(&self.rpc_url)?;
        let chain_id = alloy::providers::Provider::get_chain_id(&provider)
            .await
            .wrap_err_with(|| format!("cannot reach the chain at {}", self.rpc_url))?;
        let deployment = match &self.deployment {
            Some(path) => Deployment::read(path)?,
            None => Deployment::load(&self.deployments_dir, chain_id)?.ok_or_else(|| {
                eyre!(
                    "no deployment manifest for chain {chain_id} at {}: deploy first, or pass --deployment FILE",
                    Deployment::path(&self.deployments_dir, chain_id).display()
                )
            })?,
        };
        Ok((provider, deployment))
    }
}

/// The transaction sender's flags.
#[derive(Debug, clap::Args)]
pub(crate) struct SenderArgs {
    /// Blocks on top of a transaction before it is final (and, for the watcher, behind the
    /// head the indexer stays).
    #[arg(long, env = "SMARTMESH_CONFIRMATIONS", default_value_t = 2)]
    pub(crate) confirmations: u64,
    /// Seconds a broadcast transaction may wait unmined before it is replaced with higher fees.
    #[arg(long, env = "SMARTMESH_STUCK_AFTER_SECS", default_value_t = 30)]
    stuck_after_secs: u64,
    /// The highest max fee per gas paid, in gwei.
    #[arg(long, env = "SMARTMESH_MAX_FEE_GWEI", default_value_t = 500)]
    max_fee_gwei: u64,
    /// Below this ETH balance a key sends nothing new, and the service says so.
    #[arg(long, env = "SMARTMESH_MIN_BALANCE_ETH", default_value = "0.01")]
    min_balance_eth: String,
}

impl SenderArgs {
    pub(crate) fn config(&self) -> eyre::Result<SenderConfig> {
        Ok(SenderConfig {
            confirmations: self.confirmations.max(1),
            stuck_after: Duration::from_secs(self.stuck_after_secs),
            max_fee_cap: u128::from(self.max_fee_gwei) * 1_000_000_000,
            min_balance: ether("--min-balance-eth", &self.min_balance_eth)?,
            ..SenderConfig::default()
        })
    }
}

/// The HTTP API's limits.
#[derive(Debug, clap::Args)]
pub(crate) struct HttpArgs {
    /// Requests per second each client may make.
    #[arg(long, env = "SMARTMESH_RATE_LIMIT", default_value_t = 20)]
    rate_limit: u32,
    /// Requests a client may make at once.
    #[arg(long, env = "SMARTMESH_BURST", default_value_t = 40)]
    burst: u32,
    /// Seconds before a request is answered 503.
    #[arg(long, env = "SMARTMESH_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    request_timeout_secs: u64,
    /// Signatures each client may have checked per second (a receipt of a batch is one).
    #[arg(long, env = "SMARTMESH_WORK_PER_SECOND", default_value_t = 2_000)]
    work_per_second: u32,
    /// Signatures a client may have checked at once after a quiet spell.
    #[arg(long, env = "SMARTMESH_WORK_BURST", default_value_t = 20_000)]
    work_burst: u32,
    /// Seconds a client may take to send a request's headers before its connection is closed.
    #[arg(long, env = "SMARTMESH_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    header_timeout_secs: u64,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "SMARTMESH_MAX_CONNECTIONS", default_value_t = 1_024)]
    max_connections: usize,
}

impl HttpArgs {
    pub(crate) fn limits(&self, max_body: usize) -> ApiLimits {
        ApiLimits {
            rate_per_second: self.rate_limit,
            burst: self.burst,
            timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            max_body,
            work_per_second: self.work_per_second.max(1),
            work_burst: self.work_burst.max(1),
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
        }
    }
}

/// An amount of ETH given to `flag`.
pub(crate) fn ether(flag: &str, text: &str) -> eyre::Result<alloy::primitives::U256> {
    parse_ether(text).map_err(|_| eyre!("{flag} {text:?} is not an amount of ETH"))
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
