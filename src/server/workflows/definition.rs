//! The workflow definition format (YAML or JSON) and its parsing.
//!
//! The shape follows js-mcp: `{id, name, description, steps[], parallelGroups?}` (plus an
//! optional whole-run `timeout`) and a step
//! `{name, tool, required, condition, retryable, maxRetries, timeout, onError, params,
//! dependsOn?}`. Unknown fields are rejected so that a typo (`dependson`) is an error at load
//! time instead of a silently ignored dependency.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A workflow: a named DAG of steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowDefinition {
    /// Stable identifier used to start runs (`[A-Za-z0-9._-]`, at most 128 characters).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// What the workflow does, shown by `list_workflows`.
    #[serde(default)]
    pub description: String,
    /// The steps; order is only a tie-breaker, the DAG comes from `dependsOn`.
    pub steps: Vec<StepDefinition>,
    /// js-mcp compatibility: groups of step names declared to run concurrently. Scheduling
    /// already follows the DAG; a group is checked on load (its steps must exist and must not
    /// depend on each other), so a definition cannot claim parallelism it does not have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_groups: Option<Vec<Vec<String>>>,
    /// Time limit for the whole run (same forms as a step's `timeout`). When it passes, the
    /// steps in flight are cancelled, nothing else starts, and the run fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutSpec>,
}

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepDefinition {
    /// Unique name within the workflow (`[A-Za-z_][A-Za-z0-9_-]*`), used in references.
    pub name: String,
    /// What the step runs, e.g. `echo`, `http.request`, `docker.ps`, `ai.complete`.
    pub tool: String,
    /// Optional note for readers of the definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When false, a failure of this step never fails the run (it is handled as `continue`).
    #[serde(default = "default_true")]
    pub required: bool,
    /// Expression that must hold for the step to run, e.g. `outputs.scan.count > 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Whether a failed attempt is retried (with a short exponential backoff).
    #[serde(default)]
    pub retryable: bool,
    /// Retries after the first attempt when `retryable` (default 3, at most 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Per-attempt time limit: milliseconds as a number, or a string such as `"500ms"`, `"5s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutSpec>,
    /// What a failure does to the run.
    #[serde(default)]
    pub on_error: OnError,
    /// The tool's parameters; strings may hold `${...}` references to params, session state
    /// and earlier step outputs.
    #[serde(default = "empty_object")]
    pub params: serde_json::Value,
    /// Steps that must finish before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

fn default_true() -> bool {
    true
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// What happens when a step fails after its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop the run: no further steps start, steps in flight are cancelled, the run is `failed`.
    #[default]
    Fail,
    /// Mark the step skipped and skip everything that depends on it; the run is `partial`.
    Skip,
    /// Record the error and keep going: dependents still run; the run is `partial`.
    Continue,
}

impl fmt::Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnError::Fail => "fail",
            OnError::Skip => "skip",
            OnError::Continue => "continue",
        })
    }
}

/// A step timeout as written: milliseconds or a duration string. Checked on load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TimeoutSpec {
    /// Milliseconds.
    Millis(f64),
    /// A duration such as `"250ms"`, `"5s"`, `"1.5m"`, `"1h"`.
    Text(String),
}

impl TimeoutSpec {
    /// The duration this spec denotes, or a message saying why it is not one.
    pub fn to_duration(&self) -> Result<Duration, String> {
        match self {
            TimeoutSpec::Millis(ms) => millis_to_duration(*ms)
                .ok_or_else(|| format!("timeout {ms} is not a positive number of milliseconds")),
            TimeoutSpec::Text(text) => parse_duration(text),
        }
    }
}

fn millis_to_duration(ms: f64) -> Option<Duration> {
    if ms.is_finite() && ms > 0.0 && ms <= MAX_TIMEOUT.as_millis() as f64 {
        Some(Duration::from_micros((ms * 1000.0) as u64))
    } else {
        None
    }
}

/// The longest timeout a step may ask for; longer work belongs in several steps.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Parses `"250ms"`, `"5s"`, `"1.5m"`, `"1h"` or a bare number of milliseconds (`"500"`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration `{text}`: expected milliseconds or a number with a unit such as \"500ms\", \"5s\", \"2m\", \"1h\""
        )
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let factor_ms = match unit.trim() {
        "" | "ms" => 1.0,
        "s" | "sec" | "secs" => 1000.0,
        "m" | "min" | "mins" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(bad()),
    };
    millis_to_duration(value * factor_ms).ok_or_else(|| {
        format!(
            "invalid duration `{text}`: must be above zero and at most {}h",
            MAX_TIMEOUT.as_secs() / 3600
        )
    })
}

/// The file formats a definition can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionFormat {
    /// YAML (parsed with serde-saphyr).
    Yaml,
    /// JSON.
    Json,
}

impl WorkflowDefinition {
    /// Parses one definition from text. The error is the parser's message with its location;
    /// validation (tools, DAG, references) happens in [`super::Catalog`].
    pub fn parse(text: &str, format: DefinitionFormat) -> Result<WorkflowDefinition, String> {
        match format {
            DefinitionFormat::Yaml => {
                // YAML 1.2 booleans only: `y`, `no`, `on` in params stay strings (the
                // "Norway problem" of YAML 1.1 would turn a country code into `false`).
                let mut options = serde_saphyr::Options::default();
                options.strict_booleans = true;
                serde_saphyr::from_str_with_options(text, options)
                    .map_err(|e| format!("invalid YAML: {e}"))
            }
            DefinitionFormat::Json => {
                serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_bare_milliseconds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("40"), Ok(Duration::from_millis(40)));
        assert_eq!(
            TimeoutSpec::Millis(1500.0).to_duration(),
            Ok(Duration::from_millis(1500))
        );
    }

    #[test]
    fn durations_reject_garbage_zero_and_huge_values() {
        for bad in ["", "5 parsecs", "s", "0s", "-1s", "1.2.3s", "48h"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
        assert!(TimeoutSpec::Millis(0.0).to_duration().is_err());
        assert!(TimeoutSpec::Millis(f64::NAN).to_duration().is_err());
    }

    #[test]
    fn yaml_step_defaults_follow_js_mcp() {
        let def = WorkflowDefinition::parse(
            "id: w\nname: W\nsteps:\n  - name: a\n    tool: echo\n",
            DefinitionFormat::Yaml,
        )
        .expect("valid yaml");
        let step = &def.steps[0];
        assert!(step.required);
        assert!(!step.retryable);
        assert_eq!(step.on_error, OnError::Fail);
        assert_eq!(step.params, serde_json::json!({}));
        assert!(step.depends_on.is_empty());
    }

    #[test]
    fn yaml_1_1_boolean_spellings_stay_strings() {
        let def = WorkflowDefinition::parse(
            "id: w\nname: W\nsteps:\n  - name: a\n    tool: echo\n    params: {country: NO, answer: y, flag: true, mode: on}\n",
            DefinitionFormat::Yaml,
        )
        .expect("valid yaml");
        assert_eq!(
            def.steps[0].params,
            serde_json::json!({"country": "NO", "answer": "y", "flag": true, "mode": "on"})
        );
    }

    #[test]
    fn misspelled_field_is_rejected_with_its_name() {
        let err = WorkflowDefinition::parse(
            "id: w\nname: W\nsteps:\n  - name: a\n    tool: echo\n    dependson: [b]\n",
            DefinitionFormat::Yaml,
        )
        .expect_err("unknown field");
        assert!(err.contains("dependson"), "{err}");
    }

    #[test]
    fn json_definitions_use_camel_case() {
        let def = WorkflowDefinition::parse(
            r#"{"id":"w","name":"W","steps":[{"name":"a","tool":"echo","onError":"continue","maxRetries":2,"retryable":true,"timeout":"2s","dependsOn":[]}]}"#,
            DefinitionFormat::Json,
        )
        .expect("valid json");
        assert_eq!(def.steps[0].on_error, OnError::Continue);
        assert_eq!(def.steps[0].max_retries, Some(2));
        assert_eq!(
            def.steps[0].timeout.as_ref().map(TimeoutSpec::to_duration),
            Some(Ok(Duration::from_secs(2)))
        );
    }
}
