//! The storage of offline badge hashes and of the offline list each device last got.

use std::future::Future;

use lanyard_protocol::UserRef;

use super::StorageError;

/// The offline list last built for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineListRow {
    /// Its version (increases per device).
    pub version: u64,
    /// SHA-256 over its entries, to tell whether a rebuild changed anything.
    pub digest: Vec<u8>,
    /// The newest audit entry when it was built: any admin change since (a badge
    /// revoked, a user's groups edited, a Device Home moved) means rebuild.
    pub audit_mark: i64,
    /// When it was built (ms since epoch).
    pub built_at: i64,
    /// Until when the device may use it.
    pub valid_until: i64,
}

/// One badge allowed offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineBadge {
    /// PBKDF2 of the badge id with the site salt.
    pub hash: Vec<u8>,
    /// Its iterations.
    pub iterations: u32,
    /// Whose it is.
    pub user: UserRef,
    /// The user's groups.
    pub groups: Vec<String>,
}

/// Offline hashes and lists.
pub trait OfflineStore: Clone + Send + Sync + 'static {
    /// Stores a badge's offline hash (found by its keyed hash). Returns whether the
    /// badge exists.
    fn set_offline_hash(
        &self,
        badge_hash: Vec<u8>,
        offline_hash: Vec<u8>,
        iterations: u32,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Whether a registered badge has no offline hash at `iterations` yet.
    fn needs_offline_hash(
        &self,
        badge_hash: Vec<u8>,
        iterations: u32,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// The list last built for a device.
    fn offline_list(
        &self,
        device_id: String,
    ) -> impl Future<Output = Result<Option<OfflineListRow>, StorageError>> + Send;
    /// The newest audit entry's id (every admin change writes one).
    fn audit_mark(&self) -> impl Future<Output = Result<i64, StorageError>> + Send;
    /// Every badge with an offline hash, with its user and their groups.
    fn offline_badges(
        &self,
    ) -> impl Future<Output = Result<Vec<OfflineBadge>, StorageError>> + Send;
    /// Records the list built for a device.
    fn save_offline_list(
        &self,
        device_id: String,
        row: OfflineListRow,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
}
