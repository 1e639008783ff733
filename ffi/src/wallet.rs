//! The wallet: its channels, payments in their text form, sync and the relayed operations.

use std::{path::PathBuf, sync::Arc};

use alloy::primitives::U256;
use smartmesh_mesh::{Capacity, Channel, KEY_FILE, Mesh, Relayed, format_smt};
use smartmesh_protocol::{Lock, channel::ChannelMessage};

use crate::{
    MeshFfiError, WalletConfig,
    config::{address, id},
    node::{Node, NodeListener, NodeOptions},
    runtime::on_runtime,
};

/// A wallet on the device: a key in a file only its owner reads and a journal beside it.
#[derive(Debug, uniffi::Object)]
pub struct Wallet {
    pub(crate) mesh: Arc<Mesh>,
}

async fn open(dir: PathBuf, config: WalletConfig) -> Result<Arc<Wallet>, MeshFfiError> {
    let config = config.to_mesh()?;
    on_runtime(async move {
        let mesh = Mesh::open(&dir, config).await?;
        Ok(Arc::new(Wallet {
            mesh: Arc::new(mesh),
        }))
    })
    .await
}

/// Creates a wallet in `dir` with a new random key. Refuses a directory that holds one.
#[uniffi::export]
pub async fn create_wallet(dir: String, config: WalletConfig) -> Result<Arc<Wallet>, MeshFfiError> {
    let dir = PathBuf::from(dir);
    smartmesh_mesh::create_key(&dir.join(KEY_FILE))?;
    open(dir, config).await
}

/// Creates a wallet in `dir` from an existing private key (64 hex digits): restoring from a
/// backup, run `restore` before closing any channel.
#[uniffi::export]
pub async fn import_wallet(
    dir: String,
    private_key: String,
    config: WalletConfig,
) -> Result<Arc<Wallet>, MeshFfiError> {
    let dir = PathBuf::from(dir);
    smartmesh_mesh::import_key(&dir.join(KEY_FILE), &private_key)?;
    open(dir, config).await
}

/// Opens the wallet in `dir`.
#[uniffi::export]
pub async fn load_wallet(dir: String, config: WalletConfig) -> Result<Arc<Wallet>, MeshFfiError> {
    let dir = PathBuf::from(dir);
    if !dir.join(KEY_FILE).exists() {
        return Err(MeshFfiError::Wallet {
            message: format!("no wallet at {}: create it first", dir.display()),
        });
    }
    open(dir, config).await
}

/// A channel as the wallet knows it, with what it can still move. Amounts in SMT.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ChannelInfo {
    /// The channel id.
    pub id: String,
    /// The other participant.
    pub partner: String,
    /// `open`, `closed` or `settled`, as last read from the chain.
    pub state: String,
    /// The hold period, in seconds.
    pub settle_timeout: u64,
    /// This wallet's deposit.
    pub my_deposit: String,
    /// The partner's deposit.
    pub partner_deposit: String,
    /// What this wallet can still pay or lock.
    pub can_send: String,
    /// What the partner can still pay or lock toward this wallet.
    pub can_receive: String,
    /// Everything this wallet paid.
    pub sent: String,
    /// Everything the partner paid this wallet.
    pub received: String,
    /// Whether something this wallet signed (a close, a withdrawal) stops payments for now.
    pub frozen: bool,
}

impl ChannelInfo {
    fn of(channel: &Channel, capacity: &Capacity) -> Self {
        Self {
            id: channel.id.to_string(),
            partner: channel.partner.to_string(),
            state: channel.state.to_string(),
            settle_timeout: channel.settle_timeout,
            my_deposit: format_smt(channel.my_deposit),
            partner_deposit: format_smt(channel.partner_deposit),
            can_send: format_smt(capacity.can_send),
            can_receive: format_smt(capacity.can_receive),
            sent: format_smt(capacity.sent),
            received: format_smt(capacity.received),
            frozen: channel.frozen.is_some(),
        }
    }
}

/// A relayed operation that was mined: the relayer paid its gas, this wallet its fee in SMT.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RelayedOperation {
    /// Its transaction.
    pub tx_hash: String,
    /// The fee, in SMT.
    pub fee: String,
}

impl From<Relayed> for RelayedOperation {
    fn from(relayed: Relayed) -> Self {
        Self {
            tx_hash: relayed.tx_hash.to_string(),
            fee: format_smt(relayed.fee),
        }
    }
}

/// A channel opened through the relayer.
#[derive(Debug, Clone, uniffi::Record)]
pub struct OpenedChannel {
    /// The new channel.
    pub channel_id: String,
    /// The open's transaction and fee.
    pub operation: RelayedOperation,
}

/// A message the wallet took from its partner.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ReceivedMessage {
    /// `payment`, `locked_transfer`, `unlock`, `lock_expired` or `reveal_secret`.
    pub kind: String,
    /// The channel it moved.
    pub channel_id: String,
    /// Everything the partner has paid on that channel now, in SMT (a payment or unlock).
    pub paid_in_total: Option<String>,
    /// The lock's amount in SMT (a locked transfer).
    pub locked: Option<String>,
    /// The journal already held exactly this message: nothing changed.
    pub already_held: bool,
    /// What to hand back to the partner, in the text form.
    pub replies: Vec<String>,
    /// This wallet's locks whose secret the partner revealed: unlock them.
    pub unlock_due: Vec<String>,
}

/// What a sync did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SyncSummary {
    /// Receipts the watcher stored newly.
    pub stored: u64,
    /// Receipts it already held.
    pub known: u64,
    /// Receipts it refused, each with its reason (kept, and uploaded again next time).
    pub rejected: Vec<String>,
    /// Backups of this wallet's own proofs it stored.
    pub backups: u64,
    /// Conditions (secrets, acknowledgments) it holds to register in time.
    pub conditions: u64,
}

/// The wallet's balances on chain, in SMT and ETH.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Balances {
    /// SMT.
    pub smt: String,
    /// ETH (a phone needs none: the relayer pays its gas).
    pub eth: String,
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn text(message: &ChannelMessage) -> Result<String, MeshFfiError> {
    message
        .to_text()
        .map_err(|e| MeshFfiError::from(smartmesh_mesh::MeshError::from(e)))
}

/// An amount that must move something.
fn positive(field: &str, text: &str) -> Result<U256, MeshFfiError> {
    Ok(smartmesh_mesh::parse_positive_smt(field, text)?)
}

async fn info(mesh: &Mesh, channel: &Channel) -> Result<ChannelInfo, MeshFfiError> {
    let capacity = mesh.capacity(channel.id).await?;
    Ok(ChannelInfo::of(channel, &capacity))
}

fn received(received: smartmesh_mesh::Received) -> Result<ReceivedMessage, MeshFfiError> {
    let message = &received.message;
    let (channel_id, paid, locked) = match message {
        ChannelMessage::Payment(signed) => (
            signed.proof.channelId,
            Some(signed.proof.transferredAmount),
            None,
        ),
        ChannelMessage::LockedTransfer(transfer) => (
            transfer.proof.proof.channelId,
            None,
            Some(U256::from(transfer.lock.amount)),
        ),
        ChannelMessage::Unlock(unlock) => (
            unlock.proof.proof.channelId,
            Some(unlock.proof.proof.transferredAmount),
            None,
        ),
        ChannelMessage::LockExpired(expired) => (expired.proof.proof.channelId, None, None),
        ChannelMessage::RevealSecret(reveal) => (reveal.channel_id, None, None),
    };
    Ok(ReceivedMessage {
        kind: smartmesh_mesh::message_kind(message).to_owned(),
        channel_id: channel_id.to_string(),
        paid_in_total: paid.map(format_smt),
        locked: locked.map(format_smt),
        already_held: received.already_held,
        replies: received
            .replies
            .iter()
            .map(text)
            .collect::<Result<_, _>>()?,
        unlock_due: received
            .unlock_due
            .iter()
            .map(ToString::to_string)
            .collect(),
    })
}

#[uniffi::export]
impl Wallet {
    /// The wallet's address.
    pub fn address(&self) -> String {
        self.mesh.address().to_string()
    }

    /// Every channel in the journal, as last read.
    pub async fn channels(&self) -> Result<Vec<ChannelInfo>, MeshFfiError> {
        let mesh = self.mesh.clone();
        on_runtime(async move {
            let mut all = Vec::new();
            for channel in mesh.channels().await? {
                all.push(info(&mesh, &channel).await?);
            }
            Ok(all)
        })
        .await
    }

    /// One channel, as the journal holds it.
    pub async fn channel(&self, channel_id: String) -> Result<ChannelInfo, MeshFfiError> {
        let (mesh, id) = (self.mesh.clone(), id("channel_id", &channel_id)?);
        on_runtime(async move { info(&mesh, &mesh.channel(id).await?).await }).await
    }

    /// Reads a channel from the chain into the journal (tracking it if it was unknown).
    pub async fn refresh_channel(&self, channel_id: String) -> Result<ChannelInfo, MeshFfiError> {
        let (mesh, id) = (self.mesh.clone(), id("channel_id", &channel_id)?);
        on_runtime(async move { info(&mesh, &mesh.refresh(id).await?).await }).await
    }

    /// Opens a channel to `partner` through the relayer (no ETH: a fee in SMT).
    pub async fn open_channel(
        &self,
        partner: String,
        settle_timeout: u64,
    ) -> Result<OpenedChannel, MeshFfiError> {
        let (mesh, partner) = (self.mesh.clone(), address("partner", &partner)?);
        on_runtime(async move {
            let (id, relayed) = mesh.open_channel(partner, settle_timeout).await?;
            Ok(OpenedChannel {
                channel_id: id.to_string(),
                operation: relayed.into(),
            })
        })
        .await
    }

    /// Raises this wallet's deposit in the channel to `total` SMT, with a permit.
    pub async fn deposit(
        &self,
        channel_id: String,
        total: String,
    ) -> Result<RelayedOperation, MeshFfiError> {
        let (mesh, id) = (self.mesh.clone(), id("channel_id", &channel_id)?);
        let total = positive("total", &total)?;
        on_runtime(async move { Ok(mesh.deposit(id, total).await?.into()) }).await
    }

    /// Closes the channel through the relayer, claiming everything this wallet signed.
    pub async fn close(&self, channel_id: String) -> Result<RelayedOperation, MeshFfiError> {
        let (mesh, id) = (self.mesh.clone(), id("channel_id", &channel_id)?);
        on_runtime(async move { Ok(mesh.close(id).await?.into()) }).await
    }

    /// Settles the channel after its hold period.
    pub async fn settle(&self, channel_id: String) -> Result<RelayedOperation, MeshFfiError> {
        let (mesh, id) = (self.mesh.clone(), id("channel_id", &channel_id)?);
        on_runtime(async move { Ok(mesh.settle(id).await?.into()) }).await
    }

    /// Pays `amount` SMT over the channel, offline: the signed proof's text form (`smr1...`),
    /// for a QR code or any link. It is in the journal before it is returned.
    pub async fn pay(&self, channel_id: String, amount: String) -> Result<String, MeshFfiError> {
        let (mesh, id) = (self.mesh.clone(), id("channel_id", &channel_id)?);
        let amount = positive("amount", &amount)?;
        on_runtime(async move {
            let proof = mesh.pay(id, amount).await?;
            text(&ChannelMessage::Payment(proof))
        })
        .await
    }

    /// Locks `amount` SMT on `condition_id` (a hashlock's or an acknowledgment's) for
    /// `expires_in` seconds: the locked transfer's text form.
    pub async fn pay_locked(
        &self,
        channel_id: String,
        amount: String,
        condition_id: String,
        expires_in: u64,
    ) -> Result<String, MeshFfiError> {
        let (mesh, id) = (self.mesh.clone(), id("channel_id", &channel_id)?);
        let condition_id = crate::config::id("condition_id", &condition_id)?;
        let amount = u128::try_from(positive("amount", &amount)?)
            .map_err(|_| MeshFfiError::invalid("amount: a lock holds at most 2^128 - 1 wei"))?;
        on_runtime(async move {
            let lock = Lock {
                expiry: mesh.now().saturating_add(expires_in),
                amount,
                condition_id,
            };
            text(&mesh.lock(id, lock, Vec::new()).await?)
        })
        .await
    }

    /// Pays one of this wallet's pending locks (the partner revealed its secret).
    pub async fn unlock(
        &self,
        channel_id: String,
        condition_id: String,
    ) -> Result<String, MeshFfiError> {
        let (mesh, id) = (self.mesh.clone(), id("channel_id", &channel_id)?);
        let condition_id = crate::config::id("condition_id", &condition_id)?;
        on_runtime(async move { text(&mesh.unlock(id, condition_id).await?) }).await
    }

    /// This wallet learned `secret`: what to hand each partner that locked on it.
    pub async fn reveal(&self, secret: String) -> Result<Vec<String>, MeshFfiError> {
        let (mesh, secret) = (self.mesh.clone(), id("secret", &secret)?);
        on_runtime(async move { mesh.reveal(secret).await?.iter().map(text).collect() }).await
    }

    /// Takes a message from the partner in its text form (`smr1...`), offline.
    pub async fn receive(&self, text: String) -> Result<ReceivedMessage, MeshFfiError> {
        let mesh = self.mesh.clone();
        on_runtime(async move { received(mesh.receive_text(text.trim()).await?) }).await
    }

    /// Hands the watcher every receipt it does not hold, with the Watches that let it
    /// dispute a stale close for this wallet, and the conditions to register in time.
    pub async fn sync(&self) -> Result<SyncSummary, MeshFfiError> {
        let mesh = self.mesh.clone();
        on_runtime(async move {
            let report = mesh.sync().await?;
            Ok(SyncSummary {
                stored: count(report.stored),
                known: count(report.known),
                rejected: report
                    .rejected
                    .iter()
                    .map(|(channel, why)| format!("{channel}: {why}"))
                    .collect(),
                backups: count(report.backups),
                conditions: count(report.secrets),
            })
        })
        .await
    }

    /// Learns, from the watcher, the proofs this wallet signed that a restored journal
    /// lacks: run it once after `import_wallet` from a backup. Returns how many.
    pub async fn restore(&self) -> Result<u64, MeshFfiError> {
        let mesh = self.mesh.clone();
        on_runtime(async move { Ok(count(mesh.restore().await?)) }).await
    }

    /// The wallet's SMT and ETH on chain.
    pub async fn balances(&self) -> Result<Balances, MeshFfiError> {
        let mesh = self.mesh.clone();
        on_runtime(async move {
            let (smt, eth) = mesh.balances().await?;
            Ok(Balances {
                smt: format_smt(smt),
                eth: format_smt(eth),
            })
        })
        .await
    }

    /// Starts the wallet's mesh node on the peer-to-peer transport: it takes what peers hand
    /// over, mediates and relays, and reports to `listener` until stopped.
    pub async fn start_node(
        &self,
        options: NodeOptions,
        listener: Arc<dyn NodeListener>,
    ) -> Result<Arc<Node>, MeshFfiError> {
        Node::start(self.mesh.clone(), options, listener).await
    }
}
