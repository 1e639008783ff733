//! The chain indexer: TokenNetwork events into channel rows, inside the log follower's
//! transaction, so the rows always match the blocks the follower has committed. Rows are
//! derived from the stored events; a reorg deletes the orphaned events and derives again.

use alloy::{
    primitives::{Address, B256, Log as PrimitiveLog, LogData, U256},
    sol_types::SolEventInterface,
};
use smartmesh_chain::{BlockLogs, ChainError, LogHandler};
use std::collections::HashMap;

use smartmesh_protocol::TokenNetwork::TokenNetworkEvents;
use sqlx::{AnyConnection, Row, any::AnyRow};
use tracing::debug;

use crate::{SettlementError, sql};

/// A channel's life cycle as the watcher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelPhase {
    /// Open: deposits, withdrawals, payments.
    Open,
    /// Closed: in its hold period until `settle_at`.
    Closed,
    /// Settled, after the hold period or cooperatively: nothing left to guard.
    Settled,
}

impl ChannelPhase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Settled => "settled",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            "settled" => Some(Self::Settled),
            _ => None,
        }
    }
}

/// A channel as its on-chain events left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    /// The channel id.
    pub channel_id: B256,
    /// The lower participant address.
    pub participant1: Address,
    /// The higher participant address.
    pub participant2: Address,
    /// The pair's channel count when this one opened.
    pub epoch: u64,
    /// The hold period in seconds.
    pub settle_timeout: u64,
    /// Open, closed or settled.
    pub phase: ChannelPhase,
    /// Participant 1's total deposit.
    pub deposit1: U256,
    /// Participant 2's total deposit.
    pub deposit2: U256,
    /// Participant 1's total withdrawal.
    pub withdrawn1: U256,
    /// Participant 2's total withdrawal.
    pub withdrawn2: U256,
    /// Who closed it.
    pub closer: Option<Address>,
    /// What the closer declared it paid.
    pub claim_transferred: Option<U256>,
    /// What the closer's partner proof says it received.
    pub closer_received: Option<U256>,
    /// The end of the hold period.
    pub settle_at: Option<u64>,
    /// The block of the close.
    pub closed_block: Option<u64>,
    /// Whether a dispute proved the closer under-declared.
    pub penalized: bool,
    /// The block of the last event.
    pub updated_block: u64,
    /// What the settlement paid participant 1 and participant 2, once settled.
    pub payouts: Option<(U256, U256)>,
}

/// The [`LogHandler`] that keeps the `channels` table.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChannelIndexer;

impl LogHandler for ChannelIndexer {
    async fn apply(
        &mut self,
        conn: &mut AnyConnection,
        block: &BlockLogs,
    ) -> Result<(), ChainError> {
        let mut touched = Vec::new();
        for log in &block.logs {
            let Some(channel_id) = log.topics().get(1).copied() else {
                continue;
            };
            let Ok(_) = TokenNetworkEvents::decode_raw_log(log.topics(), &log.data().data) else {
                continue;
            };
            sqlx::query(
                "INSERT INTO channel_events (block_number, log_index, channel_id, topics, data) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(smartmesh_chain::sql_int("block number", block.number)?)
            .bind(smartmesh_chain::sql_int(
                "log index",
                log.log_index.unwrap_or_default(),
            )?)
            .bind(channel_id.to_vec())
            .bind(
                log.topics()
                    .iter()
                    .flat_map(|topic| topic.0)
                    .collect::<Vec<u8>>(),
            )
            .bind(log.data().data.to_vec())
            .execute(&mut *conn)
            .await?;
            if !touched.contains(&channel_id) {
                touched.push(channel_id);
            }
        }
        for channel_id in touched {
            derive(conn, channel_id)
                .await
                .map_err(|e| ChainError::Handler(Box::new(e)))?;
        }
        Ok(())
    }

    async fn rollback(
        &mut self,
        conn: &mut AnyConnection,
        fork_point: u64,
    ) -> Result<(), ChainError> {
        let orphaned: Vec<Vec<u8>> =
            sqlx::query("SELECT DISTINCT channel_id FROM channel_events WHERE block_number > $1")
                .bind(smartmesh_chain::sql_int("fork point", fork_point)?)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
        sqlx::query("DELETE FROM channel_events WHERE block_number > $1")
            .bind(smartmesh_chain::sql_int("fork point", fork_point)?)
            .execute(&mut *conn)
            .await?;
        for channel_id in orphaned {
            let channel_id = B256::try_from(channel_id.as_slice())
                .map_err(|_| ChainError::StoredHash(channel_id.len()))?;
            derive(conn, channel_id)
                .await
                .map_err(|e| ChainError::Handler(Box::new(e)))?;
        }
        Ok(())
    }
}

/// The lock lists a closed channel holds, from its indexed events: the close's declared own
/// and partner lists and the latest evidence's, each as the contract wants them back in
/// `settleWithLocks`. `None` when the channel holds no list (then plain `settle`).
pub(crate) async fn lock_lists(
    conn: &mut AnyConnection,
    channel_id: B256,
) -> Result<Option<LockLists>, SettlementError> {
    let mut lists: Option<LockLists> = None;
    for (_, event) in stored_events(conn, channel_id).await? {
        match event {
            TokenNetworkEvents::ChannelLocksDeclared(declared) => {
                let held = lists.get_or_insert_with(LockLists::default);
                held.own = declared.ownLocks;
                held.partner = declared.partnerLocks;
            }
            TokenNetworkEvents::EvidenceSubmitted(evidence) => {
                let held = lists.get_or_insert_with(LockLists::default);
                held.evidence = evidence.locks;
                held.evidence_nonce = evidence.nonce;
            }
            // A penalty clears every list on chain.
            TokenNetworkEvents::CloserPenalized(_) => lists = None,
            _ => {}
        }
    }
    Ok(lists)
}

/// The lists `settleWithLocks` takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LockLists {
    pub(crate) own: alloy::primitives::Bytes,
    pub(crate) evidence: alloy::primitives::Bytes,
    pub(crate) partner: alloy::primitives::Bytes,
    /// The nonce of the proof whose list is `evidence` (0: none).
    pub(crate) evidence_nonce: U256,
}

/// A channel's stored events, decoded, in chain order, with their blocks.
async fn stored_events(
    conn: &mut AnyConnection,
    channel_id: B256,
) -> Result<Vec<(u64, TokenNetworkEvents)>, SettlementError> {
    let rows = sqlx::query(
        "SELECT block_number, topics, data FROM channel_events WHERE channel_id = $1 ORDER BY block_number, log_index",
    )
    .bind(channel_id.to_vec())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|event| {
            let block = event.try_get::<i64, _>(0)? as u64;
            let topics: Vec<B256> = event
                .try_get::<Vec<u8>, _>(1)?
                .chunks(32)
                .map(B256::from_slice)
                .collect();
            let data: Vec<u8> = event.try_get(2)?;
            let decoded = TokenNetworkEvents::decode_log(&PrimitiveLog {
                address: Address::ZERO,
                data: LogData::new_unchecked(topics, data.into()),
            })
            .map_err(|e| SettlementError::StoredEvent {
                block,
                reason: e.to_string(),
            })?;
            Ok((block, decoded.data))
        })
        .collect()
}

/// Rebuilds one channel's row from its stored events (deleting it when none remain).
async fn derive(conn: &mut AnyConnection, channel_id: B256) -> Result<(), SettlementError> {
    let mut row: Option<ChannelRow> = None;
    for (block, event) in stored_events(conn, channel_id).await? {
        row = fold(row, event, block)
            .map_err(|reason| SettlementError::StoredEvent { block, reason })?;
    }
    sqlx::query("DELETE FROM channels WHERE channel_id = $1")
        .bind(channel_id.to_vec())
        .execute(&mut *conn)
        .await?;
    if let Some(row) = row {
        insert(conn, &row).await?;
        debug!(target: "smartmesh::indexer", channel = %channel_id, phase = row.phase.as_str(), "channel derived");
    }
    // What the channel's jobs and conditions wait for may have changed (a close moves a
    // lock's deadline to settleAt): they look again at once.
    sqlx::query(
        "UPDATE watcher_jobs SET due_at = $1, due_chain_time = NULL WHERE channel_id = $2 AND state = 'active'",
    )
    .bind(smartmesh_chain::unix_millis())
    .bind(channel_id.to_vec())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE watcher_conditions SET due_at = $1, due_chain_time = NULL WHERE channel_id = $2 AND state IN ('held', 'queued')",
    )
    .bind(smartmesh_chain::unix_millis())
    .bind(channel_id.to_vec())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A uint256 of an event that the watcher keeps in a BIGINT column: whole, or the event is
/// refused (the contract bounds each of them far below).
fn narrow(field: &str, value: U256) -> Result<u64, String> {
    i64::try_from(value)
        .map(|value| value as u64)
        .map_err(|_| format!("{field} {value} does not fit a 63-bit column"))
}

fn fold(
    row: Option<ChannelRow>,
    event: TokenNetworkEvents,
    block: u64,
) -> Result<Option<ChannelRow>, String> {
    if let TokenNetworkEvents::ChannelOpened(opened) = &event {
        return Ok(Some(ChannelRow {
            channel_id: opened.channelId,
            participant1: opened.participant1,
            participant2: opened.participant2,
            epoch: narrow("epoch", opened.epoch)?,
            settle_timeout: narrow("settleTimeout", opened.settleTimeout)?,
            phase: ChannelPhase::Open,
            deposit1: U256::ZERO,
            deposit2: U256::ZERO,
            withdrawn1: U256::ZERO,
            withdrawn2: U256::ZERO,
            closer: None,
            claim_transferred: None,
            closer_received: None,
            settle_at: None,
            closed_block: None,
            penalized: false,
            updated_block: block,
            payouts: None,
        }));
    }
    let Some(mut row) = row else {
        return Ok(None);
    };
    row.updated_block = block;
    match event {
        TokenNetworkEvents::ChannelDeposited(deposited) => {
            if deposited.participant == row.participant1 {
                row.deposit1 = deposited.totalDeposit;
            } else {
                row.deposit2 = deposited.totalDeposit;
            }
        }
        TokenNetworkEvents::ChannelWithdrawn(withdrawn) => {
            if withdrawn.participant == row.participant1 {
                row.withdrawn1 = withdrawn.totalWithdraw;
            } else {
                row.withdrawn2 = withdrawn.totalWithdraw;
            }
        }
        TokenNetworkEvents::ChannelClosed(closed) => {
            row.phase = ChannelPhase::Closed;
            row.closer = Some(closed.closer);
            row.claim_transferred = Some(closed.claimTransferred);
            row.closer_received = Some(closed.closerReceived);
            row.settle_at = Some(narrow("settleAt", closed.settleAt)?);
            row.closed_block = Some(block);
        }
        TokenNetworkEvents::CloserPenalized(_) => row.penalized = true,
        TokenNetworkEvents::ChannelSettled(settled) => {
            row.phase = ChannelPhase::Settled;
            row.payouts = Some((settled.payout1, settled.payout2));
        }
        TokenNetworkEvents::ChannelCooperativelySettled(settled) => {
            row.phase = ChannelPhase::Settled;
            row.payouts = Some((settled.balance1, settled.balance2));
        }
        // Opening starts a row (above); the domain event carries no channel. Lock lists do not
        // change the channel's row: the watcher keeps them beside it once it holds locks.
        TokenNetworkEvents::ChannelOpened(_)
        | TokenNetworkEvents::EIP712DomainChanged(_)
        | TokenNetworkEvents::ChannelLocksDeclared(_)
        | TokenNetworkEvents::EvidenceSubmitted(_) => {}
    }
    Ok(Some(row))
}

async fn insert(conn: &mut AnyConnection, row: &ChannelRow) -> Result<(), SettlementError> {
    sqlx::query(
        "INSERT INTO channels (channel_id, participant1, participant2, epoch, settle_timeout, state, deposit1, \
         deposit2, withdrawn1, withdrawn2, closer, claim_transferred, closer_received, settle_at, closed_block, \
         penalized, updated_block, payout1, payout2) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(row.channel_id.to_vec())
    .bind(row.participant1.to_string())
    .bind(row.participant2.to_string())
    .bind(smartmesh_chain::sql_int("epoch", row.epoch)?)
    .bind(smartmesh_chain::sql_int("settle timeout", row.settle_timeout)?)
    .bind(row.phase.as_str())
    .bind(row.deposit1.to_string())
    .bind(row.deposit2.to_string())
    .bind(row.withdrawn1.to_string())
    .bind(row.withdrawn2.to_string())
    .bind(row.closer.map(|a| a.to_string()))
    .bind(row.claim_transferred.map(|v| v.to_string()))
    .bind(row.closer_received.map(|v| v.to_string()))
    .bind(
        row.settle_at
            .map(|v| smartmesh_chain::sql_int("settle at", v))
            .transpose()?,
    )
    .bind(
        row.closed_block
            .map(|v| smartmesh_chain::sql_int("closed block", v))
            .transpose()?,
    )
    .bind(i64::from(row.penalized))
    .bind(smartmesh_chain::sql_int("updated block", row.updated_block)?)
    .bind(row.payouts.map(|(p1, _)| p1.to_string()))
    .bind(row.payouts.map(|(_, p2)| p2.to_string()))
    .execute(conn)
    .await?;
    Ok(())
}

/// The last block the indexer committed, once it has started.
pub(crate) async fn indexed_block<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
) -> Result<Option<u64>, sqlx::Error> {
    let block: Option<i64> =
        sqlx::query_scalar("SELECT block_number FROM follower_cursor WHERE follower = $1")
            .bind(crate::INDEXER_NAME)
            .fetch_optional(executor)
            .await?;
    Ok(block.map(|block| block as u64))
}

const CHANNEL_COLUMNS: &str = "channel_id, participant1, participant2, epoch, settle_timeout, state, deposit1, \
     deposit2, withdrawn1, withdrawn2, closer, claim_transferred, closer_received, settle_at, closed_block, \
     penalized, updated_block, payout1, payout2";

/// Reads one channel's row.
pub async fn load_channel<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    channel_id: B256,
) -> Result<Option<ChannelRow>, SettlementError> {
    let query = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE channel_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(query))
        .bind(channel_id.to_vec())
        .fetch_optional(executor)
        .await?
        .map(|row| channel_from_row(&row))
        .transpose()
}

/// Reads the rows of `ids` that exist, in bulk.
pub(crate) async fn load_channels(
    conn: &mut AnyConnection,
    ids: &[B256],
) -> Result<HashMap<B256, ChannelRow>, SettlementError> {
    let mut channels = HashMap::with_capacity(ids.len());
    for part in ids.chunks(sql::CHUNK) {
        let query = format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels WHERE channel_id IN ({})",
            sql::placeholders(1, part.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(query));
        for id in part {
            query = query.bind(id.to_vec());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let channel = channel_from_row(&row)?;
            channels.insert(channel.channel_id, channel);
        }
    }
    Ok(channels)
}

fn channel_from_row(row: &AnyRow) -> Result<ChannelRow, SettlementError> {
    let optional_amount = |index: usize| -> Result<Option<U256>, SettlementError> {
        row.try_get::<Option<String>, _>(index)?
            .map(|text| {
                text.parse().map_err(|_| SettlementError::Stored {
                    field: "amount".into(),
                    value: text,
                })
            })
            .transpose()
    };
    let phase: String = row.try_get(5)?;
    Ok(ChannelRow {
        channel_id: sql::b256(row, 0)?,
        participant1: sql::address(row, 1)?,
        participant2: sql::address(row, 2)?,
        epoch: row.try_get::<i64, _>(3)? as u64,
        settle_timeout: row.try_get::<i64, _>(4)? as u64,
        phase: ChannelPhase::parse(&phase).ok_or_else(|| SettlementError::Stored {
            field: "state".into(),
            value: phase.clone(),
        })?,
        deposit1: sql::u256(row, 6)?,
        deposit2: sql::u256(row, 7)?,
        withdrawn1: sql::u256(row, 8)?,
        withdrawn2: sql::u256(row, 9)?,
        closer: row
            .try_get::<Option<String>, _>(10)?
            .map(|text| {
                text.parse().map_err(|_| SettlementError::Stored {
                    field: "closer".into(),
                    value: text,
                })
            })
            .transpose()?,
        claim_transferred: optional_amount(11)?,
        closer_received: optional_amount(12)?,
        settle_at: row.try_get::<Option<i64>, _>(13)?.map(|v| v as u64),
        closed_block: row.try_get::<Option<i64>, _>(14)?.map(|v| v as u64),
        penalized: row.try_get::<i64, _>(15)? == 1,
        updated_block: row.try_get::<i64, _>(16)? as u64,
        payouts: optional_amount(17)?.zip(optional_amount(18)?),
    })
}
