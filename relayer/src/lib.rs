//! SmartMesh relayer: lets users who hold SMT and no ETH use the chain. It prices a call
//! (`POST /v1/quote`), takes the user's signed `AgentRequest` (`POST /v1/relay`), checks it
//! from the cheapest check to a simulation against the pending state, and sends it through the
//! SignedAgent, which pays the relayer its fee in SMT in the same transaction. Nothing is lost
//! or sent twice: requests are queued through the chain crate's transaction sender.

mod allow;
mod api;
mod earnings;
mod error;
mod estimate;
mod openapi;
mod pricing;
mod quote;
mod relay;
mod service;

pub use allow::AllowList;
pub use api::{ApiError, ApiLimits, AppState, Health, KeyHealth, Metrics, RelayPolicy, app};
pub use earnings::{Earnings, Grouping, PeriodEarnings, SpentBy};
pub use error::RelayerError;
pub use openapi::openapi;
pub use pricing::{ONE, RateSource, fee};
pub use service::{Relayer, RelayerConfig};
pub use smartmesh_protocol::api::relayer::{
    Accepted, Quote, QuoteRequest, RelayRequest, RelayState, RelayStatus, SignedRequest,
};
