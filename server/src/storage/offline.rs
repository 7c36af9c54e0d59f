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

/// A registered badge that can be on offline lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineBadge {
    /// Its keyed hash (the badge's row).
    pub badge_hash: Vec<u8>,
    /// Its id, sealed under the server's sealing key.
    pub sealed: Vec<u8>,
    /// Whose it is.
    pub user: UserRef,
    /// The user's groups.
    pub groups: Vec<String>,
}

/// One phone's entry for one badge, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEntry {
    /// The badge's keyed hash.
    pub badge_hash: Vec<u8>,
    /// PBKDF2 of the id with the phone's salt, sealed for this phone and badge.
    pub sealed: Vec<u8>,
}

/// Offline badge copies, per-phone entries and lists.
pub trait OfflineStore: Clone + Send + Sync + 'static {
    /// Stores a badge's sealed id (found by its keyed hash). Returns whether the badge
    /// exists.
    fn set_offline_sealed(
        &self,
        badge_hash: Vec<u8>,
        sealed: Vec<u8>,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Whether a registered badge has no sealed id yet.
    fn needs_offline_sealed(
        &self,
        badge_hash: Vec<u8>,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// The list last built for a device.
    fn offline_list(
        &self,
        device_id: String,
    ) -> impl Future<Output = Result<Option<OfflineListRow>, StorageError>> + Send;
    /// The newest audit entry's id (every admin change writes one).
    fn audit_mark(&self) -> impl Future<Output = Result<i64, StorageError>> + Send;
    /// Every badge with a sealed id, with its user and their groups.
    fn offline_badges(
        &self,
    ) -> impl Future<Output = Result<Vec<OfflineBadge>, StorageError>> + Send;
    /// A device's entries computed at `iterations`.
    fn offline_entries(
        &self,
        device_id: String,
        iterations: u32,
    ) -> impl Future<Output = Result<Vec<SealedEntry>, StorageError>> + Send;
    /// Stores entries computed for a device (those whose badge or device is gone by now
    /// are skipped) and marks its list for rebuilding at its next sync.
    fn save_offline_entries(
        &self,
        device_id: String,
        iterations: u32,
        entries: Vec<SealedEntry>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Records the list built for a device.
    fn save_offline_list(
        &self,
        device_id: String,
        row: OfflineListRow,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
}
