// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureRules} from "./libraries/SignatureRules.sol";

/// @title ConditionRegistry: when each SmartMesh Condition was met
/// @notice The SmartMesh Condition makes a payment final only once a condition is met before
/// an expiry. A condition is met when it is registered here, and the time of its registration
/// is all a channel asks: a lock pays its receiver if and only if its condition was registered
/// at a time `t` with `0 < t < min(expiry, settleAt)`. Two kinds, one mechanism:
/// - a hashlock, `conditionId = sha256(secret)` (Lightning's and Raiden's hash, so swaps with
///   them stay possible), met by revealing the secret;
/// - a signature lock, `conditionId = keccak256(abi.encode(signer, messageHash))`, met by
///   `signer`'s EIP-712 `Ack(bytes32 messageHash)` (a recipient's delivery acknowledgment).
/// One registration serves every channel and every hop of a route.
/// @dev Immutable and ownerless. The first registration wins and never changes; registering a
/// condition again changes nothing and does not revert, so several watchers racing to register
/// the same secret all succeed. It trusts the SignedAgent (ERC-2771) only so that the agent
/// relays registrations for phones without ETH: who registers plays no part.
contract ConditionRegistry is EIP712, ERC2771Context {
    /// @notice The acknowledgment that meets a signature lock.
    bytes32 public constant ACK_TYPEHASH = keccak256("Ack(bytes32 messageHash)");

    mapping(bytes32 conditionId => uint40 registeredAt) private _registeredAt;

    /// @notice `conditionId` was met, and registered at `registeredAt`.
    event ConditionRegistered(bytes32 indexed conditionId, uint40 registeredAt);

    /// @param trustedForwarder The SignedAgent that relays registrations.
    constructor(address trustedForwarder)
        EIP712("SmartMesh Conditions", "1")
        ERC2771Context(trustedForwarder)
    {}

    /// @notice Registers the hashlock `sha256(secret)` as met now, unless it already is.
    /// @param secret The 32-byte secret.
    /// @return conditionId `sha256(secret)`.
    function registerSecret(bytes32 secret) external returns (bytes32 conditionId) {
        conditionId = hashlockConditionId(secret);
        _register(conditionId);
    }

    /// @notice Registers several hashlocks at once (a watcher's batch), each unless it already
    /// is.
    /// @param secrets The secrets.
    function registerSecrets(bytes32[] calldata secrets) external {
        for (uint256 i = 0; i < secrets.length; i++) {
            _register(hashlockConditionId(secrets[i]));
        }
    }

    /// @notice Registers the signature lock of `signer` on `messageHash` as met now, unless it
    /// already is.
    /// @param signer Who had to acknowledge.
    /// @param messageHash What it acknowledged.
    /// @param signature `signer`'s EIP-712 signature of `Ack(messageHash)` under this
    /// contract's domain: 65 bytes, low s, never recovering to the zero address.
    /// @return conditionId `keccak256(abi.encode(signer, messageHash))`.
    function registerAck(address signer, bytes32 messageHash, bytes calldata signature)
        external
        returns (bytes32 conditionId)
    {
        SignatureRules.requireSigner(ackDigest(messageHash), signature, signer);
        conditionId = ackConditionId(signer, messageHash);
        _register(conditionId);
    }

    /// @notice When `conditionId` was registered (unix seconds), or 0 if it never was.
    function registeredAt(bytes32 conditionId) external view returns (uint40) {
        return _registeredAt[conditionId];
    }

    /// @notice The condition a hashlock on `secret` waits for.
    function hashlockConditionId(bytes32 secret) public pure returns (bytes32) {
        return sha256(abi.encode(secret));
    }

    /// @notice The condition a signature lock waiting for `signer`'s acknowledgment of
    /// `messageHash` waits for.
    function ackConditionId(address signer, bytes32 messageHash) public pure returns (bytes32) {
        return keccak256(abi.encode(signer, messageHash));
    }

    /// @notice The EIP-712 digest a signer signs to acknowledge `messageHash`.
    function ackDigest(bytes32 messageHash) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(ACK_TYPEHASH, messageHash)));
    }

    function _register(bytes32 conditionId) private {
        if (_registeredAt[conditionId] != 0) return;
        // forge-lint: disable-next-line(unsafe-typecast) timestamps fit 40 bits until year 36812
        uint40 at = uint40(block.timestamp);
        _registeredAt[conditionId] = at;
        emit ConditionRegistered(conditionId, at);
    }
}
