//! HTTP handlers: the admin API (`/api/v1`) and the device API (`/device/v1`).

pub mod admin;
pub mod attributes;
pub mod client_addr;
pub mod credentials;
pub mod device;
pub mod launchpad;
pub mod logs;
pub mod serve;
pub mod workflow_edits;
pub mod workflows;
