//! Running sagas: creating them in a caller's transaction, executing and unwinding them
//! from their log, and adopting those of stopped processes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use nefos_db::saga::{self as log, SagaRow, StepRow};
use nefos_db::time::now_micros;
use nefos_db::{Database, Transaction};
use serde_json::Value;

use crate::{BoxFuture, Saga, SagaError, Step, StepError, StepInput};

const RUNNING: &str = "running";
const UNWINDING: &str = "unwinding";
const STUCK: &str = "stuck";
const STARTED: &str = "started";
const DONE: &str = "done";
const UNDONE: &str = "undone";

/// The first pause between retries of a transient failure; it doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How a saga ended, as far as this process saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step is done.
    Done,
    /// A step failed; every started step was undone.
    Unwound { error: String },
    /// An undo kept failing: the saga waits for an operator.
    Stuck { error: String },
    /// Another process owns the saga now, or it was already finished.
    NotOurs,
}

/// This process's saga executor: the kinds it can run and the sagas it is running.
#[derive(Clone)]
pub struct Sagas {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    /// This process among the control plane's (its heartbeat row's id); `None` for a
    /// process that records sagas and runs none ([`Sagas::recorder`]).
    instance: Option<String>,
    kinds: RwLock<HashMap<&'static str, Arc<dyn Runner>>>,
    running: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Sagas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sagas")
            .field("instance", &self.inner.instance)
            .finish_non_exhaustive()
    }
}

/// A registered kind, with its parameters' type erased.
trait Runner: Send + Sync {
    fn execute(&self, sagas: Sagas, row: SagaRow)
    -> BoxFuture<'static, Result<Outcome, SagaError>>;
}

struct Registered<S: Saga> {
    context: Arc<S::Context>,
}

impl<S: Saga> Runner for Registered<S> {
    fn execute(
        &self,
        sagas: Sagas,
        row: SagaRow,
    ) -> BoxFuture<'static, Result<Outcome, SagaError>> {
        let context = self.context.clone();
        Box::pin(async move { execute::<S>(&sagas, &context, row).await })
    }
}

impl Sagas {
    /// The executor of process `instance`, whose heartbeat the caller keeps.
    pub fn new(db: Database, instance: &str) -> Sagas {
        Sagas::with_instance(db, Some(instance.to_owned()))
    }

    /// An executor that only records sagas, owned by no process, for the control plane's
    /// processes to adopt and run (within their recovery interval): an operator's command
    /// starts a long operation without running it itself.
    pub fn recorder(db: Database) -> Sagas {
        Sagas::with_instance(db, None)
    }

    fn with_instance(db: Database, instance: Option<String>) -> Sagas {
        Sagas {
            inner: Arc::new(Inner {
                db,
                instance,
                kinds: RwLock::default(),
                running: Mutex::default(),
            }),
        }
    }

    pub fn instance(&self) -> &str {
        self.inner.instance.as_deref().unwrap_or("")
    }

    /// Makes sagas of kind `S` runnable here, their steps reaching `context`.
    pub fn register<S: Saga>(&self, context: Arc<S::Context>) {
        self.inner
            .kinds
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(S::KIND, Arc::new(Registered::<S> { context }));
    }

    /// Records a new saga of kind `S` acting on `subject` in `tx`, owned by this process. Run it with
    /// [`Sagas::spawn`] or [`Sagas::run`] once `tx` has committed; should this process stop
    /// first, another adopts it.
    pub async fn create<S: Saga>(
        &self,
        tx: &mut Transaction,
        subject: &str,
        params: &S::Params,
    ) -> Result<String, SagaError> {
        let params = serde_json::to_string(params).map_err(|source| SagaError::Params {
            kind: S::KIND,
            source,
        })?;
        let now = now_micros();
        let row = SagaRow {
            id: uuid::Uuid::new_v4().to_string(),
            kind: S::KIND.to_owned(),
            subject: subject.to_owned(),
            params,
            state: RUNNING.to_owned(),
            owner: self.inner.instance.clone(),
            error: None,
            created_at: now,
            updated_at: now,
        };
        log::insert_saga(&mut **tx, &row).await?;
        Ok(row.id)
    }

    /// Runs saga `id` in the background; a recorder leaves it to the control plane.
    pub fn spawn(&self, id: &str) {
        if self.inner.instance.is_none() {
            tracing::debug!(saga = id, "recorded for the control plane to run");
            return;
        }
        let (sagas, id) = (self.clone(), id.to_owned());
        tokio::spawn(async move {
            if let Err(error) = sagas.run(&id).await {
                tracing::error!(saga = %id, error = %chain(&error), "saga failed to run");
            }
        });
    }

    /// Runs saga `id` to its end here, unless it is running here already.
    pub async fn run(&self, id: &str) -> Result<Outcome, SagaError> {
        if !self.claim(id) {
            return Ok(Outcome::NotOurs);
        }
        let result = self.run_claimed(id).await;
        self.release(id);
        result
    }

    async fn run_claimed(&self, id: &str) -> Result<Outcome, SagaError> {
        let Some(row) = log::get_saga(self.inner.db.pool(), id).await? else {
            return Ok(Outcome::NotOurs);
        };
        if self.inner.instance.is_none()
            || row.owner.as_deref() != Some(self.instance())
            || row.state == STUCK
        {
            return Ok(Outcome::NotOurs);
        }
        let runner = self
            .inner
            .kinds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(row.kind.as_str())
            .cloned()
            .ok_or_else(|| SagaError::UnknownKind {
                kind: row.kind.clone(),
            })?;
        runner.execute(self.clone(), row).await
    }

    /// Adopts the unfinished sagas of processes silent for `silence` (any but this one with
    /// zero, right for the one process of a SQLite cloud at start), and this process's own
    /// that nothing here runs, and runs them in the background. Returns how many.
    pub async fn recover(&self, silence: Duration) -> Result<usize, SagaError> {
        let silence = i64::try_from(silence.as_micros()).unwrap_or(i64::MAX);
        let alive_since = now_micros().saturating_sub(silence);
        let Some(me) = self.inner.instance.as_deref() else {
            return Ok(0);
        };
        let orphans = log::list_orphan_sagas(self.inner.db.pool(), alive_since, me).await?;
        let mut adopted = 0;
        for row in orphans {
            if self.is_running(&row.id) {
                continue;
            }
            let ours = row.owner.as_deref() == Some(me)
                || log::adopt_saga(
                    self.inner.db.pool(),
                    &row.id,
                    row.owner.as_deref(),
                    me,
                    now_micros(),
                )
                .await?;
            if ours {
                tracing::warn!(saga = %row.id, kind = %row.kind, state = %row.state, from = ?row.owner, "resuming a saga");
                self.spawn(&row.id);
                adopted += 1;
            }
        }
        Ok(adopted)
    }

    fn claim(&self, id: &str) -> bool {
        self.inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned())
    }

    fn release(&self, id: &str) {
        self.inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    fn is_running(&self, id: &str) -> bool {
        self.inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(id)
    }
}

/// Runs a saga from its log: forward while it runs, backward once it unwinds.
async fn execute<S: Saga>(
    sagas: &Sagas,
    context: &S::Context,
    row: SagaRow,
) -> Result<Outcome, SagaError> {
    let db = &sagas.inner.db;
    let me = sagas.instance();
    let id = row.id.as_str();
    let steps = S::steps();
    let params: S::Params = match serde_json::from_str(&row.params) {
        Ok(params) => params,
        Err(error) => {
            let error = format!("its parameters are unreadable: {error}");
            log::set_saga_state(db.pool(), id, me, STUCK, Some(&error), now_micros()).await?;
            return Ok(Outcome::Stuck { error });
        }
    };
    let mut logged: BTreeMap<i64, StepRow> = log::list_steps(db.pool(), id)
        .await?
        .into_iter()
        .map(|step| (step.step, step))
        .collect();
    let mut outputs: BTreeMap<String, Value> = logged
        .values()
        .filter(|step| step.status == DONE)
        .filter_map(|step| {
            let value = serde_json::from_str(step.output.as_deref()?).ok()?;
            Some((step.name.clone(), value))
        })
        .collect();
    let mut error = row.error.clone().unwrap_or_default();
    if row.state == RUNNING {
        match run_forward::<S>(
            sagas,
            context,
            id,
            &params,
            &steps,
            &mut logged,
            &mut outputs,
        )
        .await?
        {
            Forward::Done => {
                log::delete_saga(db.pool(), id).await?;
                tracing::debug!(saga = id, kind = S::KIND, "saga done");
                return Ok(Outcome::Done);
            }
            Forward::Failed(failure) => {
                tracing::warn!(saga = id, kind = S::KIND, error = %failure, "saga unwinding");
                if !log::set_saga_state(db.pool(), id, me, UNWINDING, Some(&failure), now_micros())
                    .await?
                {
                    return Ok(Outcome::NotOurs);
                }
                error = failure;
            }
            Forward::Lost => return Ok(Outcome::NotOurs),
        }
    }
    // Unwind: undo every step that started, newest first.
    for (index, step) in steps.iter().enumerate().rev() {
        let number = step_number(index);
        let Some(entry) = logged.get(&number) else {
            continue;
        };
        if entry.status == UNDONE {
            continue;
        }
        if !still_ours(sagas, id, UNWINDING, &error).await? {
            return Ok(Outcome::NotOurs);
        }
        let input = StepInput {
            saga_id: id,
            params: &params,
            outputs: &outputs,
        };
        match retrying::<S, ()>(Deadline::Never, || (step.undo)(context, input)).await {
            Ok(()) => {
                let undone = StepRow {
                    status: UNDONE.to_owned(),
                    ..entry.clone()
                };
                if !log::set_step(db.pool(), id, me, &undone, now_micros()).await? {
                    return Ok(Outcome::NotOurs);
                }
            }
            Err(undo_error) => {
                let stuck = format!(
                    "{error}; then undoing step {} failed: {}",
                    step.name,
                    undo_error.message()
                );
                tracing::error!(saga = id, kind = S::KIND, error = %stuck, "saga stuck");
                log::set_saga_state(db.pool(), id, me, STUCK, Some(&stuck), now_micros()).await?;
                return Ok(Outcome::Stuck { error: stuck });
            }
        }
    }
    if let Err(hook_error) =
        retrying::<S, ()>(Deadline::Never, || S::unwound(context, &params, &error)).await
    {
        let stuck = format!(
            "{error}; then recording the failure failed: {}",
            hook_error.message()
        );
        log::set_saga_state(db.pool(), id, me, STUCK, Some(&stuck), now_micros()).await?;
        return Ok(Outcome::Stuck { error: stuck });
    }
    log::delete_saga(db.pool(), id).await?;
    Ok(Outcome::Unwound { error })
}

enum Forward {
    Done,
    Failed(String),
    /// Another process took the saga over.
    Lost,
}

async fn run_forward<S: Saga>(
    sagas: &Sagas,
    context: &S::Context,
    id: &str,
    params: &S::Params,
    steps: &[Step<S>],
    logged: &mut BTreeMap<i64, StepRow>,
    outputs: &mut BTreeMap<String, Value>,
) -> Result<Forward, SagaError> {
    let db = &sagas.inner.db;
    for (index, step) in steps.iter().enumerate() {
        let number = step_number(index);
        if logged.get(&number).is_some_and(|s| s.status == DONE) {
            continue;
        }
        if !still_ours(sagas, id, RUNNING, "").await? {
            return Ok(Forward::Lost);
        }
        let started = StepRow {
            step: number,
            name: step.name.to_owned(),
            status: STARTED.to_owned(),
            output: None,
        };
        if !log::set_step(db.pool(), id, sagas.instance(), &started, now_micros()).await? {
            return Ok(Forward::Lost);
        }
        logged.insert(number, started.clone());
        let input = StepInput {
            saga_id: id,
            params,
            outputs,
        };
        match retrying::<S, Value>(Deadline::After(S::RETRY_FOR), || {
            (step.action)(context, input)
        })
        .await
        {
            Ok(value) => {
                let done = StepRow {
                    status: DONE.to_owned(),
                    output: Some(value.to_string()),
                    ..started
                };
                if !log::set_step(db.pool(), id, sagas.instance(), &done, now_micros()).await? {
                    return Ok(Forward::Lost);
                }
                logged.insert(number, done);
                outputs.insert(step.name.to_owned(), value);
            }
            Err(error) => {
                return Ok(Forward::Failed(format!(
                    "{}: {}",
                    step.name,
                    error.message()
                )));
            }
        }
    }
    Ok(Forward::Done)
}

/// Whether this process still owns the saga (another may have adopted it while this one
/// was thought dead); touches it when so.
async fn still_ours(sagas: &Sagas, id: &str, state: &str, error: &str) -> Result<bool, SagaError> {
    let error = (!error.is_empty()).then_some(error);
    Ok(log::set_saga_state(
        sagas.inner.db.pool(),
        id,
        sagas.instance(),
        state,
        error,
        now_micros(),
    )
    .await?)
}

/// How long transient failures are retried.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    After(Duration),
    Never,
}

/// Calls `attempt` until it succeeds, fails for good, or has failed transiently past
/// `deadline`.
async fn retrying<'a, S: Saga, T>(
    deadline: Deadline,
    mut attempt: impl FnMut() -> BoxFuture<'a, Result<T, StepError>>,
) -> Result<T, StepError> {
    let deadline = match deadline {
        Deadline::After(duration) => Some(tokio::time::Instant::now() + duration),
        Deadline::Never => None,
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        match attempt().await {
            Err(StepError::Transient(message))
                if deadline.is_none_or(|d| tokio::time::Instant::now() < d) =>
            {
                tracing::info!(kind = S::KIND, error = %message, ?backoff, "step failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

fn step_number(index: usize) -> i64 {
    i64::try_from(index).unwrap_or(i64::MAX)
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
