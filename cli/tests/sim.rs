//! `smartmesh sim` as a user runs it: a small mesh with stale closers, droppers and silent
//! recipients, on anvil with the watcher and the relayer. The run must pass its own check
//! (no honest phone lost funds on chain), with the watcher having penalized the stale
//! closes; the same seed gives the same figures; and without a watcher the same run fails
//! its check, so the check can fail.

use std::{path::PathBuf, process::Command, thread};

use serde_json::Value;

/// The small mesh: dense enough for data sessions along linked paths, stale closers enough
/// for a lie to punish.
const SMALL: &[&str] = &[
    "sim",
    "--phones",
    "16",
    "--hours",
    "3",
    "--seed",
    "11",
    "--area",
    "160",
    "--range",
    "60",
    "--stale-closers",
    "0.15",
    "--droppers",
    "0.1",
    "--silent",
    "0.1",
    "--sessions-per-hour",
    "12",
    "--online-every-hours",
    "1",
];

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smartmesh-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `smartmesh sim` with `extra` flags into its own directory; returns its exit status,
/// its output and the directory.
fn sim(
    name: &'static str,
    extra: &'static [&'static str],
) -> thread::JoinHandle<eyre::Result<(bool, String, PathBuf)>> {
    thread::spawn(move || {
        let out = out_dir(name);
        let anvil = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
        let output = Command::new(env!("CARGO_BIN_EXE_smartmesh"))
            .args(SMALL)
            .arg("--anvil")
            .arg(anvil)
            .args(extra)
            .arg("--out")
            .arg(&out)
            .env("RUST_LOG", "warn")
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok((output.status.success(), text, out))
    })
}

fn figures(dir: &std::path::Path) -> eyre::Result<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        dir.join("figures.json"),
    )?)?)
}

#[test]
fn a_small_mesh_keeps_every_honest_phone_whole_and_the_same_seed_runs_the_same() -> eyre::Result<()>
{
    // The three runs side by side: each has its own anvil and services on free ports.
    let first = sim("first", &[]);
    let second = sim("second", &[]);
    let unwatched = sim("unwatched", &["--no-watcher"]);
    let (ok, text, dir) = first.join().expect("the run's thread")?;
    assert!(ok, "the simulation failed its check:\n{text}");
    let run = figures(&dir)?;
    let summary = &run["summary"];
    assert_eq!(summary["honest_phones_losing_funds"], 0, "{text}");
    assert!(run["figures"]["honest_phones_checked"].as_u64() >= Some(10));
    // The cases the check guards were exercised: lies told and punished, payments over
    // mediators completed, data delivered and relays paid for it.
    assert!(
        summary["outcomes"]["stale_close_penalized"].as_u64() >= Some(1),
        "no stale close to punish: {summary}"
    );
    assert!(
        summary["outcomes"].get("stale_close_unpunished").is_none(),
        "{summary}"
    );
    assert!(
        summary["by_hops"][1]["completed"].as_u64() >= Some(1),
        "{summary}"
    );
    assert!(
        summary["packets_delivered"].as_u64() >= Some(1),
        "{summary}"
    );
    assert!(
        summary["relay_earnings_smt"].as_f64() > Some(0.0),
        "{summary}"
    );
    for plot in run["plots"].as_array().into_iter().flatten() {
        let svg = std::fs::read_to_string(plot.as_str().unwrap_or_default())?;
        assert!(svg.starts_with("<svg"), "{plot} is not an SVG");
    }
    assert!(text.contains("losing funds: 0"), "{text}");

    let (ok, text, again) = second.join().expect("the run's thread")?;
    assert!(ok, "{text}");
    assert_eq!(
        figures(&again)?["summary"],
        *summary,
        "the same seed ran differently"
    );
    assert_eq!(figures(&again)?["payments"], run["payments"]);

    // Nobody watches for the phones: a stale close goes unpunished and the check fails.
    let (ok, text, unwatched) = unwatched.join().expect("the run's thread")?;
    assert!(!ok, "the check passed with no watcher:\n{text}");
    assert!(text.contains("honest phones lost funds"), "{text}");
    let lost = figures(&unwatched)?;
    assert!(lost["summary"]["honest_phones_losing_funds"].as_u64() >= Some(1));
    assert!(lost["summary"]["outcomes"]["stale_close_unpunished"].as_u64() >= Some(1));
    for dir in [dir, again, unwatched] {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

#[test]
fn bad_flags_are_refused_before_anything_starts() -> eyre::Result<()> {
    for (flag, value, says) in [
        ("--phones", "2", "at least 3"),
        ("--area", "0", "--area: 0 is not a positive number"),
        ("--range", "-5", "--range: -5 is not a positive number"),
        ("--payments-per-hour", "NaN", "--payments-per-hour: NaN"),
        ("--stale-closers", "1.5", "--stale-closers 1.5"),
        ("--packets", "0", "--packets"),
        ("--online-every-hours", "0", "--online-every-hours 0"),
    ] {
        let out = out_dir("bad");
        let output = Command::new(env!("CARGO_BIN_EXE_smartmesh"))
            .args(["sim", &format!("{flag}={value}"), "--out"])
            .arg(&out)
            .arg("--state")
            .arg(&out)
            .output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flag} {value} was taken");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
        assert!(
            !out.join("stack").exists(),
            "{flag} {value} started the chain"
        );
    }
    Ok(())
}
