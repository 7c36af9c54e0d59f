//! Custom attributes: typed values (string, int, bool) IT defines for devices and
//! launchpads, beside the built-in ones (Department, Facility, Launchpad Manager,
//! Timezone, Device Home, Device User). Workflows use them as `[Name]` placeholders.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, Caller};
use crate::model::{AttributeDef, AttributeTarget, AttributeType};
use crate::state::AppState;
use crate::storage::Storage;

/// Names with a built-in meaning; a custom attribute cannot take them.
pub const RESERVED: &[&str] = &[
    "Department",
    "Facility",
    "Launchpad Manager",
    "Timezone",
    "Device Home",
    "Device User",
    "Device Serial",
    "Launchpad Name",
    "Last Port Number",
    "Display Name",
];

/// The built-in attributes an admin may name when following the guide (seed 000's
/// Launchpad Attributes): always defined, set through the cart's or device's fields.
const BUILTIN: &[(AttributeTarget, &str)] = &[
    (AttributeTarget::Launchpad, "Department"),
    (AttributeTarget::Launchpad, "Facility"),
    (AttributeTarget::Launchpad, "Launchpad Manager"),
    (AttributeTarget::Launchpad, "Timezone"),
    (AttributeTarget::Device, "Device Home"),
    (AttributeTarget::Device, "Device User"),
];

fn builtin_defs() -> impl Iterator<Item = AttributeDef> {
    BUILTIN.iter().map(|(target, name)| AttributeDef {
        target: *target,
        name: (*name).to_owned(),
        value_type: AttributeType::String,
        builtin: true,
    })
}

/// `POST /api/v1/attributes` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAttribute {
    /// `device` or `launchpad`.
    pub target: AttributeTarget,
    /// 1–64 letters, digits, spaces, `_` or `-`, starting with a letter.
    #[schema(pattern = r"^[A-Za-z][A-Za-z0-9 _-]{0,63}$")]
    pub name: String,
    /// `string`, `int` or `bool`.
    pub value_type: AttributeType,
}

/// `PUT …/attributes/{name}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAttribute {
    /// The value, of the attribute's type; `null` clears it.
    #[schema(schema_with = crate::openapi::attribute_value)]
    pub value: serde_json::Value,
}

fn checked_name(name: &str) -> Result<String, AppError> {
    let n = name.trim();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-'));
    if !ok {
        return Err(AppError::invalid(
            "name",
            "must be 1 to 64 letters, digits, spaces, '_' or '-', starting with a letter",
        ));
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(n)) {
        // The name is taken, by the server itself.
        return Err(AppError::ConflictWith {
            code: "builtin_attribute",
            message: format!("{n} is a built-in attribute name"),
        });
    }
    Ok(n.to_owned())
}

#[utoipa::path(post, path = "/api/v1/attributes", tag = "admin", description = "Defines a custom attribute. A built-in one (Department, Facility, Launchpad Manager, Timezone on carts; Device Home, Device User on devices; as text) is already defined: 200 with it; another built-in name (or type) is taken: 409 `builtin_attribute`. Needs the admin role.", request_body = CreateAttribute, responses((status = 201, body = AttributeDef), (status = 200, description = "built in: already defined", body = AttributeDef), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("api_token" = [])))]
/// `POST /api/v1/attributes`.
pub async fn create<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateAttribute>,
) -> Result<(StatusCode, Json<AttributeDef>), AppError> {
    caller.require_admin()?;
    // Creating a built-in one (as the guide's setup steps do) finds it already there.
    if body.value_type == AttributeType::String
        && let Some(def) = builtin_defs()
            .find(|d| d.target == body.target && d.name.eq_ignore_ascii_case(body.name.trim()))
    {
        return Ok((StatusCode::OK, Json(def)));
    }
    let def = AttributeDef {
        target: body.target,
        name: checked_name(&body.name)?,
        value_type: body.value_type,
        builtin: false,
    };
    let created = st
        .storage
        .create_attribute(def, caller.actor.clone(), st.now())
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/attributes", tag = "admin", description = "Every attribute definition: the built-in ones first (`builtin: true`), then the custom ones. Any role.", responses((status = 200, body = Vec<AttributeDef>), (status = 401, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/attributes`.
pub async fn list<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
) -> Result<Json<Vec<AttributeDef>>, AppError> {
    let mut all: Vec<AttributeDef> = builtin_defs().collect();
    all.extend(st.storage.list_attributes().await?);
    Ok(Json(all))
}

async fn set<S: Storage>(
    st: AppState<S>,
    caller: Caller,
    target: AttributeTarget,
    id: String,
    name: String,
    body: SetAttribute,
) -> Result<Json<BTreeMap<String, serde_json::Value>>, AppError> {
    caller.require_admin()?;
    let value = (!body.value.is_null()).then_some(body.value);
    st.storage
        .set_attribute(
            target,
            id.clone(),
            name,
            value,
            caller.actor.clone(),
            st.now(),
        )
        .await?;
    Ok(Json(st.storage.attribute_values(target, id).await?))
}

#[utoipa::path(put, path = "/api/v1/devices/{id}/attributes/{name}", tag = "admin", description = "Sets or clears (null) a device's custom attribute. Needs the admin role.", params(("id" = String, Path), ("name" = String, Path)), request_body = SetAttribute, responses((status = 200, description = "all the device's custom attributes", body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, description = "wrong type", body = ErrorBody)), security(("api_token" = [])))]
/// `PUT /api/v1/devices/{id}/attributes/{name}`.
pub async fn set_device<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetAttribute>,
) -> Result<Json<BTreeMap<String, serde_json::Value>>, AppError> {
    set(st, caller, AttributeTarget::Device, id, name, body).await
}

#[utoipa::path(put, path = "/api/v1/launchpads/{id}/attributes/{name}", tag = "admin", description = "Sets or clears (null) a launchpad's custom attribute. Needs the admin role.", params(("id" = String, Path), ("name" = String, Path)), request_body = SetAttribute, responses((status = 200, description = "all the launchpad's custom attributes", body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, description = "wrong type", body = ErrorBody)), security(("api_token" = [])))]
/// `PUT /api/v1/launchpads/{id}/attributes/{name}`.
pub async fn set_launchpad<S: Storage>(
    State(st): State<AppState<S>>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetAttribute>,
) -> Result<Json<BTreeMap<String, serde_json::Value>>, AppError> {
    set(st, caller, AttributeTarget::Launchpad, id, name, body).await
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/attributes", tag = "admin", description = "A device's custom attributes. Any role.", params(("id" = String, Path)), responses((status = 200, body = Object), (status = 401, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/devices/{id}/attributes`.
pub async fn get_device<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BTreeMap<String, serde_json::Value>>, AppError> {
    st.storage.get_device(id.clone()).await?;
    Ok(Json(
        st.storage
            .attribute_values(AttributeTarget::Device, id)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/launchpads/{id}/attributes", tag = "admin", description = "A launchpad's custom attributes. Any role.", params(("id" = String, Path)), responses((status = 200, body = Object), (status = 401, body = ErrorBody)), security(("api_token" = [])))]
/// `GET /api/v1/launchpads/{id}/attributes`.
pub async fn get_launchpad<S: Storage>(
    State(st): State<AppState<S>>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BTreeMap<String, serde_json::Value>>, AppError> {
    Ok(Json(
        st.storage
            .attribute_values(AttributeTarget::Launchpad, id)
            .await?,
    ))
}
