//! The commands of conditional payments: `reveal`, `unlock`, `expire`, and how messages are
//! handed over and reported.

use std::path::{Path, PathBuf};

use alloy::primitives::B256;
use eyre::bail;
use smartmesh_mesh::{Mesh, Received};
use smartmesh_protocol::channel::ChannelMessage;

use crate::{
    dev::smt,
    wallet::{WalletArgs, channel, hint},
};

/// `smartmesh reveal`: this wallet learned a hashlock's secret.
#[derive(Debug, clap::Args)]
pub(crate) struct RevealArgs {
    /// The secret (32 bytes hex); its sha256 is the lock's condition.
    #[arg(long)]
    secret: B256,
    /// Write the message for the payer (`smr1...`) to this file instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also register the secret on chain now, through the relayer (a fee in SMT, no ETH):
    /// the lock is then met whatever the payer does.
    #[arg(long)]
    on_chain: bool,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// `smartmesh unlock` and `smartmesh expire`: settle one of this wallet's locks off chain.
#[derive(Debug, clap::Args)]
pub(crate) struct LockArgs {
    /// The channel (needed when the wallet has several).
    #[arg(long)]
    channel: Option<B256>,
    /// The lock's condition (the secret's hash for a hashlock).
    #[arg(long)]
    condition: B256,
    /// Write the message (`smr1...`) to this file instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// Writes `message` to `out`, or prints it, after saying what it is.
pub(crate) fn hand_over(
    message: &ChannelMessage,
    out: Option<&Path>,
    what: &str,
) -> eyre::Result<()> {
    let text = message.to_text()?;
    match out {
        Some(path) => {
            if let Err(error) = std::fs::write(path, format!("{text}\n")) {
                bail!(
                    "cannot write {}: {error}\n  the message is signed and in the journal: do not sign it again\n  next: smartmesh pay --resend --out FILE (writes the same message again)",
                    path.display()
                );
            }
            say!("{what}: hand {} to your partner", path.display());
        }
        None => say!("{text}"),
    }
    Ok(())
}

pub(crate) fn report_received(received: &Received) -> eyre::Result<()> {
    let status = if received.already_held {
        "already received"
    } else {
        "received"
    };
    match &received.message {
        ChannelMessage::Payment(signed) => say!(
            "{status}: {} SMT paid in total on channel {} (nonce {}); run `smartmesh sync` when online",
            smt(signed.proof.transferredAmount),
            signed.proof.channelId,
            signed.proof.nonce
        ),
        ChannelMessage::LockedTransfer(transfer) => say!(
            "{status}: {} SMT locked on {} until {} on channel {} (nonce {}); paid once you learn the secret (`smartmesh reveal`)",
            smt(alloy::primitives::U256::from(transfer.lock.amount)),
            transfer.lock.condition_id,
            transfer.lock.expiry,
            transfer.proof.proof.channelId,
            transfer.proof.proof.nonce
        ),
        ChannelMessage::Unlock(unlock) => say!(
            "{status}: the lock on {} is paid: {} SMT paid in total on channel {}",
            unlock.condition_id,
            smt(unlock.proof.proof.transferredAmount),
            unlock.proof.proof.channelId
        ),
        ChannelMessage::LockExpired(expired) => say!(
            "{status}: the lock on {} expired unpaid on channel {}",
            expired.condition_id,
            expired.proof.proof.channelId
        ),
        ChannelMessage::RevealSecret(reveal) => say!(
            "{status}: the secret of {} on channel {}",
            smartmesh_protocol::hashlock_condition_id(&reveal.secret),
            reveal.channel_id
        ),
    }
    for condition in &received.unlock_due {
        say!(
            "  your partner knows the secret of your lock on {condition}: next: smartmesh unlock --condition {condition}"
        );
    }
    for reply in &received.replies {
        say!("  hand this back to your partner: {}", reply.to_text()?);
    }
    Ok(())
}

/// Every pending lock of the channel, both ways.
pub(crate) async fn list_pending(mesh: &Mesh, id: B256) -> eyre::Result<()> {
    let state = mesh.channel_state(id).await?;
    for (direction, side) in [("to partner", &state.mine), ("from partner", &state.theirs)] {
        for lock in side.locks.locks() {
            let secret = if state.secrets.contains_key(&lock.condition_id) {
                ", secret known"
            } else {
                ""
            };
            say!(
                "  pending lock {direction}: {} SMT on {} until {}{secret}",
                smt(alloy::primitives::U256::from(lock.amount)),
                lock.condition_id,
                lock.expiry
            );
        }
    }
    Ok(())
}

pub(crate) async fn reveal(args: RevealArgs) -> eyre::Result<()> {
    let mesh = args.wallet.open().await?;
    let replies = mesh.reveal(args.secret).await.map_err(hint)?;
    let condition = smartmesh_protocol::hashlock_condition_id(&args.secret);
    if replies.is_empty() {
        say!("secret of {condition} kept; no payer to tell");
    }
    for reply in &replies {
        hand_over(
            reply,
            args.out.as_deref(),
            &format!("secret of {condition} kept"),
        )?;
    }
    if args.on_chain {
        let done = mesh
            .register_secrets(vec![args.secret])
            .await
            .map_err(hint)?;
        say!(
            "registered {condition} on chain: transaction {}, fee {} SMT paid to the relayer",
            done.tx_hash,
            smt(done.fee)
        );
    }
    Ok(())
}

pub(crate) async fn unlock(args: LockArgs) -> eyre::Result<()> {
    let mesh = args.wallet.open().await?;
    let id = channel(&mesh, args.channel).await?;
    let message = mesh.unlock(id, args.condition).await.map_err(hint)?;
    let total = message
        .proof()
        .map(|p| p.proof.transferredAmount)
        .unwrap_or_default();
    hand_over(
        &message,
        args.out.as_deref(),
        &format!(
            "unlocked {} (total paid {} SMT)",
            args.condition,
            smt(total)
        ),
    )
}

pub(crate) async fn expire(args: LockArgs) -> eyre::Result<()> {
    let mesh = args.wallet.open().await?;
    let id = channel(&mesh, args.channel).await?;
    let read = mesh.check_registry(args.condition).await.map_err(hint)?;
    let message = mesh.expire(id, args.condition).await.map_err(hint)?;
    hand_over(
        &message,
        args.out.as_deref(),
        &format!(
            "the lock on {} expired unpaid (registry read at {}: {})",
            args.condition,
            read.block_time,
            if read.registered_at == 0 {
                "never registered".to_owned()
            } else {
                format!("registered at {}", read.registered_at)
            }
        ),
    )
}
