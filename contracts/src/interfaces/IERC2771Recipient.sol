// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @notice The part of ERC-2771 a forwarder asks of its recipients.
interface IERC2771Recipient {
    /// @notice Whether `forwarder` may append a sender address to calls to this contract.
    function isTrustedForwarder(address forwarder) external view returns (bool);
}
