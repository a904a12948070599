//! The Redis session store, so several replicas share sessions.
//!
//! Layout under a key prefix (default `jsmcp:`):
//! - `{p}s:{id}`: hash `v` (version), `e` (expiry, ms since epoch), `d` (session JSON);
//!   Redis expires the key at `e` as a garbage-collection backstop.
//! - `{p}ids`: sorted set of ids, all score 0, for paging in id order (`ZRANGEBYLEX`).
//! - `{p}exp`: sorted set of ids scored by expiry, for counting and sweeping.
//! - `{p}r:{id}`: run record JSON; `{p}runs`: run ids scored by start time.
//!
//! Every write is one Lua script, so it is atomic. Updates are optimistic: read, apply
//! the op in Rust, then a compare-and-set script writes only if the version is still the
//! one read. A caller's stale `expected_version` is a conflict; an op without one retries
//! on a concurrent write, so no write is ever lost. Durability follows the Redis server's
//! persistence settings (use `appendonly yes` with `appendfsync everysec` or `always`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::{RunDoc, RunFilter, SessionStore, StoreConfig, StoreFuture, StoreResult};
use crate::server::sessions::{NewSession, Session, SessionError, SessionFilter, SessionOp};

/// Most compare-and-set retries of one unversioned update before giving up.
const MAX_CAS_RETRIES: usize = 100;
/// Ids fetched per page while listing.
const LIST_PAGE: usize = 256;

const CREATE_LUA: &str = r#"
-- KEYS: session key, ids, exp. ARGV: id, json, expires_ms, now_ms, max, prefix
local now = tonumber(ARGV[4])
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(e) > now then return {-1, 0} end
local swept = 0
if e then
  redis.call('DEL', KEYS[1]); redis.call('ZREM', KEYS[2], ARGV[1]); redis.call('ZREM', KEYS[3], ARGV[1])
end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then
  local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
  for _, id in ipairs(old) do
    redis.call('DEL', ARGV[6] .. 's:' .. id); redis.call('ZREM', KEYS[2], id); redis.call('ZREM', KEYS[3], id)
    swept = swept + 1
  end
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return {-2, swept} end
end
redis.call('HSET', KEYS[1], 'v', '1', 'e', ARGV[3], 'd', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return {0, swept}
"#;

const CAS_LUA: &str = r#"
-- KEYS: session key, exp. ARGV: read_version, new_version, json, expires_ms, id, now_ms
local cur = redis.call('HMGET', KEYS[1], 'v', 'e')
if not cur[1] or tonumber(cur[2]) <= tonumber(ARGV[6]) then return {-1, 0} end
if cur[1] ~= ARGV[1] then return {-2, tonumber(cur[1])} end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'e', ARGV[4], 'd', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return {0, tonumber(ARGV[2])}
"#;

const DELETE_LUA: &str = r#"
-- KEYS: session key, ids, exp. ARGV: expected_version or '', id, now_ms
local cur = redis.call('HMGET', KEYS[1], 'v', 'e')
if not cur[1] or tonumber(cur[2]) <= tonumber(ARGV[3]) then return {-1, 0} end
if ARGV[1] ~= '' and cur[1] ~= ARGV[1] then return {-2, tonumber(cur[1])} end
redis.call('DEL', KEYS[1]); redis.call('ZREM', KEYS[2], ARGV[2]); redis.call('ZREM', KEYS[3], ARGV[2])
return {0, 0}
"#;

const SWEEP_LUA: &str = r#"
-- KEYS: ids, exp. ARGV: now_ms, prefix. Removes at most 1000 per call.
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1000)
for _, id in ipairs(old) do
  redis.call('DEL', ARGV[2] .. 's:' .. id); redis.call('ZREM', KEYS[1], id); redis.call('ZREM', KEYS[2], id)
end
return #old
"#;

const PUT_RUN_LUA: &str = r#"
-- KEYS: run key, runs. ARGV: json, started_ms, id, max_runs, prefix
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if extra > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], extra)
  for i = 1, #old, 2 do redis.call('DEL', ARGV[5] .. 'r:' .. old[i]) end
end
return 0
"#;

fn redis_err(context: &str, e: impl std::fmt::Display) -> SessionError {
    SessionError::Store(format!("redis {context}: {e}"))
}

/// The Redis-backed [`SessionStore`].
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    config: StoreConfig,
    create: Script,
    cas: Script,
    delete: Script,
    sweep: Script,
    put_run: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`) and checks the server answers.
    /// Keys are namespaced by `prefix` so several deployments can share one Redis.
    pub async fn connect(url: &str, prefix: &str, config: StoreConfig) -> StoreResult<Self> {
        let client = redis::Client::open(url).map_err(|e| SessionError::Invalid {
            field: "redisUrl".into(),
            reason: e.to_string(),
        })?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(5))
            .set_response_timeout(Duration::from_secs(5))
            .set_number_of_retries(3);
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            ConnectionManager::new_with_config(client, cfg),
        )
        .await
        .map_err(|_| SessionError::Store(format!("redis connect to {url}: timed out")))?
        .map_err(|e| redis_err("connect", e))?;
        let store = RedisStore {
            conn,
            prefix: prefix.to_string(),
            config,
            create: Script::new(CREATE_LUA),
            cas: Script::new(CAS_LUA),
            delete: Script::new(DELETE_LUA),
            sweep: Script::new(SWEEP_LUA),
            put_run: Script::new(PUT_RUN_LUA),
        };
        store.ping().await?;
        Ok(store)
    }

    fn skey(&self, id: &str) -> String {
        format!("{}s:{id}", self.prefix)
    }
    fn ids_key(&self) -> String {
        format!("{}ids", self.prefix)
    }
    fn exp_key(&self) -> String {
        format!("{}exp", self.prefix)
    }
    fn rkey(&self, id: &str) -> String {
        format!("{}r:{id}", self.prefix)
    }
    fn runs_key(&self) -> String {
        format!("{}runs", self.prefix)
    }

    fn now(&self) -> DateTime<Utc> {
        (self.config.clock)()
    }

    fn decode(id: &str, raw: &[u8]) -> StoreResult<Session> {
        serde_json::from_slice(raw)
            .map_err(|e| SessionError::Store(format!("corrupt session record {id:?}: {e}")))
    }

    async fn read(&self, id: &str) -> StoreResult<Session> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = conn
            .hget(self.skey(id), "d")
            .await
            .map_err(|e| redis_err("get", e))?;
        let Some(raw) = raw else {
            return Err(SessionError::NotFound(id.to_string()));
        };
        let s = Self::decode(id, &raw)?;
        if s.is_expired(self.now()) {
            return Err(SessionError::NotFound(id.to_string()));
        }
        Ok(s)
    }

    async fn do_create(&self, new: NewSession) -> StoreResult<Session> {
        let now = self.now();
        let s = Session::create(new, self.config.default_ttl_seconds, now)?;
        let json = serde_json::to_string(&s).map_err(|e| redis_err("encode", e))?;
        let mut conn = self.conn.clone();
        let (code, _swept): (i64, i64) = self
            .create
            .key(self.skey(&s.id))
            .key(self.ids_key())
            .key(self.exp_key())
            .arg(&s.id)
            .arg(json)
            .arg(s.expires_at.timestamp_millis())
            .arg(now.timestamp_millis())
            .arg(self.config.max_sessions)
            .arg(&self.prefix)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_err("create", e))?;
        match code {
            0 => Ok(s),
            -1 => Err(SessionError::AlreadyExists(s.id)),
            _ => Err(SessionError::Full {
                max: self.config.max_sessions,
            }),
        }
    }

    async fn do_update(
        &self,
        id: String,
        expected: Option<u64>,
        op: SessionOp,
    ) -> StoreResult<Session> {
        for _ in 0..MAX_CAS_RETRIES {
            let mut s = self.read(&id).await?;
            if let Some(v) = expected
                && v != s.version
            {
                return Err(SessionError::Conflict {
                    id,
                    expected: v,
                    current: s.version,
                });
            }
            let read_version = s.version;
            let now = self.now();
            s.apply(&op, now)?;
            let json = serde_json::to_string(&s).map_err(|e| redis_err("encode", e))?;
            let mut conn = self.conn.clone();
            let (code, current): (i64, i64) = self
                .cas
                .key(self.skey(&id))
                .key(self.exp_key())
                .arg(read_version)
                .arg(s.version)
                .arg(json)
                .arg(s.expires_at.timestamp_millis())
                .arg(&id)
                .arg(now.timestamp_millis())
                .invoke_async(&mut conn)
                .await
                .map_err(|e| redis_err("update", e))?;
            match code {
                0 => return Ok(s),
                -1 => return Err(SessionError::NotFound(id)),
                _ => {
                    if let Some(v) = expected {
                        return Err(SessionError::Conflict {
                            id,
                            expected: v,
                            current: current.max(0) as u64,
                        });
                    }
                    // Someone wrote between our read and our write: read again.
                }
            }
        }
        Err(SessionError::Store(format!(
            "update of session {id:?} kept conflicting with concurrent writes ({MAX_CAS_RETRIES} tries)"
        )))
    }

    async fn do_delete(&self, id: String, expected: Option<u64>) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let (code, current): (i64, i64) = self
            .delete
            .key(self.skey(&id))
            .key(self.ids_key())
            .key(self.exp_key())
            .arg(expected.map(|v| v.to_string()).unwrap_or_default())
            .arg(&id)
            .arg(self.now().timestamp_millis())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_err("delete", e))?;
        match code {
            0 => Ok(()),
            -1 => Err(SessionError::NotFound(id)),
            _ => Err(SessionError::Conflict {
                id,
                expected: expected.unwrap_or(0),
                current: current.max(0) as u64,
            }),
        }
    }

    async fn do_list(&self, filter: SessionFilter) -> StoreResult<Vec<Session>> {
        let limit = filter.effective_limit();
        let now = self.now();
        let mut conn = self.conn.clone();
        let mut cursor = match &filter.after {
            Some(a) => format!("({a}"),
            None => "-".to_string(),
        };
        let mut out = Vec::new();
        loop {
            let ids: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(self.ids_key())
                .arg(&cursor)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(LIST_PAGE)
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_err("list", e))?;
            if ids.is_empty() {
                break;
            }
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.hget(self.skey(id), "d");
            }
            let docs: Vec<Option<Vec<u8>>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_err("list", e))?;
            for (id, doc) in ids.iter().zip(docs) {
                let Some(doc) = doc else { continue };
                let Ok(s) = Self::decode(id, &doc) else {
                    continue;
                };
                if !s.is_expired(now) && filter.matches(&s) {
                    out.push(s);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            let full_page = ids.len() == LIST_PAGE;
            if let Some(last) = ids.last() {
                cursor = format!("({last}");
            }
            if !full_page {
                break;
            }
        }
        Ok(out)
    }

    async fn do_sweep(&self) -> StoreResult<usize> {
        let mut total = 0usize;
        let mut conn = self.conn.clone();
        loop {
            let n: i64 = self
                .sweep
                .key(self.ids_key())
                .key(self.exp_key())
                .arg(self.now().timestamp_millis())
                .arg(&self.prefix)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| redis_err("sweep", e))?;
            total += n.max(0) as usize;
            if n < 1000 {
                return Ok(total);
            }
        }
    }

    async fn do_put_run(&self, run: RunDoc) -> StoreResult<()> {
        let json = serde_json::to_string(&run).map_err(|e| redis_err("encode run", e))?;
        let mut conn = self.conn.clone();
        let _: i64 = self
            .put_run
            .key(self.rkey(&run.id))
            .key(self.runs_key())
            .arg(json)
            .arg(run.started_at.timestamp_millis())
            .arg(&run.id)
            .arg(self.config.max_runs)
            .arg(&self.prefix)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_err("put run", e))?;
        Ok(())
    }

    async fn do_get_run(&self, id: String) -> StoreResult<Option<RunDoc>> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = conn
            .get(self.rkey(&id))
            .await
            .map_err(|e| redis_err("get run", e))?;
        raw.map(|r| {
            serde_json::from_slice(&r)
                .map_err(|e| SessionError::Store(format!("corrupt run record {id:?}: {e}")))
        })
        .transpose()
    }

    async fn do_list_runs(&self, filter: RunFilter) -> StoreResult<Vec<RunDoc>> {
        let limit = filter.effective_limit();
        let mut conn = self.conn.clone();
        let mut out = Vec::new();
        let mut start = 0isize;
        loop {
            let ids: Vec<String> = conn
                .zrevrange(self.runs_key(), start, start + LIST_PAGE as isize - 1)
                .await
                .map_err(|e| redis_err("list runs", e))?;
            if ids.is_empty() {
                break;
            }
            let keys: Vec<String> = ids.iter().map(|id| self.rkey(id)).collect();
            let docs: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_err("list runs", e))?;
            for doc in docs.into_iter().flatten() {
                if let Ok(run) = serde_json::from_slice::<RunDoc>(&doc)
                    && filter.matches(&run)
                {
                    out.push(run);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            if ids.len() < LIST_PAGE {
                break;
            }
            start += LIST_PAGE as isize;
        }
        Ok(out)
    }
}

impl SessionStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn create(&self, new: NewSession) -> StoreFuture<'_, Session> {
        Box::pin(self.do_create(new))
    }

    fn get(&self, id: String) -> StoreFuture<'_, Session> {
        Box::pin(async move { self.read(&id).await })
    }

    fn update(
        &self,
        id: String,
        expected_version: Option<u64>,
        op: SessionOp,
    ) -> StoreFuture<'_, Session> {
        Box::pin(self.do_update(id, expected_version, op))
    }

    fn delete(&self, id: String, expected_version: Option<u64>) -> StoreFuture<'_, ()> {
        Box::pin(self.do_delete(id, expected_version))
    }

    fn list(&self, filter: SessionFilter) -> StoreFuture<'_, Vec<Session>> {
        Box::pin(self.do_list(filter))
    }

    fn count(&self) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let n: usize = conn
                .zcard(self.exp_key())
                .await
                .map_err(|e| redis_err("count", e))?;
            Ok(n)
        })
    }

    fn sweep_expired(&self) -> StoreFuture<'_, usize> {
        Box::pin(self.do_sweep())
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let pong: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_err("ping", e))?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(SessionError::Store(format!("redis ping answered {pong:?}")))
            }
        })
    }

    fn put_run(&self, run: RunDoc) -> StoreFuture<'_, ()> {
        Box::pin(self.do_put_run(run))
    }

    fn get_run(&self, id: String) -> StoreFuture<'_, Option<RunDoc>> {
        Box::pin(self.do_get_run(id))
    }

    fn list_runs(&self, filter: RunFilter) -> StoreFuture<'_, Vec<RunDoc>> {
        Box::pin(self.do_list_runs(filter))
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        // Every acknowledged write already reached Redis; nothing is buffered here.
        Box::pin(async { Ok(()) })
    }
}
