//! A reorg-safe log follower: reads contract events up to `head - confirmations` in bounded
//! ranges, commits its cursor in the same database transaction as the effects of those blocks
//! (exactly once across crashes), and on a reorg rolls the effects back to the fork point.

use std::{future::Future, time::Duration};

use alloy::{
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::{Filter, Log},
};
use sqlx::{AnyConnection, Row};
use tracing::{debug, info, warn};

use crate::{ChainError, Database};

/// The logs of one block, handed to a [`LogHandler`] in chain order.
#[derive(Debug, Clone)]
pub struct BlockLogs {
    /// The block height.
    pub number: u64,
    /// The block hash.
    pub hash: B256,
    /// The block's logs of the followed contracts, in log-index order.
    pub logs: Vec<Log>,
}

/// What a follower's owner does with the logs, inside the follower's transaction.
pub trait LogHandler: Send {
    /// Applies one block's logs. Runs in the transaction that also moves the cursor: an error
    /// commits nothing.
    fn apply(
        &mut self,
        conn: &mut AnyConnection,
        block: &BlockLogs,
    ) -> impl Future<Output = Result<(), ChainError>> + Send;

    /// Undoes the effects of every block above `fork_point`, which a reorg orphaned.
    fn rollback(
        &mut self,
        conn: &mut AnyConnection,
        fork_point: u64,
    ) -> impl Future<Output = Result<(), ChainError>> + Send;
}

/// What one poll did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Blocks up to `to` are processed.
    Advanced {
        /// The new cursor.
        to: u64,
    },
    /// Nothing new is confirmed yet.
    UpToDate,
    /// A reorg orphaned blocks above `fork_point`; their effects were rolled back.
    RolledBack {
        /// The highest block both forks share.
        fork_point: u64,
    },
}

/// Settings of a [`LogFollower`].
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// The cursor's name in the database (one per follower).
    pub name: String,
    /// The contracts whose logs are followed.
    pub addresses: Vec<Address>,
    /// The first block to read (the deployment block).
    pub start_block: u64,
    /// Blocks behind the head that count as final enough to act on.
    pub confirmations: u64,
    /// The most blocks one `eth_getLogs` call covers.
    pub max_range: u64,
    /// How many processed blocks to remember for finding a fork point.
    pub keep_blocks: u64,
    /// The pause between polls when up to date.
    pub poll_interval: Duration,
}

/// Follows contract logs into a [`LogHandler`].
#[derive(Debug, Clone)]
pub struct LogFollower {
    provider: DynProvider,
    db: Database,
    config: FollowerConfig,
}

#[derive(Debug, Clone, Copy)]
struct Cursor {
    number: u64,
    hash: Option<B256>,
}

impl LogFollower {
    /// A follower reading `provider` and committing into `db`.
    pub fn new(provider: DynProvider, db: Database, config: FollowerConfig) -> Self {
        Self {
            provider,
            db,
            config,
        }
    }

    /// Polls until `shutdown` resolves, never stopping between a batch's effects and its
    /// cursor. Transient RPC failures are logged and retried.
    pub async fn run<H: LogHandler>(
        self,
        handler: &mut H,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ChainError> {
        tokio::pin!(shutdown);
        loop {
            let pause = match self.poll_once(handler).await {
                Ok(Progress::Advanced { .. } | Progress::RolledBack { .. }) => Duration::ZERO,
                Ok(Progress::UpToDate) => self.config.poll_interval,
                Err(ChainError::Rpc(e)) => {
                    warn!(target: "smartmesh::follower", follower = %self.config.name, error = %e, "rpc failed; retrying");
                    self.config.poll_interval
                }
                Err(ChainError::Raced { number, .. }) => {
                    debug!(target: "smartmesh::follower", follower = %self.config.name, number, "block changed while read; retrying");
                    Duration::ZERO
                }
                Err(e) => return Err(e),
            };
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Processes at most one range of confirmed blocks, or rolls back one reorg.
    pub async fn poll_once<H: LogHandler>(&self, handler: &mut H) -> Result<Progress, ChainError> {
        let cursor = self.cursor().await?;
        if let Some(fork_point) = self.find_reorg(cursor).await? {
            self.roll_back(handler, fork_point).await?;
            return Ok(Progress::RolledBack { fork_point });
        }

        let head = self.provider.get_block_number().await?;
        let Some(target) = head.checked_sub(self.config.confirmations) else {
            return Ok(Progress::UpToDate);
        };
        if target <= cursor.number {
            return Ok(Progress::UpToDate);
        }
        let from = cursor.number + 1;
        let to = target.min(from + self.config.max_range.max(1) - 1);

        // The range's end is read before and after its logs: if it did not change, neither
        // did any block below it, so the logs all come from the fork whose end we record.
        let end = self.block_hash(to).await?;
        let first_parent = self.parent_hash(from).await?;
        if let Some(expected) = cursor.hash.filter(|hash| *hash != first_parent) {
            // The cursor's block was replaced since `find_reorg` looked: catch it next poll.
            return Err(ChainError::Raced {
                number: cursor.number,
                expected,
                actual: first_parent,
            });
        }
        let filter = Filter::new()
            .address(self.config.addresses.clone())
            .from_block(from)
            .to_block(to);
        let logs = self.provider.get_logs(&filter).await?;
        let end_again = self.block_hash(to).await?;
        if end_again != end {
            return Err(ChainError::Raced {
                number: to,
                expected: end,
                actual: end_again,
            });
        }

        let mut blocks: Vec<BlockLogs> = Vec::new();
        for log in logs {
            let (Some(number), Some(hash)) = (log.block_number, log.block_hash) else {
                continue;
            };
            match blocks.last_mut() {
                Some(block) if block.number == number => block.logs.push(log),
                _ => blocks.push(BlockLogs {
                    number,
                    hash,
                    logs: vec![log],
                }),
            }
        }

        let mut tx = self.db.pool().begin().await?;
        for block in &blocks {
            handler.apply(&mut tx, block).await?;
            self.remember_block(&mut tx, block.number, block.hash)
                .await?;
        }
        self.remember_block(&mut tx, to, end).await?;
        sqlx::query("DELETE FROM follower_blocks WHERE follower = $1 AND block_number < $2")
            .bind(&self.config.name)
            .bind(crate::sql_int(
                "block number",
                to.saturating_sub(self.config.keep_blocks),
            )?)
            .execute(&mut *tx)
            .await?;
        self.save_cursor(&mut tx, to, Some(end)).await?;
        tx.commit().await?;
        debug!(target: "smartmesh::follower", follower = %self.config.name, from, to, blocks = blocks.len(), "committed");
        Ok(Progress::Advanced { to })
    }

    /// The highest processed block still on the chain, when the cursor's block is not.
    async fn find_reorg(&self, cursor: Cursor) -> Result<Option<u64>, ChainError> {
        let Some(hash) = cursor.hash else {
            return Ok(None);
        };
        // A fork shorter than the cursor has no block at its height: a reorg as well.
        if self.canonical_hash(cursor.number).await? == Some(hash) {
            return Ok(None);
        }
        let remembered = sqlx::query(
            "SELECT block_number, block_hash FROM follower_blocks \
             WHERE follower = $1 AND block_number < $2 ORDER BY block_number DESC",
        )
        .bind(&self.config.name)
        .bind(crate::sql_int("block number", cursor.number)?)
        .fetch_all(self.db.pool())
        .await?;
        let mut lowest = cursor.number;
        for row in remembered {
            let number = row.try_get::<i64, _>(0)? as u64;
            let stored = hash_from_row(&row.try_get::<Vec<u8>, _>(1)?)?;
            lowest = number;
            if self.canonical_hash(number).await? == Some(stored) {
                return Ok(Some(number));
            }
        }
        // Nothing remembered matches; the start is still safe if the reorg did not reach it.
        if cursor.number.saturating_sub(self.config.keep_blocks) <= self.config.start_block {
            return Ok(Some(self.config.start_block.saturating_sub(1)));
        }
        Err(ChainError::ReorgTooDeep {
            kept: self.config.keep_blocks,
            lowest,
        })
    }

    async fn roll_back<H: LogHandler>(
        &self,
        handler: &mut H,
        fork_point: u64,
    ) -> Result<(), ChainError> {
        warn!(target: "smartmesh::follower", follower = %self.config.name, fork_point, "reorg: rolling back");
        let mut tx = self.db.pool().begin().await?;
        handler.rollback(&mut tx, fork_point).await?;
        sqlx::query("DELETE FROM follower_blocks WHERE follower = $1 AND block_number > $2")
            .bind(&self.config.name)
            .bind(crate::sql_int("fork point", fork_point)?)
            .execute(&mut *tx)
            .await?;
        let hash = sqlx::query(
            "SELECT block_hash FROM follower_blocks WHERE follower = $1 AND block_number = $2",
        )
        .bind(&self.config.name)
        .bind(crate::sql_int("fork point", fork_point)?)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| {
            row.try_get::<Vec<u8>, _>(0)
                .map_err(ChainError::from)
                .and_then(|h| hash_from_row(&h))
        })
        .transpose()?;
        self.save_cursor(&mut tx, fork_point, hash).await?;
        tx.commit().await?;
        info!(target: "smartmesh::follower", follower = %self.config.name, fork_point, "rolled back");
        Ok(())
    }

    async fn cursor(&self) -> Result<Cursor, ChainError> {
        let row =
            sqlx::query("SELECT block_number, block_hash FROM follower_cursor WHERE follower = $1")
                .bind(&self.config.name)
                .fetch_optional(self.db.pool())
                .await?;
        Ok(match row {
            Some(row) => Cursor {
                number: row.try_get::<i64, _>(0)? as u64,
                hash: row
                    .try_get::<Option<Vec<u8>>, _>(1)?
                    .map(|h| hash_from_row(&h))
                    .transpose()?,
            },
            None => Cursor {
                number: self.config.start_block.saturating_sub(1),
                hash: None,
            },
        })
    }

    async fn save_cursor(
        &self,
        conn: &mut AnyConnection,
        number: u64,
        hash: Option<B256>,
    ) -> Result<(), ChainError> {
        sqlx::query(
            "INSERT INTO follower_cursor (follower, block_number, block_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (follower) DO UPDATE SET block_number = excluded.block_number, block_hash = excluded.block_hash",
        )
        .bind(&self.config.name)
        .bind(crate::sql_int("block number", number)?)
        .bind(hash.map(|h| h.to_vec()))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn remember_block(
        &self,
        conn: &mut AnyConnection,
        number: u64,
        hash: B256,
    ) -> Result<(), ChainError> {
        sqlx::query(
            "INSERT INTO follower_blocks (follower, block_number, block_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (follower, block_number) DO UPDATE SET block_hash = excluded.block_hash",
        )
        .bind(&self.config.name)
        .bind(crate::sql_int("block number", number)?)
        .bind(hash.to_vec())
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn block_hash(&self, number: u64) -> Result<B256, ChainError> {
        let block = self
            .provider
            .get_block_by_number(number.into())
            .await?
            .ok_or(ChainError::MissingBlock(number))?;
        Ok(block.header.hash)
    }

    async fn canonical_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        Ok(self
            .provider
            .get_block_by_number(number.into())
            .await?
            .map(|block| block.header.hash))
    }

    async fn parent_hash(&self, number: u64) -> Result<B256, ChainError> {
        let block = self
            .provider
            .get_block_by_number(number.into())
            .await?
            .ok_or(ChainError::MissingBlock(number))?;
        Ok(block.header.parent_hash)
    }
}

fn hash_from_row(bytes: &[u8]) -> Result<B256, ChainError> {
    B256::try_from(bytes).map_err(|_| ChainError::StoredHash(bytes.len()))
}
