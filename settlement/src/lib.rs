//! SmartMesh settlement watcher: keeps offline phones' money safe. It takes phones' batched
//! receipts (with their lock lists and the conditions the phone can meet) over HTTP, indexes the TokenNetwork's channels from the chain, disputes closes
//! that under-declare what the closer paid or drop its locks, registers
//! conditions before their locks expire, and settles for phones that are offline. Runs on
//! SQLite, or on Postgres with several replicas.

mod api;
mod channels;
mod conditions;
mod engine;
mod error;
mod indexer;
mod leader;
mod metrics;
mod openapi;
mod receipts;
mod service;
mod sql;

pub use api::{ApiError, ApiLimits, AppState, Health, HealthLimits, MAX_BODY_BYTES, app};
pub use channels::{
    ChainState, ChannelView, DecisionView, HeldProofView, JobView, LatestProof, MissedDispute,
};
pub use conditions::{
    ConditionState, ConditionUpload, MAX_REGISTRATION_GAS, MIN_REGISTRATION_GAS, Registrations,
};
pub use engine::{DisputeEngine, EngineConfig};
pub use error::SettlementError;
pub use indexer::{ChannelIndexer, ChannelPhase, ChannelRow, load_channel};
pub use metrics::Metrics;
pub use openapi::openapi;
pub use receipts::{
    BatchOutcome, ItemOutcome, ItemStatus, JUNK_PROBE, MAX_BATCH, ReceiptBatch, ReceiptItem,
    SentBackup, WatchAuthorization, ack_domain,
};
pub use service::{INDEXER_NAME, Watcher, WatcherConfig};
pub use smartmesh_protocol::WatcherAck;
