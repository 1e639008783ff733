//! The watcher as a service: the HTTP API and the dispute engine on every replica; the
//! indexer and the transaction sender on the leader only. Each task is one loop that stops
//! when shutdown is signalled; the API finishes the requests it is answering (a batch in
//! flight is stored whole) before the service returns.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use alloy::{
    primitives::Address,
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
};
use smartmesh_chain::{
    Backoff, Database, Deployment, FollowerConfig, LogFollower, Progress, SenderConfig, TxSender,
};
use tokio::{
    net::TcpListener,
    sync::{Notify, watch},
};
use tracing::info;

use crate::{
    ApiLimits, AppState, ChannelIndexer, DisputeEngine, EngineConfig, HealthLimits, Metrics,
    Registrations, SettlementError, app, leader::Leadership,
};

/// The name of the indexer's cursor in the database.
pub const INDEXER_NAME: &str = "channels";

/// Settings of a [`Watcher`].
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// Blocks behind the head the indexer stays (reorg safety).
    pub confirmations: u64,
    /// The most blocks one `eth_getLogs` call covers.
    pub max_range: u64,
    /// The pause between the indexer's and the sender's rounds, and between leadership tries.
    pub poll_interval: Duration,
    /// The dispute engine's settings.
    pub engine: EngineConfig,
    /// The transaction sender's settings.
    pub sender: SenderConfig,
    /// The HTTP API's limits.
    pub limits: ApiLimits,
    /// How many blocks beyond `confirmations` the indexer may fall behind before health
    /// answers 503.
    pub max_lag_blocks: u64,
    /// The least fee, in SMT wei, a phone's request to register a condition must pay.
    pub registration_fee: alloy::primitives::U256,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        Self {
            confirmations: 2,
            max_range: 1_000,
            poll_interval: Duration::from_secs(1),
            engine: EngineConfig::default(),
            sender: SenderConfig::default(),
            limits: ApiLimits {
                max_body: crate::MAX_BODY_BYTES,
                ..ApiLimits::default()
            },
            max_lag_blocks: 10,
            registration_fee: alloy::primitives::U256::ZERO,
        }
    }
}

/// A settlement watcher guarding one TokenNetwork.
pub struct Watcher {
    provider: DynProvider,
    db: Database,
    deployment: Deployment,
    key: PrivateKeySigner,
    config: WatcherConfig,
    sender: TxSender,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    sender_wake: Arc<Notify>,
    leading: Arc<AtomicBool>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("token_network", &self.deployment.token_network)
            .field("watcher", &self.key.address())
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watcher of `deployment`, signing with `key`. Refuses a provider on another chain.
    pub async fn new(
        provider: DynProvider,
        db: Database,
        deployment: Deployment,
        key: PrivateKeySigner,
        config: WatcherConfig,
    ) -> Result<Self, SettlementError> {
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| SettlementError::Rpc(e.to_string()))?;
        if chain_id != deployment.chain_id {
            return Err(SettlementError::Config(format!(
                "the RPC serves chain {chain_id}, the deployment is for chain {}",
                deployment.chain_id
            )));
        }
        let code = provider
            .get_code_at(deployment.token_network)
            .await
            .map_err(|e| SettlementError::Rpc(e.to_string()))?;
        if code.is_empty() {
            return Err(SettlementError::Config(format!(
                "no contract at the TokenNetwork address {} on chain {chain_id}",
                deployment.token_network
            )));
        }
        let sender = TxSender::new(
            provider.clone(),
            db.clone(),
            vec![key.clone()],
            config.sender.clone(),
        )
        .await?;
        Ok(Self {
            provider,
            db,
            deployment,
            key,
            config,
            sender,
            metrics: Arc::default(),
            wake: Arc::default(),
            sender_wake: Arc::default(),
            leading: Arc::default(),
        })
    }

    /// The address phones name in their Watches.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// The HTTP API's state.
    pub fn state(&self) -> AppState {
        AppState {
            db: self.db.clone(),
            chain_id: self.deployment.chain_id,
            token_network: self.deployment.token_network,
            watcher: Arc::new(self.key.clone()),
            metrics: self.metrics.clone(),
            wake: self.wake.clone(),
            limits: self.config.limits,
            leading: self.leading.clone(),
            sender: Some(self.sender.clone()),
            health: HealthLimits {
                confirmations: self.config.confirmations,
                max_lag_blocks: self.config.max_lag_blocks,
            },
            registrations: self.registrations(),
        }
    }

    /// Where it registers conditions, and for what fee.
    fn registrations(&self) -> Registrations {
        Registrations {
            registry: self.deployment.condition_registry,
            signed_agent: self.deployment.signed_agent,
            token: self.deployment.token,
            fee: self.config.registration_fee,
        }
    }

    /// The dispute engine, sharing this watcher's sender and notifications.
    pub fn engine(&self) -> DisputeEngine {
        DisputeEngine::new(
            self.provider.clone(),
            self.db.clone(),
            self.sender.clone(),
            self.deployment.token_network,
            self.key.address(),
            self.config.engine.clone(),
            self.metrics.clone(),
        )
        .with_notifications(self.wake.clone(), self.sender_wake.clone())
        .with_registrations(self.registrations())
    }

    /// Serves the API on `listener` and runs every task until `shutdown` resolves.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), SettlementError> {
        let (stop_tx, stop) = watch::channel(false);
        let stopped = move |mut stop: watch::Receiver<bool>| async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let (leading_tx, leading) = watch::channel(false);

        info!(target: "smartmesh::watcher", address = %listener.local_addr()?, watcher = %self.key.address(), "serving");
        let server = tokio::spawn(smartmesh_http::serve(
            listener,
            app(self.state()),
            self.config.limits,
            stopped(stop.clone()),
        ));
        let engine = tokio::spawn(self.engine().run(stopped(stop.clone())));
        let leadership = tokio::spawn(lead(
            Leadership::new(self.db.clone()),
            leading_tx,
            self.leading.clone(),
            self.metrics.clone(),
            self.config.poll_interval,
            stop.clone(),
        ));
        let indexer = tokio::spawn(index(
            LogFollower::new(
                self.provider.clone(),
                self.db.clone(),
                FollowerConfig {
                    name: INDEXER_NAME.into(),
                    addresses: vec![self.deployment.token_network],
                    start_block: self.deployment.deploy_block,
                    confirmations: self.config.confirmations,
                    max_range: self.config.max_range,
                    keep_blocks: 256,
                    poll_interval: self.config.poll_interval,
                },
            ),
            leading.clone(),
            self.wake.clone(),
            self.metrics.clone(),
            self.config.poll_interval,
            stop.clone(),
        ));
        let sending = tokio::spawn(send(
            self.sender.clone(),
            leading,
            self.sender_wake.clone(),
            self.metrics.clone(),
            self.config.poll_interval,
            stop.clone(),
        ));

        shutdown.await;
        info!(target: "smartmesh::watcher", "shutting down: finishing requests in flight");
        let _ = stop_tx.send(true);
        let served = server.await;
        for task in [engine, leadership, indexer, sending] {
            let _ = task.await;
        }
        match served {
            Ok(result) => result.map_err(SettlementError::Server),
            Err(join) => Err(SettlementError::Server(std::io::Error::other(join))),
        }
    }
}

/// The longest pause between retries of a failing loop.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Keeps `leading` up to date until stopped, then resigns.
async fn lead(
    mut leadership: Leadership,
    leading: watch::Sender<bool>,
    shown: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new("leadership", interval, MAX_BACKOFF);
    loop {
        let (now, pause) = match leadership.check().await {
            Ok(now) => {
                backoff.succeeded();
                (now, interval)
            }
            Err(error) => {
                metrics.failed(error.fault(), &error);
                (false, backoff.failed(&error))
            }
        };
        leading.send_if_modified(|was| std::mem::replace(was, now) != now);
        shown.store(now, Ordering::Relaxed);
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    // Stop leading before giving the lock up, so no task of ours acts as leader after.
    leading.send_replace(false);
    shown.store(false, Ordering::Relaxed);
    leadership.resign().await;
}

/// Waits until this replica leads (or stop); false on stop.
async fn await_leading(
    leading: &mut watch::Receiver<bool>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        led = leading.wait_for(|leading| *leading) => led.is_ok(),
        _ = stop.wait_for(|stopped| *stopped) => false,
    }
}

async fn index(
    follower: LogFollower,
    mut leading: watch::Receiver<bool>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut indexer = ChannelIndexer;
    let mut backoff = Backoff::new("indexer", interval, MAX_BACKOFF);
    loop {
        if !await_leading(&mut leading, &mut stop).await {
            return;
        }
        let pause = match follower.poll_once(&mut indexer).await {
            Ok(progress) => {
                backoff.succeeded();
                metrics.rpc_ok(None);
                match progress {
                    Progress::Advanced { .. } | Progress::RolledBack { .. } => {
                        Metrics::add(&metrics.indexed_batches, 1);
                        wake.notify_one();
                        Duration::ZERO
                    }
                    Progress::UpToDate => interval,
                }
            }
            Err(error) => {
                metrics.failed(error.fault(), &error);
                backoff.failed(&error)
            }
        };
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

async fn send(
    sender: TxSender,
    mut leading: watch::Receiver<bool>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new("sender", interval, MAX_BACKOFF);
    loop {
        if !await_leading(&mut leading, &mut stop).await {
            return;
        }
        let pause = match sender.tick().await {
            Ok(()) => {
                backoff.succeeded();
                interval
            }
            Err(error) => {
                metrics.failed(error.fault(), &error);
                backoff.failed(&error)
            }
        };
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = wake.notified(), if backoff.failures() == 0 => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}
