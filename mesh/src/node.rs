//! A phone's node: the wallet on the peer-to-peer transport, running on its own. It takes
//! what peers hand it (payments, locks to forward, secrets, unlocks) and answers; hands over
//! what waits in the outbox whenever a peer comes in reach; lets time act on its transfers;
//! gossips its capacity hints and routes on its neighbours'; and, whenever the services are
//! reachable, reads the channel graph from the chain and syncs its receipts and secrets to the
//! watcher. One loop ([`MeshNode::run`]) does all of it; a journal error stops it loudly.

use std::{
    collections::HashSet,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};
use smartmesh_protocol::{
    mediated::{ChannelGraph, LockOutcome, Role, Route, TransferState, hint_domain},
    relay::{MAX_PACKET, SessionTerms},
};
use tokio::sync::broadcast;

use crate::{
    Mesh, MeshError, P2pConfig, P2pEvent, P2pTransport, Started, SyncReport, Taken,
    graph::decode_hint, transport::Transport,
};

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where it listens and whom it looks for.
    pub p2p: P2pConfig,
    /// How often it gossips its hints (they are good for four times as long).
    pub hint_interval: Duration,
    /// How often it tries the services (chain graph, watcher sync) when they are configured.
    pub sync_interval: Duration,
    /// How often time acts on its transfers.
    pub tick: Duration,
    /// Where data sessions addressed to this node are written, one file per session.
    pub received_dir: Option<std::path::PathBuf>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            p2p: P2pConfig::default(),
            hint_interval: Duration::from_secs(30),
            sync_interval: Duration::from_secs(60),
            tick: Duration::from_secs(1),
            received_dir: None,
        }
    }
}

/// How a transfer this node took part in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferOutcome {
    /// Still under way.
    Pending,
    /// Paid: the target got the amount, each mediator its fee.
    Paid,
    /// Every lock expired back to its payer.
    Refunded,
}

/// A transfer as a node reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferSummary {
    /// The transfer's condition.
    pub condition_id: B256,
    /// This node's part: `initiator`, `mediator` or `target`.
    pub role: String,
    /// The lock this node received, in wei (none for the initiator).
    pub received: Option<u128>,
    /// The lock this node paid, in wei (none for the target).
    pub paid: Option<u128>,
    /// How it ended.
    pub outcome: TransferOutcome,
}

impl TransferSummary {
    /// The summary of a transfer's state.
    pub fn of(state: &TransferState) -> Self {
        let settled = |hop: &Option<smartmesh_protocol::mediated::HopLock>| {
            hop.as_ref().map(|hop| hop.settled)
        };
        let outcome = match (
            state.role,
            settled(&state.upstream),
            settled(&state.downstream),
        ) {
            (Role::Initiator, _, Some(Some(LockOutcome::Unlocked)))
            | (Role::Target, Some(Some(LockOutcome::Unlocked)), _)
            | (Role::Mediator, Some(Some(LockOutcome::Unlocked)), Some(Some(_))) => {
                TransferOutcome::Paid
            }
            (Role::Initiator, _, Some(Some(LockOutcome::Expired)))
            | (Role::Target, Some(Some(LockOutcome::Expired)), _)
            | (Role::Mediator, Some(Some(LockOutcome::Expired)), Some(Some(_))) => {
                TransferOutcome::Refunded
            }
            _ => TransferOutcome::Pending,
        };
        Self {
            condition_id: state.condition_id,
            role: match state.role {
                Role::Initiator => "initiator",
                Role::Mediator => "mediator",
                Role::Target => "target",
            }
            .to_owned(),
            received: state.upstream.map(|hop| hop.lock.amount),
            paid: state.downstream.map(|hop| hop.lock.amount),
            outcome,
        }
    }
}

/// What a node reports as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A peer came in reach.
    Met(Address),
    /// A peer went out of reach.
    Left(Address),
    /// The node listens here.
    Listening(String),
    /// A peer's channel message was taken.
    Received {
        /// The peer.
        from: Address,
        /// The message's kind, as the wire names it.
        kind: &'static str,
    },
    /// A transfer this node takes part in ended.
    TransferEnded(TransferSummary),
    /// The watcher took what the wallet synced.
    Synced(SyncReport),
}

/// A wallet running on the peer-to-peer transport.
pub struct MeshNode {
    mesh: Arc<Mesh>,
    transport: P2pTransport,
    config: NodeConfig,
    graph: Mutex<ChannelGraph>,
    events: broadcast::Sender<NodeEvent>,
    reported: Mutex<HashSet<B256>>,
}

impl std::fmt::Debug for MeshNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshNode")
            .field("address", &self.mesh.address())
            .finish_non_exhaustive()
    }
}

/// A failure that means the node cannot go on: its journal is broken.
fn fatal(error: &MeshError) -> bool {
    matches!(
        error,
        MeshError::Journal(_) | MeshError::Migration(_) | MeshError::Stored(_)
    )
}

impl MeshNode {
    /// Starts the node of `mesh` on the transport.
    pub async fn start(mesh: Arc<Mesh>, config: NodeConfig) -> Result<Self, MeshError> {
        let secret: [u8; 32] = mesh.key.credential().to_bytes().into();
        let transport = P2pTransport::start(&secret, config.p2p.clone()).await?;
        let graph = mesh.channel_graph().await?;
        let (events, _) = broadcast::channel(1024);
        let reported = mesh
            .transfers()
            .await?
            .iter()
            .filter(|state| TransferSummary::of(state).outcome != TransferOutcome::Pending)
            .map(|state| state.condition_id)
            .collect();
        Ok(Self {
            mesh,
            transport,
            config,
            graph: Mutex::new(graph),
            events,
            reported: Mutex::new(reported),
        })
    }

    /// The wallet.
    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    /// The transport (for its peer id and the peers in reach).
    pub fn transport(&self) -> &P2pTransport {
        &self.transport
    }

    /// What the node reports from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    fn report(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    fn graph(&self) -> std::sync::MutexGuard<'_, ChannelGraph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cheapest route to `target` for `amount` the node can pay along now.
    pub fn route(&self, target: Address, amount: U256) -> Result<Route, MeshError> {
        self.mesh
            .route_on(&self.graph(), target, amount)
            .map(|(route, _)| route)
    }

    /// Pays `amount` to `target`: directly over a channel with it, else along the cheapest
    /// route, refused when its fees exceed `max_fee`. What cannot go out now waits for the
    /// next meeting.
    pub async fn pay(
        &self,
        target: Address,
        amount: U256,
        max_fee: U256,
    ) -> Result<Started, MeshError> {
        let route = self.mesh.route_on(&self.graph(), target, amount)?;
        self.mesh
            .pay_along(&self.transport, route, amount, max_fee)
            .await
    }

    /// Runs the node until `shutdown` resolves. Returns an error, and stops, only when the
    /// wallet's journal fails (a peer's bad message or an unreachable service is logged and
    /// the node goes on).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), MeshError> {
        // The chain and the services are called on a loop of their own: a call that waits on
        // a link gone dead (until its timeout) must not keep peers' messages waiting.
        tokio::select! {
            () = shutdown => Ok(()),
            result = self.serve_peers() => result,
            () = self.call_services() => Ok(()),
        }
    }

    async fn serve_peers(&self) -> Result<(), MeshError> {
        let mut tick = tokio::time::interval(self.config.tick);
        let mut hints = tokio::time::interval(self.config.hint_interval);
        for interval in [&mut tick, &mut hints] {
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            let step = tokio::select! {
                message = self.transport.recv() => match message {
                    Some((from, bytes)) => self.handle(from, &bytes).await,
                    None => return Err(MeshError::Transport(crate::TransportError::Closed)),
                },
                event = self.transport.next_event() => match event {
                    Some(event) => self.on_event(event).await,
                    None => return Err(MeshError::Transport(crate::TransportError::Closed)),
                },
                _ = tick.tick() => self.tick().await,
                _ = hints.tick() => self.gossip().await,
            };
            match step {
                Ok(()) => {}
                Err(error) if fatal(&error) => return Err(error),
                Err(error) => {
                    tracing::warn!(target: "smartmesh::node", %error, "step failed");
                }
            }
        }
    }

    async fn call_services(&self) {
        let mut services = tokio::time::interval(self.config.sync_interval);
        services.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            services.tick().await;
            self.services().await;
        }
    }

    async fn handle(&self, from: Address, bytes: &[u8]) -> Result<(), MeshError> {
        // Said before it is taken: a refused message is in the log too, beside its refusal.
        if !smartmesh_protocol::relay::is_data_frame(bytes)
            && let Ok(message) = smartmesh_protocol::channel::ChannelMessage::decode(bytes)
        {
            tracing::info!(target: "smartmesh::node", %from, kind = crate::message_kind(&message), "received");
        }
        let (taken, out) = self.mesh.take(from, bytes).await?;
        self.mesh.hand_over(&self.transport, out).await?;
        match taken {
            Taken::Frame { session, paid } => {
                if paid
                    && let Some(summary) = self
                        .mesh
                        .session_summaries()
                        .into_iter()
                        .find(|summary| summary.session == session)
                {
                    tracing::info!(target: "smartmesh::node", %session, earned = summary.earned, packets = summary.packets, "paid for relaying");
                }
                self.write_received(session)
            }
            Taken::Held(kind) => {
                tracing::info!(target: "smartmesh::node", %from, kind, "held until the chain can be read");
                Ok(())
            }
            Taken::Message(kind) => {
                self.report(NodeEvent::Received { from, kind });
                self.report_ended().await
            }
        }
    }

    /// Writes what a session delivered to this node so far to `received/<session>` in the
    /// wallet's directory, when it is the recipient and a directory is set.
    fn write_received(&self, session: B256) -> Result<(), MeshError> {
        let (Some(dir), Some(data)) = (&self.config.received_dir, self.mesh.session_data(session))
        else {
            return Ok(());
        };
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(dir.join(session.to_string()), data))
            .map_err(|e| MeshError::Wallet(format!("cannot write received data: {e}")))
    }

    /// Sends `data` to `target` along the cheapest route, offering each relay `price` wei a
    /// packet, acknowledged every `k` packets of at most [`MAX_PACKET`] bytes, each window
    /// pre-locked with `pre_lock`. Returns the session and its relays.
    pub async fn send_data(
        &self,
        target: Address,
        data: &[u8],
        price: u128,
        k: u64,
        pre_lock: bool,
    ) -> Result<(B256, Vec<Address>), MeshError> {
        let (route, _) = self.mesh.route_on(&self.graph(), target, U256::ZERO)?;
        if route.mediators.is_empty() {
            return Err(MeshError::Malformed(
                "data for a neighbour: there is no relay to pay, hand it over directly",
            ));
        }
        let relays: Vec<Address> = route.mediators.iter().map(|hop| hop.node).collect();
        let packets: Vec<Vec<u8>> = data.chunks(MAX_PACKET).map(<[u8]>::to_vec).collect();
        let terms = SessionTerms {
            session: B256::random(),
            sender: self.mesh.address(),
            recipient: target,
            prices: vec![price; relays.len()],
            relays: relays.clone(),
            k,
            packets: u64::try_from(packets.len()).unwrap_or(u64::MAX),
        };
        let out = self
            .mesh
            .open_session(terms.clone(), packets, pre_lock)
            .await?;
        self.mesh.hand_over(&self.transport, out).await?;
        Ok((terms.session, relays))
    }

    async fn on_event(&self, event: P2pEvent) -> Result<(), MeshError> {
        match event {
            P2pEvent::Met(peer) => {
                self.report(NodeEvent::Met(peer));
                let sent = self.mesh.flush(&self.transport).await?;
                if sent > 0 {
                    tracing::info!(target: "smartmesh::node", %peer, sent, "handed over what waited");
                }
                self.gossip().await?;
            }
            P2pEvent::Left(peer) => self.report(NodeEvent::Left(peer)),
            P2pEvent::Listening(address) => {
                tracing::info!(target: "smartmesh::node", %address, "listening");
                self.report(NodeEvent::Listening(address.to_string()));
            }
            P2pEvent::Hint(bytes) => {
                let (hint, signature) = decode_hint(&bytes)?;
                let domain = hint_domain(self.mesh.config.chain_id, self.mesh.config.token_network);
                if let Err(error) =
                    self.graph()
                        .add_hint(&hint, &signature, &domain, self.mesh.now())
                {
                    tracing::debug!(target: "smartmesh::node", node = %hint.node, %error, "hint refused");
                }
            }
        }
        Ok(())
    }

    async fn tick(&self) -> Result<(), MeshError> {
        // A message that failed to go to a peer still in reach (a connection replaced while
        // it was on it) waits in the outbox: no new meeting would hand it over.
        self.mesh.flush(&self.transport).await?;
        let out = self.mesh.tick_transfers().await?;
        if !out.is_empty() {
            self.mesh.send_or_queue(&self.transport, out).await?;
        }
        self.report_ended().await
    }

    async fn gossip(&self) -> Result<(), MeshError> {
        let ttl = u64::try_from(self.config.hint_interval.as_millis().saturating_mul(4))
            .unwrap_or(u64::MAX)
            .div_ceil(1000)
            .max(2);
        for hint in self.mesh.capacity_hints(ttl).await? {
            self.transport.publish_hint(hint)?;
        }
        Ok(())
    }

    /// Reads the graph from the chain and syncs to the watcher, where they are configured and
    /// reachable.
    async fn services(&self) {
        if self.mesh.reaches_chain() {
            match self.mesh.refresh_graph().await {
                Ok(known) => match self.mesh.channel_graph().await {
                    Ok(fresh) => {
                        tracing::debug!(target: "smartmesh::node", known, "graph read from the chain");
                        self.graph().merge_channels(&fresh);
                    }
                    Err(error) => tracing::warn!(target: "smartmesh::node", %error, "graph"),
                },
                Err(error) => {
                    tracing::debug!(target: "smartmesh::node", %error, "chain not reachable")
                }
            }
            match self.mesh.take_held().await {
                Ok(out) => {
                    if let Err(error) = self.mesh.send_or_queue(&self.transport, out).await {
                        tracing::warn!(target: "smartmesh::node", %error, "answering held messages");
                    }
                }
                Err(error) => tracing::debug!(target: "smartmesh::node", %error, "held messages"),
            }
        }
        if self.mesh.reaches_watcher() {
            match self.mesh.sync().await {
                Ok(report) => {
                    if report.stored + report.backups + report.secrets > 0 {
                        tracing::info!(target: "smartmesh::node", stored = report.stored, backups = report.backups, secrets = report.secrets, "synced to the watcher");
                    }
                    self.report(NodeEvent::Synced(report));
                }
                Err(error) => {
                    tracing::debug!(target: "smartmesh::node", %error, "watcher not reachable")
                }
            }
        }
    }

    async fn report_ended(&self) -> Result<(), MeshError> {
        for state in self.mesh.transfers().await? {
            let summary = TransferSummary::of(&state);
            if summary.outcome == TransferOutcome::Pending {
                continue;
            }
            if self
                .reported
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(state.condition_id)
            {
                tracing::info!(target: "smartmesh::node", condition = %summary.condition_id, role = summary.role, outcome = ?summary.outcome, "transfer ended");
                self.report(NodeEvent::TransferEnded(summary));
            }
        }
        Ok(())
    }
}
