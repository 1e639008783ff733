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

/// Wall-clock unix milliseconds: when the services schedule and record things.
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
