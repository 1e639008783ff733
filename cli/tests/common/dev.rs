//! `smartmesh dev` as a process, and the wallet commands run against it through the binary.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, U256, utils::parse_ether},
    providers::{DynProvider, Provider},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use smartmesh_mesh::{Mesh, MeshConfig};
use smartmesh_protocol::{SmartMeshToken, TokenNetwork};

/// `smartmesh dev` in the background; stopped with SIGINT (killed if that fails) on drop.
pub(crate) struct Dev {
    child: Child,
    pub(crate) home: PathBuf,
    pub(crate) dev: serde_json::Value,
}

impl Dev {
    pub(crate) fn start(name: &str) -> eyre::Result<Self> {
        let home =
            std::env::temp_dir().join(format!("smartmesh-story-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        let anvil = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
        let child = Command::new(env!("CARGO_BIN_EXE_smartmesh"))
            .args([
                "dev",
                "--port",
                "0",
                "--watcher-port",
                "0",
                "--relayer-port",
                "0",
                "--home",
            ])
            .arg(&home)
            .arg("--anvil")
            .arg(anvil)
            .stdout(Stdio::null())
            .spawn()?;
        let mut dev = Self {
            child,
            home,
            dev: serde_json::Value::Null,
        };
        for _ in 0..600 {
            if let Ok(text) = std::fs::read_to_string(dev.home.join("dev.json"))
                && let Ok(value) = serde_json::from_str(&text)
            {
                dev.dev = value;
                return Ok(dev);
            }
            if let Some(status) = dev.child.try_wait()? {
                eyre::bail!("smartmesh dev exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eyre::bail!("smartmesh dev did not start")
    }

    /// Runs `smartmesh ARGS --home HOME`; its stdout, or an error with its stderr.
    pub(crate) fn sm(&self, args: &[&str]) -> eyre::Result<String> {
        let output = Command::new(env!("CARGO_BIN_EXE_smartmesh"))
            .args(args)
            .arg("--home")
            .arg(&self.home)
            .output()?;
        let stdout = String::from_utf8(output.stdout)?;
        eyre::ensure!(
            output.status.success(),
            "smartmesh {args:?} failed: {}{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(stdout)
    }

    /// Runs `smartmesh ARGS --home HOME`, which must fail; its stderr.
    pub(crate) fn sm_fails(&self, args: &[&str]) -> eyre::Result<String> {
        let output = Command::new(env!("CARGO_BIN_EXE_smartmesh"))
            .args(args)
            .arg("--home")
            .arg(&self.home)
            .output()?;
        eyre::ensure!(
            !output.status.success(),
            "smartmesh {args:?} succeeded: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        Ok(String::from_utf8(output.stderr)?)
    }

    /// Opens Alice's channel to Brandon through the relayer, Alice depositing 100 SMT and
    /// Brandon 50, with a 60 s hold period.
    pub(crate) fn alice_and_brandon(&self) -> eyre::Result<B256> {
        self.open_with("alice", "brandon", "60", "100")
    }

    /// A channel `payer` opens to `partner` with a `settle_timeout` hold period and
    /// `deposit`, the partner depositing 50.
    fn open_with(
        &self,
        payer: &str,
        partner: &str,
        settle_timeout: &str,
        deposit: &str,
    ) -> eyre::Result<B256> {
        let channel = opened(&self.sm(&[
            "channel",
            "open",
            "--wallet",
            payer,
            "--partner",
            partner,
            "--settle-timeout",
            settle_timeout,
            "--deposit",
            deposit,
        ])?)?;
        self.sm(&[
            "channel",
            "deposit",
            "--wallet",
            partner,
            "--channel",
            &channel.to_string(),
            "--amount",
            "50",
        ])?;
        Ok(channel)
    }

    pub(crate) fn field(&self, name: &str) -> String {
        self.dev[name].as_str().unwrap_or_default().to_owned()
    }

    pub(crate) fn address(&self, field: &str) -> Address {
        self.dev["deployment"][field]
            .as_str()
            .unwrap_or_default()
            .parse()
            .unwrap()
    }

    pub(crate) fn wallet(&self, name: &str) -> Address {
        self.dev["wallets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|pair| pair[0] == name)
            .and_then(|pair| pair[1].as_str()?.parse().ok())
            .unwrap()
    }

    pub(crate) fn provider(&self) -> eyre::Result<DynProvider> {
        Ok(smartmesh_chain::connect(&self.field("rpcUrl"))?)
    }

    pub(crate) async fn smt(&self, who: Address) -> eyre::Result<U256> {
        Ok(SmartMeshToken::new(self.address("token"), self.provider()?)
            .balanceOf(who)
            .call()
            .await?)
    }

    pub(crate) async fn rpc(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> eyre::Result<()> {
        let _: serde_json::Value = self.provider()?.raw_request(method.into(), params).await?;
        Ok(())
    }

    /// The logs of event `E` for `channel`.
    pub(crate) async fn events<E: SolEvent>(&self, channel: B256) -> eyre::Result<Vec<E>> {
        let filter = Filter::new()
            .address(self.address("tokenNetwork"))
            .event_signature(E::SIGNATURE_HASH)
            .topic1(channel)
            .from_block(0);
        Ok(self
            .provider()?
            .get_logs(&filter)
            .await?
            .iter()
            .filter_map(|log| E::decode_log_data(log.data()).ok())
            .collect())
    }

    pub(crate) async fn eventually<E: SolEvent>(
        &self,
        channel: B256,
        what: &str,
    ) -> eyre::Result<E> {
        for _ in 0..300 {
            if let Some(event) = self.events::<E>(channel).await?.pop() {
                return Ok(event);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eyre::bail!("timed out waiting for {what}")
    }

    /// The channel's settle event once it is on chain, with `first`'s payout and the other's.
    pub(crate) async fn settled(
        &self,
        channel: B256,
        first: Address,
        what: &str,
    ) -> eyre::Result<(TokenNetwork::ChannelSettled, U256, U256)> {
        let settled = self
            .eventually::<TokenNetwork::ChannelSettled>(channel, what)
            .await?;
        // Payouts come in participant order: the lower address first.
        let (mine, other) = if first < self.other(first) {
            (settled.payout1, settled.payout2)
        } else {
            (settled.payout2, settled.payout1)
        };
        Ok((settled, mine, other))
    }

    /// The other demo wallet.
    pub(crate) fn other(&self, wallet: Address) -> Address {
        let (alice, brandon) = (self.wallet("alice"), self.wallet("brandon"));
        if wallet == alice { brandon } else { alice }
    }

    pub(crate) async fn pass_hold_period(&self) -> eyre::Result<()> {
        self.advance(61).await
    }

    /// Moves the chain's clock `seconds` on and mines a block at the new time.
    pub(crate) async fn advance(&self, seconds: u64) -> eyre::Result<()> {
        self.rpc("evm_increaseTime", serde_json::json!([seconds]))
            .await?;
        self.rpc("evm_mine", serde_json::json!([])).await
    }

    /// A channel `payer` opens to `partner` with a 600 s hold period and `deposit`, the
    /// partner depositing 50.
    pub(crate) fn open_funded(
        &self,
        payer: &str,
        partner: &str,
        deposit: &str,
    ) -> eyre::Result<B256> {
        self.open_with(payer, partner, "600", deposit)
    }

    /// A wallet of the stack through the mesh crate, as a phone app holds it.
    pub(crate) async fn mesh(&self, name: &str) -> eyre::Result<Mesh> {
        let deployment = &self.dev["deployment"];
        let config = MeshConfig {
            chain_id: deployment["chainId"].as_u64().unwrap_or_default(),
            token: self.address("token"),
            signed_agent: self.address("signedAgent"),
            token_network: self.address("tokenNetwork"),
            condition_registry: self.address("conditionRegistry"),
            deploy_block: 0,
            rpc_url: Some(self.field("rpcUrl")),
            watcher_url: Some(self.field("watcherUrl")),
            relayer_url: Some(self.field("relayerUrl")),
            watch_reward: parse_ether("1")?,
            finality: 0,
        };
        Ok(Mesh::open(&self.home.join("wallets").join(name), config).await?)
    }
}

/// Stops `child` as Ctrl-C would (SIGINT), killing it if it has not exited within 5 s.
pub(crate) fn interrupt(child: &mut Child) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Dev {
    fn drop(&mut self) {
        interrupt(&mut self.child);
        // A failed test leaves its wallets, journals and node logs to read.
        if std::thread::panicking() {
            eprintln!("kept {} for the failure", self.home.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.home);
        }
    }
}

/// The channel id a `channel open` printed.
pub(crate) fn opened(output: &str) -> eyre::Result<B256> {
    output
        .lines()
        .find_map(|line| {
            line.strip_prefix("channel ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| eyre::eyre!("no channel id in {output:?}"))
}

pub(crate) fn file(home: &Path, name: &str) -> String {
    home.join(name).display().to_string()
}
