//! The MCP endpoint: rmcp's Streamable HTTP service at `/mcp` (session revisions 2025-06-18 and
//! 2025-11-25 with `Mcp-Session-Id`, and the stateless 2026-07-28 revision on the same path),
//! a session manager that caps and counts live MCP sessions, and the tools.
//!
//! Every tool failure is an MCP tool error (`isError: true`) whose text says what went wrong;
//! only malformed arguments (schema mismatch) are JSON-RPC `invalid params` errors.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
    ClientJsonRpcMessage, ContentBlock, CreateTaskResult, GetTaskParams, GetTaskResult,
    Implementation, ServerCapabilities, ServerConfig, ServerJsonRpcMessage, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker, SessionConfig,
};
use rmcp::transport::streamable_http_server::session::{SessionId, SessionManager};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::backends::{AiRequest, DockerCall, PruneArgs};
use super::metrics::Metrics;
use super::runs::RunError;
use super::sessions::{
    NewSession, SessionError, SessionFilter, SessionOp, SessionPatch, SessionStatus,
};
use super::tasks;

// ---------------------------------------------------------------------------------------------
// Session manager with a cap and a live gauge.

/// Errors of [`CappedSessionManager`].
#[derive(Debug, thiserror::Error)]
pub enum CappedError {
    /// The live MCP session cap is reached.
    #[error("MCP session table full: {0} live sessions is the configured maximum")]
    Full(usize),
    /// The server is draining.
    #[error("server is draining and accepts no new MCP sessions")]
    Draining,
    /// rmcp's local manager failed.
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

/// rmcp's [`LocalSessionManager`] plus a hard cap on live sessions and exact accounting for
/// the `jsmcp_mcp_sessions_live` gauge (sessions end by DELETE, idle timeout or shutdown).
pub struct CappedSessionManager {
    inner: LocalSessionManager,
    live: Arc<AtomicUsize>,
    max: usize,
    metrics: Metrics,
    draining: Arc<std::sync::atomic::AtomicBool>,
}

impl CappedSessionManager {
    /// A manager allowing `max` live sessions, each closed after `config.keep_alive` idle.
    pub fn new(
        config: SessionConfig,
        max: usize,
        live: Arc<AtomicUsize>,
        metrics: Metrics,
        draining: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config = config;
        CappedSessionManager {
            inner,
            live,
            max,
            metrics,
            draining,
        }
    }
}

impl SessionManager for CappedSessionManager {
    type Error = CappedError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        if self.draining.load(Ordering::Relaxed) {
            self.metrics
                .mcp_sessions_rejected
                .with_label_values(&["draining"])
                .inc();
            return Err(CappedError::Draining);
        }
        // Reserve a slot first so concurrent initializes cannot overshoot the cap.
        let prev = self.live.fetch_add(1, Ordering::SeqCst);
        if prev >= self.max {
            self.live.fetch_sub(1, Ordering::SeqCst);
            self.metrics
                .mcp_sessions_rejected
                .with_label_values(&["full"])
                .inc();
            return Err(CappedError::Full(self.max));
        }
        match self.inner.create_session().await {
            Ok(r) => {
                self.metrics.mcp_sessions_opened.inc();
                self.metrics.mcp_sessions_live.set((prev + 1) as i64);
                Ok(r)
            }
            Err(e) => {
                self.live.fetch_sub(1, Ordering::SeqCst);
                Err(e.into())
            }
        }
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        // Closing runs twice for one session (DELETE, then the worker's exit): count the
        // session only when this call is the one that removed it.
        let handle = self.inner.sessions.write().await.remove(id);
        if let Some(handle) = handle {
            let now = self.live.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
            self.metrics.mcp_sessions_live.set(now as i64);
            self.metrics.mcp_sessions_closed.inc();
            // The worker may already have stopped; either way the session is gone.
            let _ = handle.close().await;
        }
        Ok(())
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<
        impl futures::Stream<Item = rmcp::transport::streamable_http_server::session::ServerSseMessage>
        + Send
        + Sync
        + 'static,
        Self::Error,
    > {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<
        impl futures::Stream<Item = rmcp::transport::streamable_http_server::session::ServerSseMessage>
        + Send
        + Sync
        + 'static,
        Self::Error,
    > {
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<
        impl futures::Stream<Item = rmcp::transport::streamable_http_server::session::ServerSseMessage>
        + Send
        + Sync
        + 'static,
        Self::Error,
    > {
        Ok(self.inner.resume(id, last_event_id).await?)
    }
}

/// Builds the `/mcp` tower service.
pub fn service(state: Arc<AppState>) -> StreamableHttpService<McpServer, CappedSessionManager> {
    let settings = &state.settings;
    let mut session_config = SessionConfig::default();
    session_config.keep_alive = Some(settings.idle_timeout);
    let manager = Arc::new(CappedSessionManager::new(
        session_config,
        settings.max_mcp_sessions,
        state.mcp_live.clone(),
        state.metrics.clone(),
        state.draining.clone(),
    ));
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(settings.allowed_hosts.clone())
        .with_max_request_body_bytes(settings.max_body_bytes)
        .with_cancellation_token(state.shutdown.child_token());
    if !settings.allowed_origins.is_empty() {
        config = config.with_allowed_origins(settings.allowed_origins.clone());
    }
    let router = Arc::new(McpServer::router());
    StreamableHttpService::new(
        move || {
            Ok(McpServer {
                state: state.clone(),
                router: router.clone(),
            })
        },
        manager,
        config,
    )
}

// ---------------------------------------------------------------------------------------------
// Tool arguments.

/// Arguments naming one session.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRef {
    /// Session id.
    pub session_id: String,
}

/// Arguments of `session_create`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// Chosen id (a uuid when absent).
    #[serde(default)]
    pub id: Option<String>,
    /// Initial status: active (default), pending, analyzing, building, deploying.
    #[serde(default)]
    pub status: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Metadata object.
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    /// Configuration object.
    #[serde(default)]
    pub config: serde_json::Map<String, Value>,
    /// Idle TTL in seconds.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Planned number of steps.
    #[serde(default)]
    pub total_steps: Option<u32>,
}

/// Arguments of `session_update`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateArgs {
    /// Session id.
    pub session_id: String,
    /// Refuse the write unless the session is at this version.
    #[serde(default)]
    pub expected_version: Option<u64>,
    /// New status.
    #[serde(default)]
    pub status: Option<String>,
    /// Labels to set (null removes).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, Option<String>>>,
    /// Metadata keys to merge (null removes).
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// Configuration keys to merge (null removes).
    #[serde(default)]
    pub config: Option<serde_json::Map<String, Value>>,
    /// Planned number of steps.
    #[serde(default)]
    pub total_steps: Option<u32>,
    /// New idle TTL in seconds.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// Arguments of `session_delete`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    /// Session id.
    pub session_id: String,
    /// Refuse unless the session is at this version.
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// Arguments of `session_list`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Only this status.
    #[serde(default)]
    pub status: Option<String>,
    /// Only sessions with all these labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Paging cursor: ids after this one.
    #[serde(default)]
    pub after: Option<String>,
    /// Page size (default 100, max 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Arguments of the step tools.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepArgs {
    /// Session id.
    pub session_id: String,
    /// Step name.
    pub step: String,
    /// Step result (mark step completed only).
    #[serde(default)]
    pub result: Option<Value>,
    /// Refuse unless the session is at this version.
    #[serde(default)]
    pub expected_version: Option<u64>,
}

/// Arguments of `session_add_error`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepErrorArgs {
    /// Session id.
    pub session_id: String,
    /// Step name.
    pub step: String,
    /// Error text.
    pub message: String,
}

/// Arguments of `session_complete`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteArgs {
    /// Session id.
    pub session_id: String,
    /// Finish as failed instead of completed.
    #[serde(default)]
    pub failed: bool,
}

/// Arguments of `session_extend`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendArgs {
    /// Session id.
    pub session_id: String,
    /// Seconds to add.
    pub seconds: u64,
}

/// Arguments of `start_workflow`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartArgs {
    /// Workflow id (see `list_workflows`).
    pub workflow_id: String,
    /// Session whose state the steps read and whose workflow_state records progress.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Parameters for the steps.
    #[serde(default)]
    pub params: Option<Value>,
    /// Wait for the run to finish and return its result.
    #[serde(default)]
    pub wait: bool,
}

/// Arguments naming a run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRef {
    /// Run id returned by `start_workflow`.
    pub run_id: String,
}

/// Arguments of `docker_ps`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PsArgs {
    /// Include stopped containers.
    #[serde(default)]
    pub all: bool,
}

fn parse_status(s: Option<&str>) -> Result<Option<SessionStatus>, SessionError> {
    s.map(SessionStatus::parse).transpose()
}

fn ok_json(v: impl serde::Serialize) -> CallToolResult {
    match serde_json::to_value(&v) {
        Ok(value) => {
            let text = value.to_string();
            let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
            // Structured content must be an object; arrays and scalars stay text-only.
            if value.is_object() {
                r.structured_content = Some(value);
            }
            r
        }
        Err(e) => tool_error(format!("failed to encode result: {e}")),
    }
}

fn tool_error(msg: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(msg.into())])
}

fn session_result<T: serde::Serialize>(r: Result<T, SessionError>) -> CallToolResult {
    match r {
        Ok(v) => ok_json(v),
        Err(e) => tool_error(e.to_string()),
    }
}

fn run_error(e: RunError) -> CallToolResult {
    tool_error(e.to_string())
}

// ---------------------------------------------------------------------------------------------
// The server handler.

/// One MCP session's handler (cheap: shared state and a shared tool router).
#[derive(Clone)]
pub struct McpServer {
    state: Arc<AppState>,
    router: Arc<ToolRouter<McpServer>>,
}

impl McpServer {
    /// `start_workflow` for a client with the tasks extension: the run becomes a task whose
    /// id is the run id. With `wait: true` the call blocks as for any client.
    async fn start_workflow_task(
        &self,
        request: CallToolRequestParams,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.unwrap_or_default());
        let a: StartArgs = serde_json::from_value(args).map_err(|e| {
            ErrorData::invalid_params(format!("start_workflow arguments: {e}"), None)
        })?;
        if a.wait {
            return Ok(CallToolResponse::Complete(
                self.start_workflow(Parameters(a)).await,
            ));
        }
        Ok(match self.begin_run(a).await {
            Ok(run) => CallToolResponse::Task(CreateTaskResult::new(tasks::started_task(&run))),
            Err(e) => CallToolResponse::Complete(run_error(e)),
        })
    }

    /// Starts a run in the background (refused while draining).
    async fn begin_run(&self, a: StartArgs) -> Result<super::store::RunDoc, RunError> {
        let params = a.params.unwrap_or(json!({}));
        let draining = self.state.is_draining();
        let (run, _) = self
            .state
            .runs
            .start(a.workflow_id, a.session_id, params, draining)
            .await?;
        Ok(run)
    }

    /// The run behind a task id, or an error naming the unknown id.
    async fn task_run(&self, task_id: &str) -> Result<super::store::RunDoc, ErrorData> {
        self.state.runs.get(task_id).await.map_err(|e| match e {
            RunError::UnknownRun(_) => {
                ErrorData::invalid_params(format!("unknown task {task_id:?}"), None)
            }
            other => ErrorData::internal_error(other.to_string(), None),
        })
    }

    /// Every tool of this build (conformance fixtures included under the feature).
    pub fn router() -> ToolRouter<McpServer> {
        #[allow(unused_mut)]
        let mut r = Self::tool_router();
        #[cfg(feature = "conformance")]
        {
            r += super::conformance::router();
        }
        r
    }

    async fn docker(&self, call: DockerCall) -> CallToolResult {
        let Some(docker) = self.state.backends.docker.clone() else {
            return tool_error(format!(
                "Docker is unavailable: {}",
                self.state.backends.missing_reason("docker")
            ));
        };
        let t = Instant::now();
        let r = docker.call(call).await;
        let m = &self.state.metrics;
        m.docker_duration
            .with_label_values(&[call.name()])
            .observe(t.elapsed().as_secs_f64());
        match r {
            Ok(v) => ok_json(v),
            Err(e) => {
                m.docker_errors.with_label_values(&[call.name()]).inc();
                tool_error(format!("docker {} failed: {e}", call.name()))
            }
        }
    }
}

#[tool_router]
impl McpServer {
    #[tool(description = "Check the server answers. Returns {pong: true, time}.")]
    async fn ping(&self) -> CallToolResult {
        ok_json(json!({ "pong": true, "time": chrono::Utc::now() }))
    }

    #[tool(
        description = "Server status: version, uptime, and components (sessions, workflows, store, docker, ai) each with state and detail."
    )]
    async fn server_status(&self) -> CallToolResult {
        ok_json(super::http::status_json(&self.state).await)
    }

    #[tool(description = "List this server's tools with their descriptions.")]
    async fn list_tools(&self) -> CallToolResult {
        let mut tools: Vec<Value> = self
            .router
            .list_all()
            .into_iter()
            .map(|t| json!({ "name": t.name, "description": t.description }))
            .collect();
        tools.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        ok_json(json!({ "tools": tools }))
    }

    #[tool(
        description = "Create a session. Optional: id, status, labels, metadata, config, ttl_seconds (idle TTL), total_steps. Returns the session with its version."
    )]
    async fn session_create(&self, Parameters(a): Parameters<CreateArgs>) -> CallToolResult {
        let status = match parse_status(a.status.as_deref()) {
            Ok(s) => s,
            Err(e) => return tool_error(e.to_string()),
        };
        session_result(
            self.state
                .sessions
                .create(NewSession {
                    id: a.id,
                    status,
                    labels: a.labels,
                    metadata: a.metadata,
                    config: a.config,
                    ttl_seconds: a.ttl_seconds,
                    total_steps: a.total_steps,
                })
                .await,
        )
    }

    #[tool(description = "Get a session by id.")]
    async fn session_get(&self, Parameters(a): Parameters<SessionRef>) -> CallToolResult {
        session_result(self.state.sessions.get(&a.session_id).await)
    }

    #[tool(
        description = "Update a session atomically: status, labels/metadata/config (merged; null removes), total_steps, ttl_seconds. With expected_version, a stale version is refused (conflict)."
    )]
    async fn session_update(&self, Parameters(a): Parameters<UpdateArgs>) -> CallToolResult {
        let status = match parse_status(a.status.as_deref()) {
            Ok(s) => s,
            Err(e) => return tool_error(e.to_string()),
        };
        let patch = SessionPatch {
            status,
            labels: a.labels,
            metadata: a.metadata,
            config: a.config,
            total_steps: a.total_steps,
            ttl_seconds: a.ttl_seconds,
        };
        session_result(
            self.state
                .sessions
                .update(&a.session_id, a.expected_version, SessionOp::Patch(patch))
                .await,
        )
    }

    #[tool(description = "Delete a session (optionally only at expected_version).")]
    async fn session_delete(&self, Parameters(a): Parameters<DeleteArgs>) -> CallToolResult {
        session_result(
            self.state
                .sessions
                .delete(&a.session_id, a.expected_version)
                .await
                .map(|()| json!({ "deleted": a.session_id })),
        )
    }

    #[tool(
        description = "List sessions in id order. Filters: status, labels (all must match); paging: after, limit."
    )]
    async fn session_list(&self, Parameters(a): Parameters<ListArgs>) -> CallToolResult {
        let status = match parse_status(a.status.as_deref()) {
            Ok(s) => s,
            Err(e) => return tool_error(e.to_string()),
        };
        let filter = SessionFilter {
            status,
            labels: a.labels,
            after: a.after,
            limit: a.limit.unwrap_or(0),
        };
        let limit = filter.effective_limit();
        session_result(self.state.sessions.list(filter).await.map(|s| {
            let next = (s.len() == limit)
                .then(|| s.last().map(|x| x.id.clone()))
                .flatten();
            json!({ "sessions": s, "next_after": next })
        }))
    }

    #[tool(description = "Set the step a session is working on.")]
    async fn session_set_current_step(
        &self,
        Parameters(a): Parameters<StepArgs>,
    ) -> CallToolResult {
        session_result(
            self.state
                .sessions
                .update(
                    &a.session_id,
                    a.expected_version,
                    SessionOp::SetCurrentStep { step: a.step },
                )
                .await,
        )
    }

    #[tool(description = "Mark a step of a session completed, with an optional result.")]
    async fn session_mark_step(&self, Parameters(a): Parameters<StepArgs>) -> CallToolResult {
        session_result(
            self.state
                .sessions
                .update(
                    &a.session_id,
                    a.expected_version,
                    SessionOp::MarkStepCompleted {
                        step: a.step,
                        result: a.result,
                    },
                )
                .await,
        )
    }

    #[tool(description = "Record an error against a step of a session.")]
    async fn session_add_error(&self, Parameters(a): Parameters<StepErrorArgs>) -> CallToolResult {
        session_result(
            self.state
                .sessions
                .update(
                    &a.session_id,
                    None,
                    SessionOp::AddStepError {
                        step: a.step,
                        message: a.message,
                    },
                )
                .await,
        )
    }

    #[tool(description = "Finish a session as completed (or failed with failed=true).")]
    async fn session_complete(&self, Parameters(a): Parameters<CompleteArgs>) -> CallToolResult {
        session_result(
            self.state
                .sessions
                .update(
                    &a.session_id,
                    None,
                    SessionOp::Complete { failed: a.failed },
                )
                .await,
        )
    }

    #[tool(description = "Push a session's expiry later by `seconds`.")]
    async fn session_extend(&self, Parameters(a): Parameters<ExtendArgs>) -> CallToolResult {
        session_result(
            self.state
                .sessions
                .update(
                    &a.session_id,
                    None,
                    SessionOp::Extend { seconds: a.seconds },
                )
                .await,
        )
    }

    #[tool(description = "List workflow definitions (id, name, description, steps).")]
    async fn list_workflows(&self) -> CallToolResult {
        match self.state.runs.engine() {
            Ok(e) => ok_json(json!({ "workflows": e.list() })),
            Err(e) => run_error(e),
        }
    }

    #[tool(
        description = "Start a workflow run: workflow_id, optional session_id (its state feeds step parameters and records progress) and params. Returns the run (poll workflow_status with run_id; clients with the MCP tasks extension get a task instead), or with wait=true the finished result."
    )]
    async fn start_workflow(&self, Parameters(a): Parameters<StartArgs>) -> CallToolResult {
        if !a.wait {
            return match self.begin_run(a).await {
                Ok(doc) => ok_json(doc),
                Err(e) => run_error(e),
            };
        }
        let draining = self.state.is_draining();
        let params = a.params.unwrap_or(json!({}));
        match self
            .state
            .runs
            .run_to_end(a.workflow_id, a.session_id, params, draining)
            .await
        {
            Ok(doc) => ok_json(doc),
            Err(e) => run_error(e),
        }
    }

    #[tool(
        description = "Status of a workflow run: running, completed, failed, partial or cancelled, with completed/failed/skipped steps, duration, errors and outputs when finished."
    )]
    async fn workflow_status(&self, Parameters(a): Parameters<RunRef>) -> CallToolResult {
        match self.state.runs.get(&a.run_id).await {
            Ok(doc) => ok_json(doc),
            Err(e) => run_error(e),
        }
    }

    #[tool(description = "Cancel a workflow run in progress on this server.")]
    async fn cancel_workflow(&self, Parameters(a): Parameters<RunRef>) -> CallToolResult {
        if self.state.runs.cancel(&a.run_id) {
            ok_json(json!({ "cancelled": a.run_id }))
        } else {
            tool_error(format!("run {:?} is not running on this server", a.run_id))
        }
    }

    #[tool(description = "Docker Engine system information (GET /info).")]
    async fn docker_info(&self) -> CallToolResult {
        self.docker(DockerCall::Info).await
    }

    #[tool(description = "List containers (all=true includes stopped ones).")]
    async fn docker_ps(&self, Parameters(a): Parameters<PsArgs>) -> CallToolResult {
        self.docker(DockerCall::Ps { all: a.all }).await
    }

    #[tool(description = "Docker disk usage (GET /system/df).")]
    async fn docker_df(&self) -> CallToolResult {
        self.docker(DockerCall::Df).await
    }

    #[tool(
        description = "Prune unused Docker objects: containers, images, volumes, networks (each true to prune)."
    )]
    async fn docker_prune(&self, Parameters(a): Parameters<PruneArgs>) -> CallToolResult {
        if !(a.containers || a.images || a.volumes || a.networks) {
            return tool_error(
                "docker_prune needs at least one of containers, images, volumes, networks set to true",
            );
        }
        self.docker(DockerCall::Prune(a)).await
    }

    #[tool(
        description = "Complete a prompt with the configured OpenAI-compatible model: prompt, optional system, max_tokens, temperature. Returns {content, model, usage}."
    )]
    async fn ai_complete(&self, Parameters(a): Parameters<AiRequest>) -> CallToolResult {
        let Some(ai) = self.state.backends.ai.clone() else {
            return tool_error(format!(
                "AI completion is unavailable: {}",
                self.state.backends.missing_reason("ai")
            ));
        };
        if a.prompt.trim().is_empty() {
            return tool_error("prompt must not be empty");
        }
        let t = Instant::now();
        let r = ai.complete(a).await;
        let m = &self.state.metrics;
        let outcome = if r.is_ok() { "ok" } else { "error" };
        m.ai_duration
            .with_label_values(&[outcome])
            .observe(t.elapsed().as_secs_f64());
        match r {
            Ok(v) => ok_json(v),
            Err(e) => {
                m.ai_errors.inc();
                tool_error(format!("AI completion failed: {e}"))
            }
        }
    }
}

#[tool_handler(router = self.router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        #[cfg(not(feature = "conformance"))]
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tasks()
            .build();
        #[cfg(feature = "conformance")]
        #[allow(deprecated)]
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tasks()
            .enable_logging()
            .enable_completions()
            .enable_prompts()
            .enable_resources()
            .enable_resources_subscribe()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("js-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "js-mcp session/workflow server: session_* tools manage sessions (optimistic \
                 concurrency via expected_version), start_workflow/workflow_status run workflows, \
                 docker_* and ai_complete reach the configured Docker Engine and AI endpoint.",
            )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let t = Instant::now();
        // Only known tool names become label values, so the label set stays bounded.
        let router = self.router.clone();
        let label: &str = router
            .map
            .get_key_value(request.name.as_ref())
            .map_or("unknown", |(k, _)| k.as_ref());
        let as_task = request.name == "start_workflow"
            && context
                .client_capabilities()
                .is_some_and(|c| c.supports_tasks());
        let r = if as_task {
            self.start_workflow_task(request).await
        } else {
            router
                .call(ToolCallContext::new(self, request, context))
                .await
        };
        let outcome = match &r {
            Ok(CallToolResponse::Complete(res)) if res.is_error == Some(true) => "error",
            Ok(_) => "ok",
            Err(_) => "protocol_error",
        };
        let m = &self.state.metrics;
        m.tool_calls.with_label_values(&[label, outcome]).inc();
        m.tool_duration
            .with_label_values(&[label])
            .observe(t.elapsed().as_secs_f64());
        r
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let run = self.task_run(&request.task_id).await?;
        let task = tasks::task_of_run(&run, || {
            serde_json::to_value(ok_json(&run)).unwrap_or(Value::Null)
        });
        Ok(GetTaskResult::new(task))
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let run = self.task_run(&request.task_id).await?;
        // A run that already finished stays as it was; cancelling it is not an error.
        if run.status == "running" && !self.state.runs.cancel(&run.id) {
            return Err(ErrorData::invalid_params(
                format!("task {:?} runs on another server replica", run.id),
                None,
            ));
        }
        Ok(())
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Err(ErrorData::invalid_params(
            format!(
                "task {:?} never asks for input: workflow runs take none",
                request.task_id
            ),
            None,
        ))
    }

    #[cfg(feature = "conformance")]
    async fn list_resources(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, ErrorData> {
        super::conformance::list_resources()
    }

    #[cfg(feature = "conformance")]
    async fn list_resource_templates(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, ErrorData> {
        super::conformance::list_resource_templates()
    }

    #[cfg(feature = "conformance")]
    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, ErrorData> {
        super::conformance::read_resource(request)
    }

    #[cfg(feature = "conformance")]
    async fn subscribe(
        &self,
        request: rmcp::model::SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        super::conformance::subscribe(request);
        Ok(())
    }

    #[cfg(feature = "conformance")]
    async fn unsubscribe(
        &self,
        request: rmcp::model::UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        super::conformance::unsubscribe(request);
        Ok(())
    }

    #[cfg(feature = "conformance")]
    async fn list_prompts(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListPromptsResult, ErrorData> {
        super::conformance::list_prompts()
    }

    #[cfg(feature = "conformance")]
    async fn get_prompt(
        &self,
        request: rmcp::model::GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetPromptResponse, ErrorData> {
        super::conformance::get_prompt(request)
    }

    #[cfg(feature = "conformance")]
    async fn complete(
        &self,
        request: rmcp::model::CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CompleteResult, ErrorData> {
        super::conformance::complete(request)
    }

    #[cfg(feature = "conformance")]
    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        super::conformance::set_level(request);
        Ok(())
    }
}
