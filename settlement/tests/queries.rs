//! The watcher's read endpoints and shared limits through `app(state)` with `oneshot`, on
//! SQLite and on Postgres: a channel's view, health, metrics, the OpenAPI
//! document, the per-client rate limit and the JSON answer to an unknown path.

mod common;

use std::net::SocketAddr;

use alloy::primitives::{B256, U256, utils::parse_ether};
use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Request, StatusCode},
};
use common::world::World;
use smartmesh_chain::Database;
use smartmesh_settlement::ApiLimits;

on_both_backends!(a_channel_shows_its_chain_state_and_proofs => channel_view_sqlite, pg_channel_view);

async fn a_channel_shows_its_chain_state_and_proofs(db: Database) -> eyre::Result<()> {
    let world = World::new(db).await?;
    let (alice, brandon) = (world.alice().clone(), world.brandon().clone());
    let path = format!("/v1/channels/{}", world.channel_id);
    let private = |who| {
        format!(
            "{path}?participant={}&{}",
            alloy::signers::Signer::address(who),
            world.read_as(who, 120)
        )
    };
    let (status, view) = world.get(&private(&brandon)).await?;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["chain"]["state"], "open");
    assert_eq!(view["proofs"], serde_json::json!([]));

    world
        .post(
            world
                .batch(vec![world.item(&alice, &brandon, 2, "7")])
                .to_string(),
        )
        .await?;
    let (_, view) = world.get(&private(&alice)).await?;
    assert_eq!(
        view["proofs"][0]["signer"],
        serde_json::json!(alice.address())
    );
    assert_eq!(view["proofs"][0]["nonce"], serde_json::json!(U256::from(2)));
    assert_eq!(
        view["proofs"][0]["transferredAmount"],
        serde_json::json!(parse_ether("7")?)
    );
    let deposits = [&view["chain"]["deposit1"], &view["chain"]["deposit2"]];
    assert!(
        deposits.contains(&&serde_json::json!(parse_ether("100")?)),
        "{view}"
    );

    let (status, body) = world.get("/v1/channels/0xnothex").await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"].as_str().unwrap().starts_with("id"), "{body}");
    let (status, body) = world
        .get(&format!("/v1/channels/{}", B256::repeat_byte(0x66)))
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    Ok(())
}

on_both_backends!(health_metrics_and_openapi_answer => service_endpoints_sqlite, pg_service_endpoints);

async fn health_metrics_and_openapi_answer(db: Database) -> eyre::Result<()> {
    let world = World::new(db).await?;
    let (status, health) = world.get("/v1/health").await?;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(
        health["watcher"],
        serde_json::json!(world.watcher.address())
    );

    world
        .post(
            world
                .batch(vec![world.item(world.alice(), world.brandon(), 1, "1")])
                .to_string(),
        )
        .await?;
    let (status, text) = world.get_text("/metrics").await?;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("smartmesh_receipts_stored_total 1"), "{text}");
    assert!(
        text.contains("smartmesh_channels{state=\"open\"} 1"),
        "{text}"
    );
    assert!(text.contains("smartmesh_receipts_held 1"), "{text}");

    let (status, doc) = world.get("/v1/openapi.json").await?;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/v1/receipts",
        "/v1/channels/{id}",
        "/v1/proofs/latest",
        "/v1/health",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from {doc}");
    }
    // The schemas come from the handlers' types: the batch's fields are all there.
    let batch = &doc["components"]["schemas"]["ReceiptBatch"]["properties"];
    for field in ["chainId", "tokenNetwork", "items", "sent", "conditions"] {
        assert!(
            batch[field].is_object(),
            "ReceiptBatch.{field} missing: {batch}"
        );
    }
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("ReceiptItem", "locks"),
        ("ConditionUpload", "request"),
        ("LatestProof", "locks"),
        ("Health", "registrationFee"),
    ] {
        assert!(
            schemas[schema]["properties"][field].is_object(),
            "{schema}.{field} missing: {}",
            schemas[schema]
        );
    }
    assert!(
        schemas["SentBackup"]["oneOf"].is_array(),
        "a backup is a proof's text or an object with its locks: {}",
        schemas["SentBackup"]
    );

    // Every error it can answer is documented, with its JSON body; addresses and amounts
    // carry their patterns.
    let upload = &doc["paths"]["/v1/receipts"]["post"]["responses"];
    for code in ["400", "413", "415", "422", "429", "503"] {
        assert!(
            upload[code].is_object(),
            "POST /v1/receipts lacks {code}: {upload}"
        );
    }
    assert!(
        upload["429"]["headers"]["Retry-After"].is_object(),
        "{upload}"
    );
    let channel = &doc["paths"]["/v1/channels/{id}"]["get"]["responses"];
    for code in ["400", "401", "403", "404", "422", "429"] {
        assert!(
            channel[code].is_object(),
            "GET /v1/channels/{{id}} lacks {code}"
        );
    }
    let watch = &doc["components"]["schemas"]["WatchAuthorization"]["properties"];
    assert_eq!(
        watch["watcher"]["pattern"], "^0x[0-9a-fA-F]{40}$",
        "{watch}"
    );
    assert!(watch["reward"]["pattern"].is_string(), "{watch}");

    let (status, body) = world.get("/v2/nothing").await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, body) = world
        .send(Request::put("/v1/receipts").body(Body::empty())?)
        .await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["error"], "method_not_allowed");
    let (status, body) = world
        .send(
            Request::post("/v1/receipts")
                .header("content-type", "text/plain")
                .body(Body::from("{}"))?,
        )
        .await?;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert!(body["detail"].is_string(), "{body}");
    Ok(())
}

#[tokio::test]
async fn each_client_is_rate_limited_on_its_own() -> eyre::Result<()> {
    let mut world = World::new(common::sqlite("rate_limit").await?).await?;
    world.state.limits = ApiLimits {
        rate_per_second: 1,
        burst: 2,
        ..ApiLimits::default()
    };
    let from = |ip: [u8; 4]| -> eyre::Result<Request<Body>> {
        let mut request = Request::get("/v1/health").body(Body::empty())?;
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 4000))));
        Ok(request)
    };
    // One router for all requests: the limiter lives in it.
    let router = smartmesh_settlement::app(world.state.clone());
    let status = |request: Request<Body>| {
        let router = router.clone();
        async move {
            let response: axum::response::Response =
                tower::ServiceExt::oneshot(router, request).await?;
            eyre::Ok(response.status())
        }
    };
    assert_eq!(status(from([10, 0, 0, 1])?).await?, StatusCode::OK);
    assert_eq!(status(from([10, 0, 0, 1])?).await?, StatusCode::OK);
    let response = tower::ServiceExt::oneshot(router.clone(), from([10, 0, 0, 1])?).await?;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        status(from([10, 0, 0, 2])?).await?,
        StatusCode::OK,
        "another client is not slowed"
    );
    drop(world);
    Ok(())
}

#[tokio::test]
async fn a_request_over_its_time_gets_a_json_503() -> eyre::Result<()> {
    let mut world = World::new(common::sqlite("request_timeout").await?).await?;
    world.state.limits.timeout = std::time::Duration::from_millis(1);
    let items = (1..=500)
        .map(|nonce| world.item(world.alice(), world.brandon(), nonce, "1"))
        .collect();
    let (status, body) = world.post(world.batch(items).to_string()).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "timeout");
    Ok(())
}
