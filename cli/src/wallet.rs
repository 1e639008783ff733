//! The wallet commands, on the `mesh` crate: what a phone app does, from a terminal.
//! Amounts are in SMT with decimals (`1.5`).

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, U256};
use eyre::{WrapErr, bail, eyre};
use smartmesh_chain::Deployment;
use smartmesh_mesh::{KEY_FILE, Mesh, MeshConfig, MeshError, Relayed, create_key, import_key};
use smartmesh_protocol::{
    TokenNetwork,
    channel::{ChannelMessage, Phase},
};

use crate::dev::{DevFile, smt};

/// Which wallet, and where its stack is.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WalletArgs {
    /// Where `smartmesh dev` keeps its state (its dev.json names the stack).
    #[arg(
        long,
        env = "SMARTMESH_HOME",
        default_value = ".smartmesh",
        global = true
    )]
    home: PathBuf,
    /// The wallet: a name under <home>/wallets, or a directory.
    #[arg(
        long,
        short = 'w',
        env = "SMARTMESH_WALLET",
        default_value = "default",
        global = true
    )]
    wallet: String,
    /// The chain's JSON-RPC endpoint (else dev.json's).
    #[arg(long, global = true)]
    rpc_url: Option<String>,
    /// The settlement watcher (else dev.json's).
    #[arg(long, global = true)]
    watcher_url: Option<String>,
    /// The relayer (else dev.json's).
    #[arg(long, global = true)]
    relayer_url: Option<String>,
    /// The deployment manifest (else dev.json's).
    #[arg(long, global = true)]
    deployment: Option<PathBuf>,
    /// What this wallet's Watches pay the watcher for a successful dispute, in SMT.
    #[arg(long, default_value = "1", global = true)]
    watch_reward: String,
    /// Seconds after which the chain's blocks are final (`F`): locks expire at least this
    /// long before a close this wallet has not seen could settle, and a lock is removed unpaid
    /// only this long after its expiry. Default: 0 on `smartmesh dev`'s chain, 900 elsewhere.
    #[arg(long, global = true)]
    finality: Option<u64>,
}

impl WalletArgs {
    /// The wallet's name as given.
    pub(crate) fn name(&self) -> &str {
        &self.wallet
    }

    pub(crate) fn dir(&self) -> PathBuf {
        if self.wallet.contains('/') {
            PathBuf::from(&self.wallet)
        } else {
            self.home.join("wallets").join(&self.wallet)
        }
    }

    fn dev(&self) -> eyre::Result<Option<DevFile>> {
        DevFile::read(&self.home)
    }

    /// Whether the wallet runs against `smartmesh dev`'s chain (short timings).
    pub(crate) fn on_dev_chain(&self) -> eyre::Result<bool> {
        Ok(self.deployment.is_none() && self.dev()?.is_some())
    }

    fn config(&self) -> eyre::Result<MeshConfig> {
        let dev = self.dev()?;
        let deployment = match (&self.deployment, &dev) {
            (Some(path), _) => Deployment::read(path)?,
            (None, Some(dev)) => dev.deployment.clone(),
            (None, None) => bail!(
                "no stack known: run `smartmesh dev` (it writes {}), or pass --deployment FILE with --rpc-url, --watcher-url and --relayer-url",
                self.home.join("dev.json").display()
            ),
        };
        let pick = |flag: &Option<String>, from_dev: fn(&DevFile) -> &String| {
            flag.clone()
                .or_else(|| dev.as_ref().map(|dev| from_dev(dev).clone()))
        };
        Ok(MeshConfig {
            chain_id: deployment.chain_id,
            token: deployment.token,
            signed_agent: deployment.signed_agent,
            token_network: deployment.token_network,
            condition_registry: deployment.condition_registry,
            deploy_block: deployment.deploy_block,
            rpc_url: pick(&self.rpc_url, |dev| &dev.rpc_url),
            watcher_url: pick(&self.watcher_url, |dev| &dev.watcher_url),
            relayer_url: pick(&self.relayer_url, |dev| &dev.relayer_url),
            watch_reward: amount("--watch-reward", &self.watch_reward)?,
            finality: self
                .finality
                .unwrap_or(if self.deployment.is_none() && dev.is_some() {
                    0
                } else {
                    900
                }),
        })
    }

    pub(crate) async fn open(&self) -> eyre::Result<Mesh> {
        let dir = self.dir();
        if !dir.join(KEY_FILE).exists() {
            bail!(
                "no wallet at {}: create it with `smartmesh wallet new --wallet {}`",
                dir.display(),
                self.wallet
            );
        }
        Ok(Mesh::open(&dir, self.config()?).await?)
    }

    /// An address, or the address of a wallet dev.json knows by name.
    pub(crate) fn address(&self, text: &str) -> eyre::Result<Address> {
        if let Ok(address) = text.parse() {
            return Ok(address);
        }
        self.dev()?
            .and_then(|dev| dev.wallets.into_iter().find(|(name, _)| name == text))
            .map(|(_, address)| address)
            .ok_or_else(|| eyre!("{text:?} is neither an address nor a wallet of the dev stack"))
    }
}

/// An amount of SMT with decimals, in SMT wei: whole wei or refused, never rounded.
pub(crate) fn amount(flag: &str, text: &str) -> eyre::Result<U256> {
    Ok(smartmesh_mesh::parse_smt(flag, text)?)
}

/// An amount that must move something: above zero.
fn positive_amount(flag: &str, text: &str) -> eyre::Result<U256> {
    Ok(smartmesh_mesh::parse_positive_smt(flag, text)?)
}

/// `smartmesh wallet ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum WalletCommand {
    /// Create a wallet: a new key in a file only you can read.
    New,
    /// Create a wallet from an existing key (restoring from a backup: run `channel restore`
    /// before closing any channel).
    Import {
        /// A file holding the hex private key.
        #[arg(long)]
        key_file: PathBuf,
    },
    /// The wallet's address, balances and channels.
    Show,
}

/// `smartmesh channel ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ChannelCommand {
    /// Open a channel to a partner through the relayer (no ETH needed), optionally depositing.
    Open {
        /// The partner: an address, or a dev wallet's name (alice, brandon, carol).
        #[arg(long)]
        partner: String,
        /// The hold period in seconds: how long a close can be disputed.
        #[arg(long, default_value_t = 3_600)]
        settle_timeout: u64,
        /// SMT to deposit right away.
        #[arg(long)]
        deposit: Option<String>,
    },
    /// Deposit more SMT into a channel (a permit: no approval, no ETH).
    Deposit {
        /// The channel (needed when the wallet has several).
        #[arg(long)]
        channel: Option<B256>,
        /// SMT to add.
        #[arg(long)]
        amount: String,
    },
    /// Close a channel, claiming what this wallet paid and submitting the partner's latest
    /// proof.
    Close {
        /// The channel (needed when the wallet has several).
        #[arg(long)]
        channel: Option<B256>,
        /// Declare this claim (SMT) instead of the largest amount signed. Below it, this is a
        /// lie the partner's watcher punishes with your whole deposit.
        #[arg(long, requires = "forfeit_deposit")]
        claim: Option<String>,
        /// Declare none of this wallet's pending locks (a lie, like an under-declared claim,
        /// once a dropped lock's condition is met in time).
        #[arg(long, requires = "forfeit_deposit")]
        drop_locks: bool,
        /// Acknowledge that an under-declared claim forfeits your deposit.
        #[arg(long)]
        forfeit_deposit: bool,
    },
    /// Settle a closed channel after its hold period.
    Settle {
        /// The channel (needed when the wallet has several).
        #[arg(long)]
        channel: Option<B256>,
    },
    /// The channel's state on chain and in this wallet.
    Status {
        /// The channel (needed when the wallet has several).
        #[arg(long)]
        channel: Option<B256>,
    },
    /// After restoring from a backup: learn from the watcher the latest proof this wallet
    /// signed in each channel.
    Restore,
    /// Start following a channel this wallet is a participant of but did not open (a partner
    /// opened it): read it from the chain into the wallet.
    Track {
        /// The channel.
        #[arg(long)]
        channel: B256,
    },
}

/// `smartmesh pay`: sign a payment and hand it over by any means.
#[derive(Debug, clap::Args)]
pub(crate) struct PayArgs {
    /// The channel (needed when the wallet has several).
    #[arg(long, conflicts_with = "to")]
    channel: Option<B256>,
    /// Whom to pay (an address, or a wallet of the dev stack by name): over the channel
    /// with them, or, through this wallet's running `smartmesh node`, along the cheapest
    /// route of channels when there is none.
    #[arg(long, conflicts_with_all = ["resend", "lock_secret_hash"])]
    to: Option<String>,
    /// The most SMT of fees a routed payment may cost.
    #[arg(long, requires = "to", default_value = "1")]
    max_fee: String,
    /// SMT to pay.
    #[arg(
        long,
        required_unless_present = "resend",
        conflicts_with = "resend",
        allow_negative_numbers = true
    )]
    amount: Option<String>,
    /// Write the last payment this wallet signed again, signing nothing: for a handover that
    /// failed (the payment is in the journal; paying again would pay twice).
    #[arg(long)]
    resend: bool,
    /// Pay conditionally: lock the amount on this hashlock (`sha256(secret)`, 32 bytes hex);
    /// the partner is paid once it learns the secret and this wallet unlocks, or it registers
    /// the secret on chain before the lock expires.
    #[arg(long, requires = "expires_in", conflicts_with = "resend")]
    lock_secret_hash: Option<B256>,
    /// Seconds until the lock expires.
    #[arg(long, requires = "lock_secret_hash")]
    expires_in: Option<u64>,
    /// Write the payment (`smr1...`) to this file instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// `smartmesh receive`: accept a payment.
#[derive(Debug, clap::Args)]
pub(crate) struct ReceiveArgs {
    /// The payment itself (`smr1...`), or a file holding it.
    payment: String,
    #[command(flatten)]
    wallet: WalletArgs,
}

fn relayed(what: &str, relayed: &Relayed) {
    say!(
        "{what}: transaction {}, fee {} SMT paid to the relayer",
        relayed.tx_hash,
        smt(relayed.fee)
    );
}

/// The channel named, or the wallet's only one.
pub(crate) async fn channel(mesh: &Mesh, given: Option<B256>) -> eyre::Result<B256> {
    if let Some(id) = given {
        return Ok(id);
    }
    let channels = mesh.channels().await?;
    match channels.as_slice() {
        [only] => Ok(only.id),
        [] => bail!("this wallet has no channel: open one with `smartmesh channel open`"),
        many => bail!(
            "this wallet has {} channels: pass --channel ({})",
            many.len(),
            many.iter()
                .map(|c| c.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// A hint for what to do after an error.
pub(crate) fn hint(error: MeshError) -> eyre::Report {
    let next = match &error {
        MeshError::NoService(_) => {
            Some("start the stack with `smartmesh dev`, or pass the service's URL")
        }
        MeshError::MustRestore => Some("run `smartmesh channel restore`"),
        MeshError::Frozen { .. } => Some("wait until what you signed lands or its deadline passes"),
        MeshError::UnknownChannel(_) => Some(
            "a channel a partner opened: `smartmesh channel track --channel ID` reads it from the chain; else open one with this wallet, or check --channel",
        ),
        _ => None,
    };
    match next {
        Some(next) => eyre!("{error}\n  next: {next}"),
        None => eyre!(error),
    }
}

pub(crate) async fn wallet(command: WalletCommand, args: WalletArgs) -> eyre::Result<()> {
    let key_file = args.dir().join(KEY_FILE);
    match command {
        WalletCommand::New => {
            let key = create_key(&key_file).map_err(hint)?;
            say!(
                "wallet {}: {}\n  key: {} (only you can read it)",
                args.wallet,
                key.address(),
                key_file.display()
            );
        }
        WalletCommand::Import { key_file: source } => {
            let hex = std::fs::read_to_string(&source)
                .wrap_err_with(|| format!("cannot read {}", source.display()))?;
            let key = import_key(&key_file, &hex).map_err(hint)?;
            let mesh = args.open().await?;
            mesh.mark_restored().await?;
            say!(
                "wallet {}: {} imported\n  restored from a backup: run `smartmesh channel restore` before closing any channel",
                args.wallet,
                key.address()
            );
        }
        WalletCommand::Show => {
            let mesh = args.open().await?;
            say!("wallet {}: {}", args.wallet, mesh.address());
            match mesh.balances().await {
                Ok((smt_balance, eth)) => say!("  {} SMT, {} ETH", smt(smt_balance), smt(eth)),
                Err(error) => say!("  balances unavailable: {error}"),
            }
            for channel in mesh.channels().await? {
                let capacity = mesh.capacity(channel.id).await?;
                say!(
                    "  channel {} with {} ({}): can send {} SMT, can receive {} SMT",
                    channel.id,
                    channel.partner,
                    channel.state,
                    smt(capacity.can_send),
                    smt(capacity.can_receive)
                );
            }
        }
    }
    Ok(())
}

pub(crate) async fn channel_command(command: ChannelCommand, args: WalletArgs) -> eyre::Result<()> {
    let mesh = args.open().await?;
    match command {
        ChannelCommand::Open {
            partner,
            settle_timeout,
            deposit,
        } => {
            let partner = args.address(&partner)?;
            let (id, open) = mesh
                .open_channel(partner, settle_timeout)
                .await
                .map_err(hint)?;
            say!("channel {id} opened with {partner} (hold period {settle_timeout} s)");
            relayed("  open", &open);
            if let Some(deposit) = deposit {
                let done = mesh
                    .deposit(id, positive_amount("--deposit", &deposit)?)
                    .await
                    .map_err(hint)?;
                relayed(&format!("  deposit {deposit} SMT"), &done);
            }
        }
        ChannelCommand::Deposit {
            channel: id,
            amount: more,
        } => {
            let id = channel(&mesh, id).await?;
            let current = mesh.refresh(id).await.map_err(hint)?.my_deposit;
            let total = current
                .checked_add(positive_amount("--amount", &more)?)
                .ok_or_else(|| eyre!("--amount {more:?}: the total deposit would pass 2^256"))?;
            let done = mesh.deposit(id, total).await.map_err(hint)?;
            relayed(
                &format!("deposit {more} SMT (total {} SMT)", smt(total)),
                &done,
            );
        }
        ChannelCommand::Close {
            channel: id,
            claim,
            drop_locks,
            forfeit_deposit: _,
        } => {
            let id = channel(&mesh, id).await?;
            let claim = claim.map(|claim| amount("--claim", &claim)).transpose()?;
            let signed = mesh.close_claim(id).await?;
            let own_locks = drop_locks.then(smartmesh_protocol::LockList::new);
            let done = mesh
                .close_declaring(id, claim, own_locks)
                .await
                .map_err(hint)?;
            let declared = claim.unwrap_or(signed);
            say!(
                "channel {id} closed claiming {} SMT paid (largest signed: {} SMT)",
                smt(declared),
                smt(signed)
            );
            relayed("  close", &done);
        }
        ChannelCommand::Settle { channel: id } => {
            let id = channel(&mesh, id).await?;
            let done = mesh.settle(id).await.map_err(hint)?;
            relayed(&format!("channel {id} settled"), &done);
        }
        ChannelCommand::Status { channel: id } => {
            let id = channel(&mesh, id).await?;
            let local = mesh.refresh(id).await.map_err(hint)?;
            let capacity = mesh.capacity(id).await?;
            say!("channel {id} with {}: {}", local.partner, local.state);
            say!(
                "  deposits: mine {} SMT, partner {} SMT; paid {} SMT, received {} SMT",
                smt(local.my_deposit),
                smt(local.partner_deposit),
                smt(capacity.sent),
                smt(capacity.received)
            );
            if local.state == Phase::Open {
                say!(
                    "  can send {} SMT, can receive {} SMT",
                    smt(capacity.can_send),
                    smt(capacity.can_receive)
                );
            }
            if let Some(freeze) = &local.frozen {
                say!("  frozen: a {} signed, until {}", freeze.kind, freeze.until);
            }
            crate::locks::list_pending(&mesh, id).await?;
            if let Some(url) = &mesh.config().rpc_url {
                let provider = smartmesh_chain::connect(url)?;
                let info = TokenNetwork::new(mesh.config().token_network, provider)
                    .channelInfo(id)
                    .call()
                    .await?;
                if info.state == 2 && info.penalized {
                    say!(
                        "  closed by {}; penalized: the closer under-declared, its partner gets all; settle at {}",
                        info.closer,
                        info.settleAt
                    );
                } else if info.state == 2 {
                    say!(
                        "  closed by {} claiming {} SMT paid; settle at {}",
                        info.closer,
                        smt(info.claimTransferred),
                        info.settleAt
                    );
                }
            }
        }
        ChannelCommand::Track { channel: id } => {
            let channel = mesh.refresh(id).await.map_err(hint)?;
            let capacity = mesh.capacity(id).await?;
            say!(
                "tracking channel {id} with {} ({}): deposits mine {} SMT, partner {} SMT; hold period {} s",
                channel.partner,
                channel.state,
                smt(channel.my_deposit),
                smt(channel.partner_deposit),
                channel.settle_timeout
            );
            say!(
                "  can send {} SMT, can receive {} SMT",
                smt(capacity.can_send),
                smt(capacity.can_receive)
            );
        }
        ChannelCommand::Restore => {
            let learned = mesh.restore().await.map_err(hint)?;
            say!(
                "restored: {learned} proof(s) this wallet signed were missing and are journaled now"
            );
        }
    }
    Ok(())
}

pub(crate) async fn pay(args: PayArgs) -> eyre::Result<()> {
    if let (Some(to), Some(text)) = (&args.to, &args.amount) {
        let target = args.wallet.address(to)?;
        let amount = positive_amount("--amount", text)?;
        let request = crate::node::Request::Pay {
            to: target,
            amount,
            max_fee: crate::wallet::amount("--max-fee", &args.max_fee)?,
        };
        match crate::node::ask(&args.wallet.dir(), &request).await? {
            Some(crate::node::Response::Started {
                condition_id,
                route,
            }) => {
                say!(
                    "paying {text} SMT to {to} {}{}",
                    crate::node::describe(&route),
                    condition_id.map_or(String::new(), |id| format!(
                        ": transfer {id} (see `smartmesh transfers`)"
                    ))
                );
                return Ok(());
            }
            Some(crate::node::Response::Error { message }) => bail!("{message}"),
            Some(other) => bail!("the node answered {other:?} to a payment"),
            // No node runs: only a direct payment, handed over by hand.
            None => {}
        }
    }
    let mesh = args.wallet.open().await?;
    let id = match &args.to {
        Some(to) => {
            let partner = args.wallet.address(to)?;
            mesh.channels()
                .await?
                .into_iter()
                .find(|c| c.partner == partner && c.state == Phase::Open)
                .map(|c| c.id)
                .ok_or_else(|| {
                    eyre!(
                        "no open channel with {to}: a payment routed through other phones goes through your node; start `smartmesh node --wallet {}` and pay again",
                        args.wallet.name()
                    )
                })?
        }
        None => channel(&mesh, args.channel).await?,
    };
    if let (Some(condition_id), Some(expires_in), Some(text)) =
        (args.lock_secret_hash, args.expires_in, &args.amount)
    {
        let amount = positive_amount("--amount", text)?;
        let amount = u128::try_from(amount)
            .map_err(|_| eyre!("--amount {text:?}: a lock holds at most 2^128 - 1 wei"))?;
        let lock = smartmesh_protocol::Lock {
            expiry: now_secs() + expires_in,
            amount,
            condition_id,
        };
        let message = mesh.lock(id, lock, Vec::new()).await.map_err(hint)?;
        return crate::locks::hand_over(
            &message,
            args.out.as_deref(),
            &format!(
                "locked {text} SMT on {condition_id} until {} (unix seconds)",
                lock.expiry
            ),
        );
    }
    let (proof, what) = match &args.amount {
        Some(text) => {
            let proof = mesh
                .pay(id, positive_amount("--amount", text)?)
                .await
                .map_err(hint)?;
            (proof, format!("paid {text} SMT"))
        }
        None => {
            let message = mesh.last_message(id).await?.ok_or_else(|| {
                eyre!("this wallet has signed no payment on channel {id}: nothing to resend")
            })?;
            if !matches!(message, ChannelMessage::Payment(_)) {
                return crate::locks::hand_over(
                    &message,
                    args.out.as_deref(),
                    "resent the last message",
                );
            }
            let proof = message
                .proof()
                .cloned()
                .expect("a payment carries its proof");
            (proof, "resent the last payment".to_owned())
        }
    };
    let text = proof.to_text()?;
    match &args.out {
        Some(path) => {
            if let Err(error) = std::fs::write(path, format!("{text}\n")) {
                bail!(
                    "cannot write {}: {error}\n  the payment (total {} SMT, nonce {}) is signed and in the journal: do not pay again\n  next: smartmesh pay --resend --out FILE (writes the same payment again)",
                    path.display(),
                    smt(proof.proof.transferredAmount),
                    proof.proof.nonce,
                );
            }
            say!(
                "{what} (total {} SMT, nonce {}): hand {} to your partner",
                smt(proof.proof.transferredAmount),
                proof.proof.nonce,
                path.display()
            );
        }
        None => say!("{text}"),
    }
    Ok(())
}

pub(crate) async fn receive(args: ReceiveArgs) -> eyre::Result<()> {
    let mesh = args.wallet.open().await?;
    // The text form always starts with smr1; anything else names a file.
    let text = if args.payment.starts_with(smartmesh_protocol::TEXT_PREFIX) {
        args.payment.clone()
    } else {
        let path = Path::new(&args.payment);
        std::fs::read_to_string(path).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => eyre!(
                "no such file: {} (give a file holding a payment, or the payment itself, smr1...)",
                path.display()
            ),
            _ => eyre!("cannot read {}: {error}", path.display()),
        })?
    };
    // A lock removed unpaid is taken only on a registry read at or after its expiry that
    // shows its condition unregistered before it: read it now when the chain is reachable.
    if let Ok(ChannelMessage::LockExpired(expired)) = ChannelMessage::from_text(text.trim())
        && mesh.config().rpc_url.is_some()
        && let Err(error) = mesh.check_registry(expired.condition_id).await
    {
        say!(
            "could not read the registry ({error}): the lock stays pending unless an earlier read proves it expired"
        );
    }
    let received = mesh.receive_text(text.trim()).await.map_err(hint)?;
    crate::locks::report_received(&received)
}

pub(crate) async fn sync(args: WalletArgs) -> eyre::Result<()> {
    let mesh = args.open().await?;
    let report = mesh.sync().await.map_err(hint)?;
    say!(
        "synced: {} receipt(s) stored by the watcher, {} already held, {} backup(s) of your own payments, {} secret(s) it registers if their locks are still pending near expiry",
        report.stored,
        report.known,
        report.backups,
        report.secrets
    );
    for (id, reason) in report.rejected {
        say!("  refused for channel {id}: {reason} (kept; sync again later)");
    }
    for (condition, reason) in report.secrets_rejected {
        say!("  secret of condition {condition} refused: {reason} (kept; sync again later)");
    }
    Ok(())
}

/// `smartmesh balances`: the dev stack's accounts, SMT and ETH.
pub(crate) async fn balances(args: WalletArgs) -> eyre::Result<()> {
    let config = args.config()?;
    let dev = args.dev()?.ok_or_else(|| {
        eyre!(
            "no dev stack at {}: run `smartmesh dev`",
            args.home.display()
        )
    })?;
    let url = config
        .rpc_url
        .clone()
        .ok_or_else(|| eyre!("no --rpc-url"))?;
    let provider = smartmesh_chain::connect(&url)?;
    let token = smartmesh_protocol::SmartMeshToken::new(config.token, provider.clone());
    let mut accounts: Vec<(String, Address)> = dev.wallets.clone();
    accounts.push(("watcher".into(), dev.watcher));
    for (index, relayer) in dev.relayers.iter().enumerate() {
        accounts.push((
            if index == 0 {
                "relayer".into()
            } else {
                format!("relayer {index}")
            },
            *relayer,
        ));
    }
    say!(
        "{:<10} {:<44} {:>16} {:>22}",
        "account",
        "address",
        "SMT",
        "ETH"
    );
    for (name, address) in accounts {
        let smt_balance = token.balanceOf(address).call().await?;
        let eth = alloy::providers::Provider::get_balance(&provider, address).await?;
        say!(
            "{name:<10} {address:<44} {:>16} {:>22}",
            smt(smt_balance),
            smt(eth)
        );
    }
    Ok(())
}
