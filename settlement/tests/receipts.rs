//! `POST /v1/receipts` through `app(state)` with `oneshot` (no socket), on SQLite and on the
//! Postgres at `DATABASE_URL`, against channels indexed from the real contracts on anvil.

mod common;

use std::sync::Arc;

use alloy::{
    primitives::{Address, B256, Bytes, U256, utils::parse_ether},
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use common::{Stack, alice_and_brandon, catch_up, channel_follower, databases};
use http_body_util::BodyExt;
use smartmesh_chain::Database;
use smartmesh_protocol::{
    BalanceProof, SignedProof, Watch, recover_typed, sign_typed, token_network_domain,
};
use smartmesh_settlement::{
    AppState, BatchOutcome, ItemStatus, ReceiptBatch, ReceiptItem, WatchAuthorization, WatcherAck,
    ack_domain, app,
};
use sqlx::Row;
use tower::ServiceExt;

struct World {
    stack: Stack,
    db: Database,
    channel_id: B256,
    watcher: PrivateKeySigner,
}

impl World {
    /// Alice and Brandon's channel (100 and 50 SMT), indexed into `db`.
    async fn new(db: Database) -> eyre::Result<Self> {
        let stack = Stack::deploy().await?;
        let channel_id = alice_and_brandon(&stack).await?;
        catch_up(&channel_follower(&stack, &db)?).await?;
        Ok(Self {
            watcher: stack.keys[7].clone(),
            stack,
            db,
            channel_id,
        })
    }

    fn alice(&self) -> &PrivateKeySigner {
        &self.stack.keys[1]
    }

    fn brandon(&self) -> &PrivateKeySigner {
        &self.stack.keys[2]
    }

    fn state(&self) -> AppState {
        AppState {
            db: self.db.clone(),
            chain_id: self.stack.chain_id,
            token_network: self.stack.network,
            watcher: Arc::new(self.watcher.clone()),
        }
    }

    /// Alice's proof that she paid `transferred` in total at `nonce`, signed by `payer`, and
    /// the Watch `watch_signer` gives this watcher for it.
    fn item(
        &self,
        payer: &PrivateKeySigner,
        watch_signer: &PrivateKeySigner,
        nonce: u64,
        transferred: &str,
    ) -> ReceiptItem {
        let domain = token_network_domain(self.stack.chain_id, self.stack.network);
        let proof = BalanceProof {
            channelId: self.channel_id,
            nonce: U256::from(nonce),
            transferredAmount: parse_ether(transferred).unwrap(),
            ..Default::default()
        };
        let signed = SignedProof {
            chain_id: self.stack.chain_id,
            token_network: self.stack.network,
            signature: sign_typed(payer, &proof, &domain),
            proof: proof.clone(),
        };
        let watch = Watch {
            channelId: self.channel_id,
            proofDigest: proof.eip712_signing_hash(&domain),
            watcher: self.watcher.address(),
            reward: parse_ether("1").unwrap(),
            deadline: U256::from(u64::MAX),
        };
        ReceiptItem {
            proof: signed.to_text().unwrap(),
            watch: WatchAuthorization {
                watcher: watch.watcher,
                reward: watch.reward,
                deadline: watch.deadline,
                signature: Bytes::copy_from_slice(
                    sign_typed(watch_signer, &watch, &domain).as_bytes(),
                ),
            },
        }
    }

    fn batch(&self, items: Vec<ReceiptItem>) -> serde_json::Value {
        serde_json::to_value(ReceiptBatch {
            chain_id: self.stack.chain_id,
            token_network: self.stack.network,
            items,
        })
        .unwrap()
    }

    async fn post(&self, body: String) -> eyre::Result<(StatusCode, serde_json::Value)> {
        let request = Request::post("/v1/receipts")
            .header("content-type", "application/json")
            .body(Body::from(body))?;
        let response = app(self.state()).oneshot(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&bytes)?))
    }

    async fn stored(&self) -> eyre::Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT signer, nonce FROM receipts ORDER BY signer")
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }
}

fn outcome(body: serde_json::Value) -> BatchOutcome {
    serde_json::from_value(body).expect("a batch outcome")
}

#[tokio::test]
async fn a_received_proof_is_stored_acknowledged_and_known_on_resend() -> eyre::Result<()> {
    for db in databases("receipts_stored").await? {
        let world = World::new(db).await?;
        let body = world
            .batch(vec![world.item(world.alice(), world.brandon(), 3, "7")])
            .to_string();
        let (status, answer) = world.post(body.clone()).await?;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let items = outcome(answer).items;
        assert_eq!(items[0].status, ItemStatus::Stored, "{items:?}");

        // The acknowledgment is the watcher's signature over the stored proof's digest.
        let domain = token_network_domain(world.stack.chain_id, world.stack.network);
        let proof =
            SignedProof::from_text(&world.item(world.alice(), world.brandon(), 3, "7").proof)?
                .proof;
        let ack = WatcherAck {
            channelId: world.channel_id,
            proofDigest: proof.eip712_signing_hash(&domain),
        };
        let signature =
            smartmesh_protocol::Signature65::from_slice(items[0].ack.as_ref().unwrap())?;
        assert_eq!(
            recover_typed(
                &ack,
                &ack_domain(world.stack.chain_id, world.stack.network),
                &signature
            )?,
            world.watcher.address()
        );

        let (_, again) = world.post(body).await?;
        assert_eq!(
            outcome(again).items[0].status,
            ItemStatus::Known,
            "re-sending a batch is harmless"
        );
        assert_eq!(
            world.stored().await?,
            vec![(world.alice().address().to_string(), "3".to_string())]
        );
    }
    Ok(())
}

#[tokio::test]
async fn each_bad_item_is_rejected_with_its_reason_and_stores_nothing() -> eyre::Result<()> {
    for db in databases("receipts_rejected").await? {
        let world = World::new(db).await?;
        let stranger = PrivateKeySigner::from_bytes(&[0x33; 32].into())?;
        let mut tampered = world.item(world.alice(), world.brandon(), 4, "8");
        let mut bytes = SignedProof::from_text(&tampered.proof)?;
        bytes.proof.transferredAmount = parse_ether("9")?;
        tampered.proof = bytes.to_text()?;
        let mut high_s = world.item(world.alice(), world.brandon(), 4, "8");
        let mut decoded = SignedProof::from_text(&high_s.proof)?;
        let n = U256::from_str_radix(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
            16,
        )?;
        let s = n - U256::from_be_slice(&decoded.signature.0[32..64]);
        decoded.signature.0[32..64].copy_from_slice(&s.to_be_bytes::<32>());
        decoded.signature.0[64] = if decoded.signature.0[64] == 27 {
            28
        } else {
            27
        };
        high_s.proof = decoded.to_text()?;
        let mut zero_recovery = world.item(world.alice(), world.brandon(), 4, "8");
        let mut decoded = SignedProof::from_text(&zero_recovery.proof)?;
        decoded.signature.0[..32].fill(0);
        zero_recovery.proof = decoded.to_text()?;
        let mut unknown_channel = world.item(world.alice(), world.brandon(), 4, "8");
        let mut decoded = SignedProof::from_text(&unknown_channel.proof)?;
        decoded.proof.channelId = B256::repeat_byte(0x55);
        decoded.signature = sign_typed(
            world.alice(),
            &decoded.proof,
            &token_network_domain(world.stack.chain_id, world.stack.network),
        );
        unknown_channel.proof = decoded.to_text()?;
        let mut other_watcher = world.item(world.alice(), world.brandon(), 4, "8");
        other_watcher.watch.watcher = Address::repeat_byte(0x77);

        let cases: Vec<(&str, ReceiptItem)> = vec![
            (
                "proof:",
                ReceiptItem {
                    proof: "smr1garbage".into(),
                    ..world.item(world.alice(), world.brandon(), 4, "8")
                },
            ),
            // A changed amount recovers someone else: a stranger to the channel.
            ("not a participant", tampered),
            ("high s", high_s),
            ("recover", zero_recovery),
            ("unknown channel", unknown_channel),
            (
                "not a participant",
                world.item(&stranger, world.brandon(), 4, "8"),
            ),
            (
                "exceeds the channel's deposits",
                world.item(world.alice(), world.brandon(), 4, "151"),
            ),
            (
                "not by the receiver",
                world.item(world.alice(), world.alice(), 4, "8"),
            ),
            ("not this watcher", other_watcher),
        ];
        let (status, answer) = world
            .post(
                world
                    .batch(cases.iter().map(|(_, item)| item.clone()).collect())
                    .to_string(),
            )
            .await?;
        assert_eq!(status, StatusCode::OK);
        for ((expected, _), item) in cases.iter().zip(outcome(answer).items) {
            assert_eq!(item.status, ItemStatus::Rejected, "{expected}: {item:?}");
            let reason = item.reason.unwrap_or_default();
            assert!(
                reason.contains(expected),
                "{:?}: expected {expected:?} in {reason:?}",
                world.db.backend()
            );
        }
        assert!(
            world.stored().await?.is_empty(),
            "nothing of a rejected item is stored"
        );

        // A stale nonce after a newer proof is held.
        world
            .post(
                world
                    .batch(vec![world.item(world.alice(), world.brandon(), 5, "9")])
                    .to_string(),
            )
            .await?;
        let (_, answer) = world
            .post(
                world
                    .batch(vec![world.item(world.alice(), world.brandon(), 4, "8")])
                    .to_string(),
            )
            .await?;
        let item = &outcome(answer).items[0];
        assert_eq!(item.status, ItemStatus::Rejected);
        assert!(
            item.reason.as_deref().unwrap_or_default().contains("nonce"),
            "{item:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_a_json_error_naming_the_field() -> eyre::Result<()> {
    for db in databases("receipts_bad_requests").await? {
        let world = World::new(db).await?;
        let (status, body) = world.post("{not json".into()).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "malformed_request");

        let mut batch = world.batch(vec![]);
        batch["surprise"] = serde_json::json!(1);
        let (status, body) = world.post(batch.to_string()).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("surprise"),
            "{body}"
        );

        let mut batch = world.batch(vec![]);
        batch["chainId"] = serde_json::json!(1);
        let (status, body) = world.post(batch.to_string()).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["detail"].as_str().unwrap().starts_with("chainId"),
            "{body}"
        );

        let item = world.item(world.alice(), world.brandon(), 1, "1");
        let oversized = world.batch(vec![item; smartmesh_settlement::MAX_BATCH + 1]);
        let (status, body) = world.post(oversized.to_string()).await?;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert!(world.stored().await?.is_empty());
    }
    Ok(())
}
