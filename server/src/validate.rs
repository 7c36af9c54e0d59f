//! Field validation shared by the handlers: every error names its field.

use crate::error::AppError;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
pub const MAX_LIMIT: u32 = 500;

/// Checks a page size.
pub fn limit(limit: Option<u32>) -> Result<u32, AppError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(AppError::invalid(
            "limit",
            format!("must be 1 to {MAX_LIMIT}"),
        )),
    }
}

/// A trimmed, non-empty text without control characters, at most `max` characters as
/// sent (the OpenAPI document's `maxLength` counts the same way).
pub fn text(field: &str, value: &str, max: usize) -> Result<String, AppError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AppError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(AppError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(AppError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(v.to_owned())
}

/// As [`text`], for optional fields; an empty string counts as absent.
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, AppError> {
    match value {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => text(field, v, max).map(Some),
    }
}

/// Most characters in a badge id.
pub const MAX_BADGE_CHARS: usize = 128;

/// A raw badge id as a reader gives it: trimmed, 1 to 128 characters, none of them a
/// control character. (The one rule for badges from the API, a cart and an import.)
pub fn badge(field: &str, raw: &str) -> Result<lanyard_protocol::BadgeId, AppError> {
    let v = raw.trim();
    if v.is_empty() || raw.chars().count() > MAX_BADGE_CHARS || v.chars().any(char::is_control) {
        return Err(AppError::invalid(
            field,
            format!("must be 1 to {MAX_BADGE_CHARS} printable characters"),
        ));
    }
    Ok(lanyard_protocol::BadgeId::new(v))
}

/// A username: 1–64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn username(field: &str, value: &str) -> Result<String, AppError> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(AppError::invalid(
            field,
            "must be 1 to 64 letters, digits, '.', '_', '-' or '@'",
        ))
    }
}

/// An identifier: 1–64 of lowercase letters, digits and `-`.
pub fn ident(field: &str, value: &str) -> Result<String, AppError> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(v.to_owned())
    } else {
        Err(AppError::invalid(
            field,
            "must be 1 to 64 lowercase letters, digits or '-'",
        ))
    }
}

/// A plausible email address (`local@domain` with a dot in the domain).
pub fn email(field: &str, value: Option<&str>) -> Result<Option<String>, AppError> {
    let Some(v) = optional_text(field, value, 254)? else {
        return Ok(None);
    };
    // One `@`, no spaces, something before it, and a domain with a dot inside it: what
    // the OpenAPI document's pattern for email fields says too.
    let well_formed = !v.chars().any(char::is_whitespace)
        && v.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain
                    .char_indices()
                    .any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len())
        });
    if well_formed {
        Ok(Some(v))
    } else {
        Err(AppError::invalid(field, "must be an email address"))
    }
}

/// A path's username or id as a lookup key: one that could never have been created is
/// simply not found (404), like any other unknown one.
pub fn lookup_key(what: &'static str, value: &str) -> Result<String, AppError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 64 {
        return Err(AppError::NotFound(format!("{what} not found")));
    }
    Ok(v.to_owned())
}

/// A search term: trimmed, at most 128 characters; empty means no search.
pub fn search(field: &str, value: Option<String>) -> Result<Option<String>, AppError> {
    let Some(v) = value else {
        return Ok(None);
    };
    let v = v.trim();
    if v.chars().count() > 128 {
        return Err(AppError::invalid(field, "must be at most 128 characters"));
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}
