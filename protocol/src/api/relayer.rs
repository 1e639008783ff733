//! The relayer's `POST /v1/quote`, `POST /v1/relay` and `GET /v1/relay/{id}`.

use alloy::primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Serialize};

use crate::AgentRequest;

/// The call a user wants relayed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuoteRequest {
    /// The user who will sign the request.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$"))]
    pub from: Address,
    /// The contract called: the SMT token or the TokenNetwork.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$"))]
    pub target: Address,
    /// The calldata, hex.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$"))]
    pub data: Bytes,
}

/// What the user signs into its `AgentRequest`, and until when.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    /// Name it in the relay.
    pub quote_id: i64,
    /// The user.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$"))]
    pub from: Address,
    /// The contract called.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$"))]
    pub target: Address,
    /// The relayer key to name as the request's `agent`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$"))]
    pub agent: Address,
    /// The SignedAgent: the EIP-712 domain's verifying contract.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$"))]
    pub signed_agent: Address,
    /// The EIP-712 domain's chain.
    pub chain_id: u64,
    /// The request's `feeToken`: SMT.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$"))]
    pub fee_token: Address,
    /// The request's `gas`: what the call is given.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"))]
    pub gas: U256,
    /// The least `fee`, in SMT wei.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"))]
    pub fee: U256,
    /// The whole transaction's estimated gas the fee pays for.
    pub estimated_gas: u64,
    /// The fee per gas it is priced at, in wei.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"))]
    pub max_fee_per_gas: U256,
    /// The SMT/ETH rate it is priced at.
    pub smt_per_eth: String,
    /// The markup, in basis points.
    pub markup_bps: u32,
    /// The last moment (unix seconds) the quote may be relayed.
    pub expires_at: u64,
}

/// The `AgentRequest` as signed, in JSON. Amounts are decimal or hex strings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedRequest {
    /// The user.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$"))]
    pub from: Address,
    /// The relayer key allowed to send it (the quote's `agent`), or the zero address.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$"))]
    pub agent: Address,
    /// The contract called.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$"))]
    pub target: Address,
    /// The calldata.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x([0-9a-fA-F]{2})*$"))]
    pub data: Bytes,
    /// The gas given to the call: the quote's `gas`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"))]
    pub gas: U256,
    /// SMT.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$"))]
    pub fee_token: Address,
    /// The fee, at least the quote's.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"))]
    pub fee: U256,
    /// An unordered nonce of the user's.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"))]
    pub nonce: U256,
    /// The last timestamp at which it may run.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"))]
    pub deadline: U256,
}

impl From<AgentRequest> for SignedRequest {
    fn from(r: AgentRequest) -> Self {
        Self {
            from: r.from,
            agent: r.agent,
            target: r.target,
            data: r.data,
            gas: r.gas,
            fee_token: r.feeToken,
            fee: r.fee,
            nonce: r.nonce,
            deadline: r.deadline,
        }
    }
}

impl From<SignedRequest> for AgentRequest {
    fn from(r: SignedRequest) -> Self {
        Self {
            from: r.from,
            agent: r.agent,
            target: r.target,
            data: r.data,
            gas: r.gas,
            feeToken: r.fee_token,
            fee: r.fee,
            nonce: r.nonce,
            deadline: r.deadline,
        }
    }
}

/// A request to relay.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RelayRequest {
    /// The quote the fee was taken from.
    pub quote_id: i64,
    /// The signed request.
    pub request: SignedRequest,
    /// The user's 65-byte EIP-712 signature of it, hex.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{130}$"))]
    pub signature: Bytes,
}

/// The answer to a relay.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// Follow it at `GET /v1/relay/{id}`.
    pub id: i64,
    /// `queued` at first.
    pub status: RelayState,
}

/// Where a relay stands.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RelayStatus {
    /// The relay's id.
    pub id: i64,
    /// Where it stands.
    pub status: RelayState,
    /// The user.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$"))]
    pub from: Address,
    /// The request's nonce.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"))]
    pub nonce: U256,
    /// The latest transaction hash, once submitted.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{64}$"))]
    pub tx_hash: Option<B256>,
    /// The block it was mined in.
    pub block: Option<u64>,
    /// Blocks on top of it, its own included.
    pub confirmations: Option<u64>,
    /// Why it failed.
    pub reason: Option<String>,
    /// The fee the relayer earned: the request's fee once mined, else zero.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"))]
    pub fee_earned: U256,
}

/// Where a relay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RelayState {
    /// Accepted; no transaction sent yet.
    Queued,
    /// Its transaction is sent, not yet mined.
    Submitted,
    /// Mined, and the call succeeded: the fee was paid.
    Mined,
    /// It will not be mined, or it reverted on chain: `reason` says which.
    Failed,
}
