//! What one participant knows of a channel: the on-chain facts it has read, the latest proof
//! each side signed with its pending locks, the secrets and registry reads it holds, and what
//! it has signed that freezes the channel.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, U256};

use crate::{LockList, PayerCapacity, ProtocolError, SignedProof};

/// Deployment settings the off-chain rules depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `F`: seconds after which a block is final. A lock must expire `F` before any close the
    /// receiver has not seen could settle, and a `LockExpired` waits `F` past the expiry.
    pub finality: u64,
}

/// Where the channel is in its life on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Payments move.
    Open,
    /// Closed; the hold period runs.
    Closed,
    /// Paid out and deleted on chain.
    Settled,
}

impl Phase {
    /// `open`, `closed` or `settled`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Settled => "settled",
        }
    }
}

impl Phase {
    /// The phase a name from [`Phase::as_str`] stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Open, Self::Closed, Self::Settled]
            .into_iter()
            .find(|phase| phase.as_str() == name)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What this participant signed that stops payments until it lands or its deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FreezeKind {
    /// A close.
    Close,
    /// A withdrawal of its own.
    Withdraw,
    /// A cooperative settle.
    CooperativeSettle,
}

impl FreezeKind {
    /// How the journal and the CLI name it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Close => "close",
            Self::Withdraw => "withdraw",
            Self::CooperativeSettle => "cooperative settle",
        }
    }

    /// The kind a name from [`FreezeKind::as_str`] stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Close, Self::Withdraw, Self::CooperativeSettle]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for FreezeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A freeze and the last second it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Freeze {
    /// What was signed.
    pub kind: FreezeKind,
    /// Unix seconds; the freeze holds while `now <= until`.
    pub until: u64,
}

/// A withdrawal total signed for a participant, counted against it until its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignedWithdrawal {
    /// The total withdrawal.
    pub total: U256,
    /// The signatures' deadline.
    pub deadline: u64,
}

/// One direction of the channel: what one participant holds and has paid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Side {
    /// Its total deposit on chain.
    pub deposit: U256,
    /// Its total withdrawal on chain.
    pub withdrawn: U256,
    /// Withdrawal totals signed for it, not yet known on chain.
    pub signed_withdrawals: Vec<SignedWithdrawal>,
    /// The latest proof it signed that this participant holds.
    pub latest: Option<SignedProof>,
    /// The pending locks of that proof, toward the other side.
    pub locks: LockList,
}

impl Side {
    /// Everything it has paid: its latest proof's transferred amount.
    pub fn transferred(&self) -> U256 {
        self.latest
            .as_ref()
            .map_or(U256::ZERO, |signed| signed.proof.transferredAmount)
    }

    /// Its latest proof's nonce (0 before any).
    pub fn nonce(&self) -> U256 {
        self.latest
            .as_ref()
            .map_or(U256::ZERO, |signed| signed.proof.nonce)
    }

    /// `W*`: the largest of its on-chain withdrawal and every total signed for it whose
    /// deadline has not passed.
    pub fn withdrawn_at(&self, now: u64) -> U256 {
        self.signed_withdrawals
            .iter()
            .filter(|signed| signed.deadline >= now)
            .map(|signed| signed.total)
            .fold(self.withdrawn, U256::max)
    }
}

/// The registry as last read from a finalized block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegistryRead {
    /// `registeredAt` (0: not registered).
    pub registered_at: u64,
    /// The timestamp of the finalized block it was read at.
    pub block_time: u64,
}

/// One participant's view of a channel: the state the channel machine moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelState {
    /// The chain of the TokenNetwork.
    pub chain_id: u64,
    /// The TokenNetwork.
    pub token_network: Address,
    /// The channel.
    pub id: B256,
    /// This participant.
    pub me: Address,
    /// The other one.
    pub partner: Address,
    /// The hold period, in seconds.
    pub settle_timeout: u64,
    /// `t_open`: the timestamp of the latest finalized block in which the channel was seen
    /// open. No lock may expire later than `t_open + settle_timeout - F`.
    pub open_seen_at: u64,
    /// On chain.
    pub phase: Phase,
    /// This participant's direction: what it paid and its pending locks.
    pub mine: Side,
    /// The partner's direction.
    pub theirs: Side,
    /// What this participant signed that stops payments.
    pub freeze: Option<Freeze>,
    /// Every secret this participant knows, by condition.
    pub secrets: BTreeMap<B256, B256>,
    /// The registry, by condition, as read from finalized blocks.
    pub registry: BTreeMap<B256, RegistryRead>,
    /// Deployment settings.
    pub settings: Settings,
}

impl ChannelState {
    /// A channel just seen open at `open_seen_at`, with nothing paid.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        chain_id: u64,
        token_network: Address,
        id: B256,
        me: Address,
        partner: Address,
        settle_timeout: u64,
        open_seen_at: u64,
        settings: Settings,
    ) -> Self {
        Self {
            chain_id,
            token_network,
            id,
            me,
            partner,
            settle_timeout,
            open_seen_at,
            phase: Phase::Open,
            mine: Side::default(),
            theirs: Side::default(),
            freeze: None,
            secrets: BTreeMap::new(),
            registry: BTreeMap::new(),
            settings,
        }
    }

    /// What `payer` may have paid and locked in total: `D - W* + (what it received)`.
    pub(crate) fn limit(&self, payer_is_me: bool, now: u64) -> Result<U256, ProtocolError> {
        let (payer, payee) = if payer_is_me {
            (&self.mine, &self.theirs)
        } else {
            (&self.theirs, &self.mine)
        };
        PayerCapacity {
            deposit: payer.deposit,
            withdrawn: payer.withdrawn_at(now),
            received: payee.transferred(),
        }
        .limit()
    }

    /// What this participant can still pay or lock: `D - W* + T_partner - T - L`.
    pub fn can_send(&self, now: u64) -> U256 {
        self.limit(true, now)
            .unwrap_or_default()
            .saturating_sub(self.mine.transferred() + self.mine.locks.locked_amount())
    }

    /// What the partner can still pay or lock toward this participant.
    pub fn can_receive(&self, now: u64) -> U256 {
        self.limit(false, now)
            .unwrap_or_default()
            .saturating_sub(self.theirs.transferred() + self.theirs.locks.locked_amount())
    }

    /// The latest expiry a new lock may carry: `t_open + settle_timeout - F`.
    pub fn latest_lock_expiry(&self) -> u64 {
        (self.open_seen_at + self.settle_timeout).saturating_sub(self.settings.finality)
    }

    /// The freeze that holds at `now`, if any.
    pub fn frozen_at(&self, now: u64) -> Option<Freeze> {
        self.freeze.filter(|freeze| now <= freeze.until)
    }

    /// Whether the registry, read from a block at or after `expiry`, shows that `condition_id`
    /// was not registered before `expiry`: the one proof that a lock may be removed unpaid.
    pub fn expired_unregistered(&self, condition_id: &B256, expiry: u64) -> bool {
        self.registry.get(condition_id).is_some_and(|read| {
            read.block_time >= expiry && (read.registered_at == 0 || read.registered_at >= expiry)
        })
    }
}
