//! What the phone crate's tests share: a wallet configuration with no network at all.

use alloy::primitives::{Address, U256};
use smartmesh_mesh::MeshConfig;

/// A wallet of chain 31337 with made-up contracts and no service to reach.
pub(crate) fn config() -> MeshConfig {
    MeshConfig {
        chain_id: 31_337,
        token: Address::repeat_byte(0x11),
        signed_agent: Address::repeat_byte(0x22),
        token_network: Address::repeat_byte(0x33),
        condition_registry: Address::repeat_byte(0x44),
        deploy_block: 0,
        rpc_url: None,
        watcher_url: None,
        relayer_url: None,
        watch_reward: U256::ZERO,
        finality: 0,
    }
}
