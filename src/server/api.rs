//! The REST API for callers that do not speak MCP (`/api/v1/...`) and its JSON errors.
//!
//! Every error is `{"error": {"code", "message", "field"?, ...}}` with a status code that
//! says what happened: 400 bad input (naming the field), 404 unknown session, 409 version
//! conflict / duplicate id / invalid status move, 413 body too large, 415 not JSON,
//! 503 session table full, draining, or store unavailable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AppState;
use super::runs::RunError;
use super::sessions::{
    NewSession, SessionError, SessionFilter, SessionOp, SessionPatch, SessionStatus,
};

/// An API error with its status code and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Offending field, for 400s.
    pub field: Option<String>,
    /// Extra JSON members (e.g. `current_version`).
    pub extra: Option<Value>,
}

impl ApiError {
    /// 400 naming a field.
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_argument",
            message: message.into(),
            field: Some(field.into()),
            extra: None,
        }
    }

    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            extra: None,
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        let message = e.to_string();
        match e {
            SessionError::Invalid { field, .. } => ApiError {
                field: Some(field),
                ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
            },
            SessionError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            SessionError::AlreadyExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", message)
            }
            SessionError::Conflict { current, .. } => ApiError {
                extra: Some(json!({ "current_version": current })),
                ..ApiError::new(StatusCode::CONFLICT, "version_conflict", message)
            },
            SessionError::InvalidTransition { .. } => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", message)
            }
            SessionError::Full { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "session_table_full",
                message,
            ),
            SessionError::Draining => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "draining", message)
            }
            SessionError::Store(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                message,
            ),
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        let message = e.to_string();
        match e {
            RunError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "workflows_unavailable",
                message,
            ),
            RunError::UnknownWorkflow(_) | RunError::UnknownRun(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            RunError::Session(e) => e.into(),
            RunError::Draining => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "draining", message)
            }
            RunError::Rejected(_) => ApiError::bad_request("params", message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({ "code": self.code, "message": self.message });
        if let Some(f) = &self.field {
            err["field"] = json!(f);
        }
        if let Some(Value::Object(extra)) = self.extra {
            for (k, v) in extra {
                err[k] = v;
            }
        }
        let mut resp = (self.status, Json(json!({ "error": err }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}

/// A JSON body whose parse errors become 400s naming the field, 413 when too large,
/// and 415 when the content type is not JSON.
pub struct JsonBody<T>(pub T);

/// Pulls the first backquoted name out of a serde message (`unknown field `x``, `missing field `y``).
fn field_from_serde(msg: &str) -> String {
    msg.split('`')
        .nth(1)
        .map(str::to_string)
        .unwrap_or_else(|| "body".into())
}

/// Parses JSON bytes into `T` with a 400 that names the offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "body",
            "request body is empty; expected a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut *de);
    let value = parsed.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let field = if inner.is_syntax() || inner.is_eof() {
            "body".to_string()
        } else if path != "." && !path.is_empty() {
            // A missing field is reported at its parent; an unknown one at itself.
            if msg.starts_with("missing field") {
                format!("{path}.{}", field_from_serde(&msg))
            } else {
                path
            }
        } else {
            field_from_serde(&msg)
        };
        ApiError::bad_request(field, format!("invalid JSON body: {msg}"))
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request("body", format!("invalid JSON body: {e}")))?;
    Ok(value)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let essence = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                essence == "application/json" || essence.ends_with("+json")
            });
        if json_type == Some(false) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Content-Type must be application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        e.body_text(),
                    )
                } else {
                    ApiError::bad_request("body", e.body_text())
                }
            })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The expected version of a write, from `?version=N` or `If-Match: N` (quotes allowed).
fn expected_version(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Option<u64>, ApiError> {
    let raw = match query.get("version") {
        Some(v) => Some(v.clone()),
        None => headers.get(header::IF_MATCH).map(|v| {
            v.to_str()
                .unwrap_or("")
                .trim()
                .trim_matches('"')
                .to_string()
        }),
    };
    match raw {
        None => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(
                "version",
                format!("version must be a non-negative integer, got {v:?}"),
            )
        }),
    }
}

fn query_map(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m)
        .map_err(|e| ApiError::bad_request("query", e.body_text()))
}

fn check_known(query: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match query.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(
            k.clone(),
            format!(
                "unknown query parameter {k:?}; accepted: {}",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// Parses the list filter from `status`, `labels=k=v,k2=v2`, `after`, `limit`.
pub fn parse_filter(query: &HashMap<String, String>) -> Result<SessionFilter, ApiError> {
    check_known(query, &["status", "labels", "after", "limit"])?;
    let status = query
        .get("status")
        .map(|s| SessionStatus::parse(s))
        .transpose()
        .map_err(ApiError::from)?;
    let mut labels = BTreeMap::new();
    if let Some(l) = query.get("labels") {
        for pair in l.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                ApiError::bad_request("labels", format!("expected key=value, got {pair:?}"))
            })?;
            labels.insert(k.to_string(), v.to_string());
        }
    }
    let limit = match query.get("limit") {
        Some(l) => l.parse::<usize>().map_err(|_| {
            ApiError::bad_request(
                "limit",
                format!("limit must be a positive integer, got {l:?}"),
            )
        })?,
        None => 0,
    };
    Ok(SessionFilter {
        status,
        labels,
        after: query.get("after").cloned(),
        limit,
    })
}

async fn create_session(
    State(st): State<Arc<AppState>>,
    JsonBody(new): JsonBody<NewSession>,
) -> Result<Response, ApiError> {
    let s = st.sessions.create(new).await?;
    let location = format!("/api/v1/sessions/{}", s.id);
    let mut resp = (StatusCode::CREATED, Json(s)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn list_sessions(
    State(st): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let filter = parse_filter(&query_map(query)?)?;
    let limit = filter.effective_limit();
    let sessions = st.sessions.list(filter).await?;
    let next_after = (sessions.len() == limit)
        .then(|| sessions.last().map(|s| s.id.clone()))
        .flatten();
    Ok(Json(json!({ "sessions": sessions, "next_after": next_after })).into_response())
}

async fn get_session(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = st.sessions.get(&id).await?;
    Ok(Json(s).into_response())
}

/// `PATCH` is the `patch` operation of [`session_op`].
async fn patch_session(
    state: State<Arc<AppState>>,
    id: Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    JsonBody(patch): JsonBody<SessionPatch>,
) -> Result<Response, ApiError> {
    session_op(state, id, query, headers, JsonBody(SessionOp::Patch(patch))).await
}

async fn session_op(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    JsonBody(op): JsonBody<SessionOp>,
) -> Result<Response, ApiError> {
    let query = query_map(query)?;
    check_known(&query, &["version"])?;
    let expected = expected_version(&query, &headers)?;
    let s = st.sessions.update(&id, expected, op).await?;
    Ok(Json(s).into_response())
}

async fn delete_session(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = query_map(query)?;
    check_known(&query, &["version"])?;
    let expected = expected_version(&query, &headers)?;
    st.sessions.delete(&id, expected).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST /api/v1/workflows/{id}/runs`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// Session the run works on.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Step parameters (a JSON object).
    #[serde(default)]
    pub params: Option<Value>,
    /// Answer with the finished run instead of at once.
    #[serde(default)]
    pub wait: bool,
}

async fn list_workflows(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let engine = st.runs.engine()?;
    Ok(Json(json!({ "workflows": engine.list() })).into_response())
}

async fn get_workflow(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let engine = st.runs.engine()?;
    let def = engine.get(&id).ok_or(RunError::UnknownWorkflow(id))?;
    Ok(Json(def).into_response())
}

async fn start_run(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<StartRun>,
) -> Result<Response, ApiError> {
    let params = body.params.unwrap_or_else(|| json!({}));
    let draining = st.is_draining();
    if body.wait {
        let doc = st
            .runs
            .run_to_end(id, body.session_id, params, draining)
            .await?;
        return Ok(Json(doc).into_response());
    }
    let (doc, _) = st.runs.start(id, body.session_id, params, draining).await?;
    let location = format!("/api/v1/runs/{}", doc.id);
    let mut resp = (StatusCode::ACCEPTED, Json(doc)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn get_run(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(st.runs.get(&id).await?).into_response())
}

async fn list_runs(
    State(st): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query_map(query)?;
    check_known(&q, &["session_id", "workflow_id", "limit"])?;
    let limit = match q.get("limit") {
        Some(l) => l.parse::<usize>().map_err(|_| {
            ApiError::bad_request(
                "limit",
                format!("limit must be a positive integer, got {l:?}"),
            )
        })?,
        None => 0,
    };
    let runs = st
        .runs
        .list(super::store::RunFilter {
            session_id: q.get("session_id").cloned(),
            workflow_id: q.get("workflow_id").cloned(),
            limit,
        })
        .await?;
    Ok(Json(json!({ "runs": runs })).into_response())
}

async fn cancel_run(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if st.runs.cancel(&id) {
        return Ok((StatusCode::ACCEPTED, Json(json!({ "cancelled": id }))).into_response());
    }
    // Distinguish a finished run (409) from an unknown one (404).
    let run = st.runs.get(&id).await?;
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "not_running",
        format!(
            "run {:?} is {} and not running on this server",
            run.id, run.status
        ),
    ))
}

/// Routes under `/api/v1`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/workflows", get(list_workflows))
        .route("/api/v1/workflows/{id}", get(get_workflow))
        .route("/api/v1/workflows/{id}/runs", post(start_run))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(get_run))
        .route("/api/v1/runs/{id}/cancel", post(cancel_run))
        .route("/api/v1/sessions", post(create_session).get(list_sessions))
        .route(
            "/api/v1/sessions/{id}",
            get(get_session).patch(patch_session).delete(delete_session),
        )
        .route("/api/v1/sessions/{id}/ops", post(session_op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_errors_name_the_field() {
        let e = parse_json::<NewSession>(br#"{"ttl_seconds": "x"}"#).err();
        assert_eq!(e.and_then(|e| e.field), Some("ttl_seconds".to_string()));
        let e = parse_json::<SessionPatch>(br#"{"labels": {"a": 3}}"#).err();
        assert_eq!(e.and_then(|e| e.field), Some("labels.a".to_string()));
        let e = parse_json::<NewSession>(br#"{"bogus": 1}"#).err();
        assert_eq!(e.and_then(|e| e.field), Some("bogus".to_string()));
        let e = parse_json::<SessionOp>(br#"{"op": "mark_step_completed"}"#).err();
        assert_eq!(e.and_then(|e| e.field), Some("step".to_string()));
        let e = parse_json::<NewSession>(b"{not json").err();
        assert_eq!(
            e.map(|e| (e.status, e.field)),
            Some((StatusCode::BAD_REQUEST, Some("body".to_string())))
        );
    }

    #[test]
    fn filter_parses_labels_and_refuses_unknown_params() {
        let mut q = HashMap::new();
        q.insert("labels".to_string(), "a=1,b=2".to_string());
        q.insert("status".to_string(), "building".to_string());
        let f = parse_filter(&q).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(f.labels.len(), 2);
        assert_eq!(f.status, Some(SessionStatus::Building));
        q.insert("colour".to_string(), "red".to_string());
        assert_eq!(
            parse_filter(&q).err().and_then(|e| e.field),
            Some("colour".to_string())
        );
    }

    #[test]
    fn session_errors_map_to_documented_statuses() {
        let cases = [
            (SessionError::NotFound("x".into()), StatusCode::NOT_FOUND),
            (
                SessionError::Conflict {
                    id: "x".into(),
                    expected: 1,
                    current: 2,
                },
                StatusCode::CONFLICT,
            ),
            (
                SessionError::Full { max: 1 },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                SessionError::Invalid {
                    field: "id".into(),
                    reason: "bad".into(),
                },
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(ApiError::from(e).status, status);
        }
    }
}
