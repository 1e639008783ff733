//! Signed messages that have no struct in the contracts' ABI (the contracts hash their fields
//! directly), declared with the exact EIP-712 type strings of `TokenNetwork.sol`.

alloy::sol! {
    /// A withdrawal both participants sign: `participant`'s total withdrawal rises to
    /// `totalWithdraw`.
    #[derive(Debug, PartialEq, Eq)]
    struct Withdraw {
        bytes32 channelId;
        address participant;
        uint256 totalWithdraw;
        uint256 deadline;
    }

    /// A cooperative settlement both participants sign while the channel is open.
    #[derive(Debug, PartialEq, Eq)]
    struct CooperativeSettle {
        bytes32 channelId;
        uint256 balance1;
        uint256 balance2;
        uint256 deadline;
    }
}
