//! SmartMesh chain access, shared by the settlement watcher and the relayer: provider wiring,
//! the deployment manifest, storage on SQLite or Postgres, a transaction sender that never loses
//! or doubles a transaction, and a reorg-safe log follower.

mod error;
mod fault;
mod follower;
mod manifest;
mod provider;
mod revert;
mod sender;
mod store;

pub use error::ChainError;
pub use fault::{Backoff, Fault, crash_point};
pub use follower::{BlockLogs, FollowerConfig, LogFollower, LogHandler, Progress};
pub use manifest::Deployment;
pub use provider::connect;
pub use revert::{decode_revert, revert_reason};
pub use sender::{
    Prepared, SenderConfig, SignerHealth, TxCost, TxRequest, TxSender, TxStatus, Unmined,
};
pub use store::{Backend, Database};

/// Wall-clock unix milliseconds: when the services schedule and record things. (An i64 of
/// milliseconds lasts 292 million years; past that it holds at the largest.)
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// A u64 (a block number, a nonce, a gas limit, seconds) as the database's signed 64-bit
/// integer: whole, or refused.
pub fn sql_int(field: &'static str, value: u64) -> Result<i64, ChainError> {
    i64::try_from(value).map_err(|_| ChainError::OutOfRange { field, value })
}
