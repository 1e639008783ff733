//! The client discipline of DESIGN.md section 4, one rule per test, on two wallets that share
//! a channel and no network at all.

mod common;

use std::path::PathBuf;

use alloy::primitives::{B256, U256};
use common::config;
use smartmesh_mesh::{Channel, KEY_FILE, Mesh, MeshError, create_key};
use smartmesh_protocol::channel::{FreezeKind, Phase};

const CHANNEL: B256 = B256::repeat_byte(0xcc);

struct Pair {
    alice: Mesh,
    brandon: Mesh,
    dirs: Vec<PathBuf>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn wallet(test: &str, name: &str) -> eyre::Result<(Mesh, PathBuf)> {
    let dir = std::env::temp_dir().join(format!(
        "smartmesh-mesh-{test}-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    create_key(&dir.join(KEY_FILE))?;
    Ok((Mesh::open(&dir, config()).await?, dir))
}

/// Alice (100 SMT) and Brandon (50 SMT) in one open channel.
async fn pair(test: &str) -> eyre::Result<Pair> {
    let (alice, a) = wallet(test, "alice").await?;
    let (brandon, b) = wallet(test, "brandon").await?;
    alice.track(&side(&brandon, 100, 50)).await?;
    brandon.track(&side(&alice, 50, 100)).await?;
    Ok(Pair {
        alice,
        brandon,
        dirs: vec![a, b],
    })
}

/// The channel as seen by the partner of `partner`, with these deposits.
fn side(partner: &Mesh, mine: u64, theirs: u64) -> Channel {
    Channel {
        id: CHANNEL,
        partner: partner.address(),
        state: Phase::Open,
        settle_timeout: 3_600,
        my_deposit: U256::from(mine),
        my_withdrawn: U256::ZERO,
        partner_deposit: U256::from(theirs),
        partner_withdrawn: U256::ZERO,
        frozen: None,
        open_seen_at: 0,
    }
}

#[tokio::test]
async fn a_payment_is_in_the_journal_before_it_is_handed_over() -> eyre::Result<()> {
    let pair = pair("write_ahead").await?;
    let proof = pair.alice.pay(CHANNEL, U256::from(7)).await?;
    // A new process on the same files (the phone restarted) finds exactly that proof.
    let reopened = Mesh::open(&pair.dirs[0], config()).await?;
    assert_eq!(reopened.last_payment(CHANNEL).await?, Some(proof.clone()));
    assert_eq!(proof.proof.nonce, U256::from(1));
    assert_eq!(proof.proof.transferredAmount, U256::from(7));
    let received = pair.brandon.receive_text(&proof.to_text()?).await?;
    assert_eq!(received.message.proof(), Some(&proof));
    assert!(!received.already_held);
    Ok(())
}

#[tokio::test]
async fn concurrent_payments_never_share_a_nonce() -> eyre::Result<()> {
    let pair = std::sync::Arc::new(pair("lock").await?);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let pair = pair.clone();
        tasks.push(tokio::spawn(async move {
            pair.alice.pay(CHANNEL, U256::from(1)).await
        }));
    }
    let mut nonces = Vec::new();
    for task in tasks {
        let proof = task.await??;
        // Each nonce carries its own total: n payments of 1 make n.
        assert_eq!(proof.proof.transferredAmount, proof.proof.nonce);
        nonces.push(proof.proof.nonce.saturating_to::<u64>());
    }
    nonces.sort_unstable();
    assert_eq!(nonces, (1..=20).collect::<Vec<u64>>());
    Ok(())
}

#[tokio::test]
async fn a_retry_resends_the_same_proof() -> eyre::Result<()> {
    let pair = pair("retry").await?;
    let first = pair.alice.pay(CHANNEL, U256::from(5)).await?;
    // The handover "failed": the phone retries with what it signed, never a new signature.
    let again = pair.alice.last_payment(CHANNEL).await?.expect("journaled");
    assert_eq!(again.encode()?, first.encode()?);
    assert!(
        !pair
            .brandon
            .receive_text(&again.to_text()?)
            .await?
            .already_held
    );
    // Received twice: the second time is known, and changes nothing.
    assert!(
        pair.brandon
            .receive_text(&first.to_text()?)
            .await?
            .already_held
    );
    assert_eq!(
        pair.brandon.capacity(CHANNEL).await?.received,
        U256::from(5)
    );
    Ok(())
}

#[tokio::test]
async fn the_close_claim_is_the_largest_amount_ever_signed() -> eyre::Result<()> {
    let pair = pair("claim").await?;
    for amount in [3, 4, 5] {
        pair.alice.pay(CHANNEL, U256::from(amount)).await?;
    }
    // None of these was acknowledged by Brandon: the claim still covers all of them.
    assert_eq!(pair.alice.close_claim(CHANNEL).await?, U256::from(12));
    Ok(())
}

#[tokio::test]
async fn capacity_counts_withdrawals_signed_but_not_yet_on_chain() -> eyre::Result<()> {
    let pair = pair("withdrawals").await?;
    let deadline = now() + 3_600;
    // Brandon signs Alice's withdrawal of 60: until it lands or expires, Alice can have paid
    // at most 100 - 60 = 40 in his eyes.
    pair.brandon
        .sign_withdraw(CHANNEL, pair.alice.address(), U256::from(60), deadline)
        .await?;
    assert_eq!(
        pair.brandon.capacity(CHANNEL).await?.can_receive,
        U256::from(40)
    );
    let too_much = pair.alice.pay(CHANNEL, U256::from(45)).await?;
    let refused = pair.brandon.receive_text(&too_much.to_text()?).await;
    assert!(
        matches!(refused, Err(MeshError::Protocol(_))),
        "{refused:?}"
    );

    // Alice's own signed withdrawal counts against what she can pay (and freezes her side).
    pair.alice
        .sign_withdraw(CHANNEL, pair.alice.address(), U256::from(60), deadline)
        .await?;
    // 100 deposited, 60 of it signed away, 45 paid: nothing is left to pay.
    assert_eq!(pair.alice.capacity(CHANNEL).await?.can_send, U256::ZERO);
    assert_eq!(pair.alice.capacity(CHANNEL).await?.sent, U256::from(45));
    Ok(())
}

#[tokio::test]
async fn signing_a_withdraw_a_cooperative_settle_or_a_close_freezes_the_channel() -> eyre::Result<()>
{
    let pair = pair("freeze").await?;
    let deadline = now() + 3_600;
    pair.alice
        .sign_withdraw(CHANNEL, pair.alice.address(), U256::from(10), deadline)
        .await?;
    let paid = pair.alice.pay(CHANNEL, U256::from(1)).await;
    assert!(
        matches!(paid, Err(MeshError::Frozen { ref reason, .. }) if *reason == FreezeKind::Withdraw),
        "{paid:?}"
    );

    pair.brandon
        .sign_cooperative_settle(CHANNEL, U256::from(100), U256::from(50), deadline)
        .await?;
    let proof = pair.brandon.pay(CHANNEL, U256::from(1)).await;
    assert!(matches!(proof, Err(MeshError::Frozen { .. })), "{proof:?}");

    // A close: the freeze comes first, so even a close that never left the phone (no
    // relayer here) stops every payment.
    let (dave, dir) = wallet("freeze", "dave").await?;
    dave.track(&Channel {
        id: CHANNEL,
        partner: pair.alice.address(),
        state: Phase::Open,
        settle_timeout: 3_600,
        my_deposit: U256::from(10),
        my_withdrawn: U256::ZERO,
        partner_deposit: U256::ZERO,
        partner_withdrawn: U256::ZERO,
        frozen: None,
        open_seen_at: 0,
    })
    .await?;
    assert!(matches!(
        dave.close(CHANNEL).await,
        Err(MeshError::NoService(_))
    ));
    let paid = dave.pay(CHANNEL, U256::from(1)).await;
    assert!(
        matches!(paid, Err(MeshError::Frozen { ref reason, .. }) if *reason == FreezeKind::Close),
        "{paid:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[tokio::test]
async fn a_restored_wallet_refuses_to_close_until_it_asked_the_watcher() -> eyre::Result<()> {
    let pair = pair("restore").await?;
    pair.alice.mark_restored().await?;
    assert!(matches!(
        pair.alice.close(CHANNEL).await,
        Err(MeshError::MustRestore)
    ));
    // Nothing was frozen by the refused close: payments still move.
    pair.alice.pay(CHANNEL, U256::from(1)).await?;
    Ok(())
}

#[tokio::test]
async fn received_proofs_are_checked_before_they_are_kept() -> eyre::Result<()> {
    let pair = pair("receive").await?;
    let (mallory, dir) = wallet("receive", "mallory").await?;
    mallory
        .track(&Channel {
            id: CHANNEL,
            partner: pair.brandon.address(),
            state: Phase::Open,
            settle_timeout: 3_600,
            my_deposit: U256::from(100),
            my_withdrawn: U256::ZERO,
            partner_deposit: U256::ZERO,
            partner_withdrawn: U256::ZERO,
            frozen: None,
            open_seen_at: 0,
        })
        .await?;
    let forged = mallory.pay(CHANNEL, U256::from(5)).await?;
    assert!(matches!(
        pair.brandon.receive_text(&forged.to_text()?).await,
        Err(MeshError::NotFromPartner { .. })
    ));
    let first = pair.alice.pay(CHANNEL, U256::from(5)).await?;
    let second = pair.alice.pay(CHANNEL, U256::from(5)).await?;
    pair.brandon.receive_text(&second.to_text()?).await?;
    assert!(
        pair.brandon.receive_text(&first.to_text()?).await.is_err(),
        "an older nonce"
    );
    let over = pair.alice.pay(CHANNEL, U256::from(91)).await;
    // Alice has 100 and paid 10: 91 more is refused before anything is signed.
    assert!(
        matches!(over, Err(MeshError::OverCapacity { .. })),
        "{over:?}"
    );
    assert!(pair.brandon.receive_text("smr1nonsense").await.is_err());
    assert_eq!(
        pair.brandon.capacity(CHANNEL).await?.received,
        U256::from(10)
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
