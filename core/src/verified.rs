//! Proof that a server payload's signature was checked against the pinned key.
//!
//! Signature checks are pure but cost tens of microseconds, so they run once at the
//! edge (where the signed bytes arrive) instead of inside every call to `handle`. The
//! core only accepts [`Verified`] values, which can only be made by checking a signature.

use lanyard_protocol::signing::SignatureError;
use lanyard_protocol::{Signed, VerifyingKey};
use serde::de::DeserializeOwned;
use std::ops::Deref;

/// A payload whose Ed25519 signature verified against a server key, with the signed
/// bytes it came from (the store keeps those, to check them again on every start).
#[derive(Clone, Debug, PartialEq)]
pub struct Verified<T> {
    inner: T,
    source: Signed,
}

impl<T: DeserializeOwned> Verified<T> {
    /// Verifies `signed` with `key` and parses its payload.
    pub fn open(signed: &Signed, key: &VerifyingKey) -> Result<Self, SignatureError> {
        Ok(Verified {
            inner: signed.open(key)?,
            source: signed.clone(),
        })
    }
}

impl<T> Verified<T> {
    /// The signed payload exactly as received.
    pub fn signed(&self) -> &Signed {
        &self.source
    }

    /// The verified value.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.inner
    }
}
