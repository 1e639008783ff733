//! Every message the contracts verify, with the exact EIP-712 type strings of the Solidity
//! sources, and the domains they are signed under.

use alloy::{
    primitives::Address,
    sol_types::{Eip712Domain, eip712_domain},
};

alloy::sol! {
    /// An off-chain payment state, signed by the payer (`TokenNetwork.BalanceProof`).
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct BalanceProof {
        bytes32 channelId;
        uint256 nonce;
        uint256 transferredAmount;
        uint256 lockedAmount;
        bytes32 locksRoot;
        bytes32 messageHash;
    }

    /// A non-closer's authorization for a watcher to submit one closer-signed proof.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct Watch {
        bytes32 channelId;
        bytes32 proofDigest;
        address watcher;
        uint256 reward;
        uint256 deadline;
    }

    /// A withdrawal both participants sign: `participant`'s total withdrawal rises to
    /// `totalWithdraw`.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct Withdraw {
        bytes32 channelId;
        address participant;
        uint256 totalWithdraw;
        uint256 deadline;
    }

    /// A cooperative settlement both participants sign while the channel is open.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct CooperativeSettle {
        bytes32 channelId;
        uint256 balance1;
        uint256 balance2;
        uint256 deadline;
    }

    /// A call the SignedAgent makes on `from`'s behalf, paying `fee` to the relayer.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct AgentRequest {
        address from;
        address agent;
        address target;
        bytes data;
        uint256 gas;
        address feeToken;
        uint256 fee;
        uint256 nonce;
        uint256 deadline;
    }

    /// A relayable cancel of one of `from`'s agent nonces.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct CancelRequest {
        address from;
        uint256 nonce;
    }

    /// An EIP-2612 permit for the SMT token.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct Permit {
        address owner;
        address spender;
        uint256 value;
        uint256 nonce;
        uint256 deadline;
    }

    /// An EIP-3009 transfer anyone may submit.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct TransferWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }

    /// An EIP-3009 transfer only the payee may submit.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct ReceiveWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }

    /// An EIP-3009 cancel of an unused authorization nonce.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct CancelAuthorization {
        address authorizer;
        bytes32 nonce;
    }
}

impl BalanceProof {
    /// Whether this is the "no proof" a closer submits when it received nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The EIP-712 domain of a TokenNetwork (balance proofs, watches, withdrawals, settlements).
pub fn token_network_domain(chain_id: u64, token_network: Address) -> Eip712Domain {
    eip712_domain! {
        name: "SmartMesh TokenNetwork",
        version: "1",
        chain_id: chain_id,
        verifying_contract: token_network,
    }
}

/// The EIP-712 domain of a SignedAgent (agent requests and their cancels).
pub fn agent_domain(chain_id: u64, agent: Address) -> Eip712Domain {
    eip712_domain! {
        name: "SmartMesh SignedAgent",
        version: "1",
        chain_id: chain_id,
        verifying_contract: agent,
    }
}

/// The EIP-712 domain of the SMT token (permits and EIP-3009 authorizations).
pub fn token_domain(chain_id: u64, token: Address) -> Eip712Domain {
    eip712_domain! {
        name: "SmartMesh Token",
        version: "1",
        chain_id: chain_id,
        verifying_contract: token,
    }
}
