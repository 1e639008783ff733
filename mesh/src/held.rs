//! Messages held until the chain can be read. A partner's `LockExpired` is taken only
//! against a registry read showing its condition unmet in time; offline the phone cannot read
//! the registry, and refusing the message would stall the channel for good (the partner has
//! moved on, and each later proof follows the one before). So the message waits in the
//! journal with whatever that partner sends after it, and all are taken, in order, once the
//! chain can be read ([`Mesh::take_held`]).

use std::collections::BTreeSet;

use alloy::primitives::Address;
use smartmesh_protocol::{ProtocolError, channel::ChannelMessage};
use sqlx::Row;

use crate::{Mesh, MeshError, Outgoing};

impl Mesh {
    /// The peers whose messages are held (read from the journal once, then kept).
    async fn held_peers(&self) -> Result<BTreeSet<Address>, MeshError> {
        if let Some(peers) = &*self.held.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(peers.clone());
        }
        let rows = sqlx::query("SELECT DISTINCT peer FROM held_messages")
            .fetch_all(self.journal.pool())
            .await?;
        let peers = rows
            .iter()
            .map(|row| {
                row.try_get::<String, _>(0)?
                    .parse::<Address>()
                    .map_err(|_| MeshError::Stored("held message peer"))
            })
            .collect::<Result<BTreeSet<_>, MeshError>>()?;
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(peers.clone());
        Ok(peers)
    }

    /// Whether messages from `peer` are held: a new one must wait behind them.
    pub(crate) async fn holds_from(&self, peer: Address) -> Result<bool, MeshError> {
        Ok(self.held_peers().await?.contains(&peer))
    }

    /// Keeps `bytes` from `peer` until [`Mesh::take_held`].
    pub(crate) async fn hold(&self, peer: Address, bytes: &[u8]) -> Result<(), MeshError> {
        self.held_peers().await?;
        sqlx::query("INSERT INTO held_messages (peer, message) VALUES (?, ?)")
            .bind(peer.to_string())
            .bind(bytes)
            .execute(self.journal.pool())
            .await?;
        if let Some(peers) = self.held.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            peers.insert(peer);
        }
        Ok(())
    }

    /// Whether `error` means the message needs a registry read this wallet does not have.
    pub(crate) fn needs_registry(message: &ChannelMessage, error: &MeshError) -> bool {
        matches!(message, ChannelMessage::LockExpired(_))
            && matches!(
                error,
                MeshError::Protocol(ProtocolError::ExpiryNotProven(_))
            )
    }

    /// Takes the held messages, each peer's in order: a `LockExpired` after reading the
    /// registry when the chain can be read (or against a read recorded otherwise). A peer's
    /// messages stay held while its first still lacks the read; one refused for any other
    /// reason is dropped, as it would have been when it came. Returns what to hand over.
    pub async fn take_held(&self) -> Result<Vec<Outgoing>, MeshError> {
        let mut out = Vec::new();
        for peer in self.held_peers().await? {
            let rows =
                sqlx::query("SELECT seq, message FROM held_messages WHERE peer = ? ORDER BY seq")
                    .bind(peer.to_string())
                    .fetch_all(self.journal.pool())
                    .await?;
            let mut stuck = false;
            for row in rows {
                let seq: i64 = row.try_get(0)?;
                let message = ChannelMessage::decode(&row.try_get::<Vec<u8>, _>(1)?)?;
                if let ChannelMessage::LockExpired(expired) = &message
                    && self.reaches_chain()
                {
                    self.check_registry(expired.condition_id).await?;
                }
                match self.receive_routed(peer, message.clone()).await {
                    Ok(answer) => out.extend(answer),
                    Err(error) if Self::needs_registry(&message, &error) => {
                        stuck = true;
                        break;
                    }
                    Err(
                        error @ (MeshError::Journal(_)
                        | MeshError::Migration(_)
                        | MeshError::Stored(_)),
                    ) => {
                        return Err(error);
                    }
                    Err(error) => {
                        tracing::info!(target: "smartmesh::mesh", %peer, %error, "held message refused");
                    }
                }
                sqlx::query("DELETE FROM held_messages WHERE seq = ?")
                    .bind(seq)
                    .execute(self.journal.pool())
                    .await?;
            }
            if !stuck
                && let Some(peers) = self.held.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
            {
                peers.remove(&peer);
            }
        }
        Ok(out)
    }
}
