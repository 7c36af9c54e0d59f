//! Wire types shared by the Lanyard agent (on the phone) and the Lanyard server.
//!
//! Everything here is plain data with serde derives, plus the two pieces of pure
//! cryptography both sides need: Ed25519 signing of server payloads ([`signing`]) and
//! slow salted hashes for offline secrets ([`kdf`]). The JSON shapes are documented in
//! `docs/protocol.md`.

pub mod b64;
pub mod checkout;
pub mod command;
pub mod enroll;
pub mod events;
pub mod ids;
pub mod kdf;
pub mod os_version;
pub mod policy;
pub mod secret;
pub mod signing;
pub mod status;
pub mod sync;
pub mod time;

/// Version of the wire format. Bumped on any incompatible change; both sides refuse
/// envelopes of a version they do not know.
pub const PROTOCOL_VERSION: u32 = 1;

pub use checkout::{AuthorizeRequest, AuthorizeResponse, CheckoutGrant, Credential, DenialCode};
pub use command::{CommandEnvelope, CommandRejection, ServerCommand};
pub use events::{Cause, EventRecord, Report, Transition};
pub use ids::{AppId, CommandId, DeviceId, GrantId, LaunchpadId, RequestId};
pub use os_version::OsVersion;
pub use policy::Policy;
pub use secret::{BadgeId, Password, Pin};
pub use signing::{Signed, SigningKey, VerifyingKey};
pub use status::{DeviceStatus, DockLocation, UnlockMethod, UserRef};
pub use time::Timestamp;
