//! Workflow engine throughput: 3-step workflow runs per second end to end through
//! `Engine::start` + `RunHandle::wait` (lookup, parameter mapping, conditions, events, run
//! record), on a 2-worker tokio runtime like the server's.
//!
//! `cargo bench --bench workflows` (optional: `BENCH_SECS=5` per scenario). Target:
//! ≥ 5,000 runs/s for the 3-step workflow.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use js_mcp::server::workflows::{
    Catalog, DefinitionFormat, Engine, RunEvent, RunInput, RunStatus, StepDeps, WorkflowDefinition,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const CHAIN: &str = r#"
id: chain3
name: three steps in a chain
steps:
  - name: analyze
    tool: set
    params: {n: '${params.n}', lang: '${params.lang ?? "rust"}'}
  - name: generate
    tool: transform
    dependsOn: [analyze]
    condition: outputs.analyze.n >= 0
    params: {op: template, template: 'FROM ${outputs.analyze.lang}:latest # ${outputs.analyze.n}'}
  - name: report
    tool: echo
    dependsOn: [generate]
    params: {dockerfile: '${outputs.generate}', n: '${outputs.analyze.n}'}
"#;

const FAN: &str = r#"
id: fan3
name: two parallel steps and a join
steps:
  - {name: a, tool: set, params: {x: '${params.n}'}}
  - {name: b, tool: set, params: {y: '${session.labels.env}'}}
  - {name: join, tool: transform, dependsOn: [a, b], params: {op: merge, values: ['${outputs.a}', '${outputs.b}']}}
"#;

fn input(workflow: &str, n: u64) -> RunInput {
    RunInput {
        workflow_id: workflow.into(),
        session_id: Some("bench-session".into()),
        session_state: json!({"labels": {"env": "prod"}}),
        params: json!({"n": n}),
    }
}

struct Measurement {
    runs: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// `concurrency` drivers each start a run, wait for it, and repeat until time is up.
async fn measure(
    engine: &Engine,
    workflow: &'static str,
    concurrency: usize,
    secs: u64,
    with_events: bool,
) -> anyhow::Result<Measurement> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let counter = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut drivers = Vec::new();
    for _ in 0..concurrency {
        let engine = engine.clone();
        let counter = counter.clone();
        let events = events.clone();
        drivers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let sink: Arc<dyn Fn(RunEvent) + Send + Sync> = if with_events {
                    let events = events.clone();
                    Arc::new(move |_e| {
                        events.fetch_add(1, Ordering::Relaxed);
                    })
                } else {
                    Arc::new(|_| {})
                };
                let handle = engine.start(input(workflow, n), CancellationToken::new(), sink)?;
                let record = handle.wait().await;
                if record.status != RunStatus::Completed {
                    anyhow::bail!("run failed: {record:?}");
                }
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for d in drivers {
        all.extend(d.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok(Measurement {
        runs: all.len() as u64,
        elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    })
}

fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let defs = [CHAIN, FAN]
            .iter()
            .map(|y| {
                WorkflowDefinition::parse(y, DefinitionFormat::Yaml).map_err(anyhow::Error::msg)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let catalog = Catalog::from_definitions(defs, "bench")
            .map_err(|e| anyhow::anyhow!("invalid bench workflows: {e:?}"))?;
        let engine = Engine::new(
            Arc::new(catalog),
            StepDeps {
                http: Default::default(),
                docker: None,
                ai: None,
            },
        );
        // Warm up allocator and runtime.
        measure(&engine, "chain3", 8, 1, false).await?;

        println!("workflow engine, 3-step runs end to end ({secs}s per scenario, 2 tokio workers)");
        println!(
            "{:<44} {:>10} {:>12} {:>10} {:>10}",
            "scenario", "runs", "runs/s", "p50", "p99"
        );
        let scenarios: [(&str, &'static str, usize, bool); 5] = [
            ("chain3, 1 run at a time", "chain3", 1, false),
            ("chain3, 64 concurrent", "chain3", 64, false),
            ("chain3, 64 concurrent, event callback", "chain3", 64, true),
            ("fan3 (2 parallel + join), 64 concurrent", "fan3", 64, false),
            ("chain3, 512 concurrent", "chain3", 512, false),
        ];
        for (label, workflow, concurrency, events) in scenarios {
            let r = measure(&engine, workflow, concurrency, secs, events).await?;
            println!(
                "{:<44} {:>10} {:>12.0} {:>8.1}µs {:>8.1}µs",
                label,
                r.runs,
                r.runs as f64 / r.elapsed.as_secs_f64(),
                r.p50.as_secs_f64() * 1e6,
                r.p99.as_secs_f64() * 1e6,
            );
        }
        anyhow::Ok(())
    })
}
