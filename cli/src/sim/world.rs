//! One simulated mesh in virtual time: phones moving, links coming and going, payments and
//! data sessions started at random, every message handed over and taken by the real
//! wallets, phones online now and then (the chain, the watcher, the relayer), and at the end
//! every channel closed, disputed where a closer lied, and settled on chain.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use alloy::primitives::{Address, B256, U256};
use eyre::bail;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use smartmesh_mesh::{
    MemoryNet, Taken, TransferOutcome, TransferSummary, VirtualClock, decode_hint,
};
use smartmesh_protocol::{channel::Phase, mediated::hint_domain, relay::SessionTerms};

use super::{
    chain::Chain,
    mobility::{Pair, Trace, Walkers},
    phones::{Conduct, Phone, fatal, misbehave},
    report::{Figures, PaymentRecord, Sample, SessionRecord},
};

/// Where links come from.
// One of it per run: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Links {
    /// Walking phones, with a random stream of their own (the workload's draws do not move
    /// them).
    Walk(Walkers, ChaCha8Rng),
    Trace(Trace),
}

/// What the workload asks for.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    /// Payments each phone starts an hour.
    pub(crate) payments_per_hour: f64,
    /// Data sessions started an hour in the whole mesh.
    pub(crate) sessions_per_hour: f64,
    /// Packets a session streams.
    pub(crate) packets: u64,
    /// Packets between acknowledgments.
    pub(crate) k: u64,
    /// Amounts are drawn from this range, in wei.
    pub(crate) amount: (u128, u128),
    /// How long a payer keeps looking for a route before it gives up, in seconds.
    pub(crate) patience: u64,
    /// The most fees a payer accepts.
    pub(crate) max_fee: U256,
    /// How often each phone comes online: between these, in seconds.
    pub(crate) online_every: (u64, u64),
}

/// A payment asked for and not yet ended.
#[derive(Debug, Clone)]
struct Request {
    record: usize,
    payer: usize,
    target: usize,
    amount: U256,
    next_try: u64,
}

/// A payment on its way.
#[derive(Debug, Clone)]
enum Underway {
    Routed {
        payer: usize,
        condition_id: B256,
    },
    Direct {
        payee: usize,
        channel: B256,
        total: U256,
    },
}

pub(crate) struct World {
    pub(crate) phones: Vec<Phone>,
    index: HashMap<Address, usize>,
    net: MemoryNet,
    links: BTreeSet<Pair>,
    source: Links,
    pub(crate) clock: VirtualClock,
    pub(crate) start: u64,
    rng: ChaCha8Rng,
    workload: Workload,
    /// The phones within three channels of each, and how many channels away.
    near: Vec<BTreeMap<usize, usize>>,
    requests: Vec<Request>,
    underway: Vec<(usize, Underway)>,
    senders: BTreeMap<B256, Address>,
    pub(crate) figures: Figures,
    /// Channels whose closer declared less than it paid, and whether the check ran.
    stale: BTreeMap<B256, bool>,
    /// Which end closes each channel at the end.
    closers: BTreeMap<B256, usize>,
    touched: BTreeSet<usize>,
    /// Where the chain's clock was last set.
    chain_time: u64,
}

impl World {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        phones: Vec<Phone>,
        net: MemoryNet,
        source: Links,
        clock: VirtualClock,
        rng: ChaCha8Rng,
        workload: Workload,
        near: Vec<BTreeMap<usize, usize>>,
        figures: Figures,
    ) -> Self {
        let index = phones
            .iter()
            .enumerate()
            .map(|(n, phone)| (phone.mesh.address(), n))
            .collect();
        let start = clock.now();
        Self {
            phones,
            index,
            net,
            links: BTreeSet::new(),
            source,
            clock,
            start,
            rng,
            workload,
            near,
            requests: Vec::new(),
            underway: Vec::new(),
            senders: BTreeMap::new(),
            figures,
            stale: BTreeMap::new(),
            closers: BTreeMap::new(),
            touched: BTreeSet::new(),
            chain_time: 0,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn elapsed(&self) -> u64 {
        self.now() - self.start
    }

    /// Moves the phones `seconds` on and brings links up and down; a link that comes up
    /// hands over what waited in both phones' outboxes.
    async fn move_phones(&mut self, seconds: u64) -> eyre::Result<()> {
        let elapsed = self.elapsed();
        let links = match &mut self.source {
            Links::Walk(walkers, rng) => {
                walkers.step(seconds as f64, rng);
                walkers.links()
            }
            Links::Trace(trace) => trace.links_at(elapsed),
        };
        let address = |n: usize| self.phones[n].mesh.address();
        for gone in self.links.difference(&links) {
            self.net.link(address(gone.0), address(gone.1), false);
        }
        let met: Vec<Pair> = links.difference(&self.links).copied().collect();
        for pair in &met {
            self.net.link(address(pair.0), address(pair.1), true);
        }
        self.figures.contacts += met.len() as u64;
        self.links = links;
        for (a, b) in met {
            for (from, to) in [(a, b), (b, a)] {
                let phone = &self.phones[from];
                phone
                    .mesh
                    .flush_to(&phone.transport, self.phones[to].mesh.address())
                    .await?;
            }
        }
        Ok(())
    }

    /// Hands every message over, and takes it, until none is left.
    async fn pump(&mut self) -> eyre::Result<()> {
        loop {
            let mut any = false;
            for n in 0..self.phones.len() {
                while let Some((from, bytes)) = self.phones[n].transport.try_recv() {
                    any = true;
                    self.touched.insert(n);
                    let phone = &self.phones[n];
                    match phone.mesh.take(from, &bytes).await {
                        Ok((taken, mut out)) => {
                            match taken {
                                Taken::Message(kind) => {
                                    self.figures.channel_messages += 1;
                                    *self
                                        .figures
                                        .messages_by_kind
                                        .entry(kind.to_owned())
                                        .or_default() += 1;
                                }
                                Taken::Held(kind) => {
                                    self.figures.held_messages += 1;
                                    self.figures.channel_messages += 1;
                                    *self
                                        .figures
                                        .messages_by_kind
                                        .entry(kind.to_owned())
                                        .or_default() += 1;
                                }
                                Taken::Frame { .. } => self.figures.data_frames += 1,
                            }
                            misbehave(phone.conduct, phone.mesh.address(), &self.senders, &mut out);
                            self.figures.frames_lost +=
                                phone.mesh.hand_over(&phone.transport, out).await? as u64;
                        }
                        Err(error) if fatal(&error) => return Err(error.into()),
                        Err(error) => {
                            tracing::debug!(target: "smartmesh::sim", phone = n, %error, "refused");
                            *self.figures.refused.entry(error_kind(&error)).or_default() += 1;
                        }
                    }
                }
            }
            if !any {
                return Ok(());
            }
        }
    }

    /// Starts the payments and sessions the workload asks for in the next `seconds`.
    fn ask(&mut self, seconds: u64) {
        let now = self.now();
        let share = self.workload.payments_per_hour * seconds as f64 / 3_600.0;
        for payer in 0..self.phones.len() {
            if self.rng.random::<f64>() >= share || self.near[payer].is_empty() {
                continue;
            }
            // A target one, two or three channels away, as evenly as the graph allows.
            let hops = self.rng.random_range(1..=3);
            let candidates: Vec<usize> = self.near[payer]
                .iter()
                .filter(|(_, d)| **d == hops)
                .map(|(n, _)| *n)
                .collect();
            let candidates = if candidates.is_empty() {
                self.near[payer].keys().copied().collect()
            } else {
                candidates
            };
            let target = candidates[self.rng.random_range(0..candidates.len())];
            let amount = U256::from(
                self.rng
                    .random_range(self.workload.amount.0..=self.workload.amount.1),
            );
            self.figures.payments.push(PaymentRecord {
                distance: self.near[payer][&target],
                requested: self.elapsed(),
                ..PaymentRecord::default()
            });
            self.requests.push(Request {
                record: self.figures.payments.len() - 1,
                payer,
                target,
                amount,
                next_try: now,
            });
        }
    }

    /// The phones the payer's gossip reaches now: its connected part of the radio graph.
    fn in_reach(&self, from: usize) -> BTreeSet<usize> {
        let mut adjacent: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (a, b) in &self.links {
            adjacent.entry(*a).or_default().push(*b);
            adjacent.entry(*b).or_default().push(*a);
        }
        let mut seen = BTreeSet::from([from]);
        let mut queue = VecDeque::from([from]);
        while let Some(node) = queue.pop_front() {
            for next in adjacent.get(&node).into_iter().flatten() {
                if seen.insert(*next) {
                    queue.push_back(*next);
                }
            }
        }
        seen
    }

    /// Tries each payment whose turn it is: the payer takes the hints gossip brings it now
    /// (signed by the phones in reach within three channels), routes, and pays.
    async fn try_payments(&mut self) -> eyre::Result<()> {
        let now = self.now();
        let due: Vec<Request> = self
            .requests
            .iter()
            .filter(|r| r.next_try <= now)
            .cloned()
            .collect();
        self.requests.retain(|r| r.next_try > now);
        let domain = {
            let config = self.phones[0].mesh.config();
            hint_domain(config.chain_id, config.token_network)
        };
        for mut request in due {
            let reach = self.in_reach(request.payer);
            for &node in self.near[request.payer].keys() {
                if !reach.contains(&node) {
                    continue;
                }
                for bytes in self.phones[node].mesh.capacity_hints(600).await? {
                    let (hint, signature) = decode_hint(&bytes)?;
                    let _ = self.phones[request.payer]
                        .graph
                        .add_hint(&hint, &signature, &domain, now);
                }
            }
            let phone = &self.phones[request.payer];
            let target = self.phones[request.target].mesh.address();
            let record = &mut self.figures.payments[request.record];
            let started = match phone.mesh.route_on(&phone.graph, target, request.amount) {
                Ok(route) => {
                    phone
                        .mesh
                        .pay_along(
                            &phone.transport,
                            route,
                            request.amount,
                            self.workload.max_fee,
                        )
                        .await
                }
                Err(error) => Err(error),
            };
            match started {
                Ok(started) => {
                    record.hops = Some(started.route.mediators.len() + 1);
                    record.started = Some(now - self.start);
                    let underway = match started.condition_id {
                        Some(condition_id) => Underway::Routed {
                            payer: request.payer,
                            condition_id,
                        },
                        None => {
                            let channel = phone.mesh.channel_with(target).await?;
                            Underway::Direct {
                                payee: request.target,
                                channel,
                                total: phone.mesh.channel_state(channel).await?.mine.transferred(),
                            }
                        }
                    };
                    self.underway.push((request.record, underway));
                }
                Err(error) if fatal(&error) => return Err(error.into()),
                Err(error) => {
                    let retry = matches!(
                        error,
                        smartmesh_mesh::MeshError::NoRoute { .. }
                            | smartmesh_mesh::MeshError::UnknownKey(_)
                    );
                    let waited = now - self.start - record.requested;
                    if retry && waited < self.workload.patience {
                        request.next_try = now + 300;
                        self.requests.push(request);
                    } else {
                        record.failure = Some(error_kind(&error));
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts a data session where the workload asks for one: a sender streams to a phone one
    /// to three relays away along channels whose phones are all in range of each other now.
    async fn start_sessions(&mut self, seconds: u64) -> eyre::Result<()> {
        let expected = self.workload.sessions_per_hour * seconds as f64 / 3_600.0;
        let mut count = expected.floor() as u64;
        if self.rng.random::<f64>() < expected.fract() {
            count += 1;
        }
        for _ in 0..count {
            let sender = self.rng.random_range(0..self.phones.len());
            let Some(path) = self.linked_path(sender) else {
                self.figures.sessions_without_path += 1;
                continue;
            };
            let address = |n: usize| self.phones[n].mesh.address();
            let relays: Vec<Address> = path[1..path.len() - 1]
                .iter()
                .map(|n| address(*n))
                .collect();
            let price = self.phones[path[1]].mesh.data_price();
            let terms = SessionTerms {
                session: B256::from(self.rng.random::<[u8; 32]>()),
                sender: address(sender),
                recipient: address(*path.last().expect("a path has a recipient")),
                prices: vec![price; relays.len()],
                relays,
                k: self.workload.k,
                packets: self.workload.packets,
            };
            let packets: Vec<Vec<u8>> = (0..self.workload.packets)
                .map(|n| vec![(n % 251) as u8; smartmesh_protocol::relay::MAX_PACKET])
                .collect();
            self.senders.insert(terms.session, terms.sender);
            let phone = &self.phones[sender];
            match phone.mesh.open_session(terms.clone(), packets, false).await {
                Ok(out) => {
                    self.figures.frames_lost +=
                        phone.mesh.hand_over(&phone.transport, out).await? as u64;
                    self.figures.sessions.push(SessionRecord {
                        session: terms.session,
                        started: self.elapsed(),
                        path: path.clone(),
                        packets: self.workload.packets,
                        ..SessionRecord::default()
                    });
                }
                Err(error) if fatal(&error) => return Err(error.into()),
                Err(error) => {
                    *self.figures.refused.entry(error_kind(&error)).or_default() += 1;
                }
            }
        }
        Ok(())
    }

    /// A path of channels from `sender` to a phone two to four phones along, every
    /// consecutive pair also in radio range now.
    fn linked_path(&mut self, sender: usize) -> Option<Vec<usize>> {
        let mut parent = BTreeMap::from([(sender, sender)]);
        let mut depth = BTreeMap::from([(sender, 0usize)]);
        let mut queue = VecDeque::from([sender]);
        let mut ends = Vec::new();
        while let Some(node) = queue.pop_front() {
            if depth[&node] >= 2 {
                ends.push(node);
            }
            if depth[&node] == 4 {
                continue;
            }
            for (_, next) in &self.phones[node].channels {
                let pair = (node.min(*next), node.max(*next));
                if self.links.contains(&pair) && !parent.contains_key(next) {
                    parent.insert(*next, node);
                    depth.insert(*next, depth[&node] + 1);
                    queue.push_back(*next);
                }
            }
        }
        if ends.is_empty() {
            return None;
        }
        let mut node = ends[self.rng.random_range(0..ends.len())];
        let mut path = vec![node];
        while node != sender {
            node = parent[&node];
            path.push(node);
        }
        path.reverse();
        Some(path)
    }

    /// Lets time act on every phone's transfers (expiries; registrations when online).
    async fn tick_all(&mut self) -> eyre::Result<()> {
        for (n, phone) in self.phones.iter().enumerate() {
            match phone.mesh.tick_transfers().await {
                Ok(out) => {
                    // A transfer that ended by time (a lock expired back) ends without a
                    // message received: look at it too.
                    if !out.is_empty() {
                        self.touched.insert(n);
                    }
                    phone.mesh.send_or_queue(&phone.transport, out).await?;
                }
                Err(error) if fatal(&error) => return Err(error.into()),
                Err(error) => {
                    *self.figures.refused.entry(error_kind(&error)).or_default() += 1;
                }
            }
        }
        Ok(())
    }

    /// Marks the payments that ended since the last look.
    async fn check_payments(&mut self) -> eyre::Result<()> {
        let elapsed = self.elapsed();
        let mut still = Vec::new();
        for (record, underway) in std::mem::take(&mut self.underway) {
            let ended = match &underway {
                Underway::Routed {
                    payer,
                    condition_id,
                } => {
                    if !self.touched.contains(payer) {
                        None
                    } else {
                        match self.phones[*payer].mesh.transfer(*condition_id).await? {
                            Some(state) => match TransferSummary::of(&state).outcome {
                                TransferOutcome::Paid => Some(None),
                                TransferOutcome::Refunded => Some(Some("refunded")),
                                TransferOutcome::Pending => None,
                            },
                            None => None,
                        }
                    }
                }
                Underway::Direct {
                    payee,
                    channel,
                    total,
                } => {
                    if !self.touched.contains(payee) {
                        None
                    } else {
                        let received = self.phones[*payee]
                            .mesh
                            .channel_state(*channel)
                            .await?
                            .theirs
                            .transferred();
                        (received >= *total).then_some(None)
                    }
                }
            };
            match ended {
                Some(failure) => {
                    let record = &mut self.figures.payments[record];
                    record.ended = Some(elapsed);
                    record.failure = failure.map(str::to_owned);
                }
                None => still.push((record, underway)),
            }
        }
        self.underway = still;
        self.touched.clear();
        Ok(())
    }

    /// What phones do when they have internet: read their channels from the chain (a close
    /// they missed freezes the channel), settle what is due, close what they are to close,
    /// sync receipts and secrets to the watcher, and let time act on their transfers.
    async fn go_online(&mut self, closing: bool, chain: &Chain) -> eyre::Result<()> {
        let now = self.now();
        let due: Vec<usize> = (0..self.phones.len())
            .filter(|n| self.phones[*n].next_online <= now)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        self.before_settle_at(now, chain).await?;
        // Every block anvil mines costs it a state root: during the day the chain's clock
        // follows the virtual one in steps of ten minutes (a phone's view of when it saw a
        // channel open lags by at most that, inside the hold period's margin); at the end,
        // where settles wait on it, at every step.
        if closing || now >= self.chain_time + 600 {
            chain.set_time(now).await?;
            self.chain_time = now;
        }
        for n in &due {
            let gap = self
                .rng
                .random_range(self.workload.online_every.0..=self.workload.online_every.1);
            self.phones[*n].next_online = now + gap;
        }
        // Phones online at the same time go about it side by side, as they would.
        let closers = &self.closers;
        let rounds = futures::future::join_all(
            due.iter()
                .map(|n| online_round(&self.phones[*n], *n, closing, closers)),
        )
        .await;
        for (n, result) in due.into_iter().zip(rounds) {
            self.figures.online_rounds += 1;
            self.touched.insert(n);
            match result {
                Ok(round) => {
                    self.figures.closes += round.closes;
                    for id in round.stale {
                        self.stale.insert(id, false);
                    }
                }
                Err(error) if fatal(&error) => return Err(error.into()),
                Err(error) => {
                    tracing::debug!(target: "smartmesh::sim", phone = n, %error, "online round");
                    *self
                        .figures
                        .online_errors
                        .entry(error_kind(&error))
                        .or_default() += 1;
                }
            }
        }
        Ok(())
    }

    /// Before the chain's clock passes a lying closer's `settleAt`, gives the watcher the wall
    /// time it would have had in those hours to read the chain and dispute.
    async fn before_settle_at(&mut self, now: u64, chain: &Chain) -> eyre::Result<()> {
        let mut due = Vec::new();
        for (id, checked) in &self.stale {
            if *checked {
                continue;
            }
            let info = chain.channel(*id).await?;
            if info.state != 2 || info.penalized || info.settleAt <= U256::from(now) {
                due.push((*id, info.penalized));
            }
        }
        for (id, penalized) in due {
            if !penalized {
                chain
                    .watcher_caught_up(std::time::Duration::from_secs(30))
                    .await?;
                chain
                    .watcher_penalizes(id, std::time::Duration::from_secs(10))
                    .await?;
            }
            self.stale.insert(id, true);
        }
        Ok(())
    }

    fn sample(&mut self) {
        let completed = self
            .figures
            .payments
            .iter()
            .filter(|p| p.ended.is_some() && p.failure.is_none())
            .count();
        let sent: u64 = self.figures.sessions.iter().map(|s| s.sent).sum();
        let delivered: u64 = self.figures.sessions.iter().map(|s| s.delivered).sum();
        self.figures.series.push(Sample {
            at: self.elapsed(),
            requested: self.figures.payments.len() as u64,
            completed: completed as u64,
            packets_sent: sent,
            packets_delivered: delivered,
        });
    }

    /// Reads each session's progress from its sender's and recipient's wallets.
    fn read_sessions(&mut self) {
        for record in &mut self.figures.sessions {
            let summary = |n: usize| {
                self.phones[n]
                    .mesh
                    .session_summaries()
                    .into_iter()
                    .find(|s| s.session == record.session)
            };
            record.sent = summary(record.path[0]).map_or(0, |s| s.packets);
            record.delivered =
                summary(*record.path.last().expect("a path ends")).map_or(0, |s| s.packets);
            record.earned = record.path[1..record.path.len() - 1]
                .iter()
                .map(|n| summary(*n).map_or(0, |s| s.earned))
                .collect();
        }
    }

    /// One step of `tick` seconds: the phones move and meet, new payments and sessions start
    /// while `asking`, every message is handed over and taken, time acts on the transfers
    /// every ten minutes, the phones due online go online, and ended payments are marked.
    async fn step(&mut self, tick: u64, asking: bool, chain: &Chain) -> eyre::Result<()> {
        chain.check_services()?;
        self.clock.advance(tick);
        self.move_phones(tick).await?;
        if asking {
            self.ask(tick);
            self.try_payments().await?;
            self.start_sessions(tick).await?;
        }
        self.pump().await?;
        if self.elapsed() % 600 < tick {
            self.tick_all().await?;
            self.pump().await?;
        }
        self.go_online(false, chain).await?;
        self.pump().await?;
        self.check_payments().await
    }

    /// Runs the day: `hours` of moving, paying and streaming in steps of `tick` seconds.
    pub(crate) async fn day(&mut self, hours: u64, tick: u64, chain: &Chain) -> eyre::Result<()> {
        let end = self.start + hours * 3_600;
        let mut next_sample = self.now();
        while self.now() < end {
            self.step(tick, true, chain).await?;
            if self.now() >= next_sample {
                self.read_sessions();
                self.sample();
                next_sample += 900;
            }
        }
        Ok(())
    }

    /// After the day: no new payments or sessions; phones go on meeting until every payment
    /// under way ended or `longest` seconds passed. Payments still looking for a route fail.
    pub(crate) async fn drain(
        &mut self,
        longest: u64,
        tick: u64,
        chain: &Chain,
    ) -> eyre::Result<()> {
        for request in std::mem::take(&mut self.requests) {
            self.figures.payments[request.record].failure =
                Some("no route before the day ended".into());
        }
        let until = self.now() + longest;
        while !self.underway.is_empty() && self.now() < until {
            self.step(tick, false, chain).await?;
        }
        self.read_sessions();
        self.sample();
        Ok(())
    }

    /// Every channel closes when its closer is next online (a stale closer's by itself,
    /// claiming it paid nothing), then the hold period runs with phones syncing as usual and
    /// the watcher disputing; channels settle. Fails when channels are still unsettled after
    /// `longest` seconds.
    pub(crate) async fn close_all(
        &mut self,
        longest: u64,
        tick: u64,
        chain: &Chain,
    ) -> eyre::Result<()> {
        let mut channels = BTreeMap::new();
        for (n, phone) in self.phones.iter().enumerate() {
            for (id, partner) in &phone.channels {
                channels.insert(*id, (n.min(*partner), n.max(*partner)));
            }
        }
        for (id, (a, b)) in &channels {
            let liar = [*a, *b]
                .into_iter()
                .find(|n| self.phones[*n].conduct == Conduct::StaleCloser);
            self.closers.insert(*id, liar.unwrap_or(*a));
        }
        let until = self.now() + longest;
        let mut unsettled: BTreeSet<B256> = channels.keys().copied().collect();
        // Payments are over: the phones stay where they are; what matters now is when each
        // comes online.
        loop {
            chain.check_services()?;
            self.clock.advance(tick);
            self.pump().await?;
            self.go_online(true, chain).await?;
            self.pump().await?;
            if self.elapsed() % 3_600 >= tick {
                continue;
            }
            // Read side by side: one call after another, hundreds of channels an hour were
            // a good part of the end's wall time.
            let states =
                futures::future::try_join_all(unsettled.iter().map(|id| chain.channel(*id)))
                    .await?;
            // A settled channel's storage is deleted: its state reads 0.
            unsettled = unsettled
                .into_iter()
                .zip(states)
                .filter(|(_, info)| info.state != 0)
                .map(|(id, _)| id)
                .collect();
            if unsettled.is_empty() {
                break;
            }
            if self.now() >= until {
                bail!(
                    "{} channels were still not settled {longest} s after the day",
                    unsettled.len()
                );
            }
        }
        self.figures.settled_after = self.elapsed();
        Ok(())
    }

    /// Whether the channel's closer declared less than it paid.
    pub(crate) fn stale_channel(&self, id: B256) -> bool {
        self.stale.contains_key(&id)
    }

    /// A phone's address.
    pub(crate) fn address_of(&self, n: usize) -> Address {
        self.phones[n].mesh.address()
    }

    /// Which phone an address is.
    pub(crate) fn phone_of(&self, address: Address) -> Option<usize> {
        self.index.get(&address).copied()
    }
}

/// What a phone did in one online round.
#[derive(Debug, Default)]
struct Round {
    closes: u64,
    /// Channels it closed declaring less than it paid.
    stale: Vec<B256>,
}

/// What a phone does when it has internet: reads its channels from the chain (a close it
/// missed freezes the channel), settles what is due, closes what it is to close, syncs
/// receipts and secrets to the watcher, and lets time act on its transfers.
async fn online_round(
    phone: &Phone,
    n: usize,
    closing: bool,
    closers: &BTreeMap<B256, usize>,
) -> Result<Round, smartmesh_mesh::MeshError> {
    phone.mesh.set_online(true);
    let result = online_steps(phone, n, closing, closers).await;
    phone.mesh.set_online(false);
    result
}

async fn online_steps(
    phone: &Phone,
    n: usize,
    closing: bool,
    closers: &BTreeMap<B256, usize>,
) -> Result<Round, smartmesh_mesh::MeshError> {
    let mut round = Round::default();
    for (id, _) in &phone.channels {
        let id = *id;
        let channel = phone.mesh.refresh(id).await?;
        if closing && channel.state == Phase::Open && closers.get(&id) == Some(&n) {
            let paid = phone.mesh.channel_state(id).await?.mine.transferred();
            if phone.conduct == Conduct::StaleCloser && !paid.is_zero() {
                phone.mesh.close_claiming(id, Some(U256::ZERO)).await?;
                round.stale.push(id);
            } else {
                phone.mesh.close(id).await?;
            }
            round.closes += 1;
        } else if channel.state == Phase::Closed
            && u64::try_from(phone.mesh.settle_at(id).await?).unwrap_or(u64::MAX) < phone.mesh.now()
            && let Err(error) = phone.mesh.settle(id).await
        {
            // The watcher or the partner may have settled it first.
            if phone.mesh.refresh(id).await?.state != Phase::Settled {
                return Err(error);
            }
        }
    }
    let answers = phone.mesh.take_held().await?;
    phone.mesh.send_or_queue(&phone.transport, answers).await?;
    if phone.mesh.reaches_watcher() {
        phone.mesh.sync().await?;
    }
    let out = phone.mesh.tick_transfers().await?;
    phone.mesh.send_or_queue(&phone.transport, out).await?;
    Ok(round)
}

/// A failure's kind for the figures: its variant's message without the values.
pub(crate) fn error_kind(error: &smartmesh_mesh::MeshError) -> String {
    use smartmesh_mesh::MeshError as E;
    match error {
        E::NoRoute { .. } => "no route".into(),
        E::UnknownKey(_) => "target key unknown".into(),
        E::Offline(service) => format!("offline: {service}"),
        E::Protocol(error) => format!("protocol: {}", variant(&format!("{error:?}"))),
        other => variant(&format!("{other:?}")),
    }
}

fn variant(debug: &str) -> String {
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or(debug)
        .to_owned()
}
