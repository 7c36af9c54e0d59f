//! Checks a workflow or rule before it is stored: every error names the field, so an
//! admin sees `actions[2].timezone: "America/Chicgo" is not in the tz database`.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;

use super::model::{
    Action, Condition, ConditionField, Operator, RuleSpec, Schedule, Trigger, Workflow,
    WorkflowModel, WorkflowSpec,
};
use super::placeholder;
use crate::error::AppError;
use crate::model::{AttributeDef, AttributeTarget};
use crate::validate;

/// Most actions in one workflow.
const MAX_ACTIONS: usize = 50;
/// Largest wallpaper image.
/// Largest wallpaper image: its base64 must fit in one request body (4 MiB).
const MAX_IMAGE_BYTES: usize = 2_800_000;
/// Longest email body or profile XML.
const MAX_LONG_TEXT: usize = 64 * 1024;

/// Text that may hold line breaks and tabs (an email body), but no other control
/// characters.
fn long_text(field: &str, value: &str, max: usize) -> Result<String, AppError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AppError::invalid(field, "must not be empty"));
    }
    if v.len() > max {
        return Err(AppError::invalid(
            field,
            format!("must be at most {max} bytes"),
        ));
    }
    if v.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(AppError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(v.to_owned())
}

/// Refuses a placeholder the server cannot fill, naming it.
fn placeholders(field: &str, text: &str, attrs: &[AttributeDef]) -> Result<(), AppError> {
    match placeholder::first_unknown(text, attrs) {
        Some(name) => Err(AppError::invalid(
            field,
            format!(
                "unknown placeholder [{name}] (not a built-in placeholder or custom attribute)"
            ),
        )),
        None => Ok(()),
    }
}

/// Text with placeholders checked.
fn template(
    field: &str,
    value: &str,
    max: usize,
    attrs: &[AttributeDef],
) -> Result<String, AppError> {
    let v = validate::text(field, value, max)?;
    placeholders(field, &v, attrs)?;
    Ok(v)
}

/// Whether `name` is an IANA zone in the bundled tz database.
pub fn valid_timezone(name: &str) -> bool {
    jiff::tz::TimeZone::get(name).is_ok()
}

/// A time zone, or text made only of placeholders (filled per device at run time).
fn timezone(field: &str, value: &str, attrs: &[AttributeDef]) -> Result<String, AppError> {
    let v = validate::text(field, value, 64)?;
    if placeholder::names(&v).is_empty() {
        if !valid_timezone(&v) {
            return Err(AppError::invalid(
                field,
                format!("{v:?} is not a time zone in the tz database (e.g. America/Chicago)"),
            ));
        }
    } else {
        placeholders(field, &v, attrs)?;
    }
    Ok(v)
}

fn language_tag(field: &str, v: &str, sep: char) -> Result<String, AppError> {
    let v = validate::text(field, v, 16)?;
    let mut parts = v.split(sep);
    let lang_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_lowercase()));
    let rest_ok =
        parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if lang_ok && rest_ok {
        Ok(v)
    } else {
        Err(AppError::invalid(
            field,
            format!("{v:?} is not a language code like en or en{sep}US"),
        ))
    }
}

fn image(field: &str, b64: &str) -> Result<(), AppError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| AppError::invalid(field, "must be base64"))?;
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(AppError::invalid(field, "must be at most 2.8 MB"));
    }
    let png = bytes.starts_with(b"\x89PNG\r\n\x1a\n");
    let jpeg = bytes.starts_with(&[0xFF, 0xD8, 0xFF]);
    if !png && !jpeg {
        return Err(AppError::invalid(field, "must be a PNG or JPEG image"));
    }
    Ok(())
}

/// The attributes Set Attribute may write: Device Home, Device User and custom device
/// attributes.
fn settable(name: &str, attrs: &[AttributeDef]) -> bool {
    ["Device Home", "Device User"]
        .iter()
        .any(|b| b.eq_ignore_ascii_case(name))
        || attrs
            .iter()
            .any(|a| a.target == AttributeTarget::Device && a.name.eq_ignore_ascii_case(name))
}

fn action(i: usize, a: &mut Action, attrs: &[AttributeDef]) -> Result<(), AppError> {
    let f = |name: &str| format!("actions[{i}].{name}");
    match a {
        Action::PerformMdmCommand {
            clear_passcode,
            assign_dep_profile,
            delete_from_mdm,
        } => {
            if let Some(p) = assign_dep_profile {
                *p = validate::text(&f("assign_dep_profile"), p, 128)?;
            }
            if !*clear_passcode && assign_dep_profile.is_none() && !*delete_from_mdm {
                return Err(AppError::invalid(
                    &f("type"),
                    "choose at least one MDM command (clear_passcode, assign_dep_profile, delete_from_mdm)",
                ));
            }
        }
        Action::Erase {
            supervised_and_dep, ..
        } => {
            if !*supervised_and_dep {
                return Err(AppError::invalid(
                    &f("supervised_and_dep"),
                    "Erase works on supervised and DEP devices only; it must be true",
                ));
            }
        }
        Action::SetTimezone { timezone: tz } => *tz = timezone(&f("timezone"), tz, attrs)?,
        Action::AddWifi {
            ssid,
            security,
            password,
            username,
            forget_after_minutes,
            ..
        } => {
            *ssid = template(&f("ssid"), ssid, 32, attrs)?;
            if let Some(p) = password.as_deref()
                && (p.is_empty() || p.len() > 63)
            {
                return Err(AppError::invalid(
                    &f("password"),
                    "must be 1 to 63 characters",
                ));
            }
            if let Some(u) = username {
                *u = template(&f("username"), u, 128, attrs)?;
            }
            use super::model::WifiSecurity;
            match security {
                WifiSecurity::WpaPersonal if password.as_deref().is_none_or(|p| p.len() < 8) => {
                    return Err(AppError::invalid(
                        &f("password"),
                        "WPA/WPA2 Personal needs a passphrase of 8 to 63 characters",
                    ));
                }
                WifiSecurity::None if password.is_some() => {
                    return Err(AppError::invalid(
                        &f("password"),
                        "an open network has no password",
                    ));
                }
                _ => {}
            }
            if forget_after_minutes.is_some_and(|m| m == 0 || m > 7 * 24 * 60) {
                return Err(AppError::invalid(
                    &f("forget_after_minutes"),
                    "must be 1 to 10080 (a week)",
                ));
            }
        }
        Action::SetLanguageAndLocale { language, locale } => {
            *language = language_tag(&f("language"), language, '-')?;
            *locale = language_tag(&f("locale"), locale, '_')?;
        }
        Action::SetName { name } => *name = template(&f("name"), name, 64, attrs)?,
        Action::SetWallpaper {
            image_base64,
            lock_screen_text,
            text_color,
            ..
        } => {
            if let Some(img) = image_base64 {
                image(&f("image_base64"), img)?;
            }
            if let Some(t) = lock_screen_text {
                *t = long_text(&f("lock_screen_text"), t, 512)?;
                placeholders(&f("lock_screen_text"), t, attrs)?;
            }
            if let Some(c) = text_color {
                let ok = c.len() == 7
                    && c.starts_with('#')
                    && c[1..].chars().all(|ch| ch.is_ascii_hexdigit());
                if !ok {
                    return Err(AppError::invalid(&f("text_color"), "must be #RRGGBB"));
                }
            }
            if image_base64.is_none() && lock_screen_text.is_none() {
                return Err(AppError::invalid(
                    &f("image_base64"),
                    "give an image, lock screen text, or both",
                ));
            }
        }
        Action::SetAttribute { attribute, value } => {
            *attribute = validate::text(&f("attribute"), attribute, 64)?;
            if !settable(attribute, attrs) {
                return Err(AppError::invalid(
                    &f("attribute"),
                    format!(
                        "{attribute:?} is not Device Home, Device User or a custom device attribute"
                    ),
                ));
            }
            *value = template(&f("value"), value, 256, attrs)?;
        }
        Action::CheckOutDevice { display_text, .. } => {
            if let Some(t) = display_text {
                *t = template(&f("display_text"), t, 128, attrs)?;
            }
        }
        Action::CheckInDevice { logout_apps, .. } => {
            for (j, app) in logout_apps.iter_mut().enumerate() {
                let field = f(&format!("logout_apps[{j}].app"));
                app.app = validate::text(&field, &app.app, 155)?;
                let bundle_id = app.app.contains('.')
                    && app
                        .app
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
                if !bundle_id {
                    return Err(AppError::invalid(
                        &field,
                        format!("{:?} is not a bundle id like com.epic.rover", app.app),
                    ));
                }
                app.name = validate::text(&f(&format!("logout_apps[{j}].name")), &app.name, 128)?;
            }
        }
        Action::AddDynamicConfigProfile { name, profile_xml } => {
            *name = validate::text(&f("name"), name, 128)?;
            *profile_xml = long_text(&f("profile_xml"), profile_xml, MAX_LONG_TEXT)?;
            lanyard_mdm::dynamic::DynamicProfile::new(profile_xml)
                .map_err(|e| AppError::invalid(&f("profile_xml"), e))?;
        }
        Action::UpdateIos { .. } | Action::Reboot {} => {}
        Action::SendEmail {
            to, subject, body, ..
        } => {
            if to.is_empty() || to.len() > 20 {
                return Err(AppError::invalid(&f("to"), "give 1 to 20 addresses"));
            }
            for (j, addr) in to.iter_mut().enumerate() {
                let field = f(&format!("to[{j}]"));
                *addr = template(&field, addr, 254, attrs)?;
                if placeholder::names(addr).is_empty() && !plausible_address(addr) {
                    return Err(AppError::invalid(
                        &field,
                        format!("{addr:?} is not an email address"),
                    ));
                }
            }
            *subject = template(&f("subject"), subject, 256, attrs)?;
            *body = long_text(&f("body"), body, MAX_LONG_TEXT)?;
            placeholders(&f("body"), body, attrs)?;
        }
        Action::OnFailure {
            retry,
            max_attempts,
            run_workflow,
            reboot_and_check_in,
        } => {
            match (*retry, *max_attempts) {
                (true, None) => {
                    return Err(AppError::invalid(
                        &f("max_attempts"),
                        "retry needs max_attempts (1 to 10)",
                    ));
                }
                (true, Some(n)) if !(1..=10).contains(&n) => {
                    return Err(AppError::invalid(&f("max_attempts"), "must be 1 to 10"));
                }
                (false, Some(_)) => {
                    return Err(AppError::invalid(
                        &f("max_attempts"),
                        "only applies with retry",
                    ));
                }
                _ => {}
            }
            if let Some(w) = run_workflow {
                *w = validate::text(&f("run_workflow"), w, 128)?;
            }
            if !*retry && run_workflow.is_none() && !*reboot_and_check_in {
                return Err(AppError::invalid(
                    &f("type"),
                    "choose at least one of retry, run_workflow, reboot_and_check_in",
                ));
            }
        }
    }
    Ok(())
}

/// `local@domain.tld` with nothing odd in it; the SMTP client parses it fully at send.
pub fn plausible_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',')
}

/// The workflow an On Failure action runs, if any.
pub fn on_failure_target(spec: &WorkflowSpec) -> Option<&str> {
    spec.actions.iter().find_map(|a| match a {
        Action::OnFailure { run_workflow, .. } => run_workflow.as_deref(),
        _ => None,
    })
}

/// Validates (and trims) a workflow about to be stored as `id` among `all` (the stored
/// workflows; the one being replaced is ignored). Refuses unknown placeholders, bad
/// zones, an On Failure naming a missing workflow, and "run another workflow" cycles.
pub fn workflow(
    spec: &mut WorkflowSpec,
    id: &str,
    all: &[Workflow],
    attrs: &[AttributeDef],
) -> Result<(), AppError> {
    spec.name = validate::text("name", &spec.name, 128)?;
    spec.description = spec.description.trim().to_owned();
    if spec.description.chars().count() > 1024 {
        return Err(AppError::invalid(
            "description",
            "must be at most 1024 characters",
        ));
    }
    if spec.actions.is_empty() || spec.actions.len() > MAX_ACTIONS {
        return Err(AppError::invalid(
            "actions",
            format!("give 1 to {MAX_ACTIONS} actions"),
        ));
    }
    let on_failures = spec
        .actions
        .iter()
        .filter(|a| matches!(a, Action::OnFailure { .. }))
        .count();
    if on_failures > 1 {
        return Err(AppError::invalid(
            "actions",
            "at most one On Failure action",
        ));
    }
    if on_failures == spec.actions.len() {
        return Err(AppError::invalid(
            "actions",
            "On Failure needs other actions to guard",
        ));
    }
    for (i, a) in spec.actions.iter_mut().enumerate() {
        action(i, a, attrs)?;
    }
    // iOS Express Checkout: the locker app unlocks at once, on the phone, with no MDM
    // round trip — the model's point (seed 000 makes it the default for checkout
    // workflows "except in cases where it does not support required functionality").
    // A step that needs the MDM belongs in a Device Enrollment Program or Over the Air
    // workflow.
    if spec.model == WorkflowModel::ExpressCheckout
        && let Some((i, a)) = spec.actions.iter().enumerate().find(|(_, a)| a.needs_mdm())
    {
        return Err(AppError::invalid(
            &format!("actions[{i}]"),
            format!(
                "{} needs the MDM, which an iOS Express Checkout workflow does not use; choose the Device Enrollment Program or Over the Air model",
                a.kind()
            ),
        ));
    }
    let has_wifi = spec
        .actions
        .iter()
        .any(|a| matches!(a, Action::AddWifi { .. }));
    if let Some(i) = spec.actions.iter().position(|a| {
        matches!(
            a,
            Action::Erase {
                return_to_service: true,
                ..
            }
        )
    }) && !has_wifi
    {
        return Err(AppError::invalid(
            &format!("actions[{i}].return_to_service"),
            "Return to Service brings the phone back on a Wi-Fi network: add an Add WiFi action to this workflow",
        ));
    }
    if let Some(target) = on_failure_target(spec) {
        let i = spec
            .actions
            .iter()
            .position(|a| matches!(a, Action::OnFailure { .. }))
            .unwrap_or(0);
        let field = format!("actions[{i}].run_workflow");
        if target == id {
            return Err(AppError::invalid(
                &field,
                "a workflow cannot run itself on failure (use retry)",
            ));
        }
        if !all.iter().any(|w| w.id == target) {
            return Err(AppError::invalid(
                &field,
                format!("no workflow with id {target:?}"),
            ));
        }
        // Follow "run another workflow" links from the target: reaching `id` again is a
        // cycle that would run forever.
        let links: BTreeMap<&str, &str> = all
            .iter()
            .filter(|w| w.id != id)
            .filter_map(|w| on_failure_target(&w.spec).map(|t| (w.id.as_str(), t)))
            .collect();
        let mut path = vec![id, target];
        let mut seen = BTreeSet::from([id]);
        let mut at = target;
        while let Some(next) = links.get(at) {
            path.push(next);
            if *next == id || !seen.insert(at) {
                return Err(AppError::invalid(
                    &field,
                    format!(
                        "running {target:?} on failure makes a cycle: {}",
                        path.join(" → ")
                    ),
                ));
            }
            at = next;
        }
    }
    Ok(())
}

/// A schedule's first date and time, parsed.
pub fn schedule_start(s: &Schedule) -> Result<jiff::civil::DateTime, AppError> {
    let date: jiff::civil::Date = s.date.trim().parse().map_err(|_| {
        AppError::invalid(
            "trigger.date",
            format!("{:?} is not a date like 2025-01-07", s.date),
        )
    })?;
    let time = parse_time(&s.time).ok_or_else(|| {
        AppError::invalid(
            "trigger.time",
            format!("{:?} is not a time like 06:00", s.time),
        )
    })?;
    Ok(date.to_datetime(time))
}

fn parse_time(s: &str) -> Option<jiff::civil::Time> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: i8 = h.parse().ok()?;
    let m: i8 = m.parse().ok()?;
    jiff::civil::Time::new(h, m, 0, 0).ok()
}

/// Statuses a Checkout Status condition can name.
pub const STATUSES: &[&str] = &[
    "checked_in",
    "checkout_pending",
    "checked_out",
    "returning",
    "blocked",
    "unenrolled",
];

fn condition(i: usize, c: &mut Condition, attrs: &[AttributeDef]) -> Result<(), AppError> {
    let f = |name: &str| format!("conditions[{i}].{name}");
    let numeric_field = matches!(
        c.field,
        ConditionField::BatteryLevel | ConditionField::PortNumber
    );
    match (&c.field, &c.attribute) {
        (ConditionField::Attribute, None) => {
            return Err(AppError::invalid(
                &f("attribute"),
                "name the custom attribute",
            ));
        }
        (ConditionField::Attribute, Some(name))
            if !attrs.iter().any(|a| a.name.eq_ignore_ascii_case(name)) =>
        {
            return Err(AppError::invalid(
                &f("attribute"),
                format!("no custom attribute {name:?}"),
            ));
        }
        (_, Some(_)) => {
            return Err(AppError::invalid(
                &f("attribute"),
                "only for field \"attribute\"",
            ));
        }
        _ => {}
    }
    if numeric_field {
        let Some(v) = c.value.as_i64() else {
            return Err(AppError::invalid(&f("value"), "must be a whole number"));
        };
        // A battery is 0–100 %, a port 1–64: a value outside can never match.
        let (low, high) = match c.field {
            ConditionField::BatteryLevel => (0, 100),
            _ => (1, 64),
        };
        if !(low..=high).contains(&v) {
            return Err(AppError::invalid(
                &f("value"),
                format!("must be {low} to {high}"),
            ));
        }
    } else if c.op.numeric() && c.field != ConditionField::Attribute {
        return Err(AppError::invalid(
            &f("op"),
            "greater/less than compare numbers only",
        ));
    }
    if let Some(s) = c.value.as_str() {
        let s = template(&f("value"), s, 256, attrs)?;
        if c.field == ConditionField::CheckoutStatus && !STATUSES.contains(&s.as_str()) {
            return Err(AppError::invalid(
                &f("value"),
                format!("{s:?} is not a status ({})", STATUSES.join(", ")),
            ));
        }
        c.value = serde_json::Value::String(s);
    } else if !numeric_field && !c.value.is_i64() && !c.value.is_boolean() {
        return Err(AppError::invalid(
            &f("value"),
            "must be text, a number or true/false",
        ));
    }
    Ok(())
}

/// Refuses numeric conditions on one field that no value can satisfy, such as a port
/// range written backwards (`>= 16` and `<= 10`).
fn ranges(conditions: &[Condition]) -> Result<(), AppError> {
    let mut bounds: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for c in conditions {
        let Some(v) = c.value.as_i64() else { continue };
        let key = match (&c.field, &c.attribute) {
            (ConditionField::Attribute, Some(a)) => a.to_ascii_lowercase(),
            (field, _) => serde_json::to_string(field).unwrap_or_default(),
        };
        let b = bounds.entry(key).or_insert((i64::MIN, i64::MAX));
        match c.op {
            Operator::GreaterThan => b.0 = b.0.max(v.saturating_add(1)),
            Operator::GreaterThanOrEqual => b.0 = b.0.max(v),
            Operator::LessThan => b.1 = b.1.min(v.saturating_sub(1)),
            Operator::LessThanOrEqual => b.1 = b.1.min(v),
            Operator::Is => {
                b.0 = b.0.max(v);
                b.1 = b.1.min(v);
            }
            Operator::IsNot => {}
        }
        if b.0 > b.1 {
            let name = match &c.field {
                ConditionField::PortNumber => "port",
                ConditionField::BatteryLevel => "battery",
                _ => "value",
            };
            return Err(AppError::invalid(
                "conditions",
                format!(
                    "{name} range reversed: no value is at least {} and at most {}",
                    b.0, b.1
                ),
            ));
        }
    }
    Ok(())
}

/// Validates (and trims) a rule among the stored workflows.
pub fn rule(
    spec: &mut RuleSpec,
    workflows: &[Workflow],
    attrs: &[AttributeDef],
) -> Result<(), AppError> {
    spec.name = validate::text("name", &spec.name, 128)?;
    spec.description = spec.description.trim().to_owned();
    if spec.description.chars().count() > 1024 {
        return Err(AppError::invalid(
            "description",
            "must be at most 1024 characters",
        ));
    }
    if let Trigger::Schedule(s) = &spec.trigger {
        schedule_start(s)?;
    }
    if spec.conditions.len() > 20 {
        return Err(AppError::invalid("conditions", "at most 20"));
    }
    for (i, c) in spec.conditions.iter_mut().enumerate() {
        condition(i, c, attrs)?;
    }
    ranges(&spec.conditions)?;
    if spec.workflows.is_empty() || spec.workflows.len() > 10 {
        return Err(AppError::invalid("workflows", "give 1 to 10 workflow ids"));
    }
    for (i, id) in spec.workflows.iter().enumerate() {
        if !workflows.iter().any(|w| &w.id == id) {
            return Err(AppError::invalid(
                &format!("workflows[{i}]"),
                format!("no workflow with id {id:?}"),
            ));
        }
    }
    Ok(())
}
