//! Apple MDM commands as exact plists, built from typed values.
//!
//! Lanyard drives the hospital's MDM rather than being one: workflows say "Clear
//! Passcode", "Erase", "Update iOS"; this crate turns each into the command dictionary
//! Apple's MDM protocol defines (`{Command: {RequestType, …}, CommandUUID}`), ready to
//! hand to a connector. A test checks every command this crate can build against
//! Apple's own schemas in `shared/reference/apple-device-management` (required keys,
//! types, allowed values, no unknown keys).

use plist::{Dictionary, Value};

pub mod dynamic;
pub mod nanomdm;
pub mod profile;

/// An MDM command Lanyard sends.
#[derive(Clone, Debug, PartialEq)]
pub enum MdmCommand {
    /// Clear the device passcode (needs the UnlockToken from the device's TokenUpdate).
    ClearPasscode {
        /// The device's unlock token.
        unlock_token: Vec<u8>,
    },
    /// Lock the screen now, optionally with a message and a phone number.
    DeviceLock {
        /// Shown on the Lock screen.
        message: Option<String>,
        /// Shown on the Lock screen.
        phone_number: Option<String>,
    },
    /// Restart. (Apple's `NotifyUser` option is macOS-only, so it is not offered.)
    RestartDevice,
    /// Shut down.
    ShutDownDevice,
    /// Erase the device (supervised / DEP devices for Lanyard's Provisioning workflow).
    EraseDevice {
        /// Keep the cellular plan.
        preserve_data_plan: Option<bool>,
        /// Disallow Proximity Setup after the erase.
        disallow_proximity_setup: Option<bool>,
        /// iOS 17+: come back enrolled without anyone touching the phone.
        return_to_service: Option<ReturnToService>,
    },
    /// Ask for device information (e.g. `OSVersion`, `BatteryLevel`).
    DeviceInformation {
        /// The query keys.
        queries: Vec<String>,
    },
    /// Install a configuration profile (.mobileconfig bytes).
    InstallProfile {
        /// The profile, signed or not.
        payload: Vec<u8>,
    },
    /// Remove a configuration profile by its PayloadIdentifier.
    RemoveProfile {
        /// The profile's identifier.
        identifier: String,
    },
    /// Supervised iOS: enter lost mode with a message and/or phone number.
    EnableLostMode {
        /// Shown on the Lock screen.
        message: Option<String>,
        /// Shown on the Lock screen.
        phone_number: Option<String>,
        /// Small print on the Lock screen.
        footnote: Option<String>,
    },
    /// Leave lost mode.
    DisableLostMode,
    /// Ask which OS updates Apple offers this device now (signed versions only).
    AvailableOsUpdates,
    /// Schedule OS updates (supervised devices).
    ScheduleOSUpdate {
        /// One entry per update to act on.
        updates: Vec<OsUpdate>,
    },
    /// Change device settings (time zone, name, wallpaper).
    Settings {
        /// The settings, applied in order.
        items: Vec<Setting>,
    },
}

/// One update of a [`MdmCommand::ScheduleOSUpdate`].
#[derive(Clone, Debug, PartialEq)]
pub struct OsUpdate {
    /// Apple's product key of the update, when known.
    pub product_key: Option<String>,
    /// The OS version to install, e.g. `17.6.1`.
    pub product_version: Option<String>,
    /// What the device should do.
    pub install_action: InstallAction,
}

/// What a device does with a scheduled update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallAction {
    /// Download, then install as the device's defaults decide.
    Default,
    /// Only download.
    DownloadOnly,
    /// Install now.
    InstallAsap,
    /// Tell the user.
    NotifyOnly,
    /// Install later.
    InstallLater,
    /// Install and restart without asking.
    InstallForceRestart,
}

impl InstallAction {
    fn as_str(self) -> &'static str {
        match self {
            InstallAction::Default => "Default",
            InstallAction::DownloadOnly => "DownloadOnly",
            InstallAction::InstallAsap => "InstallASAP",
            InstallAction::NotifyOnly => "NotifyOnly",
            InstallAction::InstallLater => "InstallLater",
            InstallAction::InstallForceRestart => "InstallForceRestart",
        }
    }
}

/// One setting of a [`MdmCommand::Settings`] command.
#[derive(Clone, Debug, PartialEq)]
pub enum Setting {
    /// IANA time zone, e.g. `America/Chicago` (iOS 14+).
    TimeZone(String),
    /// Device name (supervised).
    DeviceName(String),
    /// Wallpaper image (PNG or JPEG) for the lock screen, home screen, or both (supervised).
    Wallpaper {
        /// The image bytes.
        image: Vec<u8>,
        /// Where it goes.
        location: WallpaperLocation,
    },
}

/// Where a wallpaper goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WallpaperLocation {
    /// Lock screen.
    LockScreen,
    /// Home screen.
    HomeScreen,
    /// Both.
    Both,
}

impl Setting {
    fn dictionary(&self) -> Dictionary {
        let mut d = Dictionary::new();
        match self {
            Setting::TimeZone(tz) => {
                d.insert("Item".into(), Value::String("TimeZone".into()));
                d.insert("TimeZone".into(), Value::String(tz.clone()));
            }
            Setting::DeviceName(name) => {
                d.insert("Item".into(), Value::String("DeviceName".into()));
                d.insert("DeviceName".into(), Value::String(name.clone()));
            }
            Setting::Wallpaper { image, location } => {
                d.insert("Item".into(), Value::String("Wallpaper".into()));
                d.insert("Image".into(), Value::Data(image.clone()));
                let where_ = match location {
                    WallpaperLocation::LockScreen => 1,
                    WallpaperLocation::HomeScreen => 2,
                    WallpaperLocation::Both => 3,
                };
                d.insert("Where".into(), Value::Integer(where_.into()));
            }
        }
        d
    }
}

/// iOS 17+ Return to Service options of an erase.
#[derive(Clone, Debug, PartialEq)]
pub struct ReturnToService {
    /// Turn Return to Service on.
    pub enabled: bool,
    /// A Wi-Fi profile for the device to join after the erase.
    pub wifi_profile_data: Option<Vec<u8>>,
    /// The MDM enrollment profile to re-enroll with.
    pub mdm_profile_data: Option<Vec<u8>>,
}

fn put_opt(d: &mut Dictionary, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        d.insert(key.to_owned(), v);
    }
}

impl MdmCommand {
    /// The command's `RequestType`.
    pub fn request_type(&self) -> &'static str {
        match self {
            MdmCommand::ClearPasscode { .. } => "ClearPasscode",
            MdmCommand::DeviceLock { .. } => "DeviceLock",
            MdmCommand::RestartDevice => "RestartDevice",
            MdmCommand::ShutDownDevice => "ShutDownDevice",
            MdmCommand::AvailableOsUpdates => "AvailableOSUpdates",
            MdmCommand::EraseDevice { .. } => "EraseDevice",
            MdmCommand::DeviceInformation { .. } => "DeviceInformation",
            MdmCommand::InstallProfile { .. } => "InstallProfile",
            MdmCommand::RemoveProfile { .. } => "RemoveProfile",
            MdmCommand::EnableLostMode { .. } => "EnableLostMode",
            MdmCommand::DisableLostMode => "DisableLostMode",
            MdmCommand::ScheduleOSUpdate { .. } => "ScheduleOSUpdate",
            MdmCommand::Settings { .. } => "Settings",
        }
    }

    /// The `Command` dictionary: `RequestType` plus the command's keys.
    pub fn command_dictionary(&self) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert(
            "RequestType".into(),
            Value::String(self.request_type().into()),
        );
        match self {
            MdmCommand::ClearPasscode { unlock_token } => {
                d.insert("UnlockToken".into(), Value::Data(unlock_token.clone()));
            }
            MdmCommand::DeviceLock {
                message,
                phone_number,
            } => {
                put_opt(&mut d, "Message", message.clone().map(Value::String));
                put_opt(
                    &mut d,
                    "PhoneNumber",
                    phone_number.clone().map(Value::String),
                );
            }
            MdmCommand::RestartDevice
            | MdmCommand::ShutDownDevice
            | MdmCommand::AvailableOsUpdates
            | MdmCommand::DisableLostMode => {}
            MdmCommand::EraseDevice {
                preserve_data_plan,
                disallow_proximity_setup,
                return_to_service,
            } => {
                put_opt(
                    &mut d,
                    "PreserveDataPlan",
                    preserve_data_plan.map(Value::Boolean),
                );
                put_opt(
                    &mut d,
                    "DisallowProximitySetup",
                    disallow_proximity_setup.map(Value::Boolean),
                );
                if let Some(rts) = return_to_service {
                    let mut r = Dictionary::new();
                    r.insert("Enabled".into(), Value::Boolean(rts.enabled));
                    put_opt(
                        &mut r,
                        "WiFiProfileData",
                        rts.wifi_profile_data.clone().map(Value::Data),
                    );
                    put_opt(
                        &mut r,
                        "MDMProfileData",
                        rts.mdm_profile_data.clone().map(Value::Data),
                    );
                    d.insert("ReturnToService".into(), Value::Dictionary(r));
                }
            }
            MdmCommand::DeviceInformation { queries } => {
                let q = queries.iter().cloned().map(Value::String).collect();
                d.insert("Queries".into(), Value::Array(q));
            }
            MdmCommand::InstallProfile { payload } => {
                d.insert("Payload".into(), Value::Data(payload.clone()));
            }
            MdmCommand::RemoveProfile { identifier } => {
                d.insert("Identifier".into(), Value::String(identifier.clone()));
            }
            MdmCommand::ScheduleOSUpdate { updates } => {
                let items = updates
                    .iter()
                    .map(|u| {
                        let mut e = Dictionary::new();
                        put_opt(
                            &mut e,
                            "ProductKey",
                            u.product_key.clone().map(Value::String),
                        );
                        put_opt(
                            &mut e,
                            "ProductVersion",
                            u.product_version.clone().map(Value::String),
                        );
                        e.insert(
                            "InstallAction".into(),
                            Value::String(u.install_action.as_str().into()),
                        );
                        Value::Dictionary(e)
                    })
                    .collect();
                d.insert("Updates".into(), Value::Array(items));
            }
            MdmCommand::Settings { items } => {
                let items = items
                    .iter()
                    .map(|s| Value::Dictionary(s.dictionary()))
                    .collect();
                d.insert("Settings".into(), Value::Array(items));
            }
            MdmCommand::EnableLostMode {
                message,
                phone_number,
                footnote,
            } => {
                put_opt(&mut d, "Message", message.clone().map(Value::String));
                put_opt(
                    &mut d,
                    "PhoneNumber",
                    phone_number.clone().map(Value::String),
                );
                put_opt(&mut d, "Footnote", footnote.clone().map(Value::String));
            }
        }
        d
    }

    /// The full command plist (XML), as an MDM server enqueues it.
    pub fn to_plist(&self, command_uuid: &str) -> Result<Vec<u8>, plist::Error> {
        let mut top = Dictionary::new();
        top.insert(
            "Command".into(),
            Value::Dictionary(self.command_dictionary()),
        );
        top.insert("CommandUUID".into(), Value::String(command_uuid.into()));
        let mut out = Vec::new();
        Value::Dictionary(top).to_writer_xml(&mut out)?;
        Ok(out)
    }
}

/// A device UDID in Apple's form, or `None` when `s` is not one: 40 hex digits
/// (iPhone XS and earlier), 8 + 16 hex digits joined by `-` (later iPhones), or a
/// UUID (8-4-4-4-12, e.g. Macs and simulators). Apple writes UDIDs in uppercase and an
/// MDM only knows that form (NanoMDM answers 500 for a lowercase one), so the result
/// is uppercase.
pub fn normalize_udid(s: &str) -> Option<String> {
    let upper = s.trim().to_ascii_uppercase();
    let groups: Vec<usize> = upper.split('-').map(str::len).collect();
    let hex = upper.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    let shape = matches!(groups.as_slice(), [40] | [8, 16] | [8, 4, 4, 4, 12]);
    (hex && shape).then_some(upper)
}

/// A serial number in Apple's form (uppercase letters and digits, 8 to 14 of them),
/// or `None`.
pub fn normalize_serial(s: &str) -> Option<String> {
    let upper = s.trim().to_ascii_uppercase();
    let ok = (8..=14).contains(&upper.len()) && upper.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some(upper)
}

#[cfg(test)]
mod identity_tests {
    use super::{normalize_serial, normalize_udid};

    #[test]
    fn udids_in_apples_three_shapes_are_uppercased_and_others_refused() {
        assert_eq!(
            normalize_udid("00008030-001a2d3c0e38802e").as_deref(),
            Some("00008030-001A2D3C0E38802E")
        );
        assert_eq!(
            normalize_udid("d5990253-c030-416d-8686-fa4a2445bce0").as_deref(),
            Some("D5990253-C030-416D-8686-FA4A2445BCE0")
        );
        let old = "a".repeat(40);
        assert_eq!(normalize_udid(&old), Some("A".repeat(40)));
        for bad in [
            "",
            "victim",
            "00008030-001A2D3C0E38802",
            "00008030_001A2D3C0E38802E",
            &"g".repeat(40),
            "00008030--001A2D3C0E38802E",
        ] {
            assert_eq!(normalize_udid(bad), None, "{bad}");
        }
        assert_eq!(
            normalize_serial(" f2lxk0xxhg7f ").as_deref(),
            Some("F2LXK0XXHG7F")
        );
        assert_eq!(normalize_serial("F2L-XK0"), None);
    }
}
