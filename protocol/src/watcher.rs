//! What a phone and its settlement watcher sign to each other, off chain, under the watcher's
//! own EIP-712 domain: the watcher's acknowledgment that it holds a proof, and a participant's
//! short-lived request to read what the watcher holds for its channel (held proofs are shown
//! to a channel's participants only: they tell a would-be cheater what it could under-declare).

use alloy::{
    primitives::Address,
    sol_types::{Eip712Domain, eip712_domain},
};

alloy::sol! {
    /// The watcher's signed statement that it holds the proof with this digest.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct WatcherAck {
        bytes32 channelId;
        bytes32 proofDigest;
    }

    /// A participant's request to read what `watcher` holds for `channelId`, valid until
    /// `expiresAt` (unix seconds); watchers take only short-lived ones.
    #[derive(Debug, Default, PartialEq, Eq, Hash)]
    struct WatcherRead {
        bytes32 channelId;
        address participant;
        address watcher;
        uint256 expiresAt;
    }
}

/// The longest a [`WatcherRead`] may be valid, in seconds from when a watcher receives it.
pub const MAX_READ_VALIDITY_SECS: u64 = 600;

/// The domain of what phones and the watcher of `token_network` sign to each other.
pub fn watcher_domain(chain_id: u64, token_network: Address) -> Eip712Domain {
    eip712_domain! {
        name: "SmartMesh Watcher",
        version: "1",
        chain_id: chain_id,
        verifying_contract: token_network,
    }
}
