//! The lock encoding in Rust is the contract's, byte for byte: the same root and locked amount
//! for every list, the same refusals, and the same claim rule against the live registry.

mod common;

use alloy::{
    primitives::{B256, Bytes, U256, keccak256},
    providers::Provider,
};
use common::Stack;
use smartmesh_protocol::{
    ConditionRegistry, LOCK_SIZE, Lock, LockList, MAX_LOCKS, ProtocolError, hashlock_condition_id,
};

/// A fixed-seed generator: the same lists on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }
}

fn secret(i: u64) -> B256 {
    keccak256(i.to_be_bytes())
}

fn selector(signature: &str) -> [u8; 4] {
    keccak256(signature)[..4].try_into().unwrap()
}

#[tokio::test]
async fn rust_and_the_contract_agree_on_every_list() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let network = stack.network(&stack.keys[0]);
    let mut rng = Lcg(0x5eed);
    let mut lengths: Vec<usize> = vec![0, 1, 2, 6, MAX_LOCKS];
    lengths.extend((0..20).map(|_| (rng.next() % (MAX_LOCKS as u64 + 1)) as usize));
    for (case, length) in lengths.into_iter().enumerate() {
        let locks = (0..length)
            .map(|i| Lock {
                expiry: rng.next() % (1 << 40),
                // Small, large and the largest amounts.
                amount: match i % 3 {
                    0 => 1 + u128::from(rng.next() % 1_000),
                    1 => (u128::from(rng.next()) << 64) | u128::from(rng.next()),
                    _ => u128::MAX,
                },
                condition_id: hashlock_condition_id(&secret(case as u64 * 100 + i as u64)),
            })
            .collect();
        let list = LockList::from_locks(locks)?;
        let bytes = list.encode();
        assert_eq!(bytes.len(), length * LOCK_SIZE);
        let answer = network
            .checkLocks(Bytes::from(bytes.clone()))
            .call()
            .await?;
        assert_eq!(answer.locksRoot, list.root(), "case {case}: root");
        assert_eq!(
            answer.lockedAmount,
            list.locked_amount(),
            "case {case}: amount"
        );
        assert_eq!(LockList::decode(&bytes)?, list, "case {case}: decodes back");
    }
    Ok(())
}

#[tokio::test]
async fn rust_refuses_what_the_contract_refuses() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let network = stack.network(&stack.keys[0]);
    let one = LockList::from_locks(vec![Lock {
        expiry: 1_000,
        amount: 5,
        condition_id: B256::repeat_byte(7),
    }])?
    .encode();
    let mut padded = one.clone();
    padded[30] = 1;
    let mut zero = one.clone();
    zero[5..21].fill(0);
    let cases: Vec<(Vec<u8>, ProtocolError, [u8; 4])> = vec![
        (
            one[..63].to_vec(),
            ProtocolError::LockListMalformed(63),
            selector("LocksMalformed(uint256)"),
        ),
        (
            one.repeat(33),
            ProtocolError::TooManyLocks(33),
            selector("TooManyLocks(uint256,uint256)"),
        ),
        (
            padded,
            ProtocolError::LockPaddingNotZero { index: 0 },
            selector("LockPaddingNotZero(uint256)"),
        ),
        (
            [one.clone(), zero].concat(),
            ProtocolError::LockAmountZero { index: 1 },
            selector("LockAmountZero(uint256)"),
        ),
    ];
    for (bytes, rust, solidity) in cases {
        assert_eq!(LockList::decode(&bytes), Err(rust.clone()));
        let error = network
            .checkLocks(Bytes::from(bytes))
            .call()
            .await
            .expect_err("the contract refuses it too");
        let data = error.as_revert_data().expect("a custom error");
        assert_eq!(&data[..4], &solidity, "{rust}: the contract's reason");
    }
    Ok(())
}

#[tokio::test]
async fn the_claim_rule_is_the_same_on_both_sides() -> eyre::Result<()> {
    let stack = Stack::deploy().await?;
    let provider = stack.provider(&stack.keys[0]);
    let network = stack.network(&stack.keys[0]);
    let registry = ConditionRegistry::new(stack.registry, provider.clone());
    let now = provider
        .get_block(alloy::eips::BlockNumberOrTag::Latest.into())
        .await?
        .expect("a latest block")
        .header
        .timestamp;
    // Six locks, the first already expired; the first four secrets get registered now.
    let locks: Vec<Lock> = (0..6u64)
        .map(|i| Lock {
            expiry: if i == 0 { now - 100 } else { now + 1_000 * i },
            amount: 10 + u128::from(i),
            condition_id: hashlock_condition_id(&secret(900 + i)),
        })
        .collect();
    for i in 0..4 {
        registry
            .registerSecret(secret(900 + i))
            .send()
            .await?
            .get_receipt()
            .await?;
    }
    let list = LockList::from_locks(locks)?;
    let mut registered = std::collections::HashMap::new();
    for lock in list.locks() {
        let at = registry.registeredAt(lock.condition_id).call().await?;
        registered.insert(lock.condition_id, at.to::<u64>());
    }
    for settle_at in [now - 10, now + 500, now + 1_500, now + 100_000] {
        let rust = list.claimable(|id| registered[id], settle_at);
        let solidity = network
            .claimableLocks(Bytes::from(list.encode()), U256::from(settle_at))
            .call()
            .await?;
        assert_eq!(rust, solidity, "settleAt {settle_at}");
    }
    assert!(
        list.claimable(|id| registered[id], now + 100_000) == U256::from(11 + 12 + 13),
        "the three registered before their expiry, so the comparison is not of two zeros"
    );
    Ok(())
}
