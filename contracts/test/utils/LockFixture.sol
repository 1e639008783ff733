// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";
import {TokenNetwork} from "../../src/TokenNetwork.sol";
import {Locks} from "../../src/libraries/Locks.sol";

/// @notice Lock lists and proofs that carry them, built from DESIGN 3.4's encoding rather than
/// read from the contract, so the tests check the contract against the specification.
abstract contract LockFixture is Fixture {
    function hashlock(bytes32 secret) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(secret));
    }

    function lockOf(uint256 expiry, uint256 amount, bytes32 conditionId) internal pure returns (Locks.Lock memory) {
        return Locks.Lock({expiry: uint40(expiry), amount: uint128(amount), conditionId: conditionId});
    }

    /// @dev `expiry (5) | amount (16) | 11 zero bytes | conditionId (32)`, written out by hand.
    function encodeLock(Locks.Lock memory lock) internal pure returns (bytes memory) {
        return abi.encodePacked(bytes5(lock.expiry), bytes16(lock.amount), bytes11(0), lock.conditionId);
    }

    function listOf(Locks.Lock memory a) internal pure returns (bytes memory) {
        return encodeLock(a);
    }

    function listOf(Locks.Lock memory a, Locks.Lock memory b) internal pure returns (bytes memory) {
        return bytes.concat(encodeLock(a), encodeLock(b));
    }

    /// @dev `count` hashlocks of `amount` each on secrets derived from `seed`.
    function manyLocks(uint256 count, uint256 expiry, uint256 amount, uint256 seed)
        internal
        pure
        returns (bytes memory list)
    {
        for (uint256 i = 0; i < count; i++) {
            list = bytes.concat(list, encodeLock(lockOf(expiry, amount, hashlock(secretOf(seed, i)))));
        }
    }

    function secretOf(uint256 seed, uint256 i) internal pure returns (bytes32) {
        return keccak256(abi.encode("secret", seed, i));
    }

    function sumOf(bytes memory list) internal pure returns (uint256 total) {
        for (uint256 i = 0; i < list.length / 64; i++) {
            uint256 head;
            assembly ("memory-safe") {
                head := mload(add(add(list, 0x20), mul(i, 64)))
            }
            total += uint128(head >> 88);
        }
    }

    /// @dev A proof of `transferred` at `nonce` carrying `list` as its pending locks.
    function lockedProof(bytes32 channelId, uint256 nonce, uint256 transferred, bytes memory list)
        internal
        pure
        returns (TokenNetwork.BalanceProof memory proof)
    {
        proof = proofOf(channelId, nonce, transferred);
        proof.lockedAmount = sumOf(list);
        proof.locksRoot = list.length == 0 ? bytes32(0) : keccak256(list);
    }

    function signedLockedProof(uint256 pk, bytes32 channelId, uint256 nonce, uint256 transferred, bytes memory list)
        internal
        view
        returns (TokenNetwork.BalanceProof memory proof, bytes memory sig)
    {
        proof = lockedProof(channelId, nonce, transferred, list);
        sig = signProof(pk, proof);
    }

    function closeWithLocks(
        address closer,
        bytes32 channelId,
        TokenNetwork.BalanceProof memory partnerProof,
        bytes memory partnerSig,
        bytes memory partnerLocks,
        uint256 claim,
        bytes memory ownLocks
    ) internal {
        vm.prank(closer);
        network.close(channelId, partnerProof, partnerSig, partnerLocks, claim, ownLocks);
    }
}
