//! The step tools (the `tool` field): builtins, `http.request`, `docker.*` and `ai.complete`.
//!
//! Each tool declares its parameters so that a definition naming an unknown tool, leaving out
//! a required parameter or misspelling one is refused on load, not at 3 a.m. when the step
//! finally runs. Parameters given as literals are also type-checked on load.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::engine::StepDeps;
use crate::server::ai::CompletionRequest;
use crate::server::docker::PruneRequest;

/// A step tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// Returns its parameters.
    Echo,
    /// Returns its parameters (names intent: values for later steps).
    Set,
    /// Reshapes data: `pick`, `merge`, `template`, `lookup`, `count`.
    Transform,
    /// Waits (bounded); useful to pace steps and in tests.
    Sleep,
    /// Fails (optionally until a given attempt); for tests and guard steps.
    Fail,
    /// Writes a log line.
    Log,
    /// One HTTP request.
    HttpRequest,
    /// Docker Engine info.
    DockerInfo,
    /// Docker containers.
    DockerPs,
    /// Docker disk usage.
    DockerDf,
    /// Docker prune.
    DockerPrune,
    /// One chat completion.
    AiComplete,
}

/// Every tool, in the order `list_tools` shows them.
pub const ALL_TOOLS: [Tool; 12] = [
    Tool::Echo,
    Tool::Set,
    Tool::Transform,
    Tool::Sleep,
    Tool::Fail,
    Tool::Log,
    Tool::HttpRequest,
    Tool::DockerInfo,
    Tool::DockerPs,
    Tool::DockerDf,
    Tool::DockerPrune,
    Tool::AiComplete,
];

/// The longest a `sleep` step may wait.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Largest HTTP response body a step keeps; bigger bodies fail the step rather than
/// filling memory.
pub const MAX_HTTP_BODY: usize = 4 * 1024 * 1024;

/// The transform operations.
const TRANSFORM_OPS: [(&str, &[&str]); 5] = [
    ("pick", &["from", "keys"]),
    ("merge", &["values"]),
    ("template", &["template"]),
    ("lookup", &["key", "table"]),
    ("count", &["from"]),
];

/// Which parameters a tool takes.
struct ParamSpec {
    required: &'static [&'static str],
    optional: &'static [&'static str],
    /// Any keys accepted (echo/set).
    open: bool,
}

impl Tool {
    /// Looks a tool up by the name used in definitions.
    pub fn from_name(name: &str) -> Option<Tool> {
        ALL_TOOLS.into_iter().find(|t| t.name() == name)
    }

    /// The name used in definitions.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Echo => "echo",
            Tool::Set => "set",
            Tool::Transform => "transform",
            Tool::Sleep => "sleep",
            Tool::Fail => "fail",
            Tool::Log => "log",
            Tool::HttpRequest => "http.request",
            Tool::DockerInfo => "docker.info",
            Tool::DockerPs => "docker.ps",
            Tool::DockerDf => "docker.df",
            Tool::DockerPrune => "docker.prune",
            Tool::AiComplete => "ai.complete",
        }
    }

    /// One line on what the tool does and takes.
    pub fn summary(self) -> &'static str {
        match self {
            Tool::Echo => "returns its params",
            Tool::Set => "returns its params, to name values for later steps",
            Tool::Transform => {
                "op: pick {from, keys} | merge {values} | template {template} | lookup {key, table, default?} | count {from}"
            }
            Tool::Sleep => "waits {ms} or {duration: \"2s\"}, at most 60s",
            Tool::Fail => {
                "fails with {message}; with {succeedOnAttempt: n} it succeeds from attempt n"
            }
            Tool::Log => "logs {message, level?: debug|info|warn|error}",
            Tool::HttpRequest => {
                "{method?, url, headers?, query?, body?}; returns {status, headers, body}; non-2xx fails"
            }
            Tool::DockerInfo => "Docker Engine identity, versions and counts",
            Tool::DockerPs => "containers {all?}: [{id, names, image, state, status}]",
            Tool::DockerDf => "disk usage of images, containers, volumes, build cache",
            Tool::DockerPrune => "removes {containers?, images?, volumes?, networks?}",
            Tool::AiComplete => "chat completion {prompt, system?, maxTokens?, temperature?}",
        }
    }

    fn spec(self) -> ParamSpec {
        let spec = |required, optional| ParamSpec {
            required,
            optional,
            open: false,
        };
        match self {
            Tool::Echo | Tool::Set => ParamSpec {
                required: &[],
                optional: &[],
                open: true,
            },
            Tool::Transform => spec(
                &["op"],
                &[
                    "from", "keys", "values", "template", "key", "table", "default",
                ],
            ),
            Tool::Sleep => spec(&[], &["ms", "duration"]),
            Tool::Fail => spec(&[], &["message", "succeedOnAttempt", "retryable"]),
            Tool::Log => spec(&["message"], &["level"]),
            Tool::HttpRequest => spec(&["url"], &["method", "headers", "query", "body"]),
            Tool::DockerInfo | Tool::DockerDf => spec(&[], &[]),
            Tool::DockerPs => spec(&[], &["all"]),
            Tool::DockerPrune => spec(&[], &["containers", "images", "volumes", "networks"]),
            Tool::AiComplete => spec(&["prompt"], &["system", "maxTokens", "temperature"]),
        }
    }

    /// Load-time check of a step's params: an object, required keys present, no unknown
    /// keys, and — where the params hold no references — the same checks the tool makes
    /// when it runs.
    pub(crate) fn check_params(self, params: &Value, all_literal: bool) -> Result<(), String> {
        let Value::Object(map) = params else {
            return Err(format!(
                "params must be a mapping of names to values, found {}",
                type_name(params)
            ));
        };
        let spec = self.spec();
        if !spec.open {
            for key in map.keys() {
                if !spec.required.contains(&key.as_str()) && !spec.optional.contains(&key.as_str())
                {
                    let mut expected: Vec<&str> = spec.required.to_vec();
                    expected.extend(spec.optional);
                    return Err(format!(
                        "unknown parameter `{key}` for tool `{}` (expected: {})",
                        self.name(),
                        if expected.is_empty() {
                            "none".to_owned()
                        } else {
                            expected.join(", ")
                        }
                    ));
                }
            }
        }
        for key in spec.required {
            if !map.contains_key(*key) {
                return Err(format!("tool `{}` needs parameter `{key}`", self.name()));
            }
        }
        match self {
            Tool::Sleep if map.contains_key("ms") == map.contains_key("duration") => {
                return Err("tool `sleep` needs exactly one of `ms` or `duration`".into());
            }
            Tool::Transform => {
                if let Some(Value::String(op)) = map.get("op")
                    && !op.contains("${")
                {
                    let Some((_, needs)) = TRANSFORM_OPS.iter().find(|(name, _)| name == op) else {
                        return Err(format!(
                            "unknown transform op `{op}` (expected: {})",
                            TRANSFORM_OPS.map(|(n, _)| n).join(", ")
                        ));
                    };
                    if let Some(missing) = needs.iter().find(|k| !map.contains_key(**k)) {
                        return Err(format!("transform op `{op}` needs parameter `{missing}`"));
                    }
                }
            }
            _ => {}
        }
        if all_literal {
            self.validate_runtime(map)?;
        }
        Ok(())
    }

    /// Parameter checks that need concrete values; shared by load time and run time.
    fn validate_runtime(self, map: &Map<String, Value>) -> Result<(), String> {
        match self {
            Tool::Sleep => sleep_duration(map).map(|_| ()),
            Tool::Log => log_level(map).map(|_| ()),
            Tool::Fail => fail_params(map).map(|_| ()),
            Tool::HttpRequest => HttpParams::parse(map).map(|_| ()),
            Tool::DockerPs => opt_bool(map, "all").map(|_| ()),
            Tool::DockerPrune => prune_request(map).map(|_| ()),
            Tool::AiComplete => completion_request(map).map(|_| ()),
            Tool::Transform => match map.get("op") {
                Some(Value::String(op)) if TRANSFORM_OPS.iter().any(|(n, _)| n == op) => Ok(()),
                Some(other) => Err(format!(
                    "transform op must be one of {}, found {other}",
                    TRANSFORM_OPS.map(|(n, _)| n).join(", ")
                )),
                None => Err("transform needs `op`".into()),
            },
            Tool::Echo | Tool::Set | Tool::DockerInfo | Tool::DockerDf => Ok(()),
        }
    }
}

/// A step failure and whether another attempt could succeed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepError {
    pub message: String,
    pub retryable: bool,
}

impl StepError {
    fn permanent(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: false,
        }
    }

    fn transient(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: true,
        }
    }
}

/// What a running tool may use besides its params.
pub(crate) struct ToolContext<'a> {
    pub deps: &'a StepDeps,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub run_id: &'a str,
    pub step: &'a str,
}

/// Runs `tool` once with resolved `params`. Timeouts and cancellation are applied by the
/// engine around this future.
pub(crate) async fn execute(
    tool: Tool,
    params: Value,
    ctx: &ToolContext<'_>,
) -> Result<Value, StepError> {
    let Value::Object(map) = params else {
        return Err(StepError::permanent(format!(
            "params must resolve to a mapping, found {}",
            type_name(&params)
        )));
    };
    tool.validate_runtime(&map).map_err(StepError::permanent)?;
    match tool {
        Tool::Echo | Tool::Set => Ok(Value::Object(map)),
        Tool::Log => {
            let level = log_level(&map).map_err(StepError::permanent)?;
            let message = match map.get("message") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            let (run_id, step) = (ctx.run_id, ctx.step);
            match level {
                tracing::Level::ERROR => tracing::error!(run_id, step, "{message}"),
                tracing::Level::WARN => tracing::warn!(run_id, step, "{message}"),
                tracing::Level::DEBUG => tracing::debug!(run_id, step, "{message}"),
                _ => tracing::info!(run_id, step, "{message}"),
            }
            Ok(json!({"logged": message}))
        }
        Tool::Sleep => {
            let d = sleep_duration(&map).map_err(StepError::permanent)?;
            tokio::time::sleep(d).await;
            Ok(json!({"sleptMs": d.as_millis() as u64}))
        }
        Tool::Fail => {
            let (message, succeed_on, retryable) =
                fail_params(&map).map_err(StepError::permanent)?;
            match succeed_on {
                Some(n) if ctx.attempt >= n => Ok(json!({"attempt": ctx.attempt})),
                _ => Err(StepError {
                    message: format!("{message} (attempt {})", ctx.attempt),
                    retryable,
                }),
            }
        }
        Tool::Transform => transform(&map).map_err(StepError::permanent),
        Tool::HttpRequest => {
            let p = HttpParams::parse(&map).map_err(StepError::permanent)?;
            let http = &ctx.deps.http;
            http.egress().check(&p.url).map_err(StepError::permanent)?;
            http_request(http.get().map_err(StepError::permanent)?, p).await
        }
        Tool::DockerInfo | Tool::DockerPs | Tool::DockerDf | Tool::DockerPrune => {
            let docker = ctx.deps.docker.as_ref().ok_or_else(|| {
                StepError::permanent(format!(
                    "{} needs a Docker Engine, and none is configured on this server",
                    tool.name()
                ))
            })?;
            let result = match tool {
                Tool::DockerInfo => docker.info().await,
                Tool::DockerPs => {
                    let all = opt_bool(&map, "all").map_err(StepError::permanent)?;
                    docker.ps(all.unwrap_or(false)).await
                }
                Tool::DockerDf => docker.df().await,
                _ => {
                    let req = prune_request(&map).map_err(StepError::permanent)?;
                    docker.prune(req).await
                }
            };
            result.map_err(|e| StepError {
                retryable: e.is_transient(),
                message: e.to_string(),
            })
        }
        Tool::AiComplete => {
            let ai = ctx.deps.ai.as_ref().ok_or_else(|| {
                StepError::permanent(
                    "ai.complete needs an AI endpoint, and none is configured on this server",
                )
            })?;
            let req = completion_request(&map).map_err(StepError::permanent)?;
            let r = ai.complete(req).await.map_err(|e| StepError {
                retryable: e.is_transient(),
                message: e.to_string(),
            })?;
            serde_json::to_value(r).map_err(|e| StepError::permanent(e.to_string()))
        }
    }
}

/// How a value's type is named in error messages.
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn opt_bool(map: &Map<String, Value>, key: &str) -> Result<Option<bool>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(format!(
            "parameter `{key}` must be true or false, found {}",
            type_name(other)
        )),
    }
}

fn opt_str<'a>(map: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "parameter `{key}` must be a string, found {}",
            type_name(other)
        )),
    }
}

fn sleep_duration(map: &Map<String, Value>) -> Result<Duration, String> {
    let d = match (map.get("ms"), map.get("duration")) {
        (Some(Value::Number(n)), None) => {
            let ms = n.as_f64().unwrap_or(-1.0);
            if !(0.0..=MAX_SLEEP.as_millis() as f64).contains(&ms) {
                return Err(format!(
                    "sleep `ms` must be between 0 and {}, found {n}",
                    MAX_SLEEP.as_millis()
                ));
            }
            Duration::from_micros((ms * 1000.0) as u64)
        }
        (None, Some(Value::String(s))) => super::definition::parse_duration(s)?,
        (Some(other), None) => {
            return Err(format!(
                "sleep `ms` must be a number, found {}",
                type_name(other)
            ));
        }
        (None, Some(other)) => {
            return Err(format!(
                "sleep `duration` must be a string such as \"2s\", found {}",
                type_name(other)
            ));
        }
        _ => return Err("sleep needs exactly one of `ms` or `duration`".into()),
    };
    if d > MAX_SLEEP {
        return Err(format!(
            "sleep is bounded to {}s, asked for {}ms",
            MAX_SLEEP.as_secs(),
            d.as_millis()
        ));
    }
    Ok(d)
}

fn log_level(map: &Map<String, Value>) -> Result<tracing::Level, String> {
    match opt_str(map, "level")? {
        None | Some("info") => Ok(tracing::Level::INFO),
        Some("debug") => Ok(tracing::Level::DEBUG),
        Some("warn") => Ok(tracing::Level::WARN),
        Some("error") => Ok(tracing::Level::ERROR),
        Some(other) => Err(format!(
            "log `level` must be debug, info, warn or error, found `{other}`"
        )),
    }
}

fn fail_params(map: &Map<String, Value>) -> Result<(String, Option<u32>, bool), String> {
    let message = opt_str(map, "message")?
        .unwrap_or("step failed on purpose")
        .to_owned();
    let succeed_on = match map.get("succeedOnAttempt") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    format!("`succeedOnAttempt` must be a whole number from 1, found {n}")
                })?,
        ),
        Some(other) => {
            return Err(format!(
                "`succeedOnAttempt` must be a number, found {}",
                type_name(other)
            ));
        }
    };
    let retryable = opt_bool(map, "retryable")?.unwrap_or(true);
    Ok((message, succeed_on, retryable))
}

fn prune_request(map: &Map<String, Value>) -> Result<PruneRequest, String> {
    let req = PruneRequest {
        containers: opt_bool(map, "containers")?.unwrap_or(false),
        images: opt_bool(map, "images")?.unwrap_or(false),
        volumes: opt_bool(map, "volumes")?.unwrap_or(false),
        networks: opt_bool(map, "networks")?.unwrap_or(false),
    };
    Ok(req)
}

fn completion_request(map: &Map<String, Value>) -> Result<CompletionRequest, String> {
    let prompt = match map.get("prompt") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return Err("`prompt` must not be empty".into()),
        Some(other) => {
            return Err(format!(
                "`prompt` must be a string, found {}",
                type_name(other)
            ));
        }
        None => return Err("ai.complete needs `prompt`".into()),
    };
    let max_tokens = match map.get("maxTokens") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`maxTokens` must be a positive whole number, found {n}"))?,
        ),
        Some(other) => {
            return Err(format!(
                "`maxTokens` must be a number, found {}",
                type_name(other)
            ));
        }
    };
    let temperature = match map.get("temperature") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            let t = n.as_f64().unwrap_or(-1.0);
            if !(0.0..=2.0).contains(&t) {
                return Err(format!("`temperature` must be between 0 and 2, found {n}"));
            }
            Some(t as f32)
        }
        Some(other) => {
            return Err(format!(
                "`temperature` must be a number, found {}",
                type_name(other)
            ));
        }
    };
    Ok(CompletionRequest {
        prompt,
        system: opt_str(map, "system")?.map(str::to_owned),
        max_tokens,
        temperature,
    })
}

// ---------------------------------------------------------------------------------------------
// transform

fn transform(map: &Map<String, Value>) -> Result<Value, String> {
    let op = opt_str(map, "op")?.unwrap_or_default();
    let need = |key: &str| {
        map.get(key)
            .ok_or_else(|| format!("transform op `{op}` needs parameter `{key}`"))
    };
    match op {
        "pick" => {
            let from = need("from")?;
            let Value::Array(keys) = need("keys")? else {
                return Err("transform `pick`: `keys` must be a list of paths".into());
            };
            let mut out = Map::new();
            for key in keys {
                let Value::String(path) = key else {
                    return Err(format!(
                        "transform `pick`: keys must be strings, found {}",
                        type_name(key)
                    ));
                };
                if let Some(v) = lookup_path(from, path) {
                    out.insert(path.clone(), v.clone());
                }
            }
            Ok(Value::Object(out))
        }
        "merge" => {
            let Value::Array(values) = need("values")? else {
                return Err("transform `merge`: `values` must be a list of mappings".into());
            };
            let mut out = Value::Object(Map::new());
            for v in values {
                match v {
                    Value::Object(_) => deep_merge(&mut out, v),
                    // Missing optional inputs may arrive as null; skipping them keeps merge usable.
                    Value::Null => {}
                    other => {
                        return Err(format!(
                            "transform `merge`: every value must be a mapping, found {}",
                            type_name(other)
                        ));
                    }
                }
            }
            Ok(out)
        }
        // The template was already interpolated when params were resolved.
        "template" => need("template").cloned(),
        "lookup" => {
            let key = match need("key")? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(format!(
                        "transform `lookup`: `key` must be a string, found {}",
                        type_name(other)
                    ));
                }
            };
            let Value::Object(table) = need("table")? else {
                return Err("transform `lookup`: `table` must be a mapping".into());
            };
            match (table.get(&key), map.get("default")) {
                (Some(v), _) => Ok(v.clone()),
                (None, Some(default)) => Ok(default.clone()),
                (None, None) => Err(format!(
                    "transform `lookup`: `{key}` is not in the table (known: {}) and no `default` is given",
                    table.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            }
        }
        "count" => match need("from")? {
            Value::Array(a) => Ok(a.len().into()),
            Value::Object(o) => Ok(o.len().into()),
            Value::String(s) => Ok(s.chars().count().into()),
            Value::Null => Ok(0.into()),
            other => Err(format!(
                "transform `count`: cannot count {}",
                type_name(other)
            )),
        },
        other => Err(format!(
            "unknown transform op `{other}` (expected: {})",
            TRANSFORM_OPS.map(|(n, _)| n).join(", ")
        )),
    }
}

fn lookup_path<'a>(mut v: &'a Value, path: &str) -> Option<&'a Value> {
    for seg in path.split('.') {
        v = match v {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

fn deep_merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// http.request

struct HttpParams {
    method: reqwest::Method,
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    body: Option<Value>,
}

impl HttpParams {
    fn parse(map: &Map<String, Value>) -> Result<HttpParams, String> {
        let method_text = opt_str(map, "method")?
            .unwrap_or("GET")
            .to_ascii_uppercase();
        let method = match method_text.as_str() {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => {
                reqwest::Method::from_bytes(method_text.as_bytes())
                    .map_err(|e| format!("bad method `{method_text}`: {e}"))?
            }
            _ => {
                return Err(format!(
                    "http.request `method` must be GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS, found `{method_text}`"
                ));
            }
        };
        let url_text = opt_str(map, "url")?.ok_or("http.request needs `url`")?;
        let mut url = reqwest::Url::parse(url_text)
            .map_err(|e| format!("http.request `url` `{url_text}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "http.request `url` must be http:// or https://, found `{url_text}`"
            ));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        match map.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (name, value) in h {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(_) | Value::Bool(_) => value.to_string(),
                        other => {
                            return Err(format!(
                                "header `{name}` must be a string, found {}",
                                type_name(other)
                            ));
                        }
                    };
                    let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| format!("`{name}` is not a valid HTTP header name"))?;
                    let value = reqwest::header::HeaderValue::from_str(&text).map_err(|_| {
                        format!("header `{name}` has characters HTTP does not allow")
                    })?;
                    headers.insert(name, value);
                }
            }
            Some(other) => {
                return Err(format!(
                    "http.request `headers` must be a mapping, found {}",
                    type_name(other)
                ));
            }
        }
        match map.get("query") {
            None | Some(Value::Null) => {}
            Some(Value::Object(q)) if q.is_empty() => {}
            Some(Value::Object(q)) => {
                // Appended to the URL's own query string, encoded.
                let mut pairs = url.query_pairs_mut();
                for (k, v) in q {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    pairs.append_pair(k, &text);
                }
            }
            Some(other) => {
                return Err(format!(
                    "http.request `query` must be a mapping, found {}",
                    type_name(other)
                ));
            }
        }
        Ok(HttpParams {
            method,
            url,
            headers,
            body: map.get("body").filter(|b| !b.is_null()).cloned(),
        })
    }
}

async fn http_request(client: &reqwest::Client, p: HttpParams) -> Result<Value, StepError> {
    let target = format!("{} {}", p.method, p.url);
    let mut req = client.request(p.method, p.url).headers(p.headers);
    if let Some(body) = &p.body {
        req = req.json(body);
    }
    let mut resp = req.send().await.map_err(|e| {
        let message = format!(
            "{target}: {}",
            if e.is_timeout() {
                "timed out".to_owned()
            } else {
                crate::server::ai::error_chain(&e)
            }
        );
        // A refused redirect (host not allowed, too many hops) does not improve on retry.
        if e.is_redirect() {
            StepError::permanent(message)
        } else {
            StepError::transient(message)
        }
    })?;
    let status = resp.status();
    let mut headers = Map::new();
    for (name, value) in resp.headers() {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&text);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(text));
            }
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| StepError::transient(format!("{target}: reading the body: {e}")))?
    {
        if body.len() + chunk.len() > MAX_HTTP_BODY {
            return Err(StepError::permanent(format!(
                "{target}: response body is larger than {MAX_HTTP_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let body_value = match serde_json::from_slice::<Value>(&body) {
        Ok(v) if !body.is_empty() => v,
        _ => Value::String(String::from_utf8_lossy(&body).into_owned()),
    };
    if !status.is_success() {
        let excerpt: String = match &body_value {
            Value::String(s) => s.chars().take(300).collect(),
            other => other.to_string().chars().take(300).collect(),
        };
        let retryable = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
        return Err(StepError {
            message: format!("{target}: HTTP {status}: {excerpt}"),
            retryable,
        });
    }
    Ok(json!({
        "status": status.as_u16(),
        "headers": headers,
        "body": body_value,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn every_tool_name_round_trips() {
        for t in ALL_TOOLS {
            assert_eq!(Tool::from_name(t.name()), Some(t));
        }
        assert_eq!(Tool::from_name("docker.run"), None);
    }

    #[test]
    fn load_time_checks_catch_missing_unknown_and_bad_literals() {
        let cases = [
            (Tool::HttpRequest, json!({}), "needs parameter `url`"),
            (
                Tool::HttpRequest,
                json!({"url": "http://x", "verb": "GET"}),
                "unknown parameter `verb`",
            ),
            (
                Tool::HttpRequest,
                json!({"url": "ftp://x"}),
                "http:// or https://",
            ),
            (
                Tool::HttpRequest,
                json!({"url": "http://x", "method": "BREW"}),
                "method",
            ),
            (Tool::Sleep, json!({"ms": 120000}), "between 0 and 60000"),
            (Tool::Sleep, json!({}), "exactly one of"),
            (
                Tool::Sleep,
                json!({"duration": "2 fortnights"}),
                "invalid duration",
            ),
            (
                Tool::Transform,
                json!({"op": "explode"}),
                "unknown transform op",
            ),
            (
                Tool::Transform,
                json!({"op": "pick", "from": {}}),
                "needs parameter `keys`",
            ),
            (Tool::Log, json!({"message": "x", "level": "loud"}), "level"),
            (Tool::DockerPs, json!({"all": "yes"}), "true or false"),
            (Tool::DockerInfo, json!({"x": 1}), "expected: none"),
            (
                Tool::AiComplete,
                json!({"prompt": "hi", "temperature": 9}),
                "between 0 and 2",
            ),
            (Tool::Echo, json!([1, 2]), "must be a mapping"),
        ];
        for (tool, params, want) in cases {
            let err = tool
                .check_params(&params, true)
                .expect_err(&format!("{} {params}", tool.name()));
            assert!(err.contains(want), "{} {params}: {err}", tool.name());
        }
        assert!(
            Tool::Echo
                .check_params(&json!({"anything": 1}), true)
                .is_ok()
        );
        // A templated value cannot be checked before the run.
        assert!(
            Tool::Sleep
                .check_params(&json!({"ms": "${params.ms}"}), false)
                .is_ok()
        );
    }

    #[test]
    fn transform_ops_reshape_data() {
        let r = transform(&obj(
            json!({"op": "pick", "from": {"a": 1, "b": {"c": 2}, "d": 3}, "keys": ["a", "b.c", "zz"]}),
        ));
        assert_eq!(r, Ok(json!({"a": 1, "b.c": 2})));
        let r = transform(&obj(
            json!({"op": "merge", "values": [{"a": {"x": 1}, "b": 1}, null, {"a": {"y": 2}, "b": 2}]}),
        ));
        assert_eq!(r, Ok(json!({"a": {"x": 1, "y": 2}, "b": 2})));
        let r = transform(&obj(
            json!({"op": "lookup", "key": "python", "table": {"python": {"image": "python:3.12"}}}),
        ));
        assert_eq!(r, Ok(json!({"image": "python:3.12"})));
        let r = transform(&obj(
            json!({"op": "lookup", "key": "cobol", "table": {"python": 1}, "default": 0}),
        ));
        assert_eq!(r, Ok(json!(0)));
        let err = transform(&obj(
            json!({"op": "lookup", "key": "cobol", "table": {"python": 1}}),
        ))
        .expect_err("no default");
        assert!(err.contains("cobol") && err.contains("python"), "{err}");
        assert_eq!(
            transform(&obj(json!({"op": "count", "from": [1, 2, 3]}))),
            Ok(json!(3))
        );
        assert_eq!(
            transform(&obj(json!({"op": "template", "template": "x"}))),
            Ok(json!("x"))
        );
    }
}
