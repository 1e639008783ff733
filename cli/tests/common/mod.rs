//! What the CLI's tests share: the deployed stack, the watcher test helpers, and the
//! `smartmesh` binary run as a real process that is killed when dropped.

// Each test binary uses a different part of it.
#![allow(dead_code)]

pub(crate) mod dev;
pub(crate) mod proxy;
#[path = "../../../protocol/tests/common/mod.rs"]
pub(crate) mod stack;
#[path = "../../../chain/tests/common/mod.rs"]
pub(crate) mod storage;
pub(crate) mod village;
#[path = "../../../settlement/tests/common/watcher.rs"]
pub(crate) mod watcher;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use alloy::signers::local::PrivateKeySigner;
use smartmesh_chain::Deployment;
pub(crate) use stack::Stack;

/// A scratch directory of a test's own, emptied first.
pub(crate) fn scratch(name: &str) -> eyre::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("smartmesh-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Writes `key` into `dir/name`.
pub(crate) fn write_key(dir: &Path, name: &str, key: &PrivateKeySigner) -> eyre::Result<PathBuf> {
    let file = dir.join(name);
    std::fs::write(&file, alloy::hex::encode(key.to_bytes()))?;
    Ok(file)
}

/// Writes the stack's deployment manifest and a key file into `dir`.
pub(crate) fn write_config(
    stack: &Stack,
    dir: &Path,
    key: &PrivateKeySigner,
) -> eyre::Result<PathBuf> {
    Deployment {
        chain_id: stack.chain_id,
        token: stack.token,
        signed_agent: stack.agent,
        token_network: stack.network,
        condition_registry: stack.registry,
        deploy_block: 0,
    }
    .write(dir)?;
    let key_file = dir.join("watcher.key");
    std::fs::write(&key_file, alloy::hex::encode(key.to_bytes()))?;
    Ok(key_file)
}

/// A `smartmesh` service as a process; killed (SIGKILL) when dropped.
pub(crate) struct ServiceProcess {
    child: Child,
    pub(crate) url: String,
}

/// `smartmesh settlement`.
pub(crate) type WatcherProcess = ServiceProcess;

/// How a watcher process differs from the default one.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// Its RPC endpoint, when not the stack's anvil (a proxy that can be cut).
    pub(crate) rpc_url: Option<String>,
    /// More flags; later ones override earlier ones.
    pub(crate) args: Vec<String>,
    /// Environment (`SMARTMESH_CRASH_AT`).
    pub(crate) env: Vec<(String, String)>,
    /// Where its stderr goes (its log).
    pub(crate) stderr: Option<PathBuf>,
}

impl ServiceProcess {
    /// Starts the watcher with fast settings, on a free port, and waits until it serves.
    pub(crate) fn start(stack: &Stack, dir: &Path, database_url: &str) -> eyre::Result<Self> {
        Self::start_with(stack, dir, database_url, Options::default())
    }

    /// The same, with `options`.
    pub(crate) fn start_with(
        stack: &Stack,
        dir: &Path,
        database_url: &str,
        options: Options,
    ) -> eyre::Result<Self> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_smartmesh"));
        command
            .args(["settlement", "--rpc-url"])
            .arg(options.rpc_url.unwrap_or_else(|| stack.anvil.endpoint()))
            .args(["--database-url", database_url, "--key-file"])
            .arg(dir.join("watcher.key"))
            .arg("--deployments-dir")
            .arg(dir);
        // Fast settings, unless the options set the flag themselves.
        for (flag, value) in [
            ("--listen", "127.0.0.1:0"),
            ("--confirmations", "0"),
            ("--poll-ms", "20"),
            ("--settle-grace-secs", "0"),
            ("--recheck-secs", "1"),
            ("--rate-limit", "1000"),
        ] {
            if !options.args.iter().any(|arg| arg == flag) {
                command.args([flag, value]);
            }
        }
        command.args(&options.args).envs(options.env);
        if let Some(path) = options.stderr {
            command.stderr(std::fs::File::create(path)?);
        }
        Self::spawn(command)
    }

    /// Starts `smartmesh relayer` with `keys` (files in `dir`), on a free port.
    pub(crate) fn relayer(
        stack: &Stack,
        dir: &Path,
        database_url: &str,
        keys: &[&str],
    ) -> eyre::Result<Self> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_smartmesh"));
        command
            .args(["relayer", "--rpc-url"])
            .arg(stack.anvil.endpoint())
            .args(["--database-url", database_url, "--deployments-dir"])
            .arg(dir)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--confirmations",
                "1",
                "--poll-ms",
                "20",
            ])
            .args([
                "--rate-limit",
                "100000",
                "--burst",
                "100000",
                "--min-validity-secs",
                "30",
            ]);
        for key in keys {
            command.arg("--key-file").arg(dir.join(key));
        }
        Self::spawn(command)
    }

    fn spawn(mut command: Command) -> eyre::Result<Self> {
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = line_tx.send(line);
            }
            // Keep draining so the process never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match line_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                eyre::bail!(
                    "the service did not start: {:?}",
                    child.wait_with_output()?.status
                );
            }
        };
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .ok_or_else(|| eyre::eyre!("no endpoint in {line:?}"))?
            .to_owned();
        Ok(Self { child, url })
    }

    /// Waits until the process has died by itself (a crash point); its exit status.
    pub(crate) fn died(mut self, secs: u64) -> eyre::Result<std::process::ExitStatus> {
        for _ in 0..secs * 50 {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eyre::bail!("the service was still running after {secs} s")
    }

    /// SIGKILL: no graceful anything.
    pub(crate) fn kill(mut self) -> eyre::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then waits for a clean exit.
    pub(crate) fn terminate(mut self) -> eyre::Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        eyre::ensure!(status.success(), "kill -TERM failed");
        for _ in 0..500 {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eyre::bail!("the service did not stop within 10 s of SIGTERM")
    }

    /// `GET path` as JSON.
    pub(crate) async fn get(&self, path: &str) -> eyre::Result<serde_json::Value> {
        let response = alloy::transports::http::reqwest::get(format!("{}{path}", self.url)).await?;
        Ok(serde_json::from_str(&response.text().await?)?)
    }

    /// `POST path` with a JSON body; the status and the JSON answer.
    pub(crate) async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> eyre::Result<(u16, serde_json::Value)> {
        let response = alloy::transports::http::reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, serde_json::from_str(&response.text().await?)?))
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
