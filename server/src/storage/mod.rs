//! The storage boundary. Handlers see only this trait; `sqlite` implements it today and
//! a PostgreSQL backend can implement it for sites that outgrow one node.

pub mod credentials;
pub mod offline;
pub mod security;
pub mod sqlite;
pub mod taps;
pub mod tx;
pub mod workflows;

pub use offline::OfflineStore;
pub use tx::Tx;
pub use workflows::{NewEmail, WorkflowStore};

use std::future::Future;

use lanyard_protocol::enroll::DeviceInfo;
use lanyard_protocol::kdf::SlowHash;
use lanyard_protocol::{CommandId, EventRecord, Policy, Signed, Timestamp, UserRef};

use crate::db::DbError;
use crate::model::{
    AttributeDef, AttributeTarget, AuditRecord, CommandRecord, Device, Launchpad, MdmActivity,
    Page, Role, User,
};

/// Why a storage call failed. The variants name what happened, never which backend:
/// a second backend maps its own errors onto the same five meanings.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No such record.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique value is taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The request cannot be honoured in the current state (e.g. an exhausted token).
    #[error("{0}")]
    Rejected(String),
    /// The record changed since the caller read it (a patch merged into an older
    /// version): read it again and retry.
    #[error("{0} changed meanwhile")]
    Changed(&'static str),
    /// The record is still in use (a cart with phones in it, a user holding a phone):
    /// removing it would leave records pointing at nothing.
    #[error("{0}")]
    InUse(String),
    /// The database could not be reached or failed (busy, disk full, writer gone).
    #[error(transparent)]
    Unavailable(#[from] DbError),
    /// A stored record cannot be read back: the database holds something this server
    /// did not write (or a newer one did). Logged and answered as a 500, never as the
    /// caller's fault.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// Something else on the server's side failed (keys, randomness).
    #[error("{0}")]
    Internal(String),
}

impl From<crate::db::SqlError> for StorageError {
    fn from(e: crate::db::SqlError) -> Self {
        StorageError::Unavailable(DbError::Sql(e))
    }
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Email.
    pub email: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Device limit.
    pub device_limit: u32,
    /// Password hash, if a password is set.
    pub password: Option<SlowHash>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New email (`Some(None)` clears it).
    pub email: Option<Option<String>>,
    /// New groups.
    pub groups: Option<Vec<String>>,
    /// New device limit.
    pub device_limit: Option<u32>,
    /// New password hash (`Some(None)` removes the password).
    pub password: Option<Option<SlowHash>>,
}

/// Changes to a cart; `None` leaves a field as it is, `Some(None)` clears an attribute.
#[derive(Debug, Clone, Default)]
pub struct LaunchpadPatch {
    /// New name.
    pub name: Option<String>,
    /// New port count.
    pub ports: Option<u32>,
    /// Department.
    pub department: Option<Option<String>>,
    /// Facility.
    pub facility: Option<Option<String>>,
    /// Launchpad Manager.
    pub manager: Option<Option<String>>,
    /// Timezone.
    pub timezone: Option<Option<String>>,
}

/// An enrollment token to create.
#[derive(Debug, Clone)]
pub struct NewEnrollmentToken {
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// What it is for.
    pub label: String,
    /// `None`: unlimited until expiry.
    pub uses: Option<u32>,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Cart the enrolled devices belong to.
    pub launchpad_id: Option<String>,
    /// Department (becomes Device Home).
    pub department: Option<String>,
    /// A phone enrolling with it replaces the record holding its UDID and serial.
    pub replaces_existing: bool,
}

/// A device to create at enrollment.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// Its id.
    pub id: String,
    /// SHA-256 of its credential.
    pub credential_hash: Vec<u8>,
    /// What it said about itself.
    pub info: DeviceInfo,
}

/// Filters for the device list.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    /// Wire status name.
    pub status: Option<String>,
    /// Last cart.
    pub launchpad: Option<String>,
    /// Holder.
    pub user: Option<String>,
    /// Department of the cart it was last docked in.
    pub department: Option<String>,
    /// Only overdue (or only not overdue) devices.
    pub overdue: Option<bool>,
    /// Only wandering devices: last docked in a cart whose Department differs from the
    /// device's Device Home (or only those that are not).
    pub wandering: Option<bool>,
    /// `lost` or `retired`.
    pub admin_state: Option<String>,
    /// Passcode state (`present`, `clearing`, `clear_failed`, `absent`).
    pub passcode: Option<String>,
    /// Only phones that left the MDM (or only the others).
    pub mdm_checked_out: Option<bool>,
    /// Only phones on a charger now (or only the others).
    pub docked: Option<bool>,
    /// Search: the device id, serial number or UDID (exactly, any case), the holder's
    /// username or email (exactly), or part of the device's name.
    pub search: Option<String>,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Actors containing this (any case), e.g. a token's label.
    pub actor: Option<String>,
    /// This action, or every action under it when it ends with `.` (`device.`).
    pub action: Option<String>,
    /// The kind of record changed (`device`, `user`, `launchpad`, `policy`, …).
    pub target_kind: Option<String>,
    /// Its id.
    pub target_id: Option<String>,
    /// At or after (ms since epoch).
    pub since: Option<i64>,
    /// Before (ms since epoch).
    pub until: Option<i64>,
}

/// `text` as a `LIKE … ESCAPE '\'` pattern matching any value containing it (any case:
/// compare against `lower(column)`).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A command to queue for a device.
#[derive(Debug, Clone)]
pub struct NewCommand {
    /// Its id.
    pub id: CommandId,
    /// Device.
    pub device_id: String,
    /// Payload type name.
    pub kind: &'static str,
    /// Signed envelope.
    pub signed: Signed,
    /// Expiry.
    pub expires_at: Timestamp,
    /// `pending` (to be delivered by sync) or `delivered` (answered inline).
    pub delivered: bool,
    /// For a grant: its id and the username it hands the phone to (what the phone's
    /// record of the checkout is checked against).
    pub grant: Option<(lanyard_protocol::GrantId, String)>,
}

/// An API token's identity.
#[derive(Debug, Clone)]
pub struct ApiToken {
    /// Row id.
    pub id: i64,
    /// Its role.
    pub role: Role,
    /// What it is for.
    pub label: String,
    /// Last used, to the minute (ms since epoch).
    pub last_used_at: Option<i64>,
}

/// Everything the server stores. Methods are async so a networked backend fits too.
pub trait Storage:
    WorkflowStore
    + OfflineStore
    + security::SecurityStore
    + taps::TapStore
    + credentials::CredentialStore
    + Clone
    + Send
    + Sync
    + 'static
{
    /// Rewrites the store's files so that data just replaced or deleted (a secret sealed
    /// in place) leaves no copy on disk. Slow and exclusive: for start-up upgrades.
    fn scrub(&self) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Runs `work` in one transaction: everything it reads and writes through the
    /// [`Tx`] commits together once it returns `Ok`, or not at all. The domain opens
    /// one wherever it checks and then acts. `work` runs off the async threads and
    /// must not block on anything but the database.
    fn transact<T, F>(&self, work: F) -> impl Future<Output = Result<T, StorageError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&dyn Tx) -> Result<T, StorageError> + Send + 'static;

    /// The API token with this hash, if it exists, is not revoked and has not expired
    /// at `now`.
    fn api_token(
        &self,
        token_hash: Vec<u8>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<ApiToken>, StorageError>> + Send;
    /// Stores a new API token.
    fn create_api_token(
        &self,
        token_hash: Vec<u8>,
        role: Role,
        label: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Creates a user.
    fn create_user(
        &self,
        user: NewUser,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<User, StorageError>> + Send;
    /// One user.
    fn get_user(&self, username: String)
    -> impl Future<Output = Result<User, StorageError>> + Send;
    /// Users in username order, after `cursor`; with `search`, only those whose
    /// username, display name or email contains it (any case).
    fn list_users(
        &self,
        search: Option<String>,
        cursor: Option<String>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<User>, StorageError>> + Send;
    /// Registers a badge (by keyed hash) for a user.
    fn add_badge(
        &self,
        username: String,
        badge_hash: Vec<u8>,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Changes a user, audited with before and after.
    fn update_user(
        &self,
        username: String,
        patch: UserPatch,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<User, StorageError>> + Send;
    /// Deletes a user and their badges, audited.
    fn delete_user(
        &self,
        username: String,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Revokes one badge (by keyed hash) of a user, or all of them with `None`, audited.
    fn revoke_badges(
        &self,
        username: String,
        badge_hash: Option<Vec<u8>>,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<User, StorageError>> + Send;
    /// The user a badge belongs to.
    fn user_by_badge(
        &self,
        badge_hash: Vec<u8>,
    ) -> impl Future<Output = Result<Option<(UserRef, u32)>, StorageError>> + Send;
    /// A user's password hash and limit, for password checkouts.
    fn user_password(
        &self,
        username: String,
    ) -> impl Future<Output = Result<Option<(UserRef, u32, Option<SlowHash>)>, StorageError>> + Send;

    /// Creates a cart.
    fn create_launchpad(
        &self,
        launchpad: Launchpad,
        credential_hash: Vec<u8>,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<Launchpad, StorageError>> + Send;
    /// Changes a cart, audited with before and after.
    fn update_launchpad(
        &self,
        id: String,
        patch: LaunchpadPatch,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<Launchpad, StorageError>> + Send;
    /// Deletes a cart (its reader credential and enrollment tokens go with it), audited.
    fn delete_launchpad(
        &self,
        id: String,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// The cart whose reader holds this credential.
    fn launchpad_by_credential(
        &self,
        credential_hash: Vec<u8>,
    ) -> impl Future<Output = Result<Option<Launchpad>, StorageError>> + Send;
    /// A cart's hub saw a phone arrive at or leave `port` (identified by serial when the
    /// hub can read it, else by what was last docked there). Returns the device, if known.
    fn launchpad_port_event(
        &self,
        launchpad_id: String,
        port: u32,
        serial: Option<String>,
        docked: bool,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;
    /// Carts in id order.
    fn list_launchpads(
        &self,
        cursor: Option<String>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<Launchpad>, StorageError>> + Send;

    /// Stores an enrollment token.
    fn create_enrollment_token(
        &self,
        token: NewEnrollmentToken,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// The device holding this credential.
    fn device_by_credential(
        &self,
        credential_hash: Vec<u8>,
    ) -> impl Future<Output = Result<Option<Device>, StorageError>> + Send;
    /// One device.
    fn get_device(&self, id: String) -> impl Future<Output = Result<Device, StorageError>> + Send;
    /// Devices in id order, filtered.
    fn list_devices(
        &self,
        filter: DeviceFilter,
        cursor: Option<String>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<Device>, StorageError>> + Send;
    /// Sets (or clears, with `None`) IT's lost / retired mark, audited.
    fn set_admin_state(
        &self,
        device_id: String,
        state: Option<&'static str>,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<Device, StorageError>> + Send;
    /// The device with this serial number.
    fn device_by_serial(
        &self,
        serial: String,
    ) -> impl Future<Output = Result<Option<Device>, StorageError>> + Send;
    /// Sets (or clears) a device's Device Home, audited.
    fn set_device_home(
        &self,
        device_id: String,
        home: Option<String>,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<Device, StorageError>> + Send;
    /// A device's most recent commands and their states, newest first.
    fn device_commands(
        &self,
        device_id: String,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<CommandRecord>, StorageError>> + Send;
    /// Stores a device's sealed MDM UnlockToken (replacing an older one).
    fn store_unlock_token(
        &self,
        udid: String,
        sealed: Vec<u8>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// A device's sealed MDM UnlockToken.
    fn unlock_token(
        &self,
        udid: String,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StorageError>> + Send;
    /// Appends to the MDM activity log (`id` and `at` of the argument are ignored).
    fn record_mdm_activity(
        &self,
        entry: MdmActivity,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// One MDM command's state.
    fn mdm_command(
        &self,
        uuid: String,
    ) -> impl Future<Output = Result<Option<crate::storage::tx::MdmCommandRow>, StorageError>> + Send;
    /// A device's MDM commands, newest first, at most `limit`.
    fn device_mdm_commands(
        &self,
        device_id: String,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<crate::storage::tx::MdmCommandRow>, StorageError>> + Send;
    /// MDM commands still waiting whose last push failed before `before`.
    fn mdm_push_due(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<crate::storage::tx::MdmCommandRow>, StorageError>> + Send;
    /// MDM commands unanswered since before `before` that no probe asked about yet.
    fn unprobed_mdm_commands(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<crate::storage::tx::MdmCommandRow>, StorageError>> + Send;
    /// MDM commands still waiting on something, requested before `before`, oldest
    /// first, at most `limit`.
    fn overdue_mdm_commands(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<crate::storage::tx::MdmCommandRow>, StorageError>> + Send;
    /// A device's MDM activity, oldest first.
    fn mdm_activity(
        &self,
        device_id: String,
    ) -> impl Future<Output = Result<Vec<MdmActivity>, StorageError>> + Send;
    /// The device with this MDM UDID.
    fn device_by_udid(
        &self,
        udid: String,
    ) -> impl Future<Output = Result<Option<Device>, StorageError>> + Send;
    /// How many devices are in each status.
    fn device_status_counts(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, u64)>, StorageError>> + Send;
    /// Queues (or records) a signed command that grants nothing (grants are decided in
    /// [`crate::domain::grants`]). With an `actor` (an admin action), the audit log
    /// records it in the same transaction.
    fn insert_command(
        &self,
        command: NewCommand,
        actor: Option<String>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Whether a device has commands not yet acknowledged (pending or delivered), read
    /// without a write transaction.
    fn commands_outstanding(
        &self,
        device_id: String,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Undelivered and unacknowledged commands for a device, marked delivered; expired
    /// ones are marked expired and left out.
    fn take_commands(
        &self,
        device_id: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Signed>, StorageError>> + Send;

    /// Defines a custom attribute, audited.
    fn create_attribute(
        &self,
        def: AttributeDef,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<AttributeDef, StorageError>> + Send;
    /// Every custom attribute definition.
    fn list_attributes(
        &self,
    ) -> impl Future<Output = Result<Vec<AttributeDef>, StorageError>> + Send;
    /// Sets (or, with `None`, clears) a custom attribute's value on one device or
    /// launchpad, checking its type; audited.
    fn set_attribute(
        &self,
        target: AttributeTarget,
        entity_id: String,
        name: String,
        value: Option<serde_json::Value>,
        actor: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// A device's or launchpad's custom attribute values.
    fn attribute_values(
        &self,
        target: AttributeTarget,
        entity_id: String,
    ) -> impl Future<
        Output = Result<std::collections::BTreeMap<String, serde_json::Value>, StorageError>,
    > + Send;
    /// Audit log entries matching `filter`, newest first, before `cursor` (an entry id).
    fn list_audit(
        &self,
        filter: AuditFilter,
        cursor: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<AuditRecord>, StorageError>> + Send;
    /// A device's journey: its stored events in sequence order, after `cursor`.
    /// Only records made (on the phone's clock) within `between` (at or after its start,
    /// before its end; ms since epoch), when given.
    fn device_activity(
        &self,
        device_id: String,
        between: (Option<i64>, Option<i64>),
        cursor: Option<u64>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<EventRecord>, StorageError>> + Send;

    /// Takes (or renews) the lease on background job `job` for `holder` until `until`,
    /// unless another holder's lease is still running at `now`. `true`: `holder` runs
    /// the job's next pass.
    fn take_lease(
        &self,
        job: &'static str,
        holder: String,
        now: Timestamp,
        until: Timestamp,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Gives up every lease `holder` has (a server stopping: the others take its jobs
    /// over at their next pass instead of waiting for the leases to run out), or every
    /// lease with `None` (a lone server starting on its own file after a crash).
    fn release_leases(
        &self,
        holder: Option<String>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The policy in force (created with defaults on first run).
    fn current_policy(&self) -> impl Future<Output = Result<Policy, StorageError>> + Send;
    /// The stored policy's version (none before first use): what caches compare.
    fn policy_version(&self) -> impl Future<Output = Result<Option<u64>, StorageError>> + Send;
}
