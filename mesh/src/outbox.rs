//! The store-and-forward outbox: a channel message for a peer out of reach waits in the
//! journal and goes out, in order, at the next meeting.

use alloy::primitives::Address;
use smartmesh_protocol::channel::ChannelMessage;
use sqlx::Row;

use crate::{
    Mesh, MeshError,
    transport::{Transport, TransportError},
};

impl Mesh {
    /// Keeps `message` for `peer` until [`Mesh::flush`] hands it over.
    pub async fn queue(&self, peer: Address, message: &ChannelMessage) -> Result<(), MeshError> {
        sqlx::query("INSERT INTO outbox (peer, message) VALUES (?, ?)")
            .bind(peer.to_string())
            .bind(message.encode()?)
            .execute(self.journal.pool())
            .await?;
        self.queued_peers().await?;
        if let Some(peers) = self
            .queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            peers.insert(peer);
        }
        Ok(())
    }

    /// Whether messages wait for `peer` (read from the journal once, then kept).
    pub(crate) async fn has_waiting(&self, peer: Address) -> Result<bool, MeshError> {
        self.queued_peers().await?;
        Ok(self
            .queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|peers| peers.contains(&peer)))
    }

    async fn queued_peers(&self) -> Result<(), MeshError> {
        if self
            .queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return Ok(());
        }
        let rows = sqlx::query("SELECT DISTINCT peer FROM outbox")
            .fetch_all(self.journal.pool())
            .await?;
        let peers = rows
            .iter()
            .map(|row| {
                row.try_get::<String, _>(0)?
                    .parse::<Address>()
                    .map_err(|_| MeshError::Stored("outbox peer"))
            })
            .collect::<Result<_, MeshError>>()?;
        *self.queued.lock().unwrap_or_else(|e| e.into_inner()) = Some(peers);
        Ok(())
    }

    /// The messages waiting for `peer`, oldest first.
    pub async fn waiting(&self, peer: Address) -> Result<Vec<ChannelMessage>, MeshError> {
        let rows = sqlx::query("SELECT message FROM outbox WHERE peer = ? ORDER BY seq")
            .bind(peer.to_string())
            .fetch_all(self.journal.pool())
            .await?;
        rows.iter()
            .map(|row| Ok(ChannelMessage::decode(&row.try_get::<Vec<u8>, _>(0)?)?))
            .collect()
    }

    /// Hands every waiting message to the peers `transport` reaches now, in order; a message
    /// leaves the outbox only once the transport took it. Returns how many went out.
    pub async fn flush(&self, transport: &impl Transport) -> Result<usize, MeshError> {
        let mut sent = 0;
        for peer in transport.reachable() {
            sent += self.flush_to(transport, peer).await?;
        }
        Ok(sent)
    }

    /// Hands what waits for `peer` over, in order, if the link to it is up (a meeting with
    /// one peer need not look at the others). Returns how many went out.
    pub async fn flush_to(
        &self,
        transport: &impl Transport,
        peer: Address,
    ) -> Result<usize, MeshError> {
        let mut sent = 0;
        if !self.has_waiting(peer).await? {
            return Ok(0);
        }
        let rows = sqlx::query("SELECT seq, message FROM outbox WHERE peer = ? ORDER BY seq")
            .bind(peer.to_string())
            .fetch_all(self.journal.pool())
            .await?;
        for row in rows {
            let seq: i64 = row.try_get(0)?;
            match transport.send(peer, row.try_get(1)?).await {
                Ok(()) => {}
                // The link went down meanwhile: the rest waits for the next meeting.
                Err(TransportError::Unreachable(_)) => break,
                Err(error) => return Err(MeshError::Transport(error)),
            }
            sqlx::query("DELETE FROM outbox WHERE seq = ?")
                .bind(seq)
                .execute(self.journal.pool())
                .await?;
            sent += 1;
        }
        let left: Option<i64> = sqlx::query_scalar("SELECT 1 FROM outbox WHERE peer = ? LIMIT 1")
            .bind(peer.to_string())
            .fetch_optional(self.journal.pool())
            .await?;
        if left.is_none()
            && let Some(peers) = self
                .queued
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
        {
            peers.remove(&peer);
        }
        Ok(sent)
    }
}
