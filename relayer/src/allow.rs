//! What the relayer agrees to pay gas for: the SMT token's, the TokenNetwork's and the
//! ConditionRegistry's user operations, by function selector. Anything else is refused before
//! it costs a simulation.

use alloy::{primitives::Address, sol_types::SolCall};
use smartmesh_protocol::{
    ConditionRegistry as Registry, SmartMeshToken as Token, TokenNetwork as Network,
};

/// The calls the relayer relays, per target.
#[derive(Debug, Clone)]
pub struct AllowList {
    token: Address,
    network: Address,
    registry: Address,
}

const REGISTRY_CALLS: [([u8; 4], &str); 3] = [
    (Registry::registerSecretCall::SELECTOR, "registerSecret"),
    (Registry::registerSecretsCall::SELECTOR, "registerSecrets"),
    (Registry::registerAckCall::SELECTOR, "registerAck"),
];

const TOKEN_CALLS: [([u8; 4], &str); 6] = [
    (Token::transferCall::SELECTOR, "transfer"),
    (Token::approveCall::SELECTOR, "approve"),
    (Token::permitCall::SELECTOR, "permit"),
    (
        Token::transferWithAuthorizationCall::SELECTOR,
        "transferWithAuthorization",
    ),
    (
        Token::receiveWithAuthorizationCall::SELECTOR,
        "receiveWithAuthorization",
    ),
    (
        Token::cancelAuthorizationCall::SELECTOR,
        "cancelAuthorization",
    ),
];

const NETWORK_CALLS: [([u8; 4], &str); 10] = [
    (Network::openCall::SELECTOR, "open"),
    (Network::openWithDepositCall::SELECTOR, "openWithDeposit"),
    (Network::depositCall::SELECTOR, "deposit"),
    (
        Network::depositWithPermitCall::SELECTOR,
        "depositWithPermit",
    ),
    (Network::withdrawCall::SELECTOR, "withdraw"),
    (
        Network::cooperativeSettleCall::SELECTOR,
        "cooperativeSettle",
    ),
    (Network::closeCall::SELECTOR, "close"),
    (Network::updateClaimCall::SELECTOR, "updateClaim"),
    (Network::settleCall::SELECTOR, "settle"),
    (Network::settleWithLocksCall::SELECTOR, "settleWithLocks"),
];

impl AllowList {
    /// The operations of `token`, `network` and `registry`.
    pub fn new(token: Address, network: Address, registry: Address) -> Self {
        Self {
            token,
            network,
            registry,
        }
    }

    /// The allowed function's name, or why the call is refused as `(field, reason)`.
    pub fn check(
        &self,
        target: Address,
        data: &[u8],
    ) -> Result<&'static str, (&'static str, String)> {
        let calls: &[([u8; 4], &str)] = if target == self.token {
            &TOKEN_CALLS
        } else if target == self.network {
            &NETWORK_CALLS
        } else if target == self.registry {
            &REGISTRY_CALLS
        } else {
            return Err((
                "target",
                format!(
                    "{target} is not relayed; only the SMT token {}, the TokenNetwork {} and the ConditionRegistry {} are",
                    self.token, self.network, self.registry
                ),
            ));
        };
        let Some(selector) = data.get(..4) else {
            return Err(("data", "shorter than a function selector".into()));
        };
        calls
            .iter()
            .find(|(allowed, _)| allowed.as_slice() == selector)
            .map(|(_, name)| *name)
            .ok_or_else(|| {
                let names: Vec<&str> = calls.iter().map(|(_, name)| *name).collect();
                (
                    "data",
                    format!(
                        "function 0x{} is not relayed for {target}; relayed: {}",
                        alloy::hex::encode(selector),
                        names.join(", ")
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_functions_of_the_three_contracts_pass() {
        let (token, network, registry) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(4),
        );
        let list = AllowList::new(token, network, registry);
        let open = Network::openCall {
            partner: Address::ZERO,
            settleTimeout: Default::default(),
        }
        .abi_encode();
        assert_eq!(list.check(network, &open), Ok("open"));
        assert_eq!(list.check(token, &open).unwrap_err().0, "data");
        assert_eq!(
            list.check(Address::repeat_byte(3), &open).unwrap_err().0,
            "target"
        );
        let register = Registry::registerSecretCall {
            secret: Default::default(),
        }
        .abi_encode();
        assert_eq!(list.check(registry, &register), Ok("registerSecret"));
        assert_eq!(list.check(network, &register).unwrap_err().0, "data");
        assert_eq!(list.check(network, &[1, 2]).unwrap_err().0, "data");
        let transfer_from = Token::transferFromCall {
            from: Address::ZERO,
            to: Address::ZERO,
            value: Default::default(),
        }
        .abi_encode();
        assert_eq!(
            list.check(token, &transfer_from).unwrap_err().0,
            "data",
            "a third party's funds are never moved"
        );
    }
}
