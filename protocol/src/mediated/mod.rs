//! Mediated payments across an offline mesh (DESIGN.md 4.1): Alice pays Carol through Brandon
//! while the three meet only now and then. The route's metadata (fees, target, the secret
//! sealed to the target) rides in each `LockedTransfer`, bound by its `messageHash`; each node
//! runs one [`TransferState`] per transfer beside its channel machines, pure like them.

mod metadata;
mod routing;
mod transfer;

pub use metadata::{
    Hop, MAX_LATER_HOPS, METADATA_VERSION, RouteMetadata, SealedSecret, public_key,
};
pub use routing::{CapacityHint, ChannelGraph, MAX_HINT_TTL, Route, hint_domain};
pub use transfer::{
    HopLock, LockOutcome, MediationSettings, Node, Payment, Role, TransferEffect, TransferEvent,
    TransferState, apply, initiate, receive_lock,
};
