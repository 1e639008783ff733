//! The simulated phones: each a real wallet ([`Mesh`]) with its own journal, on the virtual
//! clock, with an endpoint on the in-memory mesh; and how a dishonest one misbehaves.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use alloy::primitives::{Address, B256, U256};
use eyre::WrapErr;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use smartmesh_mesh::{MemoryTransport, Mesh, MeshConfig, MeshError, SessionOut, VirtualClock};
use smartmesh_protocol::{
    mediated::{ChannelGraph, MediationSettings},
    relay::DataFrame,
};

/// How a phone behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Conduct {
    /// Follows the protocol.
    Honest,
    /// Closes its channels claiming it paid nothing.
    StaleCloser,
    /// Drops the data packets it should relay.
    Dropper,
    /// Never acknowledges the data it receives.
    Silent,
}

/// One phone.
pub(crate) struct Phone {
    pub(crate) mesh: Mesh,
    pub(crate) transport: MemoryTransport,
    /// The channels and hints it knows.
    pub(crate) graph: ChannelGraph,
    pub(crate) conduct: Conduct,
    /// When it next has internet.
    pub(crate) next_online: u64,
    /// Its channels and their other ends.
    pub(crate) channels: Vec<(B256, usize)>,
}

/// The settings every phone runs with.
#[derive(Debug, Clone)]
pub(crate) struct PhoneSettings {
    pub(crate) config: MeshConfig,
    pub(crate) mediation: MediationSettings,
    pub(crate) fee: U256,
    pub(crate) data_price: u128,
}

/// Creates phone `index` in `dir` with a key drawn from `rng`.
pub(crate) async fn create(
    dir: &std::path::Path,
    index: usize,
    rng: &mut ChaCha8Rng,
    settings: &PhoneSettings,
    clock: &VirtualClock,
) -> eyre::Result<Mesh> {
    let dir = dir.join(format!("phone-{index:04}"));
    let _ = std::fs::remove_dir_all(&dir);
    let secret: [u8; 32] = rng.random();
    smartmesh_mesh::import_key(
        &dir.join(smartmesh_mesh::KEY_FILE),
        &alloy::hex::encode(secret),
    )
    .wrap_err_with(|| format!("phone {index}: a key"))?;
    let mesh = Mesh::open(&dir, settings.config.clone()).await?;
    mesh.set_clock(clock.clone());
    mesh.set_mediation(settings.mediation, settings.fee);
    mesh.set_data_price(settings.data_price);
    Ok(mesh)
}

/// Draws each phone's conduct: the given shares of stale closers, droppers and silent
/// recipients, the rest honest (at least one honest phone is left when there are any).
pub(crate) fn conducts(
    phones: usize,
    shares: [(Conduct, f64); 3],
    rng: &mut ChaCha8Rng,
) -> Vec<Conduct> {
    let mut conducts = vec![Conduct::Honest; phones];
    let mut order: Vec<usize> = (0..phones).collect();
    // Fisher-Yates from the seed: which phones misbehave.
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut next = order.into_iter();
    for (conduct, share) in shares {
        let count = (share.clamp(0.0, 1.0) * phones as f64).round() as usize;
        for index in next.by_ref().take(count) {
            conducts[index] = conduct;
        }
    }
    conducts
}

/// Filters what a phone hands over by its conduct: a dropper relays no packet of sessions it
/// does not send; a silent recipient acknowledges nothing.
pub(crate) fn misbehave(
    conduct: Conduct,
    me: Address,
    senders: &BTreeMap<B256, Address>,
    out: &mut SessionOut,
) {
    out.frames.retain(|(_, frame)| match (conduct, frame) {
        (Conduct::Dropper, DataFrame::Packet { session, .. }) => senders.get(session) == Some(&me),
        (Conduct::Silent, DataFrame::Ack(_)) => false,
        _ => true,
    });
}

/// Whether a failure means the wallet itself is broken (then the simulation stops).
pub(crate) fn fatal(error: &MeshError) -> bool {
    matches!(
        error,
        MeshError::Journal(_) | MeshError::Migration(_) | MeshError::Stored(_)
    )
}

/// The phones within `hops` channels of each phone, from the channel list.
pub(crate) fn within_hops(
    phones: usize,
    channels: &[(usize, usize)],
    hops: usize,
) -> Vec<BTreeMap<usize, usize>> {
    let mut neighbours = vec![BTreeSet::new(); phones];
    for (a, b) in channels {
        neighbours[*a].insert(*b);
        neighbours[*b].insert(*a);
    }
    (0..phones)
        .map(|start| {
            let mut distance = BTreeMap::from([(start, 0)]);
            let mut queue = VecDeque::from([start]);
            while let Some(node) = queue.pop_front() {
                let d = distance[&node];
                if d == hops {
                    continue;
                }
                for next in &neighbours[node] {
                    if !distance.contains_key(next) {
                        distance.insert(*next, d + 1);
                        queue.push_back(*next);
                    }
                }
            }
            distance.remove(&start);
            distance
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn conducts_follow_the_shares() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let drawn = conducts(
            200,
            [
                (Conduct::StaleCloser, 0.05),
                (Conduct::Dropper, 0.1),
                (Conduct::Silent, 0.0),
            ],
            &mut rng,
        );
        let count = |c| drawn.iter().filter(|d| **d == c).count();
        assert_eq!(
            (
                count(Conduct::StaleCloser),
                count(Conduct::Dropper),
                count(Conduct::Silent)
            ),
            (10, 20, 0)
        );
        assert_eq!(count(Conduct::Honest), 170);
    }

    #[test]
    fn hops_are_counted_along_channels() {
        // 0-1-2-3-4 and 1-5
        let distances = within_hops(6, &[(0, 1), (1, 2), (2, 3), (3, 4), (1, 5)], 3);
        assert_eq!(
            distances[0],
            BTreeMap::from([(1, 1), (2, 2), (5, 2), (3, 3)])
        );
    }
}
