//! The journal's part of data sessions: each node's state machine, the packets, what each
//! previous node's pay already counted for, and the acknowledgments a relay holds.

use alloy::primitives::{Address, B256, U256};
use sqlx::Row;

use super::{Journal, amount, b256, int};
use crate::MeshError;

/// A recipient's acknowledgment as the registry takes it (`registerAck`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeldAck {
    pub(crate) condition_id: B256,
    pub(crate) signer: Address,
    pub(crate) message_hash: B256,
    pub(crate) signature: Vec<u8>,
}

impl Journal {
    /// Saves a session's state and, in the same transaction, the packets it sent or took
    /// with it: a crash keeps both or neither.
    pub(crate) async fn save_session(
        &self,
        session: B256,
        state: &str,
        packets: &[(u64, &[u8])],
    ) -> Result<(), MeshError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (session, state) VALUES (?, ?) \
             ON CONFLICT (session) DO UPDATE SET state = excluded.state",
        )
        .bind(session.as_slice())
        .bind(state)
        .execute(&mut *tx)
        .await?;
        for (index, bytes) in packets {
            sqlx::query(
                "INSERT INTO session_packets (session, idx, bytes) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(session.as_slice())
            .bind(int("packet index", *index)?)
            .bind(*bytes)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every session's state, by session.
    pub(crate) async fn sessions(&self) -> Result<Vec<(B256, String)>, MeshError> {
        let rows = sqlx::query("SELECT session, state FROM sessions ORDER BY rowid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((b256(row, 0, "session")?, row.try_get(1)?)))
            .collect()
    }

    /// A session's packets from `from` on, in order.
    pub(crate) async fn session_packets(
        &self,
        session: B256,
        from: u64,
    ) -> Result<Vec<Vec<u8>>, MeshError> {
        let rows = sqlx::query(
            "SELECT bytes FROM session_packets WHERE session = ? AND idx >= ? ORDER BY idx",
        )
        .bind(session.as_slice())
        .bind(int("packet index", from)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// How much of `peer`'s pay on its channel already counted for a session.
    pub(crate) async fn session_credit(&self, peer: Address) -> Result<Option<U256>, MeshError> {
        let row = sqlx::query("SELECT credited FROM session_credit WHERE peer = ?")
            .bind(peer.as_slice())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| amount(&row, 0)).transpose()
    }

    /// Sets what of `peer`'s pay counted for sessions, with the session whose pay moved it, in
    /// one transaction.
    pub(crate) async fn credit_session(
        &self,
        peer: Address,
        credited: U256,
        session: B256,
        state: &str,
    ) -> Result<(), MeshError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO session_credit (peer, credited) VALUES (?, ?) \
             ON CONFLICT (peer) DO UPDATE SET credited = excluded.credited",
        )
        .bind(peer.as_slice())
        .bind(credited.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE sessions SET state = ? WHERE session = ?")
            .bind(state)
            .bind(session.as_slice())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Keeps an acknowledgment (once).
    pub(crate) async fn insert_ack(&self, ack: &HeldAck) -> Result<(), MeshError> {
        sqlx::query(
            "INSERT INTO acks (condition_id, signer, message_hash, signature) \
             VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(ack.condition_id.as_slice())
        .bind(ack.signer.as_slice())
        .bind(ack.message_hash.as_slice())
        .bind(ack.signature.as_slice())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The acknowledgments the watcher does not hold the registration of yet.
    pub(crate) async fn unsynced_acks(&self) -> Result<Vec<HeldAck>, MeshError> {
        let rows = sqlx::query(
            "SELECT condition_id, signer, message_hash, signature FROM acks WHERE synced = 0 \
             ORDER BY rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let signer: Vec<u8> = row.try_get(1)?;
                Ok(HeldAck {
                    condition_id: b256(row, 0, "condition id")?,
                    signer: Address::try_from(signer.as_slice())
                        .map_err(|_| MeshError::Stored("signer"))?,
                    message_hash: b256(row, 2, "message hash")?,
                    signature: row.try_get(3)?,
                })
            })
            .collect()
    }
}
