//! `smartmesh relayer` as a real process on anvil with the real contracts: killed (SIGKILL)
//! with accepted requests in flight and restarted, it mines every one exactly once; a burst of
//! concurrent requests from many users is all mined, with no nonce used twice and none lost.

mod common;

use std::time::Duration;

use alloy::{
    primitives::{Address, Bytes, U256, keccak256, utils::parse_ether},
    providers::Provider,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use common::{
    ServiceProcess, Stack, scratch,
    watcher::{eventually, rpc},
    write_config, write_key,
};
use smartmesh_protocol::{AgentRequest, SignedAgent, SmartMeshToken, agent_domain, sign_typed};
use smartmesh_relayer::RelayRequest;

/// A user of its own with 10 SMT and no ETH.
async fn user(stack: &Stack, seed: u32) -> eyre::Result<PrivateKeySigner> {
    let key = PrivateKeySigner::from_bytes(&keccak256(format!("relayed user {seed}")))?;
    stack.fund(key.address(), parse_ether("10")?).await?;
    Ok(key)
}

/// Quotes, signs and relays `user`'s transfer of 1 SMT; returns the relay id and the fee.
async fn relay_transfer(
    stack: &Stack,
    relayer: &ServiceProcess,
    user: &PrivateKeySigner,
    nonce: u64,
) -> eyre::Result<(i64, U256)> {
    let data = Bytes::from(
        SmartMeshToken::transferCall {
            to: Address::repeat_byte(0xee),
            value: parse_ether("1")?,
        }
        .abi_encode(),
    );
    let (status, quote) = relayer
        .post(
            "/v1/quote",
            &serde_json::json!({"from": user.address(), "target": stack.token, "data": data}),
        )
        .await?;
    eyre::ensure!(status == 200, "quote: {quote}");
    let parse = |field: &str| -> eyre::Result<U256> {
        Ok(quote[field].as_str().unwrap_or_default().parse()?)
    };
    let request = AgentRequest {
        from: user.address(),
        agent: quote["agent"].as_str().unwrap_or_default().parse()?,
        target: stack.token,
        data: data.clone(),
        gas: parse("gas")?,
        feeToken: stack.token,
        fee: parse("fee")?,
        nonce: U256::from(nonce),
        deadline: U256::from(u64::MAX),
    };
    let signature = sign_typed(user, &request, &agent_domain(stack.chain_id, stack.agent));
    let fee = request.fee;
    let body = RelayRequest {
        quote_id: quote["quoteId"].as_i64().unwrap_or_default(),
        request: request.into(),
        signature: Bytes::copy_from_slice(signature.as_bytes()),
    };
    let (status, answer) = relayer
        .post("/v1/relay", &serde_json::to_value(body)?)
        .await?;
    eyre::ensure!(status == 200, "relay: {answer}");
    Ok((answer["id"].as_i64().unwrap_or_default(), fee))
}

async fn all_mined(relayer: &ServiceProcess, ids: &[i64]) -> eyre::Result<bool> {
    for id in ids {
        let status = relayer.get(&format!("/v1/relay/{id}")).await?;
        eyre::ensure!(status["status"] != "failed", "relay {id} failed: {status}");
        if status["status"] != "mined" {
            return Ok(false);
        }
    }
    Ok(true)
}

#[tokio::test]
async fn a_relayer_killed_mid_flight_mines_every_accepted_request_once() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let dir = scratch("relayer-kill")?;
    let key = stack.keys[8].clone();
    write_config(&stack, &dir, &stack.keys[7])?;
    write_key(&dir, "relayer.key", &key)?;
    let database = format!("sqlite://{}", dir.join("relayer.sqlite").display());
    let first = ServiceProcess::relayer(&stack, &dir, &database, &["relayer.key"])?;
    let mut users = Vec::new();
    for seed in 0..6 {
        users.push(user(&stack, seed).await?);
    }
    let relayer_smt = stack
        .token(&stack.keys[0])
        .balanceOf(key.address())
        .call()
        .await?;

    rpc(&stack, "evm_setAutomine", serde_json::json!([false])).await?;
    let mut ids = Vec::new();
    let mut fees = U256::ZERO;
    for user in &users {
        let (id, fee) = relay_transfer(&stack, &first, user, 1).await?;
        ids.push(id);
        fees += fee;
    }
    eventually(30, "broadcasts", || async {
        let status = rpc(&stack, "txpool_status", serde_json::json!([])).await?;
        Ok(status["pending"] != "0x0")
    })
    .await?;
    first.kill()?;
    // The node lost whatever was broadcast, too.
    rpc(&stack, "anvil_dropAllTransactions", serde_json::json!([])).await?;

    let second = ServiceProcess::relayer(&stack, &dir, &database, &["relayer.key"])?;
    rpc(&stack, "evm_setAutomine", serde_json::json!([true])).await?;
    eventually(60, "every accepted request mined", || async {
        rpc(&stack, "evm_mine", serde_json::json!([])).await?;
        all_mined(&second, &ids).await
    })
    .await?;
    let provider = stack.provider(&stack.keys[0]);
    assert_eq!(
        provider.get_transaction_count(key.address()).await?,
        6,
        "six transactions: each request sent once, none lost"
    );
    let agent = SignedAgent::new(stack.agent, provider.clone());
    for user in &users {
        assert!(
            agent
                .nonceUsed(user.address(), U256::from(1))
                .call()
                .await?
        );
    }
    assert_eq!(
        stack
            .token(&stack.keys[0])
            .balanceOf(key.address())
            .call()
            .await?
            - relayer_smt,
        fees,
        "each fee earned once"
    );
    drop(second);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[tokio::test]
async fn a_burst_of_requests_from_many_users_is_all_mined_once() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let dir = scratch("relayer-burst")?;
    let keys = [stack.keys[8].clone(), stack.keys[9].clone()];
    write_config(&stack, &dir, &stack.keys[7])?;
    write_key(&dir, "a.key", &keys[0])?;
    write_key(&dir, "b.key", &keys[1])?;
    let database = format!("sqlite://{}", dir.join("relayer.sqlite").display());
    let relayer = std::sync::Arc::new(ServiceProcess::relayer(
        &stack,
        &dir,
        &database,
        &["a.key", "b.key"],
    )?);
    let mut users = Vec::new();
    for seed in 100..140 {
        users.push(user(&stack, seed).await?);
    }
    let stack = std::sync::Arc::new(stack);
    let mut tasks = Vec::new();
    for user in &users {
        for nonce in [1, 2] {
            let (stack, relayer, user) = (stack.clone(), relayer.clone(), user.clone());
            tasks.push(tokio::spawn(async move {
                relay_transfer(&stack, &relayer, &user, nonce).await
            }));
        }
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await??.0);
    }
    assert_eq!(ids.len(), 80, "every request accepted");
    eventually(120, "every request mined", || async {
        all_mined(&relayer, &ids).await
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let provider = stack.provider(&stack.keys[0]);
    let sent = [
        provider.get_transaction_count(keys[0].address()).await?,
        provider.get_transaction_count(keys[1].address()).await?,
    ];
    assert_eq!(
        sent[0] + sent[1],
        80,
        "one transaction per request: {sent:?}"
    );
    assert!(
        sent[0] > 0 && sent[1] > 0,
        "both keys carried load: {sent:?}"
    );
    let agent = SignedAgent::new(stack.agent, provider.clone());
    for user in &users {
        for nonce in [1, 2] {
            assert!(
                agent
                    .nonceUsed(user.address(), U256::from(nonce))
                    .call()
                    .await?
            );
        }
    }
    assert_eq!(
        stack
            .token(&stack.keys[0])
            .balanceOf(Address::repeat_byte(0xee))
            .call()
            .await?,
        parse_ether("80")?,
        "each transfer ran exactly once"
    );
    drop(relayer);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
