//! The wire format: round trips, one canonical encoding per message, a typed error (never a
//! panic) for any other input, and tamper evidence: any single-byte change is refused or
//! changes the signer.

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
};
use proptest::{
    prelude::*,
    test_runner::{Config, RngSeed},
};
use smartmesh_protocol::{
    BalanceProof, MAX_WIRE_LEN, ProtocolError, SignedProof, sign_typed, token_network_domain,
};

const NETWORK: Address = Address::repeat_byte(0x4e);

fn payer() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap()
}

fn signed(chain_id: u64, proof: BalanceProof) -> SignedProof {
    let signature = sign_typed(&payer(), &proof, &token_network_domain(chain_id, NETWORK));
    SignedProof {
        chain_id,
        token_network: NETWORK,
        proof,
        signature,
    }
}

fn sample() -> SignedProof {
    signed(
        11155111,
        BalanceProof {
            channelId: B256::repeat_byte(0xc4),
            nonce: U256::from(3),
            transferredAmount: U256::from(5_000_000_000_000_000_000u128),
            messageHash: B256::repeat_byte(0x9a),
            ..Default::default()
        },
    )
}

/// Deterministic runs (fixed seed), no regression files written into the tree.
fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x5eed),
        failure_persistence: None,
        ..Config::default()
    }
}

#[test]
fn round_trips_in_binary_and_text() {
    let message = sample();
    let bytes = message.encode().unwrap();
    assert!(bytes.len() <= MAX_WIRE_LEN);
    assert_eq!(SignedProof::decode(&bytes).unwrap(), message);
    let text = message.to_text().unwrap();
    assert!(text.starts_with("smr1"));
    assert_eq!(SignedProof::from_text(&text).unwrap(), message);
    assert_eq!(message.signer().unwrap(), payer().address());
}

#[test]
fn the_largest_proof_fits_in_256_bytes() {
    let message = signed(
        u64::MAX,
        BalanceProof {
            channelId: B256::repeat_byte(0xff),
            nonce: U256::MAX,
            transferredAmount: U256::MAX,
            messageHash: B256::repeat_byte(0xff),
            ..Default::default()
        },
    );
    let bytes = message.encode().unwrap();
    assert_eq!(bytes.len(), 227);
    assert_eq!(SignedProof::decode(&bytes).unwrap(), message);
}

#[test]
fn refuses_each_kind_of_bad_input_with_its_error() {
    let bytes = sample().encode().unwrap();
    assert_eq!(SignedProof::decode(&[]), Err(ProtocolError::Empty));
    let mut other = bytes.clone();
    other[0] = 2;
    assert_eq!(
        SignedProof::decode(&other),
        Err(ProtocolError::UnknownVersion(2))
    );
    other = bytes.clone();
    other[1] = 9;
    assert_eq!(
        SignedProof::decode(&other),
        Err(ProtocolError::UnknownKind(9))
    );
    assert_eq!(
        SignedProof::decode(&bytes[..bytes.len() - 1]),
        Err(ProtocolError::Truncated { field: "signature" })
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        SignedProof::decode(&longer),
        Err(ProtocolError::TrailingBytes(1))
    );
    assert_eq!(
        SignedProof::decode(&[0u8; MAX_WIRE_LEN + 1]),
        Err(ProtocolError::Oversized {
            len: MAX_WIRE_LEN + 1,
            max: MAX_WIRE_LEN
        })
    );
    assert_eq!(
        SignedProof::from_text("smr2AAAA"),
        Err(ProtocolError::TextPrefix)
    );
    assert_eq!(
        SignedProof::from_text("smr1*"),
        Err(ProtocolError::TextEncoding)
    );
    let padded = format!("{}==", sample().to_text().unwrap());
    assert_eq!(
        SignedProof::from_text(&padded),
        Err(ProtocolError::TextEncoding)
    );
}

#[test]
fn refuses_non_canonical_encodings() {
    let bytes = sample().encode().unwrap();
    // chain id 11155111 = 0xaa36a7, written with a leading zero byte.
    let chain_at = 2;
    assert_eq!(bytes[chain_at], 3);
    let mut padded = bytes[..chain_at].to_vec();
    padded.extend_from_slice(&[4, 0]);
    padded.extend_from_slice(&bytes[chain_at + 1..]);
    assert_eq!(
        SignedProof::decode(&padded),
        Err(ProtocolError::NonCanonical { field: "chain id" })
    );

    let mut too_long = bytes[..chain_at].to_vec();
    too_long.push(9);
    too_long.extend_from_slice(&[1; 9]);
    assert_eq!(
        SignedProof::decode(&too_long),
        Err(ProtocolError::IntegerTooLong { field: "chain id" })
    );

    // A flagged memo that is all zero has a shorter encoding (no flag, no memo).
    let zero_memo = signed(
        1,
        BalanceProof {
            nonce: U256::from(1),
            ..Default::default()
        },
    );
    let mut encoded = zero_memo.encode().unwrap();
    let flags_at = encoded.len() - 65 - 1;
    encoded[flags_at] = 1;
    encoded.splice(flags_at + 1..flags_at + 1, [0u8; 32]);
    assert_eq!(
        SignedProof::decode(&encoded),
        Err(ProtocolError::NonCanonical { field: "memo" })
    );
    encoded = zero_memo.encode().unwrap();
    encoded[flags_at] = 4;
    assert_eq!(
        SignedProof::decode(&encoded),
        Err(ProtocolError::NonCanonical { field: "flags" })
    );

    let mut bad_v = bytes.clone();
    *bad_v.last_mut().unwrap() = 29;
    assert_eq!(
        SignedProof::decode(&bad_v),
        Err(ProtocolError::SignatureV(29))
    );
}

#[test]
fn a_proof_with_pending_locks_round_trips_in_at_most_292_bytes() {
    let mut message = sample();
    message.proof.lockedAmount = U256::from(1);
    assert_eq!(
        message.encode(),
        Err(ProtocolError::NonCanonical { field: "locks" }),
        "a locked amount needs its root"
    );
    let largest = signed(
        u64::MAX,
        BalanceProof {
            channelId: B256::repeat_byte(0xff),
            nonce: U256::MAX,
            transferredAmount: U256::MAX,
            lockedAmount: U256::MAX,
            locksRoot: B256::repeat_byte(0xff),
            messageHash: B256::repeat_byte(0xff),
        },
    );
    let bytes = largest.encode().unwrap();
    assert_eq!(bytes.len(), 292);
    assert_eq!(SignedProof::decode(&bytes).unwrap(), largest);
    // The flag without the fields, or with a zero amount, is refused.
    let mut zero = bytes.clone();
    let at = bytes.len() - 65 - 32 - 33;
    assert_eq!(zero[at], 32, "the locked amount's length byte");
    zero[at] = 0;
    zero.drain(at + 1..at + 33);
    assert_eq!(
        SignedProof::decode(&zero),
        Err(ProtocolError::NonCanonical { field: "locks" })
    );
}

fn arb_proof() -> impl Strategy<Value = SignedProof> {
    (
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<bool>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(chain_id, channel, nonce, amount, with_memo, memo)| {
            let memo = if with_memo && memo != [0; 32] {
                B256::from(memo)
            } else {
                B256::ZERO
            };
            signed(
                chain_id,
                BalanceProof {
                    channelId: B256::from(channel),
                    nonce: U256::from_be_bytes(nonce) >> (usize::from(nonce[0]) % 256),
                    transferredAmount: U256::from_be_bytes(amount)
                        >> (usize::from(amount[0]) % 256),
                    messageHash: memo,
                    ..Default::default()
                },
            )
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_proof_round_trips(message in arb_proof()) {
        let bytes = message.encode().unwrap();
        prop_assert!(bytes.len() <= MAX_WIRE_LEN);
        prop_assert_eq!(SignedProof::decode(&bytes).unwrap(), message.clone());
        prop_assert_eq!(SignedProof::from_text(&message.to_text().unwrap()).unwrap(), message);
    }

    #[test]
    fn any_single_byte_change_is_refused_or_changes_the_signer(
        message in arb_proof(),
        position in any::<prop::sample::Index>(),
        replacement in 1u8..=255,
    ) {
        let mut bytes = message.encode().unwrap();
        let at = position.index(bytes.len());
        bytes[at] ^= replacement;
        match SignedProof::decode(&bytes) {
            Err(_) => {}
            Ok(tampered) => {
                prop_assert_ne!(&tampered, &message);
                prop_assert_ne!(tampered.signer().ok(), Some(payer().address()));
            }
        }
    }
}

proptest! {
    #![proptest_config(config(4096))]

    /// The decoders' fuzz target: any bytes, any text, a typed answer and never a panic.
    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), text in ".{0,400}") {
        let _ = SignedProof::decode(&bytes);
        let _ = SignedProof::from_text(&text);
        let _ = SignedProof::from_text(&format!("smr1{text}"));
        if let Ok(decoded) = SignedProof::decode(&bytes) {
            // Whatever decodes re-encodes to exactly the same bytes: one encoding per message.
            prop_assert_eq!(decoded.encode().unwrap(), bytes);
        }
    }

    /// Inputs close to valid ones reach deeper into the decoder than random bytes do.
    #[test]
    fn near_valid_inputs_never_panic(cut in 0usize..228, extra in prop::collection::vec(any::<u8>(), 0..40)) {
        let mut bytes = sample().encode().unwrap();
        bytes.truncate(cut.min(bytes.len()));
        bytes.extend_from_slice(&extra);
        if let Ok(decoded) = SignedProof::decode(&bytes) {
            prop_assert_eq!(decoded.encode().unwrap(), bytes);
        }
    }
}
