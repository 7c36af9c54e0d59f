//! Workflows and automation rules: what they are ([`model`]), how they are checked
//! ([`validate`]), their `[Placeholder]`s ([`placeholder`]) and seed 000's standard set
//! ([`standard`]).

pub mod engine;
pub mod model;
pub mod placeholder;
pub mod policy;
pub mod run;
pub mod schedule;
pub mod secrets;
pub mod standard;
pub mod triggers;
pub mod validate;

/// An id made from a name: `Incorrect Device Home` → `incorrect-device-home`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "item".into() } else { out }
}
