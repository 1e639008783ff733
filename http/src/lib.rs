//! What SmartMesh's HTTP services (the settlement watcher and the relayer) share: the JSON
//! error `{error, detail}` that names the offending field, the limits every endpoint runs
//! under (body size, per-client rate of requests and of work, request timeout), serving
//! with a header read timeout and a connection cap, and the shutdown signal.

mod error;
mod limits;
mod openapi;
mod ratelimit;
mod serve;
mod shutdown;

pub use error::{ApiError, ErrorBody};
pub use limits::{ApiLimits, with_limits};
pub use openapi::CommonResponses;
pub use ratelimit::{Client, WorkLimiter};
pub use serve::serve;
pub use shutdown::shutdown_signal;
