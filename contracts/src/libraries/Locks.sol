// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {ConditionRegistry} from "../ConditionRegistry.sol";

/// @title Locks
/// @notice The one place a SmartMesh lock list is encoded, checked and resolved. A lock is 64
/// bytes, `expiry (5) | amount (16) | 11 zero bytes | conditionId (32)`; a payer's pending
/// locks toward its partner are their encodings concatenated in creation order, at most
/// `MAX_LOCKS` of them. `locksRoot` is the keccak256 of that list (zero when it is empty) and
/// `lockedAmount` the sum of its amounts. The off-chain mirror is smartmesh-protocol's `locks`
/// module; a test compares the two byte for byte on anvil.
/// @dev A flat list rather than a Merkle tree: resolving n locks in one settle costs a few
/// thousand gas per extra lock, where per-lock claims cost a transaction and a slot each.
library Locks {
    /// @notice Bytes in one encoded lock.
    uint256 internal constant LOCK_SIZE = 64;
    /// @notice Most pending locks one payer may have toward its partner.
    uint256 internal constant MAX_LOCKS = 32;

    // The low 88 bits of a lock's first word: the 11 bytes that must be zero.
    uint256 private constant PADDING_MASK = (1 << 88) - 1;
    uint256 private constant AMOUNT_MASK = type(uint128).max;

    /// @notice One conditional payment.
    /// @param expiry Unix seconds; the condition must be registered strictly before it.
    /// @param amount What the lock pays its receiver, at least 1.
    /// @param conditionId `sha256(secret)` or `keccak256(abi.encode(signer, messageHash))`.
    struct Lock {
        uint40 expiry;
        uint128 amount;
        bytes32 conditionId;
    }

    /// @notice The list's length is not a whole number of 64-byte locks.
    error LocksMalformed(uint256 length);
    /// @notice The list holds more than `MAX_LOCKS` locks.
    error TooManyLocks(uint256 count, uint256 max);
    /// @notice The lock at `index` has amount 0.
    error LockAmountZero(uint256 index);
    /// @notice The lock at `index` has nonzero padding (the encoding is canonical).
    error LockPaddingNotZero(uint256 index);

    /// @notice Checks a list's encoding and returns its root and the sum of its amounts.
    /// @dev Reverts on a malformed list, more than `MAX_LOCKS` locks, an amount of 0 or nonzero
    /// padding. The sum cannot overflow: at most 32 amounts below 2^128.
    function check(bytes calldata locks) internal pure returns (bytes32 root, uint256 lockedAmount) {
        uint256 count = _count(locks);
        for (uint256 i = 0; i < count; i++) {
            uint256 head = _head(locks, i);
            if (head & PADDING_MASK != 0) revert LockPaddingNotZero(i);
            uint256 amount = (head >> 88) & AMOUNT_MASK;
            if (amount == 0) revert LockAmountZero(i);
            lockedAmount += amount;
        }
        root = rootOf(locks);
    }

    /// @notice A list's root: keccak256 of its bytes, or zero for the empty list.
    function rootOf(bytes calldata locks) internal pure returns (bytes32) {
        return locks.length == 0 ? bytes32(0) : keccak256(locks);
    }

    /// @notice What the list pays its receiver under the claim rule: the sum of the locks whose
    /// condition was registered at a time `t` with `0 < t < min(expiry, settleAt)`.
    /// @dev For a list `check` accepted (the stored root proves it); reads the registry once
    /// per lock and never reverts.
    function claimable(bytes calldata locks, ConditionRegistry registry, uint256 settleAt)
        internal
        view
        returns (uint256 total)
    {
        uint256 count = locks.length / LOCK_SIZE;
        for (uint256 i = 0; i < count; i++) {
            uint256 head = _head(locks, i);
            uint256 expiry = head >> 216;
            uint256 deadline = expiry < settleAt ? expiry : settleAt;
            uint256 registeredAt = _registeredAt(registry, _conditionId(locks, i));
            if (registeredAt != 0 && registeredAt < deadline) total += (head >> 88) & AMOUNT_MASK;
        }
    }

    /// @dev `registry.registeredAt(conditionId)` through the scratch space: a high-level call
    /// would allocate fresh memory for every lock, and memory never shrinks within a
    /// transaction. A failed or short answer reads as never registered, so a settle cannot
    /// revert on it (the registry is the network's own immutable contract: it never fails).
    function _registeredAt(ConditionRegistry registry, bytes32 conditionId) private view returns (uint256 at) {
        bytes4 selector = ConditionRegistry.registeredAt.selector;
        assembly ("memory-safe") {
            mstore(0x00, selector)
            mstore(0x04, conditionId)
            let ok := staticcall(gas(), registry, 0x00, 0x24, 0x00, 0x20)
            at := mul(and(ok, gt(returndatasize(), 0x1f)), and(mload(0x00), 0xffffffffff))
        }
    }

    /// @notice The lock at `index` of a list.
    function at(bytes calldata locks, uint256 index) internal pure returns (Lock memory lock) {
        uint256 head = _head(locks, index);
        // forge-lint: disable-start(unsafe-typecast) the fields are these bit ranges by definition
        lock.expiry = uint40(head >> 216);
        lock.amount = uint128(head >> 88);
        // forge-lint: disable-end(unsafe-typecast)
        lock.conditionId = _conditionId(locks, index);
    }

    /// @notice The 64-byte encoding of one lock.
    function encode(Lock memory lock) internal pure returns (bytes memory) {
        return abi.encodePacked(lock.expiry, lock.amount, bytes11(0), lock.conditionId);
    }

    function _count(bytes calldata locks) private pure returns (uint256 count) {
        if (locks.length % LOCK_SIZE != 0) revert LocksMalformed(locks.length);
        count = locks.length / LOCK_SIZE;
        if (count > MAX_LOCKS) revert TooManyLocks(count, MAX_LOCKS);
    }

    function _head(bytes calldata locks, uint256 index) private pure returns (uint256 head) {
        assembly ("memory-safe") {
            head := calldataload(add(locks.offset, mul(index, 64)))
        }
    }

    function _conditionId(bytes calldata locks, uint256 index) private pure returns (bytes32 conditionId) {
        assembly ("memory-safe") {
            conditionId := calldataload(add(locks.offset, add(mul(index, 64), 32)))
        }
    }
}
