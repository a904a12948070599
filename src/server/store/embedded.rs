//! The embedded, durable session store: redb on local disk.
//!
//! Why redb: pure Rust (no C toolchain in the image), ACID with copy-on-write B-trees
//! (crash-safe without a WAL to replay), MVCC readers that never block the writer,
//! and actively maintained.
//!
//! Writes go through one writer thread that does *group commit*: it takes every
//! write waiting in its queue, applies them in order inside one write transaction,
//! commits with `Durability::Immediate` (fsync), and only then answers each caller.
//! Ordering inside the batch makes optimistic concurrency exact (a stale version is
//! seen as stale), and one fsync per batch instead of per write gives throughput
//! without ever acknowledging a write that is not on disk.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::{RunDoc, RunFilter, SessionStore, StoreConfig, StoreFuture, StoreResult};
use crate::server::sessions::{NewSession, Session, SessionError, SessionFilter, SessionOp};

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
/// Most writes folded into one transaction; bounds the latency of one batch.
const MAX_BATCH: usize = 512;

fn store_err(context: &str, e: impl std::fmt::Display) -> SessionError {
    SessionError::Store(format!("{context}: {e}"))
}

enum Cmd {
    Create(NewSession, oneshot::Sender<StoreResult<Session>>),
    Update(
        String,
        Option<u64>,
        SessionOp,
        oneshot::Sender<StoreResult<Session>>,
    ),
    Delete(String, Option<u64>, oneshot::Sender<StoreResult<()>>),
    PutRun(Box<RunDoc>, oneshot::Sender<StoreResult<()>>),
    Sweep(oneshot::Sender<StoreResult<usize>>),
    Shutdown(oneshot::Sender<StoreResult<()>>),
}

/// An answer computed inside a batch, sent only after the batch commits.
enum Reply {
    Session(
        oneshot::Sender<StoreResult<Session>>,
        Box<StoreResult<Session>>,
    ),
    Unit(oneshot::Sender<StoreResult<()>>, StoreResult<()>),
    Count(oneshot::Sender<StoreResult<usize>>, StoreResult<usize>),
}

impl Reply {
    fn send(self) {
        // A caller that went away (timeout, disconnect) no longer needs the answer.
        match self {
            Reply::Session(tx, r) => drop(tx.send(*r)),
            Reply::Unit(tx, r) => drop(tx.send(r)),
            Reply::Count(tx, r) => drop(tx.send(r)),
        }
    }

    fn fail(self, e: SessionError) {
        match self {
            Reply::Session(tx, _) => drop(tx.send(Err(e))),
            Reply::Unit(tx, _) => drop(tx.send(Err(e))),
            Reply::Count(tx, _) => drop(tx.send(Err(e))),
        }
    }
}

/// In-memory expiry and retention indexes, owned by the writer thread and rebuilt from
/// disk at start (so expiry sweeps never scan the table).
#[derive(Default)]
struct Index {
    session_expiry: HashMap<String, i64>,
    sessions_by_expiry: BTreeSet<(i64, String)>,
    run_start: HashMap<String, i64>,
    runs_by_start: BTreeSet<(i64, String)>,
}

impl Index {
    fn set_session(&mut self, id: &str, expires_ms: i64) {
        if let Some(old) = self.session_expiry.insert(id.to_string(), expires_ms) {
            self.sessions_by_expiry.remove(&(old, id.to_string()));
        }
        self.sessions_by_expiry.insert((expires_ms, id.to_string()));
    }

    fn remove_session(&mut self, id: &str) {
        if let Some(old) = self.session_expiry.remove(id) {
            self.sessions_by_expiry.remove(&(old, id.to_string()));
        }
    }

    fn set_run(&mut self, id: &str, start_ms: i64) {
        if let Some(old) = self.run_start.insert(id.to_string(), start_ms) {
            self.runs_by_start.remove(&(old, id.to_string()));
        }
        self.runs_by_start.insert((start_ms, id.to_string()));
    }

    /// True when some session expired at or before `now_ms`.
    fn any_expired(&self, now_ms: i64) -> bool {
        self.sessions_by_expiry
            .first()
            .is_some_and(|(expires, _)| *expires <= now_ms)
    }

    fn expired_ids(&self, now_ms: i64) -> Vec<String> {
        self.sessions_by_expiry
            .range(..(now_ms + 1, String::new()))
            .map(|(_, id)| id.clone())
            .collect()
    }

    fn load(db: &Database) -> Result<Self, redb::Error> {
        let mut index = Index::default();
        let txn = db.begin_read()?;
        let sessions = txn.open_table(SESSIONS)?;
        for row in sessions.iter()? {
            let (k, v) = row?;
            // A record that no longer parses gets expiry 0 so the first sweep removes it.
            let expires = serde_json::from_slice::<ExpiryOnly>(v.value())
                .map(|e| e.expires_at.timestamp_millis())
                .unwrap_or(0);
            index.set_session(k.value(), expires);
        }
        let runs = txn.open_table(RUNS)?;
        for row in runs.iter()? {
            let (k, v) = row?;
            let start = serde_json::from_slice::<StartOnly>(v.value())
                .map(|e| e.started_at.timestamp_millis())
                .unwrap_or(0);
            index.set_run(k.value(), start);
        }
        Ok(index)
    }
}

#[derive(serde::Deserialize)]
struct ExpiryOnly {
    expires_at: DateTime<Utc>,
}

#[derive(serde::Deserialize)]
struct StartOnly {
    started_at: DateTime<Utc>,
}

/// The redb-backed [`SessionStore`].
pub struct EmbeddedStore {
    db: Arc<Database>,
    tx: mpsc::Sender<Cmd>,
    count: Arc<AtomicUsize>,
    config: StoreConfig,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir` (file `sessions.redb`) and starts its writer.
    pub fn open(dir: &Path, config: StoreConfig) -> StoreResult<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| store_err(&format!("create data dir {}", dir.display()), e))?;
        let path = dir.join("sessions.redb");
        let db = redb::Builder::new()
            .set_cache_size(config.cache_bytes)
            .create(&path)
            .map_err(|e| store_err(&format!("open {}", path.display()), e))?;
        let init = || -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            txn.open_table(SESSIONS)?;
            txn.open_table(RUNS)?;
            txn.commit()?;
            Ok(())
        };
        init().map_err(|e| store_err("create tables", e))?;
        let index = Index::load(&db).map_err(|e| store_err("load index", e))?;
        let count = Arc::new(AtomicUsize::new(index.session_expiry.len()));
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            index,
            count: count.clone(),
            config: config.clone(),
        };
        std::thread::Builder::new()
            .name("jsmcp-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| store_err("start writer thread", e))?;
        Ok(EmbeddedStore {
            db,
            tx,
            count,
            config,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Cmd,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .map_err(|_| SessionError::Store("store is closed".into()))?;
        rx.await
            .map_err(|_| SessionError::Store("store writer stopped".into()))?
    }

    fn read_session(&self, id: &str) -> StoreResult<Session> {
        let now = (self.config.clock)();
        let txn = self.db.begin_read().map_err(|e| store_err("read", e))?;
        let table = txn.open_table(SESSIONS).map_err(|e| store_err("read", e))?;
        let Some(raw) = table.get(id).map_err(|e| store_err("read", e))? else {
            return Err(SessionError::NotFound(id.to_string()));
        };
        let s: Session = serde_json::from_slice(raw.value())
            .map_err(|e| store_err(&format!("corrupt session record {id:?}"), e))?;
        if s.is_expired(now) {
            return Err(SessionError::NotFound(id.to_string()));
        }
        Ok(s)
    }

    fn list_blocking(
        db: &Database,
        filter: &SessionFilter,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Session>> {
        let limit = filter.effective_limit();
        let txn = db.begin_read().map_err(|e| store_err("list", e))?;
        let table = txn.open_table(SESSIONS).map_err(|e| store_err("list", e))?;
        let iter = match &filter.after {
            Some(after) => table.range::<&str>((
                std::ops::Bound::Excluded(after.as_str()),
                std::ops::Bound::Unbounded,
            )),
            None => table.range::<&str>(..),
        }
        .map_err(|e| store_err("list", e))?;
        let mut out = Vec::new();
        for row in iter {
            let (_, v) = row.map_err(|e| store_err("list", e))?;
            let Ok(s) = serde_json::from_slice::<Session>(v.value()) else {
                continue;
            };
            if !s.is_expired(now) && filter.matches(&s) {
                out.push(s);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn get_run_blocking(&self, id: &str) -> StoreResult<Option<RunDoc>> {
        let txn = self.db.begin_read().map_err(|e| store_err("read run", e))?;
        let table = txn.open_table(RUNS).map_err(|e| store_err("read run", e))?;
        let Some(raw) = table.get(id).map_err(|e| store_err("read run", e))? else {
            return Ok(None);
        };
        serde_json::from_slice(raw.value())
            .map(Some)
            .map_err(|e| store_err(&format!("corrupt run record {id:?}"), e))
    }

    fn list_runs_blocking(db: &Database, filter: &RunFilter) -> StoreResult<Vec<RunDoc>> {
        let txn = db.begin_read().map_err(|e| store_err("list runs", e))?;
        let table = txn
            .open_table(RUNS)
            .map_err(|e| store_err("list runs", e))?;
        let mut runs = Vec::new();
        for row in table.iter().map_err(|e| store_err("list runs", e))? {
            let (_, v) = row.map_err(|e| store_err("list runs", e))?;
            if let Ok(run) = serde_json::from_slice::<RunDoc>(v.value())
                && filter.matches(&run)
            {
                runs.push(run);
            }
        }
        runs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        runs.truncate(filter.effective_limit());
        Ok(runs)
    }
}

impl SessionStore for EmbeddedStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn create(&self, new: NewSession) -> StoreFuture<'_, Session> {
        Box::pin(self.call(|tx| Cmd::Create(new, tx)))
    }

    fn get(&self, id: String) -> StoreFuture<'_, Session> {
        // A point read in redb is a few microseconds: cheaper inline than a thread hop.
        Box::pin(async move { self.read_session(&id) })
    }

    fn update(
        &self,
        id: String,
        expected_version: Option<u64>,
        op: SessionOp,
    ) -> StoreFuture<'_, Session> {
        Box::pin(self.call(move |tx| Cmd::Update(id, expected_version, op, tx)))
    }

    fn delete(&self, id: String, expected_version: Option<u64>) -> StoreFuture<'_, ()> {
        Box::pin(self.call(move |tx| Cmd::Delete(id, expected_version, tx)))
    }

    fn list(&self, filter: SessionFilter) -> StoreFuture<'_, Vec<Session>> {
        let db = self.db.clone();
        let now = (self.config.clock)();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Self::list_blocking(&db, &filter, now))
                .await
                .map_err(|e| store_err("list task", e))?
        })
    }

    fn count(&self) -> StoreFuture<'_, usize> {
        let n = self.count.load(Ordering::Relaxed);
        Box::pin(async move { Ok(n) })
    }

    fn sweep_expired(&self) -> StoreFuture<'_, usize> {
        Box::pin(self.call(Cmd::Sweep))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let txn = self.db.begin_read().map_err(|e| store_err("ping", e))?;
            txn.open_table(SESSIONS).map_err(|e| store_err("ping", e))?;
            Ok(())
        })
    }

    fn put_run(&self, run: RunDoc) -> StoreFuture<'_, ()> {
        Box::pin(self.call(move |tx| Cmd::PutRun(Box::new(run), tx)))
    }

    fn get_run(&self, id: String) -> StoreFuture<'_, Option<RunDoc>> {
        Box::pin(async move { self.get_run_blocking(&id) })
    }

    fn list_runs(&self, filter: RunFilter) -> StoreFuture<'_, Vec<RunDoc>> {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Self::list_runs_blocking(&db, &filter))
                .await
                .map_err(|e| store_err("list runs task", e))?
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            match self.call(Cmd::Shutdown).await {
                // Closing twice is fine: the writer is already gone.
                Err(SessionError::Store(_)) | Ok(()) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

/// The single writer: owns the indexes and does group commit.
struct Writer {
    db: Arc<Database>,
    index: Index,
    count: Arc<AtomicUsize>,
    config: StoreConfig,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        let mut shutdown: Option<oneshot::Sender<StoreResult<()>>> = None;
        while shutdown.is_none() {
            let Ok(first) = rx.recv() else { break };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            // Writes queued before the shutdown request are committed; later ones fail.
            if let Some(pos) = batch.iter().position(|c| matches!(c, Cmd::Shutdown(_))) {
                for late in batch.drain(pos + 1..) {
                    Self::refuse(late);
                }
                if let Some(Cmd::Shutdown(tx)) = batch.pop() {
                    shutdown = Some(tx);
                }
            }
            let now_ms = (self.config.clock)().timestamp_millis();
            let only_sweeps = !batch.is_empty() && batch.iter().all(|c| matches!(c, Cmd::Sweep(_)));
            if only_sweeps && !self.index.any_expired(now_ms) {
                // Nothing to expire: no write transaction, so an idle server does no fsync.
                for cmd in batch {
                    if let Cmd::Sweep(tx) = cmd {
                        let _ = tx.send(Ok(0));
                    }
                }
                continue;
            }
            if !batch.is_empty() {
                self.commit_batch(batch);
            }
        }
        drop(rx);
        // Release the database before answering, so a caller that drops the store right
        // after `close` can reopen the file at once (redb holds an exclusive file lock).
        drop(self);
        if let Some(tx) = shutdown {
            drop(tx.send(Ok(())));
        }
    }

    fn refuse(cmd: Cmd) {
        let e = || SessionError::Store("store is closed".into());
        match cmd {
            Cmd::Create(_, tx) | Cmd::Update(_, _, _, tx) => drop(tx.send(Err(e()))),
            Cmd::Delete(_, _, tx) | Cmd::PutRun(_, tx) | Cmd::Shutdown(tx) => {
                drop(tx.send(Err(e())))
            }
            Cmd::Sweep(tx) => drop(tx.send(Err(e()))),
        }
    }

    fn commit_batch(&mut self, batch: Vec<Cmd>) {
        let mut replies = Vec::with_capacity(batch.len());
        let result = (|| -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            {
                let mut sessions = txn.open_table(SESSIONS)?;
                let mut runs = txn.open_table(RUNS)?;
                let now = (self.config.clock)();
                for cmd in batch {
                    replies.push(self.apply(cmd, &mut sessions, &mut runs, now)?);
                }
            }
            txn.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.count
                    .store(self.index.session_expiry.len(), Ordering::Relaxed);
                for r in replies {
                    r.send();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "session store commit failed");
                // The index may hold changes that did not commit: rebuild it from disk.
                match Index::load(&self.db) {
                    Ok(index) => self.index = index,
                    Err(e) => tracing::error!(error = %e, "session store index reload failed"),
                }
                self.count
                    .store(self.index.session_expiry.len(), Ordering::Relaxed);
                for r in replies {
                    r.fail(store_err("commit", &e));
                }
            }
        }
    }

    fn apply(
        &mut self,
        cmd: Cmd,
        sessions: &mut redb::Table<&str, &[u8]>,
        runs: &mut redb::Table<&str, &[u8]>,
        now: DateTime<Utc>,
    ) -> Result<Reply, redb::Error> {
        Ok(match cmd {
            Cmd::Create(new, tx) => {
                let r = self.create(new, sessions, now)?;
                Reply::Session(tx, Box::new(r))
            }
            Cmd::Update(id, expected, op, tx) => {
                let r = self.update(&id, expected, &op, sessions, now)?;
                Reply::Session(tx, Box::new(r))
            }
            Cmd::Delete(id, expected, tx) => {
                let r = self.delete(&id, expected, sessions, now)?;
                Reply::Unit(tx, r)
            }
            Cmd::PutRun(run, tx) => {
                let r = self.put_run(*run, runs)?;
                Reply::Unit(tx, r)
            }
            Cmd::Sweep(tx) => {
                let n = self.sweep(sessions, now)?;
                Reply::Count(tx, Ok(n))
            }
            Cmd::Shutdown(tx) => Reply::Unit(tx, Ok(())),
        })
    }

    fn load(
        sessions: &redb::Table<&str, &[u8]>,
        id: &str,
    ) -> Result<Option<StoreResult<Session>>, redb::Error> {
        Ok(sessions.get(id)?.map(|raw| {
            serde_json::from_slice::<Session>(raw.value())
                .map_err(|e| store_err(&format!("corrupt session record {id:?}"), e))
        }))
    }

    fn save(
        &mut self,
        sessions: &mut redb::Table<&str, &[u8]>,
        s: &Session,
    ) -> Result<StoreResult<()>, redb::Error> {
        let bytes = match serde_json::to_vec(s) {
            Ok(b) => b,
            Err(e) => return Ok(Err(store_err("encode session", e))),
        };
        sessions.insert(s.id.as_str(), bytes.as_slice())?;
        self.index
            .set_session(&s.id, s.expires_at.timestamp_millis());
        Ok(Ok(()))
    }

    fn create(
        &mut self,
        new: NewSession,
        sessions: &mut redb::Table<&str, &[u8]>,
        now: DateTime<Utc>,
    ) -> Result<StoreResult<Session>, redb::Error> {
        let s = match Session::create(new, self.config.default_ttl_seconds, now) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(existing) = Self::load(sessions, &s.id)? {
            match existing {
                Ok(old) if !old.is_expired(now) => {
                    return Ok(Err(SessionError::AlreadyExists(s.id)));
                }
                // An expired or unreadable record under the same id is replaced.
                _ => {
                    sessions.remove(s.id.as_str())?;
                    self.index.remove_session(&s.id);
                }
            }
        }
        if self.index.session_expiry.len() >= self.config.max_sessions {
            self.sweep(sessions, now)?;
            if self.index.session_expiry.len() >= self.config.max_sessions {
                return Ok(Err(SessionError::Full {
                    max: self.config.max_sessions,
                }));
            }
        }
        Ok(self.save(sessions, &s)?.map(|()| s))
    }

    fn update(
        &mut self,
        id: &str,
        expected: Option<u64>,
        op: &SessionOp,
        sessions: &mut redb::Table<&str, &[u8]>,
        now: DateTime<Utc>,
    ) -> Result<StoreResult<Session>, redb::Error> {
        let mut s = match Self::load(sessions, id)? {
            None => return Ok(Err(SessionError::NotFound(id.to_string()))),
            Some(Err(e)) => return Ok(Err(e)),
            Some(Ok(s)) if s.is_expired(now) => {
                return Ok(Err(SessionError::NotFound(id.to_string())));
            }
            Some(Ok(s)) => s,
        };
        if let Some(v) = expected
            && v != s.version
        {
            return Ok(Err(SessionError::Conflict {
                id: id.to_string(),
                expected: v,
                current: s.version,
            }));
        }
        if let Err(e) = s.apply(op, now) {
            return Ok(Err(e));
        }
        Ok(self.save(sessions, &s)?.map(|()| s))
    }

    fn delete(
        &mut self,
        id: &str,
        expected: Option<u64>,
        sessions: &mut redb::Table<&str, &[u8]>,
        now: DateTime<Utc>,
    ) -> Result<StoreResult<()>, redb::Error> {
        match Self::load(sessions, id)? {
            None => return Ok(Err(SessionError::NotFound(id.to_string()))),
            Some(Ok(s)) if s.is_expired(now) => {
                return Ok(Err(SessionError::NotFound(id.to_string())));
            }
            Some(Ok(s)) => {
                if let Some(v) = expected
                    && v != s.version
                {
                    return Ok(Err(SessionError::Conflict {
                        id: id.to_string(),
                        expected: v,
                        current: s.version,
                    }));
                }
            }
            // An unreadable record can still be deleted.
            Some(Err(_)) => {}
        }
        sessions.remove(id)?;
        self.index.remove_session(id);
        Ok(Ok(()))
    }

    fn sweep(
        &mut self,
        sessions: &mut redb::Table<&str, &[u8]>,
        now: DateTime<Utc>,
    ) -> Result<usize, redb::Error> {
        let expired = self.index.expired_ids(now.timestamp_millis());
        for id in &expired {
            sessions.remove(id.as_str())?;
            self.index.remove_session(id);
        }
        Ok(expired.len())
    }

    fn put_run(
        &mut self,
        run: RunDoc,
        runs: &mut redb::Table<&str, &[u8]>,
    ) -> Result<StoreResult<()>, redb::Error> {
        let bytes = match serde_json::to_vec(&run) {
            Ok(b) => b,
            Err(e) => return Ok(Err(store_err("encode run", e))),
        };
        runs.insert(run.id.as_str(), bytes.as_slice())?;
        self.index
            .set_run(&run.id, run.started_at.timestamp_millis());
        while self.index.run_start.len() > self.config.max_runs {
            let Some((start, oldest)) = self.index.runs_by_start.pop_first() else {
                break;
            };
            let _ = start;
            self.index.run_start.remove(&oldest);
            runs.remove(oldest.as_str())?;
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::sessions::{SessionPatch, SessionStatus};
    use std::sync::Mutex;

    struct ManualClock(Mutex<DateTime<Utc>>);

    impl ManualClock {
        fn new() -> Arc<Self> {
            Arc::new(ManualClock(Mutex::new(Utc::now())))
        }
        fn advance(&self, secs: i64) {
            if let Ok(mut t) = self.0.lock() {
                *t += chrono::Duration::seconds(secs);
            }
        }
        fn clock(self: &Arc<Self>) -> super::super::Clock {
            let me = self.clone();
            Arc::new(move || me.0.lock().map(|t| *t).unwrap_or_else(|_| Utc::now()))
        }
    }

    fn open(dir: &Path, max: usize, clock: super::super::Clock) -> EmbeddedStore {
        EmbeddedStore::open(
            dir,
            StoreConfig {
                max_sessions: max,
                default_ttl_seconds: 60,
                max_runs: 3,
                clock,
                ..StoreConfig::default()
            },
        )
        .unwrap_or_else(|e| panic!("open: {e}"))
    }

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    #[tokio::test]
    async fn sessions_survive_close_and_reopen() {
        let dir = tmp();
        let clock = ManualClock::new();
        let id;
        {
            let store = open(dir.path(), 10, clock.clock());
            let s = store
                .create(NewSession::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            id = s.id.clone();
            store
                .update(
                    id.clone(),
                    Some(1),
                    SessionOp::MarkStepCompleted {
                        step: "analyze".into(),
                        result: None,
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            store.close().await.unwrap_or_else(|e| panic!("{e}"));
        }
        let store = open(dir.path(), 10, clock.clock());
        let s = store.get(id).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.version, 2);
        assert_eq!(s.workflow_state.completed_steps, vec!["analyze"]);
        assert_eq!(store.count().await.unwrap_or(0), 1);
    }

    #[tokio::test]
    async fn stale_version_update_is_refused_and_changes_nothing() {
        let dir = tmp();
        let store = open(dir.path(), 10, ManualClock::new().clock());
        let s = store
            .create(NewSession::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let op = SessionOp::Patch(SessionPatch {
            status: Some(SessionStatus::Building),
            ..Default::default()
        });
        store
            .update(s.id.clone(), Some(1), op.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let err = store.update(s.id.clone(), Some(1), op).await.err();
        assert!(matches!(
            err,
            Some(SessionError::Conflict {
                expected: 1,
                current: 2,
                ..
            })
        ));
        let after = store.get(s.id).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after.version, 2);
    }

    #[tokio::test]
    async fn concurrent_unversioned_ops_are_all_applied() {
        let dir = tmp();
        let store = Arc::new(open(dir.path(), 10, ManualClock::new().clock()));
        let s = store
            .create(NewSession::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut tasks = Vec::new();
        for i in 0..50 {
            let store = store.clone();
            let id = s.id.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .update(
                        id,
                        None,
                        SessionOp::MarkStepCompleted {
                            step: format!("step-{i}"),
                            result: None,
                        },
                    )
                    .await
            }));
        }
        for t in tasks {
            t.await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let after = store.get(s.id).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after.workflow_state.completed_steps.len(), 50);
        assert_eq!(after.version, 51);
    }

    #[tokio::test]
    async fn full_table_refuses_create_until_sessions_expire() {
        let dir = tmp();
        let clock = ManualClock::new();
        let store = open(dir.path(), 2, clock.clock());
        for _ in 0..2 {
            store
                .create(NewSession::default())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let err = store.create(NewSession::default()).await.err();
        assert_eq!(err, Some(SessionError::Full { max: 2 }));
        clock.advance(61);
        store
            .create(NewSession::default())
            .await
            .unwrap_or_else(|e| panic!("create after expiry: {e}"));
        assert_eq!(store.count().await.unwrap_or(0), 1);
    }

    #[tokio::test]
    async fn expired_sessions_are_not_found_and_sweep_removes_them() {
        let dir = tmp();
        let clock = ManualClock::new();
        let store = open(dir.path(), 10, clock.clock());
        let short = store
            .create(NewSession {
                ttl_seconds: Some(10),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let long = store
            .create(NewSession::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        clock.advance(11);
        assert!(matches!(
            store.get(short.id.clone()).await,
            Err(SessionError::NotFound(_))
        ));
        assert_eq!(store.sweep_expired().await.unwrap_or(0), 1);
        assert_eq!(store.count().await.unwrap_or(0), 1);
        assert!(store.get(long.id).await.is_ok());
    }

    #[tokio::test]
    async fn a_sweep_with_nothing_expired_opens_no_write_transaction() {
        let dir = tmp();
        let clock = ManualClock::new();
        let store = open(dir.path(), 10, clock.clock());
        store
            .create(NewSession::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Hold redb's single write transaction: a sweep that opened one would wait on it.
        let held = store.db.begin_write().unwrap_or_else(|e| panic!("{e}"));
        let limit = std::time::Duration::from_secs(5);
        let swept = tokio::time::timeout(limit, store.sweep_expired()).await;
        assert!(
            matches!(swept, Ok(Ok(0))),
            "an idle sweep must not write: {swept:?}"
        );
        held.abort().unwrap_or_else(|e| panic!("{e}"));
        // With something expired, the sweep does write.
        clock.advance(86_401);
        assert_eq!(store.sweep_expired().await.unwrap_or(0), 1);
    }

    #[tokio::test]
    async fn list_filters_by_status_and_label_and_pages_by_id() {
        let dir = tmp();
        let store = open(dir.path(), 100, ManualClock::new().clock());
        for i in 0..6 {
            let mut labels = std::collections::BTreeMap::new();
            labels.insert(
                "team".to_string(),
                if i % 2 == 0 { "a" } else { "b" }.to_string(),
            );
            store
                .create(NewSession {
                    id: Some(format!("s{i}")),
                    labels,
                    status: Some(if i < 3 {
                        SessionStatus::Active
                    } else {
                        SessionStatus::Building
                    }),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut f = SessionFilter::default();
        f.labels.insert("team".into(), "a".into());
        let ids: Vec<_> = store
            .list(f.clone())
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, vec!["s0", "s2", "s4"]);
        f.status = Some(SessionStatus::Building);
        let ids: Vec<_> = store
            .list(f)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, vec!["s4"]);
        let page = store
            .list(SessionFilter {
                after: Some("s1".into()),
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap_or_default();
        assert_eq!(
            page.into_iter().map(|s| s.id).collect::<Vec<_>>(),
            vec!["s2", "s3"]
        );
    }

    #[tokio::test]
    async fn duplicate_id_and_missing_session_errors() {
        let dir = tmp();
        let store = open(dir.path(), 10, ManualClock::new().clock());
        let new = NewSession {
            id: Some("fixed".into()),
            ..Default::default()
        };
        store
            .create(new.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.create(new).await.err(),
            Some(SessionError::AlreadyExists("fixed".into()))
        );
        assert_eq!(
            store.delete("nope".into(), None).await.err(),
            Some(SessionError::NotFound("nope".into()))
        );
        assert_eq!(
            store.delete("fixed".into(), Some(7)).await.err(),
            Some(SessionError::Conflict {
                id: "fixed".into(),
                expected: 7,
                current: 1
            })
        );
        store
            .delete("fixed".into(), Some(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.count().await.unwrap_or(9), 0);
    }

    #[tokio::test]
    async fn runs_are_kept_newest_first_within_retention() {
        let dir = tmp();
        let store = open(dir.path(), 10, ManualClock::new().clock());
        let base = Utc::now();
        for i in 0..5 {
            store
                .put_run(RunDoc {
                    id: format!("r{i}"),
                    workflow_id: "wf".into(),
                    session_id: Some("s".into()),
                    status: "completed".into(),
                    started_at: base + chrono::Duration::seconds(i),
                    record: serde_json::json!({"i": i}),
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let runs = store
            .list_runs(RunFilter::default())
            .await
            .unwrap_or_default();
        assert_eq!(
            runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["r4", "r3", "r2"]
        );
        assert!(store.get_run("r0".into()).await.unwrap_or(None).is_none());
        assert_eq!(
            store
                .get_run("r4".into())
                .await
                .unwrap_or(None)
                .map(|r| r.record),
            Some(serde_json::json!({"i": 4}))
        );
    }

    #[tokio::test]
    async fn writes_after_close_fail_cleanly() {
        let dir = tmp();
        let store = open(dir.path(), 10, ManualClock::new().clock());
        store.close().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            store.create(NewSession::default()).await,
            Err(SessionError::Store(_))
        ));
        assert!(store.close().await.is_ok());
    }
}
