//! The simulator's chain: anvil with the real contracts, the watcher and the relayer as
//! `smartmesh dev` runs them (in this process), and anvil's clock moved with the virtual
//! one; and what the chain says at the end about every channel.

use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration};

use alloy::{
    node_bindings::AnvilInstance,
    primitives::{Address, B256, U256, utils::parse_ether},
    providers::{DynProvider, Provider},
    rpc::types::Filter,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use eyre::{WrapErr, bail, eyre};
use smartmesh_chain::{Deployment, connect};
use smartmesh_http::ApiLimits;
use smartmesh_protocol::{SmartMeshToken, TokenNetwork};
use tokio::{net::TcpListener, sync::broadcast, task::JoinHandle};

use crate::{deploy, dev};

/// A running service's task: it ends only with an error or at the stop.
type Service = JoinHandle<eyre::Result<()>>;

/// Anvil, the contracts and the two services.
pub(crate) struct Chain {
    _anvil: AnvilInstance,
    pub(crate) rpc_url: String,
    pub(crate) deployment: Deployment,
    pub(crate) watcher_url: String,
    pub(crate) relayer_url: String,
    reader: DynProvider,
    funder: DynProvider,
    stop: broadcast::Sender<()>,
    services: Vec<(&'static str, Service)>,
    http: alloy::transports::http::reqwest::Client,
}

/// How a closed channel ended on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settled {
    /// The participants, lower address first, as the contract orders them.
    pub(crate) participants: (Address, Address),
    /// Who closed it.
    pub(crate) closer: Address,
    /// Whether the closer was penalized (a watcher proved it under-declared its payments).
    pub(crate) penalized: bool,
    /// What each participant was paid out, in the participants' order.
    pub(crate) payouts: (U256, U256),
    /// What the watcher earned.
    pub(crate) reward: U256,
}

impl Chain {
    /// Starts anvil (the npm one unless `anvil` names another), deploys with `settle_timeout`
    /// as the shortest hold period, and starts the watcher and the relayer under `dir`.
    pub(crate) async fn start(
        dir: &Path,
        anvil: Option<&Path>,
        settle_timeout: u64,
    ) -> eyre::Result<Self> {
        std::fs::create_dir_all(dir)
            .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
        let instance = dev::start_anvil(anvil, 0)?;
        let keys: Vec<PrivateKeySigner> =
            instance.keys().iter().map(|k| k.clone().into()).collect();
        let [deployer, watcher_key, relayer_key, ..] = &keys[..] else {
            bail!("anvil started with fewer than three accounts");
        };
        let rpc_url = instance.endpoint();
        let funder = deploy::signing_provider(&rpc_url, deployer)?;
        let deployment = deploy::deploy(
            &funder,
            deployer.address(),
            parse_ether("3141592653")?,
            settle_timeout,
            30 * 24 * 3_600,
        )
        .await?;
        let reader = connect(&rpc_url)?;
        // Quick rounds: virtual hours pass in wall seconds here.
        let poll = Duration::from_millis(50);
        let limits = ApiLimits {
            max_body: smartmesh_settlement::MAX_BODY_BYTES,
            // Every simulated phone calls from this one address.
            rate_per_second: 1_000_000,
            burst: 1_000_000,
            work_per_second: 10_000_000,
            work_burst: 10_000_000,
            ..ApiLimits::default()
        };
        let watcher =
            dev::dev_watcher(&reader, dir, &deployment, watcher_key.clone(), limits, poll).await?;
        let relayer = dev::dev_relayer(
            reader.clone(),
            dir,
            &deployment,
            relayer_key.clone(),
            ApiLimits {
                max_body: ApiLimits::default().max_body,
                ..limits
            },
            poll,
        )
        .await?;
        let (stop, _) = broadcast::channel::<()>(1);
        let stopped = |stop: &broadcast::Sender<()>| {
            let mut receiver = stop.subscribe();
            async move {
                let _ = receiver.recv().await;
            }
        };
        let bind = || TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)));
        let (watcher_listener, relayer_listener) = (bind().await?, bind().await?);
        let watcher_url = format!("http://{}", watcher_listener.local_addr()?);
        let relayer_url = format!("http://{}", relayer_listener.local_addr()?);
        let watching = tokio::spawn({
            let shutdown = stopped(&stop);
            async move { Ok(watcher.run(watcher_listener, shutdown).await?) }
        });
        let relaying = tokio::spawn({
            let shutdown = stopped(&stop);
            async move { Ok(relayer.run(relayer_listener, shutdown).await?) }
        });
        Ok(Self {
            _anvil: instance,
            rpc_url,
            deployment,
            watcher_url,
            relayer_url,
            reader,
            funder,
            stop,
            services: vec![("watcher", watching), ("relayer", relaying)],
            http: alloy::transports::http::reqwest::Client::new(),
        })
    }

    /// Fails when a service has stopped: the simulation would go on half alive.
    pub(crate) fn check_services(&self) -> eyre::Result<()> {
        for (name, task) in &self.services {
            if task.is_finished() {
                bail!("the {name} stopped while the simulation ran");
            }
        }
        Ok(())
    }

    /// Stops the services and anvil.
    pub(crate) async fn stop(self) -> eyre::Result<()> {
        let _ = self.stop.send(());
        for (name, task) in self.services {
            task.await
                .wrap_err_with(|| format!("the {name} panicked"))?
                .wrap_err_with(|| format!("the {name} failed"))?;
        }
        Ok(())
    }

    /// The latest block's timestamp.
    pub(crate) async fn time(&self) -> eyre::Result<u64> {
        let block = self
            .reader
            .get_block(alloy::eips::BlockNumberOrTag::Latest.into())
            .await?
            .ok_or_else(|| eyre!("the chain has no latest block"))?;
        Ok(block.header.timestamp)
    }

    /// Moves anvil's clock to `at` and mines a block there, unless the chain is already there.
    pub(crate) async fn set_time(&self, at: u64) -> eyre::Result<()> {
        if self.time().await? >= at {
            return Ok(());
        }
        let _: serde_json::Value = self.reader.raw_request("evm_setTime".into(), (at,)).await?;
        let _: serde_json::Value = self.reader.raw_request("evm_mine".into(), ()).await?;
        Ok(())
    }

    /// Gives each of `phones` `amount` SMT from the deployer.
    pub(crate) async fn fund(&self, phones: &[Address], amount: U256) -> eyre::Result<()> {
        let token = SmartMeshToken::new(self.deployment.token, self.funder.clone());
        let mut pending = Vec::with_capacity(phones.len());
        for phone in phones {
            pending.push(token.transfer(*phone, amount).send().await?);
        }
        for transfer in pending {
            if !transfer.get_receipt().await?.status() {
                bail!("funding a phone failed");
            }
        }
        Ok(())
    }

    /// The channel's info as the contract shows it now.
    pub(crate) async fn channel(&self, id: B256) -> eyre::Result<TokenNetwork::ChannelInfo> {
        Ok(
            TokenNetwork::new(self.deployment.token_network, self.reader.clone())
                .channelInfo(id)
                .call()
                .await?,
        )
    }

    /// Waits, in wall time, until the watcher has read the chain up to its head and `id` shows
    /// its closer penalized; false when `patience` runs out first. Virtual hours pass in wall
    /// seconds here: the watcher is given the wall time it would have had.
    pub(crate) async fn watcher_penalizes(
        &self,
        id: B256,
        patience: Duration,
    ) -> eyre::Result<bool> {
        let until = tokio::time::Instant::now() + patience;
        loop {
            if self.channel(id).await?.penalized {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= until {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the watcher's indexer has reached the chain's head.
    pub(crate) async fn watcher_caught_up(&self, patience: Duration) -> eyre::Result<()> {
        let until = tokio::time::Instant::now() + patience;
        loop {
            let head = self.reader.get_block_number().await?;
            let health: serde_json::Value = self
                .http
                .get(format!("{}/v1/health", self.watcher_url))
                .send()
                .await?
                .json()
                .await?;
            if health["indexedBlock"]
                .as_u64()
                .is_some_and(|block| block >= head)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                bail!("the watcher did not catch up with the chain in {patience:?}: {health}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every channel settled since the deployment, by id, read from the contract's events.
    pub(crate) async fn settled(&self) -> eyre::Result<BTreeMap<B256, Settled>> {
        let logs = self
            .reader
            .get_logs(
                &Filter::new()
                    .address(self.deployment.token_network)
                    .from_block(self.deployment.deploy_block),
            )
            .await?;
        let mut participants = BTreeMap::new();
        let mut closers = BTreeMap::new();
        let mut penalized = BTreeMap::new();
        let mut settled = BTreeMap::new();
        for log in &logs {
            let Some(topic) = log.topic0() else { continue };
            match *topic {
                TokenNetwork::ChannelOpened::SIGNATURE_HASH => {
                    let event = log.log_decode::<TokenNetwork::ChannelOpened>()?.inner.data;
                    participants.insert(event.channelId, (event.participant1, event.participant2));
                }
                TokenNetwork::ChannelClosed::SIGNATURE_HASH => {
                    let event = log.log_decode::<TokenNetwork::ChannelClosed>()?.inner.data;
                    closers.insert(event.channelId, event.closer);
                }
                TokenNetwork::CloserPenalized::SIGNATURE_HASH => {
                    let event = log
                        .log_decode::<TokenNetwork::CloserPenalized>()?
                        .inner
                        .data;
                    penalized.insert(event.channelId, true);
                }
                TokenNetwork::ChannelSettled::SIGNATURE_HASH => {
                    let event = log.log_decode::<TokenNetwork::ChannelSettled>()?.inner.data;
                    settled.insert(
                        event.channelId,
                        (event.payout1, event.payout2, event.reward),
                    );
                }
                _ => {}
            }
        }
        settled
            .into_iter()
            .map(|(id, (payout1, payout2, reward))| {
                let participants = *participants
                    .get(&id)
                    .ok_or_else(|| eyre!("channel {id} settled but never opened"))?;
                let closer = *closers
                    .get(&id)
                    .ok_or_else(|| eyre!("channel {id} settled but never closed"))?;
                Ok((
                    id,
                    Settled {
                        participants,
                        closer,
                        penalized: penalized.contains_key(&id),
                        payouts: (payout1, payout2),
                        reward,
                    },
                ))
            })
            .collect()
    }
}
