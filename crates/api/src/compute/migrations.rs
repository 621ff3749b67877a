//! Moves of servers: `os-migrations` and `servers/{id}/migrations` (administrators).

use axum::Json;
use axum::extract::{Path, Query, State};
use http::StatusCode;
use nefos_compute::{MigrationFilter, ServerMigration};
use nefos_compute_api::types::{Migration, MigrationBody, Migrations};
use serde::Deserialize;

use super::NovaError;
use super::request::{Nova, iso_micros};
use crate::ApiState;

/// The query of `GET /os-migrations`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MigrationsQuery {
    instance_uuid: Option<String>,
    status: Option<String>,
    migration_type: Option<String>,
    host: Option<String>,
    source_compute: Option<String>,
    #[serde(rename = "changes-since")]
    changes_since: Option<String>,
    marker: Option<String>,
    limit: Option<String>,
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    nova: Nova,
    query: Result<Query<MigrationsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Migrations>, NovaError> {
    let Query(query) = query.map_err(|r| NovaError::bad_request(r.body_text()))?;
    let compute = state.compute()?;
    let changes_since = match &query.changes_since {
        Some(text) => Some(
            super::request::parse_time(text)
                .ok_or_else(|| NovaError::bad_request(format!("Invalid changes-since {text}")))?,
        ),
        None => None,
    };
    let marker = match &query.marker {
        Some(marker) => Some(marker_id(compute, &nova, marker).await?),
        None => None,
    };
    let limit = match &query.limit {
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|l| *l >= 0)
                .ok_or_else(|| {
                    NovaError::bad_request(format!(
                        "Invalid input for query parameters limit. Value: {text}."
                    ))
                })?,
        ),
        None => None,
    };
    let filter = MigrationFilter {
        server: query.instance_uuid,
        status: query.status,
        kind: query.migration_type,
        node: query.host.or(query.source_compute),
        changes_since,
        marker,
        limit,
    };
    let rows = compute.migrations(&nova.caller, &filter).await?;
    Ok(Json(Migrations {
        migrations: rows.iter().map(|row| listed(&nova, row)).collect(),
    }))
}

/// The id of the move a marker names (its uuid from 2.59, as Nova pages; or its id).
async fn marker_id(
    compute: &nefos_compute::Compute,
    nova: &Nova,
    marker: &str,
) -> Result<i64, NovaError> {
    if let Ok(id) = marker.parse::<i64>() {
        return Ok(id);
    }
    let all = compute
        .migrations(&nova.caller, &MigrationFilter::default())
        .await?;
    all.iter()
        .find(|row| row.uuid == marker)
        .map(|row| row.id)
        .ok_or_else(|| NovaError::bad_request(format!("Marker {marker} could not be found.")))
}

pub(crate) async fn server_list(
    State(state): State<ApiState>,
    nova: Nova,
    Path(server): Path<String>,
) -> Result<Json<Migrations>, NovaError> {
    if !nova.version.at_least(23) {
        return Err(NovaError::not_found("The resource could not be found."));
    }
    let rows = state
        .compute()?
        .server_migrations(&nova.caller, &server)
        .await?;
    Ok(Json(Migrations {
        migrations: rows.iter().map(|row| of_server(&nova, row)).collect(),
    }))
}

pub(crate) async fn server_show(
    State(state): State<ApiState>,
    nova: Nova,
    Path((server, migration)): Path<(String, String)>,
) -> Result<Json<MigrationBody>, NovaError> {
    if !nova.version.at_least(23) {
        return Err(NovaError::not_found("The resource could not be found."));
    }
    let id = migration_id(&migration)?;
    let row = state
        .compute()?
        .server_migration(&nova.caller, &server, id)
        .await?;
    Ok(Json(MigrationBody {
        migration: of_server(&nova, &row),
    }))
}

pub(crate) async fn abort(
    State(state): State<ApiState>,
    nova: Nova,
    Path((server, migration)): Path<(String, String)>,
) -> Result<StatusCode, NovaError> {
    if !nova.version.at_least(24) {
        return Err(NovaError::not_found("The resource could not be found."));
    }
    let id = migration_id(&migration)?;
    state
        .compute()?
        .abort_migration(&nova.caller, &server, id)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

fn migration_id(text: &str) -> Result<i64, NovaError> {
    text.parse()
        .map_err(|_| NovaError::bad_request(format!("Invalid migration id {text}")))
}

/// What both listings show of a move.
fn common(nova: &Nova, row: &ServerMigration) -> Migration {
    let v80 = nova.version.at_least(80);
    Migration {
        id: row.id,
        uuid: nova.version.at_least(59).then(|| row.uuid.clone()),
        status: row.status.clone(),
        source_compute: row.source_node.clone(),
        source_node: row.source_node.clone(),
        dest_compute: row.dest_node.clone(),
        dest_node: row.dest_node.clone(),
        dest_host: None,
        instance_uuid: None,
        server_uuid: None,
        old_instance_type_id: None,
        new_instance_type_id: None,
        migration_type: None,
        memory_total_bytes: None,
        memory_processed_bytes: None,
        memory_remaining_bytes: None,
        disk_total_bytes: None,
        disk_processed_bytes: None,
        disk_remaining_bytes: None,
        created_at: iso_micros(row.created_at),
        updated_at: iso_micros(row.updated_at),
        user_id: v80.then(|| row.user_id.clone()),
        project_id: v80.then(|| row.project_id.clone()),
        downtime_ms: row.downtime_ms,
        total_ms: row.total_ms,
        error: row.error.clone(),
    }
}

fn listed(nova: &Nova, row: &ServerMigration) -> Migration {
    Migration {
        instance_uuid: Some(row.server_id.clone()),
        old_instance_type_id: Some(None),
        new_instance_type_id: Some(None),
        migration_type: nova.version.at_least(23).then(|| row.kind.clone()),
        ..common(nova, row)
    }
}

fn of_server(nova: &Nova, row: &ServerMigration) -> Migration {
    Migration {
        server_uuid: Some(row.server_id.clone()),
        memory_total_bytes: Some(row.memory_total_bytes),
        memory_processed_bytes: Some(row.memory_processed_bytes),
        memory_remaining_bytes: Some(row.memory_remaining_bytes),
        disk_total_bytes: Some(row.disk_total_bytes),
        disk_processed_bytes: Some(row.disk_processed_bytes),
        disk_remaining_bytes: Some(row.disk_remaining_bytes),
        ..common(nova, row)
    }
}
