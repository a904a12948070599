//! McpInstance (`mcpi`): one js-mcp server deployment, its config, session store and status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Port `js-mcp serve` listens on when the spec does not say.
pub const DEFAULT_PORT: i32 = 3000;

/// Desired state of one js-mcp server deployment.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "jsmcp.io",
    version = "v1alpha1",
    kind = "McpInstance",
    plural = "mcpinstances",
    shortname = "mcpi",
    category = "jsmcp",
    namespaced,
    status = "McpInstanceStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.currentRevision"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","priority":1,"jsonPath":".status.endpoint"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct McpInstanceSpec {
    /// Container image. Defaults to the operator's own image (the same binary serves every role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512), pattern(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"))]
    pub image: Option<String>,
    /// Number of pods. Unset leaves scaling to an HPA or a person: the operator never fights them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// Port `js-mcp serve` listens on in the pod (default 3000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 65535))]
    pub port: Option<i32>,
    /// Server configuration, rendered to a ConfigMap whose hash rolls the pods.
    #[serde(default)]
    pub config: ServerConfig,
    /// Where sessions live.
    #[serde(default)]
    pub session_store: SessionStoreSpec,
    /// ConfigMaps holding workflow definitions (YAML or JSON files), mounted into the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub workflows: Vec<ConfigMapRef>,
    /// OpenAI-compatible (or Anthropic) provider for the `ai_complete` tool and AI workflow steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai: Option<AiProviderSpec>,
    /// Access to a Docker Engine API socket for the Docker maintenance tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerSpec>,
    /// Secret key holding a bearer token that `/mcp` and `/api` require.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token_secret_ref: Option<SecretKeyRef>,
    /// Container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables for the server container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Node selector for the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations for the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// The Service in front of the pods.
    #[serde(default)]
    pub service: ServiceSpec,
    /// When true the operator stops changing children (status is still reported).
    #[serde(default)]
    pub paused: bool,
}

/// Configuration of `js-mcp serve`, written to `config.json` in the instance's ConfigMap.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// Log level of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    /// Hard cap on live sessions; creating one more gets a clear error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub max_sessions: Option<i64>,
    /// Default session time to live, in seconds (24 h when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 31_536_000))]
    pub session_ttl_seconds: Option<i64>,
    /// MCP transport sessions idle longer than this are closed, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 86_400))]
    pub idle_timeout_seconds: Option<i64>,
    /// Origins allowed on `/mcp` besides none (browsers); exact matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allowed_origins: Vec<String>,
    /// Extra Host names allowed on `/mcp` (the Service DNS names and pod IP are always allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allowed_hosts: Vec<String>,
    /// Largest request body accepted, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 67_108_864))]
    pub max_body_bytes: Option<i64>,
    /// Hosts that `http.request` workflow steps may call: `api.example.com`, `10.0.0.7`,
    /// `*.svc.cluster.local` or `*`. Unset: any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub http_allowed_hosts: Vec<String>,
}

/// Server log level.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default.
    Info,
    /// Verbose.
    Debug,
    /// Very verbose.
    Trace,
}

/// Where the server keeps sessions.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStoreSpec {
    /// `embedded` (on-disk, one pod's own) or `redis` (shared by replicas).
    #[serde(default, rename = "type")]
    pub type_: SessionStoreType,
    /// Persistence of the embedded store on a PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistenceSpec>,
    /// Secret key holding the Redis URL (required when `type` is `redis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url_secret_ref: Option<SecretKeyRef>,
}

/// Session store kind.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStoreType {
    /// On-disk store inside the pod (default).
    #[default]
    Embedded,
    /// Redis, so replicas share sessions.
    Redis,
}

/// A PVC for the embedded store.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceSpec {
    /// Whether to create and mount a PVC.
    #[serde(default)]
    pub enabled: bool,
    /// Requested size, e.g. `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$"))]
    pub size: Option<String>,
    /// Storage class of the PVC; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
}

/// A reference to one key of a Secret in the same namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A reference to a ConfigMap in the same namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapRef {
    /// ConfigMap name.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// An AI provider for `ai_complete`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AiProviderSpec {
    /// API flavour.
    #[serde(default)]
    pub provider: AiProviderKind,
    /// Base URL, e.g. `https://api.openai.com/v1`.
    #[schemars(length(min = 1, max = 2048), pattern(r"^https?://"))]
    pub base_url: String,
    /// Model name.
    #[schemars(length(min = 1, max = 256))]
    pub model: String,
    /// Secret key holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
}

/// AI API flavour.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AiProviderKind {
    /// OpenAI-compatible chat completions.
    #[default]
    Openai,
    /// Anthropic messages API.
    Anthropic,
}

/// Docker Engine API access.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DockerSpec {
    /// Mount the host's Docker socket into the pod.
    #[serde(default)]
    pub enabled: bool,
    /// Host path of the socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), pattern(r"^/"))]
    pub socket_path: Option<String>,
}

/// The Service in front of the pods.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Service port (defaults to the container port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Kubernetes Service type.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// Cluster-internal (default).
    #[default]
    ClusterIP,
    /// A port on every node.
    NodePort,
    /// A cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The value Kubernetes expects in `spec.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Observed state of an McpInstance.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpInstanceStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, Degraded, RolledBack.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Desired pods (from the Deployment, whoever scales it).
    #[serde(default)]
    pub replicas: i32,
    /// Pods passing readiness.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods on the current revision.
    #[serde(default)]
    pub updated_replicas: i32,
    /// Pods available for the Deployment's minReadySeconds.
    #[serde(default)]
    pub available_replicas: i32,
    /// Hash of the pod template the operator applies now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// Last revision that became fully ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_known_good_revision: Option<String>,
    /// A revision rolled back and not to be applied again until the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_revision: Option<String>,
    /// The MCP endpoint clients use, e.g. `http://NAME.NS.svc:3000/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// A bounded health summary written by maintenance probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSummary>,
    /// The last restart the operator made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<ActionRecord>,
    /// The last rollback the operator made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rollback: Option<ActionRecord>,
}

/// Health as seen by the last probe of the instance's pods.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthSummary {
    /// healthy, degraded, unhealthy or unknown.
    pub state: String,
    /// When the probe ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Time>,
    /// Up to 10 short findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
}

/// One action the operator took on the instance.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionRecord {
    /// When it happened.
    pub time: Time,
    /// Why, in a few words.
    pub reason: String,
    /// The revision involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

impl McpInstanceSpec {
    /// The container port, defaulted.
    pub fn port(&self) -> i32 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// The Service port, defaulted to the container port.
    pub fn service_port(&self) -> i32 {
        self.service.port.unwrap_or_else(|| self.port())
    }

    /// Every Secret name the spec refers to (a change to any of them re-renders the instance).
    pub fn referenced_secrets(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        if let Some(r) = &self.session_store.redis_url_secret_ref {
            names.push(&r.name);
        }
        if let Some(r) = self
            .ai
            .as_ref()
            .and_then(|ai| ai.api_key_secret_ref.as_ref())
        {
            names.push(&r.name);
        }
        if let Some(r) = &self.auth_token_secret_ref {
            names.push(&r.name);
        }
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Every ConfigMap name the spec refers to.
    pub fn referenced_config_maps(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.workflows.iter().map(|w| w.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Cross-field rules the schema cannot express (no CEL on the API servers we support).
    /// Returns every problem, each naming the field.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let store = &self.session_store;
        if store.type_ == SessionStoreType::Redis && store.redis_url_secret_ref.is_none() {
            problems.push("spec.sessionStore.redisUrlSecretRef: required when spec.sessionStore.type is redis".into());
        }
        let persistent = store.persistence.as_ref().is_some_and(|p| p.enabled);
        if store.type_ == SessionStoreType::Redis && persistent {
            problems.push("spec.sessionStore.persistence: only the embedded store uses a volume; remove it or use type embedded".into());
        }
        if persistent && self.replicas.unwrap_or(1) > 1 {
            problems.push(format!(
                "spec.replicas: {} pods cannot share one ReadWriteOnce volume of the embedded store; use sessionStore.type redis or one replica",
                self.replicas.unwrap_or(1)
            ));
        }
        if self.service.type_ == ServiceType::ClusterIP && self.service.port.is_some_and(|p| p == 0)
        {
            problems.push("spec.service.port: must be between 1 and 65535".into());
        }
        if let Some(docker) = &self.docker
            && docker.socket_path.is_some()
            && !docker.enabled
        {
            problems.push("spec.docker.socketPath: set but spec.docker.enabled is false".into());
        }
        for (i, host) in self.config.http_allowed_hosts.iter().enumerate() {
            if let Err(e) = crate::server::workflows::EgressPolicy::parse(&[host]) {
                problems.push(format!("spec.config.httpAllowedHosts[{i}]: {e}"));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for w in &self.workflows {
            if !seen.insert(&w.name) {
                problems.push(format!(
                    "spec.workflows: ConfigMap {} is listed twice",
                    w.name
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_http_allowed_host_is_named_with_its_index() {
        let spec = McpInstanceSpec {
            config: ServerConfig {
                http_allowed_hosts: vec!["api.example.com".into(), "https://x.io/".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let problems = spec.validate().unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "spec.config.httpAllowedHosts[1]: `https://x.io/` is not a host pattern"
            ),
            "{problems:?}"
        );
    }

    #[test]
    fn redis_store_without_url_secret_is_invalid_and_names_the_field() {
        let spec = McpInstanceSpec {
            session_store: SessionStoreSpec {
                type_: SessionStoreType::Redis,
                ..Default::default()
            },
            ..Default::default()
        };
        let problems = spec.validate().unwrap_err();
        assert!(
            problems[0].starts_with("spec.sessionStore.redisUrlSecretRef"),
            "{problems:?}"
        );
    }

    #[test]
    fn persistent_embedded_store_with_many_replicas_is_invalid() {
        let spec = McpInstanceSpec {
            replicas: Some(3),
            session_store: SessionStoreSpec {
                persistence: Some(PersistenceSpec {
                    enabled: true,
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(spec.validate().unwrap_err()[0].starts_with("spec.replicas"));
    }

    #[test]
    fn default_spec_is_valid_and_references_nothing() {
        let spec = McpInstanceSpec::default();
        assert_eq!(spec.validate(), Ok(()));
        assert!(spec.referenced_secrets().is_empty());
        assert_eq!(spec.port(), 3000);
    }
}
