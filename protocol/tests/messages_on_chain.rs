//! Every message type signed in Rust is accepted by the deployed contracts, and its EIP-712
//! digest equals the one the contract computes.

mod common;

use alloy::{
    primitives::{Address, B256, Bytes, U256, utils::parse_ether},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolStruct},
};
use common::Stack;
use smartmesh_protocol::{
    AgentRequest, BalanceProof, CancelAuthorization, CancelRequest, CooperativeSettle, Permit,
    ReceiveWithAuthorization, Signature65, SmartMeshToken, TransferWithAuthorization, Watch,
    Withdraw, agent_domain, sign_typed, token_domain, token_network_domain,
};

const FAR: u64 = 4_000_000_000;

fn bytes(signature: &Signature65) -> Bytes {
    Bytes::copy_from_slice(signature.as_bytes())
}

/// `(v, r, s)` for the token's EIP-2612 and EIP-3009 functions.
fn vrs(signature: &Signature65) -> (u8, B256, B256) {
    let raw = signature.as_bytes();
    (
        raw[64],
        B256::from_slice(&raw[..32]),
        B256::from_slice(&raw[32..64]),
    )
}

fn sorted<'a>(
    a: &'a PrivateKeySigner,
    b: &'a PrivateKeySigner,
) -> (&'a PrivateKeySigner, &'a PrivateKeySigner) {
    if a.address() < b.address() {
        (a, b)
    } else {
        (b, a)
    }
}

/// A channel between `a` and `b` with 100 SMT deposited by each.
async fn open_and_fund(
    stack: &Stack,
    a: &PrivateKeySigner,
    b: &PrivateKeySigner,
) -> eyre::Result<B256> {
    let channel_id = stack.open_channel(a, b).await?;
    for who in [a, b] {
        stack
            .fund_and_deposit(channel_id, who, parse_ether("100")?)
            .await?;
    }
    Ok(channel_id)
}

#[tokio::test]
async fn token_network_messages_are_accepted_and_hash_alike() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let (alice, brandon, watcher) = (&stack.keys[1], &stack.keys[2], &stack.keys[3]);
    let domain = token_network_domain(stack.chain_id, stack.network);
    let network = stack.network(watcher);
    assert_eq!(network.DOMAIN_SEPARATOR().call().await?, domain.separator());

    // Withdraw, signed by both.
    let channel_id = open_and_fund(&stack, alice, brandon).await?;
    let withdraw = Withdraw {
        channelId: channel_id,
        participant: alice.address(),
        totalWithdraw: parse_ether("10")?,
        deadline: U256::from(FAR),
    };
    let digest = network
        .hashWithdraw(
            channel_id,
            withdraw.participant,
            withdraw.totalWithdraw,
            withdraw.deadline,
        )
        .call()
        .await?;
    assert_eq!(digest, withdraw.eip712_signing_hash(&domain));
    let receipt = network
        .withdraw(
            channel_id,
            alice.address(),
            withdraw.totalWithdraw,
            withdraw.deadline,
            bytes(&sign_typed(alice, &withdraw, &domain)),
            bytes(&sign_typed(brandon, &withdraw, &domain)),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "withdraw accepted");

    // Balance proofs in close, and a Watch in updateClaim.
    let brandon_paid = BalanceProof {
        channelId: channel_id,
        nonce: U256::from(1),
        transferredAmount: parse_ether("2")?,
        ..Default::default()
    };
    let alice_paid = BalanceProof {
        channelId: channel_id,
        nonce: U256::from(2),
        transferredAmount: parse_ether("7")?,
        ..Default::default()
    };
    let proof_digest = alice_paid.eip712_signing_hash(&domain);
    assert_eq!(
        network
            .hashBalanceProof(alice_paid.clone().into())
            .call()
            .await?,
        proof_digest
    );
    let receipt = stack
        .network(alice)
        .close(
            channel_id,
            brandon_paid.clone().into(),
            bytes(&sign_typed(brandon, &brandon_paid, &domain)),
            Bytes::new(),
            parse_ether("1")?,
            Bytes::new(),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "close with a Rust-signed proof accepted");

    let watch = Watch {
        channelId: channel_id,
        proofDigest: proof_digest,
        watcher: watcher.address(),
        reward: parse_ether("1")?,
        deadline: U256::from(FAR),
    };
    assert_eq!(
        network.hashWatch(watch.clone().into()).call().await?,
        watch.eip712_signing_hash(&domain)
    );
    let receipt = network
        .updateClaim(
            channel_id,
            alice_paid.clone().into(),
            bytes(&sign_typed(alice, &alice_paid, &domain)),
            Bytes::new(),
            watch.clone().into(),
            bytes(&sign_typed(brandon, &watch, &domain)),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(
        receipt.status(),
        "updateClaim with a Rust-signed proof and Watch accepted"
    );
    assert!(network.channelInfo(channel_id).call().await?.penalized);

    // Cooperative settle on a second pair.
    let carol = &stack.keys[5];
    let channel_id = open_and_fund(&stack, brandon, carol).await?;
    let (first, second) = sorted(brandon, carol);
    let settlement = CooperativeSettle {
        channelId: channel_id,
        balance1: parse_ether("150")?,
        balance2: parse_ether("50")?,
        deadline: U256::from(FAR),
    };
    let digest = network
        .hashCooperativeSettle(
            channel_id,
            settlement.balance1,
            settlement.balance2,
            settlement.deadline,
        )
        .call()
        .await?;
    assert_eq!(digest, settlement.eip712_signing_hash(&domain));
    let receipt = network
        .cooperativeSettle(
            channel_id,
            settlement.balance1,
            settlement.balance2,
            settlement.deadline,
            bytes(&sign_typed(first, &settlement, &domain)),
            bytes(&sign_typed(second, &settlement, &domain)),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "cooperative settle accepted");
    Ok(())
}

#[tokio::test]
async fn agent_messages_are_accepted_and_hash_alike() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let (user, relayer) = (&stack.keys[6], &stack.keys[4]);
    let domain = agent_domain(stack.chain_id, stack.agent);
    let agent = stack.agent(relayer);
    assert_eq!(agent.DOMAIN_SEPARATOR().call().await?, domain.separator());
    stack.fund(user.address(), parse_ether("5")?).await?;

    let request = AgentRequest {
        from: user.address(),
        agent: relayer.address(),
        target: stack.token,
        data: SmartMeshToken::transferCall {
            to: Address::repeat_byte(0x77),
            value: parse_ether("1")?,
        }
        .abi_encode()
        .into(),
        gas: U256::from(100_000),
        feeToken: stack.token,
        fee: parse_ether("0.5")?,
        nonce: U256::from(41),
        deadline: U256::from(FAR),
    };
    assert_eq!(
        agent.hashRequest(request.clone().into()).call().await?,
        request.eip712_signing_hash(&domain)
    );
    let receipt = agent
        .execute(
            request.clone().into(),
            bytes(&sign_typed(user, &request, &domain)),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "execute accepted");
    assert_eq!(
        stack
            .token(relayer)
            .balanceOf(Address::repeat_byte(0x77))
            .call()
            .await?,
        parse_ether("1")?
    );

    let cancel = CancelRequest {
        from: user.address(),
        nonce: U256::from(42),
    };
    assert_eq!(
        agent.hashCancel(cancel.from, cancel.nonce).call().await?,
        cancel.eip712_signing_hash(&domain)
    );
    let receipt = agent
        .cancelWithSig(
            cancel.from,
            cancel.nonce,
            bytes(&sign_typed(user, &cancel, &domain)),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "cancelWithSig accepted");
    assert!(
        agent
            .nonceUsed(user.address(), U256::from(42))
            .call()
            .await?
    );
    Ok(())
}

#[tokio::test]
async fn token_messages_are_accepted_and_hash_alike() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let (owner, payee, submitter) = (&stack.keys[1], &stack.keys[2], &stack.keys[3]);
    let domain = token_domain(stack.chain_id, stack.token);
    let token = stack.token(submitter);
    assert_eq!(token.DOMAIN_SEPARATOR().call().await?, domain.separator());
    stack.fund(owner.address(), parse_ether("10")?).await?;

    let permit = Permit {
        owner: owner.address(),
        spender: payee.address(),
        value: parse_ether("3")?,
        nonce: token.nonces(owner.address()).call().await?,
        deadline: U256::from(FAR),
    };
    let (v, r, s) = vrs(&sign_typed(owner, &permit, &domain));
    let receipt = token
        .permit(
            permit.owner,
            permit.spender,
            permit.value,
            permit.deadline,
            v,
            r,
            s,
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "permit accepted");
    assert_eq!(
        token
            .allowance(owner.address(), payee.address())
            .call()
            .await?,
        permit.value
    );

    let transfer = TransferWithAuthorization {
        from: owner.address(),
        to: payee.address(),
        value: parse_ether("1")?,
        validAfter: U256::ZERO,
        validBefore: U256::from(FAR),
        nonce: B256::repeat_byte(1),
    };
    assert_eq!(
        token.TRANSFER_WITH_AUTHORIZATION_TYPEHASH().call().await?,
        transfer.eip712_type_hash()
    );
    let (v, r, s) = vrs(&sign_typed(owner, &transfer, &domain));
    let receipt = token
        .transferWithAuthorization(
            transfer.from,
            transfer.to,
            transfer.value,
            transfer.validAfter,
            transfer.validBefore,
            transfer.nonce,
            v,
            r,
            s,
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "transferWithAuthorization accepted");

    let receive = ReceiveWithAuthorization {
        from: owner.address(),
        to: payee.address(),
        value: parse_ether("2")?,
        validAfter: U256::ZERO,
        validBefore: U256::from(FAR),
        nonce: B256::repeat_byte(2),
    };
    assert_eq!(
        token.RECEIVE_WITH_AUTHORIZATION_TYPEHASH().call().await?,
        receive.eip712_type_hash()
    );
    let (v, r, s) = vrs(&sign_typed(owner, &receive, &domain));
    let receipt = stack
        .token(payee)
        .receiveWithAuthorization(
            receive.from,
            receive.to,
            receive.value,
            receive.validAfter,
            receive.validBefore,
            receive.nonce,
            v,
            r,
            s,
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "receiveWithAuthorization accepted");
    assert_eq!(
        token.balanceOf(payee.address()).call().await?,
        parse_ether("3")?
    );

    let cancel = CancelAuthorization {
        authorizer: owner.address(),
        nonce: B256::repeat_byte(3),
    };
    assert_eq!(
        token.CANCEL_AUTHORIZATION_TYPEHASH().call().await?,
        cancel.eip712_type_hash()
    );
    let (v, r, s) = vrs(&sign_typed(owner, &cancel, &domain));
    let receipt = token
        .cancelAuthorization(cancel.authorizer, cancel.nonce, v, r, s)
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "cancelAuthorization accepted");
    assert!(
        token
            .authorizationState(owner.address(), B256::repeat_byte(3))
            .call()
            .await?
    );
    Ok(())
}
