//! The store-and-forward outbox over the in-memory transport: payments made while the link is
//! down wait in the journal, survive a restart, and reach the partner in order once it is up.

mod common;

use std::path::PathBuf;

use alloy::primitives::{B256, U256};
use common::{config, open_between};
use smartmesh_mesh::{FileTransport, KEY_FILE, MemoryNet, Mesh, Transport, create_key};
use smartmesh_protocol::channel::ChannelMessage;

const CHANNEL: B256 = B256::repeat_byte(0xcd);

struct Dirs(Vec<PathBuf>);

impl Drop for Dirs {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[tokio::test]
async fn payments_wait_for_the_next_meeting_and_arrive_in_order() -> eyre::Result<()> {
    let dirs = Dirs(
        ["alice", "brandon"]
            .iter()
            .map(|name| {
                std::env::temp_dir().join(format!("smartmesh-outbox-{name}-{}", std::process::id()))
            })
            .collect(),
    );
    let mut wallets = Vec::new();
    for dir in &dirs.0 {
        let _ = std::fs::remove_dir_all(dir);
        create_key(&dir.join(KEY_FILE))?;
        wallets.push(Mesh::open(dir, config()).await?);
    }
    let brandon = wallets.pop().unwrap();
    let alice = wallets.pop().unwrap();
    open_between(&alice, &brandon, CHANNEL, U256::from(100)).await?;
    let net = MemoryNet::new();
    let (to_alice, to_brandon) = (
        net.endpoint(alice.address()),
        net.endpoint(brandon.address()),
    );

    // The link is down: three payments wait in Alice's outbox.
    for _ in 0..3 {
        let proof = alice.pay(CHANNEL, U256::from(1)).await?;
        alice
            .queue(brandon.address(), &ChannelMessage::Payment(proof))
            .await?;
    }
    assert_eq!(alice.flush(&to_alice).await?, 0, "nobody to hand them to");
    // Alice's phone restarts: the outbox is in the journal.
    let address = alice.address();
    drop(alice);
    let alice = Mesh::open(&dirs.0[0], config()).await?;
    assert_eq!(alice.address(), address);
    assert_eq!(alice.waiting(brandon.address()).await?.len(), 3);

    net.link(alice.address(), brandon.address(), true);
    assert_eq!(alice.flush(&to_alice).await?, 3);
    assert!(alice.waiting(brandon.address()).await?.is_empty());
    for expected in 1..=3u64 {
        let (from, bytes) = to_brandon.recv().await.unwrap();
        assert_eq!(from, alice.address());
        let received = brandon.receive_bytes(&bytes).await?;
        assert_eq!(
            received.message.proof().unwrap().proof.transferredAmount,
            U256::from(expected),
            "in the order they were signed"
        );
    }
    assert_eq!(net.traffic().0, 3);
    Ok(())
}

#[tokio::test]
async fn payments_go_as_files_in_the_text_form_and_only_whole_ones_are_taken() -> eyre::Result<()> {
    let root = std::env::temp_dir().join(format!("smartmesh-handoff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dirs = Dirs(vec![root.clone()]);
    let mut wallets = Vec::new();
    for name in ["alice", "brandon"] {
        let dir = root.join(name);
        create_key(&dir.join(KEY_FILE))?;
        wallets.push(Mesh::open(&dir, config()).await?);
    }
    let (alice, brandon) = (&wallets[0], &wallets[1]);
    open_between(alice, brandon, CHANNEL, U256::from(100)).await?;
    let to_brandon = FileTransport::new(
        alice.address(),
        &root.join("alice-files"),
        vec![brandon.address()],
    )?;
    let brandons = FileTransport::new(
        brandon.address(),
        &root.join("brandon-files"),
        vec![alice.address()],
    )?;
    for _ in 0..2 {
        let proof = alice.pay(CHANNEL, U256::from(2)).await?;
        to_brandon
            .send(brandon.address(), ChannelMessage::Payment(proof).encode()?)
            .await?;
    }
    // Carried over by hand; a stray file in the inbox is set aside, not taken.
    let mut files: Vec<_> = std::fs::read_dir(to_brandon.outgoing(brandon.address()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    assert_eq!(files.len(), 2);
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        assert!(text.starts_with("smr1"), "{text}");
        std::fs::rename(file, brandons.inbox().join(file.file_name().unwrap()))?;
    }
    std::fs::write(brandons.inbox().join("0xnobody-1.smr"), "smr1AAAA")?;
    let mut total = U256::ZERO;
    while let Some((from, bytes)) = brandons.try_recv() {
        assert_eq!(from, alice.address());
        total = brandon
            .receive_bytes(&bytes)
            .await?
            .message
            .proof()
            .unwrap()
            .proof
            .transferredAmount;
    }
    assert_eq!(total, U256::from(4), "both payments, in order");
    assert!(brandons.inbox().join("0xnobody-1.refused").exists());
    drop(dirs);
    Ok(())
}
