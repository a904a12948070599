//! Fixtures the official MCP conformance suite (`@modelcontextprotocol/conformance`) calls:
//! `test_*` tools, `test://` resources, `test_*` prompts, completion and logging. Built only
//! with the cargo feature `conformance`; release images never carry them.
// The 0.1.12 suite still exercises logging and sampling, which the 2026-07-28 revision
// deprecates (SEP-2577); the fixtures must use them anyway.
#![allow(deprecated)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::router::tool::{ToolRoute, ToolRouter};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, CompleteRequestParams, CompleteResult, ContentBlock,
    CreateMessageRequestParams, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    LoggingMessageNotificationParam, ProgressNotificationParam, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, RequestMetaObject, ServerRequest,
    SetLevelRequestParams, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
};
use rmcp::{ErrorData, Peer, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::mcp::McpServer;

/// A 1x1 red PNG.
const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A 44-byte WAV header with no samples (a valid, silent file).
const WAV_EMPTY: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=";

/// URIs clients subscribed to (shared by all sessions; fixtures only).
fn subscriptions() -> &'static Mutex<BTreeSet<String>> {
    static SUBS: std::sync::OnceLock<Mutex<BTreeSet<String>>> = std::sync::OnceLock::new();
    SUBS.get_or_init(|| Mutex::new(BTreeSet::new()))
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ErrorData> {
    serde_json::from_value(v).map_err(|e| ErrorData::internal_error(format!("fixture: {e}"), None))
}

fn text(t: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(t)])
}

async fn log(peer: &Peer<RoleServer>, msg: &str) {
    let Ok(param) = from_json::<LoggingMessageNotificationParam>(
        json!({"level": "info", "logger": "conformance", "data": msg}),
    ) else {
        return;
    };
    let _ = peer.notify_logging_message(param).await;
}

/// Arguments of `test_sampling`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SamplingArgs {
    /// Prompt for the client's model.
    pub prompt: String,
}

/// Arguments of `test_elicitation`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ElicitArgs {
    /// Message shown to the user.
    pub message: String,
}

#[tool_router(router = conformance_tools, vis = "pub(crate)")]
impl McpServer {
    #[tool(description = "Returns simple text")]
    async fn test_simple_text(&self) -> CallToolResult {
        text("This is a simple text response for testing.")
    }

    #[tool(description = "Returns an image")]
    async fn test_image_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::image(PNG_1X1, "image/png")])
    }

    #[tool(description = "Returns audio")]
    async fn test_audio_content(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::audio(WAV_EMPTY, "audio/wav")])
    }

    #[tool(description = "Returns an embedded resource")]
    async fn test_embedded_resource(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![from_json(json!({
            "type": "resource",
            "resource": {"uri": "test://embedded-resource", "mimeType": "text/plain",
                         "text": "This is an embedded resource content."}
        }))?]))
    }

    #[tool(description = "Returns text, image and resource content")]
    async fn test_multiple_content_types(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG_1X1, "image/png"),
            from_json(json!({
                "type": "resource",
                "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json",
                             "text": "{\"test\":\"data\",\"value\":123}"}
            }))?,
        ]))
    }

    #[tool(description = "Sends three log messages while running")]
    async fn test_tool_with_logging(&self, peer: Peer<RoleServer>) -> CallToolResult {
        log(&peer, "Tool execution started").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        log(&peer, "Tool processing data").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        log(&peer, "Tool execution completed").await;
        text("Tool with logging executed successfully")
    }

    #[tool(description = "Always fails")]
    async fn test_error_handling(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )])
    }

    #[tool(description = "Reports progress 0, 50, 100 of 100")]
    async fn test_tool_with_progress(
        &self,
        peer: Peer<RoleServer>,
        meta: RequestMetaObject,
    ) -> CallToolResult {
        let token = meta.get_progress_token();
        for (i, p) in [0.0, 50.0, 100.0].into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Some(token) = &token
                && let Ok(param) = from_json::<ProgressNotificationParam>(
                    json!({"progressToken": token, "progress": p, "total": 100.0}),
                )
            {
                let _ = peer.notify_progress(param).await;
            }
        }
        text("Tool with progress executed successfully")
    }

    #[tool(description = "Asks the client's model via sampling/createMessage")]
    async fn test_sampling(
        &self,
        peer: Peer<RoleServer>,
        Parameters(a): Parameters<SamplingArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let params: CreateMessageRequestParams = from_json(json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": a.prompt}}],
            "maxTokens": 100
        }))?;
        let r = peer.create_message(params).await;
        Ok(match r {
            Ok(res) => {
                let v = serde_json::to_value(&res).unwrap_or(Value::Null);
                let answer = v["content"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                text(format!("LLM response: {answer}"))
            }
            Err(e) => {
                CallToolResult::error(vec![ContentBlock::text(format!("sampling failed: {e}"))])
            }
        })
    }

    #[tool(description = "Asks the user via elicitation/create")]
    async fn test_elicitation(
        &self,
        peer: Peer<RoleServer>,
        Parameters(a): Parameters<ElicitArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        elicit(
            &peer,
            json!({
                "message": a.message,
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "username": {"type": "string", "description": "User's response"},
                        "email": {"type": "string", "description": "User's email address"}
                    },
                    "required": ["username", "email"]
                }
            }),
            "User response",
        )
        .await
    }

    #[tool(description = "Elicitation with defaults for every primitive type (SEP-1034)")]
    async fn test_elicitation_sep1034_defaults(
        &self,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        elicit(
            &peer,
            json!({
                "message": "Please review and update the form fields with defaults",
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "User name", "default": "John Doe"},
                        "age": {"type": "integer", "description": "User age", "default": 30},
                        "score": {"type": "number", "description": "User score", "default": 95.5},
                        "status": {"type": "string", "description": "User status",
                                   "enum": ["active", "inactive", "pending"], "default": "active"},
                        "verified": {"type": "boolean", "description": "Verification status", "default": true}
                    },
                    "required": []
                }
            }),
            "Elicitation completed",
        )
        .await
    }

    #[tool(description = "Elicitation with all five enum forms (SEP-1330)")]
    async fn test_elicitation_sep1330_enums(
        &self,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        elicit(
            &peer,
            json!({
                "message": "Please select options from the enum fields",
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "untitledSingle": {"type": "string", "description": "Select one option",
                                           "enum": ["option1", "option2", "option3"]},
                        "titledSingle": {"type": "string", "description": "Select one option with titles",
                                         "oneOf": [{"const": "value1", "title": "First Option"},
                                                   {"const": "value2", "title": "Second Option"},
                                                   {"const": "value3", "title": "Third Option"}]},
                        "legacyEnum": {"type": "string", "description": "Select one option (legacy)",
                                       "enum": ["opt1", "opt2", "opt3"],
                                       "enumNames": ["Option One", "Option Two", "Option Three"]},
                        "untitledMulti": {"type": "array", "description": "Select multiple options",
                                          "minItems": 1, "maxItems": 3,
                                          "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                        "titledMulti": {"type": "array", "description": "Select multiple options with titles",
                                        "minItems": 1, "maxItems": 3,
                                        "items": {"anyOf": [{"const": "value1", "title": "First Choice"},
                                                            {"const": "value2", "title": "Second Choice"},
                                                            {"const": "value3", "title": "Third Choice"}]}}
                    },
                    "required": []
                }
            }),
            "Elicitation completed",
        )
        .await
    }

    #[tool(description = "Closes its SSE stream mid-call so the client reconnects (SEP-1699)")]
    async fn test_reconnection(&self) -> CallToolResult {
        // rmcp owns the stream; the fixture answers after a pause the client can poll through.
        tokio::time::sleep(Duration::from_millis(100)).await;
        text("Reconnection test completed successfully")
    }
}

async fn elicit(
    peer: &Peer<RoleServer>,
    params: Value,
    label: &str,
) -> Result<CallToolResult, ErrorData> {
    // Built as a generic request: rmcp's typed helper needs its `elicitation` feature.
    let request: ServerRequest =
        from_json(json!({"method": "elicitation/create", "params": params}))?;
    Ok(match peer.send_request(request).await {
        Ok(r) => {
            let v = serde_json::to_value(&r).unwrap_or(Value::Null);
            text(format!(
                "{label}: action={}, content={}",
                v["action"].as_str().unwrap_or("unknown"),
                v.get("content").cloned().unwrap_or(json!({}))
            ))
        }
        Err(e) => {
            CallToolResult::error(vec![ContentBlock::text(format!("elicitation failed: {e}"))])
        }
    })
}

/// Every fixture tool, including the JSON Schema 2020-12 one whose schema is given verbatim.
pub fn router() -> ToolRouter<McpServer> {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {"address": {"type": "object", "properties": {
            "street": {"type": "string"}, "city": {"type": "string"}}}},
        "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
        "additionalProperties": false
    });
    let schema = match schema {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let tool = Tool::new(
        "json_schema_2020_12_tool",
        "Tool with JSON Schema 2020-12 features",
        Arc::new(schema),
    );
    let route = ToolRoute::new_dyn(tool, |ctx| {
        let args = ctx.arguments.clone().unwrap_or_default();
        Box::pin(async move { Ok(text(format!("Received: {}", Value::Object(args))).into()) })
    });
    let mut r = McpServer::conformance_tools();
    r.add_route(route);
    r
}

/// `resources/list`.
pub fn list_resources() -> Result<ListResourcesResult, ErrorData> {
    from_json(json!({"resources": [
        {"uri": "test://static-text", "name": "static-text", "description": "A static text resource", "mimeType": "text/plain"},
        {"uri": "test://static-binary", "name": "static-binary", "description": "A static binary resource (PNG)", "mimeType": "image/png"},
        {"uri": "test://watched-resource", "name": "watched-resource", "description": "A resource clients may subscribe to", "mimeType": "text/plain"}
    ]}))
}

/// `resources/templates/list`.
pub fn list_resource_templates() -> Result<ListResourceTemplatesResult, ErrorData> {
    from_json(json!({"resourceTemplates": [
        {"uriTemplate": "test://template/{id}/data", "name": "template-data",
         "description": "Data for an id", "mimeType": "application/json"}
    ]}))
}

/// `resources/read`.
pub fn read_resource(p: ReadResourceRequestParams) -> Result<ReadResourceResponse, ErrorData> {
    let uri = p.uri.as_str();
    let contents = match uri {
        "test://static-text" => json!([{"uri": uri, "mimeType": "text/plain",
            "text": "This is the content of the static text resource."}]),
        "test://static-binary" => json!([{"uri": uri, "mimeType": "image/png", "blob": PNG_1X1}]),
        "test://watched-resource" => {
            json!([{"uri": uri, "mimeType": "text/plain", "text": "watched"}])
        }
        _ => match uri
            .strip_prefix("test://template/")
            .and_then(|r| r.strip_suffix("/data"))
        {
            Some(id) if !id.is_empty() && !id.contains('/') => json!([{
                "uri": uri, "mimeType": "application/json",
                "text": json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")}).to_string()
            }]),
            _ => {
                return Err(ErrorData::resource_not_found(
                    format!("resource {uri} not found"),
                    None,
                ));
            }
        },
    };
    let r: ReadResourceResult = from_json(json!({ "contents": contents }))?;
    Ok(r.into())
}

/// `resources/subscribe`.
pub fn subscribe(p: SubscribeRequestParams) {
    if let Ok(mut s) = subscriptions().lock() {
        s.insert(p.uri);
    }
}

/// `resources/unsubscribe`.
pub fn unsubscribe(p: UnsubscribeRequestParams) {
    if let Ok(mut s) = subscriptions().lock() {
        s.remove(&p.uri);
    }
}

/// `prompts/list`.
pub fn list_prompts() -> Result<ListPromptsResult, ErrorData> {
    from_json(json!({"prompts": [
        {"name": "test_simple_prompt", "description": "A simple prompt without arguments"},
        {"name": "test_prompt_with_arguments", "description": "A prompt with arguments",
         "arguments": [{"name": "arg1", "description": "First test argument", "required": true},
                       {"name": "arg2", "description": "Second test argument", "required": true}]},
        {"name": "test_prompt_with_embedded_resource", "description": "A prompt embedding a resource",
         "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": true}]},
        {"name": "test_prompt_with_image", "description": "A prompt with an image"}
    ]}))
}

/// `prompts/get`.
pub fn get_prompt(p: GetPromptRequestParams) -> Result<GetPromptResponse, ErrorData> {
    let arg = |k: &str| {
        p.arguments
            .as_ref()
            .and_then(|a| a.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let messages = match p.name.as_str() {
        "test_simple_prompt" => json!([{"role": "user", "content": {"type": "text",
            "text": "This is a simple prompt for testing."}}]),
        "test_prompt_with_arguments" => json!([{"role": "user", "content": {"type": "text",
            "text": format!("Prompt with arguments: arg1='{}', arg2='{}'", arg("arg1"), arg("arg2"))}}]),
        "test_prompt_with_embedded_resource" => json!([
            {"role": "user", "content": {"type": "resource", "resource": {
                "uri": arg("resourceUri"), "mimeType": "text/plain",
                "text": "Embedded resource content for testing."}}},
            {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}}
        ]),
        "test_prompt_with_image" => json!([
            {"role": "user", "content": {"type": "image", "data": PNG_1X1, "mimeType": "image/png"}},
            {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}}
        ]),
        other => {
            return Err(ErrorData::invalid_params(
                format!("prompt {other:?} not found"),
                None,
            ));
        }
    };
    let r: GetPromptResult = from_json(json!({ "messages": messages }))?;
    Ok(r.into())
}

/// `completion/complete`: suggestions for `arg1` of `test_prompt_with_arguments`.
pub fn complete(p: CompleteRequestParams) -> Result<CompleteResult, ErrorData> {
    let v = serde_json::to_value(&p).unwrap_or(Value::Null);
    let prefix = v["argument"]["value"].as_str().unwrap_or("").to_string();
    let values: Vec<&str> = ["paris", "park", "party", "test", "testing"]
        .into_iter()
        .filter(|c| c.starts_with(&prefix))
        .collect();
    from_json(json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}))
}

/// `logging/setLevel`: accepted (fixture sessions log at info).
pub fn set_level(_p: SetLevelRequestParams) {}
