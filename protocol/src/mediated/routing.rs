//! The local channel graph a phone routes on (DESIGN.md 4.1): the channels it knows of (from
//! the chain or the watcher when online), and the capacity and fee hints its neighbours sign
//! and gossip, each good for a short time. The initiator picks the cheapest route that every
//! hop's hint says can carry the amount, at most `max_hops` channels long, and sees the total
//! fee before it pays.

use std::collections::{BTreeMap, BTreeSet};

use alloy::{
    primitives::{Address, B256, U256},
    sol_types::{Eip712Domain, SolStruct, eip712_domain},
};

use super::metadata::Hop;
use crate::{ProtocolError, Signature65, recover_key};

alloy::sol! {
    /// What `node` can send toward `partner` in their channel, and the fee it asks to
    /// forward, until `expiresAt`.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct CapacityHint {
        address node;
        address partner;
        bytes32 channelId;
        uint256 capacity;
        uint256 fee;
        uint64 expiresAt;
    }
}

/// The EIP-712 domain of hints on `chain_id`'s `token_network`.
pub fn hint_domain(chain_id: u64, token_network: alloy::primitives::Address) -> Eip712Domain {
    eip712_domain! {
        name: "SmartMesh Routing",
        version: "1",
        chain_id: chain_id,
        verifying_contract: token_network,
    }
}

/// The longest a hint may be good for: gossip goes stale fast in a mesh.
pub const MAX_HINT_TTL: u64 = 600;

/// A route the initiator can pay along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The mediators in order, each with the fee it asks.
    pub mediators: Vec<Hop>,
    /// The target.
    pub target: Address,
    /// The fees in all: what the payment costs beyond its amount.
    pub total_fee: U256,
}

/// The channels and hints a phone knows.
#[derive(Debug, Clone, Default)]
pub struct ChannelGraph {
    channels: BTreeMap<B256, (Address, Address)>,
    /// (node, partner) -> (capacity, fee, expires at).
    hints: BTreeMap<(Address, Address), (U256, U256, u64)>,
    /// Public keys recovered from hints: what a payer seals a secret to.
    keys: BTreeMap<Address, [u8; 33]>,
    /// Channels not known from the chain, hinted by one end so far: (node, partner, until).
    vouched: BTreeMap<B256, (Address, Address, u64)>,
}

impl ChannelGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// A channel seen on chain.
    pub fn add_channel(&mut self, channel_id: B256, a: Address, b: Address) {
        self.channels.insert(channel_id, (a, b));
    }

    /// Adds the channels `other` knows (its hints are not taken: they are checked one by one).
    pub fn merge_channels(&mut self, other: &ChannelGraph) {
        for (id, (a, b)) in &other.channels {
            self.channels.insert(*id, (*a, *b));
        }
    }

    /// A channel gone (closed or settled).
    pub fn remove_channel(&mut self, channel_id: B256) {
        if let Some((a, b)) = self.channels.remove(&channel_id) {
            self.hints.remove(&(a, b));
            self.hints.remove(&(b, a));
        }
    }

    /// Takes a signed hint: signed by its node, not expired, good for at most
    /// [`MAX_HINT_TTL`], for a channel between node and partner that is known, or that the
    /// partner hinted too; a newer hint replaces an older one.
    pub fn add_hint(
        &mut self,
        hint: &CapacityHint,
        signature: &Signature65,
        domain: &Eip712Domain,
        now: u64,
    ) -> Result<(), ProtocolError> {
        let (signer, key) = recover_key(&hint.eip712_signing_hash(domain), signature)?;
        if signer != hint.node {
            return Err(ProtocolError::WrongSigner {
                expected: hint.node,
                actual: signer,
            });
        }
        if hint.expiresAt <= now || hint.expiresAt > now.saturating_add(MAX_HINT_TTL) {
            return Err(ProtocolError::HintExpiry {
                expires_at: hint.expiresAt,
                now,
            });
        }
        let known = self.channels.get(&hint.channelId).is_some_and(|(a, b)| {
            (*a, *b) == (hint.node, hint.partner) || (*b, *a) == (hint.node, hint.partner)
        });
        if !known {
            // Offline, a channel the chain was not read for is taken once both its ends
            // signed hints naming it: each vouches for the other. A made-up channel between
            // two colluders only makes a route through them fail, and the payer's lock
            // expire back to it, as any stalling mediator would.
            let vouched =
                self.vouched
                    .get(&hint.channelId)
                    .is_some_and(|(node, partner, expires)| {
                        (*node, *partner) == (hint.partner, hint.node) && *expires > now
                    });
            if !vouched {
                self.vouched
                    .insert(hint.channelId, (hint.node, hint.partner, hint.expiresAt));
                return Err(ProtocolError::UnknownHintChannel(hint.channelId));
            }
            self.vouched.remove(&hint.channelId);
            self.channels
                .insert(hint.channelId, (hint.node, hint.partner));
        }
        self.keys.insert(signer, key);
        let pair = (hint.node, hint.partner);
        let newer = self
            .hints
            .get(&pair)
            .is_none_or(|(_, _, expires)| hint.expiresAt >= *expires);
        if newer {
            self.hints
                .insert(pair, (hint.capacity, hint.fee, hint.expiresAt));
        }
        Ok(())
    }

    /// The public key of `node`, as recovered from a hint it signed.
    pub fn key_of(&self, node: Address) -> Option<[u8; 33]> {
        self.keys.get(&node).copied()
    }

    /// Whether the graph knows the channel.
    pub fn has_channel(&self, channel_id: B256) -> bool {
        self.channels.contains_key(&channel_id)
    }

    /// The cheapest route from `from` to `to` for `amount`, at most `max_hops` channels: the
    /// first hop is `from`'s own channel (its capacity is `from`'s to check), every later hop
    /// needs a live hint of its sender showing the capacity for what it forwards. Ties go to
    /// the shorter route.
    pub fn route(
        &self,
        from: Address,
        to: Address,
        amount: U256,
        max_hops: usize,
        now: u64,
    ) -> Option<Route> {
        let mut best: Option<Route> = None;
        let mut path = vec![from];
        self.search(&mut path, to, amount, max_hops, now, &mut best);
        best
    }

    fn neighbours(&self, node: Address) -> BTreeSet<Address> {
        self.channels
            .values()
            .filter_map(|(a, b)| {
                if *a == node {
                    Some(*b)
                } else if *b == node {
                    Some(*a)
                } else {
                    None
                }
            })
            .collect()
    }

    fn search(
        &self,
        path: &mut Vec<Address>,
        to: Address,
        amount: U256,
        max_hops: usize,
        now: u64,
        best: &mut Option<Route>,
    ) {
        let last = *path.last().expect("the path starts at the payer");
        if last == to {
            if let Some(route) = self.price(path, amount, now)
                && best.as_ref().is_none_or(|b| {
                    (route.total_fee, route.mediators.len()) < (b.total_fee, b.mediators.len())
                })
            {
                *best = Some(route);
            }
            return;
        }
        if path.len() > max_hops {
            return;
        }
        for next in self.neighbours(last) {
            if path.contains(&next) {
                continue;
            }
            path.push(next);
            self.search(path, to, amount, max_hops, now, best);
            path.pop();
        }
    }

    /// The fees along `path` and whether every mediator's hint carries what it forwards.
    fn price(&self, path: &[Address], amount: U256, now: u64) -> Option<Route> {
        let mediators = &path[1..path.len() - 1];
        let mut hops = Vec::with_capacity(mediators.len());
        // What each mediator forwards, from the target back: the amount, then plus each later fee.
        let mut forwarded = amount;
        for (index, node) in mediators.iter().enumerate().rev() {
            let next = path[index + 2];
            let (capacity, fee, expires) = *self.hints.get(&(*node, next))?;
            if expires <= now || capacity < forwarded {
                return None;
            }
            hops.push(Hop { node: *node, fee });
            forwarded = forwarded.checked_add(fee)?;
        }
        hops.reverse();
        Some(Route {
            total_fee: forwarded - amount,
            mediators: hops,
            target: *path.last().expect("a path ends at the target"),
        })
    }
}

#[cfg(test)]
mod tests {
    use alloy::signers::local::PrivateKeySigner;

    use super::*;
    use crate::sign_typed;

    const NOW: u64 = 1_000;

    fn key(byte: u8) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(byte)).unwrap()
    }

    fn domain() -> Eip712Domain {
        hint_domain(31337, Address::repeat_byte(0x4e))
    }

    fn hint(
        graph: &mut ChannelGraph,
        node: &PrivateKeySigner,
        partner: Address,
        capacity: u64,
        fee: u64,
    ) -> Result<(), ProtocolError> {
        let channel_id = *graph
            .channels
            .iter()
            .find(|(_, (a, b))| {
                (*a, *b) == (node.address(), partner) || (*b, *a) == (node.address(), partner)
            })
            .map(|(id, _)| id)
            .unwrap();
        let hint = CapacityHint {
            node: node.address(),
            partner,
            channelId: channel_id,
            capacity: U256::from(capacity),
            fee: U256::from(fee),
            expiresAt: NOW + 60,
        };
        let signature = sign_typed(node, &hint, &domain());
        graph.add_hint(&hint, &signature, &domain(), NOW)
    }

    /// Alice - Brandon - Carol and Alice - Dana - Erin - Carol.
    fn mesh() -> (ChannelGraph, Vec<PrivateKeySigner>) {
        let keys: Vec<PrivateKeySigner> = (1..=5).map(key).collect();
        let [a, b, c, d, e] = [0, 1, 2, 3, 4].map(|n| keys[n].address());
        let mut graph = ChannelGraph::new();
        for (n, (x, y)) in [(a, b), (b, c), (a, d), (d, e), (e, c)]
            .into_iter()
            .enumerate()
        {
            graph.add_channel(B256::repeat_byte(n as u8 + 1), x, y);
        }
        (graph, keys)
    }

    #[test]
    fn the_cheapest_route_with_capacity_is_chosen_and_its_fee_shown() {
        let (mut graph, keys) = mesh();
        let addr = |n: usize| keys[n].address();
        // Brandon asks 5; Dana 1 and Erin 1: the longer route is cheaper.
        hint(&mut graph, &keys[1], addr(2), 100, 5).unwrap();
        hint(&mut graph, &keys[3], addr(4), 100, 1).unwrap();
        hint(&mut graph, &keys[4], addr(2), 10, 1).unwrap();
        let route = graph
            .route(addr(0), addr(2), U256::from(10), 3, NOW)
            .unwrap();
        assert_eq!(
            route.mediators.iter().map(|h| h.node).collect::<Vec<_>>(),
            vec![addr(3), addr(4)]
        );
        assert_eq!(route.total_fee, U256::from(2));
        // At most two hops: only through Brandon.
        let short = graph
            .route(addr(0), addr(2), U256::from(10), 2, NOW)
            .unwrap();
        assert_eq!(
            short.mediators,
            vec![Hop {
                node: addr(1),
                fee: U256::from(5)
            }]
        );
        // Erin can carry 10 but not 11: then only Brandon's route, at its price; 101 none.
        let more = graph
            .route(addr(0), addr(2), U256::from(11), 3, NOW)
            .unwrap();
        assert_eq!(more.total_fee, U256::from(5));
        assert!(
            graph
                .route(addr(0), addr(2), U256::from(101), 3, NOW)
                .is_none()
        );
        // Once the hints are stale, no route is known.
        assert!(
            graph
                .route(addr(0), addr(2), U256::from(10), 3, NOW + 61)
                .is_none()
        );
        // A direct channel needs no mediator and no hint.
        let direct = graph
            .route(addr(0), addr(1), U256::from(10), 3, NOW)
            .unwrap();
        assert!(direct.mediators.is_empty() && direct.total_fee.is_zero());
        // The key a payer seals to is the one that signed the hint; none for a silent node.
        let erin: [u8; 32] = keys[4].credential().to_bytes().into();
        assert_eq!(
            graph.key_of(addr(4)),
            Some(crate::mediated::public_key(&erin).unwrap())
        );
        assert_eq!(graph.key_of(addr(0)), None);
    }

    #[test]
    fn a_hint_must_be_signed_by_its_node_for_a_known_channel_and_fresh() {
        let (mut graph, keys) = mesh();
        let (b, c) = (keys[1].address(), keys[2].address());
        let mut forged = CapacityHint {
            node: b,
            partner: c,
            channelId: B256::repeat_byte(2),
            capacity: U256::from(1),
            fee: U256::ZERO,
            expiresAt: NOW + 60,
        };
        let by_carol = sign_typed(&keys[2], &forged, &domain());
        assert!(matches!(
            graph.add_hint(&forged, &by_carol, &domain(), NOW),
            Err(ProtocolError::WrongSigner { .. })
        ));
        forged.channelId = B256::repeat_byte(9);
        let signed = sign_typed(&keys[1], &forged, &domain());
        assert_eq!(
            graph.add_hint(&forged, &signed, &domain(), NOW),
            Err(ProtocolError::UnknownHintChannel(B256::repeat_byte(9)))
        );
        forged.channelId = B256::repeat_byte(2);
        forged.expiresAt = NOW + MAX_HINT_TTL + 1;
        let signed = sign_typed(&keys[1], &forged, &domain());
        assert!(matches!(
            graph.add_hint(&forged, &signed, &domain(), NOW),
            Err(ProtocolError::HintExpiry { .. })
        ));
        // A channel the chain was not read for counts once both its ends hinted it.
        let mut offline = CapacityHint {
            node: b,
            partner: c,
            channelId: B256::repeat_byte(9),
            capacity: U256::from(50),
            fee: U256::from(1),
            expiresAt: NOW + 60,
        };
        let by_brandon = sign_typed(&keys[1], &offline, &domain());
        assert_eq!(
            graph.add_hint(&offline, &by_brandon, &domain(), NOW),
            Err(ProtocolError::UnknownHintChannel(B256::repeat_byte(9))),
            "one end alone does not make a channel"
        );
        assert!(!graph.has_channel(B256::repeat_byte(9)));
        (offline.node, offline.partner) = (c, b);
        let by_carol = sign_typed(&keys[2], &offline, &domain());
        graph.add_hint(&offline, &by_carol, &domain(), NOW).unwrap();
        assert!(graph.has_channel(B256::repeat_byte(9)));
        graph.remove_channel(B256::repeat_byte(9));
        graph.remove_channel(B256::repeat_byte(2));
        assert!(
            graph
                .route(keys[0].address(), c, U256::from(1), 3, NOW)
                .is_none(),
            "Brandon's channel to Carol is gone, and nobody else hinted"
        );
    }
}
