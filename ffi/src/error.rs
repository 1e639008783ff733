//! The foreign interface's one error type: a kind an app can branch on, and the message the
//! CLI prints for the same failure.

use smartmesh_mesh::MeshError;

/// Why a call failed. Each kind is its own exception class in Kotlin, Swift and Python, whose
/// message is the CLI's for the same failure (a flat error: the message crosses, as text).
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum MeshFfiError {
    /// An argument the app passed is not usable (an amount, an address, an id, a text form, a
    /// configuration field): the message names it. Nothing changed.
    #[error("{message}")]
    InvalidArgument {
        /// What was wrong, naming the argument.
        message: String,
    },
    /// No open channel for this: unknown, closed, or frozen by a close or withdrawal signed.
    #[error("{message}")]
    NoChannel {
        /// The CLI's message.
        message: String,
    },
    /// The payment is more than the channel can carry now.
    #[error("{message}")]
    OverCapacity {
        /// The CLI's message.
        message: String,
    },
    /// No route to the target, or only one dearer than allowed.
    #[error("{message}")]
    NoRoute {
        /// The CLI's message.
        message: String,
    },
    /// A service (chain, watcher, relayer) is not configured or cannot be reached now: try
    /// again when online.
    #[error("{message}")]
    Offline {
        /// The CLI's message.
        message: String,
    },
    /// A service answered and refused, or the relayed transaction failed.
    #[error("{message}")]
    ServiceRefused {
        /// The CLI's message.
        message: String,
    },
    /// A message or proof the rules refuse: malformed, from someone else, for another
    /// deployment, or a step the channel's rules do not allow.
    #[error("{message}")]
    Rejected {
        /// The CLI's message.
        message: String,
    },
    /// The wallet's key file, or a restored wallet that must run `restore` first.
    #[error("{message}")]
    Wallet {
        /// The CLI's message.
        message: String,
    },
    /// The journal on the device failed: the call changed nothing it did not also record.
    #[error("{message}")]
    Journal {
        /// The CLI's message.
        message: String,
    },
    /// A failure of this library itself.
    #[error("{message}")]
    Internal {
        /// What happened.
        message: String,
    },
}

impl MeshFfiError {
    /// An argument refused, with the message naming it.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            message: message.into(),
        }
    }
}

impl From<MeshError> for MeshFfiError {
    fn from(error: MeshError) -> Self {
        let message = error.to_string();
        match error {
            MeshError::InvalidAmount(_) | MeshError::OutOfRange { .. } => {
                Self::InvalidArgument { message }
            }
            MeshError::NoChannelWith(_)
            | MeshError::UnknownChannel(_)
            | MeshError::NotOpen { .. }
            | MeshError::Frozen { .. } => Self::NoChannel { message },
            MeshError::OverCapacity { .. } => Self::OverCapacity { message },
            MeshError::NoRoute { .. }
            | MeshError::UnknownKey(_)
            | MeshError::FeeAboveMax { .. } => Self::NoRoute { message },
            MeshError::NoService(_)
            | MeshError::Offline(_)
            | MeshError::Network(_)
            | MeshError::Transport(_) => Self::Offline { message },
            MeshError::Refused { .. } | MeshError::RelayFailed(_) => {
                Self::ServiceRefused { message }
            }
            MeshError::Malformed(_)
            | MeshError::Protocol(_)
            | MeshError::NotFromPartner { .. }
            | MeshError::OtherDeployment { .. }
            | MeshError::UnknownLock(_) => Self::Rejected { message },
            MeshError::Wallet(_) | MeshError::MustRestore => Self::Wallet { message },
            MeshError::Journal(_) | MeshError::Migration(_) | MeshError::Stored(_) => {
                Self::Journal { message }
            }
        }
    }
}
