//! A local chain for the protocol's tests: the npm anvil with the three contracts deployed.

// Each test binary (and the benches) uses a different part of it.
#![allow(dead_code)]

use std::path::PathBuf;

use alloy::{
    network::EthereumWallet,
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, B256, U256, utils::parse_ether},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use smartmesh_protocol::{ConditionRegistry, SignedAgent, SmartMeshToken, TokenNetwork};

/// The shortest hold period the test network allows, in seconds.
pub(crate) const MIN_SETTLE_TIMEOUT: u64 = 60;

pub(crate) struct Stack {
    /// Kills anvil when dropped.
    pub(crate) anvil: AnvilInstance,
    pub(crate) chain_id: u64,
    /// anvil's funded dev accounts; the first deployed everything and holds all SMT.
    pub(crate) keys: Vec<PrivateKeySigner>,
    pub(crate) agent: Address,
    pub(crate) token: Address,
    pub(crate) network: Address,
    pub(crate) registry: Address,
}

impl Stack {
    pub(crate) async fn deploy() -> eyre::Result<Self> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
        eyre::ensure!(
            path.is_file(),
            "{} is missing: run scripts/setup",
            path.display()
        );
        // Port 0: anvil picks a free port; the instance kills the process on drop.
        let anvil = Anvil::new().path(path).port(0u16).try_spawn()?;
        let keys: Vec<PrivateKeySigner> =
            anvil.keys().iter().map(|key| key.clone().into()).collect();
        let deployer = provider(&anvil, &keys[0]);
        let agent = *SignedAgent::deploy(&deployer).await?.address();
        let supply = parse_ether("3141592653")?;
        let token = *SmartMeshToken::deploy(&deployer, keys[0].address(), supply, agent)
            .await?
            .address();
        let registry = *ConditionRegistry::deploy(&deployer, agent).await?.address();
        let network = *TokenNetwork::deploy(
            &deployer,
            token,
            agent,
            registry,
            U256::from(MIN_SETTLE_TIMEOUT),
            U256::from(30 * 24 * 3_600),
        )
        .await?
        .address();
        Ok(Self {
            chain_id: anvil.chain_id(),
            anvil,
            keys,
            agent,
            token,
            network,
            registry,
        })
    }

    /// A provider that signs with `signer`.
    pub(crate) fn provider(&self, signer: &PrivateKeySigner) -> DynProvider {
        provider(&self.anvil, signer)
    }

    pub(crate) fn token(
        &self,
        signer: &PrivateKeySigner,
    ) -> SmartMeshToken::SmartMeshTokenInstance<DynProvider> {
        SmartMeshToken::new(self.token, self.provider(signer))
    }

    pub(crate) fn network(
        &self,
        signer: &PrivateKeySigner,
    ) -> TokenNetwork::TokenNetworkInstance<DynProvider> {
        TokenNetwork::new(self.network, self.provider(signer))
    }

    pub(crate) fn agent(
        &self,
        signer: &PrivateKeySigner,
    ) -> SignedAgent::SignedAgentInstance<DynProvider> {
        SignedAgent::new(self.agent, self.provider(signer))
    }

    /// Opens a channel from `opener` to `partner` with a one-hour hold period.
    pub(crate) async fn open_channel(
        &self,
        opener: &PrivateKeySigner,
        partner: &PrivateKeySigner,
    ) -> eyre::Result<B256> {
        let receipt = self
            .network(opener)
            .open(partner.address(), U256::from(3_600))
            .send()
            .await?
            .get_receipt()
            .await?;
        Ok(receipt
            .inner
            .logs()
            .iter()
            .find_map(|log| log.log_decode::<TokenNetwork::ChannelOpened>().ok())
            .ok_or_else(|| eyre::eyre!("no ChannelOpened"))?
            .inner
            .channelId)
    }

    /// Funds `who` with `amount` SMT and deposits it into the channel as its new total.
    pub(crate) async fn fund_and_deposit(
        &self,
        channel_id: B256,
        who: &PrivateKeySigner,
        amount: U256,
    ) -> eyre::Result<()> {
        self.fund(who.address(), amount).await?;
        self.token(who)
            .approve(self.network, amount)
            .send()
            .await?
            .get_receipt()
            .await?;
        let receipt = self
            .network(who)
            .deposit(channel_id, who.address(), amount)
            .send()
            .await?
            .get_receipt()
            .await?;
        eyre::ensure!(receipt.status(), "deposit for {} failed", who.address());
        Ok(())
    }

    /// Sends `amount` SMT from the deployer, who holds the supply.
    pub(crate) async fn fund(&self, to: Address, amount: U256) -> eyre::Result<()> {
        let receipt = self
            .token(&self.keys[0])
            .transfer(to, amount)
            .send()
            .await?
            .get_receipt()
            .await?;
        eyre::ensure!(receipt.status(), "funding {to} failed");
        Ok(())
    }
}

fn provider(anvil: &AnvilInstance, signer: &PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer.clone()))
        .connect_http(anvil.endpoint_url())
        .erased()
}
