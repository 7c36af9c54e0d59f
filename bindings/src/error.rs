//! The two error types that cross the boundary: [`ApiError`] from the agent to the host,
//! [`HostError`] from the host's capabilities back into Rust.

use lanyard_agent::enrollment::InviteError;
use lanyard_agent::secrets::SecretStoreError;
use lanyard_agent::store::StoreError;
use lanyard_agent::sync::{EnrollError, TransportError};

/// What went wrong, in terms the locker app acts on. Each variant is a different thing
/// for the app to do (show the enrollment screen, retry later, report a fault); details
/// travel as text in `reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ApiError {
    /// The enrollment link or managed configuration is not usable: ask IT for a valid one.
    #[error("invalid enrollment input: {reason}")]
    InvalidEnrollment {
        /// What is wrong with it.
        reason: String,
    },
    /// The server refused enrollment (token unknown, used up or revoked): ask IT.
    #[error("enrollment refused ({code}): {reason}")]
    EnrollmentRefused {
        /// The server's stable error code.
        code: String,
        /// The server's explanation.
        reason: String,
    },
    /// This phone is already enrolled; enrolling again needs a reset by IT.
    #[error("this device is already enrolled")]
    AlreadyEnrolled,
    /// The call needs an enrolled phone: show the enrollment screen.
    #[error("this device is not enrolled")]
    NotEnrolled,
    /// The server could not be reached or failed; the agent keeps working offline and the
    /// call may be retried later.
    #[error("server unreachable: {reason}")]
    ServerUnreachable {
        /// What the network layer said.
        reason: String,
    },
    /// A value from the host was refused before it reached the core.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which argument.
        field: String,
        /// Why.
        reason: String,
    },
    /// The agent's local database failed (full disk, corruption). Nothing was applied.
    #[error("local storage failed: {reason}")]
    Storage {
        /// The database's message.
        reason: String,
    },
    /// The host's secret store (Keychain) failed.
    #[error("secret store failed: {reason}")]
    SecretStore {
        /// What the host reported.
        reason: String,
    },
    /// The agent was shut down; open a new one.
    #[error("the agent was shut down")]
    Closed,
    /// A sync task is already running for this agent; stop it before starting another.
    #[error("a sync task is already running")]
    SyncAlreadyRunning,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Storage {
            reason: e.to_string(),
        }
    }
}

impl From<SecretStoreError> for ApiError {
    fn from(e: SecretStoreError) -> Self {
        ApiError::SecretStore { reason: e.0 }
    }
}

impl From<InviteError> for ApiError {
    fn from(e: InviteError) -> Self {
        ApiError::InvalidEnrollment {
            reason: e.to_string(),
        }
    }
}

impl From<TransportError> for ApiError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Rejected { code, message, .. } => ApiError::EnrollmentRefused {
                code,
                reason: message,
            },
            other => ApiError::ServerUnreachable {
                reason: other.to_string(),
            },
        }
    }
}

impl From<EnrollError> for ApiError {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::Transport(t) => t.into(),
            EnrollError::Secrets(s) => s.into(),
            EnrollError::Store(s) => s.into(),
            EnrollError::Refused(reason) => ApiError::EnrollmentRefused {
                code: "refused_by_device".into(),
                reason,
            },
        }
    }
}

/// Why a host capability (screen, app logout, Keychain, notification, clock) failed.
/// Host implementations throw it; anything else they throw arrives as `Unexpected`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum HostError {
    /// The capability failed in a way the host understood.
    #[error("host capability failed: {reason}")]
    Failed {
        /// What the host reports.
        reason: String,
    },
    /// The host raised something the bindings did not expect.
    #[error("host capability failed unexpectedly: {reason}")]
    Unexpected {
        /// The foreign exception's description.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for HostError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        HostError::Unexpected { reason: e.reason }
    }
}

impl HostError {
    /// The host's description, whichever variant.
    pub fn reason(&self) -> &str {
        match self {
            HostError::Failed { reason } | HostError::Unexpected { reason } => reason,
        }
    }
}
