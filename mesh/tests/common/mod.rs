//! What the phone crate's tests share: a wallet configuration with no network at all,
//! channels tracked in two wallets, and wallets on a line over the in-memory transport.

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

/// Wallets in fresh directories, a channel between each two neighbours, and an in-memory
/// mesh with those links up; the directories go when it is dropped.
pub(crate) struct Line {
    pub(crate) wallets: Vec<smartmesh_mesh::Mesh>,
    pub(crate) transports: Vec<smartmesh_mesh::MemoryTransport>,
    pub(crate) net: smartmesh_mesh::MemoryNet,
    pub(crate) dirs: Vec<std::path::PathBuf>,
}

impl Drop for Line {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The wallets `names` of test `test` on a line, `deposit` each way in each channel (channel
/// `n` between wallets `n` and `n + 1` is `keccak256([n])`).
pub(crate) async fn line_of(test: &str, names: &[&str], deposit: U256) -> eyre::Result<Line> {
    let (mut wallets, mut dirs) = (Vec::new(), Vec::new());
    for name in names {
        let dir =
            std::env::temp_dir().join(format!("smartmesh-{test}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        smartmesh_mesh::create_key(&dir.join(smartmesh_mesh::KEY_FILE))?;
        wallets.push(smartmesh_mesh::Mesh::open(&dir, config()).await?);
        dirs.push(dir);
    }
    for n in 0..wallets.len().saturating_sub(1) {
        let id = alloy::primitives::keccak256([n as u8]);
        open_between(&wallets[n], &wallets[n + 1], id, deposit).await?;
    }
    let net = smartmesh_mesh::MemoryNet::new();
    let transports = wallets.iter().map(|w| net.endpoint(w.address())).collect();
    for pair in wallets.windows(2) {
        net.link(pair[0].address(), pair[1].address(), true);
    }
    Ok(Line {
        wallets,
        transports,
        net,
        dirs,
    })
}
