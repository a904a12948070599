//! In-process throughput of the embedded session store (no HTTP): concurrent tasks each
//! cycling create -> get -> update -> delete, to separate store cost from HTTP cost.
//! Run: `cargo bench --bench server_store [-- --secs N --tasks N]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use js_mcp::server::sessions::{NewSession, SessionOp};
use js_mcp::server::store::embedded::EmbeddedStore;
use js_mcp::server::store::{SessionStore, StoreConfig};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let secs = arg("--secs", 5);
    let tasks = arg("--tasks", 64) as usize;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Arc::new(
            EmbeddedStore::open(dir.path(), StoreConfig::default()).unwrap_or_else(|e| panic!("{e}")),
        );
        let deadline = Instant::now() + Duration::from_secs(secs);
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let mut ops = 0u64;
                let mut lat = Vec::new();
                // Bounded by time and by a per-task cap.
                while Instant::now() < deadline && ops < 2_000_000 {
                    let t = Instant::now();
                    let Ok(s) = store.create(NewSession::default()).await else { break };
                    let _ = store.get(s.id.clone()).await;
                    let _ = store
                        .update(
                            s.id.clone(),
                            Some(s.version),
                            SessionOp::MarkStepCompleted { step: "build".into(), result: None },
                        )
                        .await;
                    let _ = store.delete(s.id, None).await;
                    lat.push(t.elapsed().as_micros() as u64);
                    ops += 4;
                }
                (ops, lat)
            }));
        }
        let mut total = 0u64;
        let mut lat = Vec::new();
        for h in handles {
            if let Ok((o, l)) = h.await {
                total += o;
                lat.extend(l);
            }
        }
        lat.sort_unstable();
        let p = |q: f64| lat.get(((lat.len().max(1) - 1) as f64 * q) as usize).copied().unwrap_or(0) as f64 / 1000.0;
        let el = start.elapsed().as_secs_f64();
        println!(
            "embedded store: {:.0} ops/s ({tasks} tasks, {el:.1} s); cycle of 4 ops p50 {:.2} ms p99 {:.2} ms",
            total as f64 / el,
            p(0.5),
            p(0.99)
        );
        let _ = store.close().await;
    });
}
