//! Signature recovery rate on this machine, libsecp256k1 (the watcher's hot path) against k256
//! (alloy's pure-Rust recovery), over the same signed balance proofs.
//! Run: `cargo bench -p smartmesh-protocol --bench recover`.

use std::time::Instant;

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
    sol_types::SolStruct,
};
use smartmesh_protocol::{
    BalanceProof, Signature65, recover, recover_k256, sign_typed, token_network_domain,
};

const SIGNATURES: usize = 2_000;
const ROUNDS: usize = 5;

fn rate(
    name: &str,
    inputs: &[(B256, Signature65, Address)],
    recover: fn(&B256, &Signature65) -> Result<Address, smartmesh_protocol::ProtocolError>,
) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for (digest, signature, signer) in inputs {
            assert_eq!(recover(digest, signature).as_ref(), Ok(signer));
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    let per_second = inputs.len() as f64 / best;
    println!(
        "{name:>12}: {per_second:>9.0} recoveries/s (best of {ROUNDS} x {} signatures)",
        inputs.len()
    );
    per_second
}

fn main() {
    let domain = token_network_domain(1, Address::repeat_byte(0x4e));
    let inputs: Vec<_> = (0..SIGNATURES)
        .map(|i| {
            let key = PrivateKeySigner::from_bytes(&B256::from(U256::from(i + 1))).unwrap();
            let proof = BalanceProof {
                channelId: B256::repeat_byte(7),
                nonce: U256::from(i + 1),
                transferredAmount: U256::from(i * 1_000),
                ..Default::default()
            };
            (
                proof.eip712_signing_hash(&domain),
                sign_typed(&key, &proof, &domain),
                key.address(),
            )
        })
        .collect();
    let secp = rate("libsecp256k1", &inputs, recover);
    let k256 = rate("k256", &inputs, recover_k256);
    println!("ratio libsecp256k1 / k256: {:.2}x", secp / k256);
}
