//! The storage of security events: what a phone, a cart or a caller sent that the
//! server refused (a claim it could not check, a UDID already enrolled, a burst of
//! unknown badges), kept for IT.

use std::future::Future;

use lanyard_protocol::Timestamp;

use super::StorageError;
use crate::model::{Page, SecurityEvent};

/// Which security events to list.
#[derive(Debug, Clone, Default)]
pub struct SecurityFilter {
    /// Only this phone's.
    pub device_id: Option<String>,
    /// Only this cart's.
    pub launchpad_id: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
}

/// Security events.
pub trait SecurityStore: Clone + Send + Sync + 'static {
    /// Events matching `filter`, newest first, older than `cursor` (an event id).
    fn list_security_events(
        &self,
        filter: SecurityFilter,
        cursor: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<SecurityEvent>, StorageError>> + Send;
    /// A failure counter's window start and count (see [`crate::domain::attempts`]).
    fn attempt_window(
        &self,
        key: String,
    ) -> impl Future<Output = Result<Option<(Timestamp, u32)>, StorageError>> + Send;
}
