//! Unlocking with no server: the signed offline credential list and the emergency PIN.

use lanyard_protocol::policy::OfflineCredentialList;
use lanyard_protocol::{BadgeId, DeviceId, Pin, Timestamp, UserRef, kdf};

/// Why an offline badge was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OfflineMiss {
    /// No list has been received.
    NoList,
    /// The list was built for another device.
    WrongDevice,
    /// The list is past its validity.
    Expired,
    /// The badge is not on the list.
    NotListed,
}

/// Looks a tapped badge up in the offline list: one slow hash with the device's salt,
/// then a comparison against each entry.
pub(crate) fn match_badge<'a>(
    list: Option<&'a OfflineCredentialList>,
    device: &DeviceId,
    badge: &BadgeId,
    now: Timestamp,
) -> Result<&'a UserRef, OfflineMiss> {
    let list = list.ok_or(OfflineMiss::NoList)?;
    if &list.device_id != device {
        return Err(OfflineMiss::WrongDevice);
    }
    if list.valid_until <= now {
        return Err(OfflineMiss::Expired);
    }
    // Trimmed, as the server trims badge ids before hashing them.
    let digest = kdf::derive(
        badge.expose().trim().as_bytes(),
        &list.salt,
        list.iterations,
    );
    list.entries
        .iter()
        .find(|e| e.badge_hash == digest)
        .map(|e| &e.user)
        .ok_or(OfflineMiss::NotListed)
}

/// An emergency PIN is 4 to 8 ASCII digits.
pub(crate) fn pin_is_well_formed(pin: &Pin) -> bool {
    let p = pin.expose();
    (4..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
}

/// Longest lockout after repeated wrong PINs.
const MAX_PIN_LOCKOUT_SECS: u64 = 3600;

/// Seconds to wait after `failures` consecutive wrong PINs: none for the first `free`
/// failures, then `base`, doubling with each further failure, capped at an hour.
pub(crate) fn pin_lockout_secs(failures: u32, free: u32, base: u64) -> Option<u64> {
    if failures == 0 || failures < free {
        return None;
    }
    let over = failures - free;
    let factor = 1u64.checked_shl(over.min(20)).unwrap_or(u64::MAX);
    Some(base.saturating_mul(factor).min(MAX_PIN_LOCKOUT_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_format() {
        for ok in ["1234", "12345678"] {
            assert!(pin_is_well_formed(&Pin::new(ok)));
        }
        for bad in ["123", "123456789", "12a4", "", "１２３４"] {
            assert!(!pin_is_well_formed(&Pin::new(bad)), "{bad:?}");
        }
    }

    #[test]
    fn lockout_grows_and_caps() {
        assert_eq!(pin_lockout_secs(1, 3, 30), None);
        assert_eq!(pin_lockout_secs(2, 3, 30), None);
        assert_eq!(pin_lockout_secs(3, 3, 30), Some(30));
        assert_eq!(pin_lockout_secs(4, 3, 30), Some(60));
        assert_eq!(pin_lockout_secs(5, 3, 30), Some(120));
        assert_eq!(pin_lockout_secs(40, 3, 30), Some(3600));
    }
}
