//! Lock lists and conditions in `POST /v1/receipts`, through `app(state)` on SQLite and
//! Postgres against the real contracts on anvil: a proof with locks is kept only with the list
//! behind its `locksRoot`; a backup's list comes back to its signer in `/v1/proofs/latest`;
//! a condition is kept only inside a request that registers it through the SignedAgent, names
//! this watcher as its agent and pays at least its fee.

mod common;

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256, utils::parse_ether},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolValue},
};
use axum::http::StatusCode;
use common::{watcher::receipt, world::World};
use smartmesh_chain::Database;
use smartmesh_protocol::{
    AgentRequest, BalanceProof, ConditionRegistry, Lock, LockList, REGISTRATION_GAS, SignedProof,
    agent_domain, sign_typed, token_network_domain,
};
use smartmesh_settlement::{BatchOutcome, ItemStatus, ReceiptBatch, SentBackup};
use sqlx::Row;

fn outcome(body: serde_json::Value) -> BatchOutcome {
    serde_json::from_value(body).expect("a batch outcome")
}

fn list(amounts: &[u128]) -> LockList {
    LockList::from_locks(
        amounts
            .iter()
            .enumerate()
            .map(|(n, amount)| Lock {
                expiry: 4_000_000_000,
                amount: *amount,
                condition_id: keccak256([n as u8]),
            })
            .collect(),
    )
    .unwrap()
}

/// `payer`'s proof of `transferred` plus the locks of `locks`.
fn locked_proof(
    world: &World,
    payer: &PrivateKeySigner,
    nonce: u64,
    locks: &LockList,
) -> SignedProof {
    let domain = token_network_domain(world.stack.chain_id, world.stack.network);
    let proof = BalanceProof {
        channelId: world.channel_id,
        nonce: U256::from(nonce),
        transferredAmount: parse_ether("5").unwrap(),
        lockedAmount: locks.locked_amount(),
        locksRoot: locks.root(),
        ..Default::default()
    };
    SignedProof {
        chain_id: world.stack.chain_id,
        token_network: world.stack.network,
        signature: sign_typed(payer, &proof, &domain),
        proof,
    }
}

fn body(batch: ReceiptBatch) -> String {
    serde_json::to_string(&batch).unwrap()
}

fn batch(world: &World) -> ReceiptBatch {
    ReceiptBatch {
        chain_id: world.stack.chain_id,
        token_network: world.stack.network,
        items: vec![],
        sent: vec![],
        conditions: vec![],
    }
}

on_both_backends!(a_proof_with_locks_is_kept_with_its_list => locked_receipts_sqlite, pg_locked_receipts);

async fn a_proof_with_locks_is_kept_with_its_list(db: Database) -> eyre::Result<()> {
    let world = World::new(db).await?;
    let (alice, brandon) = (world.alice().clone(), world.brandon().clone());
    let locks = list(&[3, 4]);
    let signed = locked_proof(&world, &alice, 7, &locks);
    let item = |given: Option<Vec<u8>>| {
        let mut item = receipt(
            &world.stack,
            &signed,
            &brandon,
            world.watcher.address(),
            U256::ZERO,
        );
        item.locks = given.map(Bytes::from);
        item
    };
    let mut padded = locks.encode();
    padded[21] = 1;
    let cases = [
        (None, "locks: required"),
        (Some(list(&[3]).encode()), "is not the proof's locksRoot"),
        (Some(padded), "padding"),
        (Some(vec![0; 63]), "locks:"),
    ];
    let mut bad = batch(&world);
    bad.items = cases.iter().map(|(given, _)| item(given.clone())).collect();
    let (status, answer) = world.post(body(bad)).await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for (outcome, (_, reason)) in outcome(answer).items.iter().zip(cases) {
        assert_eq!(outcome.status, ItemStatus::Rejected, "{outcome:?}");
        assert!(
            outcome
                .reason
                .as_deref()
                .unwrap_or_default()
                .contains(reason),
            "{outcome:?} should say {reason}"
        );
    }
    // A list handed with a proof that has none is refused too.
    let mut plain = world.item(&alice, &brandon, 8, "6");
    plain.locks = Some(Bytes::from(locks.encode()));
    let mut wrong = batch(&world);
    wrong.items = vec![plain];
    let (_, answer) = world.post(body(wrong)).await?;
    let items = outcome(answer).items;
    assert!(
        items[0]
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("has no locks"),
        "{items:?}"
    );
    assert!(
        world.stored().await?.is_empty(),
        "nothing of the bad items was kept"
    );

    let mut good = batch(&world);
    good.items = vec![item(Some(locks.encode()))];
    let (_, answer) = world.post(body(good)).await?;
    assert_eq!(outcome(answer).items[0].status, ItemStatus::Stored);
    let kept: Vec<u8> = sqlx::query("SELECT locks FROM receipts")
        .fetch_one(world.db.pool())
        .await?
        .try_get(0)?;
    assert_eq!(kept, locks.encode(), "the list is kept beside the proof");

    // Brandon's own proof with locks, as a backup: what a restored Brandon must declare.
    let own = list(&[9]);
    let mine = locked_proof(&world, &brandon, 3, &own);
    let mut backups = batch(&world);
    backups.sent = vec![
        SentBackup::Text(mine.to_text()?),
        SentBackup::WithLocks {
            proof: mine.to_text()?,
            locks: Bytes::from(own.encode()),
        },
    ];
    let (_, answer) = world.post(body(backups)).await?;
    let sent = outcome(answer).sent;
    assert_eq!(sent[0].status, ItemStatus::Rejected, "{sent:?}");
    assert_eq!(sent[1].status, ItemStatus::Stored, "{sent:?}");
    let latest = format!(
        "/v1/proofs/latest?channel={}&signer={}&{}",
        world.channel_id,
        brandon.address(),
        world.read_as(&brandon, 120)
    );
    let (status, answer) = world.get(&latest).await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["locks"],
        serde_json::json!(Bytes::from(own.encode()))
    );
    Ok(())
}

/// Brandon's request registering `secret`, paying `fee`, as his phone signs it.
fn registration(
    world: &World,
    signer: &PrivateKeySigner,
    edit: impl FnOnce(&mut AgentRequest),
) -> smartmesh_settlement::ConditionUpload {
    let mut request = AgentRequest {
        from: signer.address(),
        agent: world.watcher.address(),
        target: world.stack.registry,
        data: ConditionRegistry::registerSecretCall {
            secret: B256::repeat_byte(0x5e),
        }
        .abi_encode()
        .into(),
        gas: U256::from(REGISTRATION_GAS),
        feeToken: world.stack.token,
        fee: parse_ether("0.01").unwrap(),
        nonce: U256::from(1),
        deadline: U256::from(4_000_000_000u64),
    };
    edit(&mut request);
    let domain = agent_domain(world.stack.chain_id, world.stack.agent);
    let signature = sign_typed(signer, &request, &domain);
    smartmesh_settlement::ConditionUpload {
        channel_id: world.channel_id,
        request: Bytes::from(request.abi_encode()),
        signature: Bytes::copy_from_slice(signature.as_bytes()),
    }
}

on_both_backends!(a_condition_is_kept_only_inside_a_request_that_pays_this_watcher => conditions_sqlite, pg_conditions);

async fn a_condition_is_kept_only_inside_a_request_that_pays_this_watcher(
    db: Database,
) -> eyre::Result<()> {
    let world = World::new(db).await?;
    let brandon = world.brandon().clone();
    let stranger = PrivateKeySigner::from_bytes(&[0x44; 32].into())?;
    let mut forged = registration(&world, &brandon, |_| {});
    forged.signature = registration(&world, &stranger, |r| r.from = brandon.address()).signature;
    let mut unknown = registration(&world, &brandon, |_| {});
    unknown.channel_id = B256::repeat_byte(9);
    let cases = vec![
        (
            registration(&world, &brandon, |r| r.agent = Address::ZERO),
            "request.agent",
        ),
        (
            registration(&world, &brandon, |r| r.target = world.stack.network),
            "request.target",
        ),
        (
            registration(&world, &brandon, |r| r.feeToken = Address::repeat_byte(1)),
            "request.feeToken",
        ),
        (
            registration(&world, &brandon, |r| r.fee = parse_ether("0.009").unwrap()),
            "request.fee",
        ),
        (
            registration(&world, &brandon, |r| r.gas = U256::from(10_000_000)),
            "request.gas",
        ),
        (
            registration(&world, &brandon, |r| r.deadline = U256::from(1)),
            "request.deadline",
        ),
        (
            registration(&world, &brandon, |r| {
                r.data = ConditionRegistry::registerSecretsCall {
                    secrets: vec![B256::ZERO],
                }
                .abi_encode()
                .into()
            }),
            "request.data",
        ),
        (forged, "signature"),
        (unknown, "channelId: unknown channel"),
        (registration(&world, &stranger, |_| {}), "not a participant"),
    ];
    let mut bad = batch(&world);
    bad.conditions = cases.iter().map(|(upload, _)| upload.clone()).collect();
    let (status, answer) = world.post(body(bad)).await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let outcomes = outcome(answer).conditions;
    assert_eq!(outcomes.len(), cases.len());
    for (outcome, (_, reason)) in outcomes.iter().zip(&cases) {
        assert_eq!(outcome.status, ItemStatus::Rejected, "{outcome:?}");
        assert!(
            outcome
                .reason
                .as_deref()
                .unwrap_or_default()
                .contains(reason),
            "{outcome:?} should say {reason}"
        );
    }
    let held = || async {
        sqlx::query("SELECT condition_id, state FROM watcher_conditions")
            .fetch_all(world.db.pool())
            .await
            .map(|rows| {
                rows.iter()
                    .map(|row| (row.get::<Vec<u8>, _>(0), row.get::<String, _>(1)))
                    .collect::<Vec<_>>()
            })
    };
    assert!(
        held().await?.is_empty(),
        "nothing of the refused conditions is kept"
    );

    let mut good = batch(&world);
    good.conditions = vec![registration(&world, &brandon, |_| {})];
    let (_, answer) = world.post(body(good.clone())).await?;
    assert_eq!(outcome(answer).conditions[0].status, ItemStatus::Stored);
    let condition = smartmesh_protocol::hashlock_condition_id(&B256::repeat_byte(0x5e));
    assert_eq!(held().await?, vec![(condition.to_vec(), "held".to_owned())]);
    // Sent again, or with another nonce: known, the one held stays.
    good.conditions
        .push(registration(&world, &brandon, |r| r.nonce = U256::from(2)));
    let (_, answer) = world.post(body(good)).await?;
    let again = outcome(answer).conditions;
    assert!(
        again.iter().all(|o| o.status == ItemStatus::Known),
        "{again:?}"
    );
    assert_eq!(held().await?.len(), 1);
    Ok(())
}

on_both_backends!(a_dropped_lock_is_evidenced_registered_and_penalized => dropped_lock_sqlite, pg_dropped_lock);

/// The whole watcher on anvil: Brandon uploads Alice's proof of 5 SMT with a 10 SMT hashlock,
/// and the secret inside a registration request paying the watcher 0.01 SMT, then goes
/// offline. Alice closes claiming 5 and declaring no lock. The watcher submits her proof as
/// lock evidence at once, registers the secret only within its margin of the expiry, and
/// settles: the dropped lock was met in time, so Alice is penalized.
async fn a_dropped_lock_is_evidenced_registered_and_penalized(db: Database) -> eyre::Result<()> {
    use alloy::providers::Provider;
    use common::{
        Stack, alice_and_brandon,
        watcher::{
            RunningWatcher, block_timestamp, close, eventually, fast_config, pass_hold_period, smt,
            wait_for_event,
        },
    };
    use smartmesh_protocol::TokenNetwork::{ChannelSettled, EvidenceSubmitted};
    use std::time::Duration;

    let stack = Stack::deploy().await?;
    let channel_id = alice_and_brandon(&stack).await?;
    let (alice, brandon) = (stack.keys[1].clone(), stack.keys[2].clone());
    stack.fund(brandon.address(), parse_ether("1")?).await?;
    let mut config = fast_config();
    config.engine.register_margin = Duration::from_secs(60);
    config.registration_fee = parse_ether("0.01")?;
    let watcher = RunningWatcher::start(&stack, db.clone(), stack.keys[7].clone(), config).await?;
    eventually(30, "the channel to be indexed", || async {
        Ok(watcher
            .channel(channel_id)
            .await
            .is_ok_and(|view| view.chain.is_some()))
    })
    .await?;
    let watcher_before = smt(&stack, watcher.address).await?;

    let now = block_timestamp(&stack, stack.provider(&alice).get_block_number().await?).await?;
    let secret = B256::repeat_byte(0x5e);
    let expiry = now + 1_800;
    let locks = LockList::from_locks(vec![Lock {
        expiry,
        amount: parse_ether("10")?.to::<u128>(),
        condition_id: smartmesh_protocol::hashlock_condition_id(&secret),
    }])?;
    let domain = token_network_domain(stack.chain_id, stack.network);
    let proof = BalanceProof {
        channelId: channel_id,
        nonce: U256::from(2),
        transferredAmount: parse_ether("5")?,
        lockedAmount: locks.locked_amount(),
        locksRoot: locks.root(),
        ..Default::default()
    };
    let signed = SignedProof {
        chain_id: stack.chain_id,
        token_network: stack.network,
        signature: sign_typed(&alice, &proof, &domain),
        proof,
    };
    let mut item = receipt(
        &stack,
        &signed,
        &brandon,
        watcher.address,
        parse_ether("1")?,
    );
    item.locks = Some(Bytes::from(locks.encode()));
    let request = AgentRequest {
        from: brandon.address(),
        agent: watcher.address,
        target: stack.registry,
        data: ConditionRegistry::registerSecretCall { secret }
            .abi_encode()
            .into(),
        gas: U256::from(REGISTRATION_GAS),
        feeToken: stack.token,
        fee: parse_ether("0.01")?,
        nonce: U256::from(77),
        deadline: U256::from(expiry),
    };
    let signature = sign_typed(
        &brandon,
        &request,
        &agent_domain(stack.chain_id, stack.agent),
    );
    let body = ReceiptBatch {
        chain_id: stack.chain_id,
        token_network: stack.network,
        items: vec![item],
        sent: vec![],
        conditions: vec![smartmesh_settlement::ConditionUpload {
            channel_id,
            request: Bytes::from(request.abi_encode()),
            signature: Bytes::copy_from_slice(signature.as_bytes()),
        }],
    };
    let answer = reqwest_post(&watcher.url, &body).await?;
    assert_eq!(answer["items"][0]["status"], "stored", "{answer}");
    assert_eq!(answer["conditions"][0]["status"], "stored", "{answer}");

    // Brandon is offline. Alice closes claiming her 5 and declaring none of her locks.
    close(&stack, channel_id, &alice, parse_ether("5")?).await?;
    wait_for_event::<EvidenceSubmitted>(&stack, channel_id, "the lock evidence").await?;
    let registry = ConditionRegistry::new(stack.registry, stack.provider(&alice));
    let condition = smartmesh_protocol::hashlock_condition_id(&secret);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        registry.registeredAt(condition).call().await?.to::<u64>(),
        0,
        "not registered while Alice could still unlock"
    );
    pass_hold_period(&stack, 1_750).await?;
    eventually(30, "the registration", || async {
        Ok(registry.registeredAt(condition).call().await?.to::<u64>() != 0)
    })
    .await?;
    let at = registry.registeredAt(condition).call().await?.to::<u64>();
    assert!(
        at < expiry,
        "registered at {at}, before the expiry {expiry}"
    );

    pass_hold_period(&stack, 3_601).await?;
    wait_for_event::<ChannelSettled>(&stack, channel_id, "the settle").await?;
    assert_eq!(smt(&stack, alice.address()).await?, U256::ZERO, "penalized");
    assert_eq!(
        smt(&stack, brandon.address()).await?,
        parse_ether("150")? - parse_ether("1")? + parse_ether("1")? - parse_ether("0.01")?,
        "the whole channel less the reward, and his 1 SMT less the fee"
    );
    assert_eq!(
        smt(&stack, watcher.address).await? - watcher_before,
        parse_ether("1.01")?,
        "the reward and the registration fee"
    );
    let decisions = watcher.decisions(channel_id).await?;
    for expected in ["dispute:evidence_queued", "settle:settle_queued"] {
        assert!(
            decisions.iter().any(|d| d == expected),
            "{expected} missing: {decisions:?}"
        );
    }
    // The registrar marks it once it next looks at its mined transaction.
    eventually(30, "the condition to show registered", || async {
        let state: String = sqlx::query("SELECT state FROM watcher_conditions")
            .fetch_one(db.pool())
            .await?
            .try_get(0)?;
        Ok(state == "registered")
    })
    .await?;
    watcher.stop().await
}

async fn reqwest_post(url: &str, batch: &ReceiptBatch) -> eyre::Result<serde_json::Value> {
    let response = alloy::transports::http::reqwest::Client::new()
        .post(format!("{url}/v1/receipts"))
        .json(batch)
        .send()
        .await?;
    eyre::ensure!(response.status().is_success(), "{}", response.text().await?);
    Ok(response.json().await?)
}
