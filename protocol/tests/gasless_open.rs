//! Opens a channel gaslessly on the npm anvil: a user holding SMT and no ETH signs an
//! `AgentRequest`, a relayer submits it and is paid its fee in SMT in the same transaction.

mod common;

use alloy::{
    primitives::{Bytes, U256, utils::parse_ether},
    providers::Provider,
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolStruct},
};
use common::Stack;
use smartmesh_protocol::{AgentRequest, TokenNetwork, agent_domain, sign_typed};

const SETTLE_TIMEOUT: u64 = 3_600;

#[tokio::test]
async fn gasless_open_pays_the_relayer_in_smt() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let relayer = stack.keys[1].clone();
    // Keys anvil never funded: the user holds no ETH at all.
    let user = PrivateKeySigner::from_bytes(&[0x11; 32].into())?;
    let partner = PrivateKeySigner::from_bytes(&[0x22; 32].into())?.address();
    let relay = stack.provider(&relayer);
    let token = stack.token(&relayer);

    let fee = parse_ether("1.5")?;
    stack.fund(user.address(), parse_ether("10")?).await?;
    assert_eq!(
        relay.get_balance(user.address()).await?,
        U256::ZERO,
        "the user holds no ETH"
    );

    let request = AgentRequest {
        from: user.address(),
        agent: relayer.address(),
        target: stack.network,
        data: Bytes::from(
            TokenNetwork::openCall {
                partner,
                settleTimeout: U256::from(SETTLE_TIMEOUT),
            }
            .abi_encode(),
        ),
        gas: U256::from(200_000),
        feeToken: stack.token,
        fee,
        nonce: U256::from(7),
        deadline: U256::from(u64::MAX),
    };
    let domain = agent_domain(stack.chain_id, stack.agent);
    let agent = stack.agent(&relayer);
    assert_eq!(
        agent.hashRequest(request.clone().into()).call().await?,
        request.eip712_signing_hash(&domain),
        "Rust and Solidity digests agree"
    );
    let signature = sign_typed(&user, &request, &domain);

    let relayer_eth_before = relay.get_balance(relayer.address()).await?;
    let receipt = agent
        .execute(request.into(), Bytes::copy_from_slice(signature.as_bytes()))
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "execute succeeded");

    let network = stack.network(&relayer);
    let (channel_id, epoch) = network
        .currentChannel(user.address(), partner)
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

    let (participant1, participant2) = if user.address() < partner {
        (user.address(), partner)
    } else {
        (partner, user.address())
    };
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
