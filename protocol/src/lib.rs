//! SmartMesh protocol: the contract bindings, every signed message of the contracts with its
//! EIP-712 domain, signing and recovery under the contracts' own rules, the off-chain payment
//! rules shared by phones and the watcher, and the compact wire format. No I/O: it must also
//! build for phones.

pub mod api;
#[cfg(feature = "bindings")]
mod bindings;
pub mod channel;
mod conditions;
mod custody;
mod error;
mod locks;
pub mod mediated;
mod messages;
pub mod relay;
mod rules;
mod signature;
mod watcher;
mod wire;

#[cfg(feature = "bindings")]
pub use bindings::{ConditionRegistry, SignedAgent, SmartMeshToken, TokenNetwork};
pub use conditions::{
    Ack, REGISTRATION_GAS, ack_condition_id, conditions_domain, hashlock_condition_id,
};
pub use custody::{
    CloseSeen, CloseVerdict, HeldCloserProof, ProofSummary, RegistrationVerdict, Verdict,
    judge_close, judge_registration, judge_upload, watch_covers, within_deposits,
};
pub use error::ProtocolError;
pub use locks::{LOCK_SIZE, Lock, LockList, MAX_EXPIRY, MAX_LOCKS};
pub use messages::{
    AgentRequest, BalanceProof, CancelAuthorization, CancelRequest, CooperativeSettle, Permit,
    ReceiveWithAuthorization, TransferWithAuthorization, Watch, Withdraw, agent_domain,
    token_domain, token_network_domain,
};
pub use rules::{PayerCapacity, check_successor};
pub use signature::{
    SecpSigner, Signature65, recover, recover_k256, recover_key, recover_typed, sign_digest,
    sign_typed, verify_typed,
};
pub use watcher::{MAX_READ_VALIDITY_SECS, WatcherAck, WatcherRead, watcher_domain};
pub use wire::{KIND_BALANCE_PROOF, MAX_WIRE_LEN, SignedProof, TEXT_PREFIX, WIRE_VERSION};
