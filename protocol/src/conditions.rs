//! The SmartMesh Condition (DESIGN.md 3.4), as the ConditionRegistry defines it: a hashlock's
//! condition is `sha256(secret)`, a signature lock's is `keccak256(abi.encode(signer,
//! messageHash))`, met by `signer`'s EIP-712 `Ack(bytes32 messageHash)` under the registry's
//! domain ("SmartMesh Conditions", version "1").

use alloy::{
    primitives::{Address, B256, keccak256},
    sol_types::{Eip712Domain, SolValue, eip712_domain},
};
use sha2::{Digest, Sha256};

/// The gas a phone's request to register one condition gives the registry's call: about
/// twice what `registerAck` (a signature recovery and one new slot) uses.
pub const REGISTRATION_GAS: u64 = 100_000;

alloy::sol! {
    /// A signer's acknowledgment of `messageHash`: what meets a signature lock.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct Ack {
        bytes32 messageHash;
    }
}

/// The EIP-712 domain of the ConditionRegistry at `registry`.
pub fn conditions_domain(chain_id: u64, registry: Address) -> Eip712Domain {
    eip712_domain! {
        name: "SmartMesh Conditions",
        version: "1",
        chain_id: chain_id,
        verifying_contract: registry,
    }
}

/// The condition a hashlock on `secret` waits for: `sha256(secret)`, as Lightning and Raiden
/// hash their preimages.
pub fn hashlock_condition_id(secret: &B256) -> B256 {
    B256::from_slice(&Sha256::digest(secret.as_slice()))
}

/// The condition a signature lock waiting for `signer`'s acknowledgment of `message_hash`
/// waits for.
pub fn ack_condition_id(signer: Address, message_hash: B256) -> B256 {
    keccak256((signer, message_hash).abi_encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashlock_is_the_sha256_of_its_32_byte_secret() {
        // sha256 of 32 zero bytes, as every implementation has it.
        assert_eq!(
            hashlock_condition_id(&B256::ZERO),
            "0x66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
                .parse::<B256>()
                .unwrap()
        );
    }

    #[test]
    fn a_signature_lock_binds_signer_and_message() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let m = B256::repeat_byte(9);
        assert_ne!(ack_condition_id(a, m), ack_condition_id(b, m));
        let mut encoded = [0u8; 64];
        encoded[12..32].copy_from_slice(a.as_slice());
        encoded[32..].copy_from_slice(m.as_slice());
        assert_eq!(ack_condition_id(a, m), keccak256(encoded));
    }
}
