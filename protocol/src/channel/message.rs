//! The channel messages of conditional payments on the wire (DESIGN.md 4 and 4.1), beside the
//! direct payment of [`crate::SignedProof`], in the same versioned, canonical form and the same
//! `smr1` text form:
//!
//! ```text
//! version  u8 = 1
//! kind     u8: 1 payment (see wire.rs), 2 LockedTransfer, 3 Unlock, 4 LockExpired,
//!              5 RevealSecret
//! -- kinds 2, 3, 4: the payer's new proof
//! chainId  int, at most 8 bytes
//! network  20 bytes
//! channel  32 bytes
//! nonce    int, at most 32 bytes
//! amount   int, at most 32 bytes (transferredAmount)
//! flags    u8: bit 0 memo, bit 1 locks, bit 2 metadata; bits 0 and 2 exclusive, others zero
//! memo     32 bytes (bit 0), never all zero: the messageHash
//! locked   int then 32 bytes (bit 1): lockedAmount, never zero, and locksRoot
//! metadata u8 length (1 to 154) then that many bytes (bit 2): messageHash = keccak256(them)
//! lock     64 bytes (kind 2): the lock added, encoded as Locks.sol encodes it
//! cond     32 bytes (kinds 3, 4): the conditionId of the lock removed
//! sig      65 bytes
//! -- kind 5 (no signature: a secret proves itself)
//! chainId, network, channel as above, then the 32-byte secret
//! ```
//!
//! A `LockedTransfer` is at most 511 bytes; a decoder reads at most [`MAX_MESSAGE_LEN`].

use alloy::primitives::{Address, B256, U256, keccak256};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    BalanceProof, Lock, ProtocolError, Signature65, SignedProof,
    locks::LOCK_SIZE,
    wire::{KIND_BALANCE_PROOF, MAX_WIRE_LEN, Reader, TEXT_PREFIX, WIRE_VERSION, put_int},
};

/// The kind byte of a `LockedTransfer`.
pub const KIND_LOCKED_TRANSFER: u8 = 2;
/// The kind byte of an `Unlock`.
pub const KIND_UNLOCK: u8 = 3;
/// The kind byte of a `LockExpired`.
pub const KIND_LOCK_EXPIRED: u8 = 4;
/// The kind byte of a `RevealSecret`.
pub const KIND_REVEAL_SECRET: u8 = 5;
/// The longest channel message a decoder reads.
pub const MAX_MESSAGE_LEN: usize = 512;
/// The most metadata a `LockedTransfer` carries.
pub const MAX_METADATA_LEN: usize = 154;

const FLAG_MEMO: u8 = 1;
const FLAG_LOCKS: u8 = 2;
const FLAG_METADATA: u8 = 4;

/// The payer's proof with one lock appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedTransfer {
    /// The new proof: the lock list grew by `lock`, the transferred amount did not move.
    pub proof: SignedProof,
    /// The lock added.
    pub lock: Lock,
    /// What the payment carries for its receiver (a payment id, a route, the secret encrypted
    /// to the target); the proof's `messageHash` is its keccak256 when it is not empty.
    pub metadata: Vec<u8>,
}

/// The payer's proof with one lock folded into the transferred amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlock {
    /// The new proof.
    pub proof: SignedProof,
    /// The condition of the lock removed.
    pub condition_id: B256,
}

/// The payer's proof with one expired lock removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockExpired {
    /// The new proof.
    pub proof: SignedProof,
    /// The condition of the lock removed.
    pub condition_id: B256,
}

/// A hashlock's secret, sent to whoever can use it (the payer, so that it unlocks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevealSecret {
    /// The chain of the TokenNetwork.
    pub chain_id: u64,
    /// The TokenNetwork.
    pub token_network: Address,
    /// The channel it is for.
    pub channel_id: B256,
    /// The secret; its sha256 is the condition.
    pub secret: B256,
}

/// Every message two channel partners exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelMessage {
    /// A direct payment (wire kind 1).
    Payment(SignedProof),
    /// A conditional payment.
    LockedTransfer(LockedTransfer),
    /// A lock paid.
    Unlock(Unlock),
    /// A lock removed after its expiry.
    LockExpired(LockExpired),
    /// A secret revealed.
    RevealSecret(RevealSecret),
}

impl ChannelMessage {
    /// The channel the message is for.
    pub fn channel_id(&self) -> B256 {
        match self.proof() {
            Some(signed) => signed.proof.channelId,
            None => match self {
                Self::RevealSecret(reveal) => reveal.channel_id,
                _ => unreachable!("every other message carries a proof"),
            },
        }
    }

    /// The signed proof the message carries, if any.
    pub fn proof(&self) -> Option<&SignedProof> {
        match self {
            Self::Payment(signed) => Some(signed),
            Self::LockedTransfer(transfer) => Some(&transfer.proof),
            Self::Unlock(unlock) => Some(&unlock.proof),
            Self::LockExpired(expired) => Some(&expired.proof),
            Self::RevealSecret(_) => None,
        }
    }

    /// The compact binary form.
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        let (kind, signed) = match self {
            Self::Payment(signed) => return signed.encode(),
            Self::RevealSecret(reveal) => {
                let mut out = vec![WIRE_VERSION, KIND_REVEAL_SECRET];
                put_int(&mut out, U256::from(reveal.chain_id));
                out.extend_from_slice(reveal.token_network.as_slice());
                out.extend_from_slice(reveal.channel_id.as_slice());
                out.extend_from_slice(reveal.secret.as_slice());
                return Ok(out);
            }
            Self::LockedTransfer(transfer) => (KIND_LOCKED_TRANSFER, &transfer.proof),
            Self::Unlock(unlock) => (KIND_UNLOCK, &unlock.proof),
            Self::LockExpired(expired) => (KIND_LOCK_EXPIRED, &expired.proof),
        };
        let proof = &signed.proof;
        let metadata: &[u8] = match self {
            Self::LockedTransfer(transfer) => &transfer.metadata,
            _ => &[],
        };
        if metadata.len() > MAX_METADATA_LEN {
            return Err(ProtocolError::Oversized {
                len: metadata.len(),
                max: MAX_METADATA_LEN,
            });
        }
        if !metadata.is_empty() && proof.messageHash != keccak256(metadata) {
            return Err(ProtocolError::NonCanonical {
                field: "messageHash",
            });
        }
        if proof.lockedAmount.is_zero() != proof.locksRoot.is_zero() {
            return Err(ProtocolError::NonCanonical { field: "locks" });
        }
        let mut out = Vec::with_capacity(MAX_MESSAGE_LEN);
        out.extend_from_slice(&[WIRE_VERSION, kind]);
        put_int(&mut out, U256::from(signed.chain_id));
        out.extend_from_slice(signed.token_network.as_slice());
        out.extend_from_slice(proof.channelId.as_slice());
        put_int(&mut out, proof.nonce);
        put_int(&mut out, proof.transferredAmount);
        let mut flags = 0;
        if !metadata.is_empty() {
            flags |= FLAG_METADATA;
        } else if !proof.messageHash.is_zero() {
            flags |= FLAG_MEMO;
        }
        if !proof.lockedAmount.is_zero() {
            flags |= FLAG_LOCKS;
        }
        out.push(flags);
        if flags & FLAG_MEMO != 0 {
            out.extend_from_slice(proof.messageHash.as_slice());
        }
        if flags & FLAG_LOCKS != 0 {
            put_int(&mut out, proof.lockedAmount);
            out.extend_from_slice(proof.locksRoot.as_slice());
        }
        if flags & FLAG_METADATA != 0 {
            out.push(metadata.len() as u8);
            out.extend_from_slice(metadata);
        }
        match self {
            Self::LockedTransfer(transfer) => out.extend_from_slice(&transfer.lock.encode()?),
            Self::Unlock(Unlock { condition_id, .. })
            | Self::LockExpired(LockExpired { condition_id, .. }) => {
                out.extend_from_slice(condition_id.as_slice())
            }
            Self::Payment(_) | Self::RevealSecret(_) => unreachable!("returned above"),
        }
        out.extend_from_slice(signed.signature.as_bytes());
        Ok(out)
    }

    /// Reads the compact binary form, refusing anything but the one canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(ProtocolError::Oversized {
                len: bytes.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let mut reader = Reader { bytes };
        let version = reader.byte("version").map_err(|_| ProtocolError::Empty)?;
        if version != WIRE_VERSION {
            return Err(ProtocolError::UnknownVersion(version));
        }
        let kind = reader.byte("kind")?;
        match kind {
            KIND_BALANCE_PROOF => {
                if bytes.len() > MAX_WIRE_LEN {
                    return Err(ProtocolError::Oversized {
                        len: bytes.len(),
                        max: MAX_WIRE_LEN,
                    });
                }
                return SignedProof::decode(bytes).map(Self::Payment);
            }
            KIND_LOCKED_TRANSFER | KIND_UNLOCK | KIND_LOCK_EXPIRED | KIND_REVEAL_SECRET => {}
            other => return Err(ProtocolError::UnknownKind(other)),
        }
        let chain_id = reader.int("chain id", 8)?.to::<u64>();
        let token_network = Address::from_slice(reader.take("token network", 20)?);
        let channel_id = B256::from_slice(reader.take("channel id", 32)?);
        if kind == KIND_REVEAL_SECRET {
            let secret = B256::from_slice(reader.take("secret", 32)?);
            finish(&reader)?;
            return Ok(Self::RevealSecret(RevealSecret {
                chain_id,
                token_network,
                channel_id,
                secret,
            }));
        }
        let nonce = reader.int("nonce", 32)?;
        let transferred = reader.int("transferred amount", 32)?;
        let flags = reader.byte("flags")?;
        if flags & !(FLAG_MEMO | FLAG_LOCKS | FLAG_METADATA) != 0
            || (flags & FLAG_MEMO != 0 && flags & FLAG_METADATA != 0)
        {
            return Err(ProtocolError::NonCanonical { field: "flags" });
        }
        let mut message_hash = B256::ZERO;
        if flags & FLAG_MEMO != 0 {
            message_hash = B256::from_slice(reader.take("memo", 32)?);
            if message_hash.is_zero() {
                return Err(ProtocolError::NonCanonical { field: "memo" });
            }
        }
        let (mut locked_amount, mut locks_root) = (U256::ZERO, B256::ZERO);
        if flags & FLAG_LOCKS != 0 {
            locked_amount = reader.int("locked amount", 32)?;
            locks_root = B256::from_slice(reader.take("locks root", 32)?);
            if locked_amount.is_zero() || locks_root.is_zero() {
                return Err(ProtocolError::NonCanonical { field: "locks" });
            }
        }
        let mut metadata = Vec::new();
        if flags & FLAG_METADATA != 0 {
            let len = usize::from(reader.byte("metadata")?);
            if len == 0 || len > MAX_METADATA_LEN {
                return Err(ProtocolError::NonCanonical { field: "metadata" });
            }
            metadata = reader.take("metadata", len)?.to_vec();
            message_hash = keccak256(&metadata);
        }
        if kind != KIND_LOCKED_TRANSFER && !metadata.is_empty() {
            return Err(ProtocolError::NonCanonical { field: "metadata" });
        }
        let lock = if kind == KIND_LOCKED_TRANSFER {
            if flags & FLAG_LOCKS == 0 {
                return Err(ProtocolError::NonCanonical { field: "locks" });
            }
            Some(Lock::decode(reader.take("lock", LOCK_SIZE)?, 0)?)
        } else {
            None
        };
        let condition_id = if lock.is_none() {
            B256::from_slice(reader.take("condition id", 32)?)
        } else {
            B256::ZERO
        };
        let signature = Signature65::from_slice(reader.take("signature", 65)?)?;
        let v = signature.as_bytes()[64];
        if v != 27 && v != 28 {
            return Err(ProtocolError::SignatureV(v));
        }
        finish(&reader)?;
        let proof = SignedProof {
            chain_id,
            token_network,
            proof: BalanceProof {
                channelId: channel_id,
                nonce,
                transferredAmount: transferred,
                lockedAmount: locked_amount,
                locksRoot: locks_root,
                messageHash: message_hash,
            },
            signature,
        };
        Ok(match (kind, lock) {
            (KIND_LOCKED_TRANSFER, Some(lock)) => Self::LockedTransfer(LockedTransfer {
                proof,
                lock,
                metadata,
            }),
            (KIND_UNLOCK, _) => Self::Unlock(Unlock {
                proof,
                condition_id,
            }),
            _ => Self::LockExpired(LockExpired {
                proof,
                condition_id,
            }),
        })
    }

    /// The text form: `smr1` and the binary form in unpadded base64url.
    pub fn to_text(&self) -> Result<String, ProtocolError> {
        Ok(format!(
            "{TEXT_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.encode()?)
        ))
    }

    /// Reads the text form.
    pub fn from_text(text: &str) -> Result<Self, ProtocolError> {
        let body = text
            .strip_prefix(TEXT_PREFIX)
            .ok_or(ProtocolError::TextPrefix)?;
        if body.len() > MAX_MESSAGE_LEN.div_ceil(3) * 4 {
            return Err(ProtocolError::Oversized {
                len: body.len() * 3 / 4,
                max: MAX_MESSAGE_LEN,
            });
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| ProtocolError::TextEncoding)?;
        Self::decode(&bytes)
    }
}

fn finish(reader: &Reader<'_>) -> Result<(), ProtocolError> {
    if reader.bytes.is_empty() {
        Ok(())
    } else {
        Err(ProtocolError::TrailingBytes(reader.bytes.len()))
    }
}
