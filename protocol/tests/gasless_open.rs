//! Deploys the three contracts on the npm-installed anvil and opens a channel gaslessly: a user
//! holding SMT and no ETH signs an `AgentRequest`, a relayer submits it and is paid in SMT.

use std::path::PathBuf;

use alloy::{
    network::EthereumWallet,
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Bytes, U256, utils::parse_ether},
    providers::{Provider, ProviderBuilder},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::{SolCall, SolStruct, eip712_domain},
};
use smartmesh_protocol::{SignedAgent, SmartMeshToken, TokenNetwork};

const SETTLE_TIMEOUT: u64 = 3_600;

fn spawn_anvil() -> eyre::Result<AnvilInstance> {
    let anvil = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    eyre::ensure!(
        anvil.is_file(),
        "{} is missing: run scripts/setup",
        anvil.display()
    );
    // Port 0 lets anvil pick a free port; the instance kills the process on drop.
    Ok(Anvil::new().path(anvil).port(0u16).try_spawn()?)
}

fn key(seed: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&[seed; 32].into()).expect("a valid secp256k1 scalar")
}

#[tokio::test]
async fn gasless_open_pays_the_relayer_in_smt() -> eyre::Result<()> {
    let anvil = spawn_anvil()?;
    let deployer: PrivateKeySigner = anvil.keys()[0].clone().into();
    let relayer: PrivateKeySigner = anvil.keys()[1].clone().into();
    let user = key(0x11);
    let partner = key(0x22).address();

    let deploy = ProviderBuilder::new()
        .wallet(EthereumWallet::from(deployer.clone()))
        .connect_http(anvil.endpoint_url());
    let agent = SignedAgent::deploy(&deploy).await?;
    let supply = parse_ether("3141592653")?;
    let token =
        SmartMeshToken::deploy(&deploy, deployer.address(), supply, *agent.address()).await?;
    let network = TokenNetwork::deploy(
        &deploy,
        *token.address(),
        *agent.address(),
        U256::from(60),
        U256::from(30 * 24 * 3_600),
    )
    .await?;

    let fee = parse_ether("1.5")?;
    token
        .transfer(user.address(), parse_ether("10")?)
        .send()
        .await?
        .get_receipt()
        .await?;
    assert_eq!(
        deploy.get_balance(user.address()).await?,
        U256::ZERO,
        "the user holds no ETH"
    );

    let chain_id = deploy.get_chain_id().await?;
    let request = SignedAgent::AgentRequest {
        from: user.address(),
        agent: relayer.address(),
        target: *network.address(),
        data: Bytes::from(
            TokenNetwork::openCall {
                partner,
                settleTimeout: U256::from(SETTLE_TIMEOUT),
            }
            .abi_encode(),
        ),
        gas: U256::from(200_000),
        feeToken: *token.address(),
        fee,
        nonce: U256::from(7),
        deadline: U256::from(u64::MAX),
    };
    let domain = eip712_domain! {
        name: "SmartMesh SignedAgent",
        version: "1",
        chain_id: chain_id,
        verifying_contract: *agent.address(),
    };
    let digest = request.eip712_signing_hash(&domain);
    assert_eq!(
        agent.hashRequest(request.clone()).call().await?,
        digest,
        "Rust and Solidity digests agree"
    );
    let signature = user.sign_hash_sync(&digest)?;

    let relay = ProviderBuilder::new()
        .wallet(EthereumWallet::from(relayer.clone()))
        .connect_http(anvil.endpoint_url());
    let relayer_eth_before = relay.get_balance(relayer.address()).await?;
    let receipt = SignedAgent::new(*agent.address(), &relay)
        .execute(request, Bytes::from(signature.as_bytes().to_vec()))
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "execute succeeded");

    let (participant1, participant2) = if user.address() < partner {
        (user.address(), partner)
    } else {
        (partner, user.address())
    };
    let (channel_id, epoch) = network
        .currentChannel(participant1, participant2)
        .call()
        .await?
        .into();
    assert_eq!(epoch, U256::from(1));
    let opened = receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| log.log_decode::<TokenNetwork::ChannelOpened>().ok())
        .expect("a ChannelOpened event");
    assert_eq!(opened.inner.channelId, channel_id);
    assert_eq!(opened.inner.settleTimeout, U256::from(SETTLE_TIMEOUT));

    let info = network.channelInfo(channel_id).call().await?;
    assert_eq!(info.state, 1, "open");
    assert_eq!(
        (info.participant1, info.participant2),
        (participant1, participant2)
    );

    assert_eq!(
        token.balanceOf(relayer.address()).call().await?,
        fee,
        "the relayer earned the fee in SMT"
    );
    assert_eq!(
        token.balanceOf(user.address()).call().await?,
        parse_ether("10")? - fee
    );
    assert_eq!(
        relay.get_balance(user.address()).await?,
        U256::ZERO,
        "the user still holds no ETH"
    );
    assert!(
        relay.get_balance(relayer.address()).await? < relayer_eth_before,
        "the relayer paid the gas"
    );
    assert!(
        agent
            .nonceUsed(user.address(), U256::from(7))
            .call()
            .await?
    );
    Ok(())
}
