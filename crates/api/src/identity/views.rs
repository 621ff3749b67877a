//! Keystone v3 JSON shapes of identity objects.

use nefos_db::time::from_micros;
use nefos_identity::{AuthContext, Project, ProjectKind, Role, User};
use serde_json::{Value, json};

use crate::ApiState;

pub(super) const DOMAIN_ID: &str = "default";
pub(super) const DOMAIN_NAME: &str = "Default";

/// Keystone's timestamp form: `2026-11-25T09:28:15.000000Z`.
pub(super) fn timestamp(micros: i64) -> String {
    from_micros(micros)
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn base(state: &ApiState) -> String {
    format!("{}/identity/v3", state.public_url())
}

pub(super) fn domain(state: &ApiState) -> Value {
    json!({
        "id": DOMAIN_ID,
        "name": DOMAIN_NAME,
        "description": "The default domain",
        "enabled": true,
        "tags": [],
        "options": {},
        "links": { "self": format!("{}/domains/{DOMAIN_ID}", base(state)) },
    })
}

fn domain_ref() -> Value {
    json!({ "id": DOMAIN_ID, "name": DOMAIN_NAME })
}

pub(super) fn user(state: &ApiState, user: &User) -> Value {
    json!({
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "enabled": user.enabled,
        "domain_id": DOMAIN_ID,
        "default_project_id": user.base_project_id,
        "password_expires_at": null,
        "options": {},
        "links": { "self": format!("{}/users/{}", base(state), user.id) },
    })
}

pub(super) fn project(state: &ApiState, project: &Project) -> Value {
    json!({
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "enabled": project.enabled,
        "domain_id": DOMAIN_ID,
        "parent_id": DOMAIN_ID,
        "is_domain": false,
        "tags": [],
        "options": {},
        // nefos extension: `base` (a user's personal project), `system` or `regular`.
        "nefos:kind": project.kind.as_str(),
        "links": { "self": format!("{}/projects/{}", base(state), project.id) },
    })
}

pub(super) fn role(state: &ApiState, role: Role) -> Value {
    json!({
        "id": role.as_str(),
        "name": role.as_str(),
        "domain_id": null,
        "description": match role {
            Role::Admin => "Manages the project; on the admin project, the cloud",
            Role::Member => "Uses the project's resources",
            Role::Reader => "Reads the project's resources",
        },
        "options": {},
        "links": { "self": format!("{}/roles/{}", base(state), role.as_str()) },
    })
}

/// A list answer: `{"<key>": [...], "links": {...}}`.
pub(super) fn list(state: &ApiState, key: &str, items: Vec<Value>) -> Value {
    json!({
        key: items,
        "links": { "self": format!("{}/{key}", base(state)), "next": null, "previous": null },
    })
}

/// The body of a token answer (`POST`/`GET /v3/auth/tokens`).
pub(super) fn token(state: &ApiState, ctx: &AuthContext, with_catalog: bool) -> Value {
    let mut token = json!({
        "methods": ctx.methods,
        "user": {
            "id": ctx.user_id,
            "name": ctx.user_name,
            "domain": domain_ref(),
            "password_expires_at": null,
        },
        "audit_ids": [ctx.audit_id],
        "issued_at": timestamp(ctx.issued_at),
        "expires_at": timestamp(ctx.expires_at),
    });
    if let Some(project) = &ctx.project {
        token["project"] =
            json!({ "id": project.id, "name": project.name, "domain": domain_ref() });
        token["is_domain"] = json!(false);
        token["roles"] = Value::Array(
            ctx.roles
                .iter()
                .map(|r| json!({ "id": r.as_str(), "name": r.as_str() }))
                .collect(),
        );
        if project.kind == ProjectKind::System && ctx.roles.contains(&Role::Admin) {
            token["is_admin_project"] = json!(true);
        }
    }
    if with_catalog {
        token["catalog"] = state.catalog.to_v3(ctx.project_id());
    }
    json!({ "token": token })
}
