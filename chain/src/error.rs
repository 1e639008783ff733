//! The crate's one error type.

use std::path::PathBuf;

use alloy::primitives::B256;

/// What went wrong talking to the chain or the database.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC URL does not parse.
    #[error("invalid rpc url {url:?}: {reason}")]
    RpcUrl {
        /// The URL given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// An RPC call failed.
    #[error("rpc call failed: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    /// A number does not fit the database's signed 64-bit column: refused, never cut.
    #[error("{field} {value} does not fit a signed 64-bit column")]
    OutOfRange {
        /// What it is.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The node does not know a block this crate needs.
    #[error("the node has no block {0}")]
    MissingBlock(u64),
    /// The database refused a query or a connection.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed to apply.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The database URL names a backend other than SQLite or Postgres.
    #[error("unsupported database url {0:?}: use sqlite://FILE or postgres://...")]
    DatabaseUrl(String),
    /// The deployment manifest could not be read or written.
    #[error("deployment manifest {path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A reorg went deeper than the blocks the follower remembers.
    #[error(
        "reorg deeper than the {kept} blocks kept: no common ancestor found at or above block {lowest}"
    )]
    ReorgTooDeep {
        /// How many recent blocks the follower keeps.
        kept: u64,
        /// The lowest block it could compare.
        lowest: u64,
    },
    /// A stored block hash is malformed (the database was edited by hand).
    #[error("stored block hash is {0} bytes, expected 32")]
    StoredHash(usize),
    /// The follower's handler failed; nothing of the batch was committed.
    #[error("log handler failed: {0}")]
    Handler(Box<dyn std::error::Error + Send + Sync>),
    /// A block's logs came from another fork than the block the follower checked.
    #[error("block {number} changed while it was read (hash {expected} became {actual})")]
    Raced {
        /// The block height.
        number: u64,
        /// The hash first seen.
        expected: B256,
        /// The hash seen next.
        actual: B256,
    },
    /// The sender was given no signer key.
    #[error("the transaction sender needs at least one signer key")]
    NoSigner,
    /// Every signer key holds less ETH than the configured minimum: sending is paused.
    #[error("sending paused: every signer key holds less than {min} wei; fund them")]
    LowBalance {
        /// The configured minimum balance, in wei.
        min: alloy::primitives::U256,
    },
    /// No transaction has this id.
    #[error("no transaction with id {0}")]
    UnknownTransaction(i64),
    /// A stored transaction names a key this sender was not given.
    #[error("no signer key for {0}, which has unfinished transactions: restart with its key")]
    MissingSignerKey(alloy::primitives::Address),
    /// Signing a transaction failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// A stored value does not parse (the database was edited by hand).
    #[error("stored {field} {value:?} does not parse")]
    Stored {
        /// The column.
        field: &'static str,
        /// Its content.
        value: String,
    },
}
