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
        logs::audit, logs::audit_csv, logs::security_events, logs::cart_taps,
        crate::policy::get, crate::policy::patch,
        credentials::list_tokens, credentials::create_token, credentials::revoke_token,
        credentials::list_enrollment_tokens, credentials::revoke_enrollment_token,
        credentials::rotate_reader, credentials::revoke_reader, logs::activity, logs::activity_csv, logs::commands,
        device::enroll, device::sync, device::authorize,
        launchpad::tap, launchpad::port_event,
        crate::mdm::webhook, crate::mdm::activity, crate::mdm::commands, crate::mdm_actions::send,
        workflows::list, workflows::folders, workflows::get, workflows::create,
        workflows::replace, workflows::delete, workflows::clone, workflows::install_standard,
        workflows::deploy, workflows::list_rules, workflows::create_rule,
        workflows::replace_rule, workflows::delete_rule, workflows::move_rule,
        crate::http::workflow_edits::patch_rule, crate::http::workflow_edits::patch_workflow,
        crate::http::workflow_edits::move_workflow,
        workflows::runs, workflows::run, workflows::emails, workflows::device_runs, workflows::journey, workflows::cancel_run,
    ),
    // Enums used only by query parameters are not collected from the paths.
    components(schemas(
        admin::AdminState,
        crate::model::PasscodeState,
        lanyard_protocol::DeviceStatus
    )),
    modifiers(&BearerSchemes, &CommonErrors, &ExactBodies),
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

/// Bodies described as exactly as the server reads them. Serde's `deny_unknown_fields`
/// on a tagged enum leaves its variants open in the generated schema, and a stored
/// workflow or rule (its definition flattened beside its id) must not inherit the
/// closed definition's `additionalProperties: false`.
struct ExactBodies;

impl Modify for ExactBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{AdditionalProperties, Schema};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let schemas = &mut components.schemas;
        // Tagged enums refusing unknown fields: every variant is closed.
        if let Some(RefOr::T(Schema::OneOf(one_of))) = schemas.get_mut("MdmAction") {
            for variant in &mut one_of.items {
                if let RefOr::T(Schema::Object(o)) = variant {
                    o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
        // Internally tagged variants wrapping a closed struct (a rule's schedule): the
        // struct's fields and the tag in one closed object, rather than an `allOf` whose
        // closed half refuses the tag.
        for name in ["Trigger"] {
            let Some(RefOr::T(Schema::OneOf(one_of))) = schemas.get(name).cloned() else {
                continue;
            };
            let mut items = Vec::new();
            for variant in one_of.items {
                items.push(match variant {
                    RefOr::T(Schema::AllOf(all_of)) => match merged_variant(schemas, &all_of) {
                        Some(o) => RefOr::T(Schema::Object(o)),
                        None => RefOr::T(Schema::AllOf(all_of)),
                    },
                    other => other,
                });
            }
            if let Some(RefOr::T(Schema::OneOf(target))) = schemas.get_mut(name) {
                target.items = items;
            }
        }
        // Stored workflows and rules: the definition's fields, open to the stored ones.
        for (stored, spec) in [("Workflow", "WorkflowSpec"), ("Rule", "RuleSpec")] {
            let Some(RefOr::T(Schema::Object(mut fields))) = schemas.get(spec).cloned() else {
                continue;
            };
            fields.additional_properties = None;
            let open = format!("{spec}Fields");
            schemas.insert(open.clone(), RefOr::T(Schema::Object(fields)));
            if let Some(RefOr::T(Schema::AllOf(all_of))) = schemas.get_mut(stored) {
                for part in &mut all_of.items {
                    if let RefOr::Ref(r) = part
                        && r.ref_location == format!("#/components/schemas/{spec}")
                    {
                        r.ref_location = format!("#/components/schemas/{open}");
                    }
                }
            }
        }
    }
}

/// One closed object from `allOf: [$ref closed struct, {tag}]`, or `None` when the
/// `allOf` is not of that shape.
fn merged_variant(
    schemas: &std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    >,
    all_of: &utoipa::openapi::schema::AllOf,
) -> Option<utoipa::openapi::schema::Object> {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;
    let [RefOr::Ref(r), RefOr::T(Schema::Object(tag))] = all_of.items.as_slice() else {
        return None;
    };
    let name = r.ref_location.trim_start_matches("#/components/schemas/");
    let Some(RefOr::T(Schema::Object(inner))) = schemas.get(name) else {
        return None;
    };
    let mut merged = inner.clone();
    for (k, v) in &tag.properties {
        merged.properties.insert(k.clone(), v.clone());
    }
    merged.required.extend(tag.required.iter().cloned());
    if !r.description.is_empty() {
        merged.description = Some(r.description.clone());
    }
    Some(merged)
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

/// What every free-text field accepts: no control characters and at least one
/// character that is not a space, once the whitespace around it (which the server trims,
/// control characters such as a tab included) is gone.
pub(crate) const TEXT_PATTERN: &str = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$";

/// A list of free texts of 1 to `max` characters, `min_items` to `max_items` long,
/// absent or null when `nullable`.
fn text_list(
    max: usize,
    min_items: Option<usize>,
    max_items: Option<usize>,
    nullable: bool,
) -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let item = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(TEXT_PATTERN));
    let mut list = ArrayBuilder::new()
        .items(item)
        .min_items(min_items)
        .max_items(max_items);
    if nullable {
        list = list.schema_type(SchemaType::from_iter([Type::Array, Type::Null]));
    }
    list.build()
}

/// A user's directory groups (each 1 to 128 characters).
pub(crate) fn groups() -> utoipa::openapi::schema::Array {
    text_list(128, None, None, false)
}

/// A user's directory groups, when a patch replaces them.
pub(crate) fn groups_patch() -> utoipa::openapi::schema::Array {
    text_list(128, None, None, true)
}

/// The workflows a rule deploys: 1 to 10 ids.
pub(crate) fn rule_workflows() -> utoipa::openapi::schema::Array {
    text_list(128, Some(1), Some(10), false)
}

/// A rule's workflow ids, when a patch replaces them.
pub(crate) fn rule_workflows_patch() -> utoipa::openapi::schema::Array {
    text_list(128, Some(1), Some(10), true)
}

/// An IANA time zone the server knows (its bundled tz database), `""` to clear, or null.
pub(crate) fn timezone() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_owned())
        .collect();
    names.sort();
    let values = [serde_json::Value::Null, serde_json::Value::from("")]
        .into_iter()
        .chain(names.into_iter().map(serde_json::Value::from));
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(values))
        .build()
}

/// A rule condition's value: a number, a boolean, or text that may hold placeholders.
pub(crate) fn condition_value() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::String,
            Type::Number,
            Type::Boolean,
        ]))
        .build()
}

/// A custom attribute's value (of the attribute's own type), or null to clear it.
pub(crate) fn attribute_value() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::String,
            Type::Number,
            Type::Boolean,
            Type::Null,
        ]))
        .build()
}
