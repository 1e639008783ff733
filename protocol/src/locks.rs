//! Locks and lock lists, byte for byte as `contracts/src/libraries/Locks.sol` encodes them
//! (DESIGN.md 3.4): a lock is 64 bytes, `expiry (5) | amount (16) | 11 zero bytes |
//! conditionId (32)`; a payer's pending locks toward its partner are their encodings
//! concatenated in creation order, at most [`MAX_LOCKS`]; `locksRoot` is the keccak256 of that
//! list (zero when it is empty) and `lockedAmount` the sum of its amounts.

use alloy::primitives::{B256, U256, keccak256};

use crate::ProtocolError;

/// Bytes in one encoded lock.
pub const LOCK_SIZE: usize = 64;
/// Most pending locks one payer may have toward its partner.
pub const MAX_LOCKS: usize = 32;
/// The latest expiry a lock can carry: its field is 5 bytes.
pub const MAX_EXPIRY: u64 = (1 << 40) - 1;

/// One conditional payment: pays its receiver if and only if `condition_id` is registered at a
/// time `t` with `0 < t < min(expiry, settleAt)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lock {
    /// Unix seconds, at most [`MAX_EXPIRY`].
    pub expiry: u64,
    /// What it pays, at least 1.
    pub amount: u128,
    /// `sha256(secret)` or `keccak256(abi.encode(signer, messageHash))`.
    pub condition_id: B256,
}

impl Lock {
    /// The 64-byte encoding; refuses an expiry beyond 5 bytes or an amount of 0.
    pub fn encode(&self) -> Result<[u8; LOCK_SIZE], ProtocolError> {
        if self.expiry > MAX_EXPIRY {
            return Err(ProtocolError::LockExpiryTooLarge(self.expiry));
        }
        if self.amount == 0 {
            return Err(ProtocolError::LockAmountZero { index: 0 });
        }
        let mut out = [0u8; LOCK_SIZE];
        out[..5].copy_from_slice(&self.expiry.to_be_bytes()[3..]);
        out[5..21].copy_from_slice(&self.amount.to_be_bytes());
        out[32..].copy_from_slice(self.condition_id.as_slice());
        Ok(out)
    }

    /// Reads one 64-byte lock, the `index`-th of its list (for the error).
    pub(crate) fn decode(bytes: &[u8], index: usize) -> Result<Self, ProtocolError> {
        if bytes[21..32].iter().any(|b| *b != 0) {
            return Err(ProtocolError::LockPaddingNotZero { index });
        }
        let mut expiry = [0u8; 8];
        expiry[3..].copy_from_slice(&bytes[..5]);
        let amount = u128::from_be_bytes(bytes[5..21].try_into().expect("16 bytes"));
        if amount == 0 {
            return Err(ProtocolError::LockAmountZero { index });
        }
        Ok(Self {
            expiry: u64::from_be_bytes(expiry),
            amount,
            condition_id: B256::from_slice(&bytes[32..]),
        })
    }

    /// Whether this lock pays its receiver when its condition was registered at
    /// `registered_at` (0: never) and the channel's hold period ends at `settle_at`.
    pub fn is_claimable(&self, registered_at: u64, settle_at: u64) -> bool {
        registered_at != 0 && registered_at < self.expiry.min(settle_at)
    }
}

/// A payer's pending locks toward its partner, in creation order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LockList(Vec<Lock>);

impl LockList {
    /// The empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// A list of `locks`; refuses more than [`MAX_LOCKS`] or an unencodable lock.
    pub fn from_locks(locks: Vec<Lock>) -> Result<Self, ProtocolError> {
        if locks.len() > MAX_LOCKS {
            return Err(ProtocolError::TooManyLocks(locks.len()));
        }
        for (index, lock) in locks.iter().enumerate() {
            lock.encode().map_err(|error| match error {
                ProtocolError::LockAmountZero { .. } => ProtocolError::LockAmountZero { index },
                other => other,
            })?;
        }
        Ok(Self(locks))
    }

    /// Decodes a list as `Locks.check` does, refusing what it refuses.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        if !bytes.len().is_multiple_of(LOCK_SIZE) {
            return Err(ProtocolError::LockListMalformed(bytes.len()));
        }
        let count = bytes.len() / LOCK_SIZE;
        if count > MAX_LOCKS {
            return Err(ProtocolError::TooManyLocks(count));
        }
        bytes
            .chunks_exact(LOCK_SIZE)
            .enumerate()
            .map(|(index, chunk)| Lock::decode(chunk, index))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// The concatenated encodings, what `close`, `updateClaim` and `settleWithLocks` take.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * LOCK_SIZE);
        for lock in &self.0 {
            out.extend_from_slice(&lock.encode().expect("checked when the list was made"));
        }
        out
    }

    /// `locksRoot`: keccak256 of the encoding, or zero for the empty list.
    pub fn root(&self) -> B256 {
        if self.0.is_empty() {
            B256::ZERO
        } else {
            keccak256(self.encode())
        }
    }

    /// `lockedAmount`: the sum of the amounts (at most 32 of 2^128 - 1: it cannot overflow).
    pub fn locked_amount(&self) -> U256 {
        self.0.iter().map(|lock| U256::from(lock.amount)).sum()
    }

    /// What the list pays its receiver, given each condition's registration time.
    pub fn claimable(&self, registered_at: impl Fn(&B256) -> u64, settle_at: u64) -> U256 {
        self.0
            .iter()
            .filter(|lock| lock.is_claimable(registered_at(&lock.condition_id), settle_at))
            .map(|lock| U256::from(lock.amount))
            .sum()
    }

    /// The locks, in creation order.
    pub fn locks(&self) -> &[Lock] {
        &self.0
    }

    /// How many locks the list holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list holds no lock.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(expiry: u64, amount: u128, seed: u8) -> Lock {
        Lock {
            expiry,
            amount,
            condition_id: B256::repeat_byte(seed),
        }
    }

    #[test]
    fn a_lock_is_expiry_amount_padding_condition() {
        let encoded = lock(0x01_0203_0405, 0x0a0b, 0xcc).encode().unwrap();
        assert_eq!(&encoded[..5], &[1, 2, 3, 4, 5]);
        assert_eq!(&encoded[5..19], &[0u8; 14]);
        assert_eq!(&encoded[19..21], &[0x0a, 0x0b]);
        assert_eq!(&encoded[21..32], &[0u8; 11]);
        assert_eq!(&encoded[32..], &[0xcc; 32]);
    }

    #[test]
    fn a_list_round_trips_and_refuses_what_the_contract_refuses() {
        let list =
            LockList::from_locks(vec![lock(10, 1, 1), lock(MAX_EXPIRY, u128::MAX, 2)]).unwrap();
        let bytes = list.encode();
        assert_eq!(LockList::decode(&bytes).unwrap(), list);
        assert_eq!(list.root(), keccak256(&bytes));
        assert_eq!(list.locked_amount(), U256::from(u128::MAX) + U256::from(1));
        assert_eq!(LockList::new().root(), B256::ZERO);

        assert_eq!(
            LockList::decode(&bytes[..65]),
            Err(ProtocolError::LockListMalformed(65))
        );
        let mut padded = bytes.clone();
        padded[64 + 25] = 1;
        assert_eq!(
            LockList::decode(&padded),
            Err(ProtocolError::LockPaddingNotZero { index: 1 })
        );
        let mut zero = bytes.clone();
        zero[5..21].fill(0);
        assert_eq!(
            LockList::decode(&zero),
            Err(ProtocolError::LockAmountZero { index: 0 })
        );
        assert_eq!(
            LockList::decode(&vec![1u8; 33 * LOCK_SIZE]),
            Err(ProtocolError::TooManyLocks(33))
        );
        assert_eq!(
            lock(MAX_EXPIRY + 1, 1, 1).encode(),
            Err(ProtocolError::LockExpiryTooLarge(MAX_EXPIRY + 1))
        );
    }

    #[test]
    fn the_claim_rule_is_strictly_before_expiry_and_settle_at() {
        let lock = lock(100, 5, 1);
        assert!(!lock.is_claimable(0, 200), "never registered");
        assert!(lock.is_claimable(99, 200));
        assert!(!lock.is_claimable(100, 200), "at expiry is too late");
        assert!(!lock.is_claimable(50, 50), "at settleAt is too late");
        assert!(lock.is_claimable(49, 50));
    }
}
