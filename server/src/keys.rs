//! The server's secrets, created on first run in the data directory with mode 0600:
//! the Ed25519 key that signs every command and policy, and the HMAC key that turns raw
//! badge ids into the keyed hashes the database stores.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use lanyard_protocol::{BadgeId, SigningKey, b64};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// How a sealed secret starts (see [`ServerKeys::seal_secret`]).
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// Associated data of sealed configuration secrets (UnlockTokens use their UDID), so
/// one kind can never be opened as the other.
const SECRET_AAD: &[u8] = b"lanyard configuration secret";

/// File holding the Ed25519 signing key (PKCS#8).
pub const SIGNING_KEY_FILE: &str = "signing-key.pk8";
/// File holding the 32-byte badge HMAC key.
pub const BADGE_KEY_FILE: &str = "badge-key.bin";

/// File holding the 32-byte key that seals MDM UnlockTokens at rest.
pub const TOKEN_KEY_FILE: &str = "mdm-token-key.bin";
/// File holding the key that derives each phone's offline-list salt (16 random bytes;
/// the name is from when it was a site-wide salt).
pub const OFFLINE_SALT_FILE: &str = "offline-salt.bin";

/// Associated data of a badge's sealed id (followed by its keyed hash).
const BADGE_AAD: &[u8] = b"lanyard badge id v1:";
/// Associated data of a phone's sealed offline entry (followed by the device id, a zero
/// byte and the badge's keyed hash).
const ENTRY_AAD: &[u8] = b"lanyard offline entry v1:";

/// The server's keys.
pub struct ServerKeys {
    /// Signs commands, policies and offline lists.
    pub signing: SigningKey,
    badge: hmac::Key,
    tokens: ring::aead::LessSafeKey,
    /// Derives each phone's offline-list salt (see docs/security.md).
    offline_salt: hmac::Key,
}

/// `n` random bytes from the system source.
pub fn random_bytes(n: usize) -> anyhow::Result<Vec<u8>> {
    let mut out = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| anyhow::anyhow!("system randomness unavailable"))?;
    Ok(out)
}

/// A random URL-safe token with `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> anyhow::Result<String> {
    Ok(b64::encode(&random_bytes(bytes)?))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Maps a key or randomness failure into a storage-layer error (for code that runs
/// inside a write transaction).
pub fn to_storage(e: anyhow::Error) -> crate::storage::StorageError {
    crate::storage::StorageError::Internal(format!("{e:#}"))
}

/// Signs a command envelope.
pub fn sign_command(
    keys: &ServerKeys,
    envelope: &lanyard_protocol::CommandEnvelope,
) -> Result<lanyard_protocol::Signed, crate::storage::StorageError> {
    keys.signing
        .sign(envelope)
        .map_err(|e| crate::storage::StorageError::Internal(e.to_string()))
}

/// SHA-256 of `data`: how high-entropy secrets (API tokens, device credentials,
/// enrollment tokens) are stored. A slow hash adds nothing for 256-bit random values.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Writes a new secret file readable by the owner only, atomically: the bytes go to a
/// temporary file that is synced, then linked to its name (which fails if another
/// opener got there first), so a crash can never leave an empty or half-written key
/// under the real name. Returns the bytes now under that name: ours, or the winner's.
fn create_secret_file(path: &Path, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("secret");
    let tmp = dir.join(format!(".{name}.{}.tmp", hex(&random_bytes(6)?)));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| -> anyhow::Result<()> {
        let mut f = options
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(())
    })();
    let linked = written.and_then(|()| fs::hard_link(&tmp, path).map_err(anyhow::Error::from));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            // The name itself must survive a crash too.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(bytes.to_vec())
        }
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::AlreadyExists) =>
        {
            fs::read(path).with_context(|| format!("reading {}", path.display()))
        }
        Err(e) => Err(e.context(format!("creating {}", path.display()))),
    }
}

fn load_or_create(
    path: &Path,
    make: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Vec<u8>> {
    if path.exists() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(file = %path.display(), mode = format!("{mode:o}"), "secret file is readable by others; chmod 600 it");
            }
        }
        return fs::read(path).with_context(|| format!("reading {}", path.display()));
    }
    let bytes = make()?;
    let stored = create_secret_file(path, &bytes)?;
    if stored == bytes {
        tracing::info!(file = %path.display(), "created a new server secret");
    }
    Ok(stored)
}

/// The secrets the server's keys are made of, as stored (files in the data directory,
/// or sealed in a shared database for replicas: see [`crate::db::pg_keys`]).
pub struct KeyMaterial {
    /// The signing key, PKCS#8.
    pub signing: Vec<u8>,
    /// The badge hashing key (32 bytes).
    pub badge: Vec<u8>,
    /// The key sealing MDM tokens, badge ids, offline entries and secrets (32 bytes).
    pub tokens: Vec<u8>,
    /// The key phones' offline salts are derived under (16+ bytes).
    pub offline_salt: Vec<u8>,
}

impl KeyMaterial {
    /// Each secret with the name of the file it is kept in.
    pub fn named(&self) -> [(&'static str, &[u8]); 4] {
        [
            (SIGNING_KEY_FILE, &self.signing),
            (BADGE_KEY_FILE, &self.badge),
            (TOKEN_KEY_FILE, &self.tokens),
            (OFFLINE_SALT_FILE, &self.offline_salt),
        ]
    }

    /// Material from a lookup by file name; `None` if one is missing.
    pub fn from_named(mut get: impl FnMut(&str) -> Option<Vec<u8>>) -> Option<KeyMaterial> {
        Some(KeyMaterial {
            signing: get(SIGNING_KEY_FILE)?,
            badge: get(BADGE_KEY_FILE)?,
            tokens: get(TOKEN_KEY_FILE)?,
            offline_salt: get(OFFLINE_SALT_FILE)?,
        })
    }

    /// New random material.
    pub fn generate() -> anyhow::Result<KeyMaterial> {
        let (_, signing) = SigningKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(KeyMaterial {
            signing,
            badge: random_bytes(32)?,
            tokens: random_bytes(32)?,
            offline_salt: random_bytes(16)?,
        })
    }

    /// The data directory's key files, if all of them are there (a site that ran on
    /// SQLite before its data moved to PostgreSQL).
    pub fn from_files(data_dir: &Path) -> Option<KeyMaterial> {
        KeyMaterial::from_named(|name| fs::read(data_dir.join(name)).ok())
    }

    /// Loads the material from `data_dir`, creating each missing file.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<KeyMaterial> {
        let signing = load_or_create(&data_dir.join(SIGNING_KEY_FILE), || {
            let (_, doc) = SigningKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(doc)
        })?;
        Ok(KeyMaterial {
            signing,
            badge: load_or_create(&data_dir.join(BADGE_KEY_FILE), || random_bytes(32))?,
            tokens: load_or_create(&data_dir.join(TOKEN_KEY_FILE), || random_bytes(32))?,
            offline_salt: load_or_create(&data_dir.join(OFFLINE_SALT_FILE), || random_bytes(16))?,
        })
    }
}

impl ServerKeys {
    /// Loads the keys from `data_dir`, creating them on first run.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<ServerKeys> {
        ServerKeys::from_material(&KeyMaterial::load_or_create(data_dir)?)
    }

    /// The keys made of `m`.
    pub fn from_material(m: &KeyMaterial) -> anyhow::Result<ServerKeys> {
        let signing = SigningKey::from_pkcs8(&m.signing).map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(m.badge.len() == 32, "{BADGE_KEY_FILE} must hold 32 bytes");
        let tokens = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &m.tokens)
            .map_err(|_| anyhow::anyhow!("{TOKEN_KEY_FILE} must hold 32 bytes"))?;
        anyhow::ensure!(
            m.offline_salt.len() >= 16,
            "{OFFLINE_SALT_FILE} must hold 16 bytes"
        );
        Ok(ServerKeys {
            signing,
            badge: hmac::Key::new(hmac::HMAC_SHA256, &m.badge),
            tokens: ring::aead::LessSafeKey::new(tokens),
            offline_salt: hmac::Key::new(hmac::HMAC_SHA256, &m.offline_salt),
        })
    }

    /// The salt of one phone's offline list: 16 bytes derived from the device id under
    /// the server's salt key, so every phone (every enrollment) has its own, nothing
    /// needs storing, and the database alone does not hold it.
    pub fn device_offline_salt(&self, device_id: &str) -> Vec<u8> {
        let tag = hmac::sign(&self.offline_salt, device_id.as_bytes());
        tag.as_ref()[..16].to_vec()
    }

    /// A badge's entry in one phone's offline list: PBKDF2-HMAC-SHA256 of the trimmed id
    /// with that phone's salt, what the phone computes from a tapped badge to look it up.
    /// Slow on purpose; run it off the async threads.
    pub fn offline_entry(&self, badge: &BadgeId, salt: &[u8], iterations: u32) -> [u8; 32] {
        lanyard_protocol::kdf::derive(badge.expose().trim().as_bytes(), salt, iterations)
    }

    /// Seals a registered badge's id for storage, bound to its keyed hash, so the server
    /// can build a new phone's offline entries without keeping ids a database copy
    /// would reveal.
    pub fn seal_badge(&self, badge_hash: &[u8], badge: &BadgeId) -> anyhow::Result<Vec<u8>> {
        self.seal_with(
            &[BADGE_AAD, badge_hash].concat(),
            badge.expose().trim().as_bytes(),
        )
    }

    /// Opens an id sealed by [`ServerKeys::seal_badge`] for the same keyed hash.
    pub fn open_badge(&self, badge_hash: &[u8], sealed: &[u8]) -> anyhow::Result<BadgeId> {
        let plain = self
            .open_with(&[BADGE_AAD, badge_hash].concat(), sealed)
            .map_err(|_| anyhow::anyhow!("sealed badge does not open (wrong key or row)"))?;
        Ok(BadgeId::new(String::from_utf8(plain)?))
    }

    /// Seals a phone's offline entry for storage, bound to the phone and the badge.
    pub fn seal_entry(
        &self,
        device_id: &str,
        badge_hash: &[u8],
        entry: &[u8; 32],
    ) -> anyhow::Result<Vec<u8>> {
        self.seal_with(&entry_aad(device_id, badge_hash), entry)
    }

    /// Opens an entry sealed by [`ServerKeys::seal_entry`] for the same phone and badge.
    pub fn open_entry(
        &self,
        device_id: &str,
        badge_hash: &[u8],
        sealed: &[u8],
    ) -> anyhow::Result<[u8; 32]> {
        let plain = self
            .open_with(&entry_aad(device_id, badge_hash), sealed)
            .map_err(|_| anyhow::anyhow!("sealed offline entry does not open"))?;
        <[u8; 32]>::try_from(plain.as_slice()).map_err(|_| anyhow::anyhow!("entry size"))
    }

    /// Seals an MDM UnlockToken for storage (AES-256-GCM, random nonce, bound to the
    /// device's UDID). Returns nonce ‖ ciphertext ‖ tag.
    pub fn seal_token(&self, udid: &str, token: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.seal_with(udid.as_bytes(), token)
    }

    /// Opens a token sealed by [`ServerKeys::seal_token`] for the same UDID.
    pub fn open_token(&self, udid: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.open_with(udid.as_bytes(), sealed)
            .map_err(|_| anyhow::anyhow!("sealed token does not open (wrong key or device)"))
    }

    /// Seals a secret an admin wrote into the configuration (a Wi-Fi passphrase) for
    /// storage: `sealed:v1:` and base64url of nonce, ciphertext and tag, under the
    /// server's sealing key. The text says what it is, so every reader can redact it.
    pub fn seal_secret(&self, plain: &str) -> anyhow::Result<String> {
        use base64::Engine;
        let sealed = self.seal_with(SECRET_AAD, plain.as_bytes())?;
        Ok(format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// Opens a secret sealed by [`ServerKeys::seal_secret`].
    pub fn open_secret(&self, sealed: &str) -> anyhow::Result<String> {
        use base64::Engine;
        let b64 = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or_else(|| anyhow::anyhow!("not a sealed secret"))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64)?;
        let plain = self
            .open_with(SECRET_AAD, &bytes)
            .map_err(|_| anyhow::anyhow!("sealed secret does not open (wrong key)"))?;
        Ok(String::from_utf8(plain)?)
    }

    /// Opens nonce, ciphertext and tag sealed by [`ServerKeys::seal_with`] with `aad`.
    fn open_with(&self, aad: &[u8], sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(sealed.len() > 12, "sealed value too short");
        let (nonce, rest) = sealed.split_at(12);
        let mut nonce_arr = [0u8; 12];
        nonce_arr.copy_from_slice(nonce);
        let mut buf = rest.to_vec();
        let plain = self
            .tokens
            .open_in_place(
                ring::aead::Nonce::assume_unique_for_key(nonce_arr),
                ring::aead::Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| anyhow::anyhow!("does not open"))?;
        Ok(plain.to_vec())
    }

    fn seal_with(&self, aad: &[u8], plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let nonce_bytes = random_bytes(12)?;
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&nonce_bytes);
        let mut sealed = plain.to_vec();
        self.tokens
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(aad),
                &mut sealed,
            )
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The keyed hash stored for a badge: HMAC-SHA256(server badge key, raw id).
    pub fn badge_hash(&self, badge: &BadgeId) -> Vec<u8> {
        hmac::sign(&self.badge, badge.expose().trim().as_bytes())
            .as_ref()
            .to_vec()
    }
}

fn entry_aad(device_id: &str, badge_hash: &[u8]) -> Vec<u8> {
    [ENTRY_AAD, device_id.as_bytes(), &[0], badge_hash].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlock_tokens_seal_and_open_only_for_their_device() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ServerKeys::load_or_create(dir.path()).unwrap();
        let sealed = keys.seal_token("UDID-1", b"secret-token").unwrap();
        assert!(!sealed.windows(12).any(|w| w == b"secret-token"));
        assert_eq!(keys.open_token("UDID-1", &sealed).unwrap(), b"secret-token");
        assert!(
            keys.open_token("UDID-2", &sealed).is_err(),
            "bound to the UDID"
        );
        let reloaded = ServerKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(
            reloaded.open_token("UDID-1", &sealed).unwrap(),
            b"secret-token"
        );
    }

    #[test]
    fn keys_are_created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServerKeys::load_or_create(dir.path()).unwrap();
        let b = ServerKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(a.signing.verifying_key(), b.signing.verifying_key());
        let badge = BadgeId::new("0012345");
        assert_eq!(a.badge_hash(&badge), b.badge_hash(&badge));
        assert_ne!(a.badge_hash(&badge), a.badge_hash(&BadgeId::new("0012346")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [SIGNING_KEY_FILE, BADGE_KEY_FILE, TOKEN_KEY_FILE] {
                let mode = fs::metadata(dir.path().join(f))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777;
                assert_eq!(mode, 0o600, "{f}");
            }
        }
    }

    #[test]
    fn openers_racing_on_a_new_data_dir_agree_on_one_key_and_leave_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let openers: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || ServerKeys::load_or_create(&path).unwrap())
            })
            .collect();
        let keys: Vec<ServerKeys> = openers.into_iter().map(|t| t.join().unwrap()).collect();
        for k in &keys {
            assert_eq!(k.signing.verifying_key(), keys[0].signing.verifying_key());
        }
        let leftovers: Vec<_> = fs::read_dir(&path)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn badges_and_entries_seal_per_row_and_salts_differ_per_phone() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ServerKeys::load_or_create(dir.path()).unwrap();
        let badge = BadgeId::new(" 0012345 ");
        let sealed = keys.seal_badge(b"row-1", &badge).unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"0012345"));
        assert_eq!(
            keys.open_badge(b"row-1", &sealed).unwrap().expose(),
            "0012345"
        );
        assert!(
            keys.open_badge(b"row-2", &sealed).is_err(),
            "bound to its row"
        );

        let (a, b) = (
            keys.device_offline_salt("d-1"),
            keys.device_offline_salt("d-2"),
        );
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert_eq!(a, keys.device_offline_salt("d-1"), "stable");
        let ea = keys.offline_entry(&badge, &a, 10);
        assert_ne!(ea, keys.offline_entry(&badge, &b, 10));
        assert_eq!(
            ea,
            lanyard_protocol::kdf::derive(b"0012345", &a, 10),
            "what the phone computes"
        );
        let sealed = keys.seal_entry("d-1", b"row-1", &ea).unwrap();
        assert_eq!(keys.open_entry("d-1", b"row-1", &sealed).unwrap(), ea);
        assert!(keys.open_entry("d-2", b"row-1", &sealed).is_err());
        assert!(keys.open_entry("d-1", b"row-2", &sealed).is_err());
    }
}
