//! A channel as the phone knows it, and what it can still send and receive.

use alloy::primitives::{Address, B256, U256};
use smartmesh_protocol::PayerCapacity;

/// A channel in this wallet's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The channel id.
    pub id: B256,
    /// The other participant.
    pub partner: Address,
    /// `open`, `closed` or `settled`, as last read from the chain.
    pub state: String,
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
    pub frozen: Option<(String, u64)>,
}

/// What can still move in a channel, counting withdrawals signed but not yet on chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    /// What this wallet can still pay its partner.
    pub can_send: U256,
    /// What the partner can still pay this wallet.
    pub can_receive: U256,
    /// Everything this wallet has paid (its latest proof's transferred amount).
    pub sent: U256,
    /// Everything the partner has paid this wallet.
    pub received: U256,
}

impl Capacity {
    /// `deposit - withdrawn* + received - sent` on each side, where `withdrawn*` is the larger
    /// of the on-chain total and any withdrawal signed whose deadline is ahead. Never below
    /// zero.
    pub fn of(
        channel: &Channel,
        sent: U256,
        received: U256,
        my_signed_withdrawal: U256,
        partner_signed_withdrawal: U256,
    ) -> Self {
        // The protocol's own payer rule, for each side; what is left is that limit minus what
        // the side already paid.
        let side = |deposit: U256, withdrawn: U256, paid_in: U256, paid_out: U256| {
            PayerCapacity {
                deposit,
                withdrawn,
                received: paid_in,
            }
            .limit()
            .unwrap_or_default()
            .saturating_sub(paid_out)
        };
        Self {
            can_send: side(
                channel.my_deposit,
                channel.my_withdrawn.max(my_signed_withdrawal),
                received,
                sent,
            ),
            can_receive: side(
                channel.partner_deposit,
                channel.partner_withdrawn.max(partner_signed_withdrawal),
                sent,
                received,
            ),
            sent,
            received,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_counts_payments_both_ways_and_signed_withdrawals() {
        let channel = Channel {
            id: B256::ZERO,
            partner: Address::ZERO,
            state: "open".into(),
            settle_timeout: 60,
            my_deposit: U256::from(100),
            my_withdrawn: U256::from(10),
            partner_deposit: U256::from(50),
            partner_withdrawn: U256::ZERO,
            frozen: None,
        };
        let capacity = Capacity::of(
            &channel,
            U256::from(30),
            U256::from(5),
            U256::ZERO,
            U256::ZERO,
        );
        assert_eq!(capacity.can_send, U256::from(100 - 10 + 5 - 30));
        assert_eq!(capacity.can_receive, U256::from(50 + 30 - 5));
        // A withdrawal of 40 signed but not yet on chain counts in full.
        let capacity = Capacity::of(
            &channel,
            U256::from(30),
            U256::from(5),
            U256::from(40),
            U256::from(20),
        );
        assert_eq!(capacity.can_send, U256::from(100 - 40 + 5 - 30));
        assert_eq!(capacity.can_receive, U256::from(50 - 20 + 30 - 5));
    }
}
