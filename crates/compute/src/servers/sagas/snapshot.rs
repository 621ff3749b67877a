//! Filling a server image: the node exports the server's root disk and the stream is
//! uploaded into the queued image, as a Glance upload would be (inspected, hashed,
//! charged to the project's storage quota). Undone, the image is deleted; unwound, the
//! server's task ends and the action records why.

use std::time::Duration;

use nefos_db::compute::{self as q, StateChange};
use nefos_db::time::now_micros;
use nefos_image::{Arrival, Caller, ImageError, ImageStatus};
use nefos_saga::{BoxFuture, Saga, Step, StepError, StepInput, nothing_to_undo, output};
use serde::{Deserialize, Serialize};

use super::{chain, db_error, finish_action, step_error};
use crate::servers::snapshot::ActingUser;
use crate::servers::state::task;
use crate::{ComputeError, Services};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotParams {
    pub server_id: String,
    pub node_id: String,
    pub image_id: String,
    pub acting: ActingUser,
    pub request_id: String,
}

#[derive(Debug)]
pub struct SnapshotSaga;

type Input<'a> = StepInput<'a, SnapshotParams>;

impl Saga for SnapshotSaga {
    const KIND: &'static str = "server_snapshot";
    type Params = SnapshotParams;
    type Context = Services;
    /// An upload cut short by a crash leaves the image `saving` until the image service
    /// puts it back (after its owner's silence): long enough to wait for that.
    const RETRY_FOR: Duration = Duration::from_secs(300);

    fn steps() -> Vec<Step<Self>> {
        vec![
            Step {
                name: "upload",
                action: upload,
                undo: delete_image,
            },
            Step {
                name: "record",
                action: record,
                undo: nothing_to_undo,
            },
        ]
    }

    fn unwound<'a>(
        services: &'a Services,
        params: &'a SnapshotParams,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            end_task(services, &params.server_id).await?;
            tracing::warn!(server = %params.server_id, image = %params.image_id, %error, "server image failed");
            finish_action(services, &params.server_id, &params.request_id, Some(error)).await;
            Ok(())
        })
    }
}

fn upload<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        let params = input.params;
        let context = params.acting.context();
        let caller = Caller::new(&context);
        let image = services
            .images
            .get(caller, &params.image_id)
            .await
            .map_err(image_error)?;
        match image.status {
            ImageStatus::Active => return output(()),
            ImageStatus::Queued => {}
            ImageStatus::Saving => {
                return Err(StepError::Transient(
                    "an interrupted upload still holds the image".to_owned(),
                ));
            }
            other => {
                return Err(StepError::Permanent(format!(
                    "the image is {}",
                    other.as_str()
                )));
            }
        }
        let node = params.node_id.clone();
        let client = services.nodes.client(&node).await.map_err(step_error)?;
        let response = client
            .export_disk(&params.server_id)
            .await
            .map_err(|source| step_error(ComputeError::Rpc { node, source }))?;
        let size = response.content_length();
        let body = response.bytes_stream();
        services
            .images
            .receive(caller, &params.image_id, body, size, Arrival::Upload)
            .await
            .map_err(image_error)?;
        tracing::info!(server = %params.server_id, image = %params.image_id, bytes = ?size, "server image uploaded");
        output(())
    })
}

fn delete_image<'a>(
    services: &'a Services,
    input: Input<'a>,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let context = input.params.acting.context();
        match services
            .images
            .delete(Caller::new(&context), &input.params.image_id)
            .await
        {
            Ok(()) | Err(ImageError::NotFound { .. }) => Ok(()),
            Err(error) => Err(StepError::Transient(chain(&error))),
        }
    })
}

fn record<'a>(services: &'a Services, input: Input<'a>) -> BoxFuture<'a, nefos_saga::ActionResult> {
    Box::pin(async move {
        end_task(services, &input.params.server_id).await?;
        finish_action(
            services,
            &input.params.server_id,
            &input.params.request_id,
            None,
        )
        .await;
        output(())
    })
}

/// Ends the snapshot's task, if it is still the server's.
async fn end_task(services: &Services, id: &str) -> Result<(), StepError> {
    let change = StateChange {
        task_state: Some(None),
        ..StateChange::default()
    };
    q::change_state(
        services.db.pool(),
        id,
        Some(Some(task::IMAGE_SNAPSHOT)),
        &change,
        now_micros(),
    )
    .await
    .map_err(db_error)?;
    Ok(())
}

/// An image service failure as a step error: its storage or database may recover; what
/// it refused will not change.
fn image_error(error: ImageError) -> StepError {
    let message = chain(&error);
    match error {
        ImageError::Database(_) | ImageError::Storage(_) => StepError::Transient(message),
        _ => StepError::Permanent(message),
    }
}
