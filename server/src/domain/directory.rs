//! The rules for people and carts as IT creates them: what a valid user, password and
//! cart are, shared by the admin API and the CSV imports (so an import row is checked
//! exactly as the API would check it).

use lanyard_protocol::kdf::SlowHash;
use serde::Deserialize;

use crate::error::AppError;
use crate::keys::random_bytes;
use crate::model::Launchpad;
use crate::storage::NewUser;
use crate::validate;

/// PBKDF2 iterations for user passwords.
pub const PASSWORD_ITERATIONS: u32 = 100_000;

/// `POST /api/v1/users` body.
#[derive(utoipa::ToSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Username.
    #[schema(pattern = r"^\s*[A-Za-z0-9._@-]{1,64}\s*$")]
    pub username: String,
    /// Display name.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub display_name: String,
    /// Email.
    #[schema(
        max_length = 254,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*(|[^@\s\u0000-\u001F\u007F-\u009F]+@[^@\s\u0000-\u001F\u007F-\u009F]+\.[^@\s\u0000-\u001F\u007F-\u009F]+)[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub email: Option<String>,
    /// Directory groups, each 1 to 128 characters.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::groups)]
    pub groups: Vec<String>,
    /// Devices the user may hold at once (default 1, at most 10).
    #[schema(maximum = 10)]
    pub device_limit: Option<u32>,
    /// Password for checkouts at the locker screen (8–256 characters).
    #[schema(min_length = 8, max_length = 256)]
    pub password: Option<String>,
}

/// Checks a user to create (HTTP or CSV import); the password, if any, is returned
/// apart, still to be hashed.
pub fn checked_user(body: CreateUser) -> Result<(NewUser, Option<String>), AppError> {
    // Every bad field is named at once (an import row, a form), not the first only.
    let mut bad = Vec::new();
    let username = keep(&mut bad, validate::username("username", &body.username));
    let display_name = keep(
        &mut bad,
        validate::text("display_name", &body.display_name, 128),
    );
    let email = keep(&mut bad, validate::email("email", body.email.as_deref()));
    let groups = keep(
        &mut bad,
        body.groups
            .iter()
            .map(|g| validate::text("groups", g, 128))
            .collect::<Result<Vec<_>, _>>(),
    );
    let device_limit = body.device_limit.unwrap_or(1);
    if device_limit > 10 {
        bad.push("device_limit: must be 0 to 10".into());
    }
    if let Some(p) = &body.password
        && (p.chars().count() < 8 || p.len() > 256)
    {
        bad.push("password: must be 8 to 256 characters".into());
    }
    let (Some(username), Some(display_name), Some(email), Some(groups), true) =
        (username, display_name, email, groups, bad.is_empty())
    else {
        return Err(AppError::BadRequest {
            code: "invalid_field",
            message: bad.join("; "),
        });
    };
    let user = NewUser {
        username,
        display_name,
        email,
        groups,
        device_limit,
        password: None,
    };
    Ok((user, body.password))
}

/// The value, or `None` with the error kept in `bad`.
fn keep<T>(bad: &mut Vec<String>, r: Result<T, AppError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            bad.push(e.to_string());
            None
        }
    }
}

/// PBKDF2 of a password, off the async threads.
pub async fn hash_password(password: String) -> Result<SlowHash, AppError> {
    let salt = random_bytes(16)?;
    tokio::task::spawn_blocking(move || {
        SlowHash::new(password.as_bytes(), salt, PASSWORD_ITERATIONS)
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("hashing: {e}")))
}

pub(crate) fn checked_ports(ports: u32) -> Result<u32, AppError> {
    if (1..=64).contains(&ports) {
        Ok(ports)
    } else {
        Err(AppError::invalid("ports", "must be 1 to 64"))
    }
}

/// An IANA time zone known to the tz database, or absent (empty text).
pub(crate) fn checked_timezone(value: Option<&str>) -> Result<Option<String>, AppError> {
    let tz = validate::optional_text("timezone", value, 64)?;
    if let Some(tz) = &tz
        && !crate::workflows::validate::valid_timezone(tz)
    {
        return Err(AppError::invalid(
            "timezone",
            "must be an IANA zone name such as America/Chicago",
        ));
    }
    Ok(tz)
}

/// Checks a cart to create (HTTP or CSV import).
pub fn checked_launchpad(body: CreateLaunchpad) -> Result<Launchpad, AppError> {
    let ports = checked_ports(body.ports)?;
    let timezone = checked_timezone(body.timezone.as_deref())?;
    Ok(Launchpad {
        id: validate::ident("id", &body.id)?,
        name: validate::text("name", &body.name, 128)?,
        ports,
        department: validate::optional_text("department", body.department.as_deref(), 128)?,
        facility: validate::optional_text("facility", body.facility.as_deref(), 128)?,
        manager: validate::email("manager", body.manager.as_deref())?,
        timezone,
    })
}

/// `POST /api/v1/launchpads` body.
#[derive(utoipa::ToSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLaunchpad {
    /// Stable id: 1–64 lowercase letters, digits and `-`.
    #[schema(pattern = r"^\s*[a-z0-9-]{1,64}\s*$")]
    pub id: String,
    /// Display name.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub name: String,
    /// Number of ports.
    #[schema(minimum = 1, maximum = 64)]
    pub ports: u32,
    /// Launchpad Attribute: Department.
    #[schema(
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub department: Option<String>,
    /// Launchpad Attribute: Facility.
    #[schema(
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub facility: Option<String>,
    /// Launchpad Attribute: Launchpad Manager (email).
    #[schema(
        max_length = 254,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*(|[^@\s\u0000-\u001F\u007F-\u009F]+@[^@\s\u0000-\u001F\u007F-\u009F]+\.[^@\s\u0000-\u001F\u007F-\u009F]+)[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub manager: Option<String>,
    /// Launchpad Attribute: Timezone (IANA; `""` clears it).
    #[schema(schema_with = crate::openapi::timezone)]
    pub timezone: Option<String>,
}

/// A password hash no password matches, with the iterations of real ones: checked in
/// place of an unknown user's, so a wrong username costs the same time as a wrong
/// password.
pub fn stand_in_password_hash() -> &'static SlowHash {
    static STAND_IN: std::sync::OnceLock<SlowHash> = std::sync::OnceLock::new();
    STAND_IN.get_or_init(|| {
        // A random secret and salt: nothing anyone types can match it.
        let secret = crate::keys::random_bytes(32).unwrap_or_else(|_| vec![0x5a; 32]);
        let salt = crate::keys::random_bytes(16).unwrap_or_else(|_| vec![0xa5; 16]);
        SlowHash::new(&secret, salt, PASSWORD_ITERATIONS)
    })
}
