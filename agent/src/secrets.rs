//! Secrets that must outlive the app and stay out of the agent database: the device
//! credential issued at enrollment. The host provides the storage (Keychain on iOS)
//! through [`SecretStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use lanyard_protocol::DeviceId;

/// Why the host's secret store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret store: {0}")]
pub struct SecretStoreError(pub String);

/// Host-provided storage for secrets (Keychain on iOS, an encrypted file elsewhere).
pub trait SecretStore: Send + Sync {
    /// The value under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SecretStoreError>;
    /// Stores `value` under `key`, replacing what was there.
    fn put(&self, key: &str, value: &[u8]) -> Result<(), SecretStoreError>;
    /// Removes `key` (no error if absent).
    fn delete(&self, key: &str) -> Result<(), SecretStoreError>;
}

/// A secret store in memory, for tests and the simulator.
#[derive(Default)]
pub struct MemorySecretStore {
    values: Mutex<HashMap<String, Vec<u8>>>,
}

impl SecretStore for MemorySecretStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SecretStoreError> {
        let values = self
            .values
            .lock()
            .map_err(|_| SecretStoreError("poisoned".into()))?;
        Ok(values.get(key).cloned())
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), SecretStoreError> {
        let mut values = self
            .values
            .lock()
            .map_err(|_| SecretStoreError("poisoned".into()))?;
        values.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), SecretStoreError> {
        let mut values = self
            .values
            .lock()
            .map_err(|_| SecretStoreError("poisoned".into()))?;
        values.remove(key);
        Ok(())
    }
}

/// The key the device credential is stored under.
pub const DEVICE_CREDENTIAL_KEY: &str = "lanyard.device-credential";

/// The credential a device presents to the server on every request.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCredential {
    /// The device it belongs to.
    pub device_id: DeviceId,
    secret: String,
}

impl fmt::Debug for DeviceCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceCredential({}, <redacted>)", self.device_id)
    }
}

impl DeviceCredential {
    /// Wraps the credential the server issued.
    pub fn new(device_id: DeviceId, secret: impl Into<String>) -> Self {
        DeviceCredential {
            device_id,
            secret: secret.into(),
        }
    }

    /// The `Authorization` header value.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.secret)
    }

    /// Saves it in the host's secret store.
    pub fn save(&self, store: &dyn SecretStore) -> Result<(), SecretStoreError> {
        let value = format!("{}\n{}", self.device_id, self.secret);
        store.put(DEVICE_CREDENTIAL_KEY, value.as_bytes())
    }

    /// Loads it from the host's secret store, if enrolled.
    pub fn load(store: &dyn SecretStore) -> Result<Option<Self>, SecretStoreError> {
        let Some(bytes) = store.get(DEVICE_CREDENTIAL_KEY)? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| SecretStoreError("credential is not text".into()))?;
        let (id, secret) = text
            .split_once('\n')
            .ok_or_else(|| SecretStoreError("credential is malformed".into()))?;
        Ok(Some(DeviceCredential::new(DeviceId::new(id), secret)))
    }

    /// Forgets it (on unenrollment).
    pub fn forget(store: &dyn SecretStore) -> Result<(), SecretStoreError> {
        store.delete(DEVICE_CREDENTIAL_KEY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_roundtrips_through_the_secret_store_and_never_prints() {
        let store = MemorySecretStore::default();
        assert_eq!(DeviceCredential::load(&store).unwrap(), None);
        let c = DeviceCredential::new("dev-1".into(), "s3cr3t-value");
        c.save(&store).unwrap();
        assert_eq!(DeviceCredential::load(&store).unwrap(), Some(c.clone()));
        assert_eq!(c.authorization(), "Bearer s3cr3t-value");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        DeviceCredential::forget(&store).unwrap();
        assert_eq!(DeviceCredential::load(&store).unwrap(), None);
        store.put(DEVICE_CREDENTIAL_KEY, b"no-newline").unwrap();
        assert!(DeviceCredential::load(&store).is_err());
    }
}
