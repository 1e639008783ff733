//! The log follower on a real anvil, against SQLite and against the Postgres at
//! `DATABASE_URL`: a reorg rolls back exactly the orphaned blocks' effects and replays the new
//! ones; a follower dropped between batches and recreated from the same database resumes
//! without missing or repeating an event.

use std::time::Duration;

use alloy::{
    network::EthereumWallet,
    node_bindings::AnvilInstance,
    primitives::{Address, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::Filter,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
mod common;

use common::{databases, spawn_anvil};
use smartmesh_chain::{
    BlockLogs, ChainError, Database, FollowerConfig, LogFollower, LogHandler, Progress, connect,
};
use smartmesh_protocol::SmartMeshToken;
use sqlx::{AnyConnection, Row};

/// Records every SMT `Transfer` it is given, keyed so that a repeat would fail the insert.
struct TransferLedger;

impl LogHandler for TransferLedger {
    async fn apply(
        &mut self,
        conn: &mut AnyConnection,
        block: &BlockLogs,
    ) -> Result<(), ChainError> {
        for log in &block.logs {
            let transfer = SmartMeshToken::Transfer::decode_log_data(log.data())
                .map_err(|e| ChainError::Handler(Box::new(e)))?;
            sqlx::query(
                "INSERT INTO test_transfers (block_number, log_index, amount) VALUES ($1, $2, $3)",
            )
            .bind(block.number as i64)
            .bind(log.log_index.unwrap_or_default() as i64)
            .bind(transfer.value.to_string())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn rollback(
        &mut self,
        conn: &mut AnyConnection,
        fork_point: u64,
    ) -> Result<(), ChainError> {
        sqlx::query("DELETE FROM test_transfers WHERE block_number > $1")
            .bind(fork_point as i64)
            .execute(conn)
            .await?;
        Ok(())
    }
}

struct Chain {
    _anvil: AnvilInstance,
    provider: DynProvider,
    token: SmartMeshToken::SmartMeshTokenInstance<DynProvider>,
    url: String,
    signer: PrivateKeySigner,
    deploy_block: u64,
}

impl Chain {
    async fn start() -> eyre::Result<Self> {
        let anvil = spawn_anvil()?;
        let signer: PrivateKeySigner = anvil.keys()[0].clone().into();
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer.clone()))
            .connect_http(anvil.endpoint_url())
            .erased();
        let token = SmartMeshToken::deploy(
            provider.clone(),
            signer.address(),
            U256::from(1_000_000u64),
            Address::repeat_byte(1),
        )
        .await?;
        let deploy_block = provider.get_block_number().await?;
        Ok(Self {
            url: anvil.endpoint_url().to_string(),
            _anvil: anvil,
            provider,
            token,
            signer,
            deploy_block,
        })
    }

    /// One transfer of `amount` in its own block. A new provider each time: a provider's
    /// cached nonce would outlive an `evm_revert` and leave the transaction queued forever.
    async fn transfer(&self, amount: u64) -> eyre::Result<()> {
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(self.signer.clone()))
            .connect_http(self.url.parse()?)
            .erased();
        let token = SmartMeshToken::new(*self.token.address(), provider);
        let receipt = tokio::time::timeout(
            Duration::from_secs(30),
            token
                .transfer(Address::repeat_byte(9), U256::from(amount))
                .send()
                .await?
                .get_receipt(),
        )
        .await??;
        eyre::ensure!(receipt.status(), "transfer failed");
        Ok(())
    }

    async fn rpc(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> eyre::Result<serde_json::Value> {
        Ok(self.provider.raw_request(method.into(), params).await?)
    }

    /// Every transfer on the canonical chain, as `(block, log index, amount)`.
    async fn canonical_transfers(&self) -> eyre::Result<Vec<(i64, i64, String)>> {
        let filter = Filter::new()
            .address(*self.token.address())
            .from_block(self.deploy_block);
        let mut transfers = Vec::new();
        for log in self.provider.get_logs(&filter).await? {
            let transfer = SmartMeshToken::Transfer::decode_log_data(log.data())?;
            transfers.push((
                log.block_number.unwrap() as i64,
                log.log_index.unwrap() as i64,
                transfer.value.to_string(),
            ));
        }
        Ok(transfers)
    }

    fn follower(&self, db: &Database, max_range: u64) -> eyre::Result<LogFollower> {
        Ok(LogFollower::new(
            connect(&self.url)?,
            db.clone(),
            FollowerConfig {
                name: "test".into(),
                addresses: vec![*self.token.address()],
                start_block: self.deploy_block,
                confirmations: 0,
                max_range,
                keep_blocks: 64,
                poll_interval: Duration::from_millis(10),
            },
        ))
    }
}

async fn recorded(db: &Database) -> eyre::Result<Vec<(i64, i64, String)>> {
    let rows = sqlx::query("SELECT block_number, log_index, amount FROM test_transfers ORDER BY block_number, log_index")
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect()
}

async fn with_transfers_table(databases: Vec<Database>) -> eyre::Result<Vec<Database>> {
    for db in &databases {
        sqlx::query(
            "CREATE TABLE test_transfers (block_number BIGINT NOT NULL, log_index BIGINT NOT NULL, \
             amount TEXT NOT NULL, PRIMARY KEY (block_number, log_index))",
        )
        .execute(db.pool())
        .await?;
    }
    Ok(databases)
}

async fn catch_up(
    follower: &LogFollower,
    ledger: &mut TransferLedger,
) -> eyre::Result<Vec<Progress>> {
    let mut steps = Vec::new();
    loop {
        let progress = follower.poll_once(ledger).await?;
        if progress == Progress::UpToDate {
            return Ok(steps);
        }
        steps.push(progress);
    }
}

#[tokio::test]
async fn a_reorg_rolls_back_exactly_the_orphaned_blocks() -> eyre::Result<()> {
    for db in with_transfers_table(databases("follower_reorg").await?).await? {
        let chain = Chain::start().await?;
        let mut ledger = TransferLedger;
        let follower = chain.follower(&db, 100)?;
        for amount in [1, 2, 3] {
            chain.transfer(amount).await?;
        }
        catch_up(&follower, &mut ledger).await?;
        let fork_point = chain.provider.get_block_number().await?;

        let snapshot = chain.rpc("evm_snapshot", serde_json::json!([])).await?;
        for amount in [10, 11, 12] {
            chain.transfer(amount).await?;
        }
        catch_up(&follower, &mut ledger).await?;
        assert_eq!(
            recorded(&db).await?,
            chain.canonical_transfers().await?,
            "{:?}: followed the first fork",
            db.backend()
        );

        // Replace the last three blocks by four others with different transfers.
        assert_eq!(
            chain
                .rpc("evm_revert", serde_json::json!([snapshot]))
                .await?,
            serde_json::json!(true)
        );
        for amount in [20, 21, 22, 23] {
            chain.transfer(amount).await?;
        }
        let steps = catch_up(&follower, &mut ledger).await?;
        assert_eq!(
            steps.first(),
            Some(&Progress::RolledBack { fork_point }),
            "{:?}: {steps:?}",
            db.backend()
        );
        let canonical = chain.canonical_transfers().await?;
        assert_eq!(
            recorded(&db).await?,
            canonical,
            "{:?}: exactly the new fork's transfers",
            db.backend()
        );
        assert!(
            canonical
                .iter()
                .all(|(_, _, amount)| !["10", "11", "12"].contains(&amount.as_str()))
        );
        assert_eq!(
            canonical.len(),
            1 + 3 + 4,
            "the mint, the kept transfers and the new ones"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_shorter_fork_rolls_back_too() -> eyre::Result<()> {
    for db in with_transfers_table(databases("follower_shorter_fork").await?).await? {
        let chain = Chain::start().await?;
        let mut ledger = TransferLedger;
        let follower = chain.follower(&db, 100)?;
        chain.transfer(1).await?;
        catch_up(&follower, &mut ledger).await?;
        let fork_point = chain.provider.get_block_number().await?;
        let snapshot = chain.rpc("evm_snapshot", serde_json::json!([])).await?;
        for amount in [10, 11, 12] {
            chain.transfer(amount).await?;
        }
        catch_up(&follower, &mut ledger).await?;

        // The new fork has one block where the old had three: the cursor's height is gone.
        chain
            .rpc("evm_revert", serde_json::json!([snapshot]))
            .await?;
        chain.transfer(20).await?;
        let steps = catch_up(&follower, &mut ledger).await?;
        assert_eq!(
            steps.first(),
            Some(&Progress::RolledBack { fork_point }),
            "{:?}: {steps:?}",
            db.backend()
        );
        assert_eq!(recorded(&db).await?, chain.canonical_transfers().await?);
    }
    Ok(())
}

#[tokio::test]
async fn a_follower_recreated_from_the_database_resumes_exactly() -> eyre::Result<()> {
    for db in with_transfers_table(databases("follower_resume").await?).await? {
        let chain = Chain::start().await?;
        for amount in 1..=9 {
            chain.transfer(amount).await?;
        }
        let mut ledger = TransferLedger;
        // Two blocks per batch; stop after two batches as if the process were killed there.
        let first = chain.follower(&db, 2)?;
        assert!(matches!(
            first.poll_once(&mut ledger).await?,
            Progress::Advanced { .. }
        ));
        assert!(matches!(
            first.poll_once(&mut ledger).await?,
            Progress::Advanced { .. }
        ));
        drop(first);
        let partial = recorded(&db).await?;
        assert!(
            !partial.is_empty() && partial.len() < 10,
            "{:?}: stopped midway: {partial:?}",
            db.backend()
        );

        let second = chain.follower(&db, 2)?;
        catch_up(&second, &mut ledger).await?;
        // The primary key would have refused a repeated event; every one is there once.
        assert_eq!(
            recorded(&db).await?,
            chain.canonical_transfers().await?,
            "{:?}",
            db.backend()
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_failing_handler_commits_nothing() -> eyre::Result<()> {
    struct Failing;
    impl LogHandler for Failing {
        async fn apply(&mut self, _: &mut AnyConnection, _: &BlockLogs) -> Result<(), ChainError> {
            Err(ChainError::Handler("refused".into()))
        }
        async fn rollback(&mut self, _: &mut AnyConnection, _: u64) -> Result<(), ChainError> {
            Ok(())
        }
    }
    for db in with_transfers_table(databases("follower_failing").await?).await? {
        let chain = Chain::start().await?;
        chain.transfer(5).await?;
        let follower = chain.follower(&db, 100)?;
        assert!(matches!(
            follower.poll_once(&mut Failing).await,
            Err(ChainError::Handler(_))
        ));
        // The cursor did not move: a working handler still sees every transfer.
        catch_up(&follower, &mut TransferLedger).await?;
        assert_eq!(recorded(&db).await?, chain.canonical_transfers().await?);
    }
    Ok(())
}

#[tokio::test]
async fn run_follows_until_shutdown() -> eyre::Result<()> {
    for db in with_transfers_table(databases("follower_run").await?).await? {
        let chain = Chain::start().await?;
        for amount in [4, 5] {
            chain.transfer(amount).await?;
        }
        let follower = chain.follower(&db, 100)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut ledger = TransferLedger;
            follower
                .run(&mut ledger, async { stopped.await.unwrap_or(()) })
                .await
        });
        let expected = chain.canonical_transfers().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while recorded(&db).await? != expected {
            eyre::ensure!(
                tokio::time::Instant::now() < deadline,
                "the running follower never caught up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(()).ok();
        tokio::time::timeout(Duration::from_secs(10), task).await???;
    }
    Ok(())
}
