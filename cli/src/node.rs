//! `smartmesh node`: a phone's node on a computer. It runs the wallet on the peer-to-peer
//! transport (mediating, forwarding, syncing whenever the services are reachable) and takes
//! the wallet's own commands over a control socket in the wallet's directory, so that
//! `smartmesh pay --to` and `smartmesh route` reach peers through it: one process writes the
//! journal while the node runs.

use std::{path::Path, sync::Arc, time::Duration};

use alloy::primitives::{Address, B256, U256};
use eyre::{bail, eyre};
use serde::{Deserialize, Serialize};
use smartmesh_mesh::{
    MeshError, MeshNode, Multiaddr, NodeConfig, P2pConfig, TransferSummary, Transport,
};
use smartmesh_protocol::mediated::{MediationSettings, Route};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

use crate::{
    dev::smt,
    wallet::{WalletArgs, amount, hint},
};

/// The control socket inside a wallet's directory.
pub(crate) const SOCKET: &str = "node.sock";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to listen for peers (a libp2p multiaddr); repeatable.
    #[arg(long, default_value = "/ip4/0.0.0.0/tcp/0")]
    listen: Vec<Multiaddr>,
    /// A peer to dial (`/ip4/10.0.0.2/tcp/4001`), at start and every 3 s while it is not
    /// connected; repeatable. Peers on the local link are found with mDNS without it.
    #[arg(long)]
    peer: Vec<Multiaddr>,
    /// Do not look for peers with mDNS.
    #[arg(long)]
    no_mdns: bool,
    /// The least fee, in SMT, this node asks to forward a payment.
    #[arg(long, default_value = "0.01")]
    fee: String,
    /// The least SMT a packet this node relays data for (what it asks per delivered packet).
    #[arg(long, default_value = "0.0001")]
    data_price: String,
    /// Seconds between capacity hints gossiped to the neighbours.
    #[arg(long, default_value_t = 30)]
    hint_interval: u64,
    /// Seconds between tries of the chain (for the channel graph) and the watcher (sync).
    #[arg(long, default_value_t = 60)]
    sync_interval: u64,
    /// `W`: the longest this phone is offline while it holds a secret, in seconds (default:
    /// 60 on `smartmesh dev`'s chain, 6 hours elsewhere).
    #[arg(long)]
    offline_secs: Option<u64>,
    /// `S`: seconds to get a relayed transaction mined (default 10 on dev, 600 elsewhere).
    #[arg(long)]
    mining_secs: Option<u64>,
    /// `σ`: the clock skew between phones, in seconds (default 10 on dev, 300 elsewhere).
    #[arg(long)]
    skew_secs: Option<u64>,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// A request to a running node, one JSON line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Request {
    /// The route and fee a payment would take.
    Route { to: Address, amount: U256 },
    /// Pay, directly or along the cheapest route.
    Pay {
        to: Address,
        amount: U256,
        max_fee: U256,
    },
    /// The node's peers and transfers.
    Status,
    /// Send a file's bytes along the cheapest route, paying the relays.
    Send {
        to: Address,
        data: Vec<u8>,
        price: U256,
        k: u64,
        pre_lock: bool,
    },
    /// The data sessions and what this node earned relaying.
    Sessions,
}

/// A route as the node reports it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RouteView {
    pub(crate) mediators: Vec<(Address, U256)>,
    pub(crate) total_fee: U256,
}

impl From<&Route> for RouteView {
    fn from(route: &Route) -> Self {
        Self {
            mediators: route
                .mediators
                .iter()
                .map(|hop| (hop.node, hop.fee))
                .collect(),
            total_fee: route.total_fee,
        }
    }
}

/// A running node's answer, one JSON line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub(crate) enum Response {
    Route(RouteView),
    Started {
        condition_id: Option<B256>,
        route: RouteView,
    },
    Status {
        address: Address,
        peers: Vec<Address>,
        transfers: Vec<TransferSummary>,
    },
    SessionStarted {
        session: B256,
        relays: Vec<Address>,
    },
    Sessions {
        sessions: Vec<SessionView>,
    },
    Error {
        message: String,
    },
}

/// A data session as the node reports it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SessionView {
    pub(crate) session: B256,
    pub(crate) role: String,
    pub(crate) packets: u64,
    pub(crate) acked: Option<u64>,
    pub(crate) earned: U256,
}

/// Sends `request` to the node running for the wallet in `dir`; `None` when none runs.
pub(crate) async fn ask(dir: &Path, request: &Request) -> eyre::Result<Option<Response>> {
    let Ok(stream) = UnixStream::connect(dir.join(SOCKET)).await else {
        return Ok(None);
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    Ok(Some(serde_json::from_str(&answer).map_err(|e| {
        eyre!("the node answered {answer:?}, which is not a response: {e}")
    })?))
}

fn settings(args: &Args, dev_chain: bool, finality: u64) -> MediationSettings {
    let base = if dev_chain {
        MediationSettings::SHORT
    } else {
        MediationSettings::PUBLIC
    };
    MediationSettings {
        offline: args.offline_secs.unwrap_or(base.offline),
        mining: args.mining_secs.unwrap_or(base.mining),
        finality,
        skew: args.skew_secs.unwrap_or(base.skew),
        max_hops: base.max_hops,
    }
}

pub(crate) async fn run(args: Args) -> eyre::Result<()> {
    let mesh = args.wallet.open().await?;
    let dev_chain = args.wallet.on_dev_chain()?;
    let settings = settings(&args, dev_chain, mesh.config().finality);
    mesh.set_mediation(settings, amount("--fee", &args.fee)?);
    let price = amount("--data-price", &args.data_price)?;
    mesh.set_data_price(
        u128::try_from(price)
            .map_err(|_| eyre!("--data-price {}: at most 2^128 - 1 wei", args.data_price))?,
    );
    let dir = args.wallet.dir();
    let socket = dir.join(SOCKET);
    if UnixStream::connect(&socket).await.is_ok() {
        bail!(
            "a node already runs for this wallet ({}): one process writes its journal",
            socket.display()
        );
    }
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .map_err(|e| eyre!("cannot listen on {}: {e}", socket.display()))?;
    let config = NodeConfig {
        p2p: P2pConfig {
            listen: args.listen.clone(),
            dial: args.peer.clone(),
            mdns: !args.no_mdns,
            ..P2pConfig::default()
        },
        hint_interval: Duration::from_secs(args.hint_interval.max(1)),
        sync_interval: Duration::from_secs(args.sync_interval.max(1)),
        tick: Duration::from_secs(1),
        received_dir: Some(dir.join("received")),
    };
    let node = Arc::new(MeshNode::start(Arc::new(mesh), config).await?);
    tracing::info!(
        target: "smartmesh::node",
        address = %node.mesh().address(),
        peer_id = %node.transport().peer_id(),
        delta = settings.delta(),
        "node started"
    );
    let control = tokio::spawn(serve(listener, node.clone()));
    let result = node
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    control.abort();
    let _ = std::fs::remove_file(&socket);
    result.map_err(hint)?;
    tracing::info!(target: "smartmesh::node", "node stopped");
    Ok(())
}

async fn serve(listener: UnixListener, node: Arc<MeshNode>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                return;
            }
            let response = match serde_json::from_str::<Request>(&line) {
                Ok(request) => answer(&node, request).await,
                Err(error) => Response::Error {
                    message: format!("not a request: {error}"),
                },
            };
            if let Ok(mut text) = serde_json::to_string(&response) {
                text.push('\n');
                let _ = write.write_all(text.as_bytes()).await;
            }
        });
    }
}

async fn answer(node: &MeshNode, request: Request) -> Response {
    let failed = |error: MeshError| Response::Error {
        message: error.to_string(),
    };
    match request {
        Request::Route { to, amount } => match node.route(to, amount) {
            Ok(route) => Response::Route((&route).into()),
            Err(error) => failed(error),
        },
        Request::Pay {
            to,
            amount,
            max_fee,
        } => match node.pay(to, amount, max_fee).await {
            Ok(started) => {
                tracing::info!(target: "smartmesh::node", %to, %amount, fee = %started.route.total_fee, "paying");
                Response::Started {
                    condition_id: started.condition_id,
                    route: (&started.route).into(),
                }
            }
            Err(error) => failed(error),
        },
        Request::Send {
            to,
            data,
            price,
            k,
            pre_lock,
        } => {
            let Ok(price) = u128::try_from(price) else {
                return Response::Error {
                    message: format!("--price {price} wei is above a lock's 2^128 - 1"),
                };
            };
            match node.send_data(to, &data, price, k, pre_lock).await {
                Ok((session, relays)) => {
                    tracing::info!(target: "smartmesh::node", %to, %session, bytes = data.len(), "sending data");
                    Response::SessionStarted { session, relays }
                }
                Err(error) => failed(error),
            }
        }
        Request::Sessions => Response::Sessions {
            sessions: node
                .mesh()
                .session_summaries()
                .into_iter()
                .map(|summary| SessionView {
                    session: summary.session,
                    role: summary.role.to_owned(),
                    packets: summary.packets,
                    acked: summary.acked,
                    earned: U256::from(summary.earned),
                })
                .collect(),
        },
        Request::Status => match node.mesh().transfers().await {
            Ok(transfers) => Response::Status {
                address: node.mesh().address(),
                peers: node.transport().reachable(),
                transfers: transfers.iter().map(TransferSummary::of).collect(),
            },
            Err(error) => failed(error),
        },
    }
}

/// Describes a route for a person.
pub(crate) fn describe(route: &RouteView) -> String {
    if route.mediators.is_empty() {
        return "directly, no fee".to_owned();
    }
    format!(
        "through {} (fees {} SMT)",
        route
            .mediators
            .iter()
            .map(|(node, fee)| format!("{node} asking {} SMT", smt(*fee)))
            .collect::<Vec<_>>()
            .join(", then "),
        smt(route.total_fee)
    )
}

/// `smartmesh route`: the route and fees a payment would take, as the running node knows.
#[derive(Debug, clap::Args)]
pub(crate) struct RouteArgs {
    /// Whom to pay (an address, or a wallet of the dev stack by name).
    #[arg(long)]
    to: String,
    /// SMT to deliver.
    #[arg(long)]
    amount: String,
    #[command(flatten)]
    wallet: WalletArgs,
}

pub(crate) async fn route(args: RouteArgs) -> eyre::Result<()> {
    let request = Request::Route {
        to: args.wallet.address(&args.to)?,
        amount: amount("--amount", &args.amount)?,
    };
    match ask(&args.wallet.dir(), &request).await? {
        Some(Response::Route(route)) => {
            say!("{} SMT to {}: {}", args.amount, args.to, describe(&route));
            Ok(())
        }
        Some(Response::Error { message }) => bail!("{message}"),
        Some(other) => bail!("the node answered {other:?} to a route"),
        None => bail!(
            "no node runs for this wallet: routes are known to `smartmesh node --wallet {}`",
            args.wallet.name()
        ),
    }
}

/// `smartmesh transfers`: the mediated transfers this wallet takes part in.
#[derive(Debug, clap::Args)]
pub(crate) struct TransfersArgs {
    /// Print them as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    wallet: WalletArgs,
}

pub(crate) async fn transfers(args: TransfersArgs) -> eyre::Result<()> {
    // Read from the journal: a running node keeps writing it, reading is safe.
    let mesh = args.wallet.open().await?;
    let transfers: Vec<TransferSummary> = mesh
        .transfers()
        .await?
        .iter()
        .map(TransferSummary::of)
        .collect();
    if args.json {
        say!("{}", serde_json::to_string_pretty(&transfers)?);
        return Ok(());
    }
    if transfers.is_empty() {
        say!("no mediated transfers");
    }
    for transfer in transfers {
        let wei = |amount: Option<u128>| amount.map_or("-".to_owned(), |a| smt(U256::from(a)));
        say!(
            "{} {:<9} received {} paid {} SMT: {:?}",
            transfer.condition_id,
            transfer.role,
            wei(transfer.received),
            wei(transfer.paid),
            transfer.outcome
        );
    }
    Ok(())
}

/// `smartmesh send`: send a file to someone through the running node, paying the relays.
#[derive(Debug, clap::Args)]
pub(crate) struct SendArgs {
    /// Whom to send to (an address, or a wallet of the dev stack by name).
    #[arg(long)]
    to: String,
    /// The file.
    file: std::path::PathBuf,
    /// SMT offered each relay per delivered packet (of at most 1,024 bytes).
    #[arg(long, default_value = "0.0001")]
    price: String,
    /// Packets per acknowledgment (each relay extends at most this many packets of credit).
    #[arg(long, default_value_t = 8)]
    k: u64,
    /// Lock each window's pay to the first relay as it is sent, on the recipient's
    /// acknowledgment of it: the relays are paid even if this phone vanishes meanwhile.
    #[arg(long)]
    pre_lock: bool,
    #[command(flatten)]
    wallet: WalletArgs,
}

pub(crate) async fn send(args: SendArgs) -> eyre::Result<()> {
    let data =
        std::fs::read(&args.file).map_err(|e| eyre!("cannot read {}: {e}", args.file.display()))?;
    if args.k == 0 {
        bail!("--k 0: a checkpoint is at least one packet");
    }
    let request = Request::Send {
        to: args.wallet.address(&args.to)?,
        data,
        price: amount("--price", &args.price)?,
        k: args.k,
        pre_lock: args.pre_lock,
    };
    match ask(&args.wallet.dir(), &request).await? {
        Some(Response::SessionStarted { session, relays }) => {
            say!(
                "sending {} to {} through {}: session {session} (see `smartmesh sessions`)",
                args.file.display(),
                args.to,
                relays
                    .iter()
                    .map(Address::to_string)
                    .collect::<Vec<_>>()
                    .join(", then ")
            );
            Ok(())
        }
        Some(Response::Error { message }) => bail!("{message}"),
        Some(other) => bail!("the node answered {other:?} to a send"),
        None => bail!(
            "no node runs for this wallet: data goes through `smartmesh node --wallet {}`",
            args.wallet.name()
        ),
    }
}

/// `smartmesh sessions`: the running node's data sessions and what it earned relaying.
#[derive(Debug, clap::Args)]
pub(crate) struct SessionsArgs {
    #[command(flatten)]
    wallet: WalletArgs,
}

pub(crate) async fn sessions(args: SessionsArgs) -> eyre::Result<()> {
    match ask(&args.wallet.dir(), &Request::Sessions).await? {
        Some(Response::Sessions { sessions }) => {
            if sessions.is_empty() {
                say!("no data sessions");
            }
            let mut earned = U256::ZERO;
            for view in &sessions {
                earned += view.earned;
                say!(
                    "{} {:<9} {} packets, acknowledged through {}, earned {} SMT",
                    view.session,
                    view.role,
                    view.packets,
                    view.acked
                        .map_or("none".to_owned(), |n| format!("checkpoint {n}")),
                    smt(view.earned)
                );
            }
            say!("earned relaying: {} SMT", smt(earned));
            Ok(())
        }
        Some(Response::Error { message }) => bail!("{message}"),
        Some(other) => bail!("the node answered {other:?} to sessions"),
        None => bail!(
            "no node runs for this wallet: start `smartmesh node --wallet {}`",
            args.wallet.name()
        ),
    }
}
