//! MaintenancePolicy (`mcpmp`): alert rules over live metrics and the actions they trigger.
//!
//! Durations in the spec are strings such as `30s`, `5m` or `1h30m` (see [`parse_duration`]);
//! the schema checks their shape and [`MaintenancePolicySpec::validate`] checks the rules
//! between fields that OpenAPI cannot express (no CEL on the API servers we support).

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::instance::SecretKeyRef;

/// Shape of every duration string in js-mcp resources: one or more `<number><unit>` parts,
/// unit one of `ms`, `s`, `m`, `h`, `d` (e.g. `500ms`, `30s`, `1h30m`).
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h|d))+$";

/// Default probe interval.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(30);
/// Default probe timeout.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default pause between two restarts of the same instance.
pub const DEFAULT_RESTART_COOLDOWN: Duration = Duration::from_secs(15 * 60);
/// Default cap on restarts per instance per hour.
pub const DEFAULT_MAX_RESTARTS_PER_HOUR: i32 = 3;
/// Default time given to a pod to drain its sessions before it is deleted.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time after a rollout during which an alert rolls it back.
pub const DEFAULT_ROLLBACK_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Default container restarts of a new revision that count as a crash loop.
pub const DEFAULT_CRASH_LOOP_RESTARTS: i32 = 3;
/// Default age after which Succeeded pods are pruned.
pub const DEFAULT_PRUNE_SUCCEEDED_AGE: Duration = Duration::from_secs(60 * 60);
/// Default age after which Failed pods are pruned (kept longer: people read their logs).
pub const DEFAULT_PRUNE_FAILED_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Most instance names kept in `status.matchedInstances.names`.
pub const MAX_MATCHED_NAMES: usize = 50;
/// Most entries kept in `status.activeAlerts`.
pub const MAX_ACTIVE_ALERTS: usize = 50;
/// Most entries kept in `status.recentActions` (oldest dropped first).
pub const MAX_RECENT_ACTIONS: usize = 20;

/// Desired maintenance behaviour for the McpInstances a selector matches.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "jsmcp.io",
    version = "v1alpha1",
    kind = "MaintenancePolicy",
    plural = "maintenancepolicies",
    shortname = "mcpmp",
    category = "jsmcp",
    namespaced,
    status = "MaintenancePolicyStatus",
    printcolumn = r#"{"name":"Matched","type":"integer","jsonPath":".status.matchedInstances.count"}"#,
    printcolumn = r#"{"name":"Alerts","type":"integer","jsonPath":".status.activeAlertCount"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MaintenancePolicySpec {
    /// Selects McpInstances in the policy's namespace by label; empty selects all of them.
    #[serde(default)]
    pub selector: LabelSelector,
    /// How the pods of matched instances are probed.
    #[serde(default)]
    pub probe: ProbeSpec,
    /// Alert rules. Omitted: the operations guide's defaults (see `default_rules`);
    /// an empty list: no rules at all.
    // Keyed by `name` so server-side apply (GitOps) merges and owns rules one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 64),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub rules: Option<Vec<AlertRule>>,
    /// Guards on the `restart` action.
    #[serde(default)]
    pub restart: RestartSpec,
    /// The `rollback` action and crash-loop detection.
    #[serde(default)]
    pub rollback: RollbackSpec,
    /// Deleting Succeeded and Failed pods.
    #[serde(default)]
    pub pruning: PruningSpec,
    /// When non-critical actions may run. Empty: at any time. Critical rules act at once regardless.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// Where alerts and actions are announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<NotificationSpec>,
    /// When true the policy still probes and reports alerts but takes no action.
    #[serde(default)]
    pub suspend: bool,
}

/// Probing of the matched instances' pods.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    /// Time between two probes of a pod, e.g. `30s` (default 30s, at least 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub interval: Option<String>,
    /// Time one probe may take, shorter than the interval (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub timeout: Option<String>,
    /// Where metrics come from: `direct` scrapes each pod's `/metrics` and `/health`;
    /// `prometheus` queries `prometheusUrl`.
    #[serde(default)]
    pub source: ProbeSource,
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus.monitoring:9090`
    /// (required when `source` is `prometheus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https?://[^\s]+$"))]
    pub prometheus_url: Option<String>,
}

/// Where probe metrics come from.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProbeSource {
    /// Scrape each pod's `/metrics` and `/health` directly (default).
    #[default]
    Direct,
    /// Query a Prometheus server.
    Prometheus,
}

/// One alert rule: when `metric op threshold` holds for `for`, raise an alert and take `action`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRule {
    /// Rule name, unique in the policy (a DNS label).
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// The metric the rule watches.
    pub metric: Metric,
    /// Comparison of the metric against the threshold.
    pub op: Op,
    /// The threshold, in the metric's unit (percentages are 0 to 100).
    #[schemars(range(min = 0.0))]
    pub threshold: f64,
    /// How long the condition must hold before the alert fires, e.g. `5m` (default `0s`: at once).
    #[serde(
        rename = "for",
        default = "zero_duration",
        skip_serializing_if = "is_zero_duration"
    )]
    #[schemars(length(max = 32), pattern(r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub for_: String,
    /// Critical alerts act at once; warning alerts act only inside maintenance windows.
    pub severity: Severity,
    /// What to do when the alert fires (default `none`).
    #[serde(default)]
    pub action: Action,
}

/// `"0s"`, the default of [`AlertRule::for_`].
fn zero_duration() -> String {
    "0s".to_owned()
}

/// Leaves a zero `for` out of serialized rules so defaults round-trip unchanged.
fn is_zero_duration(value: &str) -> bool {
    parse_duration(value).is_ok_and(|d| d.is_zero())
}

/// A metric an alert rule can watch, each with a fixed unit.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Metric {
    /// 99th percentile of MCP request latency, in milliseconds.
    SessionLatencyP99Ms,
    /// Resident memory as a percentage of the container's memory limit.
    MemoryPercent,
    /// Share of MCP requests that failed, in percent.
    ErrorRatePercent,
    /// Workflow steps completed per second.
    WorkflowThroughputPerSec,
    /// CPU use as a percentage of the container's CPU limit.
    CpuPercent,
    /// Use of the session store's volume, in percent.
    DiskPercent,
    /// Sessions currently alive.
    LiveSessions,
    /// Container restarts of the pod.
    RestartCount,
}

impl Metric {
    /// The name used in the spec (camelCase), for messages and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::SessionLatencyP99Ms => "sessionLatencyP99Ms",
            Metric::MemoryPercent => "memoryPercent",
            Metric::ErrorRatePercent => "errorRatePercent",
            Metric::WorkflowThroughputPerSec => "workflowThroughputPerSec",
            Metric::CpuPercent => "cpuPercent",
            Metric::DiskPercent => "diskPercent",
            Metric::LiveSessions => "liveSessions",
            Metric::RestartCount => "restartCount",
        }
    }

    /// Whether the metric is a percentage (so a threshold above 100 can never be crossed upward).
    pub fn is_percent(self) -> bool {
        matches!(
            self,
            Metric::MemoryPercent
                | Metric::ErrorRatePercent
                | Metric::CpuPercent
                | Metric::DiskPercent
        )
    }
}

/// Comparison operator of an alert rule.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
}

impl Op {
    /// Whether `value op threshold` holds. NaN never holds: a missing metric is "unknown",
    /// not a breach.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Gte => value >= threshold,
            Op::Lt => value < threshold,
            Op::Lte => value <= threshold,
        }
    }
}

/// Severity of an alert.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Acts at once, even outside maintenance windows.
    Critical,
    /// Acts only inside maintenance windows.
    Warning,
}

/// What an alert does when it fires.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Only report (status, event, notification).
    #[default]
    None,
    /// Restart the offending pod (drained first, within the restart guards).
    Restart,
    /// Roll the instance back to its last known good revision.
    Rollback,
}

/// Guards on restarts so a flapping metric cannot take a fleet down.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartSpec {
    /// Least time between two restarts of the same instance (default 15m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub cooldown: Option<String>,
    /// Most restarts of one instance in any hour (default 3; 0 forbids restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 60))]
    pub max_restarts_per_hour: Option<i32>,
    /// Restart one pod of an instance at a time, waiting for it to be ready again (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_pod_at_a_time: Option<bool>,
    /// Mark the pod draining and wait for its sessions to finish before deleting it (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_before_delete: Option<bool>,
    /// Longest wait for a drain before the pod is deleted anyway (default 60s, at most 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub drain_timeout: Option<String>,
}

/// Rollback to the last known good revision.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackSpec {
    /// Whether the policy may roll instances back at all (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How long after a rollout a `rollback` alert may still roll it back (default 15m);
    /// later, the revision is considered settled and the alert only reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub window: Option<String>,
    /// Roll back a new revision whose pods crash-loop inside the window (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_crash_loop: Option<bool>,
    /// Container restarts of a new revision's pod that count as a crash loop (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub crash_loop_restarts: Option<i32>,
}

/// Deleting finished pods.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruningSpec {
    /// Whether pruning runs (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Age after which a Succeeded pod is deleted (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub succeeded_age: Option<String>,
    /// Age after which a Failed pod is deleted (default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub failed_age: Option<String>,
    /// Pods considered, in the policy's namespace. Unset: only the pods of matched instances.
    /// Nothing outside this selector is ever touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Pods whose controlling owner has one of these kinds are left alone (e.g. `Job`,
    /// whose controller keeps its own history).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(length(min = 1, max = 63), pattern(r"^[A-Z][A-Za-z0-9]*$"))
    )]
    pub skip_owner_kinds: Vec<String>,
    /// Report what would be deleted (status, events) without deleting anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// A weekly time window during which non-critical actions may run.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Days the window opens on.
    #[schemars(length(min = 1, max = 7))]
    pub days: Vec<Weekday>,
    /// Opening time, `HH:MM` (24 h clock).
    #[schemars(pattern(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// Closing time, `HH:MM`; earlier than `start` means the window runs past midnight.
    #[schemars(pattern(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub end: String,
    /// IANA time zone of `start` and `end`, e.g. `Europe/Berlin` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 64),
        pattern(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
    )]
    pub time_zone: Option<String>,
}

impl MaintenanceWindow {
    /// Start and end as minutes after midnight, or a message naming the bad field.
    pub fn minutes(&self) -> Result<(u32, u32), String> {
        Ok((
            parse_hhmm(&self.start, "start")?,
            parse_hhmm(&self.end, "end")?,
        ))
    }
}

/// Day of the week.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// Where alerts and actions are announced.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSpec {
    /// URL that receives a JSON POST for every alert that fires or clears and every action.
    #[schemars(length(min = 1, max = 2048), pattern(r"^https?://[^\s]+$"))]
    pub webhook_url: String,
    /// Secret key holding a token sent as `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
}

/// Observed state of a MaintenancePolicy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenancePolicyStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (the policy is valid and probing) and Degraded (invalid spec, probes failing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The McpInstances the selector matches.
    #[serde(default)]
    pub matched_instances: MatchedInstances,
    /// Alerts firing now (the full count, even when the list is cut short).
    #[serde(default)]
    pub active_alert_count: i32,
    /// Alerts firing now, at most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub active_alerts: Vec<ActiveAlert>,
    /// The latest actions, oldest first, at most 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub recent_actions: Vec<ActionEntry>,
    /// Totals since the policy was created.
    #[serde(default)]
    pub counters: PolicyCounters,
    /// When the pods were last probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
}

/// The instances a policy matches.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchedInstances {
    /// How many instances match.
    #[serde(default)]
    pub count: i32,
    /// Their names, sorted, at most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub names: Vec<String>,
}

/// An alert that is firing.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveAlert {
    /// The McpInstance (or `instance/pod`) the alert is about.
    pub instance: String,
    /// The rule's name.
    pub rule: String,
    /// The rule's severity.
    pub severity: Severity,
    /// When the condition started to hold.
    pub since: Time,
    /// The last observed value of the metric.
    pub value: f64,
}

/// One action the policy took (or, in dry-run, would have taken).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionEntry {
    /// When.
    pub time: Time,
    /// The McpInstance involved (empty for pruning outside instances).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance: String,
    /// The pod involved, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// What was done.
    pub action: RecordedAction,
    /// Why, in a few words (e.g. the rule and value).
    pub reason: String,
    /// True when nothing was changed because of dry-run.
    #[serde(default)]
    pub dry_run: bool,
}

/// Kinds of action recorded in status.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordedAction {
    /// A pod was restarted.
    Restart,
    /// An instance was rolled back.
    Rollback,
    /// A finished pod was deleted.
    Prune,
}

/// Totals since the policy was created.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyCounters {
    /// Pods restarted.
    #[serde(default)]
    pub restarts: i64,
    /// Instances rolled back.
    #[serde(default)]
    pub rollbacks: i64,
    /// Finished pods deleted.
    #[serde(default)]
    pub pruned_pods: i64,
    /// Probes made.
    #[serde(default)]
    pub probes: i64,
    /// Probes that failed (timeout, refused, bad response).
    #[serde(default)]
    pub probe_failures: i64,
}

impl MaintenancePolicyStatus {
    /// Appends an action, dropping the oldest so at most [`MAX_RECENT_ACTIONS`] stay.
    pub fn push_action(&mut self, entry: ActionEntry) {
        self.recent_actions.push(entry);
        let excess = self.recent_actions.len().saturating_sub(MAX_RECENT_ACTIONS);
        self.recent_actions.drain(..excess);
    }

    /// Sets the active alerts: the count is the full number, the list keeps the first
    /// [`MAX_ACTIVE_ALERTS`] (critical ones first, so they are never the ones cut).
    pub fn set_active_alerts(&mut self, mut alerts: Vec<ActiveAlert>) {
        self.active_alert_count = i32::try_from(alerts.len()).unwrap_or(i32::MAX);
        alerts.sort_by_key(|a| a.severity != Severity::Critical);
        alerts.truncate(MAX_ACTIVE_ALERTS);
        self.active_alerts = alerts;
    }

    /// Sets the matched instances: the full count and the first [`MAX_MATCHED_NAMES`] names, sorted.
    pub fn set_matched(&mut self, mut names: Vec<String>) {
        names.sort_unstable();
        names.dedup();
        self.matched_instances.count = i32::try_from(names.len()).unwrap_or(i32::MAX);
        names.truncate(MAX_MATCHED_NAMES);
        self.matched_instances.names = names;
    }
}

/// The operations guide's alert rules, used when `spec.rules` is omitted.
pub fn default_rules() -> Vec<AlertRule> {
    let rule = |name: &str, metric, op, threshold, for_: &str, severity, action| AlertRule {
        name: name.to_owned(),
        metric,
        op,
        threshold,
        for_: for_.to_owned(),
        severity,
        action,
    };
    use Action::{None as Report, Restart, Rollback};
    use Severity::{Critical, Warning};
    vec![
        rule(
            "session-latency-high",
            Metric::SessionLatencyP99Ms,
            Op::Gt,
            100.0,
            "5m",
            Critical,
            Restart,
        ),
        rule(
            "memory-high",
            Metric::MemoryPercent,
            Op::Gt,
            80.0,
            "10m",
            Critical,
            Restart,
        ),
        rule(
            "error-rate-high",
            Metric::ErrorRatePercent,
            Op::Gt,
            5.0,
            "5m",
            Critical,
            Rollback,
        ),
        rule(
            "workflow-throughput-low",
            Metric::WorkflowThroughputPerSec,
            Op::Lt,
            200.0,
            "15m",
            Warning,
            Report,
        ),
        rule(
            "cpu-high",
            Metric::CpuPercent,
            Op::Gt,
            70.0,
            "15m",
            Warning,
            Report,
        ),
        rule(
            "disk-high",
            Metric::DiskPercent,
            Op::Gt,
            80.0,
            "30m",
            Warning,
            Report,
        ),
    ]
}

impl AlertRule {
    /// How long the condition must hold, parsed.
    pub fn for_duration(&self) -> Result<Duration, String> {
        parse_duration(&self.for_).map_err(|e| format!("for: {e}"))
    }
}

/// Parses an optional duration field, naming the field in the error.
fn duration_or(value: &Option<String>, default: Duration, field: &str) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(text) => parse_duration(text).map_err(|e| format!("{field}: {e}")),
    }
}

impl MaintenancePolicySpec {
    /// The rules in force: `spec.rules` if given (even empty), else [`default_rules`].
    pub fn effective_rules(&self) -> Vec<AlertRule> {
        self.rules.clone().unwrap_or_else(default_rules)
    }

    /// Probe interval, defaulted.
    pub fn probe_interval(&self) -> Result<Duration, String> {
        duration_or(
            &self.probe.interval,
            DEFAULT_PROBE_INTERVAL,
            "spec.probe.interval",
        )
    }

    /// Probe timeout, defaulted.
    pub fn probe_timeout(&self) -> Result<Duration, String> {
        duration_or(
            &self.probe.timeout,
            DEFAULT_PROBE_TIMEOUT,
            "spec.probe.timeout",
        )
    }

    /// Restart cooldown, defaulted.
    pub fn restart_cooldown(&self) -> Result<Duration, String> {
        duration_or(
            &self.restart.cooldown,
            DEFAULT_RESTART_COOLDOWN,
            "spec.restart.cooldown",
        )
    }

    /// Restarts allowed per instance per hour, defaulted.
    pub fn max_restarts_per_hour(&self) -> i32 {
        self.restart
            .max_restarts_per_hour
            .unwrap_or(DEFAULT_MAX_RESTARTS_PER_HOUR)
    }

    /// Whether restarts go one pod at a time (default true).
    pub fn one_pod_at_a_time(&self) -> bool {
        self.restart.one_pod_at_a_time.unwrap_or(true)
    }

    /// Whether a pod is drained before it is deleted (default true).
    pub fn drain_before_delete(&self) -> bool {
        self.restart.drain_before_delete.unwrap_or(true)
    }

    /// Drain timeout, defaulted.
    pub fn drain_timeout(&self) -> Result<Duration, String> {
        duration_or(
            &self.restart.drain_timeout,
            DEFAULT_DRAIN_TIMEOUT,
            "spec.restart.drainTimeout",
        )
    }

    /// Whether rollback is allowed (default true).
    pub fn rollback_enabled(&self) -> bool {
        self.rollback.enabled.unwrap_or(true)
    }

    /// Rollback window after a rollout, defaulted.
    pub fn rollback_window(&self) -> Result<Duration, String> {
        duration_or(
            &self.rollback.window,
            DEFAULT_ROLLBACK_WINDOW,
            "spec.rollback.window",
        )
    }

    /// Whether a crash-looping new revision is rolled back (default true, and only when
    /// rollback is enabled).
    pub fn rollback_on_crash_loop(&self) -> bool {
        self.rollback_enabled() && self.rollback.on_crash_loop.unwrap_or(true)
    }

    /// Restarts that count as a crash loop, defaulted.
    pub fn crash_loop_restarts(&self) -> i32 {
        self.rollback
            .crash_loop_restarts
            .unwrap_or(DEFAULT_CRASH_LOOP_RESTARTS)
    }

    /// Age after which Succeeded pods are pruned, defaulted.
    pub fn prune_succeeded_age(&self) -> Result<Duration, String> {
        duration_or(
            &self.pruning.succeeded_age,
            DEFAULT_PRUNE_SUCCEEDED_AGE,
            "spec.pruning.succeededAge",
        )
    }

    /// Age after which Failed pods are pruned, defaulted.
    pub fn prune_failed_age(&self) -> Result<Duration, String> {
        duration_or(
            &self.pruning.failed_age,
            DEFAULT_PRUNE_FAILED_AGE,
            "spec.pruning.failedAge",
        )
    }

    /// Cross-field rules the schema cannot express (no CEL on the API servers we support).
    /// Returns every problem, each starting with the field path.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();

        // Probing.
        let interval = self.probe_interval().map_err(|e| problems.push(e)).ok();
        let timeout = self.probe_timeout().map_err(|e| problems.push(e)).ok();
        if let Some(i) = interval
            && i < Duration::from_secs(1)
        {
            problems.push("spec.probe.interval: must be at least 1s".into());
        }
        if let Some(t) = timeout
            && t.is_zero()
        {
            problems.push("spec.probe.timeout: must be more than 0".into());
        }
        if let (Some(i), Some(t)) = (interval, timeout)
            && t >= i
        {
            problems.push(format!(
                "spec.probe.timeout: {} must be shorter than spec.probe.interval ({})",
                format_duration(t),
                format_duration(i)
            ));
        }
        match (self.probe.source, &self.probe.prometheus_url) {
            (ProbeSource::Prometheus, None) => problems
                .push("spec.probe.prometheusUrl: required when spec.probe.source is prometheus".into()),
            (ProbeSource::Direct, Some(_)) => problems.push(
                "spec.probe.prometheusUrl: set but spec.probe.source is direct; set source to prometheus or remove it".into(),
            ),
            _ => {}
        }

        // Rules.
        let rules = self.effective_rules();
        let mut names = BTreeSet::new();
        for (i, rule) in rules.iter().enumerate() {
            let path = format!("spec.rules[{i}]");
            if !names.insert(rule.name.as_str()) {
                problems.push(format!("{path}.name: rule {} is defined twice", rule.name));
            }
            if let Err(e) = rule.for_duration() {
                problems.push(format!("{path}.{e}"));
            }
            if !rule.threshold.is_finite() || rule.threshold < 0.0 {
                problems.push(format!(
                    "{path}.threshold: must be a finite number of at least 0"
                ));
            }
            if rule.metric.is_percent() && rule.threshold > 100.0 {
                problems.push(format!(
                    "{path}.threshold: {} is a percentage and must be at most 100",
                    rule.metric.as_str()
                ));
            }
            if rule.action == Action::Restart && self.max_restarts_per_hour() == 0 {
                problems.push(format!(
                    "{path}.action: restart, but spec.restart.maxRestartsPerHour is 0 so it could never act"
                ));
            }
            if rule.action == Action::Rollback && !self.rollback_enabled() {
                problems.push(format!(
                    "{path}.action: rollback, but spec.rollback.enabled is false"
                ));
            }
        }

        // Restart guards.
        let cooldown = self.restart_cooldown().map_err(|e| problems.push(e)).ok();
        if let Some(c) = cooldown
            && c > Duration::from_secs(24 * 3600)
        {
            problems.push("spec.restart.cooldown: must be at most 24h".into());
        }
        if let (Some(c), Some(i)) = (cooldown, interval)
            && c < i
        {
            problems.push(format!(
                "spec.restart.cooldown: {} is shorter than spec.probe.interval ({}); a restart could not be seen before the next one",
                format_duration(c),
                format_duration(i)
            ));
        }
        match self.drain_timeout() {
            Err(e) => problems.push(e),
            Ok(d) if d.is_zero() || d > Duration::from_secs(3600) => problems
                .push("spec.restart.drainTimeout: must be more than 0 and at most 1h".into()),
            Ok(_) => {}
        }
        if self.restart.drain_timeout.is_some() && !self.drain_before_delete() {
            problems.push(
                "spec.restart.drainTimeout: set but spec.restart.drainBeforeDelete is false".into(),
            );
        }

        // Rollback.
        match self.rollback_window() {
            Err(e) => problems.push(e),
            Ok(w) if w.is_zero() => {
                problems.push("spec.rollback.window: must be more than 0".into())
            }
            Ok(_) => {}
        }
        if !self.rollback_enabled() && self.rollback.on_crash_loop == Some(true) {
            problems
                .push("spec.rollback.onCrashLoop: true but spec.rollback.enabled is false".into());
        }

        // Pruning.
        for (age, field) in [
            (self.prune_succeeded_age(), "spec.pruning.succeededAge"),
            (self.prune_failed_age(), "spec.pruning.failedAge"),
        ] {
            match age {
                Err(e) => problems.push(e),
                Ok(a) if a < Duration::from_secs(60) => {
                    problems.push(format!("{field}: must be at least 1m"))
                }
                Ok(_) => {}
            }
        }
        let mut kinds = BTreeSet::new();
        for kind in &self.pruning.skip_owner_kinds {
            if !kinds.insert(kind) {
                problems.push(format!(
                    "spec.pruning.skipOwnerKinds: {kind} is listed twice"
                ));
            }
        }

        // Maintenance windows.
        for (i, window) in self.maintenance_windows.iter().enumerate() {
            let path = format!("spec.maintenanceWindows[{i}]");
            match window.minutes() {
                Err(e) => problems.push(format!("{path}.{e}")),
                Ok((start, end)) if start == end => problems.push(format!(
                    "{path}.end: equals start ({}); the window would be empty",
                    window.start
                )),
                Ok(_) => {}
            }
            let mut days = BTreeSet::new();
            for day in &window.days {
                if !days.insert(day) {
                    problems.push(format!("{path}.days: {day:?} is listed twice"));
                }
            }
            if window.days.is_empty() {
                problems.push(format!("{path}.days: at least one day is required"));
            }
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Parses `HH:MM` into minutes after midnight; the error starts with `field`.
fn parse_hhmm(text: &str, field: &str) -> Result<u32, String> {
    let bad = || format!("{field}: {text:?} is not a time of day HH:MM");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Parses a duration such as `500ms`, `30s`, `5m`, `1h30m` or `2d`: one or more
/// `<digits><unit>` parts, unit one of `ms`, `s`, `m`, `h`, `d`. The message says what is wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("empty duration; use e.g. 30s, 5m or 1h30m".into());
    }
    let bytes = text.as_bytes();
    let mut total = Duration::ZERO;
    let mut pos = 0;
    while pos < bytes.len() {
        let digits_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == digits_start {
            return Err(format!(
                "{text:?} is not a duration: expected a number at position {pos}; use e.g. 30s, 5m or 1h30m"
            ));
        }
        let number: u64 = text[digits_start..pos]
            .parse()
            .map_err(|_| format!("{text:?} is not a duration: number too large"))?;
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit_ms: u64 = match &text[unit_start..pos] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "{text:?} is not a duration: a unit (ms, s, m, h, d) must follow {number}"
                ));
            }
            other => {
                return Err(format!(
                    "{text:?} is not a duration: unknown unit {other:?} (use ms, s, m, h or d)"
                ));
            }
        };
        let part = number
            .checked_mul(unit_ms)
            .ok_or_else(|| format!("{text:?} is not a duration: too long"))?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or_else(|| format!("{text:?} is not a duration: too long"))?;
    }
    Ok(total)
}

/// Formats a duration in the same notation [`parse_duration`] reads, largest units first
/// (`90s` → `1m30s`, zero → `0s`).
pub fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(spec: &MaintenancePolicySpec) -> Vec<String> {
        spec.validate().err().unwrap_or_default()
    }

    #[test]
    fn parses_single_and_compound_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_durations_with_a_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("30", "unit"),
            ("5 m", "must follow 5"),
            ("m5", "expected a number"),
            ("1w", "unknown unit"),
            ("1.5h", "must follow 1"),
            ("-5m", "expected a number"),
            ("99999999999999999999s", "too large"),
            ("18446744073709551615d", "too long"),
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn formatting_a_duration_parses_back_to_the_same_value() {
        for d in [0, 1, 999, 1_000, 90_000, 5_400_000, 86_400_000 + 61_001] {
            let d = Duration::from_millis(d);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn omitted_rules_mean_the_operations_guide_defaults_and_empty_means_none() {
        let spec = MaintenancePolicySpec::default();
        let rules = spec.effective_rules();
        assert_eq!(rules.len(), 6);
        let latency = &rules[0];
        assert_eq!(latency.metric, Metric::SessionLatencyP99Ms);
        assert_eq!(latency.op, Op::Gt);
        assert_eq!(latency.threshold, 100.0);
        assert_eq!(latency.for_duration(), Ok(Duration::from_secs(300)));
        assert_eq!(latency.severity, Severity::Critical);
        assert_eq!(latency.action, Action::Restart);
        let error_rate = rules
            .iter()
            .find(|r| r.metric == Metric::ErrorRatePercent)
            .map(|r| (r.action, r.threshold));
        assert_eq!(error_rate, Some((Action::Rollback, 5.0)));
        assert!(
            rules
                .iter()
                .filter(|r| r.severity == Severity::Warning)
                .all(|r| r.action == Action::None)
        );
        let disk = rules.iter().find(|r| r.metric == Metric::DiskPercent);
        assert_eq!(
            disk.map(|r| r.for_duration()),
            Some(Ok(Duration::from_secs(1800)))
        );

        let none = MaintenancePolicySpec {
            rules: Some(vec![]),
            ..Default::default()
        };
        assert!(none.effective_rules().is_empty());
    }

    #[test]
    fn default_spec_is_valid_with_documented_defaults() {
        let spec = MaintenancePolicySpec::default();
        assert_eq!(spec.validate(), Ok(()));
        assert_eq!(spec.probe_interval(), Ok(DEFAULT_PROBE_INTERVAL));
        assert_eq!(spec.restart_cooldown(), Ok(DEFAULT_RESTART_COOLDOWN));
        assert_eq!(spec.max_restarts_per_hour(), 3);
        assert!(spec.one_pod_at_a_time() && spec.drain_before_delete());
        assert!(spec.rollback_enabled() && spec.rollback_on_crash_loop());
        assert_eq!(spec.prune_failed_age(), Ok(DEFAULT_PRUNE_FAILED_AGE));
        assert!(!spec.pruning.enabled && !spec.suspend);
    }

    #[test]
    fn prometheus_source_without_url_is_invalid_and_names_the_field() {
        let spec = MaintenancePolicySpec {
            probe: ProbeSpec {
                source: ProbeSource::Prometheus,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            problems(&spec),
            ["spec.probe.prometheusUrl: required when spec.probe.source is prometheus"]
        );
    }

    #[test]
    fn probe_timeout_not_shorter_than_interval_is_invalid() {
        let spec = MaintenancePolicySpec {
            probe: ProbeSpec {
                interval: Some("10s".into()),
                timeout: Some("10s".into()),
                ..Default::default()
            },
            restart: RestartSpec {
                cooldown: Some("1m".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let p = problems(&spec);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("spec.probe.timeout: 10s must be shorter"));
    }

    #[test]
    fn restart_cooldown_shorter_than_probe_interval_is_invalid() {
        let spec = MaintenancePolicySpec {
            probe: ProbeSpec {
                interval: Some("2m".into()),
                ..Default::default()
            },
            restart: RestartSpec {
                cooldown: Some("1m".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let p = problems(&spec);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("spec.restart.cooldown: 1m is shorter"));
    }

    #[test]
    fn restart_rules_conflict_with_a_zero_restart_cap_and_rollback_rules_with_disabled_rollback() {
        let spec = MaintenancePolicySpec {
            restart: RestartSpec {
                max_restarts_per_hour: Some(0),
                ..Default::default()
            },
            rollback: RollbackSpec {
                enabled: Some(false),
                ..Default::default()
            },
            ..Default::default()
        };
        let p = problems(&spec);
        // Two default critical rules restart, one rolls back.
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("spec.rules[0].action: restart"));
        assert!(p[1].starts_with("spec.rules[1].action: restart"));
        assert!(p[2].starts_with("spec.rules[2].action: rollback"));
        assert!(!spec.rollback_on_crash_loop());
    }

    #[test]
    fn duplicate_rule_names_and_impossible_percent_thresholds_are_invalid() {
        let mut rules = default_rules();
        rules[1].name = rules[0].name.clone();
        rules[4].threshold = 170.0;
        let spec = MaintenancePolicySpec {
            rules: Some(rules),
            ..Default::default()
        };
        let p = problems(&spec);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("spec.rules[1].name: rule session-latency-high is defined twice"));
        assert!(p[1].starts_with("spec.rules[4].threshold: cpuPercent is a percentage"));
    }

    #[test]
    fn malformed_rule_duration_names_the_rule_and_field() {
        let mut rules = default_rules();
        rules[2].for_ = "5 minutes".into();
        let spec = MaintenancePolicySpec {
            rules: Some(rules),
            ..Default::default()
        };
        let p = problems(&spec);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("spec.rules[2].for: \"5 minutes\" is not a duration"));
    }

    #[test]
    fn drain_timeout_without_drain_and_crash_loop_without_rollback_are_invalid() {
        let spec = MaintenancePolicySpec {
            rules: Some(vec![]),
            restart: RestartSpec {
                drain_before_delete: Some(false),
                drain_timeout: Some("2h".into()),
                ..Default::default()
            },
            rollback: RollbackSpec {
                enabled: Some(false),
                on_crash_loop: Some(true),
                ..Default::default()
            },
            ..Default::default()
        };
        let p = problems(&spec);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("spec.restart.drainTimeout: must be more than 0 and at most 1h"));
        assert!(p[1].starts_with("spec.restart.drainTimeout: set but"));
        assert!(p[2].starts_with("spec.rollback.onCrashLoop:"));
    }

    #[test]
    fn prune_ages_below_a_minute_and_duplicate_owner_kinds_are_invalid() {
        let spec = MaintenancePolicySpec {
            pruning: PruningSpec {
                enabled: true,
                succeeded_age: Some("30s".into()),
                skip_owner_kinds: vec!["Job".into(), "Job".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let p = problems(&spec);
        assert_eq!(
            p,
            [
                "spec.pruning.succeededAge: must be at least 1m",
                "spec.pruning.skipOwnerKinds: Job is listed twice"
            ]
        );
    }

    #[test]
    fn maintenance_windows_need_distinct_days_and_a_non_empty_span() {
        let spec = MaintenancePolicySpec {
            maintenance_windows: vec![
                MaintenanceWindow {
                    days: vec![Weekday::Sat, Weekday::Sun],
                    start: "22:00".into(),
                    end: "04:00".into(),
                    time_zone: Some("Europe/Berlin".into()),
                },
                MaintenanceWindow {
                    days: vec![Weekday::Mon, Weekday::Mon],
                    start: "01:00".into(),
                    end: "01:00".into(),
                    time_zone: None,
                },
                MaintenanceWindow {
                    days: vec![],
                    start: "25:00".into(),
                    end: "02:00".into(),
                    time_zone: None,
                },
            ],
            ..Default::default()
        };
        assert_eq!(spec.maintenance_windows[0].minutes(), Ok((1320, 240)));
        let p = problems(&spec);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].starts_with("spec.maintenanceWindows[1].end: equals start"));
        assert!(p[1].starts_with("spec.maintenanceWindows[1].days: Mon is listed twice"));
        assert!(
            p[2].starts_with("spec.maintenanceWindows[2].start: \"25:00\" is not a time of day")
        );
        assert!(p[3].starts_with("spec.maintenanceWindows[2].days: at least one day"));
    }

    #[test]
    fn comparison_never_holds_for_a_missing_metric() {
        assert!(Op::Gt.holds(101.0, 100.0));
        assert!(!Op::Gt.holds(100.0, 100.0));
        assert!(Op::Gte.holds(100.0, 100.0));
        assert!(Op::Lt.holds(199.0, 200.0));
        assert!(Op::Lte.holds(200.0, 200.0));
        for op in [Op::Gt, Op::Gte, Op::Lt, Op::Lte] {
            assert!(!op.holds(f64::NAN, 1.0));
        }
    }

    #[test]
    fn status_lists_stay_bounded_and_keep_the_newest_actions_and_critical_alerts() {
        let t = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let mut status = MaintenancePolicyStatus::default();
        for i in 0..(MAX_RECENT_ACTIONS + 5) {
            status.push_action(ActionEntry {
                time: t.clone(),
                instance: "a".into(),
                pod: Some(format!("pod-{i}")),
                action: RecordedAction::Restart,
                reason: "test".into(),
                dry_run: false,
            });
        }
        assert_eq!(status.recent_actions.len(), MAX_RECENT_ACTIONS);
        assert_eq!(status.recent_actions[0].pod.as_deref(), Some("pod-5"));

        let alert = |severity| ActiveAlert {
            instance: "a".into(),
            rule: "r".into(),
            severity,
            since: t.clone(),
            value: 1.0,
        };
        let mut alerts: Vec<_> = (0..MAX_ACTIVE_ALERTS)
            .map(|_| alert(Severity::Warning))
            .collect();
        alerts.push(alert(Severity::Critical));
        status.set_active_alerts(alerts);
        assert_eq!(status.active_alert_count, 51);
        assert_eq!(status.active_alerts.len(), MAX_ACTIVE_ALERTS);
        assert_eq!(status.active_alerts[0].severity, Severity::Critical);

        status.set_matched((0..60).rev().map(|i| format!("inst-{i:02}")).collect());
        assert_eq!(status.matched_instances.count, 60);
        assert_eq!(status.matched_instances.names.len(), MAX_MATCHED_NAMES);
        assert_eq!(status.matched_instances.names[0], "inst-00");
    }
}
