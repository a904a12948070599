//! The session model (js-mcp's `{id, status, labels, metadata, version, progress, workflow_state, ...}`)
//! and the pure operations that change a session; stores apply them atomically.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest accepted session id; ids are used in URLs, headers and store keys.
pub const MAX_ID_LEN: usize = 128;
/// Most labels one session may carry (labels are indexed for list filters).
pub const MAX_LABELS: usize = 64;
/// Longest accepted step name.
pub const MAX_STEP_LEN: usize = 256;

/// Where a session is in its life. `completed`, `failed` and `expired` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Open and idle.
    Active,
    /// Waiting to start work.
    Pending,
    /// Analyzing a repository.
    Analyzing,
    /// Building an image.
    Building,
    /// Deploying.
    Deploying,
    /// Finished successfully.
    Completed,
    /// Finished with a failure.
    Failed,
    /// Reached its expiry time.
    Expired,
}

impl SessionStatus {
    /// Every status, in the order the original model lists them.
    pub const ALL: [SessionStatus; 8] = [
        SessionStatus::Active,
        SessionStatus::Pending,
        SessionStatus::Analyzing,
        SessionStatus::Building,
        SessionStatus::Deploying,
        SessionStatus::Completed,
        SessionStatus::Failed,
        SessionStatus::Expired,
    ];

    /// The wire name (`active`, `pending`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "active",
            SessionStatus::Pending => "pending",
            SessionStatus::Analyzing => "analyzing",
            SessionStatus::Building => "building",
            SessionStatus::Deploying => "deploying",
            SessionStatus::Completed => "completed",
            SessionStatus::Failed => "failed",
            SessionStatus::Expired => "expired",
        }
    }

    /// Parses a wire name; the error lists the accepted values.
    pub fn parse(s: &str) -> Result<Self, SessionError> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| SessionError::Invalid {
                field: "status".into(),
                reason: format!(
                    "unknown status {s:?}; expected one of active, pending, analyzing, building, deploying, completed, failed, expired"
                ),
            })
    }

    /// True for statuses a session never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionStatus::Completed | SessionStatus::Failed | SessionStatus::Expired
        )
    }

    /// The status machine: any non-terminal status may move to any status; terminal
    /// statuses stay where they are (setting the same status again is allowed).
    pub fn can_move_to(self, to: SessionStatus) -> bool {
        self == to || !self.is_terminal()
    }
}

/// How far a session's work has come.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Index of the step being worked on (0 before any step).
    pub current_step: u32,
    /// Steps the work has in all (0 when unknown).
    pub total_steps: u32,
    /// 0..=100; derived from completed steps when `total_steps` is known.
    pub percentage: f64,
}

/// One error recorded against a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepError {
    /// Step name.
    pub step: String,
    /// What went wrong.
    pub message: String,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

/// The workflow-facing part of a session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowState {
    /// Step being worked on, if any.
    pub current_step: Option<String>,
    /// Steps finished, in completion order, without duplicates.
    pub completed_steps: Vec<String>,
    /// Result of each completed step.
    pub step_results: BTreeMap<String, Value>,
    /// Errors recorded against steps, oldest first.
    pub errors: Vec<StepError>,
}

/// A session: a persistent object a client or workflow works on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Unique id (uuid unless the creator chose one).
    pub id: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Time of the last write.
    pub updated_at: DateTime<Utc>,
    /// When the session expires unless written to or extended.
    pub expires_at: DateTime<Utc>,
    /// Idle time-to-live in seconds: each write moves `expires_at` to at least now + ttl.
    pub ttl_seconds: u64,
    /// Where the session is in its life.
    pub status: SessionStatus,
    /// Small string labels, usable as list filters.
    pub labels: BTreeMap<String, String>,
    /// Free-form JSON metadata (an object).
    pub metadata: serde_json::Map<String, Value>,
    /// Incremented by every write; a write that names a stale version is refused.
    pub version: u64,
    /// Free-form JSON configuration (an object).
    pub config: serde_json::Map<String, Value>,
    /// Progress counters.
    pub progress: Progress,
    /// Workflow state (current step, completed steps, results, errors).
    pub workflow_state: WorkflowState,
}

/// What a caller may set when creating a session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// Chosen id; a uuid is generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Initial status (default `active`).
    #[serde(default)]
    pub status: Option<SessionStatus>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Metadata (a JSON object).
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    /// Configuration (a JSON object).
    #[serde(default)]
    pub config: serde_json::Map<String, Value>,
    /// Idle TTL in seconds; the server's default when absent.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Total steps of the planned work.
    #[serde(default)]
    pub total_steps: Option<u32>,
}

/// A partial update: absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionPatch {
    /// New status (subject to the status machine).
    #[serde(default)]
    pub status: Option<SessionStatus>,
    /// Labels to set; a `null` value removes the label.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, Option<String>>>,
    /// Metadata keys to merge; a `null` value removes the key.
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// Configuration keys to merge; a `null` value removes the key.
    #[serde(default)]
    pub config: Option<serde_json::Map<String, Value>>,
    /// New total step count.
    #[serde(default)]
    pub total_steps: Option<u32>,
    /// New idle TTL in seconds.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// An atomic operation on one session. Stores apply it under their concurrency control,
/// so operations without an expected version never lose a concurrent write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum SessionOp {
    /// Merge a partial update.
    Patch(SessionPatch),
    /// Set the step being worked on.
    SetCurrentStep {
        /// Step name.
        step: String,
    },
    /// Mark a step completed, with its result.
    MarkStepCompleted {
        /// Step name.
        step: String,
        /// Step result (any JSON).
        #[serde(default)]
        result: Option<Value>,
    },
    /// Record an error against a step.
    AddStepError {
        /// Step name.
        step: String,
        /// What went wrong.
        message: String,
    },
    /// Finish the session: `completed`, or `failed` when `failed` is true.
    Complete {
        /// Finish as failed instead of completed.
        #[serde(default)]
        failed: bool,
    },
    /// Push the expiry time later.
    Extend {
        /// Seconds to add to the current expiry (counted from now if already past).
        seconds: u64,
    },
}

impl SessionOp {
    /// A short, bounded name for metrics.
    pub fn metric_name(&self) -> &'static str {
        match self {
            SessionOp::Patch(_) => "update",
            SessionOp::SetCurrentStep { .. } => "set_current_step",
            SessionOp::MarkStepCompleted { .. } => "mark_step_completed",
            SessionOp::AddStepError { .. } => "add_step_error",
            SessionOp::Complete { .. } => "complete",
            SessionOp::Extend { .. } => "extend",
        }
    }
}

/// Filters for listing sessions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFilter {
    /// Only sessions with this status.
    pub status: Option<SessionStatus>,
    /// Only sessions having every one of these labels with these values.
    pub labels: BTreeMap<String, String>,
    /// Only sessions whose id sorts after this one (paging cursor).
    pub after: Option<String>,
    /// At most this many (the store caps it at [`MAX_LIST_LIMIT`]).
    pub limit: usize,
}

/// Largest page a list returns.
pub const MAX_LIST_LIMIT: usize = 1000;
/// Page size when the caller gives none.
pub const DEFAULT_LIST_LIMIT: usize = 100;

impl SessionFilter {
    /// True when `s` passes the status and label filters (the cursor is the store's job).
    pub fn matches(&self, s: &Session) -> bool {
        self.status.is_none_or(|st| st == s.status)
            && self
                .labels
                .iter()
                .all(|(k, v)| s.labels.get(k).is_some_and(|have| have == v))
    }

    /// The effective page size.
    pub fn effective_limit(&self) -> usize {
        match self.limit {
            0 => DEFAULT_LIST_LIMIT,
            n => n.min(MAX_LIST_LIMIT),
        }
    }
}

/// Errors of session operations, each mapping to one HTTP status and one MCP tool error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    /// Bad input; names the field.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Offending field.
        field: String,
        /// Why it is refused.
        reason: String,
    },
    /// No such session (or it expired).
    #[error("session {0:?} not found")]
    NotFound(String),
    /// A session with this id exists already.
    #[error("session {0:?} already exists")]
    AlreadyExists(String),
    /// The caller's expected version is stale.
    #[error(
        "version conflict on session {id:?}: expected version {expected}, current version is {current}"
    )]
    Conflict {
        /// Session id.
        id: String,
        /// Version the caller named.
        expected: u64,
        /// Version stored.
        current: u64,
    },
    /// The status machine refuses the move.
    #[error("session {id:?} is {from} and cannot become {to}: {from} is terminal")]
    InvalidTransition {
        /// Session id.
        id: String,
        /// Current status.
        from: &'static str,
        /// Requested status.
        to: &'static str,
    },
    /// The live-session cap is reached.
    #[error("session table full: {max} live sessions is the configured maximum (maxSessions)")]
    Full {
        /// The cap.
        max: usize,
    },
    /// The server is draining and takes no new sessions.
    #[error("server is draining and accepts no new sessions")]
    Draining,
    /// The store failed (I/O, connection, corrupt record).
    #[error("session store error: {0}")]
    Store(String),
}

impl SessionError {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SessionError::Invalid { .. } => "invalid",
            SessionError::NotFound(_) => "not_found",
            SessionError::AlreadyExists(_) => "exists",
            SessionError::Conflict { .. } => "conflict",
            SessionError::InvalidTransition { .. } => "invalid_transition",
            SessionError::Full { .. } => "full",
            SessionError::Draining => "draining",
            SessionError::Store(_) => "store",
        }
    }

    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SessionError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A new time-ordered id (UUID version 7: millisecond timestamp, then random bits).
/// Time order keeps new and recently written sessions together in the store's B-tree, so a
/// commit touches few pages, and id order (used for listing) is creation order.
pub fn new_session_id(now: DateTime<Utc>) -> String {
    let random = uuid::Uuid::new_v4();
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&random.as_bytes()[6..16]);
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &tail)
        .into_uuid()
        .to_string()
}

/// Checks a session id: 1..=128 characters of `[A-Za-z0-9._:-]`.
pub fn validate_id(id: &str) -> Result<(), SessionError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(SessionError::invalid(
            "id",
            format!("must be 1 to {MAX_ID_LEN} characters"),
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(SessionError::invalid(
            "id",
            "may contain only letters, digits, '-', '_', '.' and ':'",
        ));
    }
    Ok(())
}

fn validate_step(field: &str, step: &str) -> Result<(), SessionError> {
    if step.is_empty() || step.len() > MAX_STEP_LEN {
        return Err(SessionError::invalid(
            field,
            format!("step name must be 1 to {MAX_STEP_LEN} characters"),
        ));
    }
    Ok(())
}

fn validate_label(key: &str, value: Option<&str>) -> Result<(), SessionError> {
    if key.is_empty() || key.len() > 63 {
        return Err(SessionError::invalid(
            format!("labels.{key}"),
            "label keys must be 1 to 63 characters",
        ));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
    {
        return Err(SessionError::invalid(
            format!("labels.{key}"),
            "label keys may contain only letters, digits, '-', '_', '.' and '/'",
        ));
    }
    if value.is_some_and(|v| v.len() > 256) {
        return Err(SessionError::invalid(
            format!("labels.{key}"),
            "label values must be at most 256 characters",
        ));
    }
    Ok(())
}

fn ttl_duration(field: &str, seconds: u64) -> Result<Duration, SessionError> {
    // Ten years bounds chrono arithmetic well inside its range.
    const MAX_TTL: u64 = 10 * 365 * 24 * 3600;
    if seconds == 0 || seconds > MAX_TTL {
        return Err(SessionError::invalid(
            field,
            format!("must be between 1 and {MAX_TTL} seconds"),
        ));
    }
    Ok(Duration::seconds(seconds as i64))
}

fn merge_object(
    target: &mut serde_json::Map<String, Value>,
    patch: &serde_json::Map<String, Value>,
) {
    for (k, v) in patch {
        if v.is_null() {
            target.remove(k);
        } else {
            target.insert(k.clone(), v.clone());
        }
    }
}

impl Session {
    /// Builds a new session from a create request, validating every field.
    pub fn create(
        new: NewSession,
        default_ttl: u64,
        now: DateTime<Utc>,
    ) -> Result<Self, SessionError> {
        let id = match new.id {
            Some(id) => {
                validate_id(&id)?;
                id
            }
            None => new_session_id(now),
        };
        if new.labels.len() > MAX_LABELS {
            return Err(SessionError::invalid(
                "labels",
                format!("at most {MAX_LABELS} labels"),
            ));
        }
        for (k, v) in &new.labels {
            validate_label(k, Some(v))?;
        }
        let ttl_seconds = new.ttl_seconds.unwrap_or(default_ttl);
        let ttl = ttl_duration("ttl_seconds", ttl_seconds)?;
        let total_steps = new.total_steps.unwrap_or(0);
        Ok(Session {
            id,
            created_at: now,
            updated_at: now,
            expires_at: now + ttl,
            ttl_seconds,
            status: new.status.unwrap_or(SessionStatus::Active),
            labels: new.labels,
            metadata: new.metadata,
            version: 1,
            config: new.config,
            progress: Progress {
                current_step: 0,
                total_steps,
                percentage: 0.0,
            },
            workflow_state: WorkflowState::default(),
        })
    }

    /// True when the session is past its expiry time at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }

    fn set_status(&mut self, to: SessionStatus) -> Result<(), SessionError> {
        if !self.status.can_move_to(to) {
            return Err(SessionError::InvalidTransition {
                id: self.id.clone(),
                from: self.status.as_str(),
                to: to.as_str(),
            });
        }
        self.status = to;
        Ok(())
    }

    fn recompute_percentage(&mut self) {
        let total = self.progress.total_steps;
        self.progress.percentage = if self.status == SessionStatus::Completed {
            100.0
        } else if total == 0 {
            0.0
        } else {
            let done = self
                .workflow_state
                .completed_steps
                .len()
                .min(total as usize);
            (done as f64 * 100.0 / total as f64 * 10.0).round() / 10.0
        };
    }

    /// Applies `op` at `now`: validates, changes the session, bumps `version` and
    /// `updated_at`, and slides `expires_at` to at least now + ttl (idle expiry).
    /// On error the session is unchanged.
    pub fn apply(&mut self, op: &SessionOp, now: DateTime<Utc>) -> Result<(), SessionError> {
        let mut next = self.clone();
        next.apply_inner(op, now)?;
        next.version = self.version + 1;
        next.updated_at = now;
        let idle_expiry = now + ttl_duration("ttl_seconds", next.ttl_seconds)?;
        if next.expires_at < idle_expiry {
            next.expires_at = idle_expiry;
        }
        next.recompute_percentage();
        *self = next;
        Ok(())
    }

    fn apply_inner(&mut self, op: &SessionOp, now: DateTime<Utc>) -> Result<(), SessionError> {
        match op {
            SessionOp::Patch(p) => {
                if let Some(st) = p.status {
                    self.set_status(st)?;
                }
                if let Some(labels) = &p.labels {
                    for (k, v) in labels {
                        validate_label(k, v.as_deref())?;
                        match v {
                            Some(v) => {
                                self.labels.insert(k.clone(), v.clone());
                            }
                            None => {
                                self.labels.remove(k);
                            }
                        }
                    }
                    if self.labels.len() > MAX_LABELS {
                        return Err(SessionError::invalid(
                            "labels",
                            format!("at most {MAX_LABELS} labels"),
                        ));
                    }
                }
                if let Some(m) = &p.metadata {
                    merge_object(&mut self.metadata, m);
                }
                if let Some(c) = &p.config {
                    merge_object(&mut self.config, c);
                }
                if let Some(t) = p.total_steps {
                    self.progress.total_steps = t;
                }
                if let Some(ttl) = p.ttl_seconds {
                    let d = ttl_duration("ttl_seconds", ttl)?;
                    self.ttl_seconds = ttl;
                    // A shorter TTL takes effect now, not only after the next write.
                    self.expires_at = now + d;
                }
            }
            SessionOp::SetCurrentStep { step } => {
                validate_step("step", step)?;
                self.ensure_not_terminal()?;
                self.workflow_state.current_step = Some(step.clone());
                self.progress.current_step = self.workflow_state.completed_steps.len() as u32 + 1;
            }
            SessionOp::MarkStepCompleted { step, result } => {
                validate_step("step", step)?;
                self.ensure_not_terminal()?;
                if !self
                    .workflow_state
                    .completed_steps
                    .iter()
                    .any(|s| s == step)
                {
                    self.workflow_state.completed_steps.push(step.clone());
                }
                if let Some(r) = result {
                    self.workflow_state
                        .step_results
                        .insert(step.clone(), r.clone());
                }
                if self.workflow_state.current_step.as_deref() == Some(step.as_str()) {
                    self.workflow_state.current_step = None;
                }
                self.progress.current_step = self.workflow_state.completed_steps.len() as u32;
            }
            SessionOp::AddStepError { step, message } => {
                validate_step("step", step)?;
                if message.is_empty() {
                    return Err(SessionError::invalid("message", "must not be empty"));
                }
                self.workflow_state.errors.push(StepError {
                    step: step.clone(),
                    message: message.clone(),
                    at: now,
                });
            }
            SessionOp::Complete { failed } => {
                let to = if *failed {
                    SessionStatus::Failed
                } else {
                    SessionStatus::Completed
                };
                self.set_status(to)?;
                self.workflow_state.current_step = None;
            }
            SessionOp::Extend { seconds } => {
                let d = ttl_duration("seconds", *seconds)?;
                let base = if self.expires_at > now {
                    self.expires_at
                } else {
                    now
                };
                self.expires_at = base + d;
            }
        }
        Ok(())
    }

    fn ensure_not_terminal(&self) -> Result<(), SessionError> {
        if self.status.is_terminal() {
            return Err(SessionError::InvalidTransition {
                id: self.id.clone(),
                from: self.status.as_str(),
                to: "a working step",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn session() -> Session {
        Session::create(
            NewSession {
                total_steps: Some(4),
                ..Default::default()
            },
            3600,
            now(),
        )
        .unwrap_or_else(|e| panic!("create failed: {e}"))
    }

    #[test]
    fn new_session_starts_active_at_version_one_with_ttl_expiry() {
        let s = session();
        assert_eq!(s.status, SessionStatus::Active);
        assert_eq!(s.version, 1);
        assert_eq!(s.expires_at, now() + Duration::seconds(3600));
        assert_eq!(s.id.len(), 36);
    }

    #[test]
    fn generated_ids_are_uuid_v7_in_creation_order() {
        let a = new_session_id(now());
        let b = new_session_id(now() + Duration::milliseconds(1));
        assert!(a < b, "{a} !< {b}");
        assert_eq!(
            uuid::Uuid::parse_str(&a).map(|u| u.get_version_num()).ok(),
            Some(7)
        );
    }

    #[test]
    fn create_rejects_bad_id_and_names_the_field() {
        let err = Session::create(
            NewSession {
                id: Some("bad id/with space".into()),
                ..Default::default()
            },
            60,
            now(),
        )
        .err();
        assert!(matches!(err, Some(SessionError::Invalid { ref field, .. }) if field == "id"));
    }

    #[test]
    fn every_write_bumps_version_and_slides_idle_expiry() {
        let mut s = session();
        let later = now() + Duration::seconds(1000);
        s.apply(
            &SessionOp::SetCurrentStep {
                step: "analyze".into(),
            },
            later,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.version, 2);
        assert_eq!(s.updated_at, later);
        assert_eq!(s.expires_at, later + Duration::seconds(3600));
        assert_eq!(s.workflow_state.current_step.as_deref(), Some("analyze"));
    }

    #[test]
    fn marking_steps_updates_progress_and_ignores_duplicates() {
        let mut s = session();
        for step in ["a", "b", "b"] {
            s.apply(
                &SessionOp::MarkStepCompleted {
                    step: step.into(),
                    result: Some(serde_json::json!({"ok": step})),
                },
                now(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(s.workflow_state.completed_steps, vec!["a", "b"]);
        assert_eq!(s.progress.current_step, 2);
        assert_eq!(s.progress.percentage, 50.0);
        assert_eq!(s.workflow_state.step_results.len(), 2);
    }

    #[test]
    fn terminal_status_refuses_new_status_and_leaves_session_unchanged() {
        let mut s = session();
        s.apply(&SessionOp::Complete { failed: false }, now())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.progress.percentage, 100.0);
        let before = s.clone();
        let err = s
            .apply(
                &SessionOp::Patch(SessionPatch {
                    status: Some(SessionStatus::Building),
                    ..Default::default()
                }),
                now(),
            )
            .err();
        assert!(matches!(err, Some(SessionError::InvalidTransition { .. })));
        assert_eq!(s, before);
    }

    #[test]
    fn patch_merges_labels_and_metadata_and_null_removes() {
        let mut s = session();
        let mut labels = BTreeMap::new();
        labels.insert("team".to_string(), Some("a".to_string()));
        let mut meta = serde_json::Map::new();
        meta.insert("x".into(), serde_json::json!(1));
        s.apply(
            &SessionOp::Patch(SessionPatch {
                labels: Some(labels),
                metadata: Some(meta),
                ..Default::default()
            }),
            now(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.labels.get("team").map(String::as_str), Some("a"));
        let mut labels = BTreeMap::new();
        labels.insert("team".to_string(), None);
        let mut meta = serde_json::Map::new();
        meta.insert("x".into(), Value::Null);
        s.apply(
            &SessionOp::Patch(SessionPatch {
                labels: Some(labels),
                metadata: Some(meta),
                ..Default::default()
            }),
            now(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.labels.is_empty());
        assert!(s.metadata.is_empty());
    }

    #[test]
    fn extend_adds_to_expiry() {
        let mut s = session();
        s.apply(&SessionOp::Extend { seconds: 7200 }, now())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.expires_at, now() + Duration::seconds(3600 + 7200));
    }

    #[test]
    fn ops_parse_from_tagged_json_and_reject_unknown_fields() {
        let op: SessionOp = serde_json::from_value(
            serde_json::json!({"op": "add_step_error", "step": "s", "message": "m"}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(op.metric_name(), "add_step_error");
        let bad = serde_json::from_value::<SessionOp>(
            serde_json::json!({"op": "extend", "seconds": 1, "x": 2}),
        );
        assert!(bad.is_err());
    }

    #[test]
    fn filter_matches_status_and_all_labels() {
        let mut s = session();
        s.labels.insert("a".into(), "1".into());
        let mut f = SessionFilter {
            status: Some(SessionStatus::Active),
            ..Default::default()
        };
        f.labels.insert("a".into(), "1".into());
        assert!(f.matches(&s));
        f.labels.insert("b".into(), "2".into());
        assert!(!f.matches(&s));
    }
}
