//! Enrollment input: an enrollment link / QR payload, or MDM managed app configuration.
//!
//! A link looks like `lanyard://enroll?server=https%3A%2F%2Flanyard.example.org&token=T`
//! (the same idea as a `mirp://` registration link). Managed app configuration carries the
//! same two values under the keys [`CONFIG_SERVER_URL`] and [`CONFIG_ENROLLMENT_TOKEN`].
//! Either way the result is an [`EnrollmentInvite`] the sync client redeems with the server.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use url::Url;

/// Managed app configuration key holding the server URL.
pub const CONFIG_SERVER_URL: &str = "LanyardServerURL";
/// Managed app configuration key holding the enrollment token.
pub const CONFIG_ENROLLMENT_TOKEN: &str = "LanyardEnrollmentToken";

/// Longest accepted enrollment token.
const MAX_TOKEN_LEN: usize = 256;

/// Where to enroll and with what token.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentInvite {
    /// The server's base URL (https, or http on a loopback address for development).
    pub server: Url,
    /// The one-time or multi-use enrollment token issued by IT.
    pub token: String,
}

impl fmt::Debug for EnrollmentInvite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a credential: never in a log line.
        f.debug_struct("EnrollmentInvite")
            .field("server", &self.server.as_str())
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Why an enrollment input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// Not a URL at all.
    #[error("not a valid enrollment link: {0}")]
    NotAUrl(String),
    /// A URL, but not `lanyard://enroll`.
    #[error("not a Lanyard enrollment link (expected lanyard://enroll?server=…&token=…)")]
    WrongScheme,
    /// A required value is missing.
    #[error("enrollment input has no {0}")]
    Missing(&'static str),
    /// The server URL is not usable.
    #[error("server URL {url:?} is not allowed: {why}")]
    BadServer {
        /// The value given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The token has characters or a length a server never issues.
    #[error("enrollment token is malformed (1–256 letters, digits, '-', '_' or '.')")]
    BadToken,
}

impl EnrollmentInvite {
    /// Checks and builds an invite from its two values.
    pub fn new(server: &str, token: &str) -> Result<EnrollmentInvite, InviteError> {
        let parsed = Url::parse(server.trim()).map_err(|_| InviteError::BadServer {
            url: server.to_owned(),
            why: "not a URL",
        })?;
        let bad = |why| InviteError::BadServer {
            url: server.to_owned(),
            why,
        };
        let host = parsed.host_str().ok_or_else(|| bad("no host"))?;
        match parsed.scheme() {
            "https" => {}
            "http" if is_loopback(host) => {}
            "http" => return Err(bad("plain http is only allowed to a loopback address")),
            _ => return Err(bad("scheme must be https")),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("credentials in the URL"));
        }
        let token = token.trim();
        let well_formed = !token.is_empty()
            && token.len() <= MAX_TOKEN_LEN
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !well_formed {
            return Err(InviteError::BadToken);
        }
        Ok(EnrollmentInvite {
            server: parsed,
            token: token.to_owned(),
        })
    }

    /// Reads MDM managed app configuration (string values by key).
    pub fn from_managed_config(config: &BTreeMap<String, String>) -> Result<Self, InviteError> {
        let server = config
            .get(CONFIG_SERVER_URL)
            .ok_or(InviteError::Missing("server URL"))?;
        let token = config
            .get(CONFIG_ENROLLMENT_TOKEN)
            .ok_or(InviteError::Missing("token"))?;
        EnrollmentInvite::new(server, token)
    }

    /// The link form, e.g. for a QR code.
    pub fn to_link(&self) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("server", self.server.as_str())
            .append_pair("token", &self.token)
            .finish();
        format!("lanyard://enroll?{query}")
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl FromStr for EnrollmentInvite {
    type Err = InviteError;

    /// Parses `lanyard://enroll?server=…&token=…`.
    fn from_str(link: &str) -> Result<Self, Self::Err> {
        let url = Url::parse(link.trim()).map_err(|e| InviteError::NotAUrl(e.to_string()))?;
        if url.scheme() != "lanyard" || url.host_str() != Some("enroll") {
            return Err(InviteError::WrongScheme);
        }
        let value = |key: &str| {
            url.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let server = value("server").ok_or(InviteError::Missing("server URL"))?;
        let token = value("token").ok_or(InviteError::Missing("token"))?;
        EnrollmentInvite::new(&server, &token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_link_with_an_encoded_server() {
        let i: EnrollmentInvite =
            "lanyard://enroll?server=https%3A%2F%2Flanyard.stmary.org%3A8443&token=AbC-123_x.y"
                .parse()
                .unwrap();
        assert_eq!(i.server.as_str(), "https://lanyard.stmary.org:8443/");
        assert_eq!(i.token, "AbC-123_x.y");
        assert!(!format!("{i:?}").contains("AbC"), "token redacted in Debug");
    }

    #[test]
    fn refuses_what_a_hospital_should_never_enroll_with() {
        let cases = [
            ("https://x.org/?server=a&token=b", InviteError::WrongScheme),
            (
                "lanyard://register?server=https%3A%2F%2Fa.org&token=b",
                InviteError::WrongScheme,
            ),
            (
                "lanyard://enroll?token=b",
                InviteError::Missing("server URL"),
            ),
            (
                "lanyard://enroll?server=https%3A%2F%2Fa.org",
                InviteError::Missing("token"),
            ),
            (
                "lanyard://enroll?server=https%3A%2F%2Fa.org&token=a%20b",
                InviteError::BadToken,
            ),
        ];
        for (link, want) in cases {
            assert_eq!(link.parse::<EnrollmentInvite>(), Err(want), "{link}");
        }
        for server in [
            "http://lanyard.org",
            "ftp://a.org",
            "https://u:p@a.org",
            "nope",
        ] {
            assert!(
                matches!(
                    EnrollmentInvite::new(server, "t"),
                    Err(InviteError::BadServer { .. })
                ),
                "{server}"
            );
        }
        assert!(EnrollmentInvite::new("http://127.0.0.1:8080", "t").is_ok());
        assert!(EnrollmentInvite::new("http://[::1]:8080", "t").is_ok());
        assert!(EnrollmentInvite::new("http://localhost:8080", "t").is_ok());
    }

    #[test]
    fn managed_config_uses_the_documented_keys() {
        let mut c = BTreeMap::new();
        c.insert(
            CONFIG_SERVER_URL.to_owned(),
            "https://lanyard.stmary.org".to_owned(),
        );
        assert_eq!(
            EnrollmentInvite::from_managed_config(&c),
            Err(InviteError::Missing("token"))
        );
        c.insert(CONFIG_ENROLLMENT_TOKEN.to_owned(), " tok-1 ".to_owned());
        let i = EnrollmentInvite::from_managed_config(&c).unwrap();
        assert_eq!(i.token, "tok-1");
    }

    proptest! {
        #[test]
        fn link_roundtrip(host in "[a-z]{1,12}\\.(org|com)", port in 1u16.., token in "[A-Za-z0-9._-]{1,64}") {
            let server = format!("https://{host}:{port}/lanyard");
            let invite = EnrollmentInvite::new(&server, &token).unwrap();
            let back: EnrollmentInvite = invite.to_link().parse().unwrap();
            prop_assert_eq!(back, invite);
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,80}") {
            let _ = s.parse::<EnrollmentInvite>();
            let _ = format!("lanyard://enroll?{s}").parse::<EnrollmentInvite>();
        }
    }
}
