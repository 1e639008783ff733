//! Conditional payments between two wallets with no network: a hashlock locked, revealed and
//! unlocked by handing messages over as text, every step in the journal across restarts, and
//! the expiry rule enforced by the receiver.

mod common;

use std::path::PathBuf;

use alloy::primitives::{B256, U256, keccak256};
use common::config;
use smartmesh_mesh::{Channel, KEY_FILE, Mesh, MeshError, Taken, VirtualClock, create_key};
use smartmesh_protocol::{
    Lock, ProtocolError,
    channel::{ChannelMessage, Phase, RegistryRead},
    hashlock_condition_id,
};

const CHANNEL: B256 = B256::repeat_byte(0xcd);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

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

async fn pair(test: &str) -> eyre::Result<Pair> {
    let mut wallets = Vec::new();
    for name in ["alice", "brandon"] {
        let dir = std::env::temp_dir().join(format!(
            "smartmesh-locks-{test}-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        create_key(&dir.join(KEY_FILE))?;
        wallets.push((Mesh::open(&dir, config()).await?, dir));
    }
    let (brandon, b) = wallets.pop().unwrap();
    let (alice, a) = wallets.pop().unwrap();
    for (me, partner, mine, theirs) in [(&alice, &brandon, 100, 50), (&brandon, &alice, 50, 100)] {
        me.track(&Channel {
            id: CHANNEL,
            partner: partner.address(),
            state: Phase::Open,
            settle_timeout: 3_600,
            my_deposit: U256::from(mine),
            my_withdrawn: U256::ZERO,
            partner_deposit: U256::from(theirs),
            partner_withdrawn: U256::ZERO,
            frozen: None,
            open_seen_at: now(),
        })
        .await?;
    }
    Ok(Pair {
        alice,
        brandon,
        dirs: vec![a, b],
    })
}

fn lock_of(secret: B256, expiry: u64, amount: u128) -> Lock {
    Lock {
        expiry,
        amount,
        condition_id: hashlock_condition_id(&secret),
    }
}

#[tokio::test]
async fn a_hashlock_is_locked_revealed_and_unlocked_offline() -> eyre::Result<()> {
    let pair = pair("story").await?;
    let secret = keccak256("what Carol tells Brandon");
    let lock = lock_of(secret, now() + 600, 10);
    let locked = pair.alice.lock(CHANNEL, lock, b"order 7".to_vec()).await?;
    assert!(matches!(locked, ChannelMessage::LockedTransfer(_)));
    // Journaled before it left: a restarted phone resends the same bytes.
    let reopened = Mesh::open(&pair.dirs[0], config()).await?;
    assert_eq!(reopened.last_message(CHANNEL).await?, Some(locked.clone()));
    assert_eq!(pair.alice.capacity(CHANNEL).await?.can_send, U256::from(90));

    let received = pair.brandon.receive_text(&locked.to_text()?).await?;
    assert!(!received.already_held);
    assert!(
        pair.brandon
            .receive_text(&locked.to_text()?)
            .await?
            .already_held
    );
    let capacity = pair.brandon.capacity(CHANNEL).await?;
    assert_eq!(capacity.locked_in, U256::from(10));
    assert_eq!(capacity.received, U256::ZERO, "not paid until unlocked");

    let replies = pair.brandon.reveal(secret).await?;
    let [reveal @ ChannelMessage::RevealSecret(_)] = replies.as_slice() else {
        panic!("one RevealSecret for Alice: {replies:?}")
    };
    // The secret survives a restart of Brandon's phone.
    let brandon_again = Mesh::open(&pair.dirs[1], config()).await?;
    assert_eq!(
        brandon_again
            .channel_state(CHANNEL)
            .await?
            .secrets
            .get(&lock.condition_id),
        Some(&secret)
    );

    let told = pair.alice.receive_text(&reveal.to_text()?).await?;
    assert_eq!(told.unlock_due, vec![lock.condition_id]);
    let unlocked = pair.alice.unlock(CHANNEL, lock.condition_id).await?;
    pair.brandon.receive_text(&unlocked.to_text()?).await?;
    let capacity = pair.brandon.capacity(CHANNEL).await?;
    assert_eq!(capacity.received, U256::from(10));
    assert_eq!(capacity.locked_in, U256::ZERO);
    assert_eq!(
        pair.alice.channel_state(CHANNEL).await?.mine,
        pair.brandon.channel_state(CHANNEL).await?.theirs,
        "both journals hold the same proof and locks"
    );
    Ok(())
}

#[tokio::test]
async fn a_lock_expired_is_refused_while_the_registry_shows_it_met_in_time() -> eyre::Result<()> {
    let pair = pair("expiry").await?;
    let secret = keccak256("registered in time");
    // Both wallets on one virtual clock: the lock's expiry passes without waiting for it
    // (F is 0 here; the waits for `expiry + F` themselves are the protocol's tests).
    let clock = VirtualClock::new(now());
    pair.alice.set_clock(clock.clone());
    pair.brandon.set_clock(clock.clone());
    let lock = lock_of(secret, clock.now() + 600, 5);
    let locked = pair.alice.lock(CHANNEL, lock, Vec::new()).await?;
    pair.brandon.receive_text(&locked.to_text()?).await?;
    assert!(matches!(
        pair.alice.expire(CHANNEL, lock.condition_id).await,
        Err(MeshError::Protocol(ProtocolError::LockNotExpired { .. }))
    ));
    clock.advance(600);
    assert!(matches!(
        pair.alice.expire(CHANNEL, lock.condition_id).await,
        Err(MeshError::Protocol(ProtocolError::ExpiryNotProven(_)))
    ));
    // Alice's read says unregistered; Brandon's, from a later block, shows it registered
    // before the expiry.
    pair.alice
        .read_registry(
            lock.condition_id,
            RegistryRead {
                registered_at: 0,
                block_time: lock.expiry,
            },
        )
        .await?;
    let expired = pair.alice.expire(CHANNEL, lock.condition_id).await?;
    pair.brandon
        .read_registry(
            lock.condition_id,
            RegistryRead {
                registered_at: lock.expiry - 1,
                block_time: lock.expiry + 1,
            },
        )
        .await?;
    assert!(matches!(
        pair.brandon.receive_text(&expired.to_text()?).await,
        Err(MeshError::Protocol(ProtocolError::ExpiryNotProven(_)))
    ));
    assert_eq!(
        pair.brandon.capacity(CHANNEL).await?.locked_in,
        U256::from(5),
        "still pending"
    );
    Ok(())
}

#[tokio::test]
async fn a_lock_expired_needing_a_registry_read_is_held_with_what_follows() -> eyre::Result<()> {
    let pair = pair("held").await?;
    let secret = keccak256("never revealed");
    let clock = VirtualClock::new(now());
    pair.alice.set_clock(clock.clone());
    pair.brandon.set_clock(clock.clone());
    let lock = lock_of(secret, clock.now() + 600, 5);
    let locked = pair.alice.lock(CHANNEL, lock, Vec::new()).await?;
    pair.brandon.receive_text(&locked.to_text()?).await?;
    clock.advance(600);
    let unmet = RegistryRead {
        registered_at: 0,
        block_time: lock.expiry,
    };
    pair.alice.read_registry(lock.condition_id, unmet).await?;
    let expired = pair.alice.expire(CHANNEL, lock.condition_id).await?;
    let paid = ChannelMessage::Payment(pair.alice.pay(CHANNEL, U256::from(7)).await?);
    // Brandon cannot read the registry (no chain here, as offline): refusing the removal
    // would stall the channel, since Alice has moved on; he holds it, and the payment after it.
    let alice = pair.alice.address();
    let (taken, out) = pair.brandon.take(alice, &expired.encode()?).await?;
    assert_eq!(taken, Taken::Held("lock_expired"));
    assert!(out.channel.is_empty());
    assert_eq!(
        pair.brandon.take(alice, &paid.encode()?).await?.0,
        Taken::Held("payment")
    );
    assert_eq!(
        pair.brandon.capacity(CHANNEL).await?.locked_in,
        U256::from(5)
    );
    // Still no read: they stay held, across a restart too.
    assert!(pair.brandon.take_held().await?.is_empty());
    let brandon = Mesh::open(&pair.dirs[1], config()).await?;
    brandon.set_clock(clock.clone());
    assert_eq!(
        brandon.take(alice, &paid.encode()?).await?.0,
        Taken::Held("payment")
    );
    // The read (online it comes from the chain) shows the condition unmet in time: both are
    // taken, in order; the repeated payment is refused as a replay, nothing else changes.
    brandon.read_registry(lock.condition_id, unmet).await?;
    brandon.take_held().await?;
    assert_eq!(brandon.capacity(CHANNEL).await?.locked_in, U256::ZERO);
    assert_eq!(
        brandon.channel_state(CHANNEL).await?.theirs.transferred(),
        U256::from(7)
    );
    assert!(brandon.take_held().await?.is_empty());
    Ok(())
}

/// The wallet keeps each channel's state between steps; what changes it outside the channel
/// machine (a deposit read from the chain, a registry read) must be seen by the next step.
#[tokio::test]
async fn a_new_deposit_read_from_the_chain_is_seen_by_the_next_payment() -> eyre::Result<()> {
    let pair = pair("cache").await?;
    let lock = lock_of(keccak256("cached"), now() + 600, 60);
    pair.alice.lock(CHANNEL, lock, Vec::new()).await?;
    assert!(matches!(
        pair.alice.pay(CHANNEL, U256::from(41)).await,
        Err(MeshError::OverCapacity { .. })
    ));
    let mut channel = pair.alice.channel(CHANNEL).await?;
    channel.my_deposit = U256::from(200);
    pair.alice.track(&channel).await?;
    pair.alice.pay(CHANNEL, U256::from(41)).await?;
    assert_eq!(
        pair.alice.capacity(CHANNEL).await?.can_send,
        U256::from(200 - 60 - 41)
    );
    Ok(())
}
