//! What a front-runner, a user flooding the relayer and a name-squatter could make the
//! relayer pay, driven as they would: a copied transaction with a higher tip on anvil with
//! automine off, concurrent requests, quotes asked in someone else's name. The relayer
//! never pays for nothing, and every wei its key spends is booked by cause.

mod common;
#[allow(dead_code)]
#[path = "../../http/tests/common/slow.rs"]
mod slow;

use std::time::Duration;

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, U256, utils::parse_ether},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use axum::http::StatusCode;
use common::{Harness, fast_config};
use smartmesh_chain::Database;
use smartmesh_protocol::SmartMeshToken;
use smartmesh_relayer::{Earnings, Quote, RelayPolicy, RelayerConfig};

fn approve_nothing(spender: Address) -> Vec<u8> {
    SmartMeshToken::approveCall {
        spender,
        value: U256::ZERO,
    }
    .abi_encode()
}

fn transfer(to: Address, amount: U256) -> Vec<u8> {
    SmartMeshToken::transferCall { to, value: amount }.abi_encode()
}

async fn quote(
    harness: &Harness,
    user: &alloy::signers::local::PrivateKeySigner,
    target: Address,
    data: &[u8],
) -> eyre::Result<Quote> {
    let (status, quote) = harness.quote(user, target, data).await?;
    eyre::ensure!(status == StatusCode::OK, "{quote}");
    Ok(serde_json::from_value(quote)?)
}

on_both_backends!(an_open_request_is_refused_and_a_named_one_cannot_be_stolen => front_run_sqlite, pg_front_run);

/// A request open to any agent (`agent = 0`) is refused: anyone watching the mempool could
/// copy the relayer's transaction with a higher tip and take the fee. A request naming the
/// relayer's key cannot be stolen: the copy reverts at the copier's cost.
async fn an_open_request_is_refused_and_a_named_one_cannot_be_stolen(
    db: Database,
) -> eyre::Result<()> {
    let harness = Harness::new(db, fast_config()).await?;
    let stack = &harness.stack;
    let alice = harness.user(1, "10").await?;
    let data = approve_nothing(Address::repeat_byte(0xb0));
    let quoted = quote(&harness, &alice, stack.token, &data).await?;
    let mut open = harness.request(&quoted, 1).await?;
    open.data = data.clone().into();
    open.agent = Address::ZERO;
    let (status, body) = harness.post_signed(quoted.quote_id, &alice, &open).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("request.agent"),
        "{body}"
    );
    assert_eq!(harness.sent().await?, 0);

    // Named: accepted, broadcast, and sitting in the mempool of a chain that does not mine.
    harness
        .rpc("evm_setAutomine", serde_json::json!([false]))
        .await?;
    let mut named = open.clone();
    named.agent = quoted.agent;
    let (status, accepted) = harness.post_signed(quoted.quote_id, &alice, &named).await?;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let id = accepted["id"].as_i64().unwrap();
    harness.relayer.tick().await?;
    let (_, pending) = harness.get(&format!("/v1/relay/{id}")).await?;
    assert_eq!(pending["status"], "submitted", "{pending}");
    let hash = pending["txHash"].as_str().unwrap().parse()?;
    let seen = stack
        .provider(&stack.keys[0])
        .get_transaction_by_hash(hash)
        .await?
        .expect("in the mempool");

    // The front-runner copies it with a far higher tip.
    let thief = stack.keys[5].clone();
    let thief_smt = harness.smt(thief.address()).await?;
    let copy = TransactionRequest::default()
        .with_to(stack.agent)
        .with_input(alloy::consensus::Transaction::input(&seen).clone())
        .with_gas_limit(1_000_000)
        .with_max_priority_fee_per_gas(50_000_000_000)
        .with_max_fee_per_gas(100_000_000_000);
    let copied = stack.provider(&thief).send_transaction(copy).await?;
    let copied_hash = *copied.tx_hash();
    harness.rpc("evm_mine", serde_json::json!([])).await?;
    harness
        .rpc("evm_setAutomine", serde_json::json!([true]))
        .await?;
    let copy_receipt = stack
        .provider(&stack.keys[0])
        .get_transaction_receipt(copied_hash)
        .await?
        .expect("the copy was mined");
    assert!(
        !copy_receipt.status(),
        "the copy reverts: the request names another agent"
    );
    let mined = harness.mined(id).await?;
    assert_eq!(mined["feeEarned"], serde_json::json!(quoted.fee), "{mined}");
    assert_eq!(
        harness.smt(thief.address()).await?,
        thief_smt,
        "the copier earned nothing"
    );
    Ok(())
}

on_both_backends!(requests_at_once_cannot_spend_the_same_smt => at_once_sqlite, pg_at_once);

/// A user holding one and a half fees sends eight requests at once: one is taken, the seven
/// others are refused (the first one's fee is reserved), and the relayer sends exactly one
/// transaction. Two transfers that each pass alone but not together: the second is refused
/// by a simulation after the first.
async fn requests_at_once_cannot_spend_the_same_smt(db: Database) -> eyre::Result<()> {
    let harness = Harness::new(db, fast_config()).await?;
    let stack = &harness.stack;
    let probe = harness.user(9, "10").await?;
    let data = approve_nothing(Address::repeat_byte(0xb0));
    let fee = quote(&harness, &probe, stack.token, &data).await?.fee;
    let alice = harness.user(1, "0").await?;
    stack
        .fund(alice.address(), fee + fee / U256::from(2))
        .await?;

    let mut posts = Vec::new();
    for nonce in 1..=8u64 {
        let quoted = quote(&harness, &alice, stack.token, &data).await?;
        let mut request = harness.request(&quoted, nonce).await?;
        request.data = data.clone().into();
        posts.push((quoted.quote_id, request));
    }
    let answers = futures::future::join_all(
        posts
            .iter()
            .map(|(quote_id, request)| harness.post_signed(*quote_id, &alice, request)),
    )
    .await;
    let mut accepted = Vec::new();
    for answer in answers {
        let (status, body) = answer?;
        if status == StatusCode::OK {
            accepted.push(body["id"].as_i64().unwrap());
        } else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            let detail = body["detail"].as_str().unwrap_or_default();
            assert!(
                detail.starts_with("request.fee") && detail.contains("reserved"),
                "{body}"
            );
        }
    }
    assert_eq!(accepted.len(), 1, "one fee's worth of requests");
    harness.mined(accepted[0]).await?;
    assert_eq!(
        harness.sent().await?,
        1,
        "no transaction (and no filler) for the others"
    );

    // Each transfer of 900 passes alone; after the first, the second cannot.
    let bob = harness.user(2, "1000").await?;
    let mut posts = Vec::new();
    for nonce in 1..=2u64 {
        let data = transfer(
            Address::repeat_byte(0xc0 + nonce as u8),
            parse_ether("900")?,
        );
        let quoted = quote(&harness, &bob, stack.token, &data).await?;
        let mut request = harness.request(&quoted, nonce).await?;
        request.data = data.into();
        posts.push((quoted.quote_id, request));
    }
    let (first, second) = tokio::join!(
        harness.post_signed(posts[0].0, &bob, &posts[0].1),
        harness.post_signed(posts[1].0, &bob, &posts[1].1),
    );
    let mut outcomes = [first?, second?];
    outcomes.sort_by_key(|(status, _)| *status);
    assert_eq!(outcomes[0].0, StatusCode::OK, "{:?}", outcomes[0]);
    assert_eq!(
        outcomes[1].0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        outcomes[1]
    );
    let detail = outcomes[1].1["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("after its 1 requests not yet mined"),
        "{detail}"
    );
    harness.mined(outcomes[0].1["id"].as_i64().unwrap()).await?;
    assert_eq!(harness.sent().await?, 2);
    Ok(())
}

on_both_backends!(every_wei_the_key_spends_is_booked => booked_sqlite, pg_booked);

/// Three relays: one that runs, one the user front-runs so it reverts on chain, one whose
/// SMT the user moves away before broadcast (a filler takes its nonce). `GET /v1/earnings`
/// books each wei the relayer's key spent, by cause, and they sum to its balance's fall.
async fn every_wei_the_key_spends_is_booked(db: Database) -> eyre::Result<()> {
    let harness = Harness::new(db, fast_config()).await?;
    let stack = &harness.stack;
    let relayer = harness.key.address();
    let eth_before = harness.eth(relayer).await?;
    let alice = harness.user(1, "10").await?;
    // Alice can also send transactions of her own: she is the one who spoils her requests.
    harness
        .rpc(
            "anvil_setBalance",
            serde_json::json!([alice.address(), "0xde0b6b3a7640000"]),
        )
        .await?;
    let data = approve_nothing(Address::repeat_byte(0xb0));
    let relay = |nonce: u64| {
        let harness = &harness;
        let alice = alice.clone();
        let data = data.clone();
        async move {
            let quoted = quote(harness, &alice, harness.stack.token, &data).await?;
            let mut request = harness.request(&quoted, nonce).await?;
            request.data = data.into();
            let (status, body) = harness
                .post_signed(quoted.quote_id, &alice, &request)
                .await?;
            eyre::ensure!(status == StatusCode::OK, "{body}");
            Ok::<_, eyre::Report>(body["id"].as_i64().unwrap())
        }
    };
    let alice_address = alice.address();
    let drain = |to: Address| {
        let token = stack.token(&alice);
        async move {
            let all = token.balanceOf(alice_address).call().await?;
            let pending = token
                .transfer(to, all)
                // Not estimated against the pending state, where the relay already paid.
                .gas(100_000)
                .max_priority_fee_per_gas(50_000_000_000)
                .max_fee_per_gas(100_000_000_000)
                .send()
                .await?;
            Ok::<_, eyre::Report>(*pending.tx_hash())
        }
    };

    let ran = relay(1).await?;
    harness.mined(ran).await?;

    // Broadcast, then beaten in the same block by Alice emptying her SMT: mined, reverted.
    harness
        .rpc("evm_setAutomine", serde_json::json!([false]))
        .await?;
    let reverted = relay(2).await?;
    harness.relayer.tick().await?;
    drain(stack.keys[0].address()).await?;
    harness.rpc("evm_mine", serde_json::json!([])).await?;
    harness
        .rpc("evm_setAutomine", serde_json::json!([true]))
        .await?;
    stack.fund(alice.address(), parse_ether("10")?).await?;

    // Accepted, then Alice empties her SMT before it is broadcast: never sent, a filler.
    let filled = relay(3).await?;
    drain(stack.keys[0].address()).await?;

    for _ in 0..200 {
        harness.relayer.tick().await?;
        let (_, earnings) = harness.get("/v1/earnings?period=all").await?;
        let earnings: Earnings = serde_json::from_value(earnings)?;
        if earnings.total.relays == 3 {
            let by = &earnings.total.eth_spent_by;
            assert!(
                !by.relayed.is_zero() && !by.reverted.is_zero() && !by.filler.is_zero(),
                "{earnings:?}"
            );
            assert_eq!(
                by.relayed + by.reverted + by.filler,
                earnings.total.eth_spent
            );
            assert_eq!(
                earnings.total.eth_spent,
                eth_before - harness.eth(relayer).await?,
                "every wei the key spent is booked"
            );
            assert_eq!(earnings.total.succeeded, 1);
            let (_, status) = harness.get(&format!("/v1/relay/{reverted}")).await?;
            assert_eq!(status["status"], "failed", "{status}");
            let (_, status) = harness.get(&format!("/v1/relay/{filled}")).await?;
            assert_eq!(status["status"], "failed", "{status}");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eyre::bail!("the three relays were not all booked")
}

on_both_backends!(quotes_are_bounded_per_user_and_expire => quotes_sqlite, pg_quotes);

/// Anyone may ask quotes in anyone's name: a user keeps its latest few, and expired ones are
/// deleted.
async fn quotes_are_bounded_per_user_and_expire(db: Database) -> eyre::Result<()> {
    let config = RelayerConfig {
        policy: RelayPolicy {
            quote_ttl: Duration::from_secs(1),
            max_quotes_per_sender: 16,
            ..fast_config().policy
        },
        ..fast_config()
    };
    let harness = Harness::new(db, config).await?;
    let stack = &harness.stack;
    let victim = harness.user(1, "10").await?;
    let data = approve_nothing(Address::repeat_byte(0xb0));
    let mut last = None;
    for _ in 0..40 {
        last = Some(quote(&harness, &victim, stack.token, &data).await?);
    }
    let rows = || async {
        Ok::<i64, eyre::Report>(
            sqlx::query_scalar("SELECT COUNT(*) FROM relay_quotes")
                .fetch_one(harness.db.pool())
                .await?,
        )
    };
    assert_eq!(rows().await?, 16, "40 quotes asked, the latest 16 kept");
    // The latest is still good.
    let last = last.unwrap();
    let mut request = harness.request(&last, 1).await?;
    request.data = data.clone().into();
    let (status, body) = harness
        .post_signed(last.quote_id, &victim, &request)
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    harness.relayer.tick().await?;
    assert_eq!(rows().await?, 0, "expired quotes are deleted");
    Ok(())
}

/// A connection that never finishes its headers is closed after the header timeout, on the
/// relayer served as in production.
#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() -> eyre::Result<()> {
    let mut config = fast_config();
    config.limits.header_timeout = Duration::from_secs(1);
    let harness = Harness::new(common::sqlite("slow_headers").await?, config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(harness.relayer.run(listener, async {
        let _ = stopped.await;
    }));
    slow::is_cut_off(address).await?;
    let _ = stop.send(());
    served.await??;
    Ok(())
}
