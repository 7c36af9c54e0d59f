//! The OpenAPI 3.1 description of the HTTP API, generated from the handlers' own
//! annotations and the types' schemas, served at `GET /api/v1/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::{admin, attributes, credentials, device, launchpad, logs, workflows};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Lanyard server API", description = "Admin API (/api/v1), device API (/device/v1), launchpad API (/launchpad/v1). Every error is JSON {code, message}."),
    paths(
        crate::healthz, crate::readyz, crate::metrics::render,
        admin::create_user, admin::list_users, admin::get_user, admin::add_badge,
        admin::update_user, admin::delete_user, admin::revoke_badges,
        admin::update_launchpad, admin::delete_launchpad,
        admin::create_launchpad, admin::list_launchpads, admin::create_enrollment_token,
        admin::list_devices, admin::get_device, admin::check_in_device,
        admin::lock_device, admin::mark_lost, admin::mark_found, admin::retire,
        attributes::create, attributes::list, attributes::set_device, attributes::set_launchpad,
        attributes::get_device, attributes::get_launchpad,
        logs::audit, logs::audit_csv, logs::security_events,
        credentials::list_tokens, credentials::create_token, credentials::revoke_token,
        credentials::list_enrollment_tokens, credentials::revoke_enrollment_token,
        credentials::rotate_reader, credentials::revoke_reader, logs::activity, logs::activity_csv, logs::commands,
        device::enroll, device::sync, device::authorize,
        launchpad::tap, launchpad::port_event,
        crate::mdm::webhook, crate::mdm::activity, crate::mdm_actions::send,
        workflows::list, workflows::folders, workflows::get, workflows::create,
        workflows::replace, workflows::delete, workflows::clone, workflows::install_standard,
        workflows::deploy, workflows::list_rules, workflows::create_rule,
        workflows::replace_rule, workflows::delete_rule, workflows::move_rule,
        workflows::runs, workflows::run, workflows::emails, workflows::device_runs, workflows::journey, workflows::cancel_run,
    ),
    // Enums used only by query parameters are not collected from the paths.
    components(schemas(
        admin::AdminState,
        crate::model::PasscodeState,
        lanyard_protocol::DeviceStatus
    )),
    modifiers(&BearerSchemes, &CommonErrors),
    tags(
        (name = "admin", description = "IT administration: users, badges, carts, enrollment, devices, audit"),
        (name = "device", description = "The locker agent on each phone"),
        (name = "launchpad", description = "Badge readers on the carts"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "workflows", description = "Workflows, automation rules, deployments, runs and the email outbox"),
    )
)]
pub struct ApiDoc;

/// The three bearer credentials: admin API tokens, device credentials, cart readers.
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["api_token", "device_credential", "launchpad_credential"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The errors every route of a kind can answer, documented once rather than on each:
/// a body route `400`, `413` and `415`; a route with parameters `400`; a route with path
/// parameters `404`; a route behind a credential `401`; every route `503` (stopping).
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{RefOr, ResponseBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        utoipa::openapi::ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let params = op.parameters.as_deref().unwrap_or_default();
                let has_path = params
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path));
                let responses = &mut op.responses.responses;
                let mut add = |code: &str, description: &str| {
                    responses
                        .entry(code.to_owned())
                        .or_insert_with(|| error(description));
                };
                if op.request_body.is_some() {
                    add("400", "invalid input");
                    add("413", "the body is larger than the server takes");
                    add("415", "the body is not JSON");
                }
                if !params.is_empty() {
                    add("400", "invalid input");
                }
                if has_path {
                    add("404", "no such resource");
                }
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add("401", "no, unknown, expired or revoked credential");
                }
                add("503", "the server is stopping or its database is not ready");
            }
        }
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
