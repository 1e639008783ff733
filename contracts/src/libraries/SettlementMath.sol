// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @title SettlementMath
/// @notice How a closed channel's holdings split between its two participants.
/// @dev Every step compares before it subtracts: inputs come from signatures and declarations
/// that may hold any uint256 (a closer may declare 2^256 - 1), and settle must never revert.
library SettlementMath {
    /// @notice Splits `total` (what the channel holds) between the participants.
    /// @param deposit1 Participant 1's total deposit.
    /// @param withdrawn1 Participant 1's total withdrawal.
    /// @param transferred12 What participant 1 paid participant 2 off chain.
    /// @param transferred21 What participant 2 paid participant 1 off chain.
    /// @param total `deposit1 + deposit2 - withdrawn1 - withdrawn2`.
    /// @dev Requires `deposit1`, `withdrawn1` and `total` below 2^128 (TokenNetwork's deposit
    /// cap guarantees it).
    /// @return payout1 Participant 1's share, in `[0, total]`.
    /// @return payout2 `total - payout1`.
    function split(uint256 deposit1, uint256 withdrawn1, uint256 transferred12, uint256 transferred21, uint256 total)
        internal
        pure
        returns (uint256 payout1, uint256 payout2)
    {
        // Participant 1's share is deposit1 - withdrawn1 + (transferred21 - transferred12),
        // clamped to [0, total]. The net transfer is clamped first so every term fits in 131
        // bits and the signed sum cannot overflow; the bound is total + deposit1 + withdrawn1,
        // not total: a participant may withdraw payments it received (withdrawn1 > deposit1),
        // and any bound of at least total + |deposit1 - withdrawn1| leaves the result unchanged.
        uint256 limit = total + deposit1 + withdrawn1;
        // forge-lint: disable-start(unsafe-typecast) every cast value is below 2^131
        int256 net = transferred21 >= transferred12
            ? int256(_min(transferred21 - transferred12, limit))
            : -int256(_min(transferred12 - transferred21, limit));
        int256 share = int256(deposit1) - int256(withdrawn1) + net;
        if (share <= 0) payout1 = 0;
        else if (uint256(share) >= total) payout1 = total;
        else payout1 = uint256(share);
        // forge-lint: disable-end(unsafe-typecast)
        payout2 = total - payout1;
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }
}
