//! What the relayer's tests share: the deployed stack, fresh databases, a relayer on them,
//! users who hold SMT and no ETH, and the HTTP API driven through `app(state)` with `oneshot`.

// Each test binary uses a different part of it.
#![allow(dead_code)]

#[path = "../../../protocol/tests/common/mod.rs"]
pub(crate) mod stack;
#[path = "../../../chain/tests/common/mod.rs"]
pub(crate) mod storage;

use std::time::Duration;

use alloy::{
    primitives::{Address, B256, Bytes, U256, keccak256, utils::parse_ether},
    providers::Provider,
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use http_body_util::BodyExt;
use smartmesh_chain::{Database, Deployment, SenderConfig, connect};
use smartmesh_protocol::{AgentRequest, agent_domain, sign_typed};
use smartmesh_relayer::{
    ApiLimits, Quote, RateSource, RelayPolicy, RelayRequest, Relayer, RelayerConfig, app,
};
pub(crate) use stack::Stack;
#[allow(unused_imports)]
pub(crate) use storage::{postgres, sqlite};
use tower::ServiceExt;

/// Quick to react; 1,000 SMT per ETH and 10% markup.
pub(crate) fn fast_config() -> RelayerConfig {
    RelayerConfig {
        policy: RelayPolicy {
            rate: RateSource::fixed("1000").unwrap(),
            markup_bps: 1_000,
            quote_ttl: Duration::from_secs(120),
            min_validity: Duration::from_secs(30),
            ..RelayPolicy::default()
        },
        sender: SenderConfig {
            confirmations: 1,
            ..SenderConfig::default()
        },
        limits: ApiLimits {
            rate_per_second: 10_000,
            burst: 10_000,
            ..ApiLimits::default()
        },
        poll_interval: Duration::from_millis(20),
        follow_interval: Duration::from_millis(50),
    }
}

pub(crate) fn deployment(stack: &Stack) -> Deployment {
    Deployment {
        chain_id: stack.chain_id,
        token: stack.token,
        signed_agent: stack.agent,
        token_network: stack.network,
        condition_registry: stack.registry,
        deploy_block: 0,
    }
}

pub(crate) struct Harness {
    pub(crate) stack: Stack,
    pub(crate) db: Database,
    pub(crate) relayer: Relayer,
    pub(crate) key: PrivateKeySigner,
}

impl Harness {
    /// The stack and a relayer sending with anvil's key 8.
    pub(crate) async fn new(db: Database, config: RelayerConfig) -> eyre::Result<Self> {
        let stack = Stack::deploy().await?;
        let key = stack.keys[8].clone();
        let relayer = Relayer::new(
            connect(stack.anvil.endpoint_url().as_ref())?,
            db.clone(),
            deployment(&stack),
            vec![key.clone()],
            config,
        )
        .await?;
        Ok(Self {
            stack,
            db,
            relayer,
            key,
        })
    }

    /// A user of its own (no ETH) holding `smt` SMT.
    pub(crate) async fn user(&self, seed: u8, smt: &str) -> eyre::Result<PrivateKeySigner> {
        let user =
            PrivateKeySigner::from_bytes(&keccak256([b"user".as_slice(), &[seed]].concat()))?;
        if smt != "0" {
            self.stack.fund(user.address(), parse_ether(smt)?).await?;
        }
        Ok(user)
    }

    pub(crate) async fn send(
        &self,
        request: Request<Body>,
    ) -> eyre::Result<(StatusCode, serde_json::Value)> {
        let response = app(self.relayer.state()).oneshot(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&bytes)?))
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        body: String,
    ) -> eyre::Result<(StatusCode, serde_json::Value)> {
        self.send(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(body))?,
        )
        .await
    }

    pub(crate) async fn get(&self, path: &str) -> eyre::Result<(StatusCode, serde_json::Value)> {
        self.send(Request::get(path).body(Body::empty())?).await
    }

    pub(crate) async fn quote(
        &self,
        user: &PrivateKeySigner,
        target: Address,
        data: &[u8],
    ) -> eyre::Result<(StatusCode, serde_json::Value)> {
        let body = serde_json::json!({
            "from": user.address(),
            "target": target,
            "data": Bytes::copy_from_slice(data),
        });
        self.post("/v1/quote", body.to_string()).await
    }

    /// The request a user signs from `quote`, with `nonce` and a deadline an hour after the
    /// chain's clock.
    pub(crate) async fn request(&self, quote: &Quote, nonce: u64) -> eyre::Result<AgentRequest> {
        let now = self
            .stack
            .provider(&self.stack.keys[0])
            .get_block_by_number(Default::default())
            .await?
            .unwrap()
            .header
            .timestamp;
        Ok(AgentRequest {
            from: quote.from,
            agent: quote.agent,
            target: quote.target,
            data: Bytes::new(),
            gas: quote.gas,
            feeToken: quote.fee_token,
            fee: quote.fee,
            nonce: U256::from(nonce),
            deadline: U256::from(now + 3_600),
        })
    }

    pub(crate) fn sign(&self, user: &PrivateKeySigner, request: &AgentRequest) -> Bytes {
        let domain = agent_domain(self.stack.chain_id, self.stack.agent);
        Bytes::copy_from_slice(sign_typed(user, request, &domain).as_bytes())
    }

    pub(crate) async fn post_relay(
        &self,
        quote_id: i64,
        request: &AgentRequest,
        signature: Bytes,
    ) -> eyre::Result<(StatusCode, serde_json::Value)> {
        let body = RelayRequest {
            quote_id,
            request: request.clone().into(),
            signature,
        };
        self.post("/v1/relay", serde_json::to_string(&body)?).await
    }

    /// Signs `request` as `signer` and posts it against quote `quote_id`.
    pub(crate) async fn post_signed(
        &self,
        quote_id: i64,
        signer: &PrivateKeySigner,
        request: &AgentRequest,
    ) -> eyre::Result<(StatusCode, serde_json::Value)> {
        self.post_relay(quote_id, request, self.sign(signer, request))
            .await
    }

    /// Quotes, signs and relays `data` to `target` for `user`; returns the quote and the
    /// relay's answer.
    pub(crate) async fn relay(
        &self,
        user: &PrivateKeySigner,
        target: Address,
        data: Vec<u8>,
        nonce: u64,
    ) -> eyre::Result<(Quote, StatusCode, serde_json::Value)> {
        let (status, quote) = self.quote(user, target, &data).await?;
        eyre::ensure!(status == StatusCode::OK, "quote refused: {quote}");
        let quote: Quote = serde_json::from_value(quote)?;
        let mut request = self.request(&quote, nonce).await?;
        request.data = data.into();
        let signature = self.sign(user, &request);
        let (status, answer) = self.post_relay(quote.quote_id, &request, signature).await?;
        Ok((quote, status, answer))
    }

    /// Ticks the relayer until relay `id` is mined; returns its status.
    pub(crate) async fn mined(&self, id: i64) -> eyre::Result<serde_json::Value> {
        for _ in 0..200 {
            self.relayer.tick().await?;
            let (_, status) = self.get(&format!("/v1/relay/{id}")).await?;
            match status["status"].as_str() {
                Some("mined") => return Ok(status),
                Some("failed") => eyre::bail!("relay {id} failed: {status}"),
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        eyre::bail!("relay {id} was not mined")
    }

    pub(crate) async fn smt(&self, who: Address) -> eyre::Result<U256> {
        Ok(self
            .stack
            .token(&self.stack.keys[0])
            .balanceOf(who)
            .call()
            .await?)
    }

    pub(crate) async fn eth(&self, who: Address) -> eyre::Result<U256> {
        Ok(self
            .stack
            .provider(&self.stack.keys[0])
            .get_balance(who)
            .await?)
    }

    pub(crate) async fn rpc(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> eyre::Result<serde_json::Value> {
        Ok(self
            .stack
            .provider(&self.stack.keys[0])
            .raw_request(method.into(), params)
            .await?)
    }

    pub(crate) async fn sent(&self) -> eyre::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM sender_transactions")
                .fetch_one(self.db.pool())
                .await?,
        )
    }
}

pub(crate) fn digest(stack: &Stack, request: &AgentRequest) -> B256 {
    request.eip712_signing_hash(&agent_domain(stack.chain_id, stack.agent))
}
