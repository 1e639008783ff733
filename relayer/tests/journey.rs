//! End to end on anvil with the real contracts, on SQLite and on Postgres: a user holding SMT
//! and no ETH opens a channel, deposits with a permit, closes and settles, each through the
//! relayer. The relayer's SMT grows by exactly the fees, each fee covers the gas it paid, and
//! its ETH spend is booked.

mod common;

use alloy::{
    primitives::{B256, Bytes, U256, utils::parse_ether},
    sol_types::SolCall,
};
use common::{Harness, fast_config};
use smartmesh_chain::Database;
use smartmesh_protocol::{BalanceProof, Permit, TokenNetwork, sign_typed, token_domain};
use smartmesh_relayer::Earnings;

on_both_backends!(a_user_without_eth_runs_a_channel_through_the_relayer => journey_sqlite, pg_journey);

async fn a_user_without_eth_runs_a_channel_through_the_relayer(db: Database) -> eyre::Result<()> {
    let harness = Harness::new(db, fast_config()).await?;
    let stack = &harness.stack;
    let alice = harness.user(1, "100").await?;
    let brandon = harness.user(2, "0").await?;
    assert_eq!(
        harness.eth(alice.address()).await?,
        U256::ZERO,
        "Alice holds no ETH"
    );
    let relayer_smt = harness.smt(harness.key.address()).await?;
    let mut fees = U256::ZERO;
    let mut relayed = Vec::new();

    // Open.
    let open = TokenNetwork::openCall {
        partner: brandon.address(),
        settleTimeout: U256::from(3_600),
    };
    let (quote, status, answer) = harness
        .relay(&alice, stack.network, open.abi_encode(), 1)
        .await?;
    assert_eq!(status.as_u16(), 200, "{answer}");
    harness.mined(answer["id"].as_i64().unwrap()).await?;
    fees += quote.fee;
    relayed.push(quote);
    let (channel_id, _) = stack
        .network(&stack.keys[0])
        .currentChannel(alice.address(), brandon.address())
        .call()
        .await?
        .into();
    assert_ne!(channel_id, B256::ZERO);

    // Deposit 50 SMT with a permit: no approval transaction, so no ETH needed for it either.
    let amount = parse_ether("50")?;
    let permit = Permit {
        owner: alice.address(),
        spender: stack.network,
        value: amount,
        nonce: stack
            .token(&stack.keys[0])
            .nonces(alice.address())
            .call()
            .await?,
        deadline: U256::from(u64::MAX),
    };
    let signature = sign_typed(&alice, &permit, &token_domain(stack.chain_id, stack.token));
    let bytes = signature.as_bytes();
    let deposit = TokenNetwork::depositWithPermitCall {
        channelId: channel_id,
        participant: alice.address(),
        totalDeposit: amount,
        permitValue: amount,
        permitDeadline: U256::from(u64::MAX),
        v: bytes[64],
        r: B256::from_slice(&bytes[..32]),
        s: B256::from_slice(&bytes[32..64]),
    };
    let (quote, status, answer) = harness
        .relay(&alice, stack.network, deposit.abi_encode(), 2)
        .await?;
    assert_eq!(status.as_u16(), 200, "{answer}");
    harness.mined(answer["id"].as_i64().unwrap()).await?;
    fees += quote.fee;
    relayed.push(quote);

    // Close, declaring she paid nothing (she did not), with no proof from Brandon.
    let close = TokenNetwork::closeCall {
        channelId: channel_id,
        partnerProof: BalanceProof::default().into(),
        partnerSig: Bytes::new(),
        partnerLocks: Bytes::new(),
        claimTransferred: U256::ZERO,
        ownLocks: Bytes::new(),
    };
    let (quote, status, answer) = harness
        .relay(&alice, stack.network, close.abi_encode(), 3)
        .await?;
    assert_eq!(status.as_u16(), 200, "{answer}");
    harness.mined(answer["id"].as_i64().unwrap()).await?;
    fees += quote.fee;
    relayed.push(quote);

    // After the hold period, settle.
    harness
        .rpc("evm_increaseTime", serde_json::json!([3_601]))
        .await?;
    harness.rpc("evm_mine", serde_json::json!([])).await?;
    let settle = TokenNetwork::settleCall {
        channelId: channel_id,
    };
    let (quote, status, answer) = harness
        .relay(&alice, stack.network, settle.abi_encode(), 4)
        .await?;
    assert_eq!(status.as_u16(), 200, "{answer}");
    let settled = harness.mined(answer["id"].as_i64().unwrap()).await?;
    assert_eq!(settled["feeEarned"], serde_json::json!(quote.fee));
    fees += quote.fee;
    relayed.push(quote);

    assert_eq!(
        harness.smt(harness.key.address()).await? - relayer_smt,
        fees,
        "the relayer's SMT grew by exactly the fees"
    );
    assert_eq!(
        harness.smt(alice.address()).await?,
        parse_ether("100")? - fees
    );
    assert_eq!(
        harness.eth(alice.address()).await?,
        U256::ZERO,
        "Alice never held ETH"
    );

    // Booked: every fee earned, every gas paid, and each fee above the gas it paid for.
    let (_, earnings) = harness.get("/v1/earnings?period=all").await?;
    let earnings: Earnings = serde_json::from_value(earnings)?;
    assert_eq!(earnings.total.relays, 4);
    assert_eq!(earnings.total.succeeded, 4);
    assert_eq!(earnings.total.smt_earned, fees);
    assert!(!earnings.total.eth_spent.is_zero());
    // At 1,000 SMT per ETH, the SMT earned is worth more than the ETH spent.
    assert!(
        earnings.total.smt_earned > earnings.total.eth_spent * U256::from(1_000),
        "{earnings:?}"
    );
    let spent: Vec<(i64, String)> =
        sqlx::query_as("SELECT gas_used, gas_price FROM relays ORDER BY id")
            .fetch_all(harness.db.pool())
            .await?;
    for (quote, (gas_used, price)) in relayed.iter().zip(spent) {
        assert!(
            quote.estimated_gas >= gas_used as u64,
            "the estimate {} covers the gas used {gas_used}",
            quote.estimated_gas
        );
        let cost = U256::from(gas_used as u64) * price.parse::<U256>()? * U256::from(1_000);
        assert!(
            quote.fee > cost,
            "fee {} above its gas cost {cost} in SMT",
            quote.fee
        );
    }
    Ok(())
}
