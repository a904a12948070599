//! The Redis session store against a real `redis-server` started on a free loopback port.

mod server_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use js_mcp::server::sessions::{
    NewSession, SessionError, SessionFilter, SessionOp, SessionPatch, SessionStatus,
};
use js_mcp::server::store::redis::RedisStore;
use js_mcp::server::store::{Clock, RunDoc, RunFilter, SessionStore, StoreConfig};
use server_support::RedisServer;

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
    fn clock(self: &Arc<Self>) -> Clock {
        let me = self.clone();
        Arc::new(move || me.0.lock().map(|t| *t).unwrap_or_else(|_| Utc::now()))
    }
}

async fn store(redis: &RedisServer, max: usize, clock: Clock) -> RedisStore {
    RedisStore::connect(
        &redis.url,
        "test:",
        StoreConfig {
            max_sessions: max,
            default_ttl_seconds: 60,
            max_runs: 3,
            clock,
            ..StoreConfig::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("connect: {e}"))
}

#[tokio::test]
async fn two_stores_sharing_redis_see_each_others_sessions() {
    let redis = RedisServer::start();
    let clock = ManualClock::new();
    let a = store(&redis, 100, clock.clock()).await;
    let b = store(&redis, 100, clock.clock()).await;
    let s = a
        .create(NewSession::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = b.get(s.id.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seen, s);
    b.update(
        s.id.clone(),
        Some(1),
        SessionOp::SetCurrentStep {
            step: "build".into(),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let back = a.get(s.id.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.version, 2);
    assert_eq!(back.workflow_state.current_step.as_deref(), Some("build"));
    assert_eq!(b.count().await.unwrap_or(0), 1);
    a.delete(s.id.clone(), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        b.get(s.id).await.err().map(|e| e.metric_label()),
        Some("not_found")
    );
}

#[tokio::test]
async fn stale_version_is_refused_across_replicas() {
    let redis = RedisServer::start();
    let clock = ManualClock::new();
    let a = store(&redis, 100, clock.clock()).await;
    let b = store(&redis, 100, clock.clock()).await;
    let s = a
        .create(NewSession::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let op = SessionOp::Patch(SessionPatch {
        status: Some(SessionStatus::Analyzing),
        ..Default::default()
    });
    a.update(s.id.clone(), Some(1), op.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let err = b.update(s.id.clone(), Some(1), op).await.err();
    assert_eq!(
        err,
        Some(SessionError::Conflict {
            id: s.id.clone(),
            expected: 1,
            current: 2
        })
    );
    let err = b.delete(s.id.clone(), Some(1)).await.err();
    assert!(matches!(
        err,
        Some(SessionError::Conflict { current: 2, .. })
    ));
}

#[tokio::test]
async fn concurrent_unversioned_updates_from_two_replicas_lose_nothing() {
    let redis = RedisServer::start();
    let clock = ManualClock::new();
    let a = Arc::new(store(&redis, 100, clock.clock()).await);
    let b = Arc::new(store(&redis, 100, clock.clock()).await);
    let s = a
        .create(NewSession::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let st: Arc<RedisStore> = if i % 2 == 0 { a.clone() } else { b.clone() };
        let id = s.id.clone();
        tasks.push(tokio::spawn(async move {
            st.update(
                id,
                None,
                SessionOp::MarkStepCompleted {
                    step: format!("s{i}"),
                    result: Some(serde_json::json!(i)),
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
    let after = a.get(s.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after.workflow_state.completed_steps.len(), 40);
    assert_eq!(after.version, 41);
}

#[tokio::test]
async fn full_table_refuses_create_and_expired_sessions_free_room() {
    let redis = RedisServer::start();
    let clock = ManualClock::new();
    let st = store(&redis, 2, clock.clock()).await;
    for _ in 0..2 {
        st.create(NewSession::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        st.create(NewSession::default()).await.err(),
        Some(SessionError::Full { max: 2 })
    );
    clock.advance(61);
    st.create(NewSession::default())
        .await
        .unwrap_or_else(|e| panic!("create after expiry: {e}"));
    assert_eq!(st.count().await.unwrap_or(0), 1);
}

#[tokio::test]
async fn sweep_removes_only_expired_sessions() {
    let redis = RedisServer::start();
    let clock = ManualClock::new();
    let st = store(&redis, 100, clock.clock()).await;
    let short = st
        .create(NewSession {
            ttl_seconds: Some(5),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let long = st
        .create(NewSession::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    clock.advance(6);
    assert!(matches!(
        st.get(short.id).await,
        Err(SessionError::NotFound(_))
    ));
    assert_eq!(st.sweep_expired().await.unwrap_or(0), 1);
    assert_eq!(st.count().await.unwrap_or(0), 1);
    assert!(st.get(long.id).await.is_ok());
}

#[tokio::test]
async fn list_filters_and_pages_in_id_order() {
    let redis = RedisServer::start();
    let st = store(&redis, 1000, ManualClock::new().clock()).await;
    for i in 0..300 {
        let mut labels = BTreeMap::new();
        labels.insert(
            "parity".to_string(),
            if i % 2 == 0 { "even" } else { "odd" }.to_string(),
        );
        st.create(NewSession {
            id: Some(format!("id{i:04}")),
            labels,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut f = SessionFilter {
        limit: 200,
        ..Default::default()
    };
    f.labels.insert("parity".into(), "odd".into());
    let odd = st.list(f).await.unwrap_or_default();
    assert_eq!(odd.len(), 150);
    assert!(odd.iter().all(|s| s.labels["parity"] == "odd"));
    assert!(odd.windows(2).all(|w| w[0].id < w[1].id));
    let page = st
        .list(SessionFilter {
            after: Some("id0297".into()),
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    assert_eq!(
        page.into_iter().map(|s| s.id).collect::<Vec<_>>(),
        vec!["id0298", "id0299"]
    );
}

#[tokio::test]
async fn runs_are_stored_listed_newest_first_and_trimmed() {
    let redis = RedisServer::start();
    let st = store(&redis, 10, ManualClock::new().clock()).await;
    let base = Utc::now();
    for i in 0..5 {
        st.put_run(RunDoc {
            id: format!("r{i}"),
            workflow_id: if i == 4 { "other" } else { "wf" }.into(),
            session_id: None,
            status: "completed".into(),
            started_at: base + chrono::Duration::seconds(i),
            record: serde_json::json!({"n": i}),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let all = st.list_runs(RunFilter::default()).await.unwrap_or_default();
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["r4", "r3", "r2"]
    );
    let wf = st
        .list_runs(RunFilter {
            workflow_id: Some("wf".into()),
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    assert_eq!(wf.len(), 2);
    assert!(st.get_run("r0".into()).await.unwrap_or(None).is_none());
    assert_eq!(
        st.get_run("r3".into())
            .await
            .unwrap_or(None)
            .map(|r| r.record),
        Some(serde_json::json!({"n": 3}))
    );
}

#[tokio::test]
async fn unreachable_redis_is_a_clear_store_error() {
    let port = server_support::free_port();
    let err = RedisStore::connect(
        &format!("redis://127.0.0.1:{port}/"),
        "x:",
        StoreConfig::default(),
    )
    .await
    .err();
    assert!(
        matches!(err, Some(SessionError::Store(ref m)) if m.contains("redis")),
        "{err:?}"
    );
}
