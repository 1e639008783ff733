//! The off-chain payment rules of DESIGN.md section 4, as plain functions that the phone
//! client and the watcher both call, so both accept exactly the same proofs.

use alloy::primitives::{B256, U256};

use crate::{BalanceProof, ProtocolError};

/// What bounds a payer's total payments in one channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayerCapacity {
    /// The payer's total deposit on chain.
    pub deposit: U256,
    /// The largest of the payer's on-chain withdrawn total and every `totalWithdraw` the
    /// receiver signed for it whose deadline has not passed (`W*`).
    pub withdrawn: U256,
    /// What the receiver has paid the payer (the receiver's own latest transferred amount).
    pub received: U256,
}

impl PayerCapacity {
    /// The most the payer can have paid in total: `deposit - withdrawn + received`.
    pub fn limit(&self) -> Result<U256, ProtocolError> {
        self.deposit
            .checked_add(self.received)
            .and_then(|held| held.checked_sub(self.withdrawn))
            .ok_or(ProtocolError::Overdrawn)
    }
}

/// Checks that `next` may follow `previous` (the last proof accepted from the same payer, if
/// any) in channel `channel_id`: same channel, no locks, a higher nonce, a transferred amount
/// that did not fall and stays within the payer's capacity. The signature is checked apart.
pub fn check_successor(
    channel_id: B256,
    previous: Option<&BalanceProof>,
    next: &BalanceProof,
    capacity: &PayerCapacity,
) -> Result<(), ProtocolError> {
    if next.channelId != channel_id {
        return Err(ProtocolError::ChannelMismatch {
            expected: channel_id,
            actual: next.channelId,
        });
    }
    if !next.lockedAmount.is_zero() || !next.locksRoot.is_zero() {
        return Err(ProtocolError::LocksNotSupported);
    }
    let (last_nonce, last_transferred) =
        previous.map_or((U256::ZERO, U256::ZERO), |p| (p.nonce, p.transferredAmount));
    if next.nonce <= last_nonce {
        return Err(ProtocolError::NonceNotIncreased {
            last: last_nonce,
            got: next.nonce,
        });
    }
    if next.transferredAmount < last_transferred {
        return Err(ProtocolError::TransferredDecreased {
            last: last_transferred,
            got: next.transferredAmount,
        });
    }
    let limit = capacity.limit()?;
    if next.transferredAmount > limit {
        return Err(ProtocolError::ExceedsCapacity {
            transferred: next.transferredAmount,
            capacity: limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHANNEL: B256 = B256::repeat_byte(7);

    fn proof(nonce: u64, transferred: u64) -> BalanceProof {
        BalanceProof {
            channelId: CHANNEL,
            nonce: U256::from(nonce),
            transferredAmount: U256::from(transferred),
            ..Default::default()
        }
    }

    fn capacity(deposit: u64, withdrawn: u64, received: u64) -> PayerCapacity {
        PayerCapacity {
            deposit: U256::from(deposit),
            withdrawn: U256::from(withdrawn),
            received: U256::from(received),
        }
    }

    #[test]
    fn accepts_a_first_proof_and_a_proper_successor() {
        let cap = capacity(100, 0, 0);
        assert_eq!(check_successor(CHANNEL, None, &proof(1, 10), &cap), Ok(()));
        assert_eq!(
            check_successor(CHANNEL, Some(&proof(1, 10)), &proof(5, 10), &cap),
            Ok(())
        );
        assert_eq!(
            check_successor(CHANNEL, Some(&proof(1, 10)), &proof(2, 100), &cap),
            Ok(())
        );
    }

    #[test]
    fn refuses_stale_or_shrinking_proofs() {
        let cap = capacity(100, 0, 0);
        assert_eq!(
            check_successor(CHANNEL, None, &proof(0, 1), &cap),
            Err(ProtocolError::NonceNotIncreased {
                last: U256::ZERO,
                got: U256::ZERO
            })
        );
        assert!(matches!(
            check_successor(CHANNEL, Some(&proof(3, 10)), &proof(3, 20), &cap),
            Err(ProtocolError::NonceNotIncreased { .. })
        ));
        assert!(matches!(
            check_successor(CHANNEL, Some(&proof(3, 10)), &proof(4, 9), &cap),
            Err(ProtocolError::TransferredDecreased { .. })
        ));
    }

    #[test]
    fn capacity_counts_withdrawals_and_what_the_payer_received() {
        // Deposit 100, withdrew 30, received 5: at most 75 paid.
        let cap = capacity(100, 30, 5);
        assert_eq!(check_successor(CHANNEL, None, &proof(1, 75), &cap), Ok(()));
        assert_eq!(
            check_successor(CHANNEL, None, &proof(1, 76), &cap),
            Err(ProtocolError::ExceedsCapacity {
                transferred: U256::from(76),
                capacity: U256::from(75)
            })
        );
        assert_eq!(
            check_successor(CHANNEL, None, &proof(1, 0), &capacity(1, 2, 0)),
            Err(ProtocolError::Overdrawn)
        );
    }

    #[test]
    fn arithmetic_never_wraps() {
        let cap = PayerCapacity {
            deposit: U256::MAX,
            withdrawn: U256::ZERO,
            received: U256::from(1),
        };
        assert_eq!(
            check_successor(CHANNEL, None, &proof(1, 1), &cap),
            Err(ProtocolError::Overdrawn)
        );
        let huge = BalanceProof {
            transferredAmount: U256::MAX,
            ..proof(1, 0)
        };
        assert!(matches!(
            check_successor(CHANNEL, None, &huge, &capacity(100, 0, 0)),
            Err(ProtocolError::ExceedsCapacity { .. })
        ));
    }

    #[test]
    fn refuses_other_channels_and_locks() {
        let cap = capacity(100, 0, 0);
        let other = BalanceProof {
            channelId: B256::repeat_byte(8),
            ..proof(1, 1)
        };
        assert!(matches!(
            check_successor(CHANNEL, None, &other, &cap),
            Err(ProtocolError::ChannelMismatch { .. })
        ));
        let locked = BalanceProof {
            lockedAmount: U256::from(1),
            ..proof(1, 1)
        };
        assert_eq!(
            check_successor(CHANNEL, None, &locked, &cap),
            Err(ProtocolError::LocksNotSupported)
        );
        let rooted = BalanceProof {
            locksRoot: B256::repeat_byte(1),
            ..proof(1, 1)
        };
        assert_eq!(
            check_successor(CHANNEL, None, &rooted, &cap),
            Err(ProtocolError::LocksNotSupported)
        );
    }
}
