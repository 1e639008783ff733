//! The relayer as a service: the HTTP API, the transaction sender's loop, and the loop that
//! books each finished relay's fee and gas. Each loop stops when shutdown is signalled; the
//! API finishes the requests it is answering first.

use std::{future::Future, sync::Arc, time::Duration};

use alloy::{
    primitives::Address,
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
};
use smartmesh_chain::{Backoff, Database, Deployment, SenderConfig, TxSender};
use tokio::{net::TcpListener, sync::watch};
use tracing::info;

use crate::{
    AllowList, ApiLimits, AppState, RelayPolicy, RelayerError,
    api::{Core, Metrics},
    app,
    earnings::settle_finished,
    estimate::Estimator,
    quote::forget_expired,
};

/// The longest pause between retries of a failing loop.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Settings of a [`Relayer`].
#[derive(Debug, Clone)]
pub struct RelayerConfig {
    /// Pricing and screening.
    pub policy: RelayPolicy,
    /// The transaction sender's settings.
    pub sender: SenderConfig,
    /// The HTTP API's limits.
    pub limits: ApiLimits,
    /// The longest a queued request waits before it is broadcast (a relay wakes the sender
    /// at once; this is the fallback).
    pub poll_interval: Duration,
    /// The pause between rounds of following sent transactions (receipts, replacements,
    /// bookkeeping): each round asks the node about every transaction in flight.
    pub follow_interval: Duration,
}

impl Default for RelayerConfig {
    fn default() -> Self {
        Self {
            policy: RelayPolicy::default(),
            sender: SenderConfig::default(),
            limits: ApiLimits::default(),
            poll_interval: Duration::from_secs(1),
            follow_interval: Duration::from_secs(1),
        }
    }
}

/// A relayer of one deployment's SignedAgent.
pub struct Relayer {
    state: AppState,
    poll_interval: Duration,
    follow_interval: Duration,
}

impl std::fmt::Debug for Relayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relayer")
            .field("signed_agent", &self.state.core.agent)
            .field("keys", &self.state.core.keys)
            .finish_non_exhaustive()
    }
}

impl Relayer {
    /// A relayer of `deployment` sending with `keys`; measures the agent's overhead on the
    /// chain first. Refuses a provider on another chain.
    pub async fn new(
        provider: DynProvider,
        db: Database,
        deployment: Deployment,
        keys: Vec<PrivateKeySigner>,
        config: RelayerConfig,
    ) -> Result<Self, RelayerError> {
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| RelayerError::Rpc(e.to_string()))?;
        if chain_id != deployment.chain_id {
            return Err(RelayerError::Config(format!(
                "the RPC serves chain {chain_id}, the deployment is for chain {}",
                deployment.chain_id
            )));
        }
        let addresses: Vec<Address> = keys.iter().map(PrivateKeySigner::address).collect();
        let first = *addresses
            .first()
            .ok_or_else(|| RelayerError::Config("the relayer needs at least one key".into()))?;
        let estimator = Estimator::calibrate(
            provider.clone(),
            chain_id,
            deployment.signed_agent,
            deployment.token,
            first,
        )
        .await?;
        let sender = TxSender::new(provider.clone(), db.clone(), keys, config.sender).await?;
        let checks = config.policy.max_concurrent_checks.max(1);
        let core = Core {
            db,
            provider,
            sender,
            chain_id,
            token: deployment.token,
            agent: deployment.signed_agent,
            keys: addresses,
            estimator,
            allow: AllowList::new(
                deployment.token,
                deployment.token_network,
                deployment.condition_registry,
            ),
            policy: config.policy,
            metrics: Metrics::default(),
            sender_wake: Default::default(),
            node_turns: tokio::sync::Semaphore::new(checks),
            user_turns: (0..crate::api::USER_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            next_key: Default::default(),
            chain_clock: Default::default(),
        };
        Ok(Self {
            state: AppState {
                core: Arc::new(core),
                limits: config.limits,
            },
            poll_interval: config.poll_interval,
            follow_interval: config.follow_interval,
        })
    }

    /// The HTTP API's state.
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// The relayer's keys: the `agent`s requests may name.
    pub fn keys(&self) -> &[Address] {
        &self.state.core.keys
    }

    /// The gas `execute` costs besides calldata, the call and the fee, as measured at start.
    pub fn agent_overhead(&self) -> u64 {
        self.state.core.estimator.base_overhead()
    }

    /// One round of the loops `run` repeats: sends what is queued, follows what is sent, and
    /// books what became final. For tests and tools that drive the relayer step by step.
    pub async fn tick(&self) -> Result<(), RelayerError> {
        self.state.core.sender.tick().await?;
        settle_finished(&self.state.core).await?;
        forget_expired(&self.state.core).await?;
        Ok(())
    }

    /// Serves the API on `listener` and runs the loops until `shutdown` resolves.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RelayerError> {
        let (stop_tx, stop) = watch::channel(false);
        let stopped = move |mut stop: watch::Receiver<bool>| async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        info!(target: "smartmesh::relayer", address = %listener.local_addr()?, keys = ?self.state.core.keys, chain = self.state.core.estimator.chain_id(), "serving");
        let server = tokio::spawn(smartmesh_http::serve(
            listener,
            app(self.state.clone()),
            self.state.limits,
            stopped(stop.clone()),
        ));
        // Queued requests are broadcast as soon as they are accepted; following what was sent
        // (receipts, replacements, bookkeeping) runs in a loop of its own.
        let core = self.state.core.clone();
        let interval = self.poll_interval;
        let mut stop_sending = stop.clone();
        let sending = tokio::spawn(async move {
            let mut backoff = Backoff::new("sender", interval, MAX_BACKOFF);
            loop {
                let pause = match core.sender.send_queued().await {
                    Ok(()) => {
                        backoff.succeeded();
                        interval
                    }
                    Err(error) => backoff.failed(&error),
                };
                tokio::select! {
                    _ = stop_sending.wait_for(|stopped| *stopped) => return,
                    _ = core.sender_wake.notified(), if backoff.failures() == 0 => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        });
        let core = self.state.core.clone();
        let interval = self.follow_interval;
        let mut stop_following = stop.clone();
        let following = tokio::spawn(async move {
            let mut backoff = Backoff::new("follower of sent transactions", interval, MAX_BACKOFF);
            loop {
                let followed = async {
                    core.sender.follow().await?;
                    settle_finished(&core).await?;
                    forget_expired(&core).await?;
                    Ok::<_, RelayerError>(())
                };
                let pause = match followed.await {
                    Ok(()) => {
                        backoff.succeeded();
                        interval
                    }
                    Err(error) => backoff.failed(&error),
                };
                tokio::select! {
                    _ = stop_following.wait_for(|stopped| *stopped) => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        });
        shutdown.await;
        info!(target: "smartmesh::relayer", "shutting down: finishing requests in flight");
        let _ = stop_tx.send(true);
        let served = server.await;
        let _ = sending.await;
        let _ = following.await;
        match served {
            Ok(result) => result.map_err(RelayerError::Server),
            Err(join) => Err(RelayerError::Server(std::io::Error::other(join))),
        }
    }
}
