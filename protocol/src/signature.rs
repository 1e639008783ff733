//! Signing with a local key, and recovery under the contracts' rule (`SignatureRules.sol`):
//! 65 bytes, `v` of 27 or 28, a low `s`, and a real, non-zero signer.

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::{Eip712Domain, SolStruct},
};
use secp256k1::{
    Message, SECP256K1,
    ecdsa::{RecoverableSignature, RecoveryId},
};

use crate::ProtocolError;

/// Half the secp256k1 group order: the largest `s` the contracts accept (EIP-2).
const HALF_ORDER: U256 = U256::from_be_bytes(alloy::hex!(
    "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0"
));

/// A 65-byte `r || s || v` signature, `v` in {27, 28}: the form the contracts take.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature65(pub [u8; 65]);

impl Signature65 {
    /// Wraps a byte slice, checking only its length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ProtocolError> {
        <[u8; 65]>::try_from(bytes)
            .map(Self)
            .map_err(|_| ProtocolError::SignatureLength(bytes.len()))
    }

    /// The signature's bytes.
    pub const fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }
}

impl std::fmt::Debug for Signature65 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature65(0x{})", alloy::hex::encode(self.0))
    }
}

/// Signs an EIP-712 message under `domain` with a local key.
pub fn sign_typed<T: SolStruct>(
    signer: &PrivateKeySigner,
    message: &T,
    domain: &Eip712Domain,
) -> Signature65 {
    sign_digest(signer, &message.eip712_signing_hash(domain))
}

/// Signs a 32-byte digest with a local key; k256 always produces a low `s`.
pub fn sign_digest(signer: &PrivateKeySigner, digest: &B256) -> Signature65 {
    let signature = signer
        .sign_hash_sync(digest)
        .expect("signing a 32-byte digest cannot fail");
    Signature65(signature.as_bytes())
}

/// A key that signs with libsecp256k1: the watcher signs an acknowledgment for every stored
/// receipt, so its signing sits on the same hot path as recovery. Signatures are RFC 6979 and
/// low-`s`, as the contracts require; phones keep signing with k256 ([`sign_digest`]).
#[derive(Clone)]
pub struct SecpSigner {
    key: secp256k1::SecretKey,
    address: Address,
}

impl SecpSigner {
    /// The same key as a local alloy signer.
    pub fn new(signer: &PrivateKeySigner) -> Self {
        let bytes: [u8; 32] = signer.credential().to_bytes().into();
        Self {
            key: secp256k1::SecretKey::from_byte_array(bytes)
                .expect("a k256 secret key is a valid secp256k1 secret key"),
            address: signer.address(),
        }
    }

    /// The key's address.
    pub const fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte digest.
    pub fn sign_digest(&self, digest: &B256) -> Signature65 {
        let signature = SECP256K1.sign_ecdsa_recoverable(Message::from_digest(digest.0), &self.key);
        let (recovery_id, compact) = signature.serialize_compact();
        let mut bytes = [0u8; 65];
        bytes[..64].copy_from_slice(&compact);
        bytes[64] = 27 + i32::from(recovery_id) as u8;
        Signature65(bytes)
    }

    /// Signs an EIP-712 message under `domain`.
    pub fn sign_typed<T: SolStruct>(&self, message: &T, domain: &Eip712Domain) -> Signature65 {
        self.sign_digest(&message.eip712_signing_hash(domain))
    }
}

impl std::fmt::Debug for SecpSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecpSigner")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Recovers the signer of `digest` with libsecp256k1, under the contracts' rule.
pub fn recover(digest: &B256, signature: &Signature65) -> Result<Address, ProtocolError> {
    recover_key(digest, signature).map(|(address, _)| address)
}

/// Recovers the signer of `digest` and its compressed public key (what a payer seals a
/// mediated payment's secret to), under the contracts' rule.
pub fn recover_key(
    digest: &B256,
    signature: &Signature65,
) -> Result<(Address, [u8; 33]), ProtocolError> {
    let bytes = signature.as_bytes();
    let v = bytes[64];
    let recovery_id = match v {
        27 | 28 => {
            RecoveryId::try_from(i32::from(v - 27)).map_err(|_| ProtocolError::SignatureV(v))?
        }
        _ => return Err(ProtocolError::SignatureV(v)),
    };
    if U256::from_be_slice(&bytes[32..64]) > HALF_ORDER {
        return Err(ProtocolError::HighS);
    }
    let recoverable = RecoverableSignature::from_compact(&bytes[..64], recovery_id)
        .map_err(|_| ProtocolError::Unrecoverable)?;
    let key = SECP256K1
        .recover_ecdsa(Message::from_digest(digest.0), &recoverable)
        .map_err(|_| ProtocolError::Unrecoverable)?;
    let address = Address::from_slice(&keccak256(&key.serialize_uncompressed()[1..])[12..]);
    if address == Address::ZERO {
        return Err(ProtocolError::Unrecoverable);
    }
    Ok((address, key.serialize()))
}

/// Recovers the signer of an EIP-712 message.
pub fn recover_typed<T: SolStruct>(
    message: &T,
    domain: &Eip712Domain,
    signature: &Signature65,
) -> Result<Address, ProtocolError> {
    recover(&message.eip712_signing_hash(domain), signature)
}

/// Checks that `expected` signed the EIP-712 message.
pub fn verify_typed<T: SolStruct>(
    message: &T,
    domain: &Eip712Domain,
    signature: &Signature65,
    expected: Address,
) -> Result<(), ProtocolError> {
    let actual = recover_typed(message, domain, signature)?;
    if actual != expected {
        return Err(ProtocolError::WrongSigner { expected, actual });
    }
    Ok(())
}

/// Recovers with k256 (alloy's recovery), for comparison with libsecp256k1 in benchmarks and
/// for targets where the C library is unwelcome. Same rule as [`recover`].
pub fn recover_k256(digest: &B256, signature: &Signature65) -> Result<Address, ProtocolError> {
    let bytes = signature.as_bytes();
    let v = bytes[64];
    if v != 27 && v != 28 {
        return Err(ProtocolError::SignatureV(v));
    }
    if U256::from_be_slice(&bytes[32..64]) > HALF_ORDER {
        return Err(ProtocolError::HighS);
    }
    let parsed =
        alloy::primitives::Signature::from_raw(bytes).map_err(|_| ProtocolError::Unrecoverable)?;
    let address = parsed
        .recover_address_from_prehash(digest)
        .map_err(|_| ProtocolError::Unrecoverable)?;
    if address == Address::ZERO {
        return Err(ProtocolError::Unrecoverable);
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap()
    }

    /// `n - s` with `v` flipped: the malleable twin of a valid signature.
    fn high_s(signature: &Signature65) -> Signature65 {
        const ORDER: U256 = U256::from_be_bytes(alloy::hex!(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
        ));
        let mut bytes = signature.0;
        let s = ORDER - U256::from_be_slice(&bytes[32..64]);
        bytes[32..64].copy_from_slice(&s.to_be_bytes::<32>());
        bytes[64] = if bytes[64] == 27 { 28 } else { 27 };
        Signature65(bytes)
    }

    #[test]
    fn recovers_the_signer_with_both_libraries() {
        let digest = keccak256(b"smartmesh");
        let signature = sign_digest(&signer(), &digest);
        assert_eq!(recover(&digest, &signature), Ok(signer().address()));
        assert_eq!(recover_k256(&digest, &signature), Ok(signer().address()));
    }

    #[test]
    fn refuses_high_s_though_ecrecover_would_accept_it() {
        let digest = keccak256(b"smartmesh");
        let twin = high_s(&sign_digest(&signer(), &digest));
        assert_eq!(recover(&digest, &twin), Err(ProtocolError::HighS));
        assert_eq!(recover_k256(&digest, &twin), Err(ProtocolError::HighS));
    }

    #[test]
    fn refuses_bad_v_and_unrecoverable_signatures() {
        let digest = keccak256(b"smartmesh");
        let mut bytes = sign_digest(&signer(), &digest).0;
        bytes[64] = 1;
        assert_eq!(
            recover(&digest, &Signature65(bytes)),
            Err(ProtocolError::SignatureV(1))
        );
        // r = 0 is outside [1, n - 1]: ecrecover returns address(0) for it.
        let mut zero = [0u8; 65];
        zero[63] = 1;
        zero[64] = 27;
        assert_eq!(
            recover(&digest, &Signature65(zero)),
            Err(ProtocolError::Unrecoverable)
        );
        assert_eq!(
            recover_k256(&digest, &Signature65(zero)),
            Err(ProtocolError::Unrecoverable)
        );
        assert_eq!(
            Signature65::from_slice(&[0; 64]),
            Err(ProtocolError::SignatureLength(64))
        );
    }

    #[test]
    fn libsecp256k1_signs_what_k256_signs() {
        for byte in 1..=20u8 {
            let digest = keccak256([byte]);
            let fast = SecpSigner::new(&signer()).sign_digest(&digest);
            assert_eq!(recover(&digest, &fast), Ok(signer().address()));
            // Both are RFC 6979 with a low s: the very same bytes.
            assert_eq!(fast, sign_digest(&signer(), &digest));
        }
    }

    #[test]
    fn half_order_is_the_largest_accepted_s() {
        let order = U256::from_be_bytes(alloy::hex!(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
        ));
        assert_eq!(HALF_ORDER, order >> 1);
    }
}
