//! The [`SessionStore`] trait and its two implementations: [`embedded`] (redb on local disk,
//! the default) and [`redis`] (shared by replicas). Workflow run records live here too.

pub mod embedded;
pub mod redis;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::sessions::{NewSession, Session, SessionError, SessionFilter, SessionOp};

/// Result of a store call.
pub type StoreResult<T> = Result<T, SessionError>;
/// Future returned by store calls (boxed so the trait stays object-safe).
pub type StoreFuture<'a, T> = BoxFuture<'a, StoreResult<T>>;

/// Source of "now"; tests substitute a manual clock to exercise expiry without sleeping.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Limits shared by both stores.
#[derive(Clone)]
pub struct StoreConfig {
    /// Most live sessions; creating one more fails with [`SessionError::Full`].
    pub max_sessions: usize,
    /// Idle TTL (seconds) of sessions created without one.
    pub default_ttl_seconds: u64,
    /// Most run records kept; the oldest are dropped past it.
    pub max_runs: usize,
    /// Memory for the embedded store's page cache; colder pages are read from the file
    /// (the OS page cache), so RSS stays bounded however many sessions are stored.
    pub cache_bytes: usize,
    /// Time source.
    pub clock: Clock,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("max_sessions", &self.max_sessions)
            .field("default_ttl_seconds", &self.default_ttl_seconds)
            .field("max_runs", &self.max_runs)
            .field("cache_bytes", &self.cache_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_sessions: 100_000,
            default_ttl_seconds: 24 * 3600,
            max_runs: 10_000,
            cache_bytes: 16 * 1024 * 1024,
            clock: system_clock(),
        }
    }
}

/// A stored workflow run: indexed fields plus the engine's full record as JSON, so the
/// store does not depend on the workflow engine's types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDoc {
    /// Run id.
    pub id: String,
    /// Workflow id.
    pub workflow_id: String,
    /// Session the run works on, if any.
    pub session_id: Option<String>,
    /// Status name (`running`, `completed`, `failed`, `partial`, `cancelled`).
    pub status: String,
    /// Start time (orders runs for listing and retention).
    pub started_at: DateTime<Utc>,
    /// The engine's record (serde form of `RunRecord`).
    pub record: serde_json::Value,
}

/// Filters for listing runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs of this session.
    pub session_id: Option<String>,
    /// Only runs of this workflow.
    pub workflow_id: Option<String>,
    /// At most this many, newest first (capped at 1000; 0 means 100).
    pub limit: usize,
}

impl RunFilter {
    /// True when `run` passes the filters.
    pub fn matches(&self, run: &RunDoc) -> bool {
        self.session_id
            .as_ref()
            .is_none_or(|s| run.session_id.as_ref() == Some(s))
            && self
                .workflow_id
                .as_ref()
                .is_none_or(|w| &run.workflow_id == w)
    }

    /// The effective page size.
    pub fn effective_limit(&self) -> usize {
        match self.limit {
            0 => 100,
            n => n.min(1000),
        }
    }
}

/// Where sessions and run records live. Every write is atomic and durable when its
/// future resolves with `Ok`; a write naming a stale `expected_version` fails with
/// [`SessionError::Conflict`] and changes nothing.
pub trait SessionStore: Send + Sync + 'static {
    /// `embedded` or `redis` (for status and metrics).
    fn kind(&self) -> &'static str;
    /// Creates a session; fails with `Full` at the cap and `AlreadyExists` on a taken id.
    fn create(&self, new: NewSession) -> StoreFuture<'_, Session>;
    /// Reads a live session; expired sessions are `NotFound`.
    fn get(&self, id: String) -> StoreFuture<'_, Session>;
    /// Applies `op` atomically. With `expected_version`, refuses when it is stale; without,
    /// the op is applied to whatever is current (never losing a concurrent write).
    fn update(
        &self,
        id: String,
        expected_version: Option<u64>,
        op: SessionOp,
    ) -> StoreFuture<'_, Session>;
    /// Deletes a session (optionally only at `expected_version`).
    fn delete(&self, id: String, expected_version: Option<u64>) -> StoreFuture<'_, ()>;
    /// Lists live sessions in id order, after `filter.after`, matching the filters.
    fn list(&self, filter: SessionFilter) -> StoreFuture<'_, Vec<Session>>;
    /// Number of sessions held (live ones plus expired ones not yet swept).
    fn count(&self) -> StoreFuture<'_, usize>;
    /// Deletes expired sessions; returns how many.
    fn sweep_expired(&self) -> StoreFuture<'_, usize>;
    /// Checks the store answers.
    fn ping(&self) -> StoreFuture<'_, ()>;
    /// Inserts or replaces a run record.
    fn put_run(&self, run: RunDoc) -> StoreFuture<'_, ()>;
    /// Reads a run record.
    fn get_run(&self, id: String) -> StoreFuture<'_, Option<RunDoc>>;
    /// Lists run records, newest first.
    fn list_runs(&self, filter: RunFilter) -> StoreFuture<'_, Vec<RunDoc>>;
    /// Flushes and stops accepting writes (graceful shutdown).
    fn close(&self) -> StoreFuture<'_, ()>;
}
