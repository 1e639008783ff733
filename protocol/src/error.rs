//! The crate's one error type.

use alloy::primitives::{Address, B256, U256};

/// Why a signature, a proof or an encoded message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A signature must be 65 bytes: `r`, `s`, `v`.
    #[error("signature is {0} bytes, expected 65")]
    SignatureLength(usize),
    /// `v` must be 27 or 28.
    #[error("signature v is {0}, expected 27 or 28")]
    SignatureV(u8),
    /// `s` is in the upper half of the curve order (a malleable twin of a valid signature).
    #[error("signature has a high s value")]
    HighS,
    /// No public key recovers from the signature (for example `r` is not on the curve).
    #[error("signature does not recover to any key")]
    Unrecoverable,
    /// A data session's terms are unusable: no packets per checkpoint, prices not one per
    /// relay, too many relays, or pay that overflows.
    #[error("the session's terms are unusable (k >= 1, one price per relay, at most 3 relays)")]
    BadSessionTerms,
    /// A delivery acknowledgment of another session.
    #[error("the acknowledgment is for session {0}, not this one")]
    AckForAnotherSession(B256),
    /// A delivery acknowledgment of packets other than those passed on, or not of a whole
    /// checkpoint.
    #[error("the acknowledgment of checkpoint {0} is not of the packets passed on")]
    AckMismatch(u64),
    /// A delivery acknowledgment no newer than one already taken.
    #[error("checkpoint {0} was already acknowledged")]
    AckReplayed(u64),
    /// A payment for a checkpoint the recipient has not acknowledged.
    #[error("paid for checkpoint {0} before its acknowledgment")]
    PaidBeforeAck(u64),
    /// A pre-lock of a window this node has not passed on: it cannot tell what the lock's
    /// acknowledgment would be.
    #[error("pre-locked window {0} before it was passed on")]
    LockBeforeWindow(u64),
    /// The signature is valid but was made by someone else.
    #[error("signed by {actual}, expected {expected}")]
    WrongSigner {
        /// Who had to sign.
        expected: Address,
        /// Who did.
        actual: Address,
    },
    /// The proof names another channel.
    #[error("proof is for channel {actual}, expected {expected}")]
    ChannelMismatch {
        /// The channel it had to name.
        expected: B256,
        /// The channel it names.
        actual: B256,
    },
    /// Conditional payments do not exist yet: `lockedAmount` and `locksRoot` must be zero.
    #[error("locked amounts are not supported yet")]
    LocksNotSupported,
    /// A lock list's length is not a whole number of 64-byte locks.
    #[error("lock list is {0} bytes, not a whole number of 64-byte locks")]
    LockListMalformed(usize),
    /// A lock list holds more than 32 locks.
    #[error("lock list holds {0} locks, at most 32 allowed")]
    TooManyLocks(usize),
    /// A lock must pay at least 1.
    #[error("lock {index} has amount 0")]
    LockAmountZero {
        /// Its place in the list.
        index: usize,
    },
    /// A lock's 11 padding bytes must be zero.
    #[error("lock {index} has nonzero padding")]
    LockPaddingNotZero {
        /// Its place in the list.
        index: usize,
    },
    /// A lock's expiry must fit its 5 bytes.
    #[error("lock expiry {0} does not fit 40 bits")]
    LockExpiryTooLarge(u64),
    /// A proof's nonce must be higher than the last accepted one (and at least 1).
    #[error("nonce {got} is not above {last}")]
    NonceNotIncreased {
        /// The last accepted nonce (0 when none).
        last: U256,
        /// The proof's nonce.
        got: U256,
    },
    /// The transferred amount may never fall.
    #[error("transferred amount {got} is below the previous {last}")]
    TransferredDecreased {
        /// The last accepted transferred amount.
        last: U256,
        /// The proof's transferred amount.
        got: U256,
    },
    /// The payer would pay more than it holds in the channel.
    #[error("transferred amount {transferred} exceeds the payer's capacity {capacity}")]
    ExceedsCapacity {
        /// The proof's transferred amount.
        transferred: U256,
        /// What the payer can have paid at most.
        capacity: U256,
    },
    /// The payer's withdrawals exceed what it ever held, so it has no capacity at all.
    #[error("payer withdrew more than it deposited and received")]
    Overdrawn,
    /// The input is empty.
    #[error("empty input")]
    Empty,
    /// The first byte names a format version this build does not know.
    #[error("unknown wire version {0}")]
    UnknownVersion(u8),
    /// The message kind byte is not one this build knows.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// The input ended inside `field`.
    #[error("truncated input: {field} is incomplete")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes follow the end of the message.
    #[error("{0} bytes after the end of the message")]
    TrailingBytes(usize),
    /// The input is longer than any valid message.
    #[error("input is {len} bytes, at most {max} allowed")]
    Oversized {
        /// The input's length.
        len: usize,
        /// The longest valid encoding.
        max: usize,
    },
    /// `field` is not in its one canonical form (leading zero bytes, a set unused flag, a
    /// flagged field that is zero).
    #[error("non-canonical encoding of {field}")]
    NonCanonical {
        /// The field at fault.
        field: &'static str,
    },
    /// `field` does not fit its type.
    #[error("{field} is too long")]
    IntegerTooLong {
        /// The field at fault.
        field: &'static str,
    },
    /// The channel is not open.
    #[error("the channel is {0}, not open")]
    ChannelNotOpen(crate::channel::Phase),
    /// The participant signed something that stops payments until it lands or expires.
    #[error("the channel is frozen by a signed {} until {}", .0.kind, .0.until)]
    ChannelFrozen(crate::channel::Freeze),
    /// The message is for another chain or TokenNetwork.
    #[error("the message is for chain {chain_id}, TokenNetwork {token_network}")]
    OtherDeployment {
        /// Its chain.
        chain_id: u64,
        /// Its TokenNetwork.
        token_network: Address,
    },
    /// The proof was not signed by the channel partner.
    #[error("signed by {signer}, not by the channel partner {partner}")]
    NotFromPartner {
        /// Who signed.
        signer: Address,
        /// The partner.
        partner: Address,
    },
    /// The address is neither of the channel's participants.
    #[error("{0} is not a participant of the channel")]
    NotParticipant(Address),
    /// A proof must be exactly one step from the last one held (DESIGN.md 3.4).
    #[error("not one step from the last proof: {0}")]
    NotOneStep(&'static str),
    /// The signed proof is not the one the channel machine proposed for the step.
    #[error("the signed proof is not the proposed one")]
    NotProposed,
    /// A payment or lock must move at least 1.
    #[error("the amount must be at least 1")]
    ZeroAmount,
    /// An amount would not fit 256 bits.
    #[error("the amount overflows 256 bits")]
    Overflow,
    /// Every nonce up to 2^256 - 1 was used.
    #[error("the channel's nonces are exhausted")]
    NonceExhausted,
    /// No pending lock has this condition.
    #[error("no pending lock on condition {0}")]
    UnknownLock(B256),
    /// A list already holds a lock on this condition.
    #[error("a lock on condition {0} is already pending")]
    DuplicateLock(B256),
    /// A new lock must expire in the future.
    #[error("the lock expires at {expiry}, not after now ({now})")]
    LockAlreadyExpired {
        /// Its expiry.
        expiry: u64,
        /// Now.
        now: u64,
    },
    /// A new lock must expire before any close the receiver has not seen could settle.
    #[error(
        "the lock expires at {expiry}, after the latest allowed {latest} (t_open + settle timeout - F)"
    )]
    LockExpiryTooLate {
        /// Its expiry.
        expiry: u64,
        /// The latest allowed.
        latest: u64,
    },
    /// A lock may be removed unpaid only after `expiry + F`.
    #[error("the lock expires at {expiry}; it may be removed from {due}")]
    LockNotExpired {
        /// Its expiry.
        expiry: u64,
        /// `expiry + F`.
        due: u64,
    },
    /// No registry read at or after the lock's expiry shows its condition unregistered before
    /// it: the lock may have been met, so it stays pending (and is settled by `Unlock`).
    #[error("the registry has not shown condition {0} unregistered before the lock's expiry")]
    ExpiryNotProven(B256),
    /// Withdrawals and cooperative settles wait until no lock is pending.
    #[error("{0} locks are pending")]
    LocksPending(usize),
    /// The text form must start with `smr1`.
    #[error("text form must start with \"smr1\"")]
    TextPrefix,
    /// The text after `smr1` is not canonical unpadded base64url.
    #[error("text form is not canonical unpadded base64url")]
    TextEncoding,
    /// A route has more hops than the deployment allows.
    #[error("a route of {0} hops is longer than allowed")]
    RouteTooLong(usize),
    /// Not a secp256k1 key.
    #[error("not a valid secp256k1 key")]
    BadPublicKey,
    /// The secret does not meet the lock's condition (sealed to someone else, or forged).
    #[error("the secret does not meet condition {0}")]
    SecretNotSealedToUs(B256),
    /// A mediated lock leaves this mediator less than it asks.
    #[error("a fee of {offered} is below the {asked} asked")]
    FeeTooLow {
        /// What the route offers.
        offered: U256,
        /// What this node asks.
        asked: U256,
    },
    /// A mediated lock expires too soon to be forwarded or claimed safely.
    #[error("the lock expires at {expiry}; at least {needed} is needed")]
    LockTooShort {
        /// Its expiry.
        expiry: u64,
        /// The least expiry that would do.
        needed: u64,
    },
    /// A capacity hint names a channel the graph does not know between its node and partner.
    #[error("the hint's channel {0} is not known between its node and partner")]
    UnknownHintChannel(B256),
    /// A capacity hint has expired, or claims to be good for longer than allowed.
    #[error("a hint expiring at {expires_at} is not good now ({now})")]
    HintExpiry {
        /// Its expiry.
        expires_at: u64,
        /// The time it was offered.
        now: u64,
    },
}
