//! The seams between the HTTP/MCP surface and the components that do outside work:
//! Docker Engine, the AI endpoint and the workflow engine. The server codes against these
//! small traits; `adapters` binds them to the real clients, and tests can bind fakes.

use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Health of one component for `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    /// `ok`, `degraded`, `error` or `disabled`.
    pub state: &'static str,
    /// What the state is based on.
    pub detail: String,
}

impl ComponentHealth {
    /// State `ok`.
    pub fn ok(detail: impl Into<String>) -> Self {
        ComponentHealth {
            state: "ok",
            detail: detail.into(),
        }
    }
    /// State `error`.
    pub fn error(detail: impl Into<String>) -> Self {
        ComponentHealth {
            state: "error",
            detail: detail.into(),
        }
    }
    /// State `degraded`.
    pub fn degraded(detail: impl Into<String>) -> Self {
        ComponentHealth {
            state: "degraded",
            detail: detail.into(),
        }
    }
    /// State `disabled` (not configured).
    pub fn disabled(detail: impl Into<String>) -> Self {
        ComponentHealth {
            state: "disabled",
            detail: detail.into(),
        }
    }
}

/// What `docker_prune` removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneArgs {
    /// Remove stopped containers.
    #[serde(default)]
    pub containers: bool,
    /// Remove dangling images.
    #[serde(default)]
    pub images: bool,
    /// Remove unused volumes.
    #[serde(default)]
    pub volumes: bool,
    /// Remove unused networks.
    #[serde(default)]
    pub networks: bool,
}

/// One Docker Engine call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerCall {
    /// `GET /info`.
    Info,
    /// `GET /containers/json`.
    Ps {
        /// Include stopped containers.
        all: bool,
    },
    /// `GET /system/df`.
    Df,
    /// The prune endpoints.
    Prune(PruneArgs),
}

impl DockerCall {
    /// Bounded name for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            DockerCall::Info => "info",
            DockerCall::Ps { .. } => "ps",
            DockerCall::Df => "df",
            DockerCall::Prune(_) => "prune",
        }
    }
}

/// The Docker Engine API.
pub trait DockerBackend: Send + Sync + 'static {
    /// Performs `call`; errors are human-readable.
    fn call(&self, call: DockerCall) -> BoxFuture<'_, Result<Value, String>>;
    /// Where it connects (socket path).
    fn describe(&self) -> String;
}

/// An AI completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AiRequest {
    /// The user prompt.
    pub prompt: String,
    /// Optional system prompt.
    #[serde(default)]
    pub system: Option<String>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
}

/// The OpenAI-compatible completion API.
pub trait AiBackend: Send + Sync + 'static {
    /// Completes `req`; the answer is `{content, model, usage?}`.
    fn complete(&self, req: AiRequest) -> BoxFuture<'_, Result<Value, String>>;
    /// Model and endpoint, for status.
    fn describe(&self) -> String;
}

/// A progress event of one step of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum StepEvent {
    /// The step started.
    Started {
        /// Step name.
        step: String,
    },
    /// The step finished with an output.
    Completed {
        /// Step name.
        step: String,
        /// Step output.
        output: Value,
    },
    /// The step failed (after retries).
    Failed {
        /// Step name.
        step: String,
        /// Error text.
        error: String,
    },
    /// The step was skipped (condition false or onError=skip).
    Skipped {
        /// Step name.
        step: String,
    },
}

/// Callback the engine calls for each step event.
pub type StepCallback = Arc<dyn Fn(StepEvent) + Send + Sync>;

/// What a run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// Run id chosen by the server.
    pub run_id: String,
    /// Workflow to run.
    pub workflow_id: String,
    /// Session the run belongs to.
    pub session_id: Option<String>,
    /// The session as JSON (for parameter mapping), `null` without a session.
    pub session_state: Value,
    /// Caller parameters.
    pub params: Value,
}

/// The workflow engine and catalog.
pub trait WorkflowBackend: Send + Sync + 'static {
    /// Summaries of every workflow definition (`{id, name, description, steps}`).
    fn list(&self) -> Vec<Value>;
    /// The full definition of one workflow, if it exists.
    fn get(&self, id: &str) -> Option<Value>;
    /// Starts a run. `Err` means it could not start (bad params, unknown workflow) and says
    /// why; otherwise the future resolves to the result in js-mcp's shape (`{workflowId,
    /// sessionId, status, completedSteps, failedSteps, skippedSteps, duration, errors,
    /// outputs}`), with step failures inside the result.
    fn run(
        &self,
        req: RunRequest,
        cancel: CancellationToken,
        on_step: StepCallback,
    ) -> Result<BoxFuture<'static, Value>, String>;
    /// Catalog health (definitions loaded, definition errors).
    fn health(&self) -> ComponentHealth;
}

/// The optional components, each `None` when not configured or not available.
#[derive(Clone, Default)]
pub struct Backends {
    /// Docker Engine.
    pub docker: Option<Arc<dyn DockerBackend>>,
    /// AI endpoint.
    pub ai: Option<Arc<dyn AiBackend>>,
    /// Workflow engine.
    pub workflows: Option<Arc<dyn WorkflowBackend>>,
    /// Why a component is missing (shown in `/status` and tool errors).
    pub missing_reasons: Vec<(&'static str, String)>,
}

impl Backends {
    /// Why `component` is unavailable, if known.
    pub fn missing_reason(&self, component: &str) -> String {
        self.missing_reasons
            .iter()
            .find(|(c, _)| *c == component)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| format!("{component} is not configured"))
    }
}
