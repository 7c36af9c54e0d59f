//! Everything the core asks the host to do.

use lanyard_protocol::policy::AppLogout;
use lanyard_protocol::{AuthorizeRequest, EventRecord, Timestamp};

use crate::screen::Screen;

/// One instruction to the host. The host persists the new state and any
/// [`Effect::Record`] together, in one transaction, before it runs the other effects.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Append this record to the durable outbox for the server.
    Record(EventRecord),
    /// Show this screen (locked, checked out, ...). Emitted only when it changes.
    ShowScreen(Screen),
    /// Send this authorization request (badge or password) to the server; answer with
    /// a command, or with [`crate::Event::AuthorizationFailed`].
    Authorize(AuthorizeRequest),
    /// Bring a blank page to the front (before the apps are logged out at check-in), so
    /// nothing of the last user's screen stays visible on older iOS versions.
    OpenBlankPage,
    /// Log these apps out, then report each with [`crate::Event::AppLogoutFinished`].
    LogOutApps {
        /// The apps, in order.
        apps: Vec<AppLogout>,
    },
    /// Ask the server to clear the passcode through the MDM (first request or a retry).
    RequestPasscodeClear {
        /// 1 for the first request.
        attempt: u32,
    },
    /// Show a local alert (notification) to whoever holds the phone.
    RaiseAlert {
        /// The text.
        message: String,
    },
    /// Sync now rather than at the next interval (something urgent to report).
    RequestSync,
    /// Deliver [`crate::Event::Tick`] at (or soon after) this instant.
    ScheduleWake {
        /// When.
        at: Timestamp,
    },
}
