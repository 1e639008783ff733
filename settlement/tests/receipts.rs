//! `POST /v1/receipts` through `app(state)` with `oneshot` (no socket), on SQLite and on
//! Postgres, against channels indexed from the real contracts on anvil.

mod common;

use alloy::{
    primitives::{Address, B256, U256, utils::parse_ether},
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use axum::http::StatusCode;
use common::world::World;
use smartmesh_chain::Database;
use smartmesh_protocol::{SignedProof, recover_typed, sign_typed, token_network_domain};
use smartmesh_settlement::{BatchOutcome, ItemStatus, ReceiptItem, WatcherAck, ack_domain};

fn outcome(body: serde_json::Value) -> BatchOutcome {
    serde_json::from_value(body).expect("a batch outcome")
}

on_both_backends!(stored_acknowledged_and_known_on_resend => receipt_stored_sqlite, pg_receipt_stored);

async fn stored_acknowledged_and_known_on_resend(db: Database) -> eyre::Result<()> {
    {
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
            vec![(world.alice().address().to_string(), U256::from(3))]
        );
    }
    Ok(())
}

on_both_backends!(each_bad_item_is_rejected => bad_items_sqlite, pg_bad_items);

async fn each_bad_item_is_rejected(db: Database) -> eyre::Result<()> {
    {
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

        // An older proof (a lower amount) after a newer one is held.
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
            item.reason
                .as_deref()
                .unwrap_or_default()
                .starts_with("proof.transferredAmount"),
            "{item:?}"
        );
    }
    Ok(())
}

on_both_backends!(the_proof_that_proves_the_most_is_kept => proves_most_sqlite, pg_proves_most);

/// Per payer the watcher keeps the proof with the highest transferred amount, whatever the
/// nonces (the dispute rule is about amounts); a later Watch renews the same proof; the same
/// backup again is known.
async fn the_proof_that_proves_the_most_is_kept(db: Database) -> eyre::Result<()> {
    let world = World::new(db).await?;
    let (alice, brandon) = (world.alice().clone(), world.brandon().clone());
    let post = |items: Vec<ReceiptItem>, sent: Vec<String>| {
        let body = world.batch_with_backups(items, sent).to_string();
        let world = &world;
        async move {
            let (status, answer) = world.post(body).await?;
            eyre::ensure!(status == StatusCode::OK, "{answer}");
            Ok::<_, eyre::Report>(outcome(answer))
        }
    };
    let alice_key = alice.address().to_string();
    let ether140 = parse_ether("140")?;

    // A proof for 140 at nonce 6 is held; one for 30 at nonce 7 proves less and is refused.
    let answer = post(
        vec![world.item_until(&alice, &brandon, 6, "140", U256::ZERO)],
        vec![],
    )
    .await?;
    assert_eq!(answer.items[0].status, ItemStatus::Stored);
    let answer = post(vec![world.item(&alice, &brandon, 7, "30")], vec![]).await?;
    assert_eq!(answer.items[0].status, ItemStatus::Rejected);
    let reason = answer.items[0].reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("proof.transferredAmount") && reason.contains("below"),
        "{reason}"
    );
    assert_eq!(
        world.held().await?,
        vec![(alice_key.clone(), U256::from(6), ether140, U256::ZERO)]
    );

    // The same proof with a useful Watch replaces the useless one; an earlier one does not.
    let answer = post(
        vec![world.item_until(&alice, &brandon, 6, "140", U256::from(5_000))],
        vec![],
    )
    .await?;
    assert_eq!(answer.items[0].status, ItemStatus::Stored, "{answer:?}");
    assert!(answer.items[0].ack.is_some());
    let answer = post(
        vec![world.item_until(&alice, &brandon, 6, "140", U256::from(10))],
        vec![],
    )
    .await?;
    assert_eq!(answer.items[0].status, ItemStatus::Known);
    assert_eq!(
        world.held().await?,
        vec![(
            alice_key.clone(),
            U256::from(6),
            ether140,
            U256::from(5_000)
        )]
    );

    // A higher amount at a lower nonce proves more: it is kept.
    let answer = post(vec![world.item(&alice, &brandon, 2, "141")], vec![]).await?;
    assert_eq!(answer.items[0].status, ItemStatus::Stored);
    assert_eq!(world.held().await?[0].2, parse_ether("141")?);

    // The phone re-sends its latest sent proof with every sync: known, not rejected.
    let backup = world.proof(&brandon, 3, "20").to_text()?;
    let first = post(vec![], vec![backup.clone()]).await?;
    assert_eq!(first.sent[0].status, ItemStatus::Stored);
    let again = post(vec![], vec![backup]).await?;
    assert_eq!(again.sent[0].status, ItemStatus::Known, "{again:?}");
    let fell = post(vec![], vec![world.proof(&brandon, 4, "19").to_text()?]).await?;
    assert_eq!(fell.sent[0].status, ItemStatus::Rejected);
    Ok(())
}

on_both_backends!(bad_requests_get_a_json_error => bad_requests_sqlite, pg_bad_requests);

async fn bad_requests_get_a_json_error(db: Database) -> eyre::Result<()> {
    {
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

        let mut batch = world.batch(vec![]);
        batch["tokenNetwork"] = serde_json::json!(Address::repeat_byte(9));
        let (status, body) = world.post(batch.to_string()).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["detail"].as_str().unwrap().starts_with("tokenNetwork"),
            "{body}"
        );

        let mut batch = world.batch(vec![world.item(world.alice(), world.brandon(), 1, "1")]);
        batch["items"][0]["watch"]["reward"] = serde_json::json!("lots");
        let (status, body) = world.post(batch.to_string()).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("reward"),
            "{body}"
        );

        // A body over the limit is refused before it is parsed.
        let huge = format!(
            "{{\"chainId\": 1, \"padding\": \"{}\"}}",
            "x".repeat(smartmesh_settlement::MAX_BODY_BYTES)
        );
        let (status, body) = world.post(huge).await?;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert_eq!(body["error"], "too_large");

        let item = world.item(world.alice(), world.brandon(), 1, "1");
        let oversized = world.batch(vec![item; smartmesh_settlement::MAX_BATCH + 1]);
        let (status, body) = world.post(oversized.to_string()).await?;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert!(world.stored().await?.is_empty());
    }
    Ok(())
}

on_both_backends!(backups_answer_the_latest_signed_proof => backups_sqlite, pg_backups);

/// Brandon uploads Alice's proof as a receipt; Alice uploads a newer one of her own as a
/// backup: the latest proof Alice signed is the backup. Only Alice, signing her request,
/// may read it.
async fn backups_answer_the_latest_signed_proof(db: Database) -> eyre::Result<()> {
    let world = World::new(db).await?;
    let (alice, brandon) = (world.alice().clone(), world.brandon().clone());
    let receipt = world.batch(vec![world.item(&alice, &brandon, 4, "8")]);
    let (status, _) = world.post(receipt.to_string()).await?;
    assert_eq!(status, StatusCode::OK);
    let base = format!(
        "/v1/proofs/latest?channel={}&signer={}",
        world.channel_id,
        alice.address()
    );
    let latest = format!("{base}&{}", world.read_as(&alice, 120));
    let (status, body) = world.get(&latest).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "receipt");
    assert_eq!(body["nonce"], serde_json::json!(U256::from(4)));

    let stranger = PrivateKeySigner::from_bytes(&[0x44; 32].into())?;
    let backups = vec![
        world.proof(&alice, 5, "9").to_text()?,
        world.proof(&stranger, 6, "1").to_text()?,
        "smr1nonsense".to_owned(),
    ];
    let (status, answer) = world
        .post(world.batch_with_backups(vec![], backups).to_string())
        .await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let sent = outcome(answer).sent;
    assert_eq!(sent[0].status, ItemStatus::Stored, "{sent:?}");
    assert!(sent[0].ack.is_none(), "backups are not acknowledged");
    assert!(
        sent[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("not a participant"),
        "{sent:?}"
    );
    assert!(
        sent[2].reason.as_deref().unwrap().starts_with("proof:"),
        "{sent:?}"
    );

    let (_, body) = world.get(&latest).await?;
    assert_eq!(body["source"], "backup", "{body}");
    assert_eq!(body["nonce"], serde_json::json!(U256::from(5)));
    assert_eq!(
        body["transferredAmount"],
        serde_json::json!(parse_ether("9")?)
    );
    let proof = SignedProof::from_text(body["proof"].as_str().unwrap())?;
    assert_eq!(
        proof.signer()?,
        alice.address(),
        "the proof itself, verifiable"
    );
    // An older backup does not replace a newer one.
    let (_, answer) = world
        .post(
            world
                .batch_with_backups(vec![], vec![world.proof(&alice, 2, "3").to_text()?])
                .to_string(),
        )
        .await?;
    assert_eq!(outcome(answer).sent[0].status, ItemStatus::Rejected);

    // Nobody else learns what the watcher holds of Alice's: not unsigned, not signed by
    // Brandon for Alice, not signed long ago or for too long, not by a stranger.
    for (query, code, field) in [
        (base.clone(), 400, "expires"),
        (
            format!("{base}&{}", world.read_as(&brandon, 120)),
            401,
            "signature",
        ),
        (
            format!("{base}&{}", world.read_as(&alice, -5)),
            401,
            "expires",
        ),
        (
            format!("{base}&{}", world.read_as(&alice, 3_600)),
            401,
            "expires",
        ),
        (
            format!(
                "/v1/proofs/latest?channel={}&signer={}&{}",
                world.channel_id,
                stranger.address(),
                world.read_as(&stranger, 120)
            ),
            403,
            "participant",
        ),
    ] {
        let (status, body) = world.get(&query).await?;
        assert_eq!(status.as_u16(), code, "{query}: {body}");
        assert!(
            body["detail"].as_str().unwrap_or_default().contains(field),
            "{query}: {body}"
        );
    }

    // Bad queries name their parameter.
    let (status, body) = world
        .get(&format!(
            "/v1/proofs/latest?channel=0x12&signer={}&{}",
            alice.address(),
            world.read_as(&alice, 120)
        ))
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"].as_str().unwrap().starts_with("channel"),
        "{body}"
    );
    Ok(())
}

on_both_backends!(held_proofs_are_shown_to_participants_only => private_view_sqlite, pg_private_view);

/// `GET /v1/channels/{id}` shows anyone the on-chain state and the watcher's jobs; the proofs
/// it holds only to a participant who signs the request.
async fn held_proofs_are_shown_to_participants_only(db: Database) -> eyre::Result<()> {
    let world = World::new(db).await?;
    let (alice, brandon) = (world.alice().clone(), world.brandon().clone());
    let (status, _) = world
        .post(
            world
                .batch(vec![world.item(&alice, &brandon, 4, "8")])
                .to_string(),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/v1/channels/{}", world.channel_id);
    let (status, public) = world.get(&path).await?;
    assert_eq!(status, StatusCode::OK, "{public}");
    assert!(public["chain"].is_object(), "{public}");
    assert!(
        public.get("proofs").is_none(),
        "the public view holds no proofs: {public}"
    );
    let text = public.to_string();
    assert!(
        !text.contains(&parse_ether("8")?.to_string()),
        "no held amount: {text}"
    );

    let (status, private) = world
        .get(&format!(
            "{path}?participant={}&{}",
            brandon.address(),
            world.read_as(&brandon, 120)
        ))
        .await?;
    assert_eq!(status, StatusCode::OK, "{private}");
    assert_eq!(
        private["proofs"][0]["transferredAmount"],
        serde_json::json!(parse_ether("8")?),
        "{private}"
    );
    let stranger = PrivateKeySigner::from_bytes(&[0x44; 32].into())?;
    let (status, body) = world
        .get(&format!(
            "{path}?participant={}&{}",
            stranger.address(),
            world.read_as(&stranger, 120)
        ))
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = world
        .get(&format!("{path}?participant={}", brandon.address()))
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    Ok(())
}

on_both_backends!(a_batch_keeps_the_newest_of_its_own_items => newest_in_batch_sqlite, pg_newest_in_batch);

/// Several proofs of one payer in one batch: each newer one is stored in turn, the newest is
/// what the watcher holds, and a resend of the whole batch changes nothing.
async fn a_batch_keeps_the_newest_of_its_own_items(db: Database) -> eyre::Result<()> {
    let world = World::new(db).await?;
    let (alice, brandon) = (world.alice().clone(), world.brandon().clone());
    let items = vec![
        world.item(&alice, &brandon, 1, "1"),
        world.item(&alice, &brandon, 3, "3"),
        world.item(&alice, &brandon, 2, "2"),
        world.item(&brandon, &alice, 1, "0.5"),
    ];
    let body = world.batch(items).to_string();
    let (_, answer) = world.post(body.clone()).await?;
    let statuses: Vec<ItemStatus> = outcome(answer).items.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        vec![
            ItemStatus::Stored,
            ItemStatus::Stored,
            ItemStatus::Rejected,
            ItemStatus::Stored
        ]
    );
    let mut expected = vec![
        (alice.address().to_string(), U256::from(3)),
        (brandon.address().to_string(), U256::from(1)),
    ];
    expected.sort();
    assert_eq!(world.stored().await?, expected);
    let (_, again) = world.post(body).await?;
    let statuses: Vec<ItemStatus> = outcome(again).items.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        vec![
            ItemStatus::Rejected,
            ItemStatus::Known,
            ItemStatus::Rejected,
            ItemStatus::Known
        ]
    );
    assert_eq!(world.stored().await?, expected);
    Ok(())
}
