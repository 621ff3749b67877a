//! The sagas of servers. Each step that calls a node passes a generation the saga took
//! when it was recorded, so a step run again after a crash is, to the node, a retry.

pub mod create;
pub mod delete;
pub mod interface;
pub mod migrate;
pub mod power;
pub mod rebuild;
pub mod resize;
pub mod snapshot;

use std::sync::Arc;

use nefos_db::compute::{self as q};
use nefos_db::time::now_micros;
use nefos_node_api::NodeClientError;
use nefos_saga::{Sagas, StepError};

use crate::{ComputeError, Services};

/// Registers the server sagas' kinds, their steps reaching `services`.
pub(crate) fn register(sagas: &Sagas, services: &Arc<Services>) {
    sagas.register::<create::CreateSaga>(services.clone());
    sagas.register::<delete::DeleteSaga>(services.clone());
    sagas.register::<interface::InterfaceSaga>(services.clone());
    sagas.register::<migrate::LiveMigrateSaga>(services.clone());
    sagas.register::<power::PowerSaga>(services.clone());
    sagas.register::<rebuild::RebuildSaga>(services.clone());
    sagas.register::<resize::ResizeSaga>(services.clone());
    sagas.register::<resize::ResizeEndSaga>(services.clone());
    sagas.register::<snapshot::SnapshotSaga>(services.clone());
}

/// A failed node call as a step error: a node that cannot be reached, or that failed
/// inside, may do better soon; a refusal will not change.
pub(crate) fn step_error(error: ComputeError) -> StepError {
    let transient = match &error {
        ComputeError::Rpc { source, .. } => match source {
            NodeClientError::Transport { .. } => true,
            NodeClientError::Rpc { status, .. } => status.is_server_error(),
            _ => false,
        },
        ComputeError::Db(_) => true,
        _ => false,
    };
    let message = chain(&error);
    if transient {
        StepError::Transient(message)
    } else {
        StepError::Permanent(message)
    }
}

/// A database failure inside a step: worth retrying.
pub(crate) fn db_error(error: nefos_db::DbError) -> StepError {
    StepError::Transient(chain(&error))
}

pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Records how an instance action ended; a failure to record it is only logged.
pub(crate) async fn finish_action(
    services: &Services,
    server: &str,
    request_id: &str,
    error: Option<&str>,
) {
    if let Err(failure) =
        q::finish_action(services.db.pool(), server, request_id, error, now_micros()).await
    {
        tracing::warn!(server, error = %failure, "cannot record the end of an instance action");
    }
}
