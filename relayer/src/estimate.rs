//! How much gas a relay takes, measured rather than guessed: the forwarded call is estimated
//! against the chain as the SignedAgent will make it, the fee payment likewise, and the agent's
//! own overhead (signature check, nonce bit, trust checks) is measured at startup by
//! estimating a real `execute` of a throwaway request.

use alloy::{
    eips::BlockId,
    primitives::{Address, Bytes, U256, keccak256},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use smartmesh_chain::Unmined;
use smartmesh_protocol::{AgentRequest, SignedAgent, SmartMeshToken, agent_domain, sign_typed};

use crate::RelayerError;

/// Gas the SignedAgent keeps aside for the CALL itself (`CALL_GAS_MARGIN` in the contract).
const CALL_GAS_MARGIN: u64 = 10_000;
/// A cold call to the fee token and its return data, when the token is not the target.
const FEE_CALL_OVERHEAD: u64 = 3_500;
/// The intrinsic cost of any transaction.
const INTRINSIC: u64 = 21_000;

/// Estimates relays on one deployment.
#[derive(Debug, Clone)]
pub(crate) struct Estimator {
    provider: DynProvider,
    chain_id: u64,
    agent: Address,
    token: Address,
    /// What `execute` costs besides calldata, the forwarded call and the fee payment.
    base_overhead: u64,
}

impl Estimator {
    /// Measures the agent's overhead by estimating a relay of a throwaway request sent by
    /// `relayer`: an SMT `approve` of nothing, from a fresh key (so its nonce word is new, the
    /// dearest case), with no fee.
    pub(crate) async fn calibrate(
        provider: DynProvider,
        chain_id: u64,
        agent: Address,
        token: Address,
        relayer: Address,
    ) -> Result<Self, RelayerError> {
        let user = PrivateKeySigner::from_bytes(&keccak256(
            [
                b"smartmesh relayer calibration".as_slice(),
                relayer.as_slice(),
            ]
            .concat(),
        ))
        .map_err(|e| RelayerError::Config(e.to_string()))?;
        let data = Bytes::from(
            SmartMeshToken::approveCall {
                spender: relayer,
                value: U256::ZERO,
            }
            .abi_encode(),
        );
        let mut estimator = Self {
            provider,
            chain_id,
            agent,
            token,
            base_overhead: 0,
        };
        let inner = estimator
            .inner_gas(user.address(), token, &data)
            .await?
            .map_err(|reason| {
                RelayerError::Config(format!("calibration call reverts: {reason}"))
            })?;
        let gas = request_gas(inner);
        let request = AgentRequest {
            from: user.address(),
            agent: relayer,
            target: token,
            data,
            gas: U256::from(gas),
            feeToken: token,
            fee: U256::ZERO,
            nonce: U256::ZERO,
            deadline: U256::from(u64::MAX),
        };
        let signature = sign_typed(&user, &request, &agent_domain(chain_id, agent));
        let measured = estimator
            .simulate(relayer, &request, signature.as_bytes())
            .await?
            .map_err(|reason| {
                RelayerError::Config(format!("calibration relay reverts: {reason}"))
            })?;
        let calldata = execute_calldata(&request, signature.as_bytes());
        estimator.base_overhead =
            measured.saturating_sub(INTRINSIC + calldata_gas(&calldata) + forwarded(gas));
        tracing::info!(target: "smartmesh::relayer", measured, overhead = estimator.base_overhead, "agent overhead measured");
        Ok(estimator)
    }

    /// The agent's measured overhead.
    pub(crate) fn base_overhead(&self) -> u64 {
        self.base_overhead
    }

    /// Gas the call takes when the agent forwards it for `from`; `Ok(Err(reason))` when it
    /// reverts.
    pub(crate) async fn inner_gas(
        &self,
        from: Address,
        target: Address,
        data: &Bytes,
    ) -> Result<Result<u64, String>, RelayerError> {
        let call = TransactionRequest::default()
            .from(self.agent)
            .to(target)
            .input([data.as_ref(), from.as_slice()].concat().into());
        Ok(self
            .estimate(call)
            .await?
            .map(|gas| gas.saturating_sub(INTRINSIC)))
    }

    /// Gas of paying a fee from `from` to `relayer` (an ERC-2771 `transfer` by the agent).
    pub(crate) async fn fee_payment_gas(
        &self,
        from: Address,
        relayer: Address,
    ) -> Result<Result<u64, String>, RelayerError> {
        let data = SmartMeshToken::transferCall {
            to: relayer,
            value: U256::from(1),
        }
        .abi_encode();
        let input = [data.as_slice(), from.as_slice()].concat();
        let call_data = calldata_gas(&input);
        let call = TransactionRequest::default()
            .from(self.agent)
            .to(self.token)
            .input(input.into());
        Ok(self
            .estimate(call)
            .await?
            .map(|gas| gas.saturating_sub(INTRINSIC + call_data) + FEE_CALL_OVERHEAD))
    }

    /// The whole transaction's gas for `request`, whose call gets `gas`, with its fee payment.
    pub(crate) fn total(&self, request: &AgentRequest, gas: u64, fee_payment: u64) -> u64 {
        // The dearest calldata this request can have: every field of its final form non-zero.
        let dearest = AgentRequest {
            fee: U256::MAX,
            nonce: U256::MAX,
            deadline: U256::MAX,
            ..request.clone()
        };
        let calldata = execute_calldata(&dearest, &[0xff; 65]);
        INTRINSIC + calldata_gas(&calldata) + self.base_overhead + forwarded(gas) + fee_payment
    }

    /// Estimates `execute(request, signature)` sent by `relayer` against the pending state;
    /// `Ok(Err(reason))` when it would revert, with the reason decoded.
    pub(crate) async fn simulate(
        &self,
        relayer: Address,
        request: &AgentRequest,
        signature: &[u8],
    ) -> Result<Result<u64, String>, RelayerError> {
        let call = TransactionRequest::default()
            .from(relayer)
            .to(self.agent)
            .input(execute_calldata(request, signature).into());
        self.estimate(call).await
    }

    /// Runs `execute(request, signature)` sent by `relayer` against the pending state once
    /// (a call, cheaper for the node than an estimate); `Ok(Err(reason))` when it would
    /// revert, with the reason decoded.
    pub(crate) async fn check(
        &self,
        relayer: Address,
        request: &AgentRequest,
        signature: &[u8],
    ) -> Result<Result<(), String>, RelayerError> {
        let call = TransactionRequest::default()
            .from(relayer)
            .to(self.agent)
            .input(execute_calldata(request, signature).into());
        match self.provider.call(call).block(BlockId::pending()).await {
            Ok(_) => Ok(Ok(())),
            Err(error) => match smartmesh_chain::revert_reason(&error) {
                Some(reason) => Ok(Err(reason)),
                None => Err(RelayerError::Rpc(error.to_string())),
            },
        }
    }

    /// Runs the user's requests still in flight (`earlier`, each as its key will send it),
    /// then `execute(request, signature)` sent by `relayer`, in order against the pending
    /// state (`eth_simulateV1`): whether the new request still succeeds once those ran.
    /// Each request passing alone is not enough: several can spend the same SMT, allowance
    /// or nonce. `Ok(Err(reason))` when the new one would revert.
    pub(crate) async fn check_after(
        &self,
        earlier: &[Unmined],
        relayer: Address,
        request: &AgentRequest,
        signature: &[u8],
        gas_limit: u64,
    ) -> Result<Result<(), String>, RelayerError> {
        let call = |from: Address, to: Address, input: &[u8], gas: u64| {
            serde_json::json!({
                "from": from,
                "to": to,
                "input": Bytes::copy_from_slice(input),
                "gas": format!("{gas:#x}"),
            })
        };
        let mut calls: Vec<serde_json::Value> = earlier
            .iter()
            .map(|tx| {
                call(
                    tx.signer,
                    tx.request.to,
                    &tx.request.input,
                    tx.request.gas_limit,
                )
            })
            .collect();
        calls.push(call(
            relayer,
            self.agent,
            &execute_calldata(request, signature),
            gas_limit,
        ));
        let params = serde_json::json!([{ "blockStateCalls": [{ "calls": calls }] }, "pending"]);
        let blocks: serde_json::Value = self
            .provider
            .raw_request("eth_simulateV1".into(), params)
            .await
            .map_err(|e| RelayerError::Rpc(format!("eth_simulateV1: {e}")))?;
        let last = blocks[0]["calls"]
            .as_array()
            .and_then(|calls| calls.last())
            .ok_or_else(|| RelayerError::Rpc(format!("eth_simulateV1 answered {blocks}")))?;
        if last["status"] == "0x1" {
            return Ok(Ok(()));
        }
        let data = last["returnData"]
            .as_str()
            .or_else(|| last["error"]["data"].as_str())
            .and_then(|hex| alloy::hex::decode(hex).ok())
            .unwrap_or_default();
        Ok(Err(if data.is_empty() {
            last["error"]["message"]
                .as_str()
                .unwrap_or("reverted without a reason")
                .to_owned()
        } else {
            smartmesh_chain::decode_revert(&data)
        }))
    }

    /// The agent's domain.
    pub(crate) fn chain_id(&self) -> u64 {
        self.chain_id
    }

    async fn estimate(
        &self,
        call: TransactionRequest,
    ) -> Result<Result<u64, String>, RelayerError> {
        match self
            .provider
            .estimate_gas(call)
            .block(BlockId::pending())
            .await
        {
            Ok(gas) => Ok(Ok(gas)),
            Err(error) => match smartmesh_chain::revert_reason(&error) {
                Some(reason) => Ok(Err(reason)),
                None => Err(RelayerError::Rpc(error.to_string())),
            },
        }
    }
}

/// The gas a request forwards: the call's estimate and a margin for state that moves between
/// the quote and the relay: a fifth more, and room for one storage slot going from zero to
/// non-zero (22,100 where the estimate may have seen 5,000) and a cold account.
pub(crate) fn request_gas(inner: u64) -> u64 {
    inner + inner / 5 + 20_000
}

/// What the agent needs in hand to forward `gas` (the contract's up-front check).
fn forwarded(gas: u64) -> u64 {
    gas + gas / 63 + CALL_GAS_MARGIN
}

/// `SignedAgent.execute(request, signature)` calldata.
pub(crate) fn execute_calldata(request: &AgentRequest, signature: &[u8]) -> Vec<u8> {
    SignedAgent::executeCall {
        request: request.clone().into(),
        signature: Bytes::copy_from_slice(signature),
    }
    .abi_encode()
}

/// Calldata gas: 4 per zero byte, 16 per other byte.
fn calldata_gas(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .map(|byte| if *byte == 0 { 4 } else { 16 })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calldata_costs_4_per_zero_byte_and_16_per_other() {
        assert_eq!(calldata_gas(&[0, 1, 0, 2]), 40);
    }
}
