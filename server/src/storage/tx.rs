//! The unit of work: what the domain reads and writes inside one transaction.
//!
//! The domain opens a transaction with [`super::Storage::transact`], decides with the
//! rows it reads here and writes its decision here; the backend commits all of it or
//! none. Every operation is plain storage — no rule lives behind this trait — so a
//! second backend implements it without re-implementing any rule.

use lanyard_protocol::events::Transition;
use lanyard_protocol::{CommandId, DeviceStatus, EventRecord, Signed, Timestamp};

use super::{NewCommand, StorageError};
use crate::domain::mdm_commands::MdmState;
use crate::model::{Device, MdmActivity};
use crate::workflows::run::NewRun;

/// The states a command moves through, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandState {
    /// Queued for the phone's next sync.
    Pending,
    /// Sent to the phone (by a sync, or inline as an authorize answer).
    Delivered,
    /// The phone reported it handled.
    Acknowledged,
    /// The phone refused it (or gave up the request it answers).
    Failed,
    /// Past its expiry before the phone took it.
    Expired,
    /// Replaced by a later command (a later checkout, a newer grant).
    Superseded,
}

impl CommandState {
    /// Every state, for the schema test.
    pub const ALL: [CommandState; 6] = [
        CommandState::Pending,
        CommandState::Delivered,
        CommandState::Acknowledged,
        CommandState::Failed,
        CommandState::Expired,
        CommandState::Superseded,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandState::Pending => "pending",
            CommandState::Delivered => "delivered",
            CommandState::Acknowledged => "acknowledged",
            CommandState::Failed => "failed",
            CommandState::Expired => "expired",
            CommandState::Superseded => "superseded",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<CommandState> {
        CommandState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Not yet answered by the phone.
    pub fn outstanding(self) -> bool {
        matches!(self, CommandState::Pending | CommandState::Delivered)
    }
}

/// A stored grant, as the grant lifecycle needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// Command id.
    pub command_id: String,
    /// Where it stands.
    pub state: CommandState,
    /// When it stops being valid for the phone.
    pub expires_at: Timestamp,
}

/// A phone docked in a cart, as the cart's choice needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartSlot {
    /// The phone.
    pub id: String,
    /// Its status.
    pub status: DeviceStatus,
    /// Its Device User.
    pub user: Option<String>,
    /// Marked lost or retired.
    pub out_of_service: bool,
    /// Battery percent.
    pub battery: Option<u8>,
    /// Its port.
    pub port: Option<u32>,
}

/// An enrollment token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentTokenRow {
    /// Uses left (`None`: unlimited until expiry).
    pub uses_left: Option<u32>,
    /// Expiry.
    pub expires_at: Timestamp,
    /// The cart its phones belong to.
    pub launchpad_id: Option<String>,
    /// The department that becomes their Device Home.
    pub department: Option<String>,
    /// A phone enrolling with it replaces the record holding its UDID and serial.
    pub replaces_existing: bool,
}

/// A cart's wait for the unplug of the phone it last granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartWait {
    /// The phone granted.
    pub device_id: String,
    /// Until when later taps wait for it.
    pub until: Timestamp,
    /// The grant the cart waits on.
    pub grant: Option<String>,
}

/// Who holds a device, as the server records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding<'a> {
    /// New status.
    pub status: DeviceStatus,
    /// New Device User.
    pub user: Option<&'a str>,
    /// The server grant the status rests on until the phone's own records arrive.
    pub grant: Option<&'a str>,
}

/// What the server mirrors of a phone after its records (`None`: unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorUpdate {
    /// Status.
    pub status: DeviceStatus,
    /// Device User.
    pub user: Option<String>,
    /// Whether the status still rests on the server's grant (else the grant is
    /// forgotten: the phone's own records hold it now).
    pub keep_grant: bool,
    /// Cart and port.
    pub location: Option<(Option<String>, Option<u32>)>,
    /// On a charger.
    pub docked: Option<bool>,
    /// Battery percent.
    pub battery: Option<u8>,
    /// OS version.
    pub os_version: Option<String>,
    /// Overdue.
    pub overdue: Option<bool>,
    /// Passcode state.
    pub passcode: Option<crate::model::PasscodeState>,
    /// Highest contiguous record sequence.
    pub last_seq: u64,
    /// When the phone was last heard from.
    pub last_contact: Timestamp,
}

/// A phone docked in a port, as a claim on that port is checked against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortOccupant {
    /// The phone.
    pub device_id: String,
    /// When it was last heard from.
    pub last_contact: Option<Timestamp>,
    /// The cart's hub reported it there.
    pub by_hub: bool,
}

/// Something a phone, a cart or a caller sent that the server refused, kept for IT.
#[derive(Debug, Clone)]
pub struct NewSecurityEvent<'a> {
    /// The phone concerned.
    pub device_id: Option<&'a str>,
    /// The cart concerned.
    pub launchpad_id: Option<&'a str>,
    /// Stable kind, e.g. `unknown_grant`, `udid_in_use`.
    pub kind: &'a str,
    /// What happened, in a sentence.
    pub detail: &'a str,
    /// The phone record that carried it.
    pub seq: Option<u64>,
}

/// A badge tapped at a cart and what the cart answered.
#[derive(Debug, Clone)]
pub struct NewCartTap<'a> {
    /// The cart.
    pub launchpad_id: &'a str,
    /// Whose badge it was, when known.
    pub username: Option<&'a str>,
    /// The beep code answered.
    pub beep: u8,
    /// Stable reason (see [`crate::model::CartTapRecord::reason`]).
    pub reason: &'a str,
    /// The phone granted, or the phone the cart waits on.
    pub device_id: Option<&'a str>,
    /// Its port.
    pub port: Option<u32>,
    /// What the cart said, in a sentence.
    pub detail: &'a str,
}

/// One MDM command's state (see [`crate::domain::mdm_commands`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdmCommandRow {
    /// Its CommandUUID.
    pub uuid: String,
    /// The phone it is for.
    pub device_id: Option<String>,
    /// The MDM UDID it went to.
    pub udid: String,
    /// Its RequestType.
    pub request_type: String,
    /// Where it stands.
    pub state: MdmState,
    /// The latest reason or error heard with a state change.
    pub detail: Option<String>,
    /// When it was requested (ms since epoch).
    pub requested_at: i64,
    /// Its last state change.
    pub updated_at: i64,
    /// The DeviceInformation sent to find out about it, once it stayed unanswered.
    pub probe: Option<String>,
    /// When its last push failed (it is queued; the device is pushed again later).
    pub push_failed_at: Option<i64>,
}

/// An enrolled phone that holds a UDID (by its own word or the MDM's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdidHolder {
    /// The phone.
    pub device_id: String,
    /// Its serial number.
    pub serial: Option<String>,
}

/// What the MDM's Authenticate said about a UDID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdmIdentity {
    /// The serial number it belongs to.
    pub serial: Option<String>,
    /// When the device (re-)enrolled in the MDM.
    pub authenticated_at: Timestamp,
    /// The phone record this Authenticate supersedes: the MDM had vouched for it
    /// already, so the phone was enrolled in the MDM again (erased) and the next
    /// Lanyard enrollment with this UDID and serial number replaces the record.
    pub supersedes: Option<String>,
}

/// What the retention job prunes (the audit log is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prunable {
    /// Phones' own records (their activity), by when they arrived.
    DeviceRecords,
    /// Commands the phone answered or that ended, by when they ended.
    SettledCommands,
    /// The MDM log.
    MdmActivity,
    /// Security events.
    SecurityEvents,
    /// Workflow runs that finished.
    FinishedRuns,
    /// Emails sent or given up.
    SettledEmails,
    /// The log of badges tapped at carts.
    CartTaps,
}

impl Prunable {
    /// Every kind.
    pub const ALL: [Prunable; 7] = [
        Prunable::DeviceRecords,
        Prunable::SettledCommands,
        Prunable::MdmActivity,
        Prunable::SecurityEvents,
        Prunable::FinishedRuns,
        Prunable::SettledEmails,
        Prunable::CartTaps,
    ];

    /// Its name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Prunable::DeviceRecords => "device_records",
            Prunable::SettledCommands => "commands",
            Prunable::MdmActivity => "mdm_activity",
            Prunable::SecurityEvents => "security_events",
            Prunable::FinishedRuns => "workflow_runs",
            Prunable::SettledEmails => "emails",
            Prunable::CartTaps => "cart_taps",
        }
    }
}

/// An audit entry to append.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// Who (a username, `token:label`, `lanyard` for the server itself).
    pub actor: &'a str,
    /// What, e.g. `device.grant_lapsed`.
    pub action: &'a str,
    /// The kind of record changed.
    pub target_kind: &'a str,
    /// Its id.
    pub target_id: &'a str,
    /// Before.
    pub before: Option<serde_json::Value>,
    /// After.
    pub after: Option<serde_json::Value>,
}

/// Repository operations inside one open transaction.
pub trait Tx {
    /// One device, read inside the transaction.
    fn device(&self, id: &str) -> Result<Option<Device>, StorageError>;
    /// The devices whose Device User is `username`.
    fn devices_held_by(&self, username: &str) -> Result<Vec<Device>, StorageError>;
    /// Whether an OS update or erase run is under way on the device.
    fn in_service_run(&self, device_id: &str) -> Result<bool, StorageError>;
    /// The phones last seen docked in a cart.
    fn cart_devices(&self, launchpad_id: &str) -> Result<Vec<CartSlot>, StorageError>;
    /// A cart's wait; `Err(NotFound)` for an unknown cart.
    fn cart_wait(&self, launchpad_id: &str) -> Result<Option<CartWait>, StorageError>;
    /// Sets (or ends) a cart's wait.
    fn set_cart_wait(
        &self,
        launchpad_id: &str,
        wait: Option<&CartWait>,
    ) -> Result<(), StorageError>;
    /// Stores a signed command; `request_id` names the phone request it answers.
    fn insert_command(
        &self,
        command: &NewCommand,
        request_id: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// Moves a command of `device_id` still outstanding to `to`; false when it was not
    /// outstanding (or not that device's).
    fn settle_command(
        &self,
        device_id: &str,
        command_id: &str,
        to: CommandState,
        now: Timestamp,
    ) -> Result<bool, StorageError>;
    /// Whether a device has commands it has not answered (pending or delivered, not
    /// expired).
    fn has_outstanding_commands(&self, device_id: &str) -> Result<bool, StorageError>;
    /// The outstanding grants of a device.
    fn outstanding_grants(&self, device_id: &str) -> Result<Vec<GrantRow>, StorageError>;
    /// The outstanding commands of a device answering phone request `request_id`.
    fn commands_for_request(
        &self,
        device_id: &str,
        request_id: &str,
    ) -> Result<Vec<String>, StorageError>;
    /// One grant (or any command) by id.
    fn grant(&self, command_id: &str) -> Result<Option<GrantRow>, StorageError>;
    /// The grant a device's status rests on.
    fn held_grant(&self, device_id: &str) -> Result<Option<GrantRow>, StorageError>;
    /// Devices whose status rests on a server grant, at most `limit`.
    fn devices_on_grants(&self, limit: u32) -> Result<Vec<String>, StorageError>;
    /// Records who holds a device.
    fn set_holding(&self, device_id: &str, holding: &Holding<'_>) -> Result<(), StorageError>;
    /// Consecutive wrong passwords for `username` and the lockout's end.
    fn password_failures(&self, username: &str) -> Result<Option<(u32, Timestamp)>, StorageError>;
    /// Stores (or, with `None`, clears) a username's failures.
    fn set_password_failures(
        &self,
        username: &str,
        failures: Option<(u32, Timestamp)>,
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// Forgets the failures of usernames quiet since `before`.
    fn prune_password_failures(&self, before: Timestamp) -> Result<usize, StorageError>;
    /// A failure counter's window start and count.
    fn attempt_window(&self, key: &str) -> Result<Option<(Timestamp, u32)>, StorageError>;
    /// Writes a failure counter.
    fn set_attempt_window(
        &self,
        key: &str,
        start: Timestamp,
        failures: u32,
    ) -> Result<(), StorageError>;
    /// Forgets counters whose window started before `before`.
    fn prune_attempt_windows(&self, before: Timestamp) -> Result<usize, StorageError>;
    /// Remembers a webhook event id; false when it was taken before. Forgets ids
    /// received before `forget_before`.
    fn remember_webhook(
        &self,
        event_id: &str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<bool, StorageError>;
    /// Records that the phone holding MDM UDID `udid` checked in with the MDM.
    fn mdm_seen(&self, udid: &str, now: Timestamp) -> Result<(), StorageError>;
    /// Adds an entry to the MDM activity log.
    fn insert_mdm_activity(&self, entry: &MdmActivity, now: Timestamp) -> Result<(), StorageError>;
    /// One MDM command's state.
    fn mdm_command(&self, uuid: &str) -> Result<Option<MdmCommandRow>, StorageError>;
    /// Starts an MDM command's state.
    fn insert_mdm_command(&self, row: &MdmCommandRow) -> Result<(), StorageError>;
    /// Moves an MDM command to `state` (the domain checked the precedence).
    fn set_mdm_command_state(
        &self,
        uuid: &str,
        state: MdmState,
        detail: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// A device's most recent MDM command of a RequestType.
    fn latest_mdm_command(
        &self,
        device_id: &str,
        request_type: &str,
    ) -> Result<Option<MdmCommandRow>, StorageError>;
    /// Marks (`Some`) or clears the failure of the last push for commands `uuids`.
    fn set_mdm_push_failed(
        &self,
        uuids: &[String],
        at: Option<Timestamp>,
    ) -> Result<(), StorageError>;
    /// Notes that `probe` was sent to find out about commands `uuids`.
    fn set_mdm_probe(&self, uuids: &[String], probe: &str) -> Result<(), StorageError>;
    /// The commands a probe was sent about.
    fn probed_by(&self, probe: &str) -> Result<Vec<MdmCommandRow>, StorageError>;
    /// A device's MDM commands still waiting on something.
    fn open_mdm_commands(&self, device_id: &str) -> Result<Vec<MdmCommandRow>, StorageError>;
    /// Marks (`Some(at)`) or clears the phone's having left the MDM.
    fn set_mdm_checked_out(
        &self,
        device_id: &str,
        at: Option<Timestamp>,
    ) -> Result<(), StorageError>;
    /// Deletes at most `limit` rows of `what` older than `before`; returns how many.
    fn prune(&self, what: Prunable, before: Timestamp, limit: u32) -> Result<usize, StorageError>;
    /// The enrollment token with this hash.
    fn enrollment_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<EnrollmentTokenRow>, StorageError>;
    /// Takes one use of a limited token.
    fn use_enrollment_token(&self, token_hash: &[u8]) -> Result<(), StorageError>;
    /// Creates an enrolled phone, checked in.
    fn insert_device(
        &self,
        device: &super::NewDevice,
        launchpad_id: Option<&str>,
        department: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// The phones in service (neither lost nor retired) that gave `udid` at enrollment
    /// or hold it from the MDM, newest first.
    fn udid_holders(&self, udid: &str) -> Result<Vec<UdidHolder>, StorageError>;
    /// What the MDM last said about `udid`.
    fn mdm_identity(&self, udid: &str) -> Result<Option<MdmIdentity>, StorageError>;
    /// Records what the MDM said about `udid`.
    fn set_mdm_identity(&self, udid: &str, identity: &MdmIdentity) -> Result<(), StorageError>;
    /// Makes `udid` the MDM UDID of `device_id` (and of no other phone).
    fn bind_mdm_udid(&self, device_id: &str, udid: &str) -> Result<(), StorageError>;
    /// Takes a phone out of service for good: retired, off every cart, its MDM UDID and
    /// its grant let go (its credential stops working).
    fn retire_device(&self, device_id: &str) -> Result<(), StorageError>;
    /// Hands what IT set on phone `from` to the phone `to` that replaces it: its Device
    /// Home (unless `to` has its own) and its custom attribute values. Returns the
    /// names of the attributes handed on.
    fn inherit_device(
        &self,
        from: &str,
        to: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StorageError>;
    /// The newest command of `kind` for `device_id` not yet answered and still valid at
    /// `now`: `(id, expires_at)`.
    fn outstanding_command(
        &self,
        device_id: &str,
        kind: &str,
        now: Timestamp,
    ) -> Result<Option<(String, Timestamp)>, StorageError>;
    /// Sets what IT marked the phone (`lost`, `retired`, or nothing).
    fn set_admin_state(&self, device_id: &str, state: Option<&str>) -> Result<(), StorageError>;
    /// Writes the readiness probe's row (proves the database takes writes).
    fn mark_ready(&self, now: Timestamp) -> Result<(), StorageError>;
    /// Appends to the audit log.
    fn audit(&self, entry: &AuditEntry<'_>, now: Timestamp) -> Result<(), StorageError>;
    /// Records a security event.
    fn record_security_event(
        &self,
        event: &NewSecurityEvent<'_>,
        now: Timestamp,
    ) -> Result<(), StorageError>;

    /// The policy stored, if any.
    fn policy(&self) -> Result<Option<lanyard_protocol::Policy>, StorageError>;
    /// Stores `policy` as the one in force.
    fn put_policy(
        &self,
        policy: &lanyard_protocol::Policy,
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// Records a badge tapped at a cart.
    fn record_cart_tap(&self, tap: &NewCartTap<'_>, now: Timestamp) -> Result<(), StorageError>;

    /// When a security event of `kind` was last recorded for `device_id`.
    fn last_security_event(
        &self,
        device_id: &str,
        kind: &str,
    ) -> Result<Option<Timestamp>, StorageError>;
    /// The user a grant issued to `device_id` hands the phone to (`None`: the server
    /// never issued that grant to that phone).
    fn issued_grant(&self, device_id: &str, grant_id: &str)
    -> Result<Option<String>, StorageError>;
    /// Whether a directory user exists.
    fn user_exists(&self, username: &str) -> Result<bool, StorageError>;
    /// A cart's port count (`None`: no such cart).
    fn launchpad_ports(&self, launchpad_id: &str) -> Result<Option<u32>, StorageError>;
    /// Where the cart's hub last reported the phone docked, if it did and the phone
    /// has not left since.
    fn hub_location(&self, device_id: &str) -> Result<Option<(String, u32)>, StorageError>;
    /// The phone (other than `except`) docked in a cart's port, most recently heard first.
    fn port_occupant(
        &self,
        launchpad_id: &str,
        port: u32,
        except: &str,
    ) -> Result<Option<PortOccupant>, StorageError>;
    /// Marks every phone but `except` as no longer docked in that port.
    fn vacate_port(&self, launchpad_id: &str, port: u32, except: &str) -> Result<(), StorageError>;

    /// Stores a device's records idempotently by `(device, seq)`. Returns the highest
    /// contiguous sequence now stored and the records it newly covers, in order (the
    /// caller writes the sequence with the mirror, or with [`Tx::touch_device`]).
    /// `last_seq` is the sequence the device row holds (read in this transaction).
    fn store_records(
        &self,
        device_id: &str,
        last_seq: u64,
        events: Vec<EventRecord>,
        now: Timestamp,
    ) -> Result<(u64, Vec<EventRecord>), StorageError>;
    /// Records a sync that changed nothing but the sequence and the last contact.
    fn touch_device(
        &self,
        device_id: &str,
        last_seq: u64,
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// Writes what the server mirrors of a phone.
    fn set_mirror(&self, device_id: &str, mirror: &MirrorUpdate) -> Result<(), StorageError>;
    /// Marks the commands a phone handled acknowledged (those still outstanding).
    fn acknowledge(
        &self,
        device_id: &str,
        handled: &[CommandId],
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// The commands to deliver to a device now, marked delivered; expired ones are
    /// marked expired and left out.
    fn take_commands(&self, device_id: &str, now: Timestamp) -> Result<Vec<Signed>, StorageError>;

    /// Writes status changes to the transition outbox (a repeat of `(device, seq)` is
    /// ignored).
    fn queue_transitions(
        &self,
        device_id: &str,
        transitions: &[(u64, Transition)],
        now: Timestamp,
    ) -> Result<(), StorageError>;
    /// A device's transitions still in the outbox, in sequence order.
    fn queued_transitions(&self, device_id: &str) -> Result<Vec<(u64, Transition)>, StorageError>;
    /// Removes one outbox entry; false when another consumer took it first.
    fn consume_transition(&self, device_id: &str, seq: u64) -> Result<bool, StorageError>;
    /// Devices with transitions in the outbox, at most `limit`.
    fn devices_with_transitions(&self, limit: u32) -> Result<Vec<String>, StorageError>;
    /// Creates workflow runs (as [`crate::storage::WorkflowStore::create_runs`]).
    fn create_runs(&self, runs: Vec<NewRun>, now: Timestamp) -> Result<Vec<i64>, StorageError>;
}
