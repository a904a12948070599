//! OpenAI-compatible chat-completions client for `ai_complete` and AI workflow steps.
//!
//! One `POST {base_url}/chat/completions` per call through `reqwest`, with a bearer key when
//! configured and a whole-request timeout. Errors say which endpoint failed and why, quoting
//! the provider's own error message, because "HTTP 401" alone does not tell a user that the
//! key is wrong.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where and how to reach the completion API.
#[derive(Clone)]
pub struct AiConfig {
    /// API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Model name sent with every request.
    pub model: String,
    /// Bearer token; `None` for local servers that need none.
    pub api_key: Option<String>,
    /// Limit for one whole request (connect, send, wait, read).
    pub timeout: Duration,
}

impl fmt::Debug for AiConfig {
    // The key must never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One completion request: a user prompt and an optional system message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionRequest {
    /// The user message.
    pub prompt: String,
    /// An optional system message sent before the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Upper bound on generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature (0–2 in the OpenAI API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

/// Token accounting reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Both together.
    pub total_tokens: u64,
}

/// The first choice's text and what the provider reported about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionResponse {
    /// The generated message content.
    pub content: String,
    /// The model that answered (the provider may resolve an alias).
    pub model: String,
    /// Token usage, when the provider reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// Why a completion failed.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// The configuration cannot work (bad URL, empty model, bad key characters).
    #[error("invalid AI configuration: {0}")]
    InvalidConfig(String),
    /// The request itself is unusable (e.g. an empty prompt).
    #[error("invalid completion request: {0}")]
    InvalidRequest(String),
    /// No answer within the configured timeout.
    #[error("AI request to {url} timed out after {}ms", timeout.as_millis())]
    Timeout {
        /// The endpoint called.
        url: String,
        /// The configured limit.
        timeout: Duration,
    },
    /// The endpoint could not be reached at all.
    #[error("cannot reach AI endpoint {url}: {reason}")]
    Unreachable {
        /// The endpoint called.
        url: String,
        /// What the network layer said.
        reason: String,
    },
    /// The provider answered with an error status.
    #[error("AI endpoint {url} returned HTTP {status}: {message}")]
    Status {
        /// The endpoint called.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The provider's error message (or the start of the body).
        message: String,
    },
    /// The provider answered 2xx with something that is not a chat completion.
    #[error("AI endpoint {url} returned an unusable response: {reason}")]
    InvalidResponse {
        /// The endpoint called.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl AiError {
    /// Whether trying again may help (timeouts, network errors, 408/429/5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            AiError::Timeout { .. } | AiError::Unreachable { .. } => true,
            AiError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            AiError::InvalidConfig(_)
            | AiError::InvalidRequest(_)
            | AiError::InvalidResponse { .. } => false,
        }
    }

    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            AiError::InvalidConfig(_) => "invalid_config",
            AiError::InvalidRequest(_) => "invalid_request",
            AiError::Timeout { .. } => "timeout",
            AiError::Unreachable { .. } => "unreachable",
            AiError::Status { .. } => "status",
            AiError::InvalidResponse { .. } => "invalid_response",
        }
    }
}

/// Longest provider error text quoted in an [`AiError`], so a HTML error page stays readable.
const MAX_ERROR_TEXT: usize = 500;

/// Client for one configured endpoint and model. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct AiClient {
    http: reqwest::Client,
    config: AiConfig,
    endpoint: reqwest::Url,
}

impl AiClient {
    /// Checks the configuration and builds the HTTP client; no request is sent.
    pub fn new(config: AiConfig) -> Result<AiClient, AiError> {
        if config.model.trim().is_empty() {
            return Err(AiError::InvalidConfig("model must not be empty".into()));
        }
        if config.timeout.is_zero() {
            return Err(AiError::InvalidConfig("timeout must be above zero".into()));
        }
        let base = reqwest::Url::parse(config.base_url.trim_end_matches('/')).map_err(|e| {
            AiError::InvalidConfig(format!("base URL `{}` is not a URL: {e}", config.base_url))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(AiError::InvalidConfig(format!(
                "base URL `{}` must start with http:// or https://",
                config.base_url
            )));
        }
        let endpoint = reqwest::Url::parse(&format!(
            "{}/chat/completions",
            base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| AiError::InvalidConfig(format!("base URL `{}`: {e}", config.base_url)))?;
        if let Some(key) = &config.api_key
            && reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err()
        {
            return Err(AiError::InvalidConfig(
                "API key contains characters that cannot be sent in an HTTP header".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| AiError::InvalidConfig(format!("cannot build HTTP client: {e}")))?;
        Ok(AiClient {
            http,
            config,
            endpoint,
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &AiConfig {
        &self.config
    }

    /// The full chat-completions URL requests go to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Sends one chat completion and returns the first choice's content.
    pub async fn complete(
        &self,
        request: CompletionRequest,
    ) -> Result<CompletionResponse, AiError> {
        if request.prompt.trim().is_empty() {
            return Err(AiError::InvalidRequest("prompt must not be empty".into()));
        }
        if let Some(t) = request.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(AiError::InvalidRequest(format!(
                "temperature {t} is outside 0..=2"
            )));
        }
        let url = self.endpoint.to_string();
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &request.system {
            messages.push(serde_json::json!({"role": "system", "content": system}));
        }
        messages.push(serde_json::json!({"role": "user", "content": request.prompt}));
        let mut body = serde_json::json!({"model": self.config.model, "messages": messages});
        if let Some(max) = request.max_tokens {
            body["max_tokens"] = max.into();
        }
        if let Some(t) = request.temperature {
            body["temperature"] = serde_json::json!(t);
        }
        let mut builder = self.http.post(self.endpoint.clone()).json(&body);
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| self.transport_error(&url, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&url, &e))?;
        if !status.is_success() {
            return Err(AiError::Status {
                url,
                status: status.as_u16(),
                message: provider_message(&bytes, status),
            });
        }
        parse_completion(&bytes, &self.config.model)
            .map_err(|reason| AiError::InvalidResponse { url, reason })
    }

    fn transport_error(&self, url: &str, e: &reqwest::Error) -> AiError {
        if e.is_timeout() {
            AiError::Timeout {
                url: url.to_owned(),
                timeout: self.config.timeout,
            }
        } else {
            AiError::Unreachable {
                url: url.to_owned(),
                reason: error_chain(e),
            }
        }
    }
}

/// The innermost useful message of an error chain ("connection refused" beats "error sending
/// request").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Extracts the provider's error message from an error body: OpenAI's
/// `{"error": {"message": ...}}`, `{"error": "..."}`, `{"message": ...}`, or plain text.
fn provider_message(body: &[u8], status: reqwest::StatusCode) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let candidates = [
            value.pointer("/error/message"),
            value.get("error").filter(|v| v.is_string()),
            value.get("message"),
            value.get("detail"),
        ];
        if let Some(text) = candidates.into_iter().flatten().find_map(|v| v.as_str()) {
            return truncate(text, MAX_ERROR_TEXT);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_owned()
    } else {
        truncate(text, MAX_ERROR_TEXT)
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[derive(Deserialize)]
struct WireCompletion {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: Option<WireMessage>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<serde_json::Value>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
}

fn parse_completion(body: &[u8], requested_model: &str) -> Result<CompletionResponse, String> {
    let wire: WireCompletion = serde_json::from_slice(body)
        .map_err(|e| format!("not a chat completion JSON object: {e}"))?;
    let message = wire
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.message)
        .ok_or_else(|| "no choices with a message in the response".to_owned())?;
    let content = match message.content {
        Some(serde_json::Value::String(s)) => s,
        // Some providers return content as a list of typed parts.
        Some(serde_json::Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join(""),
        Some(serde_json::Value::Null) | None => match message.refusal {
            Some(refusal) => return Err(format!("the model refused: {refusal}")),
            None => String::new(),
        },
        Some(other) => return Err(format!("message content is not text: {other}")),
    };
    Ok(CompletionResponse {
        content,
        model: wire.model.unwrap_or_else(|| requested_model.to_owned()),
        usage: wire.usage.map(|u| Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u
                .total_tokens
                .unwrap_or(u.prompt_tokens + u.completion_tokens),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: &str) -> AiConfig {
        AiConfig {
            base_url: base.into(),
            model: "m".into(),
            api_key: Some("secret-key".into()),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn endpoint_is_base_url_plus_chat_completions() {
        let client = AiClient::new(config("http://127.0.0.1:9/v1/")).expect("valid");
        assert_eq!(client.endpoint(), "http://127.0.0.1:9/v1/chat/completions");
    }

    #[test]
    fn bad_configuration_is_refused_with_the_reason() {
        let err = AiClient::new(config("not a url")).expect_err("bad url");
        assert!(err.to_string().contains("not a URL"), "{err}");
        let err = AiClient::new(config("ftp://x/v1")).expect_err("bad scheme");
        assert!(err.to_string().contains("http://"), "{err}");
        let mut c = config("http://x/v1");
        c.model = " ".into();
        assert!(AiClient::new(c).is_err());
        let mut c = config("http://x/v1");
        c.api_key = Some("bad\nkey".into());
        assert!(AiClient::new(c).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let text = format!("{:?}", config("http://x"));
        assert!(
            !text.contains("secret-key") && text.contains("redacted"),
            "{text}"
        );
    }

    #[test]
    fn provider_messages_are_found_in_common_error_shapes() {
        let s = reqwest::StatusCode::BAD_REQUEST;
        assert_eq!(
            provider_message(br#"{"error":{"message":"bad key","type":"auth"}}"#, s),
            "bad key"
        );
        assert_eq!(
            provider_message(br#"{"error":"overloaded"}"#, s),
            "overloaded"
        );
        assert_eq!(provider_message(br#"{"message":"nope"}"#, s), "nope");
        assert_eq!(provider_message(b"  plain text  ", s), "plain text");
        assert_eq!(provider_message(b"", s), "Bad Request");
        let long = "x".repeat(2000);
        assert!(provider_message(long.as_bytes(), s).chars().count() <= MAX_ERROR_TEXT + 1);
    }

    #[test]
    fn completions_parse_text_parts_and_usage() {
        let r = parse_completion(
            br#"{"model":"gpt-x","choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
            "m",
        )
        .expect("parses");
        assert_eq!(r.content, "hi");
        assert_eq!(r.model, "gpt-x");
        assert_eq!(r.usage.map(|u| u.total_tokens), Some(4));
        let r = parse_completion(
            br#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}"#,
            "m",
        )
        .expect("parses");
        assert_eq!((r.content.as_str(), r.model.as_str()), ("ab", "m"));
        assert!(parse_completion(br#"{"choices":[]}"#, "m").is_err());
        assert!(parse_completion(b"<html>", "m").is_err());
        let err = parse_completion(
            br#"{"choices":[{"message":{"content":null,"refusal":"no"}}]}"#,
            "m",
        )
        .expect_err("refusal");
        assert!(err.contains("refused"), "{err}");
    }
}
