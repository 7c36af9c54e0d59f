//! Dynamic Config Profiles: profile XML an administrator pastes into a workflow, with
//! `$USERID$`-style substitution variables (the ones MDM administrators know from
//! Ivanti EPMM) filled in for the clinician at checkout, e.g. to sign them into an app
//! without typing.
//!
//! The XML is checked when it is saved, not when a phone is waiting: every placeholder
//! must be a known variable, and the XML — with placeholders filled — must be a
//! configuration profile (or a single payload) carrying the keys Apple's
//! `TopLevel` and `CommonPayloadKeys` schemas require. Values are XML-escaped when
//! filled in, so a name like `O'Brien & <Sons>` cannot break the profile or add keys.

use plist::{Dictionary, Value};

/// The variables a Dynamic Config Profile may use, written `$NAME$`. The directory-only
/// ones of EPMM (`$USER_DN$`, `$CN$`, `$SAM_ACCOUNT_NAME$` …) are not offered: Lanyard
/// keeps no LDAP entry to fill them from, and a blank would sign nobody in.
pub const VARIABLES: &[&str] = &[
    "USERID",
    "EMAIL",
    "EMAIL_LOCAL",
    "EMAIL_DOMAIN",
    "DISPLAY_NAME",
    "FIRST_NAME",
    "LAST_NAME",
];

/// Why profile XML was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DynamicProfileError {
    /// A placeholder names no known variable.
    #[error("unknown substitution variable ${name}$ on line {line}; known: {known}")]
    UnknownVariable {
        /// The name between the dollar signs.
        name: String,
        /// 1-based line of the placeholder.
        line: usize,
        /// The known variables, comma separated.
        known: String,
    },
    /// Not an XML property list.
    #[error("not a well-formed XML property list: {0}")]
    Malformed(String),
    /// Well-formed, but not a profile or payload dictionary Apple would accept.
    #[error("{0}")]
    NotAPayload(String),
}

/// Values for the variables; unset ones become empty strings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileVariables {
    /// `(name, value)` pairs; names from [`VARIABLES`].
    pub values: Vec<(String, String)>,
}

impl ProfileVariables {
    /// The variables for a user: `USERID`, `DISPLAY_NAME`, and with an email address
    /// `EMAIL`, `EMAIL_LOCAL` (before the `@`) and `EMAIL_DOMAIN` (after it).
    pub fn for_user(username: &str, display_name: &str, email: Option<&str>) -> Self {
        let mut v = ProfileVariables::default()
            .set("USERID", username)
            .set("DISPLAY_NAME", display_name);
        if let Some(email) = email {
            v = v.set("EMAIL", email);
            if let Some((local, domain)) = email.rsplit_once('@') {
                v = v.set("EMAIL_LOCAL", local).set("EMAIL_DOMAIN", domain);
            }
        }
        v
    }

    /// Sets a variable.
    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.values.push((name.to_owned(), value.into()));
        self
    }

    fn get(&self, name: &str) -> &str {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A checked Dynamic Config Profile.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicProfile {
    xml: String,
}

/// One piece of the template: literal XML or a placeholder.
enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// Whether `name` is shaped like a substitution variable (`USER_CUSTOM1`), as opposed
/// to text that merely sits between two dollar signs (`5 or `).
fn variable_shaped(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn pieces(xml: &str) -> Result<Vec<Piece<'_>>, DynamicProfileError> {
    let line_of = |at: usize| xml[..at].matches('\n').count() + 1;
    let mut out = Vec::new();
    let (mut text_from, mut search_from) = (0, 0);
    while let Some(open) = xml[search_from..].find('$').map(|i| search_from + i) {
        let Some(close) = xml[open + 1..].find('$').map(|i| open + 1 + i) else {
            break;
        };
        let name = &xml[open + 1..close];
        if !variable_shaped(name) {
            // A lone dollar sign is text; the next one may open a variable.
            search_from = open + 1;
            continue;
        }
        if !VARIABLES.contains(&name) {
            return Err(DynamicProfileError::UnknownVariable {
                name: name.to_owned(),
                line: line_of(open),
                known: VARIABLES
                    .iter()
                    .map(|v| format!("${v}$"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        out.push(Piece::Text(&xml[text_from..open]));
        out.push(Piece::Var(name));
        text_from = close + 1;
        search_from = close + 1;
    }
    out.push(Piece::Text(&xml[text_from..]));
    Ok(out)
}

fn escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
}

fn check_common(d: &Dictionary, at: &str) -> Result<(), DynamicProfileError> {
    for key in ["PayloadIdentifier", "PayloadUUID", "PayloadType"] {
        match d.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(_) => {
                return Err(DynamicProfileError::NotAPayload(format!(
                    "{at}{key} must be a non-empty string"
                )));
            }
            None => {
                return Err(DynamicProfileError::NotAPayload(format!(
                    "{at}{key} is missing"
                )));
            }
        }
    }
    match d.get("PayloadVersion") {
        Some(Value::Integer(_)) => Ok(()),
        Some(_) => Err(DynamicProfileError::NotAPayload(format!(
            "{at}PayloadVersion must be an integer"
        ))),
        None => Err(DynamicProfileError::NotAPayload(format!(
            "{at}PayloadVersion is missing"
        ))),
    }
}

/// Checks a parsed document is a profile (`PayloadType` `Configuration` with
/// `PayloadContent`) or one payload dictionary.
fn check_document(value: &Value) -> Result<(), DynamicProfileError> {
    let Some(top) = value.as_dictionary() else {
        return Err(DynamicProfileError::NotAPayload(
            "the top level must be a dictionary".into(),
        ));
    };
    check_common(top, "")?;
    if top.get("PayloadType").and_then(Value::as_string) != Some("Configuration") {
        return Ok(());
    }
    let Some(content) = top.get("PayloadContent").and_then(Value::as_array) else {
        return Err(DynamicProfileError::NotAPayload(
            "a Configuration profile needs a PayloadContent array".into(),
        ));
    };
    for (i, item) in content.iter().enumerate() {
        let Some(d) = item.as_dictionary() else {
            return Err(DynamicProfileError::NotAPayload(format!(
                "PayloadContent[{i}] must be a dictionary"
            )));
        };
        check_common(d, &format!("PayloadContent[{i}]."))?;
    }
    Ok(())
}

impl DynamicProfile {
    /// Checks profile XML as an administrator saves it.
    pub fn new(xml: &str) -> Result<Self, DynamicProfileError> {
        let profile = DynamicProfile {
            xml: xml.to_owned(),
        };
        // Filled with plain sample values: what the phone gets has the same shape.
        let sample = VARIABLES
            .iter()
            .fold(ProfileVariables::default(), |v, n| v.set(n, "sample"));
        let value = profile.parse(&sample)?;
        check_document(&value)?;
        Ok(profile)
    }

    /// The XML as saved, placeholders included.
    pub fn template(&self) -> &str {
        &self.xml
    }

    /// The placeholders the profile uses, in order of first use.
    pub fn variables(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for p in pieces(&self.xml).unwrap_or_default() {
            if let Piece::Var(name) = p
                && let Some(known) = VARIABLES.iter().find(|v| **v == name)
                && !out.contains(known)
            {
                out.push(known);
            }
        }
        out
    }

    fn parse(&self, vars: &ProfileVariables) -> Result<Value, DynamicProfileError> {
        let mut filled = String::with_capacity(self.xml.len());
        for piece in pieces(&self.xml)? {
            match piece {
                Piece::Text(t) => filled.push_str(t),
                Piece::Var(name) => escape(vars.get(name), &mut filled),
            }
        }
        Value::from_reader_xml(filled.as_bytes())
            .map_err(|e| DynamicProfileError::Malformed(e.to_string()))
    }

    /// The profile for one clinician: a `.mobileconfig` (XML plist) ready for
    /// `InstallProfile`. A single payload is wrapped in a Configuration profile whose
    /// identifier is the payload's plus `.profile` and whose UUID is `profile_uuid`.
    pub fn render(
        &self,
        vars: &ProfileVariables,
        profile_uuid: &str,
    ) -> Result<Vec<u8>, DynamicProfileError> {
        let value = self.parse(vars)?;
        check_document(&value)?;
        let value = match value {
            Value::Dictionary(d)
                if d.get("PayloadType").and_then(Value::as_string) != Some("Configuration") =>
            {
                let id = d
                    .get("PayloadIdentifier")
                    .and_then(Value::as_string)
                    .unwrap_or_default()
                    .to_owned();
                let mut top = Dictionary::new();
                top.insert("PayloadType".into(), "Configuration".into());
                top.insert("PayloadVersion".into(), Value::Integer(1.into()));
                top.insert("PayloadIdentifier".into(), format!("{id}.profile").into());
                top.insert("PayloadUUID".into(), profile_uuid.into());
                if let Some(name) = d.get("PayloadDisplayName").cloned() {
                    top.insert("PayloadDisplayName".into(), name);
                }
                top.insert("PayloadContent".into(), Value::Array(vec![d.into()]));
                Value::Dictionary(top)
            }
            v => v,
        };
        let mut out = Vec::new();
        value
            .to_writer_xml(&mut out)
            .map_err(|e| DynamicProfileError::Malformed(e.to_string()))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>{body}</dict></plist>"#
        )
    }

    const COMMON: &str = "<key>PayloadType</key><string>com.example.app</string>\
        <key>PayloadVersion</key><integer>1</integer>\
        <key>PayloadIdentifier</key><string>org.x.app</string>\
        <key>PayloadUUID</key><string>7D0C5E2A-1B3C-4D5E-8F90-A1B2C3D4E5F6</string>";

    #[test]
    fn refusals_name_the_problem() {
        let unknown = DynamicProfile::new(&doc(&format!(
            "{COMMON}\n<key>User</key><string>$USER_DN$</string>"
        )));
        match unknown {
            Err(e @ DynamicProfileError::UnknownVariable { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("unknown substitution variable $USER_DN$ on line 2"),
                    "{msg}"
                );
                assert!(msg.contains("$USERID$"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            DynamicProfile::new(&doc(&format!("{COMMON}<key>U</key><string>x"))),
            Err(DynamicProfileError::Malformed(_))
        ));
        assert!(matches!(
            DynamicProfile::new(&doc("<key>PayloadType</key><string>x</string>")),
            Err(DynamicProfileError::NotAPayload(m)) if m.contains("PayloadIdentifier is missing")
        ));
        let bad_version = COMMON.replace("<integer>1</integer>", "<string>1</string>");
        assert!(matches!(
            DynamicProfile::new(&doc(&bad_version)),
            Err(DynamicProfileError::NotAPayload(m)) if m.contains("PayloadVersion must be an integer")
        ));
        let profile_without_content = COMMON.replace("com.example.app", "Configuration");
        assert!(matches!(
            DynamicProfile::new(&doc(&profile_without_content)),
            Err(DynamicProfileError::NotAPayload(m)) if m.contains("PayloadContent")
        ));
        let nested_bad = format!(
            "{}<key>PayloadContent</key><array><dict><key>PayloadType</key><string>a</string></dict></array>",
            profile_without_content
        );
        assert!(matches!(
            DynamicProfile::new(&doc(&nested_bad)),
            Err(DynamicProfileError::NotAPayload(m)) if m.starts_with("PayloadContent[0].")
        ));
    }

    #[test]
    fn a_value_cannot_inject_keys_and_a_full_profile_is_kept_as_is() {
        let p = DynamicProfile::new(&doc(&format!(
            "{COMMON}<key>User</key><string>$USERID$</string><key>Note</key><string>$5 or $10</string>"
        )))
        .unwrap();
        assert_eq!(p.variables(), ["USERID"], "dollar amounts are text");
        let evil =
            ProfileVariables::default().set("USERID", "x</string><key>Evil</key><string>y\u{1}");
        let xml = p.render(&evil, "U").unwrap();
        let top = Value::from_reader_xml(xml.as_slice()).unwrap();
        let payload = top.as_dictionary().unwrap()["PayloadContent"]
            .as_array()
            .unwrap()[0]
            .as_dictionary()
            .unwrap()
            .clone();
        assert_eq!(
            payload["User"].as_string(),
            Some("x</string><key>Evil</key><string>y")
        );
        assert!(!payload.contains_key("Evil"));
        assert_eq!(payload["Note"].as_string(), Some("$5 or $10"));

        let full = DynamicProfile::new(&doc(&format!(
            "{}<key>PayloadContent</key><array><dict>{COMMON}</dict></array>",
            COMMON
                .replace("com.example.app", "Configuration")
                .replace("org.x.app", "org.x")
        )))
        .unwrap();
        let xml = full
            .render(&ProfileVariables::default(), "ignored")
            .unwrap();
        let top = Value::from_reader_xml(xml.as_slice()).unwrap();
        assert_eq!(
            top.as_dictionary().unwrap()["PayloadIdentifier"].as_string(),
            Some("org.x")
        );
    }
}

#[cfg(test)]
mod variable_tests {
    use super::*;

    #[test]
    fn a_users_variables_come_from_their_record() {
        let v = ProfileVariables::for_user("jdoe", "Jane Doe", Some("jane.doe@stmary.org"));
        assert_eq!(v.get("USERID"), "jdoe");
        assert_eq!(v.get("EMAIL_LOCAL"), "jane.doe");
        assert_eq!(v.get("EMAIL_DOMAIN"), "stmary.org");
        assert_eq!(v.get("FIRST_NAME"), "");
        let none = ProfileVariables::for_user("x", "X", None);
        assert_eq!(none.get("EMAIL"), "");
    }

    #[test]
    fn adjacent_variables_and_stray_dollars() {
        let names = |xml: &str| -> Vec<String> {
            pieces(xml)
                .unwrap()
                .into_iter()
                .filter_map(|p| match p {
                    Piece::Var(n) => Some(n.to_owned()),
                    Piece::Text(_) => None,
                })
                .collect()
        };
        assert_eq!(names("$USERID$$EMAIL$"), ["USERID", "EMAIL"]);
        assert_eq!(names("cost $ and $USERID$ then $"), ["USERID"]);
        assert_eq!(names("a$b$c"), Vec::<String>::new());
    }
}
