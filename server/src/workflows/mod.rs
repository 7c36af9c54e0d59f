//! Workflows and automation rules: what they are ([`model`]), how they are checked
//! ([`validate`]), their `[Placeholder]`s ([`placeholder`]) and seed 000's standard set
//! ([`standard`]).

pub mod engine;
pub mod model;
pub mod placeholder;
pub mod policy;
pub mod run;
pub mod schedule;
pub mod standard;
pub mod triggers;
pub mod validate;
