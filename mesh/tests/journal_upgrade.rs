//! A journal written before nonces were kept whole (migration 0002): its rows come through
//! the upgrade, and the one a nonce above i64 had been cut to -1 is repaired from its proof.

mod common;

use alloy::{
    primitives::{B256, U256},
    signers::local::PrivateKeySigner,
};
use common::config;
use smartmesh_mesh::{KEY_FILE, Mesh, create_key};
use smartmesh_protocol::{BalanceProof, SignedProof, sign_typed, token_network_domain};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

const CHANNEL: B256 = B256::repeat_byte(0xcc);

fn proof(payer: &PrivateKeySigner, nonce: U256, transferred: u64) -> SignedProof {
    let config = config();
    let proof = BalanceProof {
        channelId: CHANNEL,
        nonce,
        transferredAmount: U256::from(transferred),
        ..Default::default()
    };
    SignedProof {
        chain_id: config.chain_id,
        token_network: config.token_network,
        signature: sign_typed(
            payer,
            &proof,
            &token_network_domain(config.chain_id, config.token_network),
        ),
        proof,
    }
}

#[tokio::test]
async fn an_old_journal_is_upgraded_and_a_cut_nonce_repaired() -> eyre::Result<()> {
    let dir =
        std::env::temp_dir().join(format!("smartmesh-journal-upgrade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("old-migrations"))?;
    let me = create_key(&dir.join(KEY_FILE))?;
    let partner = PrivateKeySigner::from_bytes(&[0x42; 32].into())?;

    // The journal as the first schema left it, written with the old casts.
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/0001_journal.sql"),
        dir.join("old-migrations/0001_journal.sql"),
    )?;
    let pool = SqlitePoolOptions::new()
        .connect_with(
            SqliteConnectOptions::new()
                .filename(dir.join(smartmesh_mesh::JOURNAL_FILE))
                .create_if_missing(true),
        )
        .await?;
    sqlx::migrate::Migrator::new(dir.join("old-migrations"))
        .await?
        .run(&pool)
        .await?;
    sqlx::query(
        "INSERT INTO channels (channel_id, partner, state, settle_timeout, my_deposit, my_withdrawn, \
         partner_deposit, partner_withdrawn) VALUES (?, ?, 'open', 3600, '50', '0', '100', '0')",
    )
    .bind(CHANNEL.as_slice())
    .bind(partner.address().to_string())
    .execute(&pool)
    .await?;
    let wide = U256::from(1) << 64;
    for (nonce, cut, transferred) in [(U256::from(3), 3i64, 10u64), (wide, -1, 100)] {
        sqlx::query(
            "INSERT INTO received (channel_id, nonce, transferred, proof) VALUES (?, ?, ?, ?)",
        )
        .bind(CHANNEL.as_slice())
        .bind(cut)
        .bind(transferred.to_string())
        .bind(proof(&partner, nonce, transferred).encode()?)
        .execute(&pool)
        .await?;
    }
    let sent = proof(&me, U256::from(2), 4);
    sqlx::query("INSERT INTO sent (channel_id, nonce, transferred, proof) VALUES (?, 2, '4', ?)")
        .bind(CHANNEL.as_slice())
        .bind(sent.encode()?)
        .execute(&pool)
        .await?;
    pool.close().await;

    let mesh = Mesh::open(&dir, config()).await?;
    let capacity = mesh.capacity(CHANNEL).await?;
    assert_eq!(
        capacity.received,
        U256::from(100),
        "the repaired proof is the latest"
    );
    assert_eq!(capacity.sent, U256::from(4));
    assert_eq!(mesh.last_payment(CHANNEL).await?, Some(sent));
    // The next payment from the partner must now be above 2^64, as on chain.
    let stale = proof(&partner, wide, 101);
    assert!(
        mesh.receive_bytes(&stale.encode()?).await.is_err(),
        "same nonce again"
    );
    let next = proof(&partner, wide + U256::from(1), 101);
    assert!(!mesh.receive_bytes(&next.encode()?).await?.already_held);
    assert_eq!(mesh.capacity(CHANNEL).await?.received, U256::from(101));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
