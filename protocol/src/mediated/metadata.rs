//! What a mediated `LockedTransfer` carries for its receiver (DESIGN.md 4.1), bound to the
//! proof by `messageHash = keccak256(metadata)`:
//!
//! ```text
//! version  u8 = 1
//! fee      int, at most 8 bytes: what this receiver keeps if it mediates (0 for the target)
//! hops     u8, 0 to 2: the mediators after this receiver, each
//!            address 20 bytes, fee int (at most 8 bytes)
//! target   20 bytes
//! sealed   33 bytes ephemeral public key, then 32 bytes: the secret, sealed to the target
//! ```
//!
//! At most 154 bytes. The lock's condition names the payment (a reroute uses a new secret), so
//! no payment id travels; a fee is at most 2^64 - 1 wei (18.4 SMT) a hop.
//!
//! The secret is sealed with an ECDH key between a fresh key of the initiator's and the
//! target's secp256k1 key: `secret XOR keccak256("smartmesh secret" | shared | ephemeral)`.
//! Only the target can open it; no tag is needed, since a wrong key opens it to a value whose
//! sha256 is not the lock's condition. A mediator that could read the secret could take its
//! upstream lock without paying downstream.

use alloy::primitives::{Address, B256, U256, keccak256};
use secp256k1::{PublicKey, SecretKey, ecdh::SharedSecret};

use crate::{
    ProtocolError, hashlock_condition_id,
    wire::{Reader, put_int},
};

/// The metadata's version byte.
pub const METADATA_VERSION: u8 = 1;
/// The most mediators a route has after a receiver (3 hops: two mediators in all).
pub const MAX_LATER_HOPS: usize = 2;

/// A mediator later on the route and the fee it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// The mediator.
    pub node: Address,
    /// What it keeps of the lock it receives.
    pub fee: U256,
}

/// The secret sealed to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedSecret {
    /// The initiator's ephemeral public key, compressed.
    pub ephemeral: [u8; 33],
    /// The secret, masked.
    pub masked: [u8; 32],
}

impl SealedSecret {
    /// Seals `secret` to `target` (its compressed secp256k1 public key) with the ephemeral
    /// key `ephemeral` (fresh randomness of the initiator's: the shell draws it).
    pub fn seal(secret: B256, target: &[u8; 33], ephemeral: B256) -> Result<Self, ProtocolError> {
        let target = PublicKey::from_slice(target).map_err(|_| ProtocolError::BadPublicKey)?;
        let ephemeral =
            SecretKey::from_byte_array(ephemeral.0).map_err(|_| ProtocolError::BadPublicKey)?;
        let public = PublicKey::from_secret_key_global(&ephemeral).serialize();
        let mask = mask(&SharedSecret::new(&target, &ephemeral), &public);
        Ok(Self {
            ephemeral: public,
            masked: xor(secret.0, mask),
        })
    }

    /// Opens it with the target's key, and checks it meets `condition_id`.
    pub fn open(&self, key: &[u8; 32], condition_id: B256) -> Result<B256, ProtocolError> {
        let key = SecretKey::from_byte_array(*key).map_err(|_| ProtocolError::BadPublicKey)?;
        let ephemeral =
            PublicKey::from_slice(&self.ephemeral).map_err(|_| ProtocolError::BadPublicKey)?;
        let secret = B256::from(xor(
            self.masked,
            mask(&SharedSecret::new(&ephemeral, &key), &self.ephemeral),
        ));
        if hashlock_condition_id(&secret) != condition_id {
            return Err(ProtocolError::SecretNotSealedToUs(condition_id));
        }
        Ok(secret)
    }
}

fn mask(shared: &SharedSecret, ephemeral: &[u8; 33]) -> [u8; 32] {
    keccak256(
        [
            b"smartmesh secret".as_slice(),
            &shared.secret_bytes(),
            ephemeral,
        ]
        .concat(),
    )
    .0
}

fn xor(a: [u8; 32], b: [u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// The compressed secp256k1 public key of `key`, which an initiator seals secrets to.
pub fn public_key(key: &[u8; 32]) -> Result<[u8; 33], ProtocolError> {
    let key = SecretKey::from_byte_array(*key).map_err(|_| ProtocolError::BadPublicKey)?;
    Ok(PublicKey::from_secret_key_global(&key).serialize())
}

/// A mediated transfer's metadata, as one hop's receiver reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMetadata {
    /// What the receiver keeps if it mediates; zero for the target.
    pub fee: U256,
    /// The mediators after the receiver, in order.
    pub later: Vec<Hop>,
    /// Who is paid.
    pub target: Address,
    /// The secret, for the target only.
    pub sealed: SealedSecret,
}

impl RouteMetadata {
    /// The canonical bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        if self.later.len() > MAX_LATER_HOPS {
            return Err(ProtocolError::RouteTooLong(self.later.len() + 1));
        }
        let mut out = Vec::with_capacity(150);
        out.push(METADATA_VERSION);
        put_fee(&mut out, self.fee)?;
        out.push(self.later.len() as u8);
        for hop in &self.later {
            out.extend_from_slice(hop.node.as_slice());
            put_fee(&mut out, hop.fee)?;
        }
        out.extend_from_slice(self.target.as_slice());
        out.extend_from_slice(&self.sealed.ephemeral);
        out.extend_from_slice(&self.sealed.masked);
        Ok(out)
    }

    /// Reads canonical bytes, refusing anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let mut reader = Reader { bytes };
        let version = reader.byte("metadata version")?;
        if version != METADATA_VERSION {
            return Err(ProtocolError::UnknownVersion(version));
        }
        let fee = reader.int("fee", 8)?;
        let count = usize::from(reader.byte("hops")?);
        if count > MAX_LATER_HOPS {
            return Err(ProtocolError::RouteTooLong(count + 1));
        }
        let mut later = Vec::with_capacity(count);
        for _ in 0..count {
            let node = Address::from_slice(reader.take("hop", 20)?);
            let fee = reader.int("hop fee", 8)?;
            later.push(Hop { node, fee });
        }
        let target = Address::from_slice(reader.take("target", 20)?);
        let ephemeral = reader
            .take("sealed secret", 33)?
            .try_into()
            .expect("33 bytes");
        let masked = reader
            .take("sealed secret", 32)?
            .try_into()
            .expect("32 bytes");
        if !reader.bytes.is_empty() {
            return Err(ProtocolError::TrailingBytes(reader.bytes.len()));
        }
        Ok(Self {
            fee,
            later,
            target,
            sealed: SealedSecret { ephemeral, masked },
        })
    }

    /// The metadata the receiver hands the next hop: that hop's fee and the rest of the route.
    pub fn for_next(&self) -> Option<(Address, Self)> {
        let (next, rest) = self.later.split_first()?;
        Some((
            next.node,
            Self {
                fee: next.fee,
                later: rest.to_vec(),
                target: self.target,
                sealed: self.sealed,
            },
        ))
    }

    /// The node the receiver forwards to: the next mediator, or the target.
    pub fn next_node(&self) -> Address {
        self.later.first().map_or(self.target, |hop| hop.node)
    }
}

fn put_fee(out: &mut Vec<u8>, fee: U256) -> Result<(), ProtocolError> {
    if fee.bit_len() > 64 {
        return Err(ProtocolError::IntegerTooLong { field: "fee" });
    }
    put_int(out, fee);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(later: usize) -> RouteMetadata {
        let target_key = [7u8; 32];
        let secret = B256::repeat_byte(0x5e);
        RouteMetadata {
            fee: U256::from(u64::MAX),
            later: (0..later)
                .map(|n| Hop {
                    node: Address::repeat_byte(n as u8 + 1),
                    fee: U256::from(u64::MAX),
                })
                .collect(),
            target: Address::repeat_byte(9),
            sealed: SealedSecret::seal(
                secret,
                &public_key(&target_key).unwrap(),
                B256::repeat_byte(3),
            )
            .unwrap(),
        }
    }

    #[test]
    fn metadata_round_trips_canonically_and_fits_a_locked_transfer() {
        for later in 0..=MAX_LATER_HOPS {
            let m = metadata(later);
            let bytes = m.encode().unwrap();
            assert!(
                bytes.len() <= crate::channel::MAX_METADATA_LEN,
                "{}",
                bytes.len()
            );
            assert_eq!(RouteMetadata::decode(&bytes).unwrap(), m);
            for cut in 0..bytes.len() {
                assert!(RouteMetadata::decode(&bytes[..cut]).is_err());
            }
            let mut long = bytes.clone();
            long.push(0);
            assert_eq!(
                RouteMetadata::decode(&long),
                Err(ProtocolError::TrailingBytes(1))
            );
        }
        assert_eq!(metadata(2).encode().unwrap().len(), 154, "the largest");
        let mut too_long = metadata(2);
        too_long.later.push(too_long.later[0]);
        assert_eq!(too_long.encode(), Err(ProtocolError::RouteTooLong(4)));
        let mut too_rich = metadata(0);
        too_rich.fee = U256::from(u64::MAX) + U256::from(1);
        assert!(too_rich.encode().is_err());
    }

    #[test]
    fn only_the_target_opens_the_secret() {
        let m = metadata(0);
        let condition = hashlock_condition_id(&B256::repeat_byte(0x5e));
        assert_eq!(
            m.sealed.open(&[7u8; 32], condition).unwrap(),
            B256::repeat_byte(0x5e)
        );
        assert_eq!(
            m.sealed.open(&[8u8; 32], condition),
            Err(ProtocolError::SecretNotSealedToUs(condition))
        );
    }

    #[test]
    fn each_hop_hands_on_the_rest_of_the_route() {
        let m = metadata(2);
        let (first, next) = m.for_next().unwrap();
        assert_eq!(first, Address::repeat_byte(1));
        assert_eq!(next.fee, m.later[0].fee);
        assert_eq!(next.next_node(), Address::repeat_byte(2));
        let (_, last) = next.for_next().unwrap();
        assert_eq!(last.next_node(), m.target);
        assert!(last.for_next().is_none());
    }
}
