//! The compact wire form of a signed balance proof, handed phone to phone over Wi-Fi Direct,
//! Bluetooth, a QR code or a file, and its text form (`smr1` + unpadded base64url).
//!
//! Layout, version 1 (at most 227 bytes without locks, 292 with; anything over 320 is
//! refused unread):
//!
//! ```text
//! version  u8 = 1
//! kind     u8 = 1 (a balance proof: a direct payment, or the latest proof of a channel)
//! chainId  int, at most 8 bytes
//! network  20 bytes (the TokenNetwork, which with chainId is the EIP-712 domain)
//! channel  32 bytes
//! nonce    int, at most 32 bytes
//! amount   int, at most 32 bytes (transferredAmount)
//! flags    u8: bit 0 = a memo hash follows, bit 1 = locks follow; other bits must be zero
//! memo     32 bytes, present only with flag bit 0 and never all zero
//! locked   int then 32 bytes, only with flag bit 1: lockedAmount (never zero) and locksRoot
//! sig      65 bytes r || s || v, v in {27, 28}
//! ```
//!
//! `int` is a length byte then that many big-endian bytes with no leading zero (zero is the
//! empty string). Every message has exactly one encoding: decoders refuse any other.

use alloy::primitives::{Address, B256, U256};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{BalanceProof, ProtocolError, Signature65, recover_typed, token_network_domain};

/// The format version this build writes and reads.
pub const WIRE_VERSION: u8 = 1;
/// The kind byte of a direct-payment balance proof.
pub const KIND_BALANCE_PROOF: u8 = 1;
/// The longest input a decoder reads.
pub const MAX_WIRE_LEN: usize = 320;
/// The prefix of the text form.
pub const TEXT_PREFIX: &str = "smr1";

const FLAG_MEMO: u8 = 1;
const FLAG_LOCKS: u8 = 2;

/// A balance proof with its signature and the domain it was signed under: everything a
/// receiver needs to verify a payment with no network at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedProof {
    /// The chain of the TokenNetwork.
    pub chain_id: u64,
    /// The TokenNetwork contract.
    pub token_network: Address,
    /// The payer's balance proof.
    pub proof: BalanceProof,
    /// The payer's EIP-712 signature of `proof`.
    pub signature: Signature65,
}

impl SignedProof {
    /// The payer: who signed the proof, under the contracts' signature rule.
    pub fn signer(&self) -> Result<Address, ProtocolError> {
        recover_typed(
            &self.proof,
            &token_network_domain(self.chain_id, self.token_network),
            &self.signature,
        )
    }

    /// The compact binary form.
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        let proof = &self.proof;
        if proof.lockedAmount.is_zero() != proof.locksRoot.is_zero() {
            return Err(ProtocolError::NonCanonical { field: "locks" });
        }
        let mut out = Vec::with_capacity(292);
        out.extend_from_slice(&[WIRE_VERSION, KIND_BALANCE_PROOF]);
        put_int(&mut out, U256::from(self.chain_id));
        out.extend_from_slice(self.token_network.as_slice());
        out.extend_from_slice(proof.channelId.as_slice());
        put_int(&mut out, proof.nonce);
        put_int(&mut out, proof.transferredAmount);
        let memo = !proof.messageHash.is_zero();
        let locks = !proof.lockedAmount.is_zero();
        out.push(if memo { FLAG_MEMO } else { 0 } | if locks { FLAG_LOCKS } else { 0 });
        if memo {
            out.extend_from_slice(proof.messageHash.as_slice());
        }
        if locks {
            put_int(&mut out, proof.lockedAmount);
            out.extend_from_slice(proof.locksRoot.as_slice());
        }
        out.extend_from_slice(self.signature.as_bytes());
        Ok(out)
    }

    /// Reads the compact binary form, refusing anything but the one canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        if bytes.len() > MAX_WIRE_LEN {
            return Err(ProtocolError::Oversized {
                len: bytes.len(),
                max: MAX_WIRE_LEN,
            });
        }
        let mut reader = Reader { bytes };
        let version = reader.byte("version").map_err(|_| ProtocolError::Empty)?;
        if version != WIRE_VERSION {
            return Err(ProtocolError::UnknownVersion(version));
        }
        let kind = reader.byte("kind")?;
        if kind != KIND_BALANCE_PROOF {
            return Err(ProtocolError::UnknownKind(kind));
        }
        let chain_id = reader.int("chain id", 8)?.to::<u64>();
        let token_network = Address::from_slice(reader.take("token network", 20)?);
        let channel_id = B256::from_slice(reader.take("channel id", 32)?);
        let nonce = reader.int("nonce", 32)?;
        let transferred = reader.int("transferred amount", 32)?;
        let flags = reader.byte("flags")?;
        if flags & !(FLAG_MEMO | FLAG_LOCKS) != 0 {
            return Err(ProtocolError::NonCanonical { field: "flags" });
        }
        let message_hash = if flags & FLAG_MEMO != 0 {
            let memo = B256::from_slice(reader.take("memo", 32)?);
            if memo.is_zero() {
                return Err(ProtocolError::NonCanonical { field: "memo" });
            }
            memo
        } else {
            B256::ZERO
        };
        let (mut locked_amount, mut locks_root) = (U256::ZERO, B256::ZERO);
        if flags & FLAG_LOCKS != 0 {
            locked_amount = reader.int("locked amount", 32)?;
            locks_root = B256::from_slice(reader.take("locks root", 32)?);
            if locked_amount.is_zero() || locks_root.is_zero() {
                return Err(ProtocolError::NonCanonical { field: "locks" });
            }
        }
        let signature = Signature65::from_slice(reader.take("signature", 65)?)?;
        let v = signature.as_bytes()[64];
        if v != 27 && v != 28 {
            return Err(ProtocolError::SignatureV(v));
        }
        if !reader.bytes.is_empty() {
            return Err(ProtocolError::TrailingBytes(reader.bytes.len()));
        }
        Ok(Self {
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
        let max_text = MAX_WIRE_LEN.div_ceil(3) * 4;
        if body.len() > max_text {
            return Err(ProtocolError::Oversized {
                len: body.len() * 3 / 4,
                max: MAX_WIRE_LEN,
            });
        }
        // The engine refuses padding and non-zero trailing bits: one text per message.
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| ProtocolError::TextEncoding)?;
        Self::decode(&bytes)
    }
}

pub(crate) fn put_int(out: &mut Vec<u8>, value: U256) {
    let bytes = value.to_be_bytes::<32>();
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(32);
    out.push((32 - start) as u8);
    out.extend_from_slice(&bytes[start..]);
}

pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(
        &mut self,
        field: &'static str,
        len: usize,
    ) -> Result<&'a [u8], ProtocolError> {
        if self.bytes.len() < len {
            return Err(ProtocolError::Truncated { field });
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn byte(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.take(field, 1)?[0])
    }

    pub(crate) fn int(
        &mut self,
        field: &'static str,
        max_len: usize,
    ) -> Result<U256, ProtocolError> {
        let len = usize::from(self.byte(field)?);
        if len > max_len {
            return Err(ProtocolError::IntegerTooLong { field });
        }
        let bytes = self.take(field, len)?;
        if bytes.first() == Some(&0) {
            return Err(ProtocolError::NonCanonical { field });
        }
        Ok(U256::from_be_slice(bytes))
    }
}
