//! The wallet's clock: the system's, or a virtual one that a simulator (or a test) moves, so
//! that every rule judged by time (lock expiries, freezes, request deadlines) runs in its
//! time.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

/// A clock in unix seconds that only moves when told to; clones share it.
#[derive(Debug, Clone)]
pub struct VirtualClock(Arc<AtomicU64>);

impl VirtualClock {
    /// A clock reading `start`.
    pub fn new(start: u64) -> Self {
        Self(Arc::new(AtomicU64::new(start)))
    }

    /// What it reads.
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves it `seconds` on.
    pub fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }

    /// Moves it to `at`, never back.
    pub fn set(&self, at: u64) {
        self.0.fetch_max(at, Ordering::SeqCst);
    }
}

/// The system's clock in unix seconds.
pub(crate) fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
