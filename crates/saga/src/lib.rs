//! Sagas over the database (docs/design.md §3): an operation of several steps, each with
//! an undo, whose progress is logged so that any control-plane process can finish it.
//!
//! A saga is created in the caller's transaction, beside what it operates on (a server
//! row and its saga commit together, or neither does), and then run. Before a step acts,
//! the log says it started; after, that it is done, with its output for later steps. A
//! step whose action fails for good makes the saga unwind: the undo of every step that
//! started runs, newest first, so undos must be safe to run for an action that never
//! happened or ran half-way, and safe to repeat. A transient failure of an action (a node
//! that does not answer) is retried with backoff for a while before it counts as a
//! failure; a transient failure of an undo is retried until it succeeds, since giving up
//! would leave behind what the undo is there to remove.
//!
//! A saga belongs to the process running it (the control plane's process heartbeats,
//! `control_plane_instances`). When that process stops, another adopts the saga and goes
//! on from the log: a step that started and did not finish is run again, which is why
//! steps are idempotent (node calls carry generation numbers). A finished saga is
//! deleted; one whose undo keeps failing is left `stuck`, for an operator.
//!
//! In the style of Oxide's steno, in far less: steps are a list, not a graph.

mod executor;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

pub use executor::{Outcome, Sagas};

/// A boxed future, as step functions return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A kind of saga: its parameters, what its steps reach, and its steps.
pub trait Saga: Send + Sync + 'static {
    /// Names the kind in the log; never change it once sagas of it may be in a database.
    const KIND: &'static str;
    /// How long a step's transient failures are retried before they count as failures.
    const RETRY_FOR: Duration = Duration::from_secs(60);
    type Params: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The services the steps use.
    type Context: Send + Sync + 'static;

    /// The steps, in order. Their number and order are part of the log's meaning: add a
    /// step only as a new kind.
    fn steps() -> Vec<Step<Self>>
    where
        Self: Sized;

    /// Runs once an unwind has finished, with the failure that caused it (to record the
    /// failure where users see it). A transient failure is retried until it succeeds;
    /// the saga is kept until then.
    fn unwound<'a>(
        _context: &'a Self::Context,
        _params: &'a Self::Params,
        _error: &'a str,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async { Ok(()) })
    }
}

/// What a step's action returns: its output, for the steps after it.
pub type ActionResult = Result<Value, StepError>;

/// A step's action.
pub type Action<S> = for<'a> fn(
    &'a <S as Saga>::Context,
    StepInput<'a, <S as Saga>::Params>,
) -> BoxFuture<'a, ActionResult>;

/// A step's undo.
pub type Undo<S> = for<'a> fn(
    &'a <S as Saga>::Context,
    StepInput<'a, <S as Saga>::Params>,
) -> BoxFuture<'a, Result<(), StepError>>;

/// One step: an action and its undo.
#[derive(Debug)]
pub struct Step<S: Saga> {
    pub name: &'static str,
    pub action: Action<S>,
    pub undo: Undo<S>,
}

/// An undo for steps that have nothing to undo.
pub fn nothing_to_undo<'a, C, P>(
    _context: &'a C,
    _input: StepInput<'a, P>,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async { Ok(()) })
}

/// What a step sees: the saga's id and parameters, and the outputs of the steps before.
#[derive(Debug)]
pub struct StepInput<'a, P> {
    pub saga_id: &'a str,
    pub params: &'a P,
    outputs: &'a BTreeMap<String, Value>,
}

// Only references: copyable whatever `P` is (a derive would ask `P: Copy`).
impl<P> Clone for StepInput<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P> Copy for StepInput<'_, P> {}

impl<P> StepInput<'_, P> {
    /// The output of the earlier step `step`, if it finished (an undo may run for steps
    /// whose predecessors' outputs are all there, but its own may not be).
    pub fn output<T: DeserializeOwned>(&self, step: &str) -> Result<Option<T>, StepError> {
        self.outputs
            .get(step)
            .map(|value| {
                serde_json::from_value(value.clone()).map_err(|error| {
                    StepError::Permanent(format!(
                        "the output of step {step} is unreadable: {error}"
                    ))
                })
            })
            .transpose()
    }

    /// The output of the earlier step `step`, which must have finished.
    pub fn required<T: DeserializeOwned>(&self, step: &str) -> Result<T, StepError> {
        self.output(step)?.ok_or_else(|| {
            StepError::Permanent(format!("step {step} has no output (it did not finish)"))
        })
    }
}

/// Why a step failed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StepError {
    /// May work if tried again: retried for [`Saga::RETRY_FOR`].
    #[error("{0}")]
    Transient(String),
    /// Will not work: the saga unwinds (or, for an undo, is stuck).
    #[error("{0}")]
    Permanent(String),
}

impl StepError {
    /// The message users may see.
    pub fn message(&self) -> &str {
        match self {
            StepError::Transient(message) | StepError::Permanent(message) => message,
        }
    }
}

/// A step's output, as JSON.
pub fn output(value: impl Serialize) -> ActionResult {
    serde_json::to_value(value)
        .map_err(|error| StepError::Permanent(format!("cannot record a step's output: {error}")))
}

#[derive(Debug, Error)]
pub enum SagaError {
    #[error("no saga kind {kind} is registered in this process")]
    UnknownKind { kind: String },
    #[error("the parameters of a {kind} saga cannot be recorded")]
    Params {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Db(#[from] nefos_db::DbError),
}
