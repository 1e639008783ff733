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
    /// The text form must start with `smr1`.
    #[error("text form must start with \"smr1\"")]
    TextPrefix,
    /// The text after `smr1` is not canonical unpadded base64url.
    #[error("text form is not canonical unpadded base64url")]
    TextEncoding,
}
