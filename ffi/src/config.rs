//! Where a wallet's stack is: the deployment and the services, as an app configures them.

use alloy::primitives::{Address, B256};
use smartmesh_mesh::MeshConfig;

use crate::MeshFfiError;

/// A wallet's deployment and services. Addresses are 0x hex; `watch_reward` is in SMT.
#[derive(Debug, Clone, uniffi::Record)]
pub struct WalletConfig {
    /// The chain.
    pub chain_id: u64,
    /// The SMT token.
    pub token: String,
    /// The SignedAgent relayed operations go through.
    pub signed_agent: String,
    /// The TokenNetwork.
    pub token_network: String,
    /// The ConditionRegistry.
    pub condition_registry: String,
    /// The block the contracts were deployed in.
    pub deploy_block: u64,
    /// A JSON-RPC endpoint, for when there is internet.
    pub rpc_url: Option<String>,
    /// The settlement watcher.
    pub watcher_url: Option<String>,
    /// The relayer.
    pub relayer_url: Option<String>,
    /// What the wallet's Watches pay the watcher for a successful dispute, in SMT.
    pub watch_reward: String,
    /// Seconds after which the chain's blocks are final (900 on a public chain, 0 on
    /// `smartmesh dev`'s).
    pub finality: u64,
}

/// Parses an address argument, naming it when it is not one.
pub(crate) fn address(field: &str, text: &str) -> Result<Address, MeshFfiError> {
    text.trim()
        .parse()
        .map_err(|_| MeshFfiError::invalid(format!("{field} {text:?} is not a 0x address")))
}

/// Parses a 32-byte id argument (a channel, a condition, a secret), naming it when it is not
/// one.
pub(crate) fn id(field: &str, text: &str) -> Result<B256, MeshFfiError> {
    text.trim()
        .parse()
        .map_err(|_| MeshFfiError::invalid(format!("{field} {text:?} is not 32 bytes of 0x hex")))
}

impl WalletConfig {
    pub(crate) fn to_mesh(&self) -> Result<MeshConfig, MeshFfiError> {
        Ok(MeshConfig {
            chain_id: self.chain_id,
            token: address("token", &self.token)?,
            signed_agent: address("signed_agent", &self.signed_agent)?,
            token_network: address("token_network", &self.token_network)?,
            condition_registry: address("condition_registry", &self.condition_registry)?,
            deploy_block: self.deploy_block,
            rpc_url: self.rpc_url.clone(),
            watcher_url: self.watcher_url.clone(),
            relayer_url: self.relayer_url.clone(),
            watch_reward: smartmesh_mesh::parse_smt("watch_reward", &self.watch_reward)?,
            finality: self.finality,
        })
    }
}
