//! Gas of every channel operation as a transaction receipt reports it (intrinsic 21,000
//! included, as in Raiden's published figures), measured on the npm anvil with the contracts
//! compiled exactly as deployed. Run: `cargo bench -p smartmesh-protocol --bench gas`.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
    sol_types::{Eip712Domain, SolCall, SolStruct},
};
use smartmesh_protocol::{
    Ack, ConditionRegistry, CooperativeSettle, Lock, LockList,
    SignedAgent::AgentRequest,
    SmartMeshToken,
    TokenNetwork::{self, BalanceProof, Watch},
    Withdraw, agent_domain, conditions_domain, hashlock_condition_id, sign_typed,
    token_network_domain,
};

/// (operation, Raiden's published gas, our goal as a fraction of it).
const RAIDEN: [(&str, u64, f64); 11] = [
    ("open", 111_094, 0.8),
    ("deposit", 56_000, 0.8),
    ("withdraw", 115_142, 0.8),
    ("close", 118_501, 0.8),
    ("update", 90_516, 0.8),
    ("settle", 108_569, 0.8),
    ("cooperativeSettle", 112_270, 0.8),
    ("monitor", 224_262, 0.6),
    ("registerSecret", 46_181, 0.8),
    ("unlock 1", 38_619, 0.8),
    ("unlock 6", 53_246, 0.8),
];

struct Row {
    operation: &'static str,
    gas: u64,
    compared_to: Option<&'static str>,
}

type Network = TokenNetwork::TokenNetworkInstance<DynProvider>;

/// The test stack (anvil and the three contracts, deployed as in `tests/common`) and the
/// hold period the measured channels use.
struct Bench {
    stack: Stack,
    timeout: U256,
}

impl Bench {
    fn provider(&self, signer: &PrivateKeySigner) -> DynProvider {
        self.stack.provider(signer)
    }

    fn network(&self, signer: &PrivateKeySigner) -> Network {
        self.stack.network(signer)
    }

    fn network_domain(&self) -> Eip712Domain {
        token_network_domain(self.stack.chain_id, self.stack.network)
    }

    fn sign<T: SolStruct>(
        &self,
        signer: &PrivateKeySigner,
        message: &T,
        domain: &Eip712Domain,
    ) -> Bytes {
        Bytes::copy_from_slice(sign_typed(signer, message, domain).as_bytes())
    }

    async fn fund_and_approve(&self, user: &PrivateKeySigner, amount: U256) -> eyre::Result<()> {
        self.stack.fund(user.address(), amount).await?;
        self.stack
            .token(user)
            .approve(self.stack.network, amount)
            .send()
            .await?
            .get_receipt()
            .await?;
        Ok(())
    }

    async fn open(&self, a: &PrivateKeySigner, b: &PrivateKeySigner) -> eyre::Result<(B256, u64)> {
        let receipt = self
            .network(a)
            .open(b.address(), self.timeout)
            .send()
            .await?
            .get_receipt()
            .await?;
        let channel_id = receipt
            .inner
            .logs()
            .iter()
            .find_map(|log| log.log_decode::<TokenNetwork::ChannelOpened>().ok())
            .expect("ChannelOpened")
            .inner
            .channelId;
        Ok((channel_id, receipt.gas_used))
    }

    async fn deposit(
        &self,
        who: &PrivateKeySigner,
        channel_id: B256,
        total: U256,
    ) -> eyre::Result<u64> {
        let receipt = self
            .network(who)
            .deposit(channel_id, who.address(), total)
            .send()
            .await?
            .get_receipt()
            .await?;
        eyre::ensure!(receipt.status(), "deposit reverted");
        Ok(receipt.gas_used)
    }
}

fn proof(channel_id: B256, nonce: u64, transferred: U256) -> BalanceProof {
    BalanceProof {
        channelId: channel_id,
        nonce: U256::from(nonce),
        transferredAmount: transferred,
        lockedAmount: U256::ZERO,
        locksRoot: B256::ZERO,
        messageHash: B256::ZERO,
    }
}

fn empty_watch() -> Watch {
    Watch {
        channelId: B256::ZERO,
        proofDigest: B256::ZERO,
        watcher: Address::ZERO,
        reward: U256::ZERO,
        deadline: U256::ZERO,
    }
}

async fn mine_after(provider: &DynProvider, seconds: u64) -> eyre::Result<()> {
    provider
        .raw_request::<_, serde_json::Value>("evm_increaseTime".into(), (seconds,))
        .await?;
    provider
        .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
        .await?;
    Ok(())
}

#[path = "../tests/common/mod.rs"]
mod common;

use common::Stack;

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let stack = Bench {
        stack: Stack::deploy().await?,
        timeout: U256::from(600),
    };
    let keys = stack.stack.keys.clone();
    let (deployer, alice, brandon, watcher, relayer, carol) =
        (&keys[0], &keys[1], &keys[2], &keys[3], &keys[4], &keys[5]);
    let deploy = stack.provider(deployer);
    let domain = stack.network_domain();
    let ether = |n: u64| U256::from(n) * U256::from(10).pow(U256::from(18));
    for who in [alice, brandon, carol] {
        stack.fund_and_approve(who, ether(1_000)).await?;
    }
    // The watcher and relayer already hold some SMT, as they would in operation.
    for who in [watcher, relayer] {
        stack.fund_and_approve(who, ether(1)).await?;
    }
    let mut rows = Vec::new();
    let mut row = |operation, gas, compared_to| {
        rows.push(Row {
            operation,
            gas,
            compared_to,
        })
    };

    // Dispute path: open, deposit, withdraw, close with a stale claim, watcher update, settle.
    let (channel, gas) = stack.open(alice, brandon).await?;
    row("open", gas, Some("open"));
    // The network's very first deposit also creates its own token balance; measure the
    // second participant's, as every later channel sees it.
    stack.deposit(alice, channel, ether(100)).await?;
    row(
        "deposit (participant's first)",
        stack.deposit(brandon, channel, ether(50)).await?,
        Some("deposit"),
    );
    row(
        "deposit (top-up)",
        stack.deposit(alice, channel, ether(120)).await?,
        Some("deposit"),
    );
    // The floor under any deposit: the ERC-20 pull alone, between accounts that hold tokens.
    SmartMeshToken::new(stack.stack.token, stack.provider(alice))
        .approve(carol.address(), ether(1))
        .send()
        .await?
        .get_receipt()
        .await?;
    let pull = SmartMeshToken::new(stack.stack.token, stack.provider(carol))
        .transferFrom(alice.address(), carol.address(), ether(1))
        .send()
        .await?
        .get_receipt()
        .await?;
    row(
        "SMT transferFrom alone (floor of a deposit)",
        pull.gas_used,
        None,
    );

    let deadline = U256::from(u64::MAX);
    let withdraw = Withdraw {
        channelId: channel,
        participant: alice.address(),
        totalWithdraw: ether(10),
        deadline,
    };
    let receipt = stack
        .network(alice)
        .withdraw(
            channel,
            alice.address(),
            ether(10),
            deadline,
            stack.sign(alice, &withdraw, &domain),
            stack.sign(brandon, &withdraw, &domain),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    row("withdraw", receipt.gas_used, Some("withdraw"));

    let brandon_paid = proof(channel, 2, ether(5));
    let alice_paid = proof(channel, 4, ether(40));
    let receipt = stack
        .network(alice)
        .close(
            channel,
            brandon_paid.clone(),
            stack.sign(brandon, &brandon_paid, &domain),
            Bytes::new(),
            ether(25),
            Bytes::new(),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    row("close", receipt.gas_used, Some("close"));

    let watch = Watch {
        channelId: channel,
        proofDigest: alice_paid.eip712_signing_hash(&domain),
        watcher: watcher.address(),
        reward: ether(2),
        deadline,
    };
    let receipt = stack
        .network(watcher)
        .updateClaim(
            channel,
            alice_paid.clone(),
            stack.sign(alice, &alice_paid, &domain),
            Bytes::new(),
            watch.clone(),
            stack.sign(brandon, &watch, &domain),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    row(
        "updateClaim (watcher, with reward)",
        receipt.gas_used,
        Some("monitor"),
    );
    mine_after(&deploy, 601).await?;
    let receipt = stack
        .network(carol)
        .settle(channel)
        .send()
        .await?
        .get_receipt()
        .await?;
    row(
        "settle (penalized, reward paid)",
        receipt.gas_used,
        Some("settle"),
    );

    // Honest path on a fresh pair: the non-closer's own update, then a settle paying both.
    let (channel, _) = stack.open(brandon, carol).await?;
    let receipt = stack
        .network(carol)
        .openWithDeposit(alice.address(), stack.timeout, ether(10))
        .send()
        .await?
        .get_receipt()
        .await?;
    row("openWithDeposit", receipt.gas_used, None);
    stack.deposit(brandon, channel, ether(50)).await?;
    stack.deposit(carol, channel, ether(50)).await?;
    let carol_paid = proof(channel, 3, ether(7));
    let brandon_paid = proof(channel, 1, ether(2));
    stack
        .network(brandon)
        .close(
            channel,
            carol_paid.clone(),
            stack.sign(carol, &carol_paid, &domain),
            Bytes::new(),
            ether(1),
            Bytes::new(),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    let receipt = stack
        .network(carol)
        .updateClaim(
            channel,
            brandon_paid.clone(),
            stack.sign(brandon, &brandon_paid, &domain),
            Bytes::new(),
            empty_watch(),
            Bytes::new(),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    row("updateClaim (non-closer)", receipt.gas_used, Some("update"));

    let (channel, _) = stack.open(alice, watcher).await?;
    stack.deposit(alice, channel, ether(30)).await?;
    stack.deposit(watcher, channel, ether(1)).await?;
    let watcher_paid = proof(channel, 1, ether(1) / U256::from(2));
    stack
        .network(alice)
        .close(
            channel,
            watcher_paid.clone(),
            stack.sign(watcher, &watcher_paid, &domain),
            Bytes::new(),
            ether(3),
            Bytes::new(),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    mine_after(&deploy, 601).await?;
    let receipt = stack
        .network(carol)
        .settle(channel)
        .send()
        .await?
        .get_receipt()
        .await?;
    let settle_honest = receipt.gas_used;
    row(
        "settle (honest, both paid)",
        receipt.gas_used,
        Some("settle"),
    );

    // Cooperative settle on the alice <-> brandon pair's second channel.
    let (channel, _) = stack.open(alice, brandon).await?;
    stack.deposit(alice, channel, ether(20)).await?;
    stack.deposit(brandon, channel, ether(20)).await?;
    let settlement = CooperativeSettle {
        channelId: channel,
        balance1: ether(15),
        balance2: ether(25),
        deadline,
    };
    let (first, second) = if alice.address() < brandon.address() {
        (alice, brandon)
    } else {
        (brandon, alice)
    };
    let settlement = CooperativeSettle {
        balance1: if first.address() == alice.address() {
            ether(15)
        } else {
            ether(25)
        },
        balance2: if first.address() == alice.address() {
            ether(25)
        } else {
            ether(15)
        },
        ..settlement
    };
    let receipt = stack
        .network(alice)
        .cooperativeSettle(
            channel,
            settlement.balance1,
            settlement.balance2,
            deadline,
            stack.sign(first, &settlement, &domain),
            stack.sign(second, &settlement, &domain),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    row(
        "cooperativeSettle",
        receipt.gas_used,
        Some("cooperativeSettle"),
    );

    // SMT transfer, plain and relayed through the SignedAgent with a fee, between holders.
    let plain = SmartMeshToken::new(stack.stack.token, stack.provider(alice))
        .transfer(brandon.address(), ether(1))
        .send()
        .await?
        .get_receipt()
        .await?
        .gas_used;
    row("SMT transfer", plain, None);
    let agent_domain = agent_domain(stack.stack.chain_id, stack.stack.agent);
    let mut relayed = 0;
    for nonce in [1u64, 2] {
        let request = AgentRequest {
            from: alice.address(),
            agent: relayer.address(),
            target: stack.stack.token,
            data: SmartMeshToken::transferCall {
                to: brandon.address(),
                value: ether(1),
            }
            .abi_encode()
            .into(),
            gas: U256::from(60_000),
            feeToken: stack.stack.token,
            fee: ether(1) / U256::from(10),
            nonce: U256::from(nonce),
            deadline,
        };
        let signature = stack.sign(alice, &request, &agent_domain);
        let receipt = stack
            .stack
            .agent(relayer)
            .execute(request, signature)
            .send()
            .await?
            .get_receipt()
            .await?;
        eyre::ensure!(receipt.status(), "relayed transfer reverted");
        relayed = receipt.gas_used;
        if nonce == 1 {
            row(
                "relayed SMT transfer (user's first nonce word)",
                receipt.gas_used,
                None,
            );
        }
    }
    row("relayed SMT transfer", relayed, None);

    // Conditional payments: registrations, a close with locks both ways, and settles that
    // resolve n locks, each lock's secret registered so every lock reads the registry and pays.
    // A provider per call, as everywhere here: each one asks the node for the next nonce.
    let registry = || ConditionRegistry::new(stack.stack.registry, stack.provider(carol));
    let secret = |i: u64| alloy::primitives::keccak256(i.to_be_bytes());
    let receipt = registry()
        .registerSecret(secret(1))
        .send()
        .await?
        .get_receipt()
        .await?;
    row("registerSecret", receipt.gas_used, Some("registerSecret"));
    let message_hash = secret(u64::MAX);
    let ack = sign_typed(
        brandon,
        &Ack {
            messageHash: message_hash,
        },
        &conditions_domain(stack.stack.chain_id, stack.stack.registry),
    );
    let receipt = registry()
        .registerAck(
            brandon.address(),
            message_hash,
            Bytes::copy_from_slice(ack.as_bytes()),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    row("registerAck", receipt.gas_used, None);

    let far = 4_000_000_000u64;
    let locks = |count: u64, base: u64| -> eyre::Result<LockList> {
        Ok(LockList::from_locks(
            (0..count)
                .map(|i| Lock {
                    expiry: far,
                    amount: 1_000_000_000_000_000,
                    condition_id: hashlock_condition_id(&secret(base + i)),
                })
                .collect(),
        )?)
    };
    // A fresh pair for the lock settles, each reopening the channel at a new epoch.
    let (dave, erin) = (&keys[6], &keys[7]);
    for who in [dave, erin] {
        stack.fund_and_approve(who, ether(1_000)).await?;
    }
    let mut per_lock = Vec::new();
    for (count, label, compared) in [
        (1u64, "settleWithLocks, 1 lock", Some("unlock 1")),
        (6, "settleWithLocks, 6 locks", Some("unlock 6")),
        (32, "settleWithLocks, 32 locks", None),
    ] {
        let (channel, _) = stack.open(dave, erin).await?;
        stack.deposit(dave, channel, ether(50)).await?;
        stack.deposit(erin, channel, ether(50)).await?;
        let own = locks(count, 1_000 * count)?;
        let theirs = locks(1, 1_000 * count + 500)?;
        let mut carol_paid = proof(channel, 3, ether(7));
        carol_paid.lockedAmount = theirs.locked_amount();
        carol_paid.locksRoot = theirs.root();
        let receipt = stack
            .network(dave)
            .close(
                channel,
                carol_paid.clone(),
                stack.sign(erin, &carol_paid, &domain),
                Bytes::from(theirs.encode()),
                ether(2),
                Bytes::from(own.encode()),
            )
            .send()
            .await?
            .get_receipt()
            .await?;
        eyre::ensure!(receipt.status(), "close with locks reverted");
        if count == 1 {
            row("close (1 lock each way)", receipt.gas_used, None);
        }
        let secrets: Vec<B256> = (0..count).map(|i| secret(1_000 * count + i)).collect();
        registry()
            .registerSecrets(secrets)
            .send()
            .await?
            .get_receipt()
            .await?;
        mine_after(&deploy, 601).await?;
        let receipt = stack
            .network(carol)
            .settleWithLocks(
                channel,
                Bytes::from(own.encode()),
                Bytes::new(),
                Bytes::from(theirs.encode()),
            )
            .send()
            .await?
            .get_receipt()
            .await?;
        eyre::ensure!(receipt.status(), "settleWithLocks reverted");
        let extra = receipt.gas_used.saturating_sub(settle_honest);
        per_lock.push((count, receipt.gas_used));
        row(label, receipt.gas_used, None);
        if let Some(name) = compared {
            let operation = match count {
                1 => "settleWithLocks 1 lock - settle (Raiden: unlock 1)",
                _ => "settleWithLocks 6 locks - settle (Raiden: unlock 6)",
            };
            row(operation, extra, Some(name));
        }
    }

    println!("| operation | gas (receipt) | Raiden | ratio | goal |");
    println!("|---|---:|---:|---:|---:|");
    for row in &rows {
        match row
            .compared_to
            .and_then(|name| RAIDEN.iter().find(|(op, ..)| *op == name))
        {
            Some((name, raiden, goal)) => {
                let ratio = row.gas as f64 / *raiden as f64;
                let verdict = if ratio <= *goal { "met" } else { "missed" };
                println!(
                    "| {} | {} | {} ({name}) | {:.2} | <= {:.2} {verdict} |",
                    row.operation, row.gas, raiden, ratio, goal
                );
            }
            None => println!("| {} | {} | | | |", row.operation, row.gas),
        }
    }
    // What one more lock costs: from 1 to 32 locks paid (refunds are capped at a fifth of a
    // transaction's gas, which hides part of the cost of small settles, so the slope over the
    // whole range is the figure, not n locks against settle).
    let (first, last) = (per_lock[0], per_lock[per_lock.len() - 1]);
    let slope = (last.1 - first.1) as f64 / (last.0 - first.0) as f64;
    println!(
        "| settleWithLocks: gas per extra lock, {} to {} locks | {slope:.0} | | | <= 3000 {} |",
        first.0,
        last.0,
        if slope <= 3_000.0 { "met" } else { "missed" }
    );
    let ratio = relayed as f64 / plain as f64;
    println!(
        "| relayed / plain SMT transfer | | | {ratio:.2} | <= 1.60 {} |",
        if ratio <= 1.6 { "met" } else { "missed" }
    );
    Ok(())
}
