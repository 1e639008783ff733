//! Keeps the simulator's own threads on one core.
//!
//! The simulation is one loop that awaits each phone's journal in turn: every journal query
//! is a hand-off to that journal's SQLite thread and back. Spread over two cores, each
//! hand-off wakes a thread on the other core, and those wake-ups, not the work, were most of
//! the wall time: the 200-phone day took 61 s of wall time spread and 31 s on one core
//! (README, "Simulator"). Anvil, a process of its own started before, keeps every core.

/// Pins every thread of this process, and the threads they start, to the core the caller
/// runs on now: that core, or `None` where the platform has no such call.
#[cfg(target_os = "linux")]
pub(crate) fn pin_to_one_core() -> eyre::Result<Option<usize>> {
    use eyre::WrapErr;
    use nix::{
        sched::{CpuSet, sched_getaffinity, sched_getcpu, sched_setaffinity},
        unistd::Pid,
    };
    let before = sched_getaffinity(Pid::from_raw(0)).wrap_err("reading this thread's cores")?;
    let core = sched_getcpu()
        .ok()
        .filter(|core| before.is_set(*core).unwrap_or(false))
        .or_else(|| (0..CpuSet::count()).find(|core| before.is_set(*core).unwrap_or(false)))
        .ok_or_else(|| eyre::eyre!("this process may run on no core"))?;
    let mut one = CpuSet::new();
    one.set(core)?;
    // The runtime's worker threads exist already: each is pinned by its thread id. A thread
    // that ends between the listing and the call is no longer there to pin.
    for task in std::fs::read_dir("/proc/self/task").wrap_err("listing this process's threads")? {
        let Some(tid) = task?
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        match sched_setaffinity(Pid::from_raw(tid), &one) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(error) => return Err(error).wrap_err_with(|| format!("pinning thread {tid}")),
        }
    }
    Ok(Some(core))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn pin_to_one_core() -> eyre::Result<Option<usize>> {
    Ok(None)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn pin_to_one_core_pins_threads_started_before_and_after() {
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let started_before = std::thread::spawn(move || {
            wait.recv().expect("told to read");
            nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).expect("affinity")
        });
        let core = pin_to_one_core().expect("pinned").expect("linux pins");
        go.send(()).expect("thread waits");
        let count = |set: &nix::sched::CpuSet| {
            (0..nix::sched::CpuSet::count())
                .filter(|n| set.is_set(*n).unwrap_or(false))
                .count()
        };
        let before = started_before.join().expect("thread");
        let after = std::thread::spawn(|| {
            nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).expect("affinity")
        })
        .join()
        .expect("thread");
        for set in [before, after] {
            assert_eq!(count(&set), 1);
            assert!(set.is_set(core).expect("in range"));
        }
    }
}
