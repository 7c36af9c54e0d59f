//! The optional TOML configuration file of `lanyard-server serve`.
//!
//! Precedence: command-line flag, then environment variable (clap reads both), then the
//! file, then the built-in default. Unknown keys are an error, so a typo never passes
//! silently.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The keys a config file may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listen address, e.g. `0.0.0.0:8443`.
    pub listen: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL database URL (instead of the data directory's SQLite file).
    pub database_url: Option<String>,
    /// With a database URL: the key-encryption key (base64) of the keys stored there.
    pub key_encryption_key: Option<String>,
    /// The URL phones and staff reach the server at (links, QR codes).
    pub public_url: Option<url::Url>,
    /// Load balancers (addresses or CIDR blocks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Option<Vec<String>>,
    /// External badge lookup service URL.
    pub badge_lookup_url: Option<url::Url>,
    /// `text` or `json`.
    pub log_format: Option<LogFormat>,
    /// NanoMDM base URL.
    pub nanomdm_url: Option<url::Url>,
    /// NanoMDM API key.
    pub nanomdm_api_key: Option<String>,
    /// NanoMDM webhook HMAC key.
    pub nanomdm_webhook_key: Option<String>,
    /// Minutes an MDM command may go unanswered before it is given up.
    pub mdm_deadline_mins: Option<u64>,
    /// SMTP relay URL for Send Email.
    pub smtp_url: Option<String>,
    /// From address of Lanyard's emails.
    pub smtp_from: Option<String>,
    /// A token `/metrics` then requires.
    pub metrics_token: Option<String>,
    /// Days history is kept.
    pub retention_days: Option<u32>,
    /// Days emails are kept.
    pub email_retention_days: Option<u32>,
    /// Open HTTP connections at most.
    pub max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers (also the keep-alive idle limit).
    pub header_timeout_secs: Option<u64>,
}

impl FileConfig {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Every key a config file may set (checked against [`FileConfig`] by a test, and
/// listed by `serve --help`).
pub const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "key_encryption_key",
    "public_url",
    "trusted_proxies",
    "badge_lookup_url",
    "log_format",
    "nanomdm_url",
    "nanomdm_api_key",
    "nanomdm_webhook_key",
    "mdm_deadline_mins",
    "smtp_url",
    "smtp_from",
    "metrics_token",
    "retention_days",
    "email_retention_days",
    "max_connections",
    "header_timeout_secs",
];

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "lanyard-data";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key_and_rejects_typos() {
        let c: FileConfig = toml::from_str(
            "listen = \"0.0.0.0:9000\"\ndata_dir = \"/var/lib/lanyard\"\nbadge_lookup_url = \"http://10.0.0.5/lookup\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        assert_eq!(c.listen, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(c.log_format, Some(LogFormat::Json));
        assert!(toml::from_str::<FileConfig>("listne = \"0.0.0.0:9000\"").is_err());
        assert!(toml::from_str::<FileConfig>("listen = \"not an address\"").is_err());
    }

    #[test]
    fn keys_lists_every_key_of_the_file() {
        // serde names every field it accepts when it refuses an unknown one.
        let err = toml::from_str::<FileConfig>("no_such_key = 1")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let accepted: Vec<&str> = err.split('`').skip(3).step_by(2).collect();
        let mut accepted = accepted;
        accepted.sort_unstable();
        let mut keys = KEYS.to_vec();
        keys.sort_unstable();
        assert_eq!(accepted, keys, "{err}");
    }
}
