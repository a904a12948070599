//! Workflow definitions, validation and the DAG engine.
//!
//! - [`definition`]: the YAML/JSON format (`{id, name, description, steps[], parallelGroups?}`).
//! - [`Catalog`]: loads built-ins and definition files, validating each on load.
//! - [`Engine`]: runs a workflow's steps as a DAG with conditions, retries, timeouts,
//!   `onError` policies and cancellation, and returns a [`RunRecord`].
//! - Step tools: builtins (`echo`, `set`, `transform`, `sleep`, `fail`, `log`),
//!   `http.request`, `docker.info|ps|df|prune` and `ai.complete` (see [`known_tools`]).
//! - [`EgressPolicy`]: the hosts `http.request` may reach.
//!
//! Conditions and `${...}` references use a tiny expression language over `params`,
//! `session`, `outputs.<step>` and `steps.<step>.output|status|error`; see `expr`.

mod builtin;
mod catalog;
pub mod definition;
mod egress;
mod engine;
mod expr;
mod tools;

pub use catalog::{
    Catalog, DEFAULT_MAX_RETRIES, DEFAULT_STEP_TIMEOUT, DefinitionError, MAX_RETRIES, MAX_STEPS,
    known_tools,
};
pub use definition::{DefinitionFormat, OnError, StepDefinition, TimeoutSpec, WorkflowDefinition};
pub use egress::EgressPolicy;
pub use engine::{
    Engine, EngineError, EventSink, LazyHttpClient, Progress, RunError, RunEvent, RunHandle,
    RunInput, RunRecord, RunStatus, StepDeps, StepRecord, StepStatus,
};
pub use tools::{MAX_HTTP_BODY, MAX_SLEEP};
