//! The wallet's view of the network for routing (DESIGN.md 4.1): the channels read from the
//! chain's events when it is reachable (kept in the journal for the time offline), its own
//! channels, and the capacity hints it signs for its neighbours to gossip.

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    sol_types::SolValue,
};
use smartmesh_protocol::{
    Signature65, TokenNetwork,
    channel::Phase,
    mediated::{CapacityHint, ChannelGraph, MAX_HINT_TTL, hint_domain},
    sign_typed,
};
use sqlx::Row;

use crate::{Mesh, MeshError};

/// A hint as gossiped: the ABI-encoded `CapacityHint` and its 65-byte signature.
pub fn encode_hint(hint: &CapacityHint, signature: &Signature65) -> Vec<u8> {
    let mut bytes = hint.abi_encode();
    bytes.extend_from_slice(signature.as_bytes());
    bytes
}

/// Reads a gossiped hint.
pub fn decode_hint(bytes: &[u8]) -> Result<(CapacityHint, Signature65), MeshError> {
    let (hint, signature) = bytes
        .len()
        .checked_sub(65)
        .map(|at| bytes.split_at(at))
        .ok_or(MeshError::Malformed("hint"))?;
    let hint = CapacityHint::abi_decode(hint).map_err(|_| MeshError::Malformed("hint"))?;
    let signature = Signature65::from_slice(signature)?;
    Ok((hint, signature))
}

impl Mesh {
    /// The channel graph as the journal knows it, with this wallet's own open channels.
    pub async fn channel_graph(&self) -> Result<ChannelGraph, MeshError> {
        let mut graph = ChannelGraph::new();
        let rows = sqlx::query("SELECT channel_id, participant1, participant2 FROM graph_channels")
            .fetch_all(self.journal.pool())
            .await?;
        for row in rows {
            let bad = || MeshError::Stored("graph channel");
            let id = B256::try_from(row.try_get::<Vec<u8>, _>(0)?.as_slice()).map_err(|_| bad())?;
            let a: Address = row.try_get::<String, _>(1)?.parse().map_err(|_| bad())?;
            let b: Address = row.try_get::<String, _>(2)?.parse().map_err(|_| bad())?;
            graph.add_channel(id, a, b);
        }
        for channel in self.channels().await? {
            if channel.state == Phase::Open {
                graph.add_channel(channel.id, self.address(), channel.partner);
            }
        }
        Ok(graph)
    }

    /// Reads the TokenNetwork's opens and settles since the last read into the journal's
    /// graph, and tracks the channels opened to this wallet it did not know. Returns how many
    /// channels the graph holds now.
    pub async fn refresh_graph(&self) -> Result<usize, MeshError> {
        let chain = self.chain()?;
        let network_error =
            |e: alloy::transports::TransportError| MeshError::Network(e.to_string());
        let from: Option<i64> =
            sqlx::query_scalar("SELECT next_block FROM graph_progress WHERE id = 0")
                .fetch_optional(self.journal.pool())
                .await?;
        let from = from.map_or(self.config.deploy_block, |block| block.unsigned_abs());
        let latest = chain.get_block_number().await.map_err(network_error)?;
        if latest >= from {
            let filter = alloy::rpc::types::Filter::new()
                .address(self.config.token_network)
                .from_block(from)
                .to_block(latest);
            let logs = chain.get_logs(&filter).await.map_err(network_error)?;
            let mut tx = self.journal.pool().begin().await?;
            for log in logs {
                if let Ok(opened) = log.log_decode::<TokenNetwork::ChannelOpened>() {
                    let opened = opened.inner.data;
                    sqlx::query(
                        "INSERT INTO graph_channels (channel_id, participant1, participant2) \
                         VALUES (?, ?, ?) ON CONFLICT (channel_id) DO NOTHING",
                    )
                    .bind(opened.channelId.as_slice())
                    .bind(opened.participant1.to_string())
                    .bind(opened.participant2.to_string())
                    .execute(&mut *tx)
                    .await?;
                } else if let Some(gone) = settled_channel(&log) {
                    sqlx::query("DELETE FROM graph_channels WHERE channel_id = ?")
                        .bind(gone.as_slice())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query(
                "INSERT INTO graph_progress (id, next_block) VALUES (0, ?) \
                 ON CONFLICT (id) DO UPDATE SET next_block = excluded.next_block",
            )
            .bind(
                i64::try_from(latest + 1).map_err(|_| MeshError::OutOfRange {
                    field: "block",
                    value: latest.to_string(),
                })?,
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        // A channel someone opened to this wallet is tracked as soon as the chain shows it.
        let me = self.address().to_string();
        let mine: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT channel_id FROM graph_channels WHERE participant1 = ? OR participant2 = ?",
        )
        .bind(&me)
        .bind(&me)
        .fetch_all(self.journal.pool())
        .await?;
        let tracked: Vec<B256> = self.channels().await?.iter().map(|c| c.id).collect();
        for id in mine {
            let id =
                B256::try_from(id.as_slice()).map_err(|_| MeshError::Stored("graph channel"))?;
            if !tracked.contains(&id) {
                let channel = self.refresh(id).await?;
                tracing::info!(target: "smartmesh::mesh", %id, partner = %channel.partner, "tracking a channel opened to this wallet");
            }
        }
        let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM graph_channels")
            .fetch_one(self.journal.pool())
            .await?;
        Ok(usize::try_from(known).unwrap_or_default())
    }

    /// This wallet's signed hints for its open channels: what it can send toward each partner
    /// and the fee it asks to forward, good for `ttl` seconds (at most [`MAX_HINT_TTL`]).
    pub async fn capacity_hints(&self, ttl: u64) -> Result<Vec<Vec<u8>>, MeshError> {
        let domain = hint_domain(self.config.chain_id, self.config.token_network);
        let expires_at = self.now() + ttl.clamp(1, MAX_HINT_TTL);
        let mut hints = Vec::new();
        for channel in self.channels().await? {
            if channel.state != Phase::Open || channel.frozen.is_some() {
                continue;
            }
            let hint = CapacityHint {
                node: self.address(),
                partner: channel.partner,
                channelId: channel.id,
                capacity: self.capacity(channel.id).await?.can_send,
                fee: self.min_fee(),
                expiresAt: expires_at,
            };
            let signature = sign_typed(&self.key, &hint, &domain);
            hints.push(encode_hint(&hint, &signature));
        }
        Ok(hints)
    }
}

fn settled_channel(log: &alloy::rpc::types::Log) -> Option<B256> {
    if let Ok(settled) = log.log_decode::<TokenNetwork::ChannelSettled>() {
        return Some(settled.inner.data.channelId);
    }
    log.log_decode::<TokenNetwork::ChannelCooperativelySettled>()
        .ok()
        .map(|settled| settled.inner.data.channelId)
}

/// The total a payer sends for `amount` with `fee` in fees, refused above a lock's u128.
pub(crate) fn lock_amount(amount: U256, fee: U256) -> Result<u128, MeshError> {
    amount
        .checked_add(fee)
        .and_then(|total| u128::try_from(total).ok())
        .ok_or(MeshError::OutOfRange {
            field: "amount",
            value: amount.to_string(),
        })
}
