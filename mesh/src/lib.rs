//! SmartMesh for phones: the crate a phone app embeds. A wallet (a k256 key in a file only
//! its owner reads), its channels, offline payments handed phone to phone as signed balance
//! proofs under the client discipline of DESIGN.md section 4, a receipts journal in SQLite,
//! sync to the settlement watcher, gasless channel operations through the relayer, payments
//! mediated by other phones, a transport interface (in memory, files, peer-to-peer on
//! rust-libp2p) with a persistent store-and-forward outbox for peers out of reach, and the node
//! that runs a wallet on its own ([`MeshNode`]). No server code: it only calls the services and
//! the chain when there is internet.

mod amount;
mod channel;
mod clock;
mod dispatch;
mod error;
mod graph;
mod handoff;
mod held;
mod journal;
mod node;
mod ops;
mod outbox;
mod p2p;
mod routed;
mod services;
mod sessions;
mod transport;
mod wallet;
mod wallet_client;

pub use amount::{format_smt, parse_positive_smt, parse_smt};
pub use channel::{Capacity, Channel};
pub use clock::VirtualClock;
pub use dispatch::{Started, Taken, message_kind};
pub use error::MeshError;
pub use graph::{decode_hint, encode_hint};
pub use handoff::FileTransport;
pub use libp2p::{Multiaddr, PeerId};
pub use node::{MeshNode, NodeConfig, NodeEvent, TransferOutcome, TransferSummary};
pub use p2p::{P2pConfig, P2pEvent, P2pTransport, address_of, identity_of};
pub use routed::Outgoing;
pub use services::{Relayed, SyncReport};
pub use sessions::{SessionOut, SessionSummary};
pub use transport::{MemoryNet, MemoryTransport, Transport, TransportError};
pub use wallet::{create_key, import_key, load_key};
pub use wallet_client::{JOURNAL_FILE, KEY_FILE, Mesh, MeshConfig, Received};
