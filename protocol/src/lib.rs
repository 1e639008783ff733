//! SmartMesh protocol: the contract bindings and, as later issues add them, the EIP-712
//! messages, signing and recovery rules, and the compact wire format shared by the phone client
//! and the services. No I/O: it must also build for phones.

mod bindings;
mod messages;

pub use bindings::{SignedAgent, SmartMeshToken, TokenNetwork};
pub use messages::{CooperativeSettle, Withdraw};
