//! `smartmesh sim`: a deterministic simulation of a whole mesh of phones (DESIGN.md 4.3).
//! Seeded, in virtual time: phones walk (random waypoint) or follow a contact trace, links
//! come and go by distance, each phone is a real wallet with its own journal on the virtual
//! clock over the in-memory transport, online now and then; the real contracts run on anvil
//! with its clock moved with the virtual one, with the watcher and the relayer. Some phones
//! are dishonest. It prints a table, writes `figures.json` and SVG plots, and checks every
//! honest phone's payouts on chain against what it was owed: non-zero exit if one lost.

mod chain;
mod cores;
mod mobility;
mod phones;
mod plots;
mod report;
mod world;

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use alloy::primitives::{U256, utils::parse_ether};
use eyre::{WrapErr, bail};
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smartmesh_mesh::{MemoryNet, MeshConfig, VirtualClock};
use smartmesh_protocol::mediated::{ChannelGraph, MediationSettings};

use self::{
    chain::Chain,
    mobility::{Trace, Walkers, Waypoint},
    phones::{Conduct, Phone, PhoneSettings},
    report::{Figures, Loss, Outcome},
    world::{Links, Workload, World},
};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Phones in the mesh.
    #[arg(long, default_value_t = 50)]
    phones: usize,
    /// Simulated hours of payments and data (the drain, closes and hold periods come after).
    #[arg(long, default_value_t = 24)]
    hours: u64,
    /// The seed: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The side of the square the phones walk in, in metres.
    #[arg(long, default_value_t = 500.0)]
    area: f64,
    /// Radio range, in metres.
    #[arg(long, default_value_t = 60.0)]
    range: f64,
    /// A contact trace instead of walking: `seconds,a,b,up|down` lines (phones 0 to N-1).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Channels each phone opens (to the phones nearest it at the start).
    #[arg(long, default_value_t = 2)]
    channels: usize,
    /// Payments each phone starts an hour, to a phone one to three channels away.
    #[arg(long, default_value_t = 0.5)]
    payments_per_hour: f64,
    /// Data sessions started an hour in the whole mesh.
    #[arg(long, default_value_t = 60.0)]
    sessions_per_hour: f64,
    /// Packets (1,024 bytes) each session streams.
    #[arg(long, default_value_t = 32)]
    packets: u64,
    /// Each phone comes online every this many hours at most (and at least a third of it):
    /// the `W` of its locks' timing, as a public network's six hours by default.
    #[arg(long, default_value_t = 6.0)]
    online_every_hours: f64,
    /// Share of phones that close their channels claiming they paid nothing.
    #[arg(long, default_value_t = 0.05)]
    stale_closers: f64,
    /// Share of phones that drop the data packets they should relay.
    #[arg(long, default_value_t = 0.05)]
    droppers: f64,
    /// Share of phones that never acknowledge data.
    #[arg(long, default_value_t = 0.05)]
    silent: f64,
    /// Phones never sync to the watcher: shows that the final check fails without it.
    #[arg(long)]
    no_watcher: bool,
    /// Where the figures and plots go.
    #[arg(long, default_value = "sim-out")]
    out: PathBuf,
    /// Where the phones' journals and the services' databases go, kept after the run
    /// (wiped at its start). Default: a scratch directory in /dev/shm, removed at the end,
    /// where there is one (a simulated day's state needs no disk, and the journals' fsync on
    /// every write would be most of the wall time); else <out>.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Let the simulator's threads run on every core. By default they keep to one: the run is
    /// one loop handing off to each phone's journal thread, and hand-offs across cores cost
    /// more than a second core gives (README, "Simulator").
    #[arg(long)]
    all_cores: bool,
    /// The anvil binary; by default the npm one under contracts/node_modules, else `anvil`.
    #[arg(long, env = "SMARTMESH_ANVIL")]
    anvil: Option<PathBuf>,
}

/// Seconds in a step of the day.
const TICK: u64 = 30;

pub(crate) async fn run(args: Args) -> eyre::Result<()> {
    if args.phones < 3 {
        bail!("--phones {}: a mesh needs at least 3", args.phones);
    }
    if !(args.online_every_hours > 0.0 && args.online_every_hours <= 48.0) {
        bail!(
            "--online-every-hours {}: between 0 and 48",
            args.online_every_hours
        );
    }
    for (flag, share) in [
        ("--stale-closers", args.stale_closers),
        ("--droppers", args.droppers),
        ("--silent", args.silent),
    ] {
        if !(0.0..=1.0).contains(&share) {
            bail!("{flag} {share}: a share between 0 and 1");
        }
    }
    for (flag, value) in [
        ("--area", args.area),
        ("--range", args.range),
        ("--payments-per-hour", args.payments_per_hour),
        ("--sessions-per-hour", args.sessions_per_hour),
    ] {
        let positive = value.is_finite() && value > 0.0;
        let rate = flag.ends_with("per-hour") && value == 0.0;
        if !(positive || rate) {
            bail!(
                "--{}: {value} is not a positive number",
                flag.trim_start_matches('-')
            );
        }
    }
    if args.hours == 0 || args.channels == 0 || args.packets == 0 {
        bail!("--hours, --channels and --packets must each be at least 1");
    }
    if args.stale_closers + args.droppers + args.silent > 0.9 {
        bail!("the dishonest shares add up to more than 0.9: some phones must be honest");
    }
    let wall = Instant::now();
    let mut seeds = ChaCha8Rng::seed_from_u64(args.seed);
    let mut key_rng = ChaCha8Rng::seed_from_u64(seeds.random());
    let mut walk_rng = ChaCha8Rng::seed_from_u64(seeds.random());
    let world_rng = ChaCha8Rng::seed_from_u64(seeds.random());

    std::fs::create_dir_all(&args.out)
        .wrap_err_with(|| format!("cannot create {}", args.out.display()))?;
    let scratch = Scratch::new(&args);
    let phones_dir = scratch.dir.join("phones");
    let stack_dir = scratch.dir.join("stack");
    for dir in [&phones_dir, &stack_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }

    let online_max = (args.online_every_hours * 3_600.0) as u64;
    let mediation = MediationSettings {
        offline: online_max + TICK,
        mining: 120,
        finality: 0,
        skew: 60,
        max_hops: 3,
    };
    let delta = mediation.offline + mediation.mining + mediation.finality + mediation.skew;
    // A lock three hops long, from a phone that saw its channel open W ago, must still fit
    // in the hold period.
    let settle_timeout = mediation.offline + 3 * delta + 3_600;
    say!("sim: starting anvil, the contracts, the watcher and the relayer");
    let chain = Chain::start(&stack_dir, args.anvil.as_deref(), settle_timeout).await?;
    // After anvil started: it keeps every core.
    let core = if args.all_cores {
        None
    } else {
        cores::pin_to_one_core()?
    };
    let clock = VirtualClock::new(chain.time().await? + 1);
    chain.set_time(clock.now()).await?;
    let deployment = chain.deployment.clone();
    let settings = PhoneSettings {
        config: MeshConfig {
            chain_id: deployment.chain_id,
            token: deployment.token,
            signed_agent: deployment.signed_agent,
            token_network: deployment.token_network,
            condition_registry: deployment.condition_registry,
            deploy_block: deployment.deploy_block,
            rpc_url: Some(chain.rpc_url.clone()),
            watcher_url: (!args.no_watcher).then(|| chain.watcher_url.clone()),
            relayer_url: Some(chain.relayer_url.clone()),
            watch_reward: parse_ether("0.001")?,
            finality: 0,
        },
        mediation,
        fee: parse_ether("0.001")?,
        data_price: 10_000_000_000_000,
    };

    say!(
        "sim: {} phones with their wallets; funding them",
        args.phones
    );
    let mut meshes = Vec::with_capacity(args.phones);
    for index in 0..args.phones {
        meshes.push(phones::create(&phones_dir, index, &mut key_rng, &settings, &clock).await?);
    }
    let addresses: Vec<_> = meshes.iter().map(smartmesh_mesh::Mesh::address).collect();
    chain.fund(&addresses, parse_ether("500")?).await?;
    let conducts = phones::conducts(
        args.phones,
        [
            (Conduct::StaleCloser, args.stale_closers),
            (Conduct::Dropper, args.droppers),
            (Conduct::Silent, args.silent),
        ],
        &mut walk_rng.clone(),
    );

    let model = Waypoint {
        area: args.area,
        range: args.range,
        speed: (0.5, 1.5),
        max_pause: 600.0,
    };
    let walkers = Walkers::new(model, args.phones, &mut walk_rng);
    let pairs = choose_channels(&walkers.positions(), args.channels);
    say!("sim: opening {} channels through the relayer", pairs.len());
    let deposit = parse_ether("50")?;
    let opened = open_channels(&meshes, &pairs, settle_timeout, deposit).await?;
    let setup_secs = wall.elapsed().as_secs_f64();

    let net = MemoryNet::new();
    let mut phones = Vec::with_capacity(args.phones);
    let mut graph_rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x5eed);
    for (index, mesh) in meshes.into_iter().enumerate() {
        // Online at the start: each phone reads its channels (both deposits) and the graph.
        mesh.refresh_graph().await?;
        let graph: ChannelGraph = mesh.channel_graph().await?;
        let channels: Vec<(alloy::primitives::B256, usize)> = opened
            .iter()
            .filter_map(|(id, a, b)| match index {
                n if n == *a => Some((*id, *b)),
                n if n == *b => Some((*id, *a)),
                _ => None,
            })
            .collect();
        for (id, _) in &channels {
            mesh.refresh(*id).await?;
        }
        mesh.set_online(false);
        phones.push(Phone {
            transport: net.endpoint(mesh.address()),
            mesh,
            graph,
            conduct: conducts[index],
            next_online: clock.now() + graph_rng.random_range(0..=online_max),
            channels,
        });
    }
    let links = match &args.trace {
        Some(path) => Links::Trace(Trace::read(path, args.phones)?),
        None => Links::Walk(walkers, walk_rng),
    };
    let near = phones::within_hops(
        args.phones,
        &opened.iter().map(|(_, a, b)| (*a, *b)).collect::<Vec<_>>(),
        3,
    );
    let mut conduct_counts = BTreeMap::new();
    for conduct in &conducts {
        *conduct_counts.entry(format!("{conduct:?}")).or_insert(0) += 1;
    }
    let figures = Figures {
        seed: args.seed,
        phones: args.phones,
        hours: args.hours,
        channels: opened.len(),
        conducts: conduct_counts,
        core,
        ..Figures::default()
    };
    let workload = Workload {
        payments_per_hour: args.payments_per_hour,
        sessions_per_hour: args.sessions_per_hour,
        packets: args.packets,
        k: 4,
        amount: (100_000_000_000_000_000, 2_000_000_000_000_000_000),
        patience: 6 * 3_600,
        max_fee: parse_ether("0.01")?,
        online_every: (online_max / 3, online_max),
    };
    let mut world = World::new(
        phones, net, links, clock, world_rng, workload, near, figures,
    );

    say!("sim: {} simulated hours", args.hours);
    let day_wall = Instant::now();
    world.day(args.hours, TICK, &chain).await?;
    let day_secs = day_wall.elapsed().as_secs_f64();
    say!("sim: draining payments under way, closing every channel, the hold periods");
    let end_wall = Instant::now();
    world
        .drain(3 * delta + mediation.offline, 60, &chain)
        .await?;
    world
        .close_all(2 * online_max + settle_timeout + 3_600, 900, &chain)
        .await?;
    check(&mut world, &chain).await?;
    world.figures.wall = BTreeMap::from([
        ("setup".to_owned(), round(setup_secs)),
        ("day".to_owned(), round(day_secs)),
        ("end".to_owned(), round(end_wall.elapsed().as_secs_f64())),
        ("total".to_owned(), round(wall.elapsed().as_secs_f64())),
    ]);
    chain.stop().await?;

    let summary = world.figures.summary();
    let plots = plots::write(&args.out, &world.figures, &summary)?;
    let json = serde_json::json!({
        "summary": summary,
        "figures": world.figures,
        "plots": plots,
        "payments": world.figures.payments,
        "sessions": world.figures.sessions,
        "series": world.figures.series,
    });
    let figures_path = args.out.join("figures.json");
    std::fs::write(&figures_path, serde_json::to_string_pretty(&json)? + "\n")?;
    print!("{}", report::table(&world.figures, &summary));
    say!("figures: {}", figures_path.display());
    for plot in &plots {
        say!("plot: {}", plot.display());
    }
    if !world.figures.losses.is_empty() {
        bail!(
            "{} honest phones lost funds on chain (figures.json lists each channel)",
            summary.honest_phones_losing_funds
        );
    }
    Ok(())
}

/// Where a run keeps its state; a default one in /dev/shm goes when the run ends, however it
/// ends.
struct Scratch {
    dir: PathBuf,
    remove: bool,
}

impl Scratch {
    fn new(args: &Args) -> Self {
        let shm = PathBuf::from("/dev/shm");
        match &args.state {
            Some(dir) => Self {
                dir: dir.clone(),
                remove: false,
            },
            None if shm.is_dir() => Self {
                dir: shm.join(format!("smartmesh-sim-{}", std::process::id())),
                remove: true,
            },
            None => Self {
                dir: args.out.clone(),
                remove: false,
            },
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn round(secs: f64) -> f64 {
    (secs * 10.0).round() / 10.0
}

/// Each phone's channels to the phones nearest it at the start, none twice and none with a
/// phone that already has twice as many.
fn choose_channels(positions: &[(f64, f64)], per_phone: usize) -> Vec<(usize, usize)> {
    let mut degree = vec![0usize; positions.len()];
    let mut pairs = std::collections::BTreeSet::new();
    for (a, at) in positions.iter().enumerate() {
        let mut others: Vec<usize> = (0..positions.len()).filter(|b| *b != a).collect();
        others.sort_by(|x, y| {
            let d = |n: usize| (positions[n].0 - at.0).hypot(positions[n].1 - at.1);
            d(*x).total_cmp(&d(*y))
        });
        for b in others {
            if degree[a] >= per_phone {
                break;
            }
            let pair = (a.min(b), a.max(b));
            if pairs.contains(&pair) || degree[b] >= 2 * per_phone {
                continue;
            }
            pairs.insert(pair);
            degree[a] += 1;
            degree[b] += 1;
        }
    }
    pairs.into_iter().collect()
}

/// Opens every channel through the relayer and funds both sides: each phone's own
/// operations one after another (they share its nonces), phones side by side.
async fn open_channels(
    meshes: &[smartmesh_mesh::Mesh],
    pairs: &[(usize, usize)],
    settle_timeout: u64,
    deposit: U256,
) -> eyre::Result<Vec<(alloy::primitives::B256, usize, usize)>> {
    let mut by_opener: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (a, b) in pairs {
        by_opener.entry(*a).or_default().push(*b);
    }
    let opened: Vec<eyre::Result<Vec<(alloy::primitives::B256, usize, usize)>>> =
        futures::stream::iter(by_opener.into_iter().map(|(a, partners)| async move {
            let mut ids = Vec::new();
            for b in partners {
                let (id, _) = meshes[a]
                    .open_channel(meshes[b].address(), settle_timeout)
                    .await
                    .wrap_err_with(|| format!("phone {a} opening to {b}"))?;
                meshes[a].deposit(id, deposit).await?;
                ids.push((id, a, b));
            }
            Ok(ids)
        }))
        .buffer_unordered(32)
        .collect()
        .await;
    let mut channels = Vec::new();
    for result in opened {
        channels.extend(result?);
    }
    channels.sort();
    let mut by_partner: BTreeMap<usize, Vec<alloy::primitives::B256>> = BTreeMap::new();
    for (id, _, b) in &channels {
        by_partner.entry(*b).or_default().push(*id);
    }
    let funded: Vec<eyre::Result<()>> =
        futures::stream::iter(by_partner.into_iter().map(|(b, ids)| async move {
            for id in ids {
                meshes[b]
                    .deposit(id, deposit)
                    .await
                    .wrap_err_with(|| format!("phone {b} depositing"))?;
            }
            Ok(())
        }))
        .buffer_unordered(32)
        .collect()
        .await;
    for result in funded {
        result?;
    }
    Ok(channels)
}

/// Compares every honest phone's payout on chain with what its own journal says it was owed
/// (its deposit, plus what it received, less what it paid or locked), and records how each
/// channel ended.
async fn check(world: &mut World, chain: &Chain) -> eyre::Result<()> {
    let settled = chain.settled().await?;
    let mut checked = 0;
    for n in 0..world.phones.len() {
        let honest = world.phones[n].conduct == Conduct::Honest;
        checked += usize::from(honest);
        for (id, _) in world.phones[n].channels.clone() {
            let Some(end) = settled.get(&id) else {
                bail!("channel {id} never settled");
            };
            let closer_lied = world
                .phone_of(end.closer)
                .is_some_and(|closer| world.phones[closer].conduct == Conduct::StaleCloser)
                && world.stale_channel(id);
            let outcome = match (closer_lied, end.penalized) {
                (_, true) => Outcome::StaleClosePenalized,
                (true, false) => Outcome::StaleCloseUnpunished,
                (false, false) => Outcome::HonestClose,
            };
            world.figures.outcomes.insert(id, outcome);
            if !honest {
                continue;
            }
            let me = world.address_of(n);
            let state = world.phones[n].mesh.channel_state(id).await?;
            let owed = (state.mine.deposit + state.theirs.transferred())
                .saturating_sub(state.mine.transferred() + state.mine.locks.locked_amount());
            let paid_out = if end.participants.0 == me {
                end.payouts.0
            } else {
                end.payouts.1
            };
            // A watcher that proved a lie for this phone earns the reward it signed for.
            let reward = if end.penalized && end.closer != me {
                end.reward
            } else {
                U256::ZERO
            };
            if paid_out + reward < owed {
                world.figures.losses.push(Loss {
                    phone: n,
                    channel: id,
                    owed: owed.to_string(),
                    paid_out: paid_out.to_string(),
                });
            }
        }
    }
    world.figures.honest_phones_checked = checked;
    Ok(())
}
