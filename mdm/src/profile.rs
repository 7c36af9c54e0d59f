//! Configuration profiles (`.mobileconfig`) built from typed payloads.

use plist::{Dictionary, Value};

/// A configuration profile: a top-level dictionary of type `Configuration` holding
/// payloads.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Reverse-DNS identifier, e.g. `org.stmary.lanyard.wifi.provisioning`.
    pub identifier: String,
    /// UUID of the profile (upper- or lowercase hex, 36 characters).
    pub uuid: String,
    /// Name shown in Settings.
    pub display_name: String,
    /// Organization shown in Settings.
    pub organization: Option<String>,
    /// Remove the profile this long after installation (e.g. a provisioning network
    /// "automatically forgotten after 60 minutes").
    pub remove_after_secs: Option<u64>,
    /// The payloads.
    pub payloads: Vec<Payload>,
}

/// One payload of a profile.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// `com.apple.wifi.managed`.
    Wifi(WifiPayload),
    /// `com.apple.shareddeviceconfiguration`: text on the Lock screen of a supervised
    /// phone (seed 000's wallpaper "Lock Screen Text": "If found, return this device
    /// to 4 West.").
    LockScreenMessage {
        /// UUID of this payload.
        uuid: String,
        /// The footnote shown on the Lock screen.
        footnote: Option<String>,
        /// Asset tag information shown on the Lock screen.
        asset_tag: Option<String>,
    },
}

/// A Wi-Fi network, personal (passphrase) or enterprise (802.1X / EAP).
#[derive(Clone, Debug, PartialEq)]
pub struct WifiPayload {
    /// UUID of this payload.
    pub uuid: String,
    /// Network name.
    pub ssid: String,
    /// Security.
    pub encryption: WifiEncryption,
    /// The passphrase for WEP/WPA personal networks.
    pub password: Option<String>,
    /// 802.1X settings for an enterprise network (WPA2/WPA3 Enterprise); `None` for
    /// personal or open networks.
    pub enterprise: Option<EnterpriseWifi>,
    /// Join automatically.
    pub auto_join: bool,
    /// The network does not broadcast its SSID.
    pub hidden: bool,
    /// Use the device's real MAC address on this network (some hospital networks
    /// register devices by MAC; seed 000's "Disable randomization").
    pub disable_mac_randomization: bool,
}

/// How a phone authenticates to an enterprise (802.1X) network.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct EnterpriseWifi {
    /// EAP methods accepted, e.g. `[Peap]` (Apple requires at least one; an empty list
    /// makes a profile iOS refuses).
    pub eap_types: Vec<EapType>,
    /// Account name (omit to have the user asked, or for EAP-TLS with a certificate).
    pub username: Option<String>,
    /// Account password (omit to have the user asked).
    pub password: Option<String>,
    /// Anonymous outer identity for TTLS / PEAP / EAP-FAST.
    pub outer_identity: Option<String>,
    /// RADIUS server certificate names to trust, e.g. `radius.stmary.org`.
    pub trusted_server_names: Vec<String>,
    /// Inner authentication for TTLS.
    pub ttls_inner: Option<TtlsInner>,
    /// PayloadUUID of the identity certificate payload used for EAP-TLS.
    pub identity_certificate_uuid: Option<String>,
    /// PayloadUUIDs of certificate payloads trusted as the server's anchors.
    pub anchor_certificate_uuids: Vec<String>,
}

/// An EAP method, by Apple's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EapType {
    /// EAP-TLS (13): certificate authentication.
    Tls,
    /// TTLS (21).
    Ttls,
    /// PEAP (25): the usual username and password method.
    Peap,
    /// EAP-FAST (43).
    Fast,
}

impl EapType {
    fn number(self) -> i64 {
        match self {
            EapType::Tls => 13,
            EapType::Ttls => 21,
            EapType::Peap => 25,
            EapType::Fast => 43,
        }
    }
}

/// TTLS inner authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlsInner {
    /// PAP.
    Pap,
    /// CHAP.
    Chap,
    /// MSCHAP.
    Mschap,
    /// MSCHAPv2 (Apple's default).
    Mschapv2,
    /// EAP.
    Eap,
}

impl TtlsInner {
    fn as_str(self) -> &'static str {
        match self {
            TtlsInner::Pap => "PAP",
            TtlsInner::Chap => "CHAP",
            TtlsInner::Mschap => "MSCHAP",
            TtlsInner::Mschapv2 => "MSCHAPv2",
            TtlsInner::Eap => "EAP",
        }
    }
}

impl EnterpriseWifi {
    /// The `EAPClientConfiguration` dictionary.
    fn dictionary(&self) -> Dictionary {
        let mut d = Dictionary::new();
        let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        d.insert(
            "AcceptEAPTypes".into(),
            Value::Array(
                self.eap_types
                    .iter()
                    .map(|t| Value::Integer(t.number().into()))
                    .collect(),
            ),
        );
        let optional = [
            ("UserName", &self.username),
            ("UserPassword", &self.password),
            ("OuterIdentity", &self.outer_identity),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                d.insert(key.into(), Value::String(v.clone()));
            }
        }
        if !self.trusted_server_names.is_empty() {
            d.insert(
                "TLSTrustedServerNames".into(),
                strings(&self.trusted_server_names),
            );
        }
        if !self.anchor_certificate_uuids.is_empty() {
            d.insert(
                "PayloadCertificateAnchorUUID".into(),
                strings(&self.anchor_certificate_uuids),
            );
        }
        if let Some(inner) = self.ttls_inner {
            d.insert(
                "TTLSInnerAuthentication".into(),
                Value::String(inner.as_str().into()),
            );
        }
        d
    }
}

/// Wi-Fi security, as Apple names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WifiEncryption {
    /// Open network.
    None,
    /// WPA personal.
    Wpa,
    /// WPA2 personal.
    Wpa2,
    /// WPA3 personal.
    Wpa3,
    /// Any personal security.
    Any,
}

impl WifiEncryption {
    fn as_str(self) -> &'static str {
        match self {
            WifiEncryption::None => "None",
            WifiEncryption::Wpa => "WPA",
            WifiEncryption::Wpa2 => "WPA2",
            WifiEncryption::Wpa3 => "WPA3",
            WifiEncryption::Any => "Any",
        }
    }
}

fn common(d: &mut Dictionary, kind: &str, identifier: String, uuid: &str, display: &str) {
    d.insert("PayloadType".into(), Value::String(kind.into()));
    d.insert("PayloadVersion".into(), Value::Integer(1.into()));
    d.insert("PayloadIdentifier".into(), Value::String(identifier));
    d.insert("PayloadUUID".into(), Value::String(uuid.into()));
    d.insert("PayloadDisplayName".into(), Value::String(display.into()));
}

impl Payload {
    /// The payload dictionary; `index` makes its identifier unique within the profile.
    pub fn dictionary(&self, profile_identifier: &str, index: usize) -> Dictionary {
        let mut d = Dictionary::new();
        match self {
            Payload::Wifi(w) => {
                let id = format!("{profile_identifier}.wifi.{index}");
                common(
                    &mut d,
                    "com.apple.wifi.managed",
                    id,
                    &w.uuid,
                    &format!("Wi-Fi ({})", w.ssid),
                );
                d.insert("SSID_STR".into(), Value::String(w.ssid.clone()));
                d.insert(
                    "EncryptionType".into(),
                    Value::String(w.encryption.as_str().into()),
                );
                if let Some(p) = &w.password {
                    d.insert("Password".into(), Value::String(p.clone()));
                }
                if let Some(e) = &w.enterprise {
                    d.insert(
                        "EAPClientConfiguration".into(),
                        Value::Dictionary(e.dictionary()),
                    );
                    if let Some(uuid) = &e.identity_certificate_uuid {
                        d.insert("PayloadCertificateUUID".into(), Value::String(uuid.clone()));
                    }
                }
                d.insert("AutoJoin".into(), Value::Boolean(w.auto_join));
                d.insert("HIDDEN_NETWORK".into(), Value::Boolean(w.hidden));
                d.insert(
                    "DisableAssociationMACRandomization".into(),
                    Value::Boolean(w.disable_mac_randomization),
                );
            }
            Payload::LockScreenMessage {
                uuid,
                footnote,
                asset_tag,
            } => {
                let id = format!("{profile_identifier}.lockscreen.{index}");
                common(
                    &mut d,
                    "com.apple.shareddeviceconfiguration",
                    id,
                    uuid,
                    "Lock Screen Message",
                );
                if let Some(f) = footnote {
                    d.insert("LockScreenFootnote".into(), Value::String(f.clone()));
                }
                if let Some(t) = asset_tag {
                    d.insert("AssetTagInformation".into(), Value::String(t.clone()));
                }
            }
        }
        d
    }
}

impl Profile {
    /// The top-level profile dictionary.
    pub fn dictionary(&self) -> Dictionary {
        let mut d = Dictionary::new();
        common(
            &mut d,
            "Configuration",
            self.identifier.clone(),
            &self.uuid,
            &self.display_name,
        );
        if let Some(o) = &self.organization {
            d.insert("PayloadOrganization".into(), Value::String(o.clone()));
        }
        if let Some(secs) = self.remove_after_secs {
            // Apple's key is a real number of seconds.
            d.insert("DurationUntilRemoval".into(), Value::Real(secs as f64));
        }
        let content = self
            .payloads
            .iter()
            .enumerate()
            .map(|(i, p)| Value::Dictionary(p.dictionary(&self.identifier, i + 1)))
            .collect();
        d.insert("PayloadContent".into(), Value::Array(content));
        d
    }

    /// The `.mobileconfig` bytes (XML plist, unsigned).
    pub fn to_mobileconfig(&self) -> Result<Vec<u8>, plist::Error> {
        let mut out = Vec::new();
        Value::Dictionary(self.dictionary()).to_writer_xml(&mut out)?;
        Ok(out)
    }
}
