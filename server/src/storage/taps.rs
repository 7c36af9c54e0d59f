//! The storage of the cart tap log: every badge tapped at a cart's reader and what the
//! cart answered, granted or refused and why (written by [`crate::domain::taps`]).

use std::future::Future;

use super::StorageError;
use crate::model::{CartTapRecord, Page};

/// Which taps to list.
#[derive(Debug, Clone, Default)]
pub struct TapFilter {
    /// Only this cart's.
    pub launchpad_id: Option<String>,
    /// Only this user's.
    pub username: Option<String>,
    /// Only taps answered with this reason.
    pub reason: Option<String>,
    /// `Some(true)`: only refused taps; `Some(false)`: only granted ones.
    pub refused: Option<bool>,
    /// Only taps at or after this time (ms since epoch).
    pub since: Option<i64>,
    /// Only taps before this time (ms since epoch).
    pub until: Option<i64>,
}

/// The cart tap log.
pub trait TapStore: Clone + Send + Sync + 'static {
    /// Taps matching `filter`, newest first, older than `cursor` (a tap id).
    fn list_cart_taps(
        &self,
        filter: TapFilter,
        cursor: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = Result<Page<CartTapRecord>, StorageError>> + Send;
}
