//! What a simulation measured: every payment and session as it went, samples over time, and
//! the figures made of them (the table, `figures.json`).

use std::collections::BTreeMap;

use alloy::primitives::B256;
use serde::Serialize;

/// One payment asked for.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct PaymentRecord {
    /// How many channels away the target is in the graph.
    pub(crate) distance: usize,
    /// When it was asked for, in seconds since the start.
    pub(crate) requested: u64,
    /// When a route was found and it went out.
    pub(crate) started: Option<u64>,
    /// The channels its route took.
    pub(crate) hops: Option<usize>,
    /// When it ended (paid, or failed after it started).
    pub(crate) ended: Option<u64>,
    /// Why it failed, if it did.
    pub(crate) failure: Option<String>,
}

impl PaymentRecord {
    fn completed(&self) -> bool {
        self.ended.is_some() && self.failure.is_none()
    }
}

/// One data session.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SessionRecord {
    pub(crate) session: B256,
    pub(crate) started: u64,
    /// Sender, relays, recipient (phone numbers).
    pub(crate) path: Vec<usize>,
    pub(crate) packets: u64,
    /// Packets the sender sent.
    pub(crate) sent: u64,
    /// Packets the recipient took.
    pub(crate) delivered: u64,
    /// What each relay earned, in wei.
    pub(crate) earned: Vec<u128>,
}

/// The mesh at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Sample {
    pub(crate) at: u64,
    pub(crate) requested: u64,
    pub(crate) completed: u64,
    pub(crate) packets_sent: u64,
    pub(crate) packets_delivered: u64,
}

/// How a channel ended on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// Closed with the closer's true claim, settled.
    HonestClose,
    /// Closed with a stale claim; a watcher proved it and the closer lost its deposit.
    StaleClosePenalized,
    /// Closed with a stale claim nobody disproved in time.
    StaleCloseUnpunished,
}

/// An honest phone's channel that paid it less than it was owed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Loss {
    pub(crate) phone: usize,
    pub(crate) channel: B256,
    pub(crate) owed: String,
    pub(crate) paid_out: String,
}

/// Everything measured.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Figures {
    pub(crate) seed: u64,
    pub(crate) phones: usize,
    pub(crate) hours: u64,
    pub(crate) channels: usize,
    pub(crate) conducts: BTreeMap<String, usize>,
    /// Times two phones came in range.
    pub(crate) contacts: u64,
    pub(crate) channel_messages: u64,
    pub(crate) messages_by_kind: BTreeMap<String, u64>,
    pub(crate) data_frames: u64,
    /// Channel messages held until their phone could read the chain.
    pub(crate) held_messages: u64,
    /// Data frames that could not go (their link had gone).
    pub(crate) frames_lost: u64,
    /// Messages a wallet refused, by reason.
    pub(crate) refused: BTreeMap<String, u64>,
    pub(crate) online_rounds: u64,
    pub(crate) online_errors: BTreeMap<String, u64>,
    pub(crate) closes: u64,
    pub(crate) sessions_without_path: u64,
    /// Seconds from the start until the last channel settled.
    pub(crate) settled_after: u64,
    pub(crate) outcomes: BTreeMap<B256, Outcome>,
    pub(crate) honest_phones_checked: usize,
    pub(crate) losses: Vec<Loss>,
    /// Wall seconds: setting up (chain, phones, channels), the day, the end (drain, closes,
    /// hold periods, settles, checks).
    pub(crate) wall: BTreeMap<String, f64>,
    /// The one core the simulator's threads ran on, or none (`--all-cores`, or no way to pin).
    pub(crate) core: Option<usize>,
    #[serde(skip)]
    pub(crate) payments: Vec<PaymentRecord>,
    #[serde(skip)]
    pub(crate) sessions: Vec<SessionRecord>,
    #[serde(skip)]
    pub(crate) series: Vec<Sample>,
}

/// Completion by the number of channels a route took.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ByHops {
    pub(crate) hops: usize,
    pub(crate) started: usize,
    pub(crate) completed: usize,
    /// Seconds from asking to completion.
    pub(crate) p50_secs: Option<u64>,
    pub(crate) p99_secs: Option<u64>,
}

/// The headline figures.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Summary {
    pub(crate) payments: usize,
    pub(crate) completed: usize,
    pub(crate) completed_share: f64,
    pub(crate) failures: BTreeMap<String, usize>,
    pub(crate) by_hops: Vec<ByHops>,
    /// Channel messages handed over per payment that went out (checkpoint payments of data
    /// sessions excluded).
    pub(crate) messages_per_payment: f64,
    pub(crate) sessions: usize,
    pub(crate) packets_sent: u64,
    pub(crate) packets_delivered: u64,
    pub(crate) delivered_mb: f64,
    /// SMT relays earned for data, in all and per delivered MB.
    pub(crate) relay_earnings_smt: f64,
    pub(crate) relay_smt_per_mb: f64,
    pub(crate) outcomes: BTreeMap<String, usize>,
    pub(crate) honest_phones_losing_funds: usize,
}

fn percentile(sorted: &[u64], share: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64) * share).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Wei to SMT, for figures (18 decimals).
pub(crate) fn smt(wei: u128) -> f64 {
    wei as f64 / 1e18
}

impl Figures {
    /// Seconds from asking to completion of the completed payments that took `hops`
    /// channels, sorted.
    pub(crate) fn completion_times(&self, hops: usize) -> Vec<u64> {
        let mut times: Vec<u64> = self
            .payments
            .iter()
            .filter(|p| p.completed() && p.hops == Some(hops))
            .filter_map(|p| p.ended.map(|ended| ended - p.requested))
            .collect();
        times.sort_unstable();
        times
    }

    /// Each phone's data earnings, in wei.
    pub(crate) fn relay_earnings(&self) -> BTreeMap<usize, u128> {
        let mut earned = BTreeMap::new();
        for session in &self.sessions {
            for (relay, wei) in session.path[1..session.path.len() - 1]
                .iter()
                .zip(&session.earned)
            {
                *earned.entry(*relay).or_default() += wei;
            }
        }
        earned
    }

    pub(crate) fn summary(&self) -> Summary {
        let mediated_messages: u64 = self
            .messages_by_kind
            .iter()
            .filter(|(kind, _)| kind.as_str() != "payment")
            .map(|(_, count)| count)
            .sum();
        let completed = self.payments.iter().filter(|p| p.completed()).count();
        let mut failures = BTreeMap::new();
        for payment in &self.payments {
            if let Some(failure) = &payment.failure {
                *failures.entry(failure.clone()).or_default() += 1;
            } else if payment.ended.is_none() {
                *failures.entry("still under way".to_owned()).or_default() += 1;
            }
        }
        let by_hops = (1..=3)
            .map(|hops| {
                let times = self.completion_times(hops);
                ByHops {
                    hops,
                    started: self
                        .payments
                        .iter()
                        .filter(|p| p.hops == Some(hops))
                        .count(),
                    completed: times.len(),
                    p50_secs: percentile(&times, 0.5),
                    p99_secs: percentile(&times, 0.99),
                }
            })
            .collect();
        let direct = self
            .payments
            .iter()
            .filter(|p| p.completed() && p.hops == Some(1))
            .count();
        let went_out = self.payments.iter().filter(|p| p.started.is_some()).count();
        let packets_sent = self.sessions.iter().map(|s| s.sent).sum();
        let packets_delivered: u64 = self.sessions.iter().map(|s| s.delivered).sum();
        let delivered_mb =
            packets_delivered as f64 * smartmesh_protocol::relay::MAX_PACKET as f64 / 1e6;
        let relay_earnings_smt = smt(self.relay_earnings().values().sum());
        let mut outcomes = BTreeMap::new();
        for outcome in self.outcomes.values() {
            let name = serde_json::to_value(outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *outcomes.entry(name).or_default() += 1;
        }
        let mut losing: Vec<usize> = self.losses.iter().map(|l| l.phone).collect();
        losing.dedup();
        Summary {
            payments: self.payments.len(),
            completed,
            completed_share: if self.payments.is_empty() {
                0.0
            } else {
                completed as f64 / self.payments.len() as f64
            },
            failures,
            by_hops,
            messages_per_payment: if went_out == 0 {
                0.0
            } else {
                (mediated_messages as f64 + direct as f64) / went_out as f64
            },
            sessions: self.sessions.len(),
            packets_sent,
            packets_delivered,
            delivered_mb,
            relay_earnings_smt,
            relay_smt_per_mb: if delivered_mb > 0.0 {
                relay_earnings_smt / delivered_mb
            } else {
                0.0
            },
            outcomes,
            honest_phones_losing_funds: losing.len(),
        }
    }
}

fn duration(secs: Option<u64>) -> String {
    match secs {
        None => "-".into(),
        Some(secs) if secs < 120 => format!("{secs} s"),
        Some(secs) if secs < 7_200 => format!("{:.1} min", secs as f64 / 60.0),
        Some(secs) => format!("{:.1} h", secs as f64 / 3_600.0),
    }
}

/// The table printed at the end.
pub(crate) fn table(figures: &Figures, summary: &Summary) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!(
        "{} phones, {} h, seed {}, {} channels; conduct {:?}",
        figures.phones, figures.hours, figures.seed, figures.channels, figures.conducts
    ));
    line(format!(
        "payments: {} asked, {} completed ({:.1}%); failures {:?}",
        summary.payments,
        summary.completed,
        summary.completed_share * 100.0,
        summary.failures
    ));
    line("  hops  went out  completed  p50        p99".into());
    for hops in &summary.by_hops {
        line(format!(
            "  {:<4}  {:<8}  {:<9}  {:<9}  {}",
            hops.hops,
            hops.started,
            hops.completed,
            duration(hops.p50_secs),
            duration(hops.p99_secs)
        ));
    }
    line(format!(
        "messages per payment: {:.2}; contacts {}; channel messages {} ({} held for a registry read); data frames {} ({} lost)",
        summary.messages_per_payment,
        figures.contacts,
        figures.channel_messages,
        figures.held_messages,
        figures.data_frames,
        figures.frames_lost
    ));
    line(format!(
        "data: {} sessions ({} found no linked path), {} packets sent, {} delivered ({:.3} MB); relays earned {:.6} SMT, {:.6} SMT per delivered MB",
        summary.sessions,
        figures.sessions_without_path,
        summary.packets_sent,
        summary.packets_delivered,
        summary.delivered_mb,
        summary.relay_earnings_smt,
        summary.relay_smt_per_mb
    ));
    line(format!(
        "online: {} rounds, errors {:?}; refused messages {:?}",
        figures.online_rounds, figures.online_errors, figures.refused
    ));
    line(format!(
        "on chain: {} closes, outcomes {:?}; all settled {:.1} h after the start",
        figures.closes,
        summary.outcomes,
        figures.settled_after as f64 / 3_600.0
    ));
    line(format!(
        "honest phones checked against the chain: {}; losing funds: {}",
        figures.honest_phones_checked, summary.honest_phones_losing_funds
    ));
    let cores = figures
        .core
        .map_or("on every core".to_owned(), |core| format!("on core {core}"));
    line(format!("wall time: {:?}, {cores}", figures.wall));
    out
}
