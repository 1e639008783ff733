//! The crate's one error type.

/// What went wrong in the settlement watcher.
#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    /// The chain or the database failed.
    #[error(transparent)]
    Chain(#[from] smartmesh_chain::ChainError),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored event no longer decodes (the database was edited by hand).
    #[error("stored event of block {block} does not decode: {reason}")]
    StoredEvent {
        /// Its block.
        block: u64,
        /// Why.
        reason: String,
    },
    /// A stored value does not parse (the database was edited by hand).
    #[error("stored {field} {value} does not parse")]
    Stored {
        /// What kind of value.
        field: String,
        /// Its content.
        value: String,
    },
    /// An RPC call the watcher made failed.
    #[error("rpc call failed: {0}")]
    Rpc(String),
    /// The configuration does not fit the chain it points at.
    #[error("configuration: {0}")]
    Config(String),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Server(#[from] std::io::Error),
}

impl SettlementError {
    /// What this error is a failure of, for health and metrics.
    pub fn fault(&self) -> smartmesh_chain::Fault {
        use smartmesh_chain::Fault;
        match self {
            Self::Chain(error) => error.fault(),
            Self::Database(_) | Self::Stored { .. } | Self::StoredEvent { .. } => Fault::Storage,
            Self::Rpc(_) => Fault::Rpc,
            Self::Config(_) | Self::Server(_) => Fault::Other,
        }
    }
}
