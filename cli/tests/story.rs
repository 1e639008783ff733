//! The whitepaper's story end to end, through the `smartmesh` binary on `smartmesh dev`'s
//! stack (anvil, the contracts, the relayer, the watcher), as `scripts/demo` plays it: Alice
//! and Brandon hold SMT and no ETH; they open and fund a channel through the relayer; Alice
//! pays Brandon three times offline (the payments travel as files); Brandon syncs and goes
//! offline; Alice closes with a stale claim; the watcher disputes; after the hold period
//! Brandon holds both deposits minus the watcher's reward. Then the honest close (no dispute,
//! the watcher settles for Brandon) and a cooperative settle through the mesh crate.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, U256, utils::parse_ether},
    providers::{DynProvider, Provider},
    rpc::types::Filter,
    sol_types::{SolEvent, SolStruct},
};
use smartmesh_mesh::{Mesh, MeshConfig};
use smartmesh_protocol::{SmartMeshToken, TokenNetwork};

/// `smartmesh dev` in the background; stopped with SIGINT (killed if that fails) on drop.
struct Dev {
    child: Child,
    home: PathBuf,
    dev: serde_json::Value,
}

impl Dev {
    fn start(name: &str) -> eyre::Result<Self> {
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
    fn sm(&self, args: &[&str]) -> eyre::Result<String> {
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

    fn field(&self, name: &str) -> String {
        self.dev[name].as_str().unwrap_or_default().to_owned()
    }

    fn address(&self, field: &str) -> Address {
        self.dev["deployment"][field]
            .as_str()
            .unwrap_or_default()
            .parse()
            .unwrap()
    }

    fn wallet(&self, name: &str) -> Address {
        self.dev["wallets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|pair| pair[0] == name)
            .and_then(|pair| pair[1].as_str()?.parse().ok())
            .unwrap()
    }

    fn provider(&self) -> eyre::Result<DynProvider> {
        Ok(smartmesh_chain::connect(&self.field("rpcUrl"))?)
    }

    async fn smt(&self, who: Address) -> eyre::Result<U256> {
        Ok(SmartMeshToken::new(self.address("token"), self.provider()?)
            .balanceOf(who)
            .call()
            .await?)
    }

    async fn rpc(&self, method: &'static str, params: serde_json::Value) -> eyre::Result<()> {
        let _: serde_json::Value = self.provider()?.raw_request(method.into(), params).await?;
        Ok(())
    }

    /// The logs of event `E` for `channel`.
    async fn events<E: SolEvent>(&self, channel: B256) -> eyre::Result<Vec<E>> {
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

    async fn eventually<E: SolEvent>(&self, channel: B256, what: &str) -> eyre::Result<E> {
        for _ in 0..300 {
            if let Some(event) = self.events::<E>(channel).await?.pop() {
                return Ok(event);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eyre::bail!("timed out waiting for {what}")
    }

    /// The channel's settle event once it is on chain, with `first`'s payout and the other's.
    async fn settled(
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
    fn other(&self, wallet: Address) -> Address {
        let (alice, brandon) = (self.wallet("alice"), self.wallet("brandon"));
        if wallet == alice { brandon } else { alice }
    }

    async fn pass_hold_period(&self) -> eyre::Result<()> {
        self.rpc("evm_increaseTime", serde_json::json!([61]))
            .await?;
        self.rpc("evm_mine", serde_json::json!([])).await
    }

    /// A wallet of the stack through the mesh crate, as a phone app holds it.
    async fn mesh(&self, name: &str) -> eyre::Result<Mesh> {
        let deployment = &self.dev["deployment"];
        let config = MeshConfig {
            chain_id: deployment["chainId"].as_u64().unwrap_or_default(),
            token: self.address("token"),
            signed_agent: self.address("signedAgent"),
            token_network: self.address("tokenNetwork"),
            rpc_url: Some(self.field("rpcUrl")),
            watcher_url: Some(self.field("watcherUrl")),
            relayer_url: Some(self.field("relayerUrl")),
            watch_reward: parse_ether("1")?,
        };
        Ok(Mesh::open(&self.home.join("wallets").join(name), config).await?)
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// The channel id a `channel open` printed.
fn opened(output: &str) -> eyre::Result<B256> {
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

fn file(home: &Path, name: &str) -> String {
    home.join(name).display().to_string()
}

#[tokio::test]
async fn the_whitepaper_story_through_the_cli() -> eyre::Result<()> {
    let dev = Dev::start("whitepaper")?;
    let (alice, brandon) = (dev.wallet("alice"), dev.wallet("brandon"));
    let watcher: Address = dev.field("watcher").parse()?;
    let provider = dev.provider()?;
    for who in [alice, brandon] {
        assert_eq!(dev.smt(who).await?, parse_ether("1000")?);
        assert_eq!(provider.get_balance(who).await?, U256::ZERO, "no ETH");
    }

    // Alice and Brandon open and fund the channel through the relayer.
    let channel = opened(&dev.sm(&[
        "channel",
        "open",
        "--wallet",
        "alice",
        "--partner",
        "brandon",
        "--settle-timeout",
        "60",
        "--deposit",
        "100",
    ])?)?;
    let id = channel.to_string();
    dev.sm(&[
        "channel",
        "deposit",
        "--wallet",
        "brandon",
        "--channel",
        &id,
        "--amount",
        "50",
    ])?;
    let fees_so_far = |smt: U256, start: &str, moved: &str| -> eyre::Result<U256> {
        Ok(parse_ether(start)? - parse_ether(moved)? - smt)
    };
    let brandon_fees = fees_so_far(dev.smt(brandon).await?, "1000", "50")?;
    assert!(
        !brandon_fees.is_zero(),
        "the relayer earned a fee from Brandon"
    );

    // Offline: three payments of 10 SMT, as files.
    for n in 1..=3 {
        let path = file(&dev.home, &format!("payment-{n}.smr"));
        let paid = dev.sm(&[
            "pay",
            "--wallet",
            "alice",
            "--channel",
            &id,
            "--amount",
            "10",
            "--out",
            &path,
        ])?;
        assert!(paid.contains(&format!("total {} SMT", 10 * n)), "{paid}");
        let received = dev.sm(&["receive", "--wallet", "brandon", &path])?;
        assert!(
            received.contains(&format!("{} SMT paid in total", 10 * n)),
            "{received}"
        );
    }
    // A payment handed over twice is refused the second time.
    assert!(
        dev.sm(&[
            "receive",
            "--wallet",
            "brandon",
            &file(&dev.home, "payment-3.smr")
        ])
        .is_err()
    );

    let synced = dev.sm(&["sync", "--wallet", "brandon"])?;
    assert!(synced.contains("1 receipt(s) stored"), "{synced}");

    // Alice closes declaring 10 where she signed 30; the watcher proves it.
    let closed = dev.sm(&[
        "channel",
        "close",
        "--wallet",
        "alice",
        "--channel",
        &id,
        "--claim",
        "10",
        "--forfeit-deposit",
    ])?;
    assert!(closed.contains("largest signed: 30 SMT"), "{closed}");
    let penalty = dev
        .eventually::<TokenNetwork::CloserPenalized>(channel, "the dispute")
        .await?;
    assert_eq!(penalty.watcher, watcher);
    assert_eq!(penalty.provenTransferred, parse_ether("30")?);
    let status = dev.sm(&["channel", "status", "--wallet", "brandon", "--channel", &id])?;
    assert!(status.contains("penalized"), "{status}");

    // After the hold period the watcher settles for the offline Brandon.
    dev.pass_hold_period().await?;
    let (settled, brandon_payout, alice_payout) =
        dev.settled(channel, brandon, "the settle").await?;
    assert_eq!(
        brandon_payout,
        parse_ether("149")?,
        "both deposits minus the reward"
    );
    assert_eq!(alice_payout, U256::ZERO, "Alice's deposit is confiscated");
    assert_eq!(
        (settled.watcher, settled.reward),
        (watcher, parse_ether("1")?)
    );
    assert_eq!(dev.smt(brandon).await?, parse_ether("1099")? - brandon_fees);
    assert_eq!(dev.smt(watcher).await?, parse_ether("1")?);
    assert_eq!(
        provider.get_balance(alice).await?,
        U256::ZERO,
        "Alice never held ETH"
    );
    let table = dev.sm(&["balances"])?;
    assert!(
        table.contains("brandon") && table.contains("relayer"),
        "{table}"
    );
    Ok(())
}

#[tokio::test]
async fn an_honest_close_and_a_cooperative_settle() -> eyre::Result<()> {
    let dev = Dev::start("honest")?;
    let (alice, brandon) = (dev.wallet("alice"), dev.wallet("brandon"));

    // Honest: Alice pays 5 twice and closes claiming all 10; Brandon stays offline.
    let channel = opened(&dev.sm(&[
        "channel",
        "open",
        "--wallet",
        "alice",
        "--partner",
        "brandon",
        "--settle-timeout",
        "60",
        "--deposit",
        "20",
    ])?)?;
    let id = channel.to_string();
    dev.sm(&[
        "channel",
        "deposit",
        "--wallet",
        "brandon",
        "--channel",
        &id,
        "--amount",
        "10",
    ])?;
    for _ in 0..2 {
        let payment = dev.sm(&[
            "pay",
            "--wallet",
            "alice",
            "--channel",
            &id,
            "--amount",
            "5",
        ])?;
        dev.sm(&["receive", "--wallet", "brandon", payment.trim()])?;
    }
    dev.sm(&["sync", "--wallet", "brandon"])?;
    let closed = dev.sm(&["channel", "close", "--wallet", "alice", "--channel", &id])?;
    assert!(closed.contains("claiming 10 SMT paid"), "{closed}");
    dev.pass_hold_period().await?;
    let (_, brandon_payout, alice_payout) = dev
        .settled(channel, brandon, "the watcher's settle")
        .await?;
    assert_eq!(
        brandon_payout,
        parse_ether("20")?,
        "his 10 and the 10 Alice paid"
    );
    assert_eq!(alice_payout, parse_ether("10")?);
    assert!(
        dev.events::<TokenNetwork::CloserPenalized>(channel)
            .await?
            .is_empty(),
        "an honest close is not disputed"
    );

    // Cooperative: a new channel through the mesh crate; both sign the split, Alice submits.
    let (alice_phone, brandon_phone) = (dev.mesh("alice").await?, dev.mesh("brandon").await?);
    let (channel, _) = alice_phone.open_channel(brandon, 60).await?;
    alice_phone.deposit(channel, parse_ether("30")?).await?;
    brandon_phone.refresh(channel).await?;
    let payment = alice_phone.pay(channel, parse_ether("4")?).await?;
    brandon_phone.receive_bytes(&payment.encode()?).await?;
    let (balance1, balance2) = if alice < brandon {
        (parse_ether("26")?, parse_ether("4")?)
    } else {
        (parse_ether("4")?, parse_ether("26")?)
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 600;
    let brandon_signature = brandon_phone
        .sign_cooperative_settle(channel, balance1, balance2, deadline)
        .await?;
    let before = dev.smt(brandon).await?;
    alice_phone
        .cooperative_settle(channel, balance1, balance2, deadline, &brandon_signature)
        .await?;
    let settled = dev
        .eventually::<TokenNetwork::ChannelCooperativelySettled>(channel, "the cooperative settle")
        .await?;
    assert_eq!((settled.balance1, settled.balance2), (balance1, balance2));
    assert_eq!(
        dev.smt(brandon).await? - before,
        parse_ether("4")?,
        "paid out at once"
    );
    assert_eq!(alice_phone.channel(channel).await?.state, "settled");
    Ok(())
}

#[tokio::test]
async fn a_restored_wallet_learns_its_latest_payment_and_a_withdrawal_lands() -> eyre::Result<()> {
    let dev = Dev::start("restore")?;
    let (alice_phone, brandon_phone) = (dev.mesh("alice").await?, dev.mesh("brandon").await?);
    let brandon = dev.wallet("brandon");
    let (channel, _) = alice_phone.open_channel(brandon, 60).await?;
    alice_phone.deposit(channel, parse_ether("40")?).await?;
    brandon_phone.refresh(channel).await?;

    // A withdrawal: Brandon signs Alice's, Alice sends both signatures through the relayer.
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 600;
    let brandon_signature = brandon_phone
        .sign_withdraw(channel, alice_phone.address(), parse_ether("10")?, deadline)
        .await?;
    alice_phone
        .withdraw(channel, parse_ether("10")?, deadline, &brandon_signature)
        .await?;
    let after = alice_phone.refresh(channel).await?;
    assert_eq!(after.my_withdrawn, parse_ether("10")?);
    assert!(
        after.frozen.is_none(),
        "the withdrawal landed: the channel thaws"
    );
    brandon_phone.refresh(channel).await?;

    // Alice pays 5, backs her phone up, pays 5 more, and syncs her own payments as backups.
    let first = alice_phone.pay(channel, parse_ether("5")?).await?;
    brandon_phone.receive_bytes(&first.encode()?).await?;
    let wallet = dev.home.join("wallets").join("alice");
    let backup = dev.home.join("alice-backup");
    std::fs::create_dir_all(&backup)?;
    // The journal and its write-ahead log, as a file-level backup takes them.
    for file in ["key", "journal.sqlite", "journal.sqlite-wal"] {
        if wallet.join(file).exists() {
            std::fs::copy(wallet.join(file), backup.join(file))?;
        }
    }
    let second = alice_phone.pay(channel, parse_ether("5")?).await?;
    brandon_phone.receive_bytes(&second.encode()?).await?;
    let report = alice_phone.sync().await?;
    assert_eq!(report.backups, 1, "{report:?}");
    let report = brandon_phone.sync().await?;
    assert_eq!(report.stored, 1, "{report:?}");
    let ack = brandon_phone
        .acknowledgment(channel, 2)
        .await?
        .expect("the watcher acknowledged");
    let digest = smartmesh_settlement::WatcherAck {
        channelId: channel,
        proofDigest: brandon_phone.proof_digest(&second.proof),
    }
    .eip712_signing_hash(&smartmesh_settlement::ack_domain(
        dev.dev["deployment"]["chainId"]
            .as_u64()
            .unwrap_or_default(),
        dev.address("tokenNetwork"),
    ));
    let signer =
        smartmesh_protocol::recover(&digest, &smartmesh_protocol::Signature65::from_slice(&ack)?)?;
    assert_eq!(
        signer,
        dev.field("watcher").parse::<Address>()?,
        "the acknowledgment is the watcher's"
    );
    drop(alice_phone);

    // The phone is lost; Alice restores the backup, which knows only the first payment.
    std::fs::remove_dir_all(&wallet)?;
    std::fs::rename(&backup, &wallet)?;
    let restored = dev.mesh("alice").await?;
    restored.mark_restored().await?;
    assert_eq!(
        restored.close_claim(channel).await?,
        parse_ether("5")?,
        "the backup is stale"
    );
    assert!(matches!(
        restored.close(channel).await,
        Err(smartmesh_mesh::MeshError::MustRestore)
    ));
    assert_eq!(
        restored.restore().await?,
        1,
        "the watcher held the newer payment"
    );
    assert_eq!(restored.close_claim(channel).await?, parse_ether("10")?);
    restored.close(channel).await?;
    assert!(
        dev.events::<TokenNetwork::ChannelClosed>(channel).await?[0].claimTransferred
            == parse_ether("10")?,
        "the close claims everything Alice signed: no penalty to fear"
    );
    Ok(())
}
