//! Every way `POST /v1/quote` and `POST /v1/relay` refuse a request, through `app(state)` with
//! `oneshot`, on SQLite and on Postgres: each a 4xx naming the field, and
//! nothing is ever queued for a refused request.

mod common;

use std::time::Duration;

use alloy::{
    primitives::{Address, Bytes, U256},
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use axum::http::StatusCode;
use common::{Harness, fast_config};
use smartmesh_chain::Database;
use smartmesh_protocol::{AgentRequest, SmartMeshToken, TokenNetwork};
use smartmesh_relayer::{Quote, RelayPolicy, RelayerConfig};

fn open_call(partner: Address) -> Vec<u8> {
    TokenNetwork::openCall {
        partner,
        settleTimeout: U256::from(3_600),
    }
    .abi_encode()
}

fn refused(status: StatusCode, body: &serde_json::Value, code: u16, field: &str) {
    assert_eq!(status.as_u16(), code, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with(field) || detail.contains(field),
        "{field} not named in {body}"
    );
}

on_both_backends!(each_bad_relay_is_refused_and_nothing_sent => refusals_sqlite, pg_refusals);

async fn each_bad_relay_is_refused_and_nothing_sent(db: Database) -> eyre::Result<()> {
    let harness = Harness::new(db, fast_config()).await?;
    let stack = &harness.stack;
    let alice = harness.user(1, "10").await?;
    let partner = Address::repeat_byte(0xb0);
    let data = open_call(partner);
    let (status, quote) = harness.quote(&alice, stack.network, &data).await?;
    assert_eq!(status, StatusCode::OK, "{quote}");
    let quote: Quote = serde_json::from_value(quote)?;
    let good = {
        let mut request = harness.request(&quote, 7).await?;
        request.data = data.clone().into();
        request
    };
    // The good request with one field changed (and signed again).
    let changed = |change: &dyn Fn(&mut AgentRequest)| {
        let mut request = good.clone();
        change(&mut request);
        request
    };

    // Expired, or too close to its deadline.
    let (status, body) = harness
        .post_signed(
            quote.quote_id,
            &alice,
            &changed(&|r| r.deadline = U256::from(1)),
        )
        .await?;
    refused(status, &body, 422, "request.deadline");

    // Bound to another relayer.
    let (status, body) = harness
        .post_signed(
            quote.quote_id,
            &alice,
            &changed(&|r| r.agent = Address::repeat_byte(0xa9)),
        )
        .await?;
    refused(status, &body, 422, "request.agent");

    // Signed by someone else, or for another chain.
    let mallory = PrivateKeySigner::from_bytes(&[0x66; 32].into())?;
    let (status, body) = harness.post_signed(quote.quote_id, &mallory, &good).await?;
    refused(status, &body, 422, "signature");
    let other_chain = smartmesh_protocol::sign_typed(
        &alice,
        &good,
        &smartmesh_protocol::agent_domain(1, stack.agent),
    );
    let (status, body) = harness
        .post_relay(
            quote.quote_id,
            &good,
            Bytes::copy_from_slice(other_chain.as_bytes()),
        )
        .await?;
    refused(status, &body, 422, "signature");

    // The malleable high-s twin of a valid signature.
    let mut twin = harness.sign(&alice, &good).to_vec();
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )?;
    let s = n - U256::from_be_slice(&twin[32..64]);
    twin[32..64].copy_from_slice(&s.to_be_bytes::<32>());
    twin[64] = if twin[64] == 27 { 28 } else { 27 };
    let (status, body) = harness
        .post_relay(quote.quote_id, &good, twin.into())
        .await?;
    refused(status, &body, 422, "high s");

    // A fee below the quote, and a gas other than quoted.
    let (status, body) = harness
        .post_signed(
            quote.quote_id,
            &alice,
            &changed(&|r| r.fee = quote.fee - U256::from(1)),
        )
        .await?;
    refused(status, &body, 422, "request.fee");
    let (status, body) = harness
        .post_signed(
            quote.quote_id,
            &alice,
            &changed(&|r| r.gas = U256::from(30_000)),
        )
        .await?;
    refused(status, &body, 422, "request.gas");

    // A quote for another call, and an unknown quote.
    let (status, body) = harness
        .post_signed(quote.quote_id + 100, &alice, &good)
        .await?;
    refused(status, &body, 422, "quoteId");
    let (status, body) = harness
        .post_signed(
            quote.quote_id,
            &alice,
            &changed(&|r| r.data = open_call(Address::repeat_byte(0xb1)).into()),
        )
        .await?;
    refused(status, &body, 422, "quoteId");

    // Targets and functions off the allow-list, refused at the quote.
    let (status, body) = harness
        .quote(&alice, Address::repeat_byte(0x11), &data)
        .await?;
    refused(status, &body, 422, "target");
    let transfer_from = SmartMeshToken::transferFromCall {
        from: stack.keys[0].address(),
        to: alice.address(),
        value: U256::from(1),
    }
    .abi_encode();
    let (status, body) = harness.quote(&alice, stack.token, &transfer_from).await?;
    refused(status, &body, 422, "data");

    // A call that reverts is refused at the quote, with the contract's reason.
    let (status, body) = harness
        .quote(&alice, stack.network, &open_call(Address::ZERO))
        .await?;
    refused(status, &body, 422, "data");
    assert!(
        body["detail"].as_str().unwrap().contains("InvalidPartner"),
        "{body}"
    );

    // A user without SMT cannot pay any fee.
    let broke = harness.user(9, "0").await?;
    let (status, body) = harness.quote(&broke, stack.network, &data).await?;
    refused(status, &body, 422, "from");

    // Malformed and unknown fields.
    let (status, body) = harness.post("/v1/relay", "{\"quoteId\": ".into()).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = harness
        .post("/v1/quote", serde_json::json!({"from": alice.address(), "target": stack.network, "data": "0x", "tip": 1}).to_string())
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("tip"), "{body}");

    assert_eq!(
        harness.sent().await?,
        0,
        "nothing was queued for any refused request"
    );

    // The good one passes; its repeat gets the same answer; the nonce cannot carry another.
    let signature = harness.sign(&alice, &good);
    let (status, first) = harness
        .post_relay(quote.quote_id, &good, signature.clone())
        .await?;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = harness.post_relay(quote.quote_id, &good, signature).await?;
    assert_eq!(
        (status, &again["id"]),
        (StatusCode::OK, &first["id"]),
        "idempotent"
    );
    let mut other = good.clone();
    other.fee += U256::from(1);
    let (status, body) = harness
        .post_relay(quote.quote_id, &other, harness.sign(&alice, &other))
        .await?;
    refused(status, &body, 409, "request.nonce");
    harness.mined(first["id"].as_i64().unwrap()).await?;
    assert_eq!(harness.sent().await?, 1);

    // Once used on chain, the nonce is refused even to a request the relayer never saw.
    let (status, quote) = harness
        .quote(
            &alice,
            stack.token,
            &SmartMeshToken::approveCall {
                spender: partner,
                value: U256::ZERO,
            }
            .abi_encode(),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{quote}");
    let quote: Quote = serde_json::from_value(quote)?;
    let mut request = harness.request(&quote, 7).await?;
    request.data = SmartMeshToken::approveCall {
        spender: partner,
        value: U256::ZERO,
    }
    .abi_encode()
    .into();
    let (status, body) = harness
        .post_signed(quote.quote_id, &alice, &request)
        .await?;
    refused(status, &body, 409, "request.nonce");

    // The quote was fine, then the state moved: the simulation refuses, with the reason.
    let bob = stack.keys[3].clone();
    let (_, quote) = harness
        .quote(&alice, stack.network, &open_call(bob.address()))
        .await?;
    let quote: Quote = serde_json::from_value(quote)?;
    let mut request = harness.request(&quote, 8).await?;
    request.data = open_call(bob.address()).into();
    stack.open_channel(&bob, &alice).await?;
    let (status, body) = harness
        .post_signed(quote.quote_id, &alice, &request)
        .await?;
    refused(status, &body, 422, "request");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("ChannelAlreadyExists"),
        "{body}"
    );

    // Enough SMT for the fee estimate to run, far too little to pay the fee.
    let poor = harness.user(5, "0").await?;
    stack.fund(poor.address(), U256::from(10)).await?;
    let (status, quote) = harness
        .quote(&poor, stack.network, &open_call(partner))
        .await?;
    assert_eq!(status, StatusCode::OK, "{quote}");
    let quote: Quote = serde_json::from_value(quote)?;
    let mut request = harness.request(&quote, 1).await?;
    request.data = open_call(partner).into();
    let (status, body) = harness.post_signed(quote.quote_id, &poor, &request).await?;
    refused(status, &body, 422, "request.fee");
    assert!(
        body["detail"].as_str().unwrap().contains("holds 10"),
        "{body}"
    );
    assert_eq!(harness.sent().await?, 1, "still only the one good request");
    Ok(())
}

on_both_backends!(a_stale_quote_is_refused => stale_quote_sqlite, pg_stale_quote);

async fn a_stale_quote_is_refused(db: Database) -> eyre::Result<()> {
    let config = RelayerConfig {
        policy: RelayPolicy {
            quote_ttl: Duration::ZERO,
            ..fast_config().policy
        },
        ..fast_config()
    };
    let harness = Harness::new(db, config).await?;
    let alice = harness.user(1, "10").await?;
    let data = open_call(Address::repeat_byte(0xb0));
    let (status, quote) = harness.quote(&alice, harness.stack.network, &data).await?;
    assert_eq!(status, StatusCode::OK, "{quote}");
    let quote: Quote = serde_json::from_value(quote)?;
    let mut request = harness.request(&quote, 1).await?;
    request.data = data.into();
    // The quote lives for zero seconds: a second later it is stale.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = harness
        .post_signed(quote.quote_id, &alice, &request)
        .await?;
    refused(status, &body, 422, "stale quote");
    assert_eq!(harness.sent().await?, 0);
    Ok(())
}

on_both_backends!(a_busy_user_and_a_broke_relayer_are_held_back => held_back_sqlite, pg_held_back);

async fn a_busy_user_and_a_broke_relayer_are_held_back(db: Database) -> eyre::Result<()> {
    let config = RelayerConfig {
        policy: RelayPolicy {
            max_in_flight_per_sender: 1,
            ..fast_config().policy
        },
        ..fast_config()
    };
    let harness = Harness::new(db, config).await?;
    let stack = &harness.stack;
    let alice = harness.user(1, "10").await?;
    let (_, _, first) = harness
        .relay(
            &alice,
            stack.network,
            open_call(Address::repeat_byte(0xb0)),
            1,
        )
        .await?;
    assert!(first["id"].is_i64(), "{first}");
    // Not sent yet: still in flight, so a second request of Alice's waits.
    let (_, status, body) = harness
        .relay(
            &alice,
            stack.network,
            open_call(Address::repeat_byte(0xb1)),
            2,
        )
        .await?;
    refused(status, &body, 429, "request.from");
    harness.mined(first["id"].as_i64().unwrap()).await?;
    let (_, status, body) = harness
        .relay(
            &alice,
            stack.network,
            open_call(Address::repeat_byte(0xb1)),
            2,
        )
        .await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "once the first is mined, the next is taken: {body}"
    );

    // A relayer out of ETH says so instead of failing requests one by one.
    harness
        .rpc(
            "anvil_setBalance",
            serde_json::json!([harness.key.address(), "0x0"]),
        )
        .await?;
    let (status, body) = harness
        .quote(
            &alice,
            stack.network,
            &open_call(Address::repeat_byte(0xb2)),
        )
        .await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "paused");
    let (_, health) = harness.get("/v1/health").await?;
    assert_eq!(health["status"], "paused", "{health}");
    Ok(())
}
