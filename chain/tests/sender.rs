//! The transaction sender on a real anvil, against SQLite and against the Postgres at
//! `DATABASE_URL`: dropped transactions are rebroadcast, stuck ones replaced with higher
//! fees, and a sender recreated from its database finishes every transaction exactly once.

mod common;

use std::time::Duration;

use alloy::{
    node_bindings::AnvilInstance,
    primitives::{Address, Bytes, U256},
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
};
use common::{databases, spawn_anvil};
use smartmesh_chain::{ChainError, Database, SenderConfig, TxRequest, TxSender, TxStatus, connect};

struct Node {
    anvil: AnvilInstance,
    provider: DynProvider,
}

impl Node {
    /// anvil with automine off: blocks come only when a test mines one.
    async fn start() -> eyre::Result<Self> {
        let anvil = spawn_anvil()?;
        let provider = connect(anvil.endpoint_url().as_ref())?;
        provider
            .raw_request::<_, serde_json::Value>("evm_setAutomine".into(), (false,))
            .await?;
        Ok(Self { anvil, provider })
    }

    fn key(&self, index: usize) -> PrivateKeySigner {
        self.anvil.keys()[index].clone().into()
    }

    async fn sender(
        &self,
        db: &Database,
        keys: &[usize],
        config: SenderConfig,
    ) -> eyre::Result<TxSender> {
        let signers = keys.iter().map(|index| self.key(*index)).collect();
        Ok(TxSender::new(self.provider.clone(), db.clone(), signers, config).await?)
    }

    async fn rpc(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> eyre::Result<serde_json::Value> {
        Ok(self.provider.raw_request(method.into(), params).await?)
    }

    async fn mine(&self) -> eyre::Result<()> {
        self.rpc("evm_mine", serde_json::json!([])).await?;
        Ok(())
    }
}

/// A payment of `wei` to an address of its own, so each payload's effect is countable.
fn payment(recipient: u8, wei: u64) -> TxRequest {
    TxRequest {
        to: Address::repeat_byte(recipient),
        input: Bytes::new(),
        value: U256::from(wei),
        gas_limit: 21_000,
    }
}

fn config() -> SenderConfig {
    SenderConfig {
        confirmations: 1,
        stuck_after: Duration::from_secs(3_600),
        ..SenderConfig::default()
    }
}

fn pending_hash(status: &TxStatus) -> alloy::primitives::B256 {
    match status {
        TxStatus::Pending { hash } => *hash,
        other => panic!("expected a pending transaction, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dropped_transaction_is_rebroadcast() -> eyre::Result<()> {
    for db in databases("sender_dropped").await? {
        let node = Node::start().await?;
        let sender = node.sender(&db, &[1], config()).await?;
        let id = sender.submit(&payment(0xd1, 1_000)).await?;
        assert_eq!(sender.status(id).await?, TxStatus::Queued);
        sender.tick().await?;
        let hash = pending_hash(&sender.status(id).await?);

        node.rpc("anvil_dropTransaction", serde_json::json!([hash]))
            .await?;
        node.mine().await?;
        assert!(
            node.provider.get_transaction_receipt(hash).await?.is_none(),
            "dropped, so not mined"
        );

        sender.tick().await?;
        node.mine().await?;
        sender.tick().await?;
        assert!(
            matches!(sender.status(id).await?, TxStatus::Confirmed { hash: mined, succeeded: true, .. } if mined == hash),
            "{:?}: the same signed bytes were sent again and mined",
            db.backend()
        );
        assert_eq!(
            node.provider
                .get_balance(Address::repeat_byte(0xd1))
                .await?,
            U256::from(1_000)
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_transaction_stuck_under_a_raised_base_fee_is_replaced_and_mined() -> eyre::Result<()> {
    for db in databases("sender_stuck").await? {
        let node = Node::start().await?;
        let stuck_at_once = SenderConfig {
            stuck_after: Duration::ZERO,
            ..config()
        };
        let sender = node.sender(&db, &[1], stuck_at_once).await?;
        let id = sender.submit(&payment(0x5c, 7)).await?;
        sender.tick().await?;
        let first = pending_hash(&sender.status(id).await?);

        // The base fee jumps far above what the first version offered: it cannot be included.
        node.rpc(
            "anvil_setNextBlockBaseFeePerGas",
            serde_json::json!(["0x174876e800"]),
        )
        .await?;
        node.mine().await?;
        assert!(
            node.provider
                .get_transaction_receipt(first)
                .await?
                .is_none(),
            "priced out"
        );

        sender.tick().await?;
        let replacement = pending_hash(&sender.status(id).await?);
        assert_ne!(replacement, first, "a new version with higher fees");
        node.mine().await?;
        sender.tick().await?;
        assert!(
            matches!(sender.status(id).await?, TxStatus::Confirmed { hash, succeeded: true, .. } if hash == replacement),
            "{:?}",
            db.backend()
        );
        assert_eq!(
            node.provider
                .get_balance(Address::repeat_byte(0x5c))
                .await?,
            U256::from(7),
            "paid once"
        );
        let signer = node.key(1).address();
        assert_eq!(
            node.provider.get_transaction_count(signer).await?,
            1,
            "one nonce used"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_sender_recreated_from_its_database_finishes_everything_exactly_once() -> eyre::Result<()>
{
    for db in databases("sender_restart").await? {
        let node = Node::start().await?;
        let keys = [1, 2];
        let first = node.sender(&db, &keys, config()).await?;
        let mut ids = Vec::new();
        for recipient in 1..=6u8 {
            ids.push(
                first
                    .submit(&payment(0xa0 + recipient, u64::from(recipient) * 100))
                    .await?,
            );
        }
        // Broadcast some, then "crash": the process and its mempool view are gone, and the
        // node lost one of the broadcast transactions too.
        first.tick().await?;
        let lost = pending_hash(&first.status(ids[0]).await?);
        drop(first);
        node.rpc("anvil_dropTransaction", serde_json::json!([lost]))
            .await?;

        let second = node.sender(&db, &keys, config()).await?;
        for _ in 0..4 {
            second.tick().await?;
            node.mine().await?;
        }
        second.tick().await?;
        for id in &ids {
            assert!(
                matches!(
                    second.status(*id).await?,
                    TxStatus::Confirmed {
                        succeeded: true,
                        ..
                    }
                ),
                "{:?}",
                db.backend()
            );
        }
        for recipient in 1..=6u8 {
            assert_eq!(
                node.provider
                    .get_balance(Address::repeat_byte(0xa0 + recipient))
                    .await?,
                U256::from(u64::from(recipient) * 100),
                "{:?}: payment {recipient} arrived exactly once",
                db.backend()
            );
        }
        // Both keys were used, each nonce once and with no gap: 6 transactions, 6 nonces.
        let used: u64 = [
            node.provider
                .get_transaction_count(node.key(1).address())
                .await?,
            node.provider
                .get_transaction_count(node.key(2).address())
                .await?,
        ]
        .iter()
        .sum();
        assert_eq!(used, 6);
        assert!(
            node.provider
                .get_transaction_count(node.key(2).address())
                .await?
                > 0,
            "load was spread"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_key_without_eth_pauses_sending_with_a_clear_error() -> eyre::Result<()> {
    for db in databases("sender_low_balance").await? {
        let node = Node::start().await?;
        let broke = PrivateKeySigner::from_bytes(&[0x42; 32].into())?;
        let sender =
            TxSender::new(node.provider.clone(), db.clone(), vec![broke], config()).await?;
        let health = sender.health().await?;
        assert_eq!(health.len(), 1);
        assert!(
            !health[0].accepting && health[0].balance.is_zero(),
            "{health:?}"
        );
        let refused = sender.submit(&payment(0xee, 1)).await;
        assert!(
            matches!(refused, Err(ChainError::LowBalance { .. })),
            "{refused:?}"
        );
        let error = refused.unwrap_err().to_string();
        assert!(error.contains("fund them"), "{error}");
        let queued: i64 = sqlx::Row::try_get(
            &sqlx::query("SELECT COUNT(*) FROM sender_transactions")
                .fetch_one(db.pool())
                .await?,
            0,
        )?;
        assert_eq!(queued, 0, "nothing was queued");
    }
    Ok(())
}

#[tokio::test]
async fn a_payload_refused_for_good_leaves_no_nonce_gap() -> eyre::Result<()> {
    // Caught by the pre-broadcast simulation, or else refused by the node at broadcast.
    for (db, simulate_first) in databases("sender_gap")
        .await?
        .into_iter()
        .flat_map(|db| [(db.clone(), true), (db, false)])
    {
        sqlx::query("DELETE FROM sender_attempts")
            .execute(db.pool())
            .await?;
        sqlx::query("DELETE FROM sender_transactions")
            .execute(db.pool())
            .await?;
        sqlx::query("DELETE FROM sender_nonces")
            .execute(db.pool())
            .await?;
        let node = Node::start().await?;
        let config = SenderConfig {
            simulate_first,
            ..config()
        };
        let sender = node.sender(&db, &[1], config).await?;
        // 20,000 gas is below the 21,000 any transaction costs: no node will ever take it.
        let doomed = sender
            .submit(&TxRequest {
                gas_limit: 20_000,
                ..payment(0x6a, 5)
            })
            .await?;
        let next = sender.submit(&payment(0x6b, 6)).await?;
        sender.tick().await?;
        node.mine().await?;
        sender.tick().await?;
        match sender.status(doomed).await? {
            TxStatus::Failed { reason } => {
                // Refused by the pre-broadcast simulation, or by the node when that is off.
                assert!(reason.contains("intrinsic gas"), "{reason}")
            }
            other => panic!("{:?}: expected a failure, got {other:?}", db.backend()),
        }
        assert!(
            matches!(
                sender.status(next).await?,
                TxStatus::Confirmed {
                    succeeded: true,
                    ..
                }
            ),
            "{:?}",
            db.backend()
        );
        assert_eq!(
            node.provider
                .get_balance(Address::repeat_byte(0x6a))
                .await?,
            U256::ZERO,
            "the refused payload never ran"
        );
        assert_eq!(
            node.provider
                .get_balance(Address::repeat_byte(0x6b))
                .await?,
            U256::from(6)
        );
        assert_eq!(
            node.provider
                .get_transaction_count(node.key(1).address())
                .await?,
            2,
            "both nonces used"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_mined_transaction_reorged_out_is_sent_again() -> eyre::Result<()> {
    for db in databases("sender_reorg").await? {
        let node = Node::start().await?;
        let deep = SenderConfig {
            confirmations: 3,
            ..config()
        };
        let sender = node.sender(&db, &[1], deep).await?;
        let id = sender.submit(&payment(0x7e, 9)).await?;
        sender.tick().await?;
        let snapshot = node.rpc("evm_snapshot", serde_json::json!([])).await?;
        node.mine().await?;
        sender.tick().await?;
        assert!(
            matches!(sender.status(id).await?, TxStatus::Mined { .. }),
            "one confirmation of three"
        );

        // The block that held it is gone, and so is the node's copy of the transaction.
        node.rpc("evm_revert", serde_json::json!([snapshot]))
            .await?;
        let hash = mined_hash(&sender, id).await?;
        node.rpc("anvil_dropTransaction", serde_json::json!([hash]))
            .await?;
        sender.tick().await?;
        assert!(
            matches!(sender.status(id).await?, TxStatus::Pending { .. }),
            "{:?}",
            db.backend()
        );
        for _ in 0..3 {
            node.mine().await?;
        }
        sender.tick().await?;
        assert!(
            matches!(sender.status(id).await?, TxStatus::Confirmed { .. }),
            "{:?}",
            db.backend()
        );
        assert_eq!(
            node.provider
                .get_balance(Address::repeat_byte(0x7e))
                .await?,
            U256::from(9),
            "paid once"
        );
    }
    Ok(())
}

/// The hash of the latest version of transaction `id`.
async fn mined_hash(sender: &TxSender, id: i64) -> eyre::Result<alloy::primitives::B256> {
    match sender.status(id).await? {
        TxStatus::Mined { hash, .. }
        | TxStatus::Confirmed { hash, .. }
        | TxStatus::Pending { hash } => Ok(hash),
        other => eyre::bail!("no hash yet: {other:?}"),
    }
}

#[tokio::test]
async fn run_sends_until_shutdown() -> eyre::Result<()> {
    for db in databases("sender_run").await? {
        let node = Node::start().await?;
        node.rpc("evm_setAutomine", serde_json::json!([true]))
            .await?;
        let sender = node.sender(&db, &[1], config()).await?;
        let id = sender.submit(&payment(0x99, 3)).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = sender.clone();
        let task = tokio::spawn(running.run(Duration::from_millis(20), async {
            stopped.await.unwrap_or(())
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !matches!(sender.status(id).await?, TxStatus::Confirmed { .. }) {
            eyre::ensure!(
                tokio::time::Instant::now() < deadline,
                "the running sender never confirmed it"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(()).ok();
        tokio::time::timeout(Duration::from_secs(10), task).await???;
        assert_eq!(
            node.provider
                .get_balance(Address::repeat_byte(0x99))
                .await?,
            U256::from(3)
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_stuck_key_does_not_block_the_others() -> eyre::Result<()> {
    for db in databases("sender_stuck_key").await? {
        let node = Node::start().await?;
        let config = SenderConfig {
            min_balance: U256::from(1),
            ..config()
        };
        let sender = node.sender(&db, &[1, 2], config).await?;
        // Key 1 keeps a little ETH: enough to be picked, too little to pay for any gas.
        node.rpc(
            "anvil_setBalance",
            serde_json::json!([node.key(1).address(), "0x3e8"]),
        )
        .await?;
        let stuck = sender.submit(&payment(0xd1, 1)).await?;
        let ids = [
            sender.submit(&payment(0xd2, 2)).await?,
            sender.submit(&payment(0xd3, 3)).await?,
        ];
        for _ in 0..3 {
            sender.tick().await?;
            node.mine().await?;
        }
        sender.tick().await?;
        assert!(
            !matches!(sender.status(stuck).await?, TxStatus::Confirmed { .. }),
            "{:?}: key 1 cannot pay",
            db.backend()
        );
        // The least loaded key takes the next transaction: key 2, behind nothing stuck.
        assert!(
            matches!(
                sender.status(ids[0]).await?,
                TxStatus::Confirmed {
                    succeeded: true,
                    ..
                }
            ),
            "{:?}: key 2 kept sending",
            db.backend()
        );
        assert_eq!(
            node.provider
                .get_balance(Address::repeat_byte(0xd2))
                .await?,
            U256::from(2)
        );
        assert_eq!(
            node.provider
                .get_balance(Address::repeat_byte(0xd1))
                .await?,
            U256::ZERO
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_call_that_would_revert_is_never_sent() -> eyre::Result<()> {
    for db in databases("sender_simulated_revert").await? {
        let node = Node::start().await?;
        let sender = node.sender(&db, &[1], config()).await?;
        // PUSH1 0 PUSH1 0 REVERT: a contract that refuses every call.
        let refuser = Address::repeat_byte(0x7e);
        node.rpc(
            "anvil_setCode",
            serde_json::json!([refuser, "0x60006000fd"]),
        )
        .await?;
        let doomed = sender
            .submit(&TxRequest {
                to: refuser,
                input: Bytes::new(),
                value: U256::ZERO,
                gas_limit: 50_000,
            })
            .await?;
        sender.tick().await?;
        node.mine().await?;
        sender.tick().await?;
        match sender.status(doomed).await? {
            TxStatus::Failed { reason } => {
                assert!(reason.contains("simulation"), "{reason}")
            }
            other => panic!("{:?}: expected a failure, got {other:?}", db.backend()),
        }
        // Its nonce carried a 0-value transfer to the key itself, not the doomed call.
        let block = node
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .full()
            .await?
            .expect("a block");
        let sent: Vec<_> = block
            .transactions
            .txns()
            .map(alloy::consensus::Transaction::to)
            .collect();
        assert_eq!(
            sent,
            vec![Some(node.key(1).address())],
            "{:?}",
            db.backend()
        );
    }
    Ok(())
}

/// The fault of a reorg deeper than the confirmation depth: two transactions confirmed (two
/// confirmations each), then the chain reverts past them and the node forgets them. The
/// book said "next nonce 2" while the chain said 0; a new transaction at nonce 2 would wait
/// behind the gap forever. The sender sends the two again, and the new one after them.
#[tokio::test]
async fn a_reorg_deeper_than_the_confirmations_is_reconciled() -> eyre::Result<()> {
    for db in databases("sender_deep_reorg").await? {
        let node = Node::start().await?;
        let two = SenderConfig {
            confirmations: 2,
            ..config()
        };
        let sender = node.sender(&db, &[1], two).await?;
        let snapshot = node.rpc("evm_snapshot", serde_json::json!([])).await?;
        let first = sender.submit(&payment(0x71, 1)).await?;
        let second = sender.submit(&payment(0x72, 2)).await?;
        sender.tick().await?;
        for _ in 0..3 {
            node.mine().await?;
        }
        sender.tick().await?;
        for id in [first, second] {
            assert!(
                matches!(sender.status(id).await?, TxStatus::Confirmed { .. }),
                "{:?}",
                sender.status(id).await?
            );
        }

        // Three blocks undone, and the node keeps nothing of them.
        node.rpc("evm_revert", serde_json::json!([snapshot]))
            .await?;
        node.rpc("anvil_dropAllTransactions", serde_json::json!([]))
            .await?;
        node.mine().await?;
        let key = node.key(1).address();
        assert_eq!(node.provider.get_transaction_count(key).await?, 0);

        let third = sender.submit(&payment(0x73, 3)).await?;
        for _ in 0..4 {
            sender.tick().await?;
            node.mine().await?;
        }
        sender.tick().await?;
        for (id, recipient, wei) in [(first, 0x71, 1u64), (second, 0x72, 2), (third, 0x73, 3)] {
            assert!(
                matches!(sender.status(id).await?, TxStatus::Confirmed { .. }),
                "{:?}: {:?}",
                db.backend(),
                sender.status(id).await?
            );
            assert_eq!(
                node.provider
                    .get_balance(Address::repeat_byte(recipient))
                    .await?,
                U256::from(wei),
                "paid once"
            );
        }
        assert_eq!(
            node.provider.get_transaction_count(key).await?,
            3,
            "no gap, nothing twice"
        );
    }
    Ok(())
}

/// The key was used by someone else at the nonce of a transaction of ours not mined yet: that
/// transaction is signed again at a new nonce rather than waiting forever.
#[tokio::test]
async fn a_nonce_taken_elsewhere_is_signed_again() -> eyre::Result<()> {
    for db in databases("sender_nonce_taken").await? {
        let node = Node::start().await?;
        let sender = node.sender(&db, &[1], config()).await?;
        let id = sender.submit(&payment(0x74, 4)).await?;
        // Before it is ever broadcast, another wallet holding the same key sends a transfer.
        let other = alloy::providers::ProviderBuilder::new()
            .wallet(alloy::network::EthereumWallet::from(node.key(1)))
            .connect_http(node.anvil.endpoint_url());
        let elsewhere = other
            .send_transaction(
                alloy::rpc::types::TransactionRequest::default()
                    .to(Address::repeat_byte(0x75))
                    .value(U256::from(5)),
            )
            .await?;
        node.mine().await?;
        assert!(elsewhere.get_receipt().await?.status());
        for _ in 0..3 {
            sender.tick().await?;
            node.mine().await?;
        }
        sender.tick().await?;
        assert!(
            matches!(sender.status(id).await?, TxStatus::Confirmed { .. }),
            "{:?}",
            sender.status(id).await?
        );
        assert_eq!(
            node.provider
                .get_balance(Address::repeat_byte(0x74))
                .await?,
            U256::from(4)
        );
    }
    Ok(())
}
