//! The transaction sender: its own nonce book in the database (alloy's cached nonce manager
//! never resynchronizes, alloy #2385), every signed transaction stored before it is broadcast,
//! receipts followed to a confirmation depth, stuck transactions replaced with fees raised by
//! more than the 10% nodes require, and everything unfinished picked up again after a restart.
//! Several signer keys share the load, so one stuck transaction does not block the rest.

use std::{future::Future, time::Duration};

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::{BlockId, Encodable2718},
    network::TxSignerSync,
    primitives::{Address, B256, Bytes, TxKind, U256},
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
};
use futures::{StreamExt, TryStreamExt};
use sqlx::{AnyConnection, Row};
use tracing::{info, warn};

use crate::{ChainError, Database};

/// Transactions simulated and broadcast at once: new ones should leave quickly.
const SEND_CONCURRENCY: usize = 16;
/// Sent transactions followed at once: enough to keep up, few enough to leave the node room
/// for new ones.
const FOLLOW_CONCURRENCY: usize = 4;

/// Settings of a [`TxSender`].
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Blocks on top of a receipt's block before the transaction counts as final.
    pub confirmations: u64,
    /// How long a broadcast transaction may wait unmined before it is replaced.
    pub stuck_after: Duration,
    /// Fee raise per replacement, in percent; must exceed the 10% nodes require.
    pub bump_percent: u64,
    /// The highest `maxFeePerGas` the sender will ever offer, in wei.
    pub max_fee_cap: u128,
    /// Below this ETH balance a signer takes no new transactions.
    pub min_balance: U256,
    /// Simulate each transaction against the pending state right before its first
    /// broadcast; one that would revert is never sent (its nonce is filled instead), so no gas
    /// is spent on a call that state changes since it was accepted have doomed.
    pub simulate_first: bool,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            confirmations: 1,
            stuck_after: Duration::from_secs(30),
            bump_percent: 15,
            max_fee_cap: 500_000_000_000,
            min_balance: U256::from(10_000_000_000_000_000u64),
            simulate_first: true,
        }
    }
}

/// A transaction to send: the sender picks the key, the nonce and the fees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRequest {
    /// The called contract or recipient.
    pub to: Address,
    /// The calldata.
    pub input: Bytes,
    /// Wei sent along.
    pub value: U256,
    /// The gas limit.
    pub gas_limit: u64,
}

/// Where a submitted transaction stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// Accepted and given a nonce; not broadcast yet.
    Queued,
    /// Broadcast as `hash` (the latest of its fee versions); not mined yet.
    Pending {
        /// The latest version's hash.
        hash: B256,
    },
    /// Mined, but with fewer confirmations than configured.
    Mined {
        /// The mined version's hash.
        hash: B256,
        /// Its block.
        block: u64,
        /// Whether it succeeded (a revert still uses its nonce).
        succeeded: bool,
    },
    /// A node refused the payload for good (for example a gas limit below the intrinsic
    /// cost); a 0-value transfer to itself took its nonce so later transactions proceed. Final.
    Failed {
        /// The node's refusal.
        reason: String,
    },
    /// Mined and confirmed: final.
    Confirmed {
        /// The mined version's hash.
        hash: B256,
        /// Its block.
        block: u64,
        /// Whether it succeeded.
        succeeded: bool,
    },
}

/// What a mined transaction cost the key that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxCost {
    /// Gas the mined version used.
    pub gas_used: u64,
    /// The price per gas it paid (base fee and tip), in wei.
    pub gas_price: U256,
    /// It was the filler of a payload refused for good (a 0-value transfer to itself that
    /// took the payload's nonce), not the payload.
    pub filler: bool,
}

impl TxCost {
    /// The wei it cost.
    pub fn wei(&self) -> U256 {
        U256::from(self.gas_used).saturating_mul(self.gas_price)
    }
}

/// A submitted transaction whose payload may still run: queued or broadcast, not mined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmined {
    /// Its id.
    pub id: i64,
    /// The key it is sent from.
    pub signer: Address,
    /// The payload.
    pub request: TxRequest,
}

/// A key picked and its nonce read for [`TxSender::submit_in`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    signer: Address,
    chain_nonce: u64,
    balance: U256,
}

impl Prepared {
    /// The key the transaction will be sent from.
    pub fn signer(&self) -> Address {
        self.signer
    }

    /// The key's ETH balance when it was picked, in wei.
    pub fn balance(&self) -> U256 {
        self.balance
    }
}

/// One signer key's state, for health reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerHealth {
    /// The key's address.
    pub address: Address,
    /// Its ETH balance, in wei.
    pub balance: U256,
    /// Its transactions not final yet.
    pub unfinished: i64,
    /// Whether it takes new transactions (its balance is at least the configured minimum).
    pub accepting: bool,
}

/// Sends transactions so that none is lost or sent twice, across restarts.
#[derive(Debug, Clone)]
pub struct TxSender {
    provider: DynProvider,
    db: Database,
    chain_id: u64,
    signers: Vec<PrivateKeySigner>,
    config: SenderConfig,
}

impl TxSender {
    /// A sender for `signers` on `provider`'s chain, keeping its book in `db`.
    pub async fn new(
        provider: DynProvider,
        db: Database,
        signers: Vec<PrivateKeySigner>,
        config: SenderConfig,
    ) -> Result<Self, ChainError> {
        if signers.is_empty() {
            return Err(ChainError::NoSigner);
        }
        let chain_id = provider.get_chain_id().await?;
        Ok(Self {
            provider,
            db,
            chain_id,
            signers,
            config,
        })
    }

    /// Accepts a transaction: gives it a key and a nonce for good, in one database
    /// transaction, and returns its id. Broadcasting happens in [`TxSender::tick`].
    pub async fn submit(&self, request: &TxRequest) -> Result<i64, ChainError> {
        let prepared = self.prepare(None).await?;
        let mut tx = self.db.pool().begin().await?;
        let id = self.submit_in(&mut tx, request, &prepared).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Picks the key for a transaction and reads its nonce on chain: the node round trips of
    /// [`TxSender::submit_in`], done before the caller opens its database transaction so that
    /// no transaction stays open across them. `from` picks the key (a contract may accept
    /// only one sender); `None` takes the least loaded key with enough ETH.
    pub async fn prepare(&self, from: Option<Address>) -> Result<Prepared, ChainError> {
        let mut conn = self.db.pool().acquire().await?;
        self.prepare_in(&mut conn, from).await
    }

    /// Like [`TxSender::prepare`], on the caller's connection.
    pub async fn prepare_in(
        &self,
        conn: &mut AnyConnection,
        from: Option<Address>,
    ) -> Result<Prepared, ChainError> {
        let (signer, balance) = match from {
            Some(address) => {
                if !self
                    .signers
                    .iter()
                    .any(|signer| signer.address() == address)
                {
                    return Err(ChainError::MissingSignerKey(address));
                }
                let balance = self.provider.get_balance(address).await?;
                if balance < self.config.min_balance {
                    return Err(ChainError::LowBalance {
                        min: self.config.min_balance,
                    });
                }
                (address, balance)
            }
            None => self.pick_signer(conn).await?,
        };
        let chain_nonce = self
            .provider
            .get_transaction_count(signer)
            .pending()
            .await?;
        Ok(Prepared {
            signer,
            chain_nonce,
            balance,
        })
    }

    /// Queues a transaction with its key and nonce inside the caller's database transaction,
    /// so the caller's own record of it commits (or rolls back) together with it: a crash can
    /// neither lose the transaction nor queue it twice. Database work only.
    pub async fn submit_in(
        &self,
        conn: &mut AnyConnection,
        request: &TxRequest,
        prepared: &Prepared,
    ) -> Result<i64, ChainError> {
        let Prepared {
            signer,
            chain_nonce,
            ..
        } = *prepared;
        // One statement takes the next nonce: the book's, unless the key was used elsewhere
        // and the chain is ahead. Callers sharing the key (concurrent requests, replicas) take
        // turns on the book's row, locked from here until the caller commits.
        let next: i64 = sqlx::query_scalar(
            "INSERT INTO sender_nonces (signer, next_nonce) VALUES ($1, $2 + 1) \
             ON CONFLICT (signer) DO UPDATE SET next_nonce = CASE \
             WHEN sender_nonces.next_nonce > $2 THEN sender_nonces.next_nonce + 1 ELSE $2 + 1 END \
             RETURNING next_nonce",
        )
        .bind(signer.to_string())
        .bind(crate::sql_int("nonce", chain_nonce)?)
        .fetch_one(&mut *conn)
        .await?;
        let nonce = (next - 1) as u64;
        let id: i64 = sqlx::query(
            "INSERT INTO sender_transactions (signer, nonce, to_address, input, value, gas_limit, status) \
             VALUES ($1, $2, $3, $4, $5, $6, 'queued') RETURNING id",
        )
        .bind(signer.to_string())
        .bind(crate::sql_int("nonce", nonce)?)
        .bind(request.to.to_string())
        .bind(request.input.to_vec())
        .bind(request.value.to_string())
        .bind(crate::sql_int("gas limit", request.gas_limit)?)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        info!(target: "smartmesh::sender", id, %signer, nonce, to = %request.to, "queued");
        Ok(id)
    }

    /// Makes the next [`TxSender::tick`] replace transaction `id`'s latest version at once,
    /// with raised fees, instead of waiting `stuck_after`: for a deadline coming near.
    pub async fn hurry(&self, conn: &mut AnyConnection, id: i64) -> Result<(), ChainError> {
        sqlx::query("UPDATE sender_attempts SET sent_at = 0 WHERE transaction_id = $1")
            .bind(id)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Every key's balance and load; sending is paused when no key is `accepting`.
    pub async fn health(&self) -> Result<Vec<SignerHealth>, ChainError> {
        let mut conn = self.db.pool().acquire().await?;
        self.health_in(&mut conn).await
    }

    async fn health_in(&self, conn: &mut AnyConnection) -> Result<Vec<SignerHealth>, ChainError> {
        let mut health = Vec::with_capacity(self.signers.len());
        for signer in &self.signers {
            health.push(self.key_health_in(conn, signer.address()).await?);
        }
        Ok(health)
    }

    /// One key's balance and load.
    pub async fn key_health(&self, address: Address) -> Result<SignerHealth, ChainError> {
        let mut conn = self.db.pool().acquire().await?;
        self.key_health_in(&mut conn, address).await
    }

    async fn key_health_in(
        &self,
        conn: &mut AnyConnection,
        address: Address,
    ) -> Result<SignerHealth, ChainError> {
        if !self
            .signers
            .iter()
            .any(|signer| signer.address() == address)
        {
            return Err(ChainError::MissingSignerKey(address));
        }
        let balance = self.provider.get_balance(address).await?;
        Ok(SignerHealth {
            address,
            balance,
            unfinished: unfinished_count(conn, address).await?,
            accepting: balance >= self.config.min_balance,
        })
    }

    /// For each key, how long (seconds) its oldest transaction broadcast and not mined yet
    /// has waited since its first broadcast; 0 when none waits.
    pub async fn stuck(&self) -> Result<Vec<(Address, u64)>, ChainError> {
        let rows = sqlx::query(
            "SELECT t.signer, MIN(a.sent_at) FROM sender_transactions t \
             JOIN sender_attempts a ON a.transaction_id = t.id WHERE t.status = 'pending' GROUP BY t.signer",
        )
        .fetch_all(self.db.pool())
        .await?;
        let now = now_seconds();
        let mut waiting = std::collections::HashMap::new();
        for row in rows {
            let signer: String = row.try_get(0)?;
            let since: i64 = row.try_get(1)?;
            waiting.insert(
                signer,
                now.saturating_sub(u64::try_from(since).unwrap_or(now)),
            );
        }
        Ok(self
            .signers
            .iter()
            .map(|signer| {
                let address = signer.address();
                (
                    address,
                    waiting.get(&address.to_string()).copied().unwrap_or(0),
                )
            })
            .collect())
    }

    /// What transaction `id` cost its key, once mined (`None` before).
    pub async fn cost(&self, id: i64) -> Result<Option<TxCost>, ChainError> {
        let row = sqlx::query(
            "SELECT gas_used, gas_price, failure FROM sender_transactions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(ChainError::UnknownTransaction(id))?;
        let (Some(gas_used), Some(gas_price)) = (
            row.try_get::<Option<i64>, _>(0)?,
            row.try_get::<Option<String>, _>(1)?,
        ) else {
            return Ok(None);
        };
        Ok(Some(TxCost {
            gas_used: u64::try_from(gas_used).map_err(|_| ChainError::Stored {
                field: "gas_used",
                value: gas_used.to_string(),
            })?,
            gas_price: gas_price.parse().map_err(|_| ChainError::Stored {
                field: "gas_price",
                value: gas_price.clone(),
            })?,
            filler: row.try_get::<Option<String>, _>(2)?.is_some(),
        }))
    }

    /// Of the transactions `ids`, those whose payload may still run (queued or broadcast, not
    /// mined, not refused), in nonce order per key.
    pub async fn unmined(&self, ids: &[i64]) -> Result<Vec<Unmined>, ChainError> {
        let mut unmined = Vec::new();
        for part in ids.chunks(500) {
            let placeholders = (1..=part.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let query = format!(
                "SELECT id, signer, nonce, to_address, input, value, gas_limit, failure, status FROM sender_transactions \
                 WHERE status IN ('queued', 'pending') AND failure IS NULL AND id IN ({placeholders}) ORDER BY signer, nonce"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(query));
            for id in part {
                query = query.bind(*id);
            }
            for row in query.fetch_all(self.db.pool()).await? {
                let found = Unfinished::from_row(&row)?;
                unmined.push(Unmined {
                    id: found.id,
                    signer: found.signer,
                    request: found.request,
                });
            }
        }
        Ok(unmined)
    }

    /// Where transaction `id` stands.
    pub async fn status(&self, id: i64) -> Result<TxStatus, ChainError> {
        let mut conn = self.db.pool().acquire().await?;
        self.status_in(&mut conn, id).await
    }

    /// Like [`TxSender::status`], on the caller's connection (inside its transaction).
    pub async fn status_in(
        &self,
        conn: &mut AnyConnection,
        id: i64,
    ) -> Result<TxStatus, ChainError> {
        let row = sqlx::query(
            "SELECT status, mined_hash, mined_block, succeeded, failure FROM sender_transactions WHERE id = $1",
        )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(ChainError::UnknownTransaction(id))?;
        let status: String = row.try_get(0)?;
        let mined = || -> Result<(B256, u64, bool), ChainError> {
            let hash = row.try_get::<Option<Vec<u8>>, _>(1)?.unwrap_or_default();
            Ok((
                B256::try_from(hash.as_slice()).map_err(|_| ChainError::StoredHash(hash.len()))?,
                row.try_get::<Option<i64>, _>(2)?.unwrap_or_default() as u64,
                row.try_get::<Option<i64>, _>(3)? == Some(1),
            ))
        };
        Ok(match status.as_str() {
            "queued" => TxStatus::Queued,
            "failed" => TxStatus::Failed {
                reason: row.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
            },
            "mined" => {
                let (hash, block, succeeded) = mined()?;
                TxStatus::Mined {
                    hash,
                    block,
                    succeeded,
                }
            }
            "confirmed" => {
                let (hash, block, succeeded) = mined()?;
                TxStatus::Confirmed {
                    hash,
                    block,
                    succeeded,
                }
            }
            _ => TxStatus::Pending {
                hash: attempts(conn, id)
                    .await?
                    .pop()
                    .map(|a| a.hash)
                    .unwrap_or_default(),
            },
        })
    }

    /// One pass over every unfinished transaction: [`TxSender::send_queued`], then
    /// [`TxSender::follow`].
    pub async fn tick(&self) -> Result<(), ChainError> {
        self.send_queued().await?;
        self.follow().await
    }

    /// Sends every transaction never sent: simulated, signed, stored together, broadcast.
    /// Cheap when nothing is queued, so a service can call it as soon as it queues one.
    pub async fn send_queued(&self) -> Result<(), ChainError> {
        let fresh = self
            .unfinished("status = 'queued' AND failure IS NULL")
            .await?;
        if fresh.is_empty() {
            return Ok(());
        }
        let (max_fee, priority) = self.current_fees().await?;
        self.send_fresh(fresh, max_fee, priority).await
    }

    /// Follows every sent transaction, several at a time: receipts recorded to the
    /// confirmation depth, dropped ones rebroadcast, stuck ones replaced with higher fees.
    pub async fn follow(&self) -> Result<(), ChainError> {
        let head = self.provider.get_block_number().await?;
        for signer in &self.signers {
            self.reconcile(signer.address(), head).await?;
        }
        let followed = self
            .unfinished("status NOT IN ('confirmed', 'failed') AND NOT (status = 'queued' AND failure IS NULL)")
            .await?;
        if followed.is_empty() {
            return Ok(());
        }
        // Fees are read once per round, not once per transaction.
        let fees = tokio::sync::OnceCell::new();
        let results: Vec<Result<(), ChainError>> = futures::stream::iter(followed)
            .map(|unfinished| {
                let fees = &fees;
                async move { self.advance(&unfinished, head, fees).await }
            })
            .buffer_unordered(FOLLOW_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Brings `signer`'s book in line with the chain's count of its transactions at `head`,
    /// whatever the depth of what it finds (a reorg deeper than the confirmations, a node
    /// that did not re-inject what a reorg dropped, the key used elsewhere):
    /// - a transaction recorded as mined (confirmed, or a filler) at a nonce the chain has not
    ///   used is pending again, and its stored bytes are broadcast again;
    /// - a transaction never mined whose nonce the chain used for something else is signed
    ///   again at a new nonce (a filler is dropped: its nonce is used);
    /// - a nonce the book gave out that no transaction of ours holds any more is filled.
    async fn reconcile(&self, signer: Address, head: u64) -> Result<(), ChainError> {
        let count = self
            .provider
            .get_transaction_count(signer)
            .block_id(head.into())
            .await?;
        let count_sql = i64::try_from(count).unwrap_or(i64::MAX);
        let undone = sqlx::query(
            "UPDATE sender_transactions SET status = 'pending', mined_hash = NULL, mined_block = NULL, \
             succeeded = NULL, gas_used = NULL, gas_price = NULL \
             WHERE signer = $1 AND nonce >= $2 AND status IN ('mined', 'confirmed', 'failed') \
             AND mined_block IS NOT NULL AND mined_block <= $3",
        )
        .bind(signer.to_string())
        .bind(count_sql)
        .bind(crate::sql_int("block number", head)?)
        .execute(self.db.pool())
        .await?
        .rows_affected();
        if undone > 0 {
            warn!(target: "smartmesh::sender", %signer, undone, chain_nonce = count, "transactions recorded as mined are not on chain any more: sending them again");
        }

        let taken = sqlx::query(
            "SELECT id, nonce, failure FROM sender_transactions WHERE signer = $1 AND nonce < $2 \
             AND status IN ('queued', 'pending')",
        )
        .bind(signer.to_string())
        .bind(count_sql)
        .fetch_all(self.db.pool())
        .await?;
        for row in taken {
            let id: i64 = row.try_get(0)?;
            let nonce: i64 = row.try_get(1)?;
            let failure: Option<String> = row.try_get(2)?;
            // Only a payload the node knows nothing of was displaced: one of its versions mined
            // (not recorded yet: `advance` does it) or still known to the node is left alone,
            // however the counts read a moment ago look.
            let mut known = false;
            for attempt in self.attempts(id).await? {
                if self
                    .provider
                    .get_transaction_receipt(attempt.hash)
                    .await?
                    .is_some()
                    || self
                        .provider
                        .get_transaction_by_hash(attempt.hash)
                        .await?
                        .is_some()
                {
                    known = true;
                    break;
                }
            }
            if known {
                continue;
            }
            let mut tx = self.db.pool().begin().await?;
            if failure.is_some() {
                // A filler whose nonce is used already has nothing left to do.
                sqlx::query("UPDATE sender_transactions SET status = 'failed' WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            } else {
                let next: i64 = sqlx::query_scalar(
                    "INSERT INTO sender_nonces (signer, next_nonce) VALUES ($1, $2 + 1) \
                     ON CONFLICT (signer) DO UPDATE SET next_nonce = CASE \
                     WHEN sender_nonces.next_nonce > $2 THEN sender_nonces.next_nonce + 1 ELSE $2 + 1 END \
                     RETURNING next_nonce",
                )
                .bind(signer.to_string())
                .bind(count_sql)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM sender_attempts WHERE transaction_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE sender_transactions SET nonce = $1, status = 'queued' WHERE id = $2",
                )
                .bind(next - 1)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                warn!(target: "smartmesh::sender", id, %signer, old_nonce = nonce, new_nonce = next - 1, "its nonce was used by another transaction: signed again at a new one");
            }
            tx.commit().await?;
        }

        // Nonces the book gave out at or above the chain's count that nothing holds: fill them,
        // or every later transaction of the key waits behind the gap.
        let next: Option<i64> =
            sqlx::query_scalar("SELECT next_nonce FROM sender_nonces WHERE signer = $1")
                .bind(signer.to_string())
                .fetch_optional(self.db.pool())
                .await?;
        let Some(next) = next.filter(|next| *next > count_sql) else {
            return Ok(());
        };
        let held: std::collections::HashSet<i64> = sqlx::query_scalar(
            "SELECT nonce FROM sender_transactions WHERE signer = $1 AND nonce >= $2",
        )
        .bind(signer.to_string())
        .bind(count_sql)
        .fetch_all(self.db.pool())
        .await?
        .into_iter()
        .collect();
        for nonce in (count_sql..next).filter(|nonce| !held.contains(nonce)) {
            sqlx::query(
                "INSERT INTO sender_transactions (signer, nonce, to_address, input, value, gas_limit, status, failure) \
                 VALUES ($1, $2, $1, $3, '0', 21000, 'queued', $4) ON CONFLICT (signer, nonce) DO NOTHING",
            )
            .bind(signer.to_string())
            .bind(nonce)
            .bind(Vec::<u8>::new())
            .bind("a nonce the book gave out that the chain does not hold: filled")
            .execute(self.db.pool())
            .await?;
            warn!(target: "smartmesh::sender", %signer, nonce, "filling a nonce gap");
        }
        Ok(())
    }

    async fn unfinished(&self, condition: &'static str) -> Result<Vec<Unfinished>, ChainError> {
        let query = format!(
            "SELECT id, signer, nonce, to_address, input, value, gas_limit, failure, status FROM sender_transactions \
             WHERE {condition} ORDER BY signer, nonce"
        );
        sqlx::query(sqlx::AssertSqlSafe(query))
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(Unfinished::from_row)
            .collect()
    }

    /// Sends transactions never sent before: each simulated (those that would revert are
    /// refused and their nonces filled), the rest signed and stored in one database
    /// transaction, then broadcast together.
    async fn send_fresh(
        &self,
        fresh: Vec<Unfinished>,
        max_fee: u128,
        priority: u128,
    ) -> Result<(), ChainError> {
        let simulated: Vec<(Unfinished, Option<String>)> = futures::stream::iter(fresh)
            .map(|unfinished| async move {
                let revert = if self.config.simulate_first {
                    self.simulate(&unfinished).await?
                } else {
                    None
                };
                Ok::<_, ChainError>((unfinished, revert))
            })
            .buffered(SEND_CONCURRENCY)
            .try_collect()
            .await?;
        let mut signed = Vec::new();
        let mut deferred: Vec<Address> = Vec::new();
        for (unfinished, revert) in simulated {
            if deferred.contains(&unfinished.signer) {
                continue;
            }
            match revert {
                // The simulation ran on a state without the key's earlier transactions still
                // on their way (dropped, or not yet rebroadcast after a restart): judge it
                // again once they are mined, and keep the key's later ones in order behind it.
                Some(revert) if self.earlier_unfinished(&unfinished).await? => {
                    info!(target: "smartmesh::sender", id = unfinished.id, nonce = unfinished.nonce, %revert, "would revert now; waiting for the key's earlier transactions");
                    deferred.push(unfinished.signer);
                }
                Some(revert) => {
                    warn!(target: "smartmesh::sender", id = unfinished.id, nonce = unfinished.nonce, %revert, "would revert: not sent, filling its nonce");
                    self.refuse(&unfinished, revert, max_fee, priority).await?;
                }
                None => {
                    let (hash, raw) =
                        self.sign(&unfinished, &unfinished.request, max_fee, priority)?;
                    signed.push((unfinished, hash, raw));
                }
            }
        }
        if signed.is_empty() {
            return Ok(());
        }
        // Stored first: a crash after this commit rebroadcasts the very same bytes.
        let mut tx = self.db.pool().begin().await?;
        for (unfinished, hash, raw) in &signed {
            record_attempt(&mut tx, unfinished.id, *hash, raw, max_fee, priority).await?;
            sqlx::query("UPDATE sender_transactions SET status = 'pending' WHERE id = $1")
                .bind(unfinished.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        crate::crash_point("sender.signed");
        let refusals: Vec<(Unfinished, Option<String>)> = futures::stream::iter(signed)
            .map(|(unfinished, hash, raw)| async move {
                info!(target: "smartmesh::sender", id = unfinished.id, nonce = unfinished.nonce, %hash, max_fee, "broadcasting");
                let refusal = self.broadcast(&raw).await;
                (unfinished, refusal)
            })
            .buffered(SEND_CONCURRENCY)
            .collect()
            .await;
        crate::crash_point("sender.broadcast");
        let bump = |fee: u128| fee + fee * u128::from(self.config.bump_percent) / 100 + 1;
        for (unfinished, refusal) in refusals {
            if let Some(refusal) = refusal.filter(|refusal| is_permanent(refusal)) {
                warn!(target: "smartmesh::sender", id = unfinished.id, nonce = unfinished.nonce, %refusal, "refused for good: filling its nonce");
                self.refuse(&unfinished, refusal, bump(max_fee), bump(priority))
                    .await?;
            }
        }
        Ok(())
    }

    /// Ticks until `shutdown` resolves; RPC failures are logged and retried.
    pub async fn run(
        self,
        interval: Duration,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ChainError> {
        tokio::pin!(shutdown);
        loop {
            match self.tick().await {
                Ok(()) => {}
                Err(ChainError::Rpc(e)) => {
                    warn!(target: "smartmesh::sender", error = %e, "rpc failed; retrying")
                }
                Err(e) => return Err(e),
            }
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    async fn advance(
        &self,
        unfinished: &Unfinished,
        head: u64,
        fees: &tokio::sync::OnceCell<(u128, u128)>,
    ) -> Result<(), ChainError> {
        let current_fees = || fees.get_or_try_init(|| self.current_fees());
        let attempts = self.attempts(unfinished.id).await?;
        for attempt in &attempts {
            if let Some(receipt) = self.provider.get_transaction_receipt(attempt.hash).await? {
                let block = receipt.block_number.unwrap_or(head);
                let confirmations = head.saturating_sub(block) + 1;
                let status = match (
                    confirmations >= self.config.confirmations,
                    &unfinished.failure,
                ) {
                    (false, _) => "mined",
                    (true, None) => "confirmed",
                    (true, Some(_)) => "failed",
                };
                let gas_used = i64::try_from(receipt.gas_used).map_err(|_| ChainError::Stored {
                    field: "gas_used",
                    value: receipt.gas_used.to_string(),
                })?;
                sqlx::query(
                    "UPDATE sender_transactions SET status = $1, mined_hash = $2, mined_block = $3, succeeded = $4, \
                     gas_used = $5, gas_price = $6 WHERE id = $7",
                )
                .bind(status)
                .bind(attempt.hash.to_vec())
                .bind(crate::sql_int("block number", block)?)
                .bind(i64::from(receipt.status()))
                .bind(gas_used)
                .bind(receipt.effective_gas_price.to_string())
                .bind(unfinished.id)
                .execute(self.db.pool())
                .await?;
                return Ok(());
            }
        }
        if unfinished.mined {
            // Its receipt is gone: a reorg took the block. Back to pending; rebroadcast below.
            warn!(target: "smartmesh::sender", id = unfinished.id, "mined transaction reorged out");
            sqlx::query(
                "UPDATE sender_transactions SET status = 'pending', mined_hash = NULL, mined_block = NULL, \
                 gas_used = NULL, gas_price = NULL WHERE id = $1",
            )
            .bind(unfinished.id)
            .execute(self.db.pool())
            .await?;
        }
        let Some(latest) = attempts.last() else {
            let (max_fee, priority) = *current_fees().await?;
            if self.config.simulate_first
                && unfinished.failure.is_none()
                && let Some(revert) = self.simulate(unfinished).await?
            {
                warn!(target: "smartmesh::sender", id = unfinished.id, nonce = unfinished.nonce, %revert, "would revert: not sent, filling its nonce");
                return self.refuse(unfinished, revert, max_fee, priority).await;
            }
            return self
                .sign_store_broadcast(unfinished, max_fee, priority)
                .await;
        };
        let waited = now_seconds().saturating_sub(latest.sent_at);
        if waited >= self.config.stuck_after.as_secs() {
            let (current_max, current_priority) = *current_fees().await?;
            let bump = |fee: u128| fee + fee * u128::from(self.config.bump_percent) / 100 + 1;
            let priority = bump(latest.priority_fee).max(current_priority);
            let max_fee = bump(latest.max_fee).max(current_max).max(priority);
            if max_fee <= self.config.max_fee_cap {
                warn!(target: "smartmesh::sender", id = unfinished.id, nonce = unfinished.nonce, max_fee, "stuck: replacing");
                return self
                    .sign_store_broadcast(unfinished, max_fee, priority)
                    .await;
            }
            warn!(target: "smartmesh::sender", id = unfinished.id, max_fee, cap = self.config.max_fee_cap, "stuck at the fee cap");
        }
        // Not yet stuck, or capped: make sure a node still has it (a dropped transaction is
        // simply sent again; a node answers "already known" otherwise).
        if self
            .provider
            .get_transaction_by_hash(latest.hash)
            .await?
            .is_none()
        {
            warn!(target: "smartmesh::sender", id = unfinished.id, hash = %latest.hash, "dropped: rebroadcasting");
            let _ = self.broadcast(&latest.raw).await;
        }
        Ok(())
    }

    async fn sign_store_broadcast(
        &self,
        unfinished: &Unfinished,
        max_fee: u128,
        priority: u128,
    ) -> Result<(), ChainError> {
        // A payload refused for good is replaced by a filler that only uses up its nonce.
        let filler;
        let request = if unfinished.failure.is_some() {
            filler = TxRequest {
                to: unfinished.signer,
                input: Bytes::new(),
                value: U256::ZERO,
                gas_limit: 21_000,
            };
            &filler
        } else {
            &unfinished.request
        };
        let (hash, raw) = self.sign(unfinished, request, max_fee, priority)?;

        // Stored first: a crash after this line rebroadcasts the very same bytes.
        let mut tx = self.db.pool().begin().await?;
        record_attempt(&mut tx, unfinished.id, hash, &raw, max_fee, priority).await?;
        sqlx::query("UPDATE sender_transactions SET status = 'pending' WHERE id = $1")
            .bind(unfinished.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        crate::crash_point("sender.signed");
        info!(target: "smartmesh::sender", id = unfinished.id, nonce = unfinished.nonce, %hash, max_fee, "broadcasting");
        let refused = self.broadcast(&raw).await;
        crate::crash_point("sender.broadcast");
        match refused {
            Some(refusal) if unfinished.failure.is_none() && is_permanent(&refusal) => {
                warn!(target: "smartmesh::sender", id = unfinished.id, nonce = unfinished.nonce, %refusal, "refused for good: filling its nonce");
                let bump = |fee: u128| fee + fee * u128::from(self.config.bump_percent) / 100 + 1;
                Box::pin(self.refuse(unfinished, refusal, bump(max_fee), bump(priority))).await
            }
            _ => Ok(()),
        }
    }

    /// Signs `request` at `unfinished`'s nonce with its key; the hash and the raw bytes.
    fn sign(
        &self,
        unfinished: &Unfinished,
        request: &TxRequest,
        max_fee: u128,
        priority: u128,
    ) -> Result<(B256, Vec<u8>), ChainError> {
        let signer = self
            .signers
            .iter()
            .find(|signer| signer.address() == unfinished.signer)
            .ok_or(ChainError::MissingSignerKey(unfinished.signer))?;
        let mut transaction = TxEip1559 {
            chain_id: self.chain_id,
            nonce: unfinished.nonce,
            gas_limit: request.gas_limit,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: priority,
            to: TxKind::Call(request.to),
            value: request.value,
            access_list: Default::default(),
            input: request.input.clone(),
        };
        let signature = signer
            .sign_transaction_sync(&mut transaction)
            .map_err(|e| ChainError::Signing(e.to_string()))?;
        let envelope = TxEnvelope::from(transaction.into_signed(signature));
        Ok((*envelope.tx_hash(), envelope.encoded_2718()))
    }

    /// Whether the key has transactions below this one's nonce that are not mined yet.
    async fn earlier_unfinished(&self, unfinished: &Unfinished) -> Result<bool, ChainError> {
        let earlier: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sender_transactions WHERE signer = $1 AND nonce < $2 \
             AND status NOT IN ('mined', 'confirmed', 'failed')",
        )
        .bind(unfinished.signer.to_string())
        .bind(crate::sql_int("nonce", unfinished.nonce)?)
        .fetch_one(self.db.pool())
        .await?;
        Ok(earlier > 0)
    }

    /// Records why the payload will never be sent and sends a filler for its nonce instead.
    async fn refuse(
        &self,
        unfinished: &Unfinished,
        reason: String,
        max_fee: u128,
        priority: u128,
    ) -> Result<(), ChainError> {
        sqlx::query("UPDATE sender_transactions SET failure = $1 WHERE id = $2")
            .bind(&reason)
            .bind(unfinished.id)
            .execute(self.db.pool())
            .await?;
        let failed = Unfinished {
            failure: Some(reason),
            request: unfinished.request.clone(),
            mined: false,
            ..*unfinished
        };
        self.sign_store_broadcast(&failed, max_fee, priority).await
    }

    /// `Some(reason)` when the payload would revert against the pending state.
    async fn simulate(&self, unfinished: &Unfinished) -> Result<Option<String>, ChainError> {
        let call = alloy::rpc::types::TransactionRequest::default()
            .from(unfinished.signer)
            .to(unfinished.request.to)
            .input(unfinished.request.input.clone().into())
            .value(unfinished.request.value)
            .gas_limit(unfinished.request.gas_limit);
        match self.provider.call(call).block(BlockId::pending()).await {
            Ok(_) => Ok(None),
            // Any other failure says nothing about the payload: retried at the next tick.
            Err(error) => match crate::revert_reason(&error) {
                Some(reason) => Ok(Some(format!(
                    "failed in simulation before broadcast: {reason}"
                ))),
                None => Err(error.into()),
            },
        }
    }

    /// Sends raw bytes; refusals are expected ("already known", a replaced version mined)
    /// and the next tick decides from receipts, so they are only logged.
    async fn broadcast(&self, raw: &[u8]) -> Option<String> {
        match self.provider.send_raw_transaction(raw).await {
            Ok(_) => None,
            Err(e) => {
                warn!(target: "smartmesh::sender", error = %e, "broadcast refused");
                Some(e.to_string())
            }
        }
    }

    /// The `(maxFeePerGas, maxPriorityFeePerGas)` a new transaction is sent with now: twice
    /// the latest base fee plus the suggested tip, within the configured cap.
    pub async fn current_fees(&self) -> Result<(u128, u128), ChainError> {
        let block = self
            .provider
            .get_block_by_number(Default::default())
            .await?
            .ok_or(ChainError::MissingBlock(0))?;
        let base = u128::from(block.header.base_fee_per_gas.unwrap_or(1_000_000_000));
        let priority = self
            .provider
            .get_max_priority_fee_per_gas()
            .await
            .unwrap_or(1_000_000_000);
        Ok(((2 * base + priority).min(self.config.max_fee_cap), priority))
    }

    /// The key with the fewest unfinished transactions among those with enough ETH, and its
    /// balance.
    async fn pick_signer(&self, conn: &mut AnyConnection) -> Result<(Address, U256), ChainError> {
        self.health_in(conn)
            .await?
            .into_iter()
            .filter(|signer| signer.accepting)
            .min_by_key(|signer| signer.unfinished)
            .map(|signer| (signer.address, signer.balance))
            .ok_or(ChainError::LowBalance {
                min: self.config.min_balance,
            })
    }

    async fn attempts(&self, id: i64) -> Result<Vec<Attempt>, ChainError> {
        let mut conn = self.db.pool().acquire().await?;
        attempts(&mut conn, id).await
    }
}

async fn unfinished_count(conn: &mut AnyConnection, signer: Address) -> Result<i64, ChainError> {
    Ok(sqlx::query(
        "SELECT COUNT(*) FROM sender_transactions WHERE signer = $1 AND status NOT IN ('confirmed', 'failed')",
    )
    .bind(signer.to_string())
    .fetch_one(conn)
    .await?
    .try_get(0)?)
}

async fn attempts(conn: &mut AnyConnection, id: i64) -> Result<Vec<Attempt>, ChainError> {
    let rows = sqlx::query(
        "SELECT tx_hash, raw, max_fee_per_gas, max_priority_fee_per_gas, sent_at FROM sender_attempts \
         WHERE transaction_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(Attempt::from_row).collect()
}

struct Unfinished {
    id: i64,
    signer: Address,
    nonce: u64,
    request: TxRequest,
    failure: Option<String>,
    mined: bool,
}

impl Unfinished {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Self, ChainError> {
        let parse = |field: &'static str, text: String| ChainError::Stored { field, value: text };
        let signer: String = row.try_get(1)?;
        let to: String = row.try_get(3)?;
        let value: String = row.try_get(5)?;
        Ok(Self {
            id: row.try_get(0)?,
            signer: signer
                .parse()
                .map_err(|_| parse("signer", signer.clone()))?,
            nonce: row.try_get::<i64, _>(2)? as u64,
            request: TxRequest {
                to: to.parse().map_err(|_| parse("to_address", to.clone()))?,
                input: Bytes::from(row.try_get::<Vec<u8>, _>(4)?),
                value: value.parse().map_err(|_| parse("value", value.clone()))?,
                gas_limit: row.try_get::<i64, _>(6)? as u64,
            },
            failure: row.try_get(7)?,
            mined: row.try_get::<String, _>(8)? == "mined",
        })
    }
}

struct Attempt {
    hash: B256,
    raw: Vec<u8>,
    max_fee: u128,
    priority_fee: u128,
    sent_at: u64,
}

impl Attempt {
    fn from_row(row: &sqlx::any::AnyRow) -> Result<Self, ChainError> {
        let hash: Vec<u8> = row.try_get(0)?;
        let fee = |index: usize, field: &'static str| -> Result<u128, ChainError> {
            let text: String = row.try_get(index)?;
            text.parse()
                .map_err(|_| ChainError::Stored { field, value: text })
        };
        Ok(Self {
            hash: B256::try_from(hash.as_slice())
                .map_err(|_| ChainError::StoredHash(hash.len()))?,
            raw: row.try_get(1)?,
            max_fee: fee(2, "max_fee_per_gas")?,
            priority_fee: fee(3, "max_priority_fee_per_gas")?,
            sent_at: row.try_get::<i64, _>(4)? as u64,
        })
    }
}

async fn record_attempt(
    conn: &mut AnyConnection,
    id: i64,
    hash: B256,
    raw: &[u8],
    max_fee: u128,
    priority: u128,
) -> Result<(), ChainError> {
    sqlx::query(
        "INSERT INTO sender_attempts (transaction_id, tx_hash, raw, max_fee_per_gas, max_priority_fee_per_gas, sent_at, sent_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(hash.to_vec())
    .bind(raw.to_vec())
    .bind(max_fee.to_string())
    .bind(priority.to_string())
    .bind(crate::sql_int("seconds", now_seconds())?)
    .bind(crate::unix_millis())
    .execute(conn)
    .await?;
    Ok(())
}

fn now_seconds() -> u64 {
    (crate::unix_millis() / 1_000) as u64
}

/// Whether a node's refusal means the payload can never be included, whatever the fees: the
/// nonce must then be filled or every later transaction of the key waits forever.
fn is_permanent(refusal: &str) -> bool {
    let refusal = refusal.to_ascii_lowercase();
    [
        "intrinsic gas too low",
        "exceeds block gas limit",
        "gas limit too high",
        "oversized data",
        "max initcode size",
    ]
    .iter()
    .any(|pattern| refusal.contains(pattern))
}
