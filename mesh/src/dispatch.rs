//! What a wallet does on a mesh, whatever runs it: find a route on the graph it knows, start
//! a payment along it, take what a peer handed over, hand over what that produced. The node
//! ([`crate::MeshNode`]) and the simulator drive a wallet through these same calls, so a
//! simulated phone follows the rules a real one does.

use alloy::primitives::{Address, B256, U256};
use smartmesh_protocol::{
    channel::ChannelMessage,
    mediated::{ChannelGraph, Payment, Route},
    relay::{DataFrame, is_data_frame},
};

use crate::{Mesh, MeshError, SessionOut, graph::lock_amount, transport::Transport};

/// A payment started: its condition and the route it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The transfer's condition (a direct payment has none).
    pub condition_id: Option<B256>,
    /// The route, with its fees.
    pub route: Route,
}

/// What a peer's message was, once taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// A channel message, of this kind as the wire names it.
    Message(&'static str),
    /// A channel message held until the chain can be read ([`Mesh::take_held`]).
    Held(&'static str),
    /// A data frame of this session; `paid` when it was a payment notice.
    Frame {
        /// The session.
        session: B256,
        /// Whether it was a `Paid` notice.
        paid: bool,
    },
}

/// The wire's name of a channel message's kind.
pub fn message_kind(message: &ChannelMessage) -> &'static str {
    match message {
        ChannelMessage::Payment(_) => "payment",
        ChannelMessage::LockedTransfer(_) => "locked_transfer",
        ChannelMessage::Unlock(_) => "unlock",
        ChannelMessage::LockExpired(_) => "lock_expired",
        ChannelMessage::RevealSecret(_) => "reveal_secret",
    }
}

impl Mesh {
    /// The cheapest route to `target` for `amount` on `graph` now, with the target's key when
    /// the route has mediators (the secret is sealed to it).
    pub fn route_on(
        &self,
        graph: &ChannelGraph,
        target: Address,
        amount: U256,
    ) -> Result<(Route, Option<[u8; 33]>), MeshError> {
        let max_hops = self.mediation().max_hops;
        let route = graph
            .route(self.address(), target, amount, max_hops, self.now())
            .ok_or(MeshError::NoRoute {
                target,
                amount,
                max_hops,
            })?;
        if route.mediators.is_empty() {
            return Ok((route, None));
        }
        let key = graph.key_of(target).ok_or(MeshError::UnknownKey(target))?;
        Ok((route, Some(key)))
    }

    /// Pays `amount` along `route` (from [`Mesh::route_on`]): directly over the channel when
    /// it has no mediators, else locked to the first with a fresh secret sealed to the target;
    /// refused when its fees exceed `max_fee`. What cannot go out now waits in the outbox.
    pub async fn pay_along(
        &self,
        transport: &impl Transport,
        (route, target_key): (Route, Option<[u8; 33]>),
        amount: U256,
        max_fee: U256,
    ) -> Result<Started, MeshError> {
        let target = route.target;
        if route.total_fee > max_fee {
            return Err(MeshError::FeeAboveMax {
                fee: route.total_fee,
                max_fee,
            });
        }
        if route.mediators.is_empty() {
            let id = self.channel_with(target).await?;
            let proof = self.pay(id, amount).await?;
            let out = vec![crate::Outgoing {
                to: target,
                message: ChannelMessage::Payment(proof),
            }];
            self.send_or_queue(transport, out).await?;
            return Ok(Started {
                condition_id: None,
                route,
            });
        }
        let target_key = target_key.ok_or(MeshError::UnknownKey(target))?;
        // Whole in a lock's u128, fees included, or refused.
        lock_amount(amount, route.total_fee)?;
        let payment = Payment {
            mediators: route.mediators.clone(),
            target,
            target_key,
            amount: lock_amount(amount, U256::ZERO)?,
            secret: B256::random(),
            ephemeral: B256::random(),
        };
        let out = self.pay_routed(&payment).await?;
        self.send_or_queue(transport, out).await?;
        Ok(Started {
            condition_id: Some(smartmesh_protocol::hashlock_condition_id(&payment.secret)),
            route,
        })
    }

    /// Takes what `from` handed over (a channel message or a data frame) and returns what to
    /// hand over in answer ([`Mesh::hand_over`]). A lock removed unpaid is taken only against a
    /// registry read showing its condition unmet in time: it is read when the chain can be
    /// (offline it is held, with what that partner sends after it, until the chain can be).
    pub async fn take(
        &self,
        from: Address,
        bytes: &[u8],
    ) -> Result<(Taken, SessionOut), MeshError> {
        if is_data_frame(bytes) {
            let frame = DataFrame::decode(bytes)?;
            let session = match &frame {
                DataFrame::Open(terms) => terms.session,
                DataFrame::Packet { session, .. }
                | DataFrame::Paid { session, .. }
                | DataFrame::Locked { session, .. } => *session,
                DataFrame::Ack(ack) => ack.checkpoint.session,
            };
            let paid = matches!(frame, DataFrame::Paid { .. });
            let out = self.handle_frame(from, frame).await?;
            return Ok((Taken::Frame { session, paid }, out));
        }
        let message = ChannelMessage::decode(bytes)?;
        let kind = message_kind(&message);
        if let ChannelMessage::LockExpired(expired) = &message
            && self.reaches_chain()
            && let Err(error) = self.check_registry(expired.condition_id).await
        {
            tracing::debug!(target: "smartmesh::mesh", %error, "registry not read");
        }
        if self.holds_from(from).await? {
            self.hold(from, bytes).await?;
            return Ok((Taken::Held(kind), SessionOut::default()));
        }
        let channel = match self.receive_routed(from, message.clone()).await {
            Ok(channel) => channel,
            Err(error) if Self::needs_registry(&message, &error) => {
                self.hold(from, bytes).await?;
                return Ok((Taken::Held(kind), SessionOut::default()));
            }
            Err(error) => return Err(error),
        };
        Ok((
            Taken::Message(kind),
            SessionOut {
                channel,
                frames: Vec::new(),
            },
        ))
    }

    /// Hands `out` over: its channel messages through the outbox (never lost), its data
    /// frames if the link is up (a lost frame stalls its session, never its payments).
    /// Returns the frames that could not go.
    pub async fn hand_over(
        &self,
        transport: &impl Transport,
        out: SessionOut,
    ) -> Result<usize, MeshError> {
        self.send_or_queue(transport, out.channel).await?;
        let mut lost = 0;
        for (to, frame) in out.frames {
            if let Err(error) = transport.send(to, frame.encode()).await {
                tracing::debug!(target: "smartmesh::mesh", %to, %error, "data frame not handed over");
                lost += 1;
            }
        }
        Ok(lost)
    }
}
