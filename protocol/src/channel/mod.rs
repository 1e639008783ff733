//! One channel's off-chain rules as a pure state machine (DESIGN.md 3.4 and 4): direct and
//! locked payments sent and received, unlocks, lock expiry, signed withdrawals and closes, the
//! capacity rule with locks, and the messages partners exchange. The phone and the watcher are
//! shells around it: load, apply, persist, send.

mod machine;
mod message;
mod state;

pub use machine::{Action, Effect, Event, apply, propose};
pub use message::{
    ChannelMessage, KIND_LOCK_EXPIRED, KIND_LOCKED_TRANSFER, KIND_REVEAL_SECRET, KIND_UNLOCK,
    LockExpired, LockedTransfer, MAX_MESSAGE_LEN, MAX_METADATA_LEN, RevealSecret, Unlock,
};
pub use state::{
    ChannelState, Freeze, FreezeKind, Phase, RegistryRead, Settings, Side, SignedWithdrawal,
};
