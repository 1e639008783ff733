//! Why the node said a call would fail, in words: the one place that tells a revert (or any
//! failure of the call itself) from a node that could not answer, and decodes the SmartMesh
//! contracts' errors, the forwarded call's through the SignedAgent included.

use alloy::{
    sol_types::{SolError, SolInterface},
    transports::{RpcError, TransportErrorKind},
};
use smartmesh_protocol::{SignedAgent, SmartMeshToken, TokenNetwork};

/// Why a simulated call (`eth_call`, `eth_estimateGas`) failed, when the node ran it and it
/// failed: a revert, decoded where the contracts' errors allow, out of gas, too little gas
/// for any transaction. `None` when the node failed for another reason (unreachable, busy):
/// that says nothing about the call.
pub fn revert_reason(error: &RpcError<TransportErrorKind>) -> Option<String> {
    let payload = error.as_error_resp()?;
    if let Some(data) = payload.as_revert_data() {
        return Some(decode_revert(&data));
    }
    let message = payload.message.to_ascii_lowercase();
    let ran_and_failed = [
        "revert",
        "out of gas",
        "invalid opcode",
        "intrinsic gas",
        "exceeds block gas limit",
        "gas limit too high",
    ]
    .iter()
    .any(|word| message.contains(word));
    ran_and_failed.then(|| payload.message.to_string())
}

/// A revert's data in words: the agent's errors (and what the forwarded call said), the
/// TokenNetwork's, the token's, a `revert("...")` message, or the raw data.
pub fn decode_revert(data: &[u8]) -> String {
    if let Ok(error) = SignedAgent::SignedAgentErrors::abi_decode(data) {
        return match error {
            SignedAgent::SignedAgentErrors::CallFailed(failed) => {
                format!("the call failed: {}", decode_revert(&failed.reason))
            }
            other => format!("{other:?}"),
        };
    }
    if let Ok(error) = TokenNetwork::TokenNetworkErrors::abi_decode(data) {
        return format!("{error:?}");
    }
    if let Ok(error) = SmartMeshToken::SmartMeshTokenErrors::abi_decode(data) {
        return format!("{error:?}");
    }
    if let Ok(message) = alloy::sol_types::Revert::abi_decode(data) {
        return message.reason;
    }
    format!("revert data 0x{}", alloy::hex::encode(data))
}

#[cfg(test)]
mod tests {
    use alloy::primitives::Address;

    use super::*;

    #[test]
    fn reverts_are_decoded_through_the_agent() {
        let inner =
            TokenNetwork::TokenNetworkErrors::InvalidPartner(TokenNetwork::InvalidPartner {
                partner: Address::ZERO,
            })
            .abi_encode();
        let outer = SignedAgent::SignedAgentErrors::CallFailed(SignedAgent::CallFailed {
            reason: inner.into(),
        })
        .abi_encode();
        let text = decode_revert(&outer);
        assert!(
            text.starts_with("the call failed: InvalidPartner"),
            "{text}"
        );
        assert!(decode_revert(&[1, 2, 3]).starts_with("revert data 0x010203"));
    }
}
