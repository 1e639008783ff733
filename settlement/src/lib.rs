//! SmartMesh settlement watcher: keeps offline phones' money safe. It indexes the
//! TokenNetwork's channels from the chain (this module so far); receipts from phones, disputes
//! of stale closes and settles for offline phones build on it.

mod error;
mod indexer;

pub use error::SettlementError;
pub use indexer::{ChannelIndexer, ChannelPhase, ChannelRow, load_channel};
