// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title SignatureRules
/// @notice The one signature rule every SmartMesh contract applies: a 65-byte signature with a
/// low `s`, recovering to the expected, non-zero signer. Off-chain code (smartmesh-protocol)
/// applies the same rule, so a message a phone accepts is one the chain accepts.
library SignatureRules {
    /// @notice The signature is malformed, has a high `s`, recovers to the zero address, or was
    /// made by someone other than `expected`.
    error InvalidSignature(address expected);

    /// @dev Reverts unless `signature` over `digest` was made by `expected`. OpenZeppelin's
    /// `tryRecoverCalldata` already refuses high-s values, bad `v` and the zero address; a zero
    /// `expected` therefore never matches.
    function requireSigner(bytes32 digest, bytes calldata signature, address expected) internal pure {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err != ECDSA.RecoverError.NoError || signer != expected || signer == address(0)) {
            revert InvalidSignature(expected);
        }
    }

    /// @dev The same rule for a signature given as `(v, r, s)`.
    function requireSigner(bytes32 digest, uint8 v, bytes32 r, bytes32 s, address expected) internal pure {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, v, r, s);
        if (err != ECDSA.RecoverError.NoError || signer != expected || signer == address(0)) {
            revert InvalidSignature(expected);
        }
    }
}
