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
        }
        Ok(sent)
    }
}
