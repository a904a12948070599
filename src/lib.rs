//! js-mcp: a Kubernetes operator for fleets of MCP servers, and the session/workflow MCP
//! server (`js-mcp serve`) that runs in every pod it manages.
//!
//! Modules, one owner each:
//! - [`api`]: the custom resources (McpInstance, MaintenancePolicy, BackupSchedule).
//! - [`operator`]: controllers, leader election, the operator's admin server.
//! - [`local`]: a cluster in a box (etcd + kube-apiserver + kube-controller-manager + a node agent).
//! - [`server`]: the embedded MCP server.
//! - [`telemetry`]: tracing setup.

pub mod api;
pub mod local;
pub mod operator;
pub mod server;
pub mod telemetry;

/// Errors of the operator and the local cluster. The server has its own error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// The object's spec cannot be served; the message names the field and the reason.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// An object the spec refers to (Secret, ConfigMap) does not exist yet.
    #[error("missing reference: {0}")]
    MissingReference(String),
    /// Serializing or deserializing failed.
    #[error("serialization error: {0}")]
    Serde(#[from] serde_json::Error),
    /// A local process or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Anything else, with a message that says what went wrong.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Wraps an I/O error with what was being done when it happened.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A short, bounded label for metrics (never object names or free text).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::MissingReference(_) => "missing_reference",
            Error::Serde(_) => "serde",
            Error::Io { .. } => "io",
            Error::Other(_) => "other",
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
