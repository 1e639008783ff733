//! SmartMesh settlement watcher: keeps offline phones' money safe. It indexes the
//! TokenNetwork's channels from the chain and takes phones' batched receipts over HTTP;
//! disputes of stale closes and settles for offline phones build on both.

mod api;
mod error;
mod indexer;
mod receipts;

pub use api::{ApiError, AppState, MAX_BODY_BYTES, app};
pub use error::SettlementError;
pub use indexer::{ChannelIndexer, ChannelPhase, ChannelRow, load_channel};
pub use receipts::{
    BatchOutcome, ItemOutcome, ItemStatus, MAX_BATCH, ReceiptBatch, ReceiptItem,
    WatchAuthorization, WatcherAck, ack_domain,
};
