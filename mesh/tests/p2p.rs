//! Three nodes on the real peer-to-peer transport (TCP, Noise, yamux on loopback): Alice pays
//! Carol through Brandon, with only the channels Alice-Brandon and Brandon-Carol, Carol's key
//! and Brandon's capacity learned from gossiped hints; a lock for a node that is not running
//! waits in the outbox and goes out when it comes up; peers are named by their wallet address.

mod common;

use std::{path::PathBuf, sync::Arc, time::Duration};

use alloy::primitives::{Address, U256, keccak256};
use common::{config, open_between};
use smartmesh_mesh::{
    KEY_FILE, Mesh, MeshNode, Multiaddr, NodeConfig, NodeEvent, P2pConfig, TransferOutcome,
    Transport, address_of, create_key,
};
use smartmesh_protocol::mediated::MediationSettings;
use tokio::sync::broadcast;

struct Running {
    node: Arc<MeshNode>,
    events: broadcast::Receiver<NodeEvent>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), smartmesh_mesh::MeshError>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Running {
    async fn start(mesh: Arc<Mesh>, dial: Vec<Multiaddr>) -> eyre::Result<Self> {
        Self::start_on(mesh, "/ip4/127.0.0.1/tcp/0".parse()?, dial).await
    }

    async fn start_on(
        mesh: Arc<Mesh>,
        listen: Multiaddr,
        dial: Vec<Multiaddr>,
    ) -> eyre::Result<Self> {
        // RUST_LOG=smartmesh=debug shows what the nodes do.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let config = NodeConfig {
            p2p: P2pConfig {
                listen: vec![listen],
                dial,
                mdns: false,
                request_timeout: Duration::from_secs(5),
            },
            hint_interval: Duration::from_millis(300),
            sync_interval: Duration::from_secs(3600),
            tick: Duration::from_millis(200),
            received_dir: None,
        };
        let node = Arc::new(MeshNode::start(mesh, config).await?);
        let events = node.subscribe();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = node.clone();
        let task = tokio::spawn(async move {
            running
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            node,
            events,
            stop: Some(stop),
            task,
        })
    }

    /// Waits for the first event `pick` returns something for.
    async fn wait_for<T>(
        &mut self,
        mut pick: impl FnMut(&NodeEvent) -> Option<T>,
    ) -> eyre::Result<T> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .map_err(|_| eyre::eyre!("no such event within 30 s"))??;
            if let Some(found) = pick(&event) {
                return Ok(found);
            }
        }
    }

    async fn listening(&mut self) -> eyre::Result<Multiaddr> {
        let address = self
            .wait_for(|event| match event {
                NodeEvent::Listening(address) => Some(address.clone()),
                _ => None,
            })
            .await?;
        Ok(format!("{address}/p2p/{}", self.node.transport().peer_id()).parse()?)
    }

    async fn stop(mut self) -> eyre::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        Ok(())
    }
}

struct Wallets {
    wallets: Vec<Arc<Mesh>>,
    dirs: Vec<PathBuf>,
}

impl Drop for Wallets {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Alice, Brandon and Carol; channels Alice-Brandon and Brandon-Carol, 100 each way.
async fn wallets(test: &str) -> eyre::Result<Wallets> {
    let (mut wallets, mut dirs) = (Vec::new(), Vec::new());
    for name in ["alice", "brandon", "carol"] {
        let dir = std::env::temp_dir().join(format!(
            "smartmesh-p2p-{test}-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        create_key(&dir.join(KEY_FILE))?;
        let wallet = Mesh::open(&dir, config()).await?;
        wallet.set_mediation(MediationSettings::SHORT, U256::from(1));
        wallets.push(Arc::new(wallet));
        dirs.push(dir);
    }
    for n in 0..2 {
        open_between(
            &wallets[n],
            &wallets[n + 1],
            keccak256([n as u8]),
            U256::from(100),
        )
        .await?;
    }
    Ok(Wallets { wallets, dirs })
}

async fn received(wallet: &Mesh, payer: usize) -> eyre::Result<U256> {
    let state = wallet.channel_state(keccak256([payer as u8])).await?;
    Ok(state.theirs.transferred())
}

/// Pays once the payer's graph has a route (hints arrive within a few gossip rounds).
async fn pay_when_routed(
    payer: &MeshNode,
    target: Address,
    amount: U256,
) -> eyre::Result<smartmesh_mesh::Started> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match payer.pay(target, amount, U256::from(10)).await {
            Ok(started) => return Ok(started),
            Err(
                smartmesh_mesh::MeshError::NoRoute { .. }
                | smartmesh_mesh::MeshError::UnknownKey(_),
            ) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

fn ended(condition: alloy::primitives::B256) -> impl FnMut(&NodeEvent) -> Option<TransferOutcome> {
    move |event| match event {
        NodeEvent::TransferEnded(summary) if summary.condition_id == condition => {
            Some(summary.outcome)
        }
        _ => None,
    }
}

#[tokio::test]
async fn alice_pays_carol_through_brandon_over_the_peer_to_peer_transport() -> eyre::Result<()> {
    let w = wallets("paid").await?;
    let mut brandon = Running::start(w.wallets[1].clone(), Vec::new()).await?;
    let at = brandon.listening().await?;
    let mut alice = Running::start(w.wallets[0].clone(), vec![at.clone()]).await?;
    let mut carol = Running::start(w.wallets[2].clone(), vec![at]).await?;
    // Peers are named by the address their Noise identity proves.
    let met = alice
        .wait_for(|event| match event {
            NodeEvent::Met(peer) => Some(*peer),
            _ => None,
        })
        .await?;
    assert_eq!(met, w.wallets[1].address());
    assert_eq!(
        address_of(&alice.node.transport().peer_id()),
        Some(w.wallets[0].address())
    );

    let carol_address = w.wallets[2].address();
    let started = pay_when_routed(&alice.node, carol_address, U256::from(5)).await?;
    assert_eq!(
        started.route.total_fee,
        U256::from(1),
        "Brandon's fee, shown before paying"
    );
    assert_eq!(
        started
            .route
            .mediators
            .iter()
            .map(|hop| hop.node)
            .collect::<Vec<_>>(),
        vec![w.wallets[1].address()]
    );
    let condition = started
        .condition_id
        .expect("a routed payment has a condition");
    assert_eq!(
        carol.wait_for(ended(condition)).await?,
        TransferOutcome::Paid
    );
    assert_eq!(
        alice.wait_for(ended(condition)).await?,
        TransferOutcome::Paid
    );
    assert_eq!(
        brandon.wait_for(ended(condition)).await?,
        TransferOutcome::Paid
    );
    assert_eq!(
        received(&w.wallets[1], 0).await?,
        U256::from(6),
        "5 and Brandon's fee"
    );
    assert_eq!(
        received(&w.wallets[2], 1).await?,
        U256::from(5),
        "Carol got 5"
    );

    // A direct payment goes over the channel itself, with no fee.
    let direct = alice
        .node
        .pay(w.wallets[1].address(), U256::from(2), U256::ZERO)
        .await?;
    assert!(direct.condition_id.is_none() && direct.route.total_fee.is_zero());
    brandon
        .wait_for(|event| {
            matches!(
                event,
                NodeEvent::Received {
                    kind: "payment",
                    ..
                }
            )
            .then_some(())
        })
        .await?;
    assert_eq!(received(&w.wallets[1], 0).await?, U256::from(8));

    // No route beyond the known graph, and none above the fee the payer allows.
    let stranger = Address::repeat_byte(0x77);
    assert!(matches!(
        alice
            .node
            .pay(stranger, U256::from(1), U256::from(10))
            .await,
        Err(smartmesh_mesh::MeshError::NoRoute { .. })
    ));
    assert!(matches!(
        alice
            .node
            .pay(carol_address, U256::from(1), U256::ZERO)
            .await,
        Err(smartmesh_mesh::MeshError::FeeAboveMax { .. })
    ));
    for node in [alice, brandon, carol] {
        node.stop().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_lock_for_a_node_that_is_down_waits_and_goes_out_when_it_comes_up() -> eyre::Result<()> {
    let w = wallets("outbox").await?;
    let mut brandon = Running::start(w.wallets[1].clone(), Vec::new()).await?;
    let at = brandon.listening().await?;
    let mut carol = Running::start(w.wallets[2].clone(), vec![at.clone()]).await?;
    let alice = Running::start(w.wallets[0].clone(), vec![at.clone()]).await?;
    // Alice learns the route while Carol is up; then Carol's node stops.
    let route = loop {
        match alice.node.route(w.wallets[2].address(), U256::from(5)) {
            Ok(route) => break route,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(route.mediators.len(), 1);
    carol
        .wait_for(|event| matches!(event, NodeEvent::Met(_)).then_some(()))
        .await?;
    carol.stop().await?;
    brandon
        .wait_for(|event| matches!(event, NodeEvent::Left(_)).then_some(()))
        .await?;

    let started = alice
        .node
        .pay(w.wallets[2].address(), U256::from(5), U256::from(10))
        .await?;
    let condition = started.condition_id.expect("routed");
    // Brandon took the lock and forwards it: it waits for Carol in his outbox.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while w.wallets[1]
        .waiting(w.wallets[2].address())
        .await?
        .is_empty()
    {
        eyre::ensure!(
            tokio::time::Instant::now() < deadline,
            "Brandon never queued the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !brandon
            .node
            .transport()
            .reachable()
            .contains(&w.wallets[2].address())
    );

    // Carol's node comes back: the lock goes out, and the payment completes.
    let mut carol = Running::start(w.wallets[2].clone(), vec![at]).await?;
    assert_eq!(
        carol.wait_for(ended(condition)).await?,
        TransferOutcome::Paid
    );
    assert!(
        w.wallets[1]
            .waiting(w.wallets[2].address())
            .await?
            .is_empty()
    );
    assert_eq!(received(&w.wallets[2], 1).await?, U256::from(5));
    for node in [alice, brandon, carol] {
        node.stop().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_node_started_before_its_peer_meets_it_when_it_comes_up_and_after_it_restarts()
-> eyre::Result<()> {
    let w = wallets("redial").await?;
    // Brandon's port is known before he listens on it, as a `--peer` address is.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let at: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse()?;
    let mut alice = Running::start(w.wallets[0].clone(), vec![at.clone()]).await?;
    let met = |who: Address| {
        move |event: &NodeEvent| matches!(event, NodeEvent::Met(a) if *a == who).then_some(())
    };
    let brandon_address = w.wallets[1].address();
    // Alice's first dial found nobody there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !alice
            .node
            .transport()
            .reachable()
            .contains(&brandon_address)
    );

    for _ in 0..2 {
        let brandon = Running::start_on(w.wallets[1].clone(), at.clone(), Vec::new()).await?;
        alice.wait_for(met(brandon_address)).await?;
        brandon.stop().await?;
        alice
            .wait_for(|event| {
                matches!(event, NodeEvent::Left(a) if *a == brandon_address).then_some(())
            })
            .await?;
    }
    alice.stop().await
}

#[test]
fn a_peer_without_a_secp256k1_identity_has_no_address() {
    assert_eq!(address_of(&smartmesh_mesh::PeerId::random()), None);
}
