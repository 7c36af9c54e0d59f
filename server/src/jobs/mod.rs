//! Background work the server does by itself. Each job is a loop over a pass that is
//! safe to run again (and, with a second replica, at the same time): what a pass
//! does is decided inside the domain's transactions, never by the job holding state.

pub(crate) mod grant_sweeper;
pub(crate) mod transitions;
