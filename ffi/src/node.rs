//! The wallet's mesh node for an app: started with a listener the app implements, which hears
//! what the node does (peers met and gone, messages taken, transfers ended, syncs) on the
//! library's threads; stopped with `stop`, which says whether it ran to the end cleanly.

use std::{sync::Arc, time::Duration};

use smartmesh_mesh::{Mesh, MeshNode, NodeConfig, NodeEvent, P2pConfig, TransferOutcome};
use tokio::sync::{Mutex, oneshot};

use crate::{
    MeshFfiError,
    config::address,
    runtime::{on_runtime, spawn},
};

/// How the node runs.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NodeOptions {
    /// Where it listens, as multiaddrs (`/ip4/0.0.0.0/tcp/0` when empty).
    pub listen: Vec<String>,
    /// Peers to dial, as multiaddrs: at start, and every 3 s while not connected.
    pub dial: Vec<String>,
    /// Look for peers on the local link with mDNS.
    pub mdns: bool,
    /// Seconds between calls to the services (chain graph, watcher sync) when online.
    pub sync_interval_secs: u64,
    /// Where data sent to this wallet is written, one file per session.
    pub received_dir: Option<String>,
}

/// What the node reports as it runs.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum NodeUpdate {
    /// A peer came in reach.
    Met {
        /// Its address.
        peer: String,
    },
    /// A peer went out of reach.
    Left {
        /// Its address.
        peer: String,
    },
    /// The node listens here (a multiaddr other nodes can dial).
    Listening {
        /// The multiaddr.
        address: String,
    },
    /// A peer's channel message was taken: `payment`, `locked_transfer`, `unlock`,
    /// `lock_expired` or `reveal_secret`.
    Received {
        /// The peer it came from.
        peer: String,
        /// The message's kind.
        kind: String,
    },
    /// A transfer this wallet took part in ended.
    TransferEnded {
        /// The transfer's condition.
        condition_id: String,
        /// `initiator`, `mediator` or `target`.
        role: String,
        /// Whether it was paid (else every lock expired back).
        paid: bool,
    },
    /// The watcher took what the wallet synced.
    Synced {
        /// Receipts it stored newly.
        stored: u64,
    },
}

impl NodeUpdate {
    fn of(event: NodeEvent) -> Self {
        match event {
            NodeEvent::Met(peer) => Self::Met {
                peer: peer.to_string(),
            },
            NodeEvent::Left(peer) => Self::Left {
                peer: peer.to_string(),
            },
            NodeEvent::Listening(address) => Self::Listening { address },
            NodeEvent::Received { from, kind } => Self::Received {
                peer: from.to_string(),
                kind: kind.to_owned(),
            },
            NodeEvent::TransferEnded(summary) => Self::TransferEnded {
                condition_id: summary.condition_id.to_string(),
                role: summary.role,
                paid: summary.outcome == TransferOutcome::Paid,
            },
            NodeEvent::Synced(report) => Self::Synced {
                stored: u64::try_from(report.stored).unwrap_or(u64::MAX),
            },
        }
    }
}

/// What the app implements to hear from the node. Called on the library's threads: hand the
/// update to the app's own thread before touching its interface.
#[uniffi::export(with_foreign)]
pub trait NodeListener: Send + Sync {
    /// Something happened.
    fn on_update(&self, update: NodeUpdate);
    /// The node stopped on its own: its journal failed (`error` says how). Not called after
    /// `stop`.
    fn on_stopped(&self, error: String);
}

/// A payment the node started.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PaymentStarted {
    /// The transfer's condition; none for a direct payment.
    pub condition_id: Option<String>,
    /// The mediators, in order.
    pub mediators: Vec<String>,
    /// What the route costs in fees, in SMT.
    pub fee: String,
}

/// A running node.
#[derive(uniffi::Object)]
pub struct Node {
    node: Arc<MeshNode>,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    running: Mutex<Option<tokio::task::JoinHandle<Result<(), smartmesh_mesh::MeshError>>>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").finish_non_exhaustive()
    }
}

fn multiaddrs(
    field: &str,
    texts: &[String],
) -> Result<Vec<smartmesh_mesh::Multiaddr>, MeshFfiError> {
    texts
        .iter()
        .map(|text| {
            text.parse()
                .map_err(|_| MeshFfiError::invalid(format!("{field} {text:?} is not a multiaddr")))
        })
        .collect()
}

impl Node {
    pub(crate) async fn start(
        mesh: Arc<Mesh>,
        options: NodeOptions,
        listener: Arc<dyn NodeListener>,
    ) -> Result<Arc<Self>, MeshFfiError> {
        let mut p2p = P2pConfig::default();
        if !options.listen.is_empty() {
            p2p.listen = multiaddrs("listen", &options.listen)?;
        }
        p2p.dial = multiaddrs("dial", &options.dial)?;
        p2p.mdns = options.mdns;
        if options.sync_interval_secs == 0 {
            return Err(MeshFfiError::invalid(
                "sync_interval_secs 0: the services are called at most once a second",
            ));
        }
        let config = NodeConfig {
            p2p,
            sync_interval: Duration::from_secs(options.sync_interval_secs),
            received_dir: options.received_dir.map(Into::into),
            ..NodeConfig::default()
        };
        on_runtime(async move {
            let node = Arc::new(MeshNode::start(mesh, config).await?);
            // Subscribed before it runs: no update is missed.
            let mut updates = node.subscribe();
            let (stop, stopped) = oneshot::channel::<()>();
            let heard = listener.clone();
            spawn(async move {
                loop {
                    match updates.recv().await {
                        Ok(event) => heard.on_update(NodeUpdate::of(event)),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(target: "smartmesh::ffi", missed, "the node listener fell behind");
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
            let runner = node.clone();
            let running = spawn(async move {
                let result = runner
                    .run(async move {
                        let _ = stopped.await;
                    })
                    .await;
                if let Err(error) = &result {
                    listener.on_stopped(error.to_string());
                }
                result
            });
            Ok(Arc::new(Self {
                node,
                shutdown: Mutex::new(Some(stop)),
                running: Mutex::new(Some(running)),
            }))
        })
        .await
    }
}

#[uniffi::export]
impl Node {
    /// The node's peer id on the transport.
    pub fn peer_id(&self) -> String {
        self.node.transport().peer_id().to_string()
    }

    /// Dials a peer at `address` (a multiaddr), and again every 3 s while it is not connected.
    pub fn dial(&self, address: String) -> Result<(), MeshFfiError> {
        let address = multiaddrs("address", &[address])?.remove(0);
        self.node
            .transport()
            .dial(address)
            .map_err(|e| MeshFfiError::from(smartmesh_mesh::MeshError::from(e)))
    }

    /// Pays `amount` SMT to `target`: over a channel with it, else along the cheapest route
    /// whose fees are at most `max_fee` SMT. What cannot go now waits for the next meeting.
    pub async fn pay(
        &self,
        target: String,
        amount: String,
        max_fee: String,
    ) -> Result<PaymentStarted, MeshFfiError> {
        let node = self.node.clone();
        let target = address("target", &target)?;
        let amount = smartmesh_mesh::parse_positive_smt("amount", &amount)?;
        let max_fee = smartmesh_mesh::parse_smt("max_fee", &max_fee)?;
        on_runtime(async move {
            let started = node.pay(target, amount, max_fee).await?;
            Ok(PaymentStarted {
                condition_id: started.condition_id.map(|id| id.to_string()),
                mediators: started
                    .route
                    .mediators
                    .iter()
                    .map(|hop| hop.node.to_string())
                    .collect(),
                fee: smartmesh_mesh::format_smt(started.route.total_fee),
            })
        })
        .await
    }

    /// Stops the node and waits for it; says how it ended (an error if its journal failed).
    /// Stopping a stopped node does nothing.
    pub async fn stop(&self) -> Result<(), MeshFfiError> {
        if let Some(stop) = self.shutdown.lock().await.take() {
            let _ = stop.send(());
        }
        let Some(running) = self.running.lock().await.take() else {
            return Ok(());
        };
        on_runtime(async move {
            running.await.map_err(|e| MeshFfiError::Internal {
                message: format!("the node stopped: {e}"),
            })??;
            Ok(())
        })
        .await
    }
}
