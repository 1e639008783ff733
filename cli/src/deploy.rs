//! `smartmesh deploy`: the four contracts on any chain, and `deployments/<chainId>.json`.
//! With a manifest already there, the code at its addresses is checked instead.

use std::path::PathBuf;

use alloy::{
    network::EthereumWallet,
    primitives::{Address, U256, utils::parse_units},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use eyre::{WrapErr, bail, eyre};
use smartmesh_chain::Deployment;
use smartmesh_protocol::{
    ConditionRegistry, SignedAgent, SmartMeshToken, TokenNetwork, agent_domain, conditions_domain,
};

use crate::keys;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The JSON-RPC endpoint of the chain to deploy to.
    #[arg(long, env = "SMARTMESH_RPC_URL")]
    rpc_url: String,
    /// A file holding the deployer's hex private key (else $SMARTMESH_DEPLOYER_KEY). It pays
    /// the gas and, unless --holder says otherwise, receives the whole SMT supply.
    #[arg(long, env = "SMARTMESH_DEPLOYER_KEY_FILE")]
    private_key_file: Option<PathBuf>,
    /// Where the manifest is written.
    #[arg(long, env = "SMARTMESH_DEPLOYMENTS_DIR", default_value = "deployments")]
    deployments_dir: PathBuf,
    /// Who receives the SMT supply.
    #[arg(long)]
    holder: Option<Address>,
    /// The SMT supply, in whole SMT.
    #[arg(long, default_value = "3141592653")]
    supply: String,
    /// The shortest hold period a channel may have, in seconds. Hours on a public network,
    /// far above block-time skew and a watcher's reaction time.
    #[arg(long, default_value_t = 3_600)]
    min_settle_timeout: u64,
    /// The longest hold period, in seconds.
    #[arg(long, default_value_t = 30 * 24 * 3_600)]
    max_settle_timeout: u64,
}

pub(crate) async fn run(args: Args) -> eyre::Result<()> {
    let key = keys::load(args.private_key_file.as_deref(), "SMARTMESH_DEPLOYER_KEY")?;
    let provider = signing_provider(&args.rpc_url, &key)?;
    let chain_id = provider
        .get_chain_id()
        .await
        .wrap_err_with(|| format!("cannot reach the chain at {}", args.rpc_url))?;
    if let Some(existing) = Deployment::load(&args.deployments_dir, chain_id)? {
        verify(&provider, &existing).await.wrap_err_with(|| {
            format!(
                "{} names contracts that do not check out; move it away to deploy anew",
                Deployment::path(&args.deployments_dir, chain_id).display()
            )
        })?;
        say!(
            "chain {chain_id}: already deployed and verified ({})\n  SMT token          {}\n  SignedAgent        {}\n  TokenNetwork       {}\n  ConditionRegistry  {}",
            Deployment::path(&args.deployments_dir, chain_id).display(),
            existing.token,
            existing.signed_agent,
            existing.token_network,
            existing.condition_registry
        );
        return Ok(());
    }
    let supply: U256 = parse_units(&args.supply, 18)
        .map_err(|_| eyre!("--supply {:?} is not an amount of SMT", args.supply))?
        .into();
    let deployment = deploy(
        &provider,
        args.holder.unwrap_or(key.address()),
        supply,
        args.min_settle_timeout,
        args.max_settle_timeout,
    )
    .await?;
    let path = deployment.write(&args.deployments_dir)?;
    say!(
        "chain {chain_id}: deployed from block {} ({})\n  SMT token          {}\n  SignedAgent        {}\n  TokenNetwork       {}\n  ConditionRegistry  {}",
        deployment.deploy_block,
        path.display(),
        deployment.token,
        deployment.signed_agent,
        deployment.token_network,
        deployment.condition_registry
    );
    Ok(())
}

/// A provider that signs with `key`.
pub(crate) fn signing_provider(rpc_url: &str, key: &PrivateKeySigner) -> eyre::Result<DynProvider> {
    let url = rpc_url
        .parse()
        .map_err(|e| eyre!("--rpc-url {rpc_url:?}: {e}"))?;
    Ok(ProviderBuilder::new()
        .wallet(EthereumWallet::from(key.clone()))
        .connect_http(url)
        .erased())
}

/// Deploys the SignedAgent, the SMT token (its supply to `holder`), the TokenNetwork and the
/// ConditionRegistry.
pub(crate) async fn deploy(
    provider: &DynProvider,
    holder: Address,
    supply: U256,
    min_settle_timeout: u64,
    max_settle_timeout: u64,
) -> eyre::Result<Deployment> {
    let chain_id = provider.get_chain_id().await?;
    let agent = SignedAgent::deploy_builder(provider)
        .send()
        .await?
        .get_receipt()
        .await?;
    let deploy_block = agent.block_number.unwrap_or_default();
    let signed_agent = agent
        .contract_address
        .ok_or_else(|| eyre!("the SignedAgent deployment created no contract"))?;
    let token = *SmartMeshToken::deploy(provider, holder, supply, signed_agent)
        .await
        .wrap_err("deploying the SMT token")?
        .address();
    let condition_registry = *ConditionRegistry::deploy(provider, signed_agent)
        .await
        .wrap_err("deploying the ConditionRegistry")?
        .address();
    let token_network = *TokenNetwork::deploy(
        provider,
        token,
        signed_agent,
        condition_registry,
        U256::from(min_settle_timeout),
        U256::from(max_settle_timeout),
    )
    .await
    .wrap_err("deploying the TokenNetwork")?
    .address();
    let deployment = Deployment {
        chain_id,
        token,
        signed_agent,
        token_network,
        condition_registry,
        deploy_block,
    };
    verify(provider, &deployment).await?;
    Ok(deployment)
}

/// Checks that the manifest's addresses hold the SmartMesh contracts, wired to each other.
pub(crate) async fn verify(provider: &DynProvider, deployment: &Deployment) -> eyre::Result<()> {
    for (name, address) in [
        ("SMT token", deployment.token),
        ("SignedAgent", deployment.signed_agent),
        ("TokenNetwork", deployment.token_network),
        ("ConditionRegistry", deployment.condition_registry),
    ] {
        if provider.get_code_at(address).await?.is_empty() {
            bail!("no contract at the {name} address {address}");
        }
    }
    let token = SmartMeshToken::new(deployment.token, provider.clone());
    if token.symbol().call().await? != "SMT" {
        bail!("{} is not the SMT token", deployment.token);
    }
    let network = TokenNetwork::new(deployment.token_network, provider.clone());
    let registry = ConditionRegistry::new(deployment.condition_registry, provider.clone());
    if network.token().call().await? != deployment.token {
        bail!(
            "the TokenNetwork {} holds another token",
            deployment.token_network
        );
    }
    if network.registry().call().await? != deployment.condition_registry {
        bail!(
            "the TokenNetwork {} reads another ConditionRegistry than {}",
            deployment.token_network,
            deployment.condition_registry
        );
    }
    for (name, trusts) in [
        (
            "SMT token",
            token
                .isTrustedForwarder(deployment.signed_agent)
                .call()
                .await?,
        ),
        (
            "TokenNetwork",
            network
                .isTrustedForwarder(deployment.signed_agent)
                .call()
                .await?,
        ),
        (
            "ConditionRegistry",
            registry
                .isTrustedForwarder(deployment.signed_agent)
                .call()
                .await?,
        ),
    ] {
        if !trusts {
            bail!(
                "the {name} does not trust the SignedAgent {}",
                deployment.signed_agent
            );
        }
    }
    let agent = SignedAgent::new(deployment.signed_agent, provider.clone());
    let expected = agent_domain(deployment.chain_id, deployment.signed_agent).separator();
    if agent.DOMAIN_SEPARATOR().call().await? != expected {
        bail!(
            "the SignedAgent {} answers another EIP-712 domain",
            deployment.signed_agent
        );
    }
    let expected = conditions_domain(deployment.chain_id, deployment.condition_registry);
    let domain = registry.eip712Domain().call().await?;
    if domain.name != expected.name.as_deref().unwrap_or_default()
        || domain.verifyingContract != deployment.condition_registry
    {
        bail!(
            "the ConditionRegistry {} answers another EIP-712 domain",
            deployment.condition_registry
        );
    }
    Ok(())
}
