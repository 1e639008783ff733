//! A whole watcher (API, indexer, engine, sender) running in this process against the stack's
//! anvil, and what the dispute tests do around it: payments, uploads over HTTP, closes, time.

use std::{net::SocketAddr, time::Duration};

use alloy::{
    primitives::{Address, B256, Bytes, U256, utils::parse_ether},
    providers::Provider,
    rpc::types::Filter,
    signers::local::PrivateKeySigner,
    sol_types::{SolEvent, SolStruct},
    transports::http::reqwest,
};
use smartmesh_chain::{Database, Deployment, SenderConfig, connect};
use smartmesh_protocol::{
    BalanceProof, SignedProof, TokenNetwork, Watch, sign_typed, token_network_domain,
};
use smartmesh_settlement::{
    ApiLimits, ChannelView, EngineConfig, ReceiptBatch, ReceiptItem, SettlementError,
    WatchAuthorization, Watcher, WatcherConfig,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use super::Stack;

/// Settings that react within milliseconds, with no confirmations, settling at once.
pub(crate) fn fast_config() -> WatcherConfig {
    WatcherConfig {
        confirmations: 0,
        max_range: 100,
        poll_interval: Duration::from_millis(20),
        engine: EngineConfig {
            recheck: Duration::from_millis(300),
            in_flight: Duration::from_millis(50),
            poll_interval: Duration::from_millis(20),
            settle_grace: Duration::ZERO,
            ..EngineConfig::default()
        },
        sender: SenderConfig {
            confirmations: 1,
            ..SenderConfig::default()
        },
        limits: ApiLimits {
            rate_per_second: 1_000,
            burst: 1_000,
            max_body: smartmesh_settlement::MAX_BODY_BYTES,
            work_per_second: 1_000_000,
            work_burst: 1_000_000,
            ..ApiLimits::default()
        },
        max_lag_blocks: 10,
        registration_fee: U256::ZERO,
    }
}

pub(crate) struct RunningWatcher {
    pub(crate) url: String,
    pub(crate) address: Address,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), SettlementError>>>,
}

impl RunningWatcher {
    /// Starts the watcher of `stack`'s TokenNetwork, signing with `key`.
    pub(crate) async fn start(
        stack: &Stack,
        db: Database,
        key: PrivateKeySigner,
        config: WatcherConfig,
    ) -> eyre::Result<Self> {
        let deployment = Deployment {
            chain_id: stack.chain_id,
            token: stack.token,
            signed_agent: stack.agent,
            token_network: stack.network,
            condition_registry: stack.registry,
            deploy_block: 0,
        };
        let provider = connect(stack.anvil.endpoint_url().as_ref())?;
        let watcher = Watcher::new(provider, db, deployment, key, config).await?;
        let address = watcher.address();
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(watcher.run(listener, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            url,
            address,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops it gracefully and returns what `run` returned.
    pub(crate) async fn stop(mut self) -> eyre::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    pub(crate) async fn channel(&self, channel_id: B256) -> eyre::Result<ChannelView> {
        let response = reqwest::get(format!("{}/v1/channels/{channel_id}", self.url)).await?;
        eyre::ensure!(response.status().is_success(), "{}", response.text().await?);
        Ok(serde_json::from_str(&response.text().await?)?)
    }

    /// The channel's private view, as `participant` asks for it (signed).
    pub(crate) async fn private_channel(
        &self,
        stack: &Stack,
        channel_id: B256,
        participant: &PrivateKeySigner,
    ) -> eyre::Result<ChannelView> {
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            + 120;
        let read = smartmesh_protocol::WatcherRead {
            channelId: channel_id,
            participant: participant.address(),
            watcher: self.address,
            expiresAt: U256::from(expires),
        };
        let signature = sign_typed(
            participant,
            &read,
            &smartmesh_protocol::watcher_domain(stack.chain_id, stack.network),
        );
        let response = reqwest::get(format!(
            "{}/v1/channels/{channel_id}?participant={}&expires={expires}&signature={}",
            self.url,
            participant.address(),
            Bytes::copy_from_slice(signature.as_bytes())
        ))
        .await?;
        eyre::ensure!(response.status().is_success(), "{}", response.text().await?);
        Ok(serde_json::from_str(&response.text().await?)?)
    }

    /// The decision codes taken on a channel, in order.
    pub(crate) async fn decisions(&self, channel_id: B256) -> eyre::Result<Vec<String>> {
        Ok(self
            .channel(channel_id)
            .await?
            .decisions
            .into_iter()
            .map(|d| format!("{}:{}", d.kind, d.decision))
            .collect())
    }
}

impl Drop for RunningWatcher {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// What a phone holds: its payments' proofs signed by the payer.
pub(crate) fn proof(
    stack: &Stack,
    channel_id: B256,
    payer: &PrivateKeySigner,
    nonce: u64,
    transferred: U256,
) -> SignedProof {
    let domain = token_network_domain(stack.chain_id, stack.network);
    let proof = BalanceProof {
        channelId: channel_id,
        nonce: U256::from(nonce),
        transferredAmount: transferred,
        ..Default::default()
    };
    SignedProof {
        chain_id: stack.chain_id,
        token_network: stack.network,
        signature: sign_typed(payer, &proof, &domain),
        proof,
    }
}

/// The receiver's upload item: the proof and its Watch for `watcher` with `reward`, good for
/// any close to come.
pub(crate) fn receipt(
    stack: &Stack,
    signed: &SignedProof,
    receiver: &PrivateKeySigner,
    watcher: Address,
    reward: U256,
) -> ReceiptItem {
    receipt_until(
        stack,
        signed,
        receiver,
        watcher,
        reward,
        U256::from(u64::MAX),
    )
}

/// The same, with a Watch that covers closes up to `deadline` only.
pub(crate) fn receipt_until(
    stack: &Stack,
    signed: &SignedProof,
    receiver: &PrivateKeySigner,
    watcher: Address,
    reward: U256,
    deadline: U256,
) -> ReceiptItem {
    let domain = token_network_domain(stack.chain_id, stack.network);
    let watch = Watch {
        channelId: signed.proof.channelId,
        proofDigest: signed.proof.eip712_signing_hash(&domain),
        watcher,
        reward,
        deadline,
    };
    ReceiptItem {
        proof: signed.to_text().unwrap(),
        watch: WatchAuthorization {
            watcher,
            reward,
            deadline: watch.deadline,
            signature: Bytes::copy_from_slice(sign_typed(receiver, &watch, &domain).as_bytes()),
        },
        locks: None,
    }
}

/// Uploads a batch over HTTP; returns the answer.
pub(crate) async fn upload(
    url: &str,
    stack: &Stack,
    items: Vec<ReceiptItem>,
) -> eyre::Result<serde_json::Value> {
    let (status, _, answer) = post_batch(&reqwest::Client::new(), url, stack, items).await?;
    eyre::ensure!((200..300).contains(&status), "{answer}");
    Ok(answer)
}

/// Posts a batch over HTTP with `client`: the status, any `Retry-After`, the JSON answer.
pub(crate) async fn post_batch(
    client: &reqwest::Client,
    url: &str,
    stack: &Stack,
    items: Vec<ReceiptItem>,
) -> eyre::Result<(u16, Option<String>, serde_json::Value)> {
    let body = serde_json::to_string(&ReceiptBatch {
        chain_id: stack.chain_id,
        token_network: stack.network,
        items,
        sent: vec![],
        conditions: vec![],
    })?;
    let response = client
        .post(format!("{url}/v1/receipts"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    Ok((
        status,
        retry,
        serde_json::from_str(&response.text().await?)?,
    ))
}

/// `closer` closes with no partner proof, declaring it paid `claim`; returns the close's
/// block and `settleAt`.
pub(crate) async fn close(
    stack: &Stack,
    channel_id: B256,
    closer: &PrivateKeySigner,
    claim: U256,
) -> eyre::Result<(u64, u64)> {
    let receipt = stack
        .network(closer)
        .close(
            channel_id,
            BalanceProof::default().into(),
            Bytes::new(),
            Bytes::new(),
            claim,
            Bytes::new(),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    eyre::ensure!(receipt.status(), "close reverted");
    let closed = receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| log.log_decode::<TokenNetwork::ChannelClosed>().ok())
        .ok_or_else(|| eyre::eyre!("no ChannelClosed"))?;
    Ok((
        receipt.block_number.unwrap_or_default(),
        closed.inner.settleAt.saturating_to(),
    ))
}

/// The blocks of every log of event `E` for `channel_id` on the canonical chain.
pub(crate) async fn event_blocks<E: SolEvent>(
    stack: &Stack,
    channel_id: B256,
) -> eyre::Result<Vec<u64>> {
    let filter = Filter::new()
        .address(stack.network)
        .event_signature(E::SIGNATURE_HASH)
        .topic1(channel_id)
        .from_block(0);
    Ok(stack
        .provider(&stack.keys[0])
        .get_logs(&filter)
        .await?
        .iter()
        .filter_map(|log| log.block_number)
        .collect())
}

/// Polls `check` every 20 ms until it holds; fails after `secs` seconds with `what`.
pub(crate) async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F) -> eyre::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = eyre::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if check().await? {
            return Ok(());
        }
        eyre::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn rpc(
    stack: &Stack,
    method: &'static str,
    params: serde_json::Value,
) -> eyre::Result<serde_json::Value> {
    Ok(stack
        .provider(&stack.keys[0])
        .raw_request(method.into(), params)
        .await?)
}

/// Moves chain time past the hold period and mines a block.
pub(crate) async fn pass_hold_period(stack: &Stack, seconds: u64) -> eyre::Result<()> {
    rpc(stack, "evm_increaseTime", serde_json::json!([seconds])).await?;
    rpc(stack, "evm_mine", serde_json::json!([])).await?;
    Ok(())
}

pub(crate) async fn smt(stack: &Stack, who: Address) -> eyre::Result<U256> {
    Ok(stack.token(&stack.keys[0]).balanceOf(who).call().await?)
}

pub(crate) async fn nonce(stack: &Stack, who: Address) -> eyre::Result<u64> {
    Ok(stack
        .provider(&stack.keys[0])
        .get_transaction_count(who)
        .await?)
}

pub(crate) fn ether(amount: &str) -> U256 {
    parse_ether(amount).unwrap()
}

/// Waits until an event `E` of `channel_id` is on the chain; returns the blocks of all of them.
pub(crate) async fn wait_for_event<E: SolEvent>(
    stack: &Stack,
    channel_id: B256,
    what: &str,
) -> eyre::Result<Vec<u64>> {
    eventually(30, what, || async {
        Ok(!event_blocks::<E>(stack, channel_id).await?.is_empty())
    })
    .await?;
    event_blocks::<E>(stack, channel_id).await
}

pub(crate) async fn block_timestamp(stack: &Stack, number: u64) -> eyre::Result<u64> {
    Ok(stack
        .provider(&stack.keys[0])
        .get_block_by_number(number.into())
        .await?
        .ok_or_else(|| eyre::eyre!("no block {number}"))?
        .header
        .timestamp)
}
