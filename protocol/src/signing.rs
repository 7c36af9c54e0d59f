//! Ed25519 signatures over server-issued payloads (commands, policy, offline credentials).
//!
//! The signed bytes are the exact JSON text carried in [`Signed::payload`], so no
//! canonical-JSON rules are needed: the verifier checks the bytes it received and only
//! then parses them.

use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::b64;

/// A payload and the server's signature over its bytes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// The JSON text that was signed.
    pub payload: String,
    /// Ed25519 signature over `payload`'s UTF-8 bytes, base64url without padding.
    pub signature: String,
}

/// Why a signed payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature is not valid base64 or not 64 bytes.
    #[error("signature is not well-formed")]
    MalformedSignature,
    /// The signature does not verify against the pinned key.
    #[error("signature does not verify against the pinned server key")]
    BadSignature,
    /// The signature verified but the payload is not the expected JSON shape.
    #[error("signed payload is not valid: {0}")]
    MalformedPayload(String),
}

/// The server's public key, pinned by a device at enrollment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VerifyingKey(#[serde(with = "b64::array32")] pub [u8; 32]);

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", b64::encode(&self.0))
    }
}

/// Errors creating or loading a signing key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The system random source failed.
    #[error("could not generate a key: system randomness unavailable")]
    Random,
    /// The stored PKCS#8 document is not an Ed25519 key.
    #[error("stored signing key is not a valid Ed25519 PKCS#8 document")]
    InvalidPkcs8,
}

/// The server's Ed25519 signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public={:?})", self.verifying_key())
    }
}

impl SigningKey {
    /// Generates a new key, returning it with its PKCS#8 document for storage.
    pub fn generate() -> Result<(SigningKey, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?;
        let bytes = doc.as_ref().to_vec();
        let key = SigningKey::from_pkcs8(&bytes)?;
        Ok((key, bytes))
    }

    /// Loads a key from a PKCS#8 document written by [`SigningKey::generate`].
    pub fn from_pkcs8(doc: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(doc).map_err(|_| KeyError::InvalidPkcs8)?;
        Ok(SigningKey { pair })
    }

    /// The public half, as devices pin it.
    pub fn verifying_key(&self) -> VerifyingKey {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.pair.public_key().as_ref());
        VerifyingKey(k)
    }

    /// Serializes `value` to JSON and signs the bytes.
    pub fn sign<T: Serialize>(&self, value: &T) -> Result<Signed, serde_json::Error> {
        let payload = serde_json::to_string(value)?;
        let sig = self.pair.sign(payload.as_bytes());
        Ok(Signed {
            payload,
            signature: b64::encode(sig.as_ref()),
        })
    }
}

impl Signed {
    /// Verifies the signature with `key`, then parses the payload.
    pub fn open<T: DeserializeOwned>(&self, key: &VerifyingKey) -> Result<T, SignatureError> {
        let sig = b64::decode(&self.signature).map_err(|_| SignatureError::MalformedSignature)?;
        if sig.len() != 64 {
            return Err(SignatureError::MalformedSignature);
        }
        signature::UnparsedPublicKey::new(&signature::ED25519, &key.0)
            .verify(self.payload.as_bytes(), &sig)
            .map_err(|_| SignatureError::BadSignature)?;
        serde_json::from_str(&self.payload)
            .map_err(|e| SignatureError::MalformedPayload(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Msg {
        n: u32,
    }

    #[test]
    fn sign_then_open_roundtrip() {
        let (key, doc) = SigningKey::generate().unwrap();
        let signed = key.sign(&Msg { n: 7 }).unwrap();
        let vk = SigningKey::from_pkcs8(&doc).unwrap().verifying_key();
        assert_eq!(signed.open::<Msg>(&vk).unwrap(), Msg { n: 7 });
    }

    #[test]
    fn tampered_payload_or_other_key_is_rejected() {
        let (key, _) = SigningKey::generate().unwrap();
        let (other, _) = SigningKey::generate().unwrap();
        let mut signed = key.sign(&Msg { n: 7 }).unwrap();
        assert_eq!(
            signed.open::<Msg>(&other.verifying_key()),
            Err(SignatureError::BadSignature)
        );
        signed.payload = signed.payload.replace('7', "8");
        assert_eq!(
            signed.open::<Msg>(&key.verifying_key()),
            Err(SignatureError::BadSignature)
        );
        signed.signature = "!!".into();
        assert_eq!(
            signed.open::<Msg>(&key.verifying_key()),
            Err(SignatureError::MalformedSignature)
        );
    }
}
