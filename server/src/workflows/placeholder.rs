//! `[Placeholder]`s in workflow text, resolved per device from device, user and cart
//! attributes (seed 000: "If found, return this device to [Department].").

use std::collections::BTreeMap;

use crate::model::{AttributeDef, Device, Launchpad, User};

/// Longest placeholder name.
const MAX_NAME: usize = 64;

/// The built-in placeholders, and what they read.
const BUILT_IN: &[&str] = &[
    "Department",
    "Facility",
    "Launchpad Manager",
    "Timezone",
    "Launchpad Name",
    "Last Port Number",
    "Device Serial",
    "Device User",
    "Device Home",
    "Display Name",
    // Seed 000 writes the checkout text as `[Imprivata Display Name]`.
    "Imprivata Display Name",
    "Device Name",
    "Device Model",
    "OS Version",
    "User Email",
];

/// Whether `name` is a placeholder this server can fill: a built-in one or a custom
/// attribute (names compare case-insensitively).
pub fn known(name: &str, attributes: &[AttributeDef]) -> bool {
    BUILT_IN.iter().any(|b| b.eq_ignore_ascii_case(name))
        || attributes.iter().any(|a| a.name.eq_ignore_ascii_case(name))
}

/// The placeholder names in `text`, in order. A `[` that is not closed on the same line
/// within 64 characters is plain text.
pub fn names(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find([']', '[', '\n']) {
            Some(close) if after.as_bytes()[close] == b']' && close > 0 && close <= MAX_NAME => {
                out.push(after[..close].trim());
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

/// The first placeholder in `text` this server cannot fill.
pub fn first_unknown<'a>(text: &'a str, attributes: &[AttributeDef]) -> Option<&'a str> {
    names(text).into_iter().find(|n| !known(n, attributes))
}

/// Everything placeholders can read for one device.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The device.
    pub device: Option<Device>,
    /// Its Device User's record.
    pub user: Option<User>,
    /// The cart it was last docked in.
    pub launchpad: Option<Launchpad>,
    /// The device's custom attributes.
    pub device_attributes: BTreeMap<String, serde_json::Value>,
    /// The cart's custom attributes.
    pub launchpad_attributes: BTreeMap<String, serde_json::Value>,
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Context {
    /// The value of one placeholder, or `None` when this device has none.
    pub fn value(&self, name: &str) -> Option<String> {
        let d = self.device.as_ref();
        let lp = self.launchpad.as_ref();
        let key = name.to_ascii_lowercase();
        let v = match key.as_str() {
            "department" => lp.and_then(|l| l.department.clone()),
            "facility" => lp.and_then(|l| l.facility.clone()),
            "launchpad manager" => lp.and_then(|l| l.manager.clone()),
            "timezone" => lp.and_then(|l| l.timezone.clone()),
            "launchpad name" => lp.map(|l| l.name.clone()),
            "last port number" => d.and_then(|d| d.last_port).map(|p| p.to_string()),
            "device serial" => d.and_then(|d| d.serial.clone()),
            "device user" => d.and_then(|d| d.device_user.clone()),
            "device home" => d.and_then(|d| d.device_home.clone()),
            "device name" => d.and_then(|d| d.name.clone()),
            "device model" => d.and_then(|d| d.model.clone()),
            "os version" => d.and_then(|d| d.os_version.clone()),
            "display name" | "imprivata display name" => {
                self.user.as_ref().map(|u| u.display_name.clone())
            }
            "user email" => self.user.as_ref().and_then(|u| u.email.clone()),
            _ => {
                let custom = |m: &BTreeMap<String, serde_json::Value>| {
                    m.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| text(v))
                };
                custom(&self.device_attributes).or_else(|| custom(&self.launchpad_attributes))
            }
        };
        v.filter(|s| !s.is_empty())
    }

    /// `text` with every placeholder filled, or the name of the first one this device
    /// has no value for.
    pub fn render(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('[') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find([']', '[', '\n']) {
                Some(close)
                    if after.as_bytes()[close] == b']' && close > 0 && close <= MAX_NAME =>
                {
                    let name = after[..close].trim();
                    let value = self.value(name).ok_or_else(|| name.to_owned())?;
                    out.push_str(&value);
                    rest = &after[close + 1..];
                }
                _ => {
                    out.push('[');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttributeTarget, AttributeType};

    #[test]
    fn names_are_found_and_unclosed_brackets_are_text() {
        assert_eq!(
            names("Device [Device Serial] at [Launchpad Name] port [Last Port Number]"),
            vec!["Device Serial", "Launchpad Name", "Last Port Number"]
        );
        assert!(names("a [ b").is_empty());
        assert!(names("[]").is_empty());
        assert_eq!(names("[[Department]"), vec!["Department"]);
    }

    #[test]
    fn unknown_placeholders_are_named_and_custom_attributes_are_known() {
        let attrs = vec![AttributeDef {
            target: AttributeTarget::Launchpad,
            name: "Floor".into(),
            value_type: AttributeType::Int,
            builtin: false,
        }];
        assert_eq!(first_unknown("[Department] [Floor]", &attrs), None);
        assert_eq!(first_unknown("[department] [Flor]", &attrs), Some("Flor"));
    }

    #[test]
    fn render_fills_from_device_cart_and_user() {
        let mut cx = Context {
            launchpad: Some(Launchpad {
                id: "c1".into(),
                name: "4 West Cart 1".into(),
                ports: 10,
                department: Some("4 West".into()),
                facility: None,
                manager: Some("mgr@example.org".into()),
                timezone: Some("America/Chicago".into()),
            }),
            ..Context::default()
        };
        cx.launchpad_attributes
            .insert("Floor".into(), serde_json::json!(4));
        let out = cx.render("[Launchpad Name] ([Department]) floor [Floor]");
        assert_eq!(out.as_deref(), Ok("4 West Cart 1 (4 West) floor 4"));
        assert_eq!(cx.render("[Device Serial]"), Err("Device Serial".into()));
        assert_eq!(cx.render("a [ b").as_deref(), Ok("a [ b"));
    }
}
