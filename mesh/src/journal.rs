//! The phone's journal in SQLite: channels, every proof signed and received, withdrawals
//! signed. Amounts are decimal strings; nonces 78-digit zero-padded decimals, so that SQL
//! orders them as numbers and every uint256 is kept whole.

use std::path::Path;

use alloy::primitives::{Address, B256, U256};
use sqlx::{
    Row, SqliteConnection, SqlitePool,
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
};

use smartmesh_protocol::channel::{Freeze, FreezeKind, Phase, RegistryRead};

use crate::{Channel, MeshError};

mod sessions;

pub(crate) use sessions::HeldAck;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A proof in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) nonce: U256,
    pub(crate) transferred: U256,
    /// The signed proof, wire kind 1.
    pub(crate) bytes: Vec<u8>,
    /// The channel message it travelled in, when that was not the proof alone.
    pub(crate) message: Option<Vec<u8>>,
    /// The lock list behind its `locksRoot`.
    pub(crate) locks: Vec<u8>,
}

/// A received proof the watcher does not hold yet.
#[derive(Debug, Clone)]
pub(crate) struct Unsynced {
    pub(crate) channel_id: B256,
    pub(crate) nonce: U256,
    /// The signed proof, wire kind 1.
    pub(crate) proof: Vec<u8>,
    /// The lock list behind its `locksRoot`.
    pub(crate) locks: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(crate) struct Journal {
    pool: SqlitePool,
}

fn amount(row: &sqlx::sqlite::SqliteRow, index: usize) -> Result<U256, MeshError> {
    let text: String = row.try_get(index)?;
    text.parse().map_err(|_| MeshError::Stored("amount"))
}

/// A u64 (seconds, a deadline) as SQLite's signed 64-bit integer, refused rather than wrapped.
fn int(field: &'static str, value: u64) -> Result<i64, MeshError> {
    i64::try_from(value).map_err(|_| MeshError::OutOfRange {
        field,
        value: value.to_string(),
    })
}

fn uint(
    row: &sqlx::sqlite::SqliteRow,
    index: usize,
    field: &'static str,
) -> Result<u64, MeshError> {
    u64::try_from(row.try_get::<i64, _>(index)?).map_err(|_| MeshError::Stored(field))
}

fn b256(
    row: &sqlx::sqlite::SqliteRow,
    index: usize,
    field: &'static str,
) -> Result<B256, MeshError> {
    let bytes: Vec<u8> = row.try_get(index)?;
    B256::try_from(bytes.as_slice()).map_err(|_| MeshError::Stored(field))
}

/// A nonce as the journal stores it: 78 digits, zero-padded (any uint256 fits).
fn nonce_key(nonce: U256) -> String {
    format!("{:0>78}", nonce.to_string())
}

fn nonce(row: &sqlx::sqlite::SqliteRow, index: usize) -> Result<U256, MeshError> {
    let text: String = row.try_get(index)?;
    text.parse().map_err(|_| MeshError::Stored("nonce"))
}

impl Journal {
    /// Opens (creating) the journal file and applies its schema.
    pub(crate) async fn open(path: &Path) -> Result<Self, MeshError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            // Every write is on disk before it returns: a proof handed over is never lost.
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        MIGRATIONS.run(&pool).await?;
        let journal = Self { pool };
        journal.repair_cut_nonces().await?;
        Ok(journal)
    }

    /// Before migration 0002 a nonce above i64 was stored as -1; the migration marked those
    /// rows, and their proofs still carry the whole nonce.
    async fn repair_cut_nonces(&self) -> Result<(), MeshError> {
        for table in ["sent", "received"] {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT rowid, proof FROM {table} WHERE nonce LIKE 'cut:%'"
            )))
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let rowid: i64 = row.try_get(0)?;
                let bytes: Vec<u8> = row.try_get(1)?;
                let signed = smartmesh_protocol::SignedProof::decode(&bytes)?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {table} SET nonce = ? WHERE rowid = ?"
                )))
                .bind(nonce_key(signed.proof.nonce))
                .bind(rowid)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) async fn meta(&self, key: &str) -> Result<Option<String>, MeshError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub(crate) async fn set_meta(&self, key: &str, value: &str) -> Result<(), MeshError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn channel(&self, id: B256) -> Result<Option<Channel>, MeshError> {
        let Some(row) = sqlx::query(
            "SELECT partner, state, settle_timeout, my_deposit, my_withdrawn, partner_deposit, partner_withdrawn, \
             frozen_reason, frozen_until, open_seen_at FROM channels WHERE channel_id = ?",
        )
        .bind(id.as_slice())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let partner: String = row.try_get(0)?;
        let state: String = row.try_get(1)?;
        let reason: Option<String> = row.try_get(7)?;
        let until = match row.try_get::<Option<i64>, _>(8)? {
            Some(until) => Some(u64::try_from(until).map_err(|_| MeshError::Stored("freeze"))?),
            None => None,
        };
        let frozen = match reason.zip(until) {
            Some((reason, until)) => Some(Freeze {
                kind: FreezeKind::parse(&reason).ok_or(MeshError::Stored("freeze"))?,
                until,
            }),
            None => None,
        };
        Ok(Some(Channel {
            id,
            partner: partner.parse().map_err(|_| MeshError::Stored("partner"))?,
            state: Phase::parse(&state).ok_or(MeshError::Stored("state"))?,
            settle_timeout: uint(&row, 2, "settle timeout")?,
            my_deposit: amount(&row, 3)?,
            my_withdrawn: amount(&row, 4)?,
            partner_deposit: amount(&row, 5)?,
            partner_withdrawn: amount(&row, 6)?,
            frozen,
            open_seen_at: uint(&row, 9, "open seen at")?,
        }))
    }

    pub(crate) async fn channels(&self) -> Result<Vec<B256>, MeshError> {
        let rows: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT channel_id FROM channels ORDER BY rowid")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|bytes| {
                B256::try_from(bytes.as_slice()).map_err(|_| MeshError::Stored("channel id"))
            })
            .collect()
    }

    /// Records a channel's on-chain state, keeping any freeze and the latest `t_open`.
    pub(crate) async fn save_channel(&self, channel: &Channel) -> Result<(), MeshError> {
        sqlx::query(
            "INSERT INTO channels (channel_id, partner, state, settle_timeout, my_deposit, my_withdrawn, \
             partner_deposit, partner_withdrawn, open_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (channel_id) DO UPDATE SET partner = excluded.partner, state = excluded.state, \
             settle_timeout = excluded.settle_timeout, my_deposit = excluded.my_deposit, \
             my_withdrawn = excluded.my_withdrawn, partner_deposit = excluded.partner_deposit, \
             partner_withdrawn = excluded.partner_withdrawn, \
             open_seen_at = MAX(open_seen_at, excluded.open_seen_at)",
        )
        .bind(channel.id.as_slice())
        .bind(channel.partner.to_string())
        .bind(channel.state.as_str())
        .bind(int("settle timeout", channel.settle_timeout)?)
        .bind(channel.my_deposit.to_string())
        .bind(channel.my_withdrawn.to_string())
        .bind(channel.partner_deposit.to_string())
        .bind(channel.partner_withdrawn.to_string())
        .bind(int("open seen at", channel.open_seen_at)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn set_frozen(
        &self,
        id: B256,
        frozen: Option<Freeze>,
    ) -> Result<(), MeshError> {
        sqlx::query("UPDATE channels SET frozen_reason = ?, frozen_until = ? WHERE channel_id = ?")
            .bind(frozen.map(|freeze| freeze.kind.as_str()))
            .bind(
                frozen
                    .map(|freeze| int("freeze deadline", freeze.until))
                    .transpose()?,
            )
            .bind(id.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn latest(&self, table: &'static str, id: B256) -> Result<Option<Stored>, MeshError> {
        let query = format!(
            "SELECT nonce, transferred, proof, message, locks FROM {table} WHERE channel_id = ? ORDER BY nonce DESC LIMIT 1"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(id.as_slice())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Stored {
            nonce: nonce(&row, 0)?,
            transferred: amount(&row, 1)?,
            bytes: row.try_get(2)?,
            message: row.try_get(3)?,
            locks: row.try_get(4)?,
        }))
    }

    /// The latest proof this wallet signed in the channel.
    pub(crate) async fn latest_sent(&self, id: B256) -> Result<Option<Stored>, MeshError> {
        self.latest("sent", id).await
    }

    /// The latest proof the partner signed that this wallet accepted.
    pub(crate) async fn latest_received(&self, id: B256) -> Result<Option<Stored>, MeshError> {
        self.latest("received", id).await
    }

    /// The largest amount this wallet ever signed in the channel: its close claim.
    pub(crate) async fn most_signed(&self, id: B256) -> Result<U256, MeshError> {
        let amounts: Vec<String> =
            sqlx::query_scalar("SELECT transferred FROM sent WHERE channel_id = ?")
                .bind(id.as_slice())
                .fetch_all(&self.pool)
                .await?;
        amounts.iter().try_fold(U256::ZERO, |most, text| {
            let amount: U256 = text.parse().map_err(|_| MeshError::Stored("amount"))?;
            Ok(most.max(amount))
        })
    }

    pub(crate) async fn insert_sent(
        conn: &mut SqliteConnection,
        id: B256,
        proof: &Stored,
    ) -> Result<(), MeshError> {
        Self::insert_proof(conn, "sent", id, proof).await
    }

    pub(crate) async fn insert_received(
        conn: &mut SqliteConnection,
        id: B256,
        proof: &Stored,
    ) -> Result<(), MeshError> {
        Self::insert_proof(conn, "received", id, proof).await
    }

    async fn insert_proof(
        conn: &mut SqliteConnection,
        table: &'static str,
        id: B256,
        proof: &Stored,
    ) -> Result<(), MeshError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (channel_id, nonce, transferred, proof, message, locks) VALUES (?, ?, ?, ?, ?, ?)"
        )))
        .bind(id.as_slice())
        .bind(nonce_key(proof.nonce))
        .bind(proof.transferred.to_string())
        .bind(&proof.bytes)
        .bind(proof.message.as_deref())
        .bind(&proof.locks)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Keeps a secret (once).
    pub(crate) async fn insert_secret(
        conn: &mut SqliteConnection,
        condition_id: B256,
        secret: B256,
    ) -> Result<(), MeshError> {
        sqlx::query(
            "INSERT INTO secrets (condition_id, secret) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(condition_id.as_slice())
        .bind(secret.as_slice())
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Every secret this wallet knows, by condition.
    pub(crate) async fn secrets(&self) -> Result<Vec<(B256, B256)>, MeshError> {
        let rows = sqlx::query("SELECT condition_id, secret FROM secrets ORDER BY rowid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((b256(row, 0, "condition id")?, b256(row, 1, "secret")?)))
            .collect()
    }

    /// Records a registry read, keeping the one from the latest block.
    pub(crate) async fn save_registry_read(
        &self,
        condition_id: B256,
        read: RegistryRead,
    ) -> Result<(), MeshError> {
        sqlx::query(
            "INSERT INTO registry_reads (condition_id, registered_at, block_time) VALUES (?, ?, ?) \
             ON CONFLICT (condition_id) DO UPDATE SET registered_at = excluded.registered_at, \
             block_time = excluded.block_time WHERE excluded.block_time >= registry_reads.block_time",
        )
        .bind(condition_id.as_slice())
        .bind(int("registered at", read.registered_at)?)
        .bind(int("block time", read.block_time)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every registry read this wallet made.
    pub(crate) async fn registry_reads(&self) -> Result<Vec<(B256, RegistryRead)>, MeshError> {
        let rows =
            sqlx::query("SELECT condition_id, registered_at, block_time FROM registry_reads")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    b256(row, 0, "condition id")?,
                    RegistryRead {
                        registered_at: uint(row, 1, "registered at")?,
                        block_time: uint(row, 2, "block time")?,
                    },
                ))
            })
            .collect()
    }

    /// Every withdrawal total signed for `participant`, with its deadline.
    pub(crate) async fn withdrawals(
        &self,
        id: B256,
        participant: Address,
    ) -> Result<Vec<(U256, u64)>, MeshError> {
        let rows = sqlx::query(
            "SELECT total, deadline FROM withdrawals WHERE channel_id = ? AND participant = ?",
        )
        .bind(id.as_slice())
        .bind(participant.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((amount(row, 0)?, uint(row, 1, "deadline")?)))
            .collect()
    }

    /// Whether exactly this received proof is in the journal.
    pub(crate) async fn holds_received(&self, id: B256, bytes: &[u8]) -> Result<bool, MeshError> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM received WHERE channel_id = ? AND proof = ?",
        )
        .bind(id.as_slice())
        .bind(bytes)
        .fetch_one(&self.pool)
        .await?
            > 0)
    }

    /// Each channel's latest received proof the watcher does not hold yet, with its lock list.
    pub(crate) async fn unsynced(&self) -> Result<Vec<Unsynced>, MeshError> {
        let rows = sqlx::query(
            "SELECT r.channel_id, r.nonce, r.proof, r.locks FROM received r WHERE r.synced = 0 \
             AND r.nonce = (SELECT MAX(nonce) FROM received WHERE channel_id = r.channel_id)",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Unsynced {
                    channel_id: b256(row, 0, "channel id")?,
                    nonce: nonce(row, 1)?,
                    proof: row.try_get(2)?,
                    locks: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// The secrets the watcher does not hold yet, by condition.
    pub(crate) async fn unsynced_secrets(&self) -> Result<Vec<(B256, B256)>, MeshError> {
        let rows =
            sqlx::query("SELECT condition_id, secret FROM secrets WHERE synced = 0 ORDER BY rowid")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| Ok((b256(row, 0, "condition id")?, b256(row, 1, "secret")?)))
            .collect()
    }

    /// The watcher holds the registration of `condition_id` (a secret's or an
    /// acknowledgment's).
    pub(crate) async fn mark_condition_synced(&self, condition_id: B256) -> Result<(), MeshError> {
        for table in ["secrets", "acks"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET synced = 1 WHERE condition_id = ?"
            )))
            .bind(condition_id.as_slice())
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// The watcher holds this proof (and so every older one of the channel).
    pub(crate) async fn mark_synced(
        &self,
        id: B256,
        nonce: U256,
        ack: Option<&[u8]>,
    ) -> Result<(), MeshError> {
        sqlx::query("UPDATE received SET synced = 1 WHERE channel_id = ? AND nonce <= ?")
            .bind(id.as_slice())
            .bind(nonce_key(nonce))
            .execute(&self.pool)
            .await?;
        if let Some(ack) = ack {
            sqlx::query("UPDATE received SET ack = ? WHERE channel_id = ? AND nonce = ?")
                .bind(ack)
                .bind(id.as_slice())
                .bind(nonce_key(nonce))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The watcher's acknowledgment of a received proof, if it gave one.
    pub(crate) async fn ack(&self, id: B256, nonce: U256) -> Result<Option<Vec<u8>>, MeshError> {
        Ok(sqlx::query_scalar::<_, Option<Vec<u8>>>(
            "SELECT ack FROM received WHERE channel_id = ? AND nonce = ?",
        )
        .bind(id.as_slice())
        .bind(nonce_key(nonce))
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    pub(crate) async fn insert_withdrawal(
        &self,
        id: B256,
        participant: Address,
        total: U256,
        deadline: u64,
    ) -> Result<(), MeshError> {
        sqlx::query("INSERT INTO withdrawals (channel_id, participant, total, deadline) VALUES (?, ?, ?, ?)")
            .bind(id.as_slice())
            .bind(participant.to_string())
            .bind(total.to_string())
            .bind(int("deadline", deadline)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The largest withdrawal total signed for `participant` whose deadline is still ahead.
    pub(crate) async fn signed_withdrawal(
        &self,
        id: B256,
        participant: Address,
        now: u64,
    ) -> Result<U256, MeshError> {
        let totals: Vec<String> = sqlx::query_scalar(
            "SELECT total FROM withdrawals WHERE channel_id = ? AND participant = ? AND deadline >= ?",
        )
        .bind(id.as_slice())
        .bind(participant.to_string())
        .bind(int("now", now)?)
        .fetch_all(&self.pool)
        .await?;
        totals.iter().try_fold(U256::ZERO, |most, text| {
            let total: U256 = text.parse().map_err(|_| MeshError::Stored("amount"))?;
            Ok(most.max(total))
        })
    }
}
