//! A channel as the phone knows it, and what it can still send and receive.

use alloy::primitives::{Address, B256, U256};
use smartmesh_protocol::channel::{ChannelState, Freeze, Phase};

/// A channel in this wallet's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The channel id.
    pub id: B256,
    /// The other participant.
    pub partner: Address,
    /// Open, closed or settled, as last read from the chain.
    pub state: Phase,
    /// The hold period, in seconds.
    pub settle_timeout: u64,
    /// This wallet's total deposit.
    pub my_deposit: U256,
    /// This wallet's total withdrawal on chain.
    pub my_withdrawn: U256,
    /// The partner's total deposit.
    pub partner_deposit: U256,
    /// The partner's total withdrawal on chain.
    pub partner_withdrawn: U256,
    /// What this wallet signed that has not landed yet, and until when it freezes the channel.
    pub frozen: Option<Freeze>,
    /// `t_open`: when the chain last showed the channel open (a block's time minus finality);
    /// no lock may expire later than `t_open + settle_timeout - F`.
    pub open_seen_at: u64,
}

/// What can still move in a channel, counting pending locks and withdrawals signed but not
/// yet on chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    /// What this wallet can still pay or lock toward its partner.
    pub can_send: U256,
    /// What the partner can still pay or lock toward this wallet.
    pub can_receive: U256,
    /// Everything this wallet has paid (its latest proof's transferred amount).
    pub sent: U256,
    /// Everything the partner has paid this wallet.
    pub received: U256,
    /// This wallet's pending locks toward its partner, in sum.
    pub locked_out: U256,
    /// The partner's pending locks toward this wallet, in sum.
    pub locked_in: U256,
}

impl Capacity {
    /// The capacity rule with locks, `T + L <= D - W* + T_partner`, on each side.
    pub fn of(state: &ChannelState, now: u64) -> Self {
        Self {
            can_send: state.can_send(now),
            can_receive: state.can_receive(now),
            sent: state.mine.transferred(),
            received: state.theirs.transferred(),
            locked_out: state.mine.locks.locked_amount(),
            locked_in: state.theirs.locks.locked_amount(),
        }
    }
}
