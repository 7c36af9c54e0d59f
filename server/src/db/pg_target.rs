//! Where PostgreSQL is and how to reach it: the client settings from the database URL,
//! and TLS on rustls with ring (no OpenSSL), the certificate always verified.
//!
//! The URL takes libpq's TLS parameters as DBAs write them: `sslmode` is `disable`
//! (plain text), `prefer` (the default: TLS when the server offers it), or `require`,
//! `verify-ca`, `verify-full` (TLS or no connection). Whenever TLS is used the server's
//! certificate is checked against the trusted roots and its name against the host —
//! rustls has no unverified mode, so `require` verifies as fully as `verify-full`.
//! `sslrootcert=/path/ca.pem` names the CA that signed the server's certificate (a
//! hospital's internal CA); without it the system's trusted roots are used.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::DbError;

/// A PostgreSQL database to connect to.
#[derive(Clone)]
pub struct PgTarget {
    pub(crate) config: postgres::Config,
    tls: MakeRustlsConnect,
}

impl PgTarget {
    /// Opens a connection. Runs its own small runtime, so it must be called off the
    /// async threads.
    pub(crate) fn connect(&self) -> std::result::Result<postgres::Client, postgres::Error> {
        self.config.connect(self.tls.clone())
    }
}

/// `e` with its causes ("error performing TLS handshake: invalid peer certificate:
/// UnknownIssuer"): the client library's own text stops at the first.
pub(crate) fn describe(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Parses a `postgres://` URL (or key=value string) with its TLS parameters.
pub fn config(url: &str) -> Result<PgTarget, DbError> {
    let (url, root_cert) = split_tls_params(url)?;
    let mut config = postgres::Config::from_str(&url)
        .map_err(|e| DbError::Connect(format!("invalid database URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("lanyard-server");
    }
    let roots = roots(root_cert.as_deref())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Connect(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(PgTarget {
        config,
        tls: MakeRustlsConnect::new(tls),
    })
}

/// Takes `sslrootcert` out of a URL and turns libpq's `verify-ca` / `verify-full` into
/// `require` (which the client library knows, and which verifies as fully here).
fn split_tls_params(url: &str) -> Result<(String, Option<String>), DbError> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // A key=value string: passed on as written.
        return Ok((url.to_owned(), None));
    };
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Ok((url.to_owned(), None));
    }
    let mut root_cert = None;
    let mut kept = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match (k.as_ref(), v.as_ref()) {
            ("sslrootcert", path) => root_cert = Some(path.to_owned()),
            ("sslmode", "verify-ca" | "verify-full") => {
                kept.push(("sslmode".to_owned(), "require".to_owned()));
            }
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed.into(), root_cert))
}

/// The CA in `root_cert` (PEM), or the system's trusted roots.
fn roots(root_cert: Option<&str>) -> Result<rustls::RootCertStore, DbError> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| DbError::Connect(format!("sslrootcert {path}: {e}")))?;
            if certs.is_empty() {
                return Err(DbError::Connect(format!(
                    "sslrootcert {path}: no certificate in it"
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| DbError::Connect(format!("sslrootcert {path}: {e}")))?;
            }
        }
        None => {
            // Unreadable system certificates leave fewer roots, never a silent
            // unverified connection.
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "a system root certificate could not be read");
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    #[test]
    fn libpq_tls_parameters_are_understood_and_the_rest_passed_on() {
        let (url, ca) = split_tls_params(
            "postgres://u:p@db.stmary.example:5432/lanyard?sslmode=verify-full&sslrootcert=%2Fetc%2Flanyard%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(ca.as_deref(), Some("/etc/lanyard/ca.pem"));
        assert_eq!(
            url,
            "postgres://u:p@db.stmary.example:5432/lanyard?sslmode=require&application_name=x"
        );
        let (url, ca) = split_tls_params("postgres://u@h/db?sslrootcert=/ca.pem").unwrap();
        assert_eq!(
            (url.as_str(), ca.as_deref()),
            ("postgres://u@h/db", Some("/ca.pem"))
        );
        let kv = "host=h user=u sslmode=require";
        assert_eq!(split_tls_params(kv).unwrap(), (kv.to_owned(), None));
    }

    #[test]
    fn a_missing_or_empty_root_certificate_is_an_error_that_names_it() {
        let e = config("postgres://u@h/db?sslrootcert=/nonexistent/ca.pem")
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = config(&format!(
            "postgres://u@h/db?sslrootcert={}",
            empty.display()
        ))
        .err()
        .unwrap();
        assert!(e.to_string().contains("no certificate"), "{e}");
    }
}
