//! How the services' loops live with failures: what a failure was a failure of (the node, the
//! database, something else), and a backoff that retries ever more slowly during an outage,
//! says so once when it starts, now and then while it lasts, and once when it ends, instead
//! of a warning per attempt.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::ChainError;

/// A moment at which the process may be made to die on the spot, as a SIGKILL would kill it:
/// when `SMARTMESH_CRASH_AT` names it. The fault tests use it to show that a kill at that
/// exact moment of sending or disputing loses nothing and doubles nothing; unset, it costs a
/// comparison.
pub fn crash_point(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("SMARTMESH_CRASH_AT").ok())
        .as_deref()
        == Some(name)
    {
        eprintln!("SMARTMESH_CRASH_AT={name}: dying here");
        std::process::abort();
    }
}

/// What a failed step failed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The chain's node did not answer, or answered an error.
    Rpc,
    /// The database refused a read or a write.
    Storage,
    /// Anything else.
    Other,
}

impl ChainError {
    /// What this error is a failure of.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Rpc(_) | Self::MissingBlock(_) | Self::Raced { .. } => Fault::Rpc,
            Self::Database(_) | Self::Migration(_) | Self::Stored { .. } | Self::StoredHash(_) => {
                Fault::Storage
            }
            _ => Fault::Other,
        }
    }
}

/// The pacing of one loop's retries.
#[derive(Debug)]
pub struct Backoff {
    what: &'static str,
    base: Duration,
    max: Duration,
    failures: u32,
    since: Option<Instant>,
}

impl Backoff {
    /// Retries of `what` start at `base` and double up to `max`.
    pub fn new(what: &'static str, base: Duration, max: Duration) -> Self {
        Self {
            what,
            base: base.max(Duration::from_millis(1)),
            max: max.max(base),
            failures: 0,
            since: None,
        }
    }

    /// Records a failure; returns how long to wait before the next try. Logs the first
    /// failure of an outage and then each time the count doubles.
    pub fn failed(&mut self, error: &dyn std::fmt::Display) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let since = *self.since.get_or_insert_with(Instant::now);
        if self.failures.is_power_of_two() {
            tracing::warn!(
                target: "smartmesh::retry",
                what = self.what,
                failures = self.failures,
                for_secs = since.elapsed().as_secs(),
                %error,
                "failing; retrying with backoff"
            );
        }
        self.pause()
    }

    /// Records a success; logs the end of an outage.
    pub fn succeeded(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                target: "smartmesh::retry",
                what = self.what,
                failures = self.failures,
                for_secs = since.elapsed().as_secs(),
                "recovered"
            );
        }
        self.failures = 0;
    }

    /// The wait after the failures so far: `base` doubled per failure after the first.
    pub fn pause(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(20);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_bound_and_reset_on_success() {
        let mut backoff = Backoff::new("test", Duration::from_millis(20), Duration::from_secs(1));
        let waits: Vec<u128> = (0..8)
            .map(|_| backoff.failed(&"down").as_millis())
            .collect();
        assert_eq!(waits, vec![20, 40, 80, 160, 320, 640, 1_000, 1_000]);
        backoff.succeeded();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(backoff.failed(&"down again"), Duration::from_millis(20));
    }
}
