//! What the phone crate's benches share: the tests' offline wallet configuration, and
//! percentiles.

use std::time::Duration;

#[path = "../../tests/common/mod.rs"]
mod offline;

pub(crate) use offline::{config, open_between};

/// The `p` quantile of `samples` (sorted in place).
pub(crate) fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}
