//! The crate's one error type.

use alloy::primitives::{Address, B256, U256};

/// What went wrong on the phone.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// No route the graph knows leads to the target with the capacity needed.
    #[error(
        "no route to {target} for {amount} within {max_hops} hops: no known channels with fresh capacity hints lead there"
    )]
    NoRoute {
        /// Whom the payment was for.
        target: Address,
        /// What it was to deliver.
        amount: U256,
        /// The longest route allowed.
        max_hops: usize,
    },
    /// A routed payment's secret is sealed to the target's key, learned from a hint it signed.
    #[error("the key of {0} is not known yet: it comes with the capacity hints it gossips")]
    UnknownKey(Address),
    /// The route costs more than the payer allows.
    #[error("the route costs {fee} in fees, above the {max_fee} allowed")]
    FeeAboveMax {
        /// The route's fees in all.
        fee: U256,
        /// What the payer allowed.
        max_fee: U256,
    },
    /// A peer's message that is not one (kept out of the journal).
    #[error("malformed {0} from a peer")]
    Malformed(&'static str),
    /// A mediated step needs a channel with this peer, and the wallet has none open.
    #[error("no open channel with {0}")]
    NoChannelWith(Address),
    /// A transport failed (not a peer out of reach: that message waits in the outbox).
    #[error(transparent)]
    Transport(#[from] crate::TransportError),
    /// A proof or signature broke the protocol's rules.
    #[error(transparent)]
    Protocol(#[from] smartmesh_protocol::ProtocolError),
    /// The journal failed.
    #[error("journal: {0}")]
    Journal(#[from] sqlx::Error),
    /// The journal's schema could not be applied.
    #[error("journal migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The key file is missing, malformed or readable by others.
    #[error("wallet: {0}")]
    Wallet(String),
    /// The channel is not in this wallet's journal.
    #[error("channel {0} is unknown to this wallet: open it, or read it from the chain first")]
    UnknownChannel(B256),
    /// The channel is not open.
    #[error("channel {channel} is {state}, not open")]
    NotOpen {
        /// The channel.
        channel: B256,
        /// Its state.
        state: smartmesh_protocol::channel::Phase,
    },
    /// This wallet signed a close, withdraw or cooperative settle that has not landed yet.
    #[error(
        "channel {channel} is frozen until {until} (unix seconds): this wallet signed a {reason} that has not landed yet"
    )]
    Frozen {
        /// The channel.
        channel: B256,
        /// What was signed.
        reason: smartmesh_protocol::channel::FreezeKind,
        /// When the freeze ends if it never lands.
        until: u64,
    },
    /// The payment would exceed what this wallet can pay.
    #[error("paying {amount} would exceed this wallet's capacity {capacity} in channel {channel}")]
    OverCapacity {
        /// The channel.
        channel: B256,
        /// The payment asked.
        amount: U256,
        /// What can still be paid.
        capacity: U256,
    },
    /// A received proof was signed by someone other than the channel's partner.
    #[error("the proof is signed by {signer}, not by the partner {partner}")]
    NotFromPartner {
        /// The signer.
        signer: Address,
        /// The partner.
        partner: Address,
    },
    /// A received proof is for another chain or TokenNetwork.
    #[error(
        "the proof is for chain {chain_id} and TokenNetwork {token_network}, not this wallet's"
    )]
    OtherDeployment {
        /// Its chain.
        chain_id: u64,
        /// Its TokenNetwork.
        token_network: Address,
    },
    /// No channel of this wallet has a pending lock on the condition.
    #[error("no pending lock on condition {0} in this wallet's channels")]
    UnknownLock(B256),
    /// A wallet restored from a backup must learn its latest signed proof before it closes.
    #[error(
        "this wallet was restored from a backup: run restore (it asks the watcher for the latest proof this wallet signed) before closing"
    )]
    MustRestore,
    /// No watcher or relayer URL is configured for an operation that needs it.
    #[error("no {0} is configured")]
    NoService(&'static str),
    /// The phone is offline now ([`crate::Mesh::set_online`]): the service was not called.
    #[error("offline: the {0} cannot be reached now")]
    Offline(&'static str),
    /// A service answered with an error.
    #[error("{service} refused: {status} {error}: {detail}")]
    Refused {
        /// Which service.
        service: &'static str,
        /// The HTTP status.
        status: u16,
        /// Its error code.
        error: String,
        /// Its detail.
        detail: String,
    },
    /// A relayed operation failed on chain or before.
    #[error("the relayed operation failed: {0}")]
    RelayFailed(String),
    /// A service or the chain could not be reached.
    #[error("network: {0}")]
    Network(String),
    /// A value does not fit where it must go (a deadline beyond SQLite's 64-bit integers).
    #[error("{field} {value} is out of range")]
    OutOfRange {
        /// What it is.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// An amount of SMT that is not one, or not whole wei (the message names the field).
    #[error("{0}")]
    InvalidAmount(String),
    /// A stored value does not parse (the journal was edited by hand).
    #[error("journal holds a malformed {0}")]
    Stored(&'static str),
}
