//! Conditions phones hand the watcher with their receipts: a hashlock's secret or a signature
//! lock's acknowledgment, each inside a SignedAgent request the phone signed that registers
//! it in the ConditionRegistry and pays this watcher its fee in SMT in the same transaction.
//! The watcher sends the request only when a lock it meets is still pending as the lock's
//! deadline, `min(expiry, settleAt)`, comes within the margin (DESIGN.md 3.4): an offline
//! receiver's lock then pays at settle, and a lock settled off chain costs nobody anything.

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    sol_types::{SolCall, SolStruct, SolValue},
};
use serde::{Deserialize, Serialize};
use smartmesh_protocol::{
    Ack, AgentRequest, ConditionRegistry, Signature65, ack_condition_id, agent_domain,
    conditions_domain, hashlock_condition_id, recover,
};
use utoipa::ToSchema;

/// What a watcher asks to register conditions, and where: set from the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Registrations {
    /// The ConditionRegistry (the zero address: this watcher takes no conditions).
    pub registry: Address,
    /// The SignedAgent the requests go through.
    pub signed_agent: Address,
    /// SMT, the fee's token.
    pub token: Address,
    /// The least fee a request must pay the watcher, in SMT wei.
    pub fee: U256,
}

/// The gas a registration request must give its call at least: `registerAck` recovers a
/// signature and writes one slot, `registerSecret` hashes and writes one.
pub const MIN_REGISTRATION_GAS: u64 = 60_000;
/// And at most: the watcher pays the gas, so a request cannot make it pay for more.
pub const MAX_REGISTRATION_GAS: u64 = 200_000;

/// A condition a phone hands over: the SignedAgent request registering it, with its fee to
/// this watcher.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionUpload {
    /// The channel in which the uploader receives a lock on this condition.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
    pub channel_id: B256,
    /// `abi.encode(AgentRequest)`, hex: `from` the uploader, `agent` this watcher, `target`
    /// the ConditionRegistry, `data` a `registerSecret(secret)` or `registerAck(signer,
    /// messageHash, signature)` call, `feeToken` SMT, `fee` at least the watcher's (health's
    /// `registrationFee`), `deadline` the lock's expiry.
    #[schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2}){1,2048}$")]
    pub request: Bytes,
    /// The uploader's 65-byte EIP-712 signature of the request under the SignedAgent's domain.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{130}$")]
    pub signature: Bytes,
}

/// A condition whose request checks out, waiting for the checks that need the database.
#[derive(Debug, Clone)]
pub(crate) struct CheckedCondition {
    pub(crate) condition_id: B256,
    pub(crate) channel_id: B256,
    pub(crate) from: Address,
    pub(crate) request: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

/// Checks everything about an upload that needs no database: the request's fields, the
/// condition it registers (an acknowledgment's signature too) and the uploader's signature.
pub(crate) fn verify(
    upload: &ConditionUpload,
    chain_id: u64,
    watcher: Address,
    terms: &Registrations,
    now: u64,
) -> Result<CheckedCondition, String> {
    if terms.registry.is_zero() {
        return Err("conditions: this watcher registers no conditions".into());
    }
    let request = AgentRequest::abi_decode(&upload.request)
        .map_err(|e| format!("request: not an abi-encoded AgentRequest ({e})"))?;
    if request.agent != watcher {
        return Err(format!(
            "request.agent: names {}, not this watcher {watcher}",
            request.agent
        ));
    }
    if request.target != terms.registry {
        return Err(format!(
            "request.target: {} is not the ConditionRegistry {}",
            request.target, terms.registry
        ));
    }
    if request.feeToken != terms.token {
        return Err(format!(
            "request.feeToken: {} is not SMT {}",
            request.feeToken, terms.token
        ));
    }
    if request.fee < terms.fee {
        return Err(format!(
            "request.fee: {} is below this watcher's registration fee {}",
            request.fee, terms.fee
        ));
    }
    let gas = MIN_REGISTRATION_GAS..=MAX_REGISTRATION_GAS;
    if !gas.contains(&u64::try_from(request.gas).unwrap_or(u64::MAX)) {
        return Err(format!(
            "request.gas: {} is outside {MIN_REGISTRATION_GAS}..={MAX_REGISTRATION_GAS}",
            request.gas
        ));
    }
    if request.deadline <= U256::from(now) {
        return Err(format!("request.deadline: {} has passed", request.deadline));
    }
    let condition_id = registered_condition(&request.data, chain_id, terms.registry)?;
    let signature =
        Signature65::from_slice(&upload.signature).map_err(|e| format!("signature: {e}"))?;
    let digest = request.eip712_signing_hash(&agent_domain(chain_id, terms.signed_agent));
    let signer = recover(&digest, &signature).map_err(|e| format!("signature: {e}"))?;
    if signer != request.from {
        return Err(format!(
            "signature: signed by {signer}, not by the request's from {}",
            request.from
        ));
    }
    Ok(CheckedCondition {
        condition_id,
        channel_id: upload.channel_id,
        from: request.from,
        request: upload.request.to_vec(),
        signature: upload.signature.to_vec(),
    })
}

/// The condition a registry call registers: one secret, or one acknowledgment whose
/// signature is checked here as the registry will.
fn registered_condition(data: &[u8], chain_id: u64, registry: Address) -> Result<B256, String> {
    if let Ok(call) = ConditionRegistry::registerSecretCall::abi_decode(data) {
        return Ok(hashlock_condition_id(&call.secret));
    }
    if let Ok(call) = ConditionRegistry::registerAckCall::abi_decode(data) {
        let signature = Signature65::from_slice(&call.signature)
            .map_err(|e| format!("request.data: the acknowledgment's signature: {e}"))?;
        let ack = Ack {
            messageHash: call.messageHash,
        };
        let signer = recover(
            &ack.eip712_signing_hash(&conditions_domain(chain_id, registry)),
            &signature,
        )
        .map_err(|e| format!("request.data: the acknowledgment's signature: {e}"))?;
        if signer != call.signer {
            return Err(format!(
                "request.data: the acknowledgment is signed by {signer}, not by {}",
                call.signer
            ));
        }
        return Ok(ack_condition_id(call.signer, call.messageHash));
    }
    Err(
        "request.data: neither registerSecret(bytes32) nor registerAck(address,bytes32,bytes)"
            .into(),
    )
}

/// The request and signature as `SignedAgent.execute` takes them.
pub(crate) fn execute_call(request: &[u8], signature: &[u8]) -> Result<Vec<u8>, String> {
    let request = AgentRequest::abi_decode(request).map_err(|e| e.to_string())?;
    Ok(smartmesh_protocol::SignedAgent::executeCall {
        request: request.into(),
        signature: Bytes::copy_from_slice(signature),
    }
    .abi_encode())
}

/// Where a handed-over condition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionState {
    /// Kept, waiting for its lock's deadline to near (or for a lock to wait for).
    Held,
    /// Its registration is on its way.
    Queued,
    /// The registry has it (through the watcher or anyone).
    Registered,
    /// Too late, or no longer needed: its request's deadline passed, or its channel settled.
    Expired,
}

impl ConditionState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Queued => "queued",
            Self::Registered => "registered",
            Self::Expired => "expired",
        }
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "held" => Self::Held,
            "queued" => Self::Queued,
            "registered" => Self::Registered,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}
