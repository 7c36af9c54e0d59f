//! iOS version numbers (`17`, `17.4`, `17.4.1`), compared numerically.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A dotted OS version. Missing components count as zero, so `17.4` == `17.4.0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OsVersion {
    /// Major version, e.g. 17.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid OS version {input:?}: expected 1 to 3 dot-separated numbers such as 17.4.1")]
pub struct OsVersionError {
    /// The text that was refused.
    pub input: String,
}

impl OsVersion {
    /// Builds a version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        OsVersion {
            major,
            minor,
            patch,
        }
    }
}

impl FromStr for OsVersion {
    type Err = OsVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || OsVersionError {
            input: s.to_owned(),
        };
        let mut parts = [0u32; 3];
        for (count, piece) in s.trim().split('.').enumerate() {
            if count == 3 || piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            parts[count] = piece.parse().map_err(|_| err())?;
        }
        Ok(OsVersion::new(parts[0], parts[1], parts[2]))
    }
}

impl fmt::Display for OsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for OsVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_short_forms_and_orders_numerically() {
        assert_eq!("17".parse::<OsVersion>().unwrap(), OsVersion::new(17, 0, 0));
        assert_eq!(
            "17.4".parse::<OsVersion>().unwrap(),
            OsVersion::new(17, 4, 0)
        );
        assert!("17.10".parse::<OsVersion>().unwrap() > "17.9.9".parse().unwrap());
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "17.", ".1", "17.4.1.2", "17.a", "-1", "99999999999"] {
            assert!(bad.parse::<OsVersion>().is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn display_parse_roundtrip(a in 0u32..1000, b in 0u32..1000, c in 0u32..1000) {
            let v = OsVersion::new(a, b, c);
            prop_assert_eq!(v.to_string().parse::<OsVersion>().unwrap(), v);
        }

        #[test]
        fn parser_never_panics(s in ".{0,24}") {
            let _ = s.parse::<OsVersion>();
        }
    }
}
