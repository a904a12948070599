//! The DAG engine: runs a compiled workflow's steps concurrently where independent, with
//! conditions, retries, timeouts, error policies and cancellation, and produces the run
//! record.
//!
//! A run is one tokio task. Its steps run as futures inside that task (not one task each):
//! independent steps still overlap while they wait on I/O, and a short workflow costs one
//! spawn, which is what makes thousands of runs per second cheap.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::catalog::{Catalog, CompiledStep, CompiledWorkflow};
use super::definition::OnError;
use super::egress::EgressPolicy;
use super::expr::{Scope, truthy};
use super::tools::{self, StepError, ToolContext};
use crate::server::ai::AiClient;
use crate::server::docker::DockerClient;

/// What steps may use: an HTTP client for `http.request`, and Docker and AI clients when the
/// server has them configured (steps that need a missing one fail with a clear message).
#[derive(Clone, Debug)]
pub struct StepDeps {
    /// Client for `http.request` steps.
    pub http: LazyHttpClient,
    /// Docker Engine for `docker.*` steps.
    pub docker: Option<Arc<DockerClient>>,
    /// Completion API for `ai.complete` steps.
    pub ai: Option<Arc<AiClient>>,
}

/// The `http.request` client and where it may go. The client is built by the first HTTP
/// step: building one loads the TLS roots, which a server that never runs an HTTP step
/// should not pay for at startup. Redirects are followed (at most 10) only to allowed hosts.
#[derive(Clone, Debug, Default)]
pub struct LazyHttpClient {
    egress: Arc<EgressPolicy>,
    client: Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
}

impl LazyHttpClient {
    /// Most redirects one request follows.
    const MAX_REDIRECTS: usize = 10;

    /// A client limited to the hosts `egress` allows.
    pub fn new(egress: EgressPolicy) -> LazyHttpClient {
        LazyHttpClient {
            egress: Arc::new(egress),
            client: Arc::default(),
        }
    }

    /// Where requests may go.
    pub fn egress(&self) -> &EgressPolicy {
        &self.egress
    }

    /// The shared client, built on first use.
    pub fn get(&self) -> Result<&reqwest::Client, String> {
        let built = self.client.get_or_init(|| {
            let egress = self.egress.clone();
            let redirects = reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= Self::MAX_REDIRECTS {
                    let limit = Self::MAX_REDIRECTS;
                    attempt.error(format!("more than {limit} redirects"))
                } else if let Err(refused) = egress.check(attempt.url()) {
                    attempt.error(refused)
                } else {
                    attempt.follow()
                }
            });
            reqwest::Client::builder()
                .redirect(redirects)
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        });
        built.as_ref().map_err(Clone::clone)
    }
}

/// What to run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInput {
    /// The workflow's id in the catalog.
    pub workflow_id: String,
    /// The session the run belongs to, if any (copied into the record).
    #[serde(default)]
    pub session_id: Option<String>,
    /// Snapshot of the session's state, visible to steps as `session.*`.
    #[serde(default)]
    pub session_state: Value,
    /// Input parameters, visible to steps as `params.*`; a JSON object or null.
    #[serde(default)]
    pub params: Value,
}

/// Why a run could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// No workflow with this id.
    #[error("unknown workflow `{id}` (known: {known})")]
    UnknownWorkflow {
        /// The id asked for.
        id: String,
        /// The ids that exist, comma-separated.
        known: String,
    },
    /// The input cannot be used.
    #[error("invalid run input: {0}")]
    InvalidInput(String),
    /// `start` was called outside a tokio runtime.
    #[error("the workflow engine needs a tokio runtime to start runs")]
    NoRuntime,
}

/// Outcome of a run (js-mcp's values plus `running` and `cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Not finished yet.
    Running,
    /// Every step completed or was skipped by its condition.
    Completed,
    /// A step whose failure stops the run failed.
    Failed,
    /// Finished, but some steps failed or were skipped because of an error.
    Partial,
    /// Stopped by cancellation.
    Cancelled,
}

/// Where a step ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// In flight.
    Running,
    /// Produced an output.
    Completed,
    /// Failed after its retries.
    Failed,
    /// Not run: condition false, a dependency was skipped, or it failed with `onError: skip`.
    Skipped,
    /// Interrupted or never started because the run was cancelled or stopped.
    Cancelled,
}

impl StepStatus {
    fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }
}

/// One error of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// The step that failed (empty for errors of the run itself).
    pub step: String,
    /// What happened.
    pub message: String,
}

/// Per-step details of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// Step name.
    pub name: String,
    /// Final (or current) status.
    pub status: StepStatus,
    /// Attempts made (0 when the step never ran).
    pub attempts: u32,
    /// Time spent running, retries and backoff included.
    pub duration_ms: u64,
    /// The error, for failed steps and steps skipped by `onError: skip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why a step was skipped or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The result of a run, in js-mcp's shape (camelCase) with per-step details added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Unique id of this run.
    pub run_id: String,
    /// The workflow run.
    pub workflow_id: String,
    /// The session it belongs to.
    pub session_id: Option<String>,
    /// Outcome.
    pub status: RunStatus,
    /// Steps that completed, in definition order.
    pub completed_steps: Vec<String>,
    /// Steps that failed, in definition order.
    pub failed_steps: Vec<String>,
    /// Steps that were skipped, in definition order.
    pub skipped_steps: Vec<String>,
    /// Steps interrupted or never started because the run stopped.
    #[serde(default)]
    pub cancelled_steps: Vec<String>,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it finished (`None` while running).
    pub finished_at: Option<DateTime<Utc>>,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// Errors, one per failed step.
    pub errors: Vec<RunError>,
    /// Outputs of completed steps by step name.
    pub outputs: serde_json::Map<String, Value>,
    /// Per-step details, in definition order.
    #[serde(default)]
    pub steps: Vec<StepRecord>,
}

/// Progress of a run when an event happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The step the event is about.
    pub current_step: Option<String>,
    /// Steps that reached a final state.
    pub completed: usize,
    /// Steps in the workflow.
    pub total: usize,
    /// `completed` as a percentage of `total`.
    pub percentage: u8,
}

/// Something that happened in a run, for progress notifications, metrics and session
/// updates. Serialized with a `type` tag (`stepStarted`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum RunEvent {
    /// The run began.
    RunStarted {
        /// Run id.
        run_id: String,
        /// Workflow id.
        workflow_id: String,
        /// Session id, if any.
        session_id: Option<String>,
        /// Progress (nothing done yet).
        progress: Progress,
    },
    /// A step's first attempt began.
    StepStarted {
        /// Run id.
        run_id: String,
        /// Step name.
        step: String,
        /// Progress.
        progress: Progress,
    },
    /// An attempt failed and another will follow after `backoff_ms`.
    StepRetrying {
        /// Run id.
        run_id: String,
        /// Step name.
        step: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Why it failed.
        error: String,
        /// Wait before the next attempt.
        backoff_ms: u64,
        /// Progress.
        progress: Progress,
    },
    /// A step produced its output.
    StepCompleted {
        /// Run id.
        run_id: String,
        /// Step name.
        step: String,
        /// What the step produced (also in the run record).
        output: Value,
        /// Attempts it took.
        attempts: u32,
        /// Time it took.
        duration_ms: u64,
        /// Progress.
        progress: Progress,
    },
    /// A step failed after its retries.
    StepFailed {
        /// Run id.
        run_id: String,
        /// Step name.
        step: String,
        /// The last error.
        error: String,
        /// The step's `onError` policy, which decides what happens next.
        on_error: OnError,
        /// Progress.
        progress: Progress,
    },
    /// A step was skipped.
    StepSkipped {
        /// Run id.
        run_id: String,
        /// Step name.
        step: String,
        /// Why.
        reason: String,
        /// Progress.
        progress: Progress,
    },
    /// The run ended; the record is final.
    RunFinished {
        /// The final record.
        record: Box<RunRecord>,
    },
}

impl RunEvent {
    /// The run the event belongs to.
    pub fn run_id(&self) -> &str {
        match self {
            RunEvent::RunStarted { run_id, .. }
            | RunEvent::StepStarted { run_id, .. }
            | RunEvent::StepRetrying { run_id, .. }
            | RunEvent::StepCompleted { run_id, .. }
            | RunEvent::StepFailed { run_id, .. }
            | RunEvent::StepSkipped { run_id, .. } => run_id,
            RunEvent::RunFinished { record } => &record.run_id,
        }
    }

    /// Progress at the time of the event (complete for `RunFinished`).
    pub fn progress(&self) -> Progress {
        match self {
            RunEvent::RunStarted { progress, .. }
            | RunEvent::StepStarted { progress, .. }
            | RunEvent::StepRetrying { progress, .. }
            | RunEvent::StepCompleted { progress, .. }
            | RunEvent::StepFailed { progress, .. }
            | RunEvent::StepSkipped { progress, .. } => progress.clone(),
            RunEvent::RunFinished { record } => {
                let total = record.steps.len();
                Progress {
                    current_step: None,
                    completed: total,
                    total,
                    percentage: 100,
                }
            }
        }
    }
}

/// Callback receiving a run's events; called on the run's task, so it should be quick.
pub type EventSink = Arc<dyn Fn(RunEvent) + Send + Sync>;

/// Runs workflows from a catalog. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Arc<Catalog>,
    deps: StepDeps,
    active: AtomicUsize,
}

/// A started run.
#[derive(Debug)]
pub struct RunHandle {
    /// The run's id (also in every event and in the record).
    pub run_id: String,
    workflow_id: String,
    session_id: Option<String>,
    started_at: DateTime<Utc>,
    join: tokio::task::JoinHandle<RunRecord>,
}

impl RunHandle {
    /// Waits for the run to end and returns its record. If the run's task died (a panic in
    /// an event callback, or the runtime shutting down) the record says so instead.
    pub async fn wait(self) -> RunRecord {
        match self.join.await {
            Ok(record) => record,
            Err(e) => {
                let finished = Utc::now();
                let (status, message) = if e.is_cancelled() {
                    (
                        RunStatus::Cancelled,
                        "the run's task was aborted".to_owned(),
                    )
                } else {
                    (RunStatus::Failed, "the run's task panicked".to_owned())
                };
                RunRecord {
                    run_id: self.run_id,
                    workflow_id: self.workflow_id,
                    session_id: self.session_id,
                    status,
                    completed_steps: Vec::new(),
                    failed_steps: Vec::new(),
                    skipped_steps: Vec::new(),
                    cancelled_steps: Vec::new(),
                    started_at: self.started_at,
                    finished_at: Some(finished),
                    duration_ms: millis((finished - self.started_at).to_std().unwrap_or_default()),
                    errors: vec![RunError {
                        step: String::new(),
                        message,
                    }],
                    outputs: serde_json::Map::new(),
                    steps: Vec::new(),
                }
            }
        }
    }

    /// Whether the run has ended.
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// A record with status `running` and nothing done yet, for storing right after start.
    pub fn running_record(&self) -> RunRecord {
        RunRecord {
            run_id: self.run_id.clone(),
            workflow_id: self.workflow_id.clone(),
            session_id: self.session_id.clone(),
            status: RunStatus::Running,
            completed_steps: Vec::new(),
            failed_steps: Vec::new(),
            skipped_steps: Vec::new(),
            cancelled_steps: Vec::new(),
            started_at: self.started_at,
            finished_at: None,
            duration_ms: 0,
            errors: Vec::new(),
            outputs: serde_json::Map::new(),
            steps: Vec::new(),
        }
    }
}

impl Engine {
    /// An engine over `catalog` whose steps use `deps`.
    pub fn new(catalog: Arc<Catalog>, deps: StepDeps) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                catalog,
                deps,
                active: AtomicUsize::new(0),
            }),
        }
    }

    /// The catalog runs are started from.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    /// Runs in flight right now.
    pub fn active_runs(&self) -> usize {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// Starts a run on the current tokio runtime and returns at once. `cancel` stops it
    /// (pending steps never start, running ones are interrupted, status `cancelled`);
    /// `on_event` sees every step transition.
    pub fn start(
        &self,
        input: RunInput,
        cancel: CancellationToken,
        on_event: EventSink,
    ) -> Result<RunHandle, EngineError> {
        let workflow = self
            .inner
            .catalog
            .compiled(&input.workflow_id)
            .ok_or_else(|| EngineError::UnknownWorkflow {
                id: input.workflow_id.clone(),
                known: self
                    .inner
                    .catalog
                    .list()
                    .iter()
                    .map(|d| d.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let params = match input.params {
            Value::Null => Value::Object(serde_json::Map::new()),
            Value::Object(map) => Value::Object(map),
            other => {
                return Err(EngineError::InvalidInput(format!(
                    "params must be a JSON object, found {}",
                    tools::type_name(&other)
                )));
            }
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| EngineError::NoRuntime)?;
        let run_id = uuid::Uuid::new_v4().to_string();
        let started_at = Utc::now();
        let run = Run {
            inner: self.inner.clone(),
            workflow,
            run_id: run_id.clone(),
            session_id: input.session_id.clone(),
            params,
            session: input.session_state,
            started_at,
            cancel,
            on_event,
        };
        self.inner.active.fetch_add(1, Ordering::Relaxed);
        let join = runtime.spawn(run.execute());
        Ok(RunHandle {
            run_id,
            workflow_id: input.workflow_id,
            session_id: input.session_id,
            started_at,
            join,
        })
    }

    /// Starts a run and waits for its record, without events.
    pub async fn run(
        &self,
        input: RunInput,
        cancel: CancellationToken,
    ) -> Result<RunRecord, EngineError> {
        let handle = self.start(input, cancel, Arc::new(|_| {}))?;
        Ok(handle.wait().await)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// First retry waits this long; each further retry doubles it, up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(25);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

fn backoff(failed_attempt: u32) -> Duration {
    let factor = 1u32 << failed_attempt.saturating_sub(1).min(10);
    (BASE_BACKOFF * factor).min(MAX_BACKOFF)
}

/// Per-step state during a run.
#[derive(Debug)]
struct Slot {
    status: StepStatus,
    output: Option<Value>,
    error: Option<String>,
    reason: Option<String>,
    attempts: u32,
    duration: Duration,
    /// Dependents of this step are skipped (it was skipped by a failure or a skipped
    /// dependency, not by its own condition).
    cascade: bool,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            status: StepStatus::Pending,
            output: None,
            error: None,
            reason: None,
            attempts: 0,
            duration: Duration::ZERO,
            cascade: false,
        }
    }
}

struct RunScope<'a> {
    params: &'a Value,
    session: &'a Value,
    slots: &'a [Slot],
}

impl Scope for RunScope<'_> {
    fn params(&self) -> &Value {
        self.params
    }
    fn session(&self) -> &Value {
        self.session
    }
    fn step_output(&self, step: usize) -> Option<&Value> {
        self.slots.get(step).and_then(|s| s.output.as_ref())
    }
    fn step_status(&self, step: usize) -> Option<&'static str> {
        self.slots.get(step).map(|s| s.status.as_str())
    }
    fn step_error(&self, step: usize) -> Option<&str> {
        self.slots.get(step).and_then(|s| s.error.as_deref())
    }
}

/// How a step's attempts ended.
enum Outcome {
    Completed(Value),
    Failed(String),
    Cancelled,
}

/// Why the run stopped early.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Failed(usize),
    Cancelled,
    TimedOut(Duration),
}

struct Run {
    inner: Arc<Inner>,
    workflow: Arc<CompiledWorkflow>,
    run_id: String,
    session_id: Option<String>,
    params: Value,
    session: Value,
    started_at: DateTime<Utc>,
    cancel: CancellationToken,
    on_event: EventSink,
}

/// Decrements the active-run gauge however the run ends (even by panic).
struct ActiveGuard<'a>(&'a AtomicUsize);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Run {
    fn progress(&self, step: Option<&str>, finished: usize) -> Progress {
        let total = self.workflow.steps.len();
        Progress {
            current_step: step.map(str::to_owned),
            completed: finished,
            total,
            percentage: (finished * 100)
                .checked_div(total)
                .map_or(100, |p| u8::try_from(p).unwrap_or(100)),
        }
    }

    async fn execute(self) -> RunRecord {
        let _active = ActiveGuard(&self.inner.active);
        let clock = Instant::now();
        let wf = &self.workflow;
        let n = wf.steps.len();
        (self.on_event)(RunEvent::RunStarted {
            run_id: self.run_id.clone(),
            workflow_id: wf.definition.id.clone(),
            session_id: self.session_id.clone(),
            progress: self.progress(None, 0),
        });

        let mut slots: Vec<Slot> = (0..n).map(|_| Slot::default()).collect();
        let mut waiting: Vec<usize> = wf.steps.iter().map(|s| s.deps.len()).collect();
        let mut ready: VecDeque<usize> = wf.roots.iter().copied().collect();
        let mut errors: Vec<RunError> = Vec::new();
        let mut stop: Option<Stop> = None;
        // Shared with step futures so retry events carry current progress.
        let finished = AtomicUsize::new(0);
        // Child of the caller's token: also cancelled when a failing step stops the run.
        let steps_cancel = self.cancel.child_token();
        let mut in_flight = FuturesUnordered::new();
        // The definition's whole-run limit; without one this never fires.
        let deadline = async {
            match wf.timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);

        loop {
            while let Some(i) = ready.pop_front() {
                if stop.is_none() && self.cancel.is_cancelled() {
                    stop = Some(Stop::Cancelled);
                }
                if stop.is_some() {
                    ready.push_front(i);
                    break;
                }
                let step = &wf.steps[i];
                // A dependency skipped by failure takes its dependents with it.
                if let Some(&d) = step.deps.iter().find(|&&d| slots[d].cascade) {
                    let reason = format!("dependency `{}` was skipped", wf.steps[d].name);
                    self.skip(&mut slots[i], step, reason, true, &finished);
                    release(i, wf, &mut waiting, &mut ready);
                    continue;
                }
                let scope = RunScope {
                    params: &self.params,
                    session: &self.session,
                    slots: &slots,
                };
                if let Some((cond, src)) = &step.condition
                    && !truthy(&cond.eval(&scope))
                {
                    // A false condition is a decision, not an error: dependents still run.
                    let reason = format!("condition `{src}` is false");
                    self.skip(&mut slots[i], step, reason, false, &finished);
                    release(i, wf, &mut waiting, &mut ready);
                    continue;
                }
                let params = match step.params.resolve(&scope) {
                    Ok(p) => p,
                    Err(e) => {
                        let message = format!("cannot map parameters: {e}");
                        if let Some(s) = self.fail(
                            i,
                            &mut slots,
                            message,
                            &mut errors,
                            &finished,
                            &mut waiting,
                            &mut ready,
                        ) {
                            stop.get_or_insert(s);
                            steps_cancel.cancel();
                        }
                        continue;
                    }
                };
                slots[i].status = StepStatus::Running;
                (self.on_event)(RunEvent::StepStarted {
                    run_id: self.run_id.clone(),
                    step: step.name.clone(),
                    progress: self.progress(Some(&step.name), finished.load(Ordering::Relaxed)),
                });
                in_flight.push(self.attempts(i, step, params, &steps_cancel, &finished));
            }

            if in_flight.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                () = self.cancel.cancelled(), if stop.is_none() => {
                    stop = Some(Stop::Cancelled);
                    steps_cancel.cancel();
                }
                () = &mut deadline, if stop.is_none() => {
                    let limit = wf.timeout.unwrap_or_default();
                    stop = Some(Stop::TimedOut(limit));
                    errors.push(RunError {
                        step: String::new(),
                        message: format!("the run timed out after {limit:?}"),
                    });
                    steps_cancel.cancel();
                }
                Some((i, outcome, attempts, took)) = in_flight.next() => {
                    slots[i].attempts = attempts;
                    slots[i].duration = took;
                    let step = &wf.steps[i];
                    match outcome {
                        Outcome::Completed(output) => {
                            slots[i].status = StepStatus::Completed;
                            slots[i].output = Some(output.clone());
                            let done = finished.fetch_add(1, Ordering::Relaxed) + 1;
                            (self.on_event)(RunEvent::StepCompleted {
                                run_id: self.run_id.clone(),
                                step: step.name.clone(),
                                output,
                                attempts,
                                duration_ms: millis(took),
                                progress: self.progress(Some(&step.name), done),
                            });
                            release(i, wf, &mut waiting, &mut ready);
                        }
                        Outcome::Cancelled => {
                            slots[i].status = StepStatus::Cancelled;
                            slots[i].reason = Some(self.stop_reason(stop));
                            finished.fetch_add(1, Ordering::Relaxed);
                        }
                        Outcome::Failed(message) => {
                            if let Some(s) = self.fail(
                                i,
                                &mut slots,
                                message,
                                &mut errors,
                                &finished,
                                &mut waiting,
                                &mut ready,
                            ) {
                                // The first failure names the stop; later ones are recorded too.
                                stop.get_or_insert(s);
                                steps_cancel.cancel();
                            }
                        }
                    }
                }
            }
        }
        drop(in_flight);

        // Whatever never started was stopped by a failure or cancellation.
        for slot in slots.iter_mut() {
            if matches!(slot.status, StepStatus::Pending | StepStatus::Running) {
                slot.status = StepStatus::Cancelled;
                slot.reason = Some(self.stop_reason(stop));
            }
        }
        let status = match stop {
            Some(Stop::Cancelled) => RunStatus::Cancelled,
            Some(Stop::Failed(_) | Stop::TimedOut(_)) => RunStatus::Failed,
            None if errors.is_empty() => RunStatus::Completed,
            None => RunStatus::Partial,
        };
        let record = self.record(status, slots, errors, clock.elapsed());
        (self.on_event)(RunEvent::RunFinished {
            record: Box::new(record.clone()),
        });
        record
    }

    fn stop_reason(&self, stop: Option<Stop>) -> String {
        match stop {
            Some(Stop::Failed(i)) => format!(
                "the run stopped because step `{}` failed",
                self.workflow.steps[i].name
            ),
            Some(Stop::TimedOut(limit)) => format!("the run timed out after {limit:?}"),
            _ => "the run was cancelled".to_owned(),
        }
    }

    fn skip(
        &self,
        slot: &mut Slot,
        step: &CompiledStep,
        reason: String,
        cascade: bool,
        finished: &AtomicUsize,
    ) {
        slot.status = StepStatus::Skipped;
        slot.cascade = cascade;
        let done = finished.fetch_add(1, Ordering::Relaxed) + 1;
        (self.on_event)(RunEvent::StepSkipped {
            run_id: self.run_id.clone(),
            step: step.name.clone(),
            reason: reason.clone(),
            progress: self.progress(Some(&step.name), done),
        });
        slot.reason = Some(reason);
    }

    /// Applies the step's `onError` to a failure; returns a stop when the run must end.
    #[allow(clippy::too_many_arguments)]
    fn fail(
        &self,
        i: usize,
        slots: &mut [Slot],
        message: String,
        errors: &mut Vec<RunError>,
        finished: &AtomicUsize,
        waiting: &mut [usize],
        ready: &mut VecDeque<usize>,
    ) -> Option<Stop> {
        let step = &self.workflow.steps[i];
        let done = finished.fetch_add(1, Ordering::Relaxed) + 1;
        errors.push(RunError {
            step: step.name.clone(),
            message: message.clone(),
        });
        (self.on_event)(RunEvent::StepFailed {
            run_id: self.run_id.clone(),
            step: step.name.clone(),
            error: message.clone(),
            on_error: step.on_error,
            progress: self.progress(Some(&step.name), done),
        });
        let slot = &mut slots[i];
        slot.error = Some(message);
        match step.on_error {
            OnError::Fail => {
                slot.status = StepStatus::Failed;
                Some(Stop::Failed(i))
            }
            OnError::Continue => {
                slot.status = StepStatus::Failed;
                release(i, &self.workflow, waiting, ready);
                None
            }
            OnError::Skip => {
                slot.status = StepStatus::Skipped;
                slot.cascade = true;
                slot.reason = Some("failed with onError: skip".into());
                release(i, &self.workflow, waiting, ready);
                None
            }
        }
    }

    /// Runs a step's attempts with its timeout, retries and backoff; returns the outcome,
    /// the attempts made and the time taken.
    async fn attempts(
        &self,
        i: usize,
        step: &CompiledStep,
        params: Value,
        cancel: &CancellationToken,
        finished: &AtomicUsize,
    ) -> (usize, Outcome, u32, Duration) {
        let began = Instant::now();
        let mut attempt = 1;
        loop {
            let ctx = ToolContext {
                deps: &self.inner.deps,
                attempt,
                run_id: &self.run_id,
                step: &step.name,
            };
            let result = tokio::select! {
                biased;
                () = cancel.cancelled() => return (i, Outcome::Cancelled, attempt, began.elapsed()),
                r = tokio::time::timeout(step.timeout, tools::execute(step.tool, params.clone(), &ctx)) => r,
            };
            let error = match result {
                Ok(Ok(output)) => return (i, Outcome::Completed(output), attempt, began.elapsed()),
                Ok(Err(e)) => e,
                Err(_) => StepError {
                    message: format!("timed out after {}ms", millis(step.timeout)),
                    retryable: true,
                },
            };
            if !error.retryable || attempt >= step.max_attempts {
                let message = if attempt > 1 {
                    format!("{} (after {attempt} attempts)", error.message)
                } else {
                    error.message
                };
                return (i, Outcome::Failed(message), attempt, began.elapsed());
            }
            let wait = backoff(attempt);
            (self.on_event)(RunEvent::StepRetrying {
                run_id: self.run_id.clone(),
                step: step.name.clone(),
                attempt,
                error: error.message,
                backoff_ms: millis(wait),
                progress: self.progress(Some(&step.name), finished.load(Ordering::Relaxed)),
            });
            tokio::select! {
                biased;
                () = cancel.cancelled() => return (i, Outcome::Cancelled, attempt, began.elapsed()),
                () = tokio::time::sleep(wait) => {}
            }
            attempt += 1;
        }
    }

    fn record(
        &self,
        status: RunStatus,
        slots: Vec<Slot>,
        errors: Vec<RunError>,
        took: Duration,
    ) -> RunRecord {
        let wf = &self.workflow;
        let mut record = RunRecord {
            run_id: self.run_id.clone(),
            workflow_id: wf.definition.id.clone(),
            session_id: self.session_id.clone(),
            status,
            completed_steps: Vec::new(),
            failed_steps: Vec::new(),
            skipped_steps: Vec::new(),
            cancelled_steps: Vec::new(),
            started_at: self.started_at,
            finished_at: Some(Utc::now()),
            duration_ms: millis(took),
            errors,
            outputs: serde_json::Map::new(),
            steps: Vec::with_capacity(slots.len()),
        };
        for (step, slot) in wf.steps.iter().zip(slots) {
            let name = step.name.clone();
            match slot.status {
                StepStatus::Completed => record.completed_steps.push(name.clone()),
                StepStatus::Failed => record.failed_steps.push(name.clone()),
                StepStatus::Skipped => record.skipped_steps.push(name.clone()),
                StepStatus::Cancelled | StepStatus::Pending | StepStatus::Running => {
                    record.cancelled_steps.push(name.clone())
                }
            }
            if let Some(output) = slot.output {
                record.outputs.insert(name.clone(), output);
            }
            record.steps.push(StepRecord {
                name,
                status: slot.status,
                attempts: slot.attempts,
                duration_ms: millis(slot.duration),
                error: slot.error,
                reason: slot.reason,
            });
        }
        record
    }
}

/// Marks step `i` finished for its dependents and queues those now free to start.
fn release(i: usize, wf: &CompiledWorkflow, waiting: &mut [usize], ready: &mut VecDeque<usize>) {
    for &d in &wf.dependents[i] {
        waiting[d] -= 1;
        if waiting[d] == 0 {
            ready.push_back(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(25));
        assert_eq!(backoff(2), Duration::from_millis(50));
        assert_eq!(backoff(3), Duration::from_millis(100));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn run_record_serializes_in_js_mcp_shape() {
        let record = RunRecord {
            run_id: "r".into(),
            workflow_id: "w".into(),
            session_id: None,
            status: RunStatus::Partial,
            completed_steps: vec!["a".into()],
            failed_steps: vec!["b".into()],
            skipped_steps: vec![],
            cancelled_steps: vec![],
            started_at: Utc::now(),
            finished_at: None,
            duration_ms: 3,
            errors: vec![RunError {
                step: "b".into(),
                message: "x".into(),
            }],
            outputs: serde_json::Map::new(),
            steps: vec![],
        };
        let v = serde_json::to_value(&record).expect("serializes");
        for key in [
            "runId",
            "workflowId",
            "sessionId",
            "status",
            "completedSteps",
            "failedSteps",
            "skippedSteps",
            "startedAt",
            "finishedAt",
            "durationMs",
            "errors",
            "outputs",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["status"], "partial");
        let back: RunRecord = serde_json::from_value(v).expect("round trip");
        assert_eq!(back, record);
    }

    #[test]
    fn events_are_tagged_and_camel_cased() {
        let e = RunEvent::StepFailed {
            run_id: "r".into(),
            step: "s".into(),
            error: "e".into(),
            on_error: OnError::Continue,
            progress: Progress {
                current_step: Some("s".into()),
                completed: 1,
                total: 2,
                percentage: 50,
            },
        };
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v["type"], "stepFailed");
        assert_eq!(v["runId"], "r");
        assert_eq!(v["onError"], "continue");
        assert_eq!(v["progress"]["currentStep"], "s");
    }
}
