//! How phones reach each other (DESIGN.md 4.3): one interface, [`Transport`], over which a
//! wallet hands its channel messages to a peer named by its wallet address. This module has
//! the in-memory implementation that tests and the simulator use ([`MemoryNet`]: links that
//! come and go); the file/QR/text hand-off is [`crate::FileTransport`], and the peer-to-peer
//! one [`crate::P2pTransport`]. Messages for a peer that is not reachable wait in the wallet's
//! persistent outbox ([`crate::Mesh::queue`]) and go out, in order, at the next meeting
//! ([`crate::Mesh::flush`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};

use alloy::primitives::Address;
use tokio::sync::mpsc;

/// Why a message did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No link to the peer now: the message waits for the next meeting.
    #[error("{0} is not reachable now")]
    Unreachable(Address),
    /// The transport is shut down.
    #[error("the transport is closed")]
    Closed,
}

/// A way to hand bytes to a peer now, and to take what peers hand this node.
pub trait Transport: Send + Sync {
    /// This node's address.
    fn local(&self) -> Address;
    /// Hands `bytes` to `peer` if a link is up now.
    fn send(
        &self,
        peer: Address,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// The peers a message can reach now.
    fn reachable(&self) -> Vec<Address>;
    /// The next message a peer handed this node, with its sender; `None` once closed.
    fn recv(&self) -> impl Future<Output = Option<(Address, Vec<u8>)>> + Send;
}

/// A message as a transport hands it over: its sender and its bytes.
type Incoming = (Address, Vec<u8>);

#[derive(Default)]
struct Net {
    inboxes: BTreeMap<Address, mpsc::UnboundedSender<Incoming>>,
    links: BTreeSet<(Address, Address)>,
    /// Every message handed over, for the figures: (from, to, bytes).
    delivered: Vec<(Address, Address, usize)>,
}

/// An in-memory mesh: endpoints, and links between them that tests bring up and down.
#[derive(Clone, Default)]
pub struct MemoryNet {
    net: Arc<Mutex<Net>>,
}

impl std::fmt::Debug for MemoryNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNet").finish_non_exhaustive()
    }
}

fn pair(a: Address, b: Address) -> (Address, Address) {
    (a.min(b), a.max(b))
}

impl MemoryNet {
    /// An empty mesh.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Net> {
        self.net.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The endpoint of `address` on this mesh.
    pub fn endpoint(&self, address: Address) -> MemoryTransport {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.lock().inboxes.insert(address, sender);
        MemoryTransport {
            net: self.clone(),
            local: address,
            inbox: Arc::new(tokio::sync::Mutex::new(receiver)),
        }
    }

    /// Brings the link between `a` and `b` up or down.
    pub fn link(&self, a: Address, b: Address, up: bool) {
        let mut net = self.lock();
        if up {
            net.links.insert(pair(a, b));
        } else {
            net.links.remove(&pair(a, b));
        }
    }

    /// Messages handed over so far and their bytes in all.
    pub fn traffic(&self) -> (usize, usize) {
        let net = self.lock();
        (
            net.delivered.len(),
            net.delivered.iter().map(|(_, _, bytes)| bytes).sum(),
        )
    }
}

/// One node's endpoint on a [`MemoryNet`].
#[derive(Clone)]
pub struct MemoryTransport {
    net: MemoryNet,
    local: Address,
    inbox: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Incoming>>>,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl MemoryTransport {
    /// The next message waiting, if one is (never waits).
    pub fn try_recv(&self) -> Option<(Address, Vec<u8>)> {
        self.inbox.try_lock().ok()?.try_recv().ok()
    }
}

impl Transport for MemoryTransport {
    fn local(&self) -> Address {
        self.local
    }

    async fn send(&self, peer: Address, bytes: Vec<u8>) -> Result<(), TransportError> {
        let mut net = self.net.lock();
        if !net.links.contains(&pair(self.local, peer)) {
            return Err(TransportError::Unreachable(peer));
        }
        let inbox = net
            .inboxes
            .get(&peer)
            .ok_or(TransportError::Unreachable(peer))?;
        let len = bytes.len();
        inbox
            .send((self.local, bytes))
            .map_err(|_| TransportError::Unreachable(peer))?;
        net.delivered.push((self.local, peer, len));
        Ok(())
    }

    fn reachable(&self) -> Vec<Address> {
        let net = self.net.lock();
        net.links
            .iter()
            .filter_map(|(a, b)| {
                if *a == self.local {
                    Some(*b)
                } else if *b == self.local {
                    Some(*a)
                } else {
                    None
                }
            })
            .collect()
    }

    async fn recv(&self) -> Option<(Address, Vec<u8>)> {
        self.inbox.lock().await.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_crosses_only_an_up_link() {
        let net = MemoryNet::new();
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let (ta, tb) = (net.endpoint(a), net.endpoint(b));
        assert_eq!(
            ta.send(b, vec![1]).await,
            Err(TransportError::Unreachable(b))
        );
        net.link(a, b, true);
        assert_eq!(ta.reachable(), vec![b]);
        ta.send(b, vec![1, 2]).await.unwrap();
        assert_eq!(tb.recv().await, Some((a, vec![1, 2])));
        assert_eq!(net.traffic(), (1, 2));
        net.link(b, a, false);
        assert!(tb.reachable().is_empty());
    }
}
