//! The crate's one error type.

/// What went wrong in the relayer.
#[derive(Debug, thiserror::Error)]
pub enum RelayerError {
    /// The chain or the database failed.
    #[error(transparent)]
    Chain(#[from] smartmesh_chain::ChainError),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An RPC call the relayer made failed.
    #[error("rpc call failed: {0}")]
    Rpc(String),
    /// The SMT/ETH rate is missing, malformed or stale: no fee can be quoted.
    #[error("rate: {0}")]
    Rate(String),
    /// The configuration does not fit the chain it points at.
    #[error("configuration: {0}")]
    Config(String),
    /// A stored value does not parse (the database was edited by hand).
    #[error("stored {field} {value} does not parse")]
    Stored {
        /// What kind of value.
        field: &'static str,
        /// Its content.
        value: String,
    },
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Server(#[from] std::io::Error),
}
