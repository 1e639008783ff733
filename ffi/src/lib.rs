//! SmartMesh for apps: the phone client (`smartmesh-mesh`) behind a foreign interface made
//! with uniffi, so that an Android app in Kotlin, an iOS app in Swift, or a Python program
//! embeds it: create, import or load a wallet; its channels and what they can move; pay
//! directly, locked or routed through other phones; receive; the `smr1` text form for QR
//! codes; sync to the watcher; the gasless channel operations through the relayer; and the
//! mesh node, started and stopped, reporting what arrives through a callback.
//!
//! Every call that waits (the journal, the chain, the services, the peers) is async in the
//! foreign language (a Kotlin `suspend fun`, a Swift `async` function, a Python coroutine)
//! and runs on this library's own Tokio runtime. Amounts cross as decimal strings of SMT
//! (`"1.5"`), whole or refused, as the CLI takes them; ids and addresses as 0x hex. Errors
//! are [`MeshFfiError`], each kind a foreign exception class carrying the CLI's message.

mod config;
mod error;
mod node;
mod runtime;
mod wallet;

pub use config::WalletConfig;
pub use error::MeshFfiError;
pub use node::{Node, NodeListener, NodeOptions, NodeUpdate, PaymentStarted};
pub use wallet::{
    Balances, ChannelInfo, OpenedChannel, ReceivedMessage, RelayedOperation, SyncSummary, Wallet,
    create_wallet, import_wallet, load_wallet,
};

uniffi::setup_scaffolding!();
