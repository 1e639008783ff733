//! What the phone crate's tests share: a wallet configuration with no network at all, and
//! channels tracked in two wallets.

// Each test binary uses a different part of it.
#![allow(dead_code)]

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

/// Tracks channel `id` between `a` and `b` in both wallets as open, each side holding
/// `deposit`, seen open now.
pub(crate) async fn open_between(
    a: &smartmesh_mesh::Mesh,
    b: &smartmesh_mesh::Mesh,
    id: alloy::primitives::B256,
    deposit: U256,
) -> Result<(), smartmesh_mesh::MeshError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    for (me, partner) in [(a, b), (b, a)] {
        me.track(&smartmesh_mesh::Channel {
            id,
            partner: partner.address(),
            state: smartmesh_protocol::channel::Phase::Open,
            settle_timeout: 86_400,
            my_deposit: deposit,
            my_withdrawn: U256::ZERO,
            partner_deposit: deposit,
            partner_withdrawn: U256::ZERO,
            frozen: None,
            open_seen_at: now,
        })
        .await?;
    }
    Ok(())
}
