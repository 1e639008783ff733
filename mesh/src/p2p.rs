//! The peer-to-peer transport (DESIGN.md 4.3), on rust-libp2p: TCP, Noise and yamux; mDNS to
//! meet phones on the local link; request-response for channel messages (a message counts as
//! handed over once the peer's node acknowledged it, else it waits in the outbox); gossipsub
//! for capacity hints; ping, so a link that went away is noticed within seconds.
//!
//! A node's libp2p identity is its wallet's secp256k1 key itself. Noise's handshake has each
//! side sign its session key with that identity key, so the peer at the other end of a
//! connection holds the key of the Ethereum address derived from its identity: the address is
//! bound to the connection by that signature, and no peer can speak for an address it has not
//! the key of. A peer whose identity is not a secp256k1 key has no address and is refused.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use alloy::primitives::{Address, keccak256};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, gossipsub, identity, mdns, noise, ping,
    request_response::{self, OutboundRequestId, ProtocolSupport},
    swarm::{
        ConnectionId, DialError, NetworkBehaviour, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
    tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    MeshError,
    transport::{Transport, TransportError},
};

/// The channel-message protocol.
const MESSAGES: StreamProtocol = StreamProtocol::new("/smartmesh/messages/1");
/// The gossip topic of capacity hints.
const HINTS: &str = "smartmesh/hints/1";
/// No channel message comes near this (a `LockedTransfer` is at most 511 bytes).
const MAX_MESSAGE: u64 = 4096;
/// How often a peer given by its address or found by mDNS, and not connected, is dialed
/// again. mDNS tells of a peer once until its record expires (minutes), and an address was
/// dialed once: a first dial that failed (the peer not up yet, a handshake timed out under
/// load, a link down for a moment) would otherwise leave the two apart.
const REDIAL: Duration = Duration::from_secs(3);

/// Where a node listens and whom it looks for.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/0`.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start, and again whenever the peer there is not connected.
    pub dial: Vec<Multiaddr>,
    /// Look for peers on the local link with mDNS.
    pub mdns: bool,
    /// How long a peer has to acknowledge a message before it counts as unreachable.
    pub request_timeout: Duration,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/0".parse().expect("a valid multiaddr")],
            dial: Vec::new(),
            mdns: true,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What happened on the transport, besides messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum P2pEvent {
    /// A link to this peer came up: what waits for it can go.
    Met(Address),
    /// The last link to this peer went down.
    Left(Address),
    /// A gossiped capacity hint, as its publisher signed it.
    Hint(Vec<u8>),
    /// The node listens here now.
    Listening(Multiaddr),
}

enum Command {
    Send {
        peer: PeerId,
        bytes: Vec<u8>,
        done: oneshot::Sender<Result<(), TransportError>>,
    },
    Publish(Vec<u8>),
    Dial(Multiaddr),
}

/// A node's endpoint on the peer-to-peer mesh. Dropping it stops the node's network task.
pub struct P2pTransport {
    local: Address,
    peer_id: PeerId,
    commands: mpsc::UnboundedSender<Command>,
    peers: Arc<Mutex<BTreeMap<Address, PeerId>>>,
    inbox: tokio::sync::Mutex<mpsc::UnboundedReceiver<(Address, Vec<u8>)>>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<P2pEvent>>,
    task: tokio::task::JoinHandle<()>,
    /// Messages handed over and acknowledged, and their bytes, for the figures.
    sent: (AtomicUsize, AtomicUsize),
}

impl std::fmt::Debug for P2pTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2pTransport")
            .field("local", &self.local)
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl Drop for P2pTransport {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Ethereum address of a libp2p peer whose identity is a secp256k1 key.
pub fn address_of(peer: &PeerId) -> Option<Address> {
    // A key this short is inlined in the peer id: the identity multihash (code 0, then the
    // length, then the protobuf-encoded key).
    let bytes = peer.to_bytes();
    let (&[0, len], key) = (bytes.split_first_chunk::<2>()?.0, &bytes[2..]) else {
        return None;
    };
    if usize::from(len) != key.len() {
        return None;
    }
    let key = identity::PublicKey::try_decode_protobuf(key)
        .ok()?
        .try_into_secp256k1()
        .ok()?;
    Some(Address::from_slice(
        &keccak256(&key.to_bytes_uncompressed()[1..])[12..],
    ))
}

/// The libp2p identity of the wallet key `secret`.
pub fn identity_of(secret: &[u8; 32]) -> Result<identity::Keypair, MeshError> {
    let secret = identity::secp256k1::SecretKey::try_from_bytes(*secret)
        .map_err(|e| MeshError::Network(format!("wallet key as a libp2p identity: {e}")))?;
    Ok(identity::secp256k1::Keypair::from(secret).into())
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    messages: request_response::Behaviour<RawCodec>,
    hints: gossipsub::Behaviour,
    mdns: libp2p::swarm::behaviour::toggle::Toggle<mdns::tokio::Behaviour>,
    ping: ping::Behaviour,
}

impl P2pTransport {
    /// Starts the node of the wallet key `secret`.
    pub async fn start(secret: &[u8; 32], config: P2pConfig) -> Result<Self, MeshError> {
        let keypair = identity_of(secret)?;
        let peer_id = keypair.public().to_peer_id();
        let local = address_of(&peer_id).expect("a secp256k1 identity has an address");
        let network = |e: &dyn std::fmt::Display| MeshError::Network(format!("p2p: {e}"));
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| network(&e))?
            .with_behaviour(|key| {
                let gossip = gossipsub::ConfigBuilder::default()
                    .heartbeat_interval(Duration::from_secs(1))
                    .max_transmit_size(MAX_MESSAGE as usize)
                    .build()
                    .map_err(|e| io::Error::other(e.to_string()))?;
                let mdns = if config.mdns {
                    Some(mdns::tokio::Behaviour::new(
                        mdns::Config {
                            query_interval: Duration::from_secs(5),
                            ..mdns::Config::default()
                        },
                        key.public().to_peer_id(),
                    )?)
                } else {
                    None
                };
                Ok(Behaviour {
                    messages: request_response::Behaviour::new(
                        [(MESSAGES, ProtocolSupport::Full)],
                        request_response::Config::default()
                            .with_request_timeout(config.request_timeout),
                    ),
                    hints: gossipsub::Behaviour::new(
                        gossipsub::MessageAuthenticity::Signed(key.clone()),
                        gossip,
                    )
                    .map_err(io::Error::other)?,
                    mdns: mdns.into(),
                    ping: ping::Behaviour::new(
                        ping::Config::new()
                            .with_interval(Duration::from_secs(2))
                            .with_timeout(Duration::from_secs(4)),
                    ),
                })
            })
            .map_err(|e| network(&e))?
            // Phones meet for minutes: keep a link while both are there.
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build();
        swarm
            .behaviour_mut()
            .hints
            .subscribe(&gossipsub::IdentTopic::new(HINTS))
            .map_err(|e| network(&e))?;
        for address in &config.listen {
            swarm
                .listen_on(address.clone())
                .map_err(|e| network(&format!("listen on {address}: {e}")))?;
        }
        let mut known = Vec::with_capacity(config.dial.len());
        for address in &config.dial {
            let mut peer = Known::new(address.clone());
            peer.dial(&mut swarm)
                .map_err(|e| network(&format!("dial {address}: {e}")))?;
            known.push(peer);
        }
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let peers = Arc::new(Mutex::new(BTreeMap::new()));
        let node = SwarmTask {
            swarm,
            peers: peers.clone(),
            inbox: inbox_tx,
            events: event_tx,
            pending: HashMap::new(),
            known,
        };
        let task = tokio::spawn(node.run(command_rx));
        Ok(Self {
            local,
            peer_id,
            commands,
            peers,
            inbox: tokio::sync::Mutex::new(inbox),
            events: tokio::sync::Mutex::new(events),
            task,
            sent: (AtomicUsize::new(0), AtomicUsize::new(0)),
        })
    }

    /// This node's libp2p peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Dials `address` (a peer met another way than mDNS), and again whenever the peer there
    /// is not connected.
    pub fn dial(&self, address: Multiaddr) -> Result<(), TransportError> {
        self.commands
            .send(Command::Dial(address))
            .map_err(|_| TransportError::Closed)
    }

    /// Gossips a signed capacity hint to the mesh.
    pub fn publish_hint(&self, bytes: Vec<u8>) -> Result<(), TransportError> {
        self.commands
            .send(Command::Publish(bytes))
            .map_err(|_| TransportError::Closed)
    }

    /// The next thing that happened on the transport; `None` once it stopped.
    pub async fn next_event(&self) -> Option<P2pEvent> {
        self.events.lock().await.recv().await
    }

    /// Messages this node handed over (acknowledged by their peer) and their bytes, so far.
    pub fn traffic(&self) -> (usize, usize) {
        (
            self.sent.0.load(Ordering::Relaxed),
            self.sent.1.load(Ordering::Relaxed),
        )
    }

    /// Whether the network task still runs (it stops only on a bug or when dropped).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Transport for P2pTransport {
    fn local(&self) -> Address {
        self.local
    }

    async fn send(&self, peer: Address, bytes: Vec<u8>) -> Result<(), TransportError> {
        let peer_id = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .copied()
            .ok_or(TransportError::Unreachable(peer))?;
        let (done, acknowledged) = oneshot::channel();
        let len = bytes.len();
        self.commands
            .send(Command::Send {
                peer: peer_id,
                bytes,
                done,
            })
            .map_err(|_| TransportError::Closed)?;
        match acknowledged.await {
            Ok(Ok(())) => {
                self.sent.0.fetch_add(1, Ordering::Relaxed);
                self.sent.1.fetch_add(len, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(TransportError::Unreachable(_))) => Err(TransportError::Unreachable(peer)),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(TransportError::Closed),
        }
    }

    fn reachable(&self) -> Vec<Address> {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    async fn recv(&self) -> Option<(Address, Vec<u8>)> {
        self.inbox.lock().await.recv().await
    }
}

/// A peer given by its address (`--peer`, [`P2pTransport::dial`]): dialed again whenever it
/// is not connected, so a node started before its peer, or cut off from it, meets it again.
struct Known {
    address: Multiaddr,
    /// The peer the last connection through this address reached.
    peer: Option<PeerId>,
    /// The dial under way.
    dialing: Option<ConnectionId>,
}

impl Known {
    fn new(address: Multiaddr) -> Self {
        Self {
            address,
            peer: None,
            dialing: None,
        }
    }

    fn dial(&mut self, swarm: &mut Swarm<Behaviour>) -> Result<(), DialError> {
        let dial = DialOpts::unknown_peer_id()
            .address(self.address.clone())
            .build();
        let id = dial.connection_id();
        swarm.dial(dial)?;
        self.dialing = Some(id);
        Ok(())
    }

    /// Whether it is time to dial again: no dial under way, and no link to a peer that may
    /// be met (one without a secp256k1 identity is not dialed again).
    fn wanted(&self, swarm: &Swarm<Behaviour>) -> bool {
        self.dialing.is_none()
            && self
                .peer
                .is_none_or(|peer| address_of(&peer).is_some() && !swarm.is_connected(&peer))
    }
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    peers: Arc<Mutex<BTreeMap<Address, PeerId>>>,
    inbox: mpsc::UnboundedSender<(Address, Vec<u8>)>,
    events: mpsc::UnboundedSender<P2pEvent>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<(), TransportError>>>,
    known: Vec<Known>,
}

impl SwarmTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut redial = tokio::time::interval(REDIAL);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.event(event),
                _ = redial.tick() => {
                    self.dial_known();
                    self.dial_found();
                }
            }
        }
    }

    fn dial_known(&mut self) {
        for known in &mut self.known {
            if known.wanted(&self.swarm)
                && let Err(error) = known.dial(&mut self.swarm)
            {
                tracing::debug!(target: "smartmesh::p2p", address = %known.address, %error, "not dialed");
            }
        }
    }

    /// Marks the dial `connection` of a known address ended, and whom it reached.
    fn dial_ended(&mut self, connection: ConnectionId, reached: Option<PeerId>) {
        for known in &mut self.known {
            if known.dialing == Some(connection) {
                known.dialing = None;
                known.peer = reached.or(known.peer);
            }
        }
    }

    /// Dials each peer mDNS found (its record not expired) that is neither connected nor
    /// being dialed, on every address mDNS knows for it.
    fn dial_found(&mut self) {
        let Some(mdns) = self.swarm.behaviour().mdns.as_ref() else {
            return;
        };
        let found: BTreeSet<PeerId> = mdns.discovered_nodes().copied().collect();
        for peer in found {
            self.dial_peer(peer);
        }
    }

    fn dial_peer(&mut self, peer: PeerId) {
        if self.swarm.is_connected(&peer) || address_of(&peer).is_none() {
            return;
        }
        // mDNS adds the addresses it found for the peer; a dial under way is not doubled.
        let dial = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(error) = self.swarm.dial(dial) {
            tracing::debug!(target: "smartmesh::p2p", %peer, %error, "not dialed");
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Send { peer, bytes, done } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .messages
                    .send_request(&peer, Bytes(bytes));
                self.pending.insert(id, done);
            }
            Command::Publish(bytes) => {
                // With no subscribed peer in reach there is no one to tell: not an error.
                if let Err(error) = self
                    .swarm
                    .behaviour_mut()
                    .hints
                    .publish(gossipsub::IdentTopic::new(HINTS), bytes)
                {
                    tracing::debug!(target: "smartmesh::p2p", %error, "hint not gossiped");
                }
            }
            Command::Dial(address) => {
                let index = match self.known.iter().position(|k| k.address == address) {
                    Some(index) => index,
                    None => {
                        self.known.push(Known::new(address));
                        self.known.len() - 1
                    }
                };
                let known = &mut self.known[index];
                if known.wanted(&self.swarm)
                    && let Err(error) = known.dial(&mut self.swarm)
                {
                    tracing::info!(target: "smartmesh::p2p", address = %known.address, %error, "cannot dial");
                    // An address that cannot be dialed at all is not kept.
                    self.known.remove(index);
                }
            }
        }
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, BTreeMap<Address, PeerId>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let _ = self.events.send(P2pEvent::Listening(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.dial_ended(connection_id, Some(peer_id));
                match address_of(&peer_id) {
                    Some(address) => {
                        self.peers().insert(address, peer_id);
                        if num_established.get() == 1 {
                            tracing::info!(target: "smartmesh::p2p", %address, "met");
                            let _ = self.events.send(P2pEvent::Met(address));
                        }
                    }
                    None => {
                        tracing::info!(target: "smartmesh::p2p", %peer_id, "refused: no secp256k1 identity");
                        self.swarm.close_connection(connection_id);
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                if let Some(address) = address_of(&peer_id) {
                    self.peers().remove(&address);
                    tracing::info!(target: "smartmesh::p2p", %address, "left");
                    let _ = self.events.send(P2pEvent::Left(address));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Messages(event)) => self.message(event),
            SwarmEvent::Behaviour(BehaviourEvent::Hints(gossipsub::Event::Message {
                message,
                ..
            })) => {
                let _ = self.events.send(P2pEvent::Hint(message.data));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                let peers: BTreeSet<PeerId> = found.into_iter().map(|(peer, _)| peer).collect();
                for peer in peers {
                    self.dial_peer(peer);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                self.dial_ended(connection_id, None);
                // Said, so a log shows why two nodes did not meet; the next round dials again.
                tracing::info!(target: "smartmesh::p2p", peer = ?peer_id, %error, "dial failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                result: Err(error),
                connection,
                peer,
                ..
            })) => {
                // A link that stopped answering is gone: what waits for the peer stays queued.
                tracing::info!(target: "smartmesh::p2p", %peer, %error, "link lost");
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }

    fn message(&mut self, event: request_response::Event<Bytes, Bytes>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let Some(address) = address_of(&peer) else {
                    return;
                };
                // Acknowledged once it is in the node's inbox, which the node drains into
                // its journal.
                if self.inbox.send((address, request.0)).is_ok() {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .messages
                        .send_response(channel, Bytes(vec![1]));
                }
            }
            request_response::Event::Message {
                message: request_response::Message::Response { request_id, .. },
                ..
            } => {
                if let Some(done) = self.pending.remove(&request_id) {
                    let _ = done.send(Ok(()));
                }
            }
            request_response::Event::OutboundFailure {
                request_id,
                peer,
                error,
                ..
            } => {
                tracing::debug!(target: "smartmesh::p2p", %peer, %error, "not handed over");
                if let Some(done) = self.pending.remove(&request_id) {
                    let _ = done.send(Err(TransportError::Unreachable(Address::ZERO)));
                }
            }
            _ => {}
        }
    }
}

/// A raw message: channel messages carry their own encoding and signatures.
#[derive(Debug, Clone)]
struct Bytes(Vec<u8>);

/// Each request and response is one stream, written whole and closed.
#[derive(Debug, Clone, Default)]
struct RawCodec;

async fn read_all<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Bytes> {
    let mut bytes = Vec::new();
    io.take(MAX_MESSAGE + 1).read_to_end(&mut bytes).await?;
    if bytes.len() as u64 > MAX_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message too long",
        ));
    }
    Ok(Bytes(bytes))
}

async fn write_all<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: Bytes) -> io::Result<()> {
    io.write_all(&bytes.0).await?;
    io.close().await
}

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Bytes;
    type Response = Bytes;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Bytes> {
        read_all(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Bytes> {
        read_all(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Bytes,
    ) -> io::Result<()> {
        write_all(io, request).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Bytes,
    ) -> io::Result<()> {
        write_all(io, response).await
    }
}
