//! The server's keys on PostgreSQL: sealed in the database (AES-256-GCM under a
//! key-encryption key every replica is given, bound to each key's name), so replicas
//! share them without anyone copying files, and a copy of the database alone opens
//! nothing. The first server to start stores them — the data directory's key files
//! when a site moved from SQLite (its phones and badge hashes keep working), fresh ones
//! otherwise; replicas starting together agree on whichever set was stored first.

use std::path::Path;

use anyhow::Context;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::sql::{Conn, Value};
use crate::keys::KeyMaterial;

/// Associated data of a sealed server key (followed by its name).
const AAD: &[u8] = b"lanyard server key v1:";

/// A key-encryption key: 32 bytes, given to every replica as base64.
pub struct Kek(LessSafeKey);

impl Kek {
    /// Parses the base64 form `lanyard-server keygen` prints.
    pub fn parse(b64: &str) -> anyhow::Result<Kek> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .context("the key-encryption key is not base64")?;
        anyhow::ensure!(
            bytes.len() == 32,
            "the key-encryption key must be 32 bytes (base64 of `lanyard-server keygen`)"
        );
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| anyhow::anyhow!("the key-encryption key is not usable"))?;
        Ok(Kek(LessSafeKey::new(key)))
    }

    fn seal(&self, name: &str, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let nonce_bytes = crate::keys::random_bytes(NONCE_LEN)?;
        let nonce =
            Nonce::try_assume_unique_for_key(&nonce_bytes).map_err(|_| anyhow::anyhow!("nonce"))?;
        let mut buf = plain.to_vec();
        self.0
            .seal_in_place_append_tag(nonce, Aad::from([AAD, name.as_bytes()].concat()), &mut buf)
            .map_err(|_| anyhow::anyhow!("sealing {name}"))?;
        Ok([nonce_bytes, buf].concat())
    }

    fn open(&self, name: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(sealed.len() > NONCE_LEN, "stored key {name} is too short");
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow::anyhow!("nonce"))?;
        let mut buf = body.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from([AAD, name.as_bytes()].concat()), &mut buf)
            .map_err(|_| {
                anyhow::anyhow!(
                    "the key-encryption key does not open the server keys stored in the \
                     database: every replica must be given the same one"
                )
            })?;
        Ok(plain.to_vec())
    }
}

/// The keys stored in the database, storing them first if none are.
pub fn load_or_create(
    config: &super::pg::PgTarget,
    kek: &Kek,
    data_dir: &Path,
) -> anyhow::Result<KeyMaterial> {
    // Connections run their own runtime: keep them off any async thread.
    std::thread::scope(|s| {
        s.spawn(|| {
            let pooled = super::pg::connect(config)?;
            let conn = pooled.conn();
            if let Some(m) = stored(conn, kek)? {
                return Ok(m);
            }
            let (material, origin) = match KeyMaterial::from_files(data_dir) {
                Some(m) => (m, "imported from the data directory"),
                None => (KeyMaterial::generate()?, "created"),
            };
            conn.execute_batch("BEGIN")?;
            for (name, secret) in material.named() {
                conn.execute(
                    "INSERT INTO server_key (name, sealed, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO NOTHING",
                    [
                        Value::Text(name.to_owned()),
                        Value::Blob(kek.seal(name, secret)?),
                        Value::Int(crate::state::system_clock()().as_millis()),
                    ],
                )?;
            }
            conn.execute_batch("COMMIT")?;
            // Another replica may have stored its set first: everyone uses what is stored.
            let m = stored(conn, kek)?
                .ok_or_else(|| anyhow::anyhow!("the server keys were not stored"))?;
            tracing::info!(origin, "server keys sealed into the database");
            Ok(m)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the key loading thread panicked"))?
    })
}

fn stored(conn: &dyn Conn, kek: &Kek) -> anyhow::Result<Option<KeyMaterial>> {
    let rows = conn.query_rows("SELECT name, sealed FROM server_key", &[])?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut opened = std::collections::HashMap::new();
    for r in &rows {
        let name: String = r.get(0)?;
        let sealed: Vec<u8> = r.get(1)?;
        let plain = kek.open(&name, &sealed)?;
        opened.insert(name, plain);
    }
    KeyMaterial::from_named(|name| opened.remove(name))
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("the database holds only some of the server keys"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_under_its_name_and_kek() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let kek = Kek::parse(&b64).unwrap();
        let sealed = kek.seal("badge-key.bin", b"secret").unwrap();
        assert_eq!(kek.open("badge-key.bin", &sealed).unwrap(), b"secret");
        assert!(
            kek.open("mdm-token-key.bin", &sealed).is_err(),
            "bound to its name"
        );
        let other =
            Kek::parse(&base64::engine::general_purpose::STANDARD.encode([8u8; 32])).unwrap();
        assert!(other.open("badge-key.bin", &sealed).is_err());
        assert!(Kek::parse("c2hvcnQ=").is_err(), "32 bytes or nothing");
    }
}
