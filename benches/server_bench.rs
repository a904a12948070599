//! Load benchmark of `js-mcp serve` over real HTTP on loopback, in one run beside its
//! ceilings: a bare axum endpoint, a bare rmcp server with one trivial tool, and a minimal
//! server on the official TypeScript SDK. The load generator is a closed loop of hyper
//! HTTP/1.1 connections (TCP_NODELAY), bounded by time and request count.
//!
//! Run: `cargo bench --bench server_bench` (options after `--`, see `Options`).
//! Every server runs as its own process so RSS is measured per server; the generator shares
//! the machine's cores with the server under test, as a co-located client would.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The same allocator as the `js-mcp` binary, so the bare axum and rmcp ceilings (children
/// of this binary) differ from js-mcp only in what the servers do.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// ---------------------------------------------------------------------------------------------
// Options.

struct Options {
    /// Seconds per scenario.
    secs: u64,
    /// Connections for the spread scenarios.
    conns: usize,
    /// Hard cap on requests per scenario (keeps every loop bounded).
    max_requests: u64,
    /// Sessions created for the memory measurement.
    sessions_for_memory: usize,
    /// Skip the TypeScript SDK comparison.
    skip_ts: bool,
    /// Where to write the JSON results.
    out: PathBuf,
    /// Drive an already running js-mcp at this address with one scenario (for profiling).
    addr: Option<SocketAddr>,
    /// The scenario for `--addr`: session-ops, tools-call (one session per connection),
    /// tools-call-1 (all connections on one session), session-get (the session tool of the
    /// TypeScript comparison), init-delete, workflows.
    only: String,
}

impl Options {
    fn parse() -> Options {
        let mut o = Options {
            secs: 5,
            conns: 64,
            max_requests: 5_000_000,
            sessions_for_memory: 100_000,
            skip_ts: false,
            out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/server-bench.json"),
            addr: None,
            only: "session-ops".into(),
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let val = args.get(i + 1).cloned().unwrap_or_default();
            match args[i].as_str() {
                "--secs" => o.secs = val.parse().unwrap_or(o.secs),
                "--conns" => o.conns = val.parse().unwrap_or(o.conns),
                "--sessions" => {
                    o.sessions_for_memory = val.parse().unwrap_or(o.sessions_for_memory)
                }
                "--out" => o.out = PathBuf::from(val),
                "--addr" => o.addr = val.parse().ok(),
                "--only" => o.only = val,
                "--skip-ts" => {
                    o.skip_ts = true;
                    i += 1;
                    continue;
                }
                // cargo bench passes --bench; ignore anything unknown.
                _ => {
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        o
    }
}

// ---------------------------------------------------------------------------------------------
// Child servers.

/// A server process, killed on drop.
struct Proc {
    child: Child,
    addr: SocketAddr,
    name: &'static str,
}

impl Proc {
    /// A `/proc/PID/status` field in bytes (`VmRSS`, `RssAnon`, `RssFile`).
    fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }

    fn rss_bytes(&self) -> u64 {
        self.status_bytes("VmRSS")
    }

    /// "12.3 MiB (private 1.4, file-backed code 10.9)".
    fn rss_report(&self) -> String {
        format!(
            "{:.1} MiB (private {:.1}, file-backed {:.1})",
            mib(self.rss_bytes()),
            mib(self.status_bytes("RssAnon")),
            mib(self.status_bytes("RssFile"))
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

async fn wait_up(addr: SocketAddr, path: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut c) = Conn::connect(addr).await
            && let Ok((st, _, _)) = c.send(Method::GET, path, &[], Bytes::new()).await
            && st.as_u16() < 500
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn spawn(name: &'static str, mut cmd: Command, probe: &str, port: u16) -> Proc {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let p = Proc {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        name,
    };
    if !wait_up(p.addr, probe).await {
        panic!("{name} did not come up on {}", p.addr);
    }
    p
}

/// How long a started js-mcp is left before its idle RSS is read: startup is over once the
/// server has given back its startup-only code pages (2 s after listening).
const SETTLE: Duration = Duration::from_secs(3);

/// Long enough for the first periodic expiry sweep (every 30 s by default) to have run.
const AFTER_FIRST_SWEEP: Duration = Duration::from_secs(33);

/// Lets a fresh server settle for `wait`, then probes it as a kubelet would (`/health`,
/// `/ready`), so "idle" includes the code a probed pod keeps mapped.
async fn settle_and_probe(addr: SocketAddr, wait: Duration) {
    tokio::time::sleep(wait).await;
    if let Ok(mut c) = Conn::connect(addr).await {
        for path in ["/health", "/ready"] {
            let _ = c.send(Method::GET, path, &[], Bytes::new()).await;
        }
    }
}

async fn start_js_mcp(data: &Path, extra: &[&str]) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_js-mcp"));
    cmd.args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(extra)
        .env("JSMCP_DATA_DIR", data)
        .env("RUST_LOG", "error");
    spawn("js-mcp", cmd, "/health", port).await
}

async fn start_child(mode: &'static str) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(std::env::current_exe().unwrap_or_default());
    cmd.args(["--child", mode, &port.to_string()]);
    spawn(
        mode,
        cmd,
        if mode == "bare-axum" {
            "/ping"
        } else {
            "/health"
        },
        port,
    )
    .await
}

async fn start_ts() -> Option<Proc> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    if !dir.join("node_modules/@modelcontextprotocol/sdk").exists() {
        eprintln!(
            "TypeScript SDK not installed (run .ci/setup-server.sh); skipping the TS comparison"
        );
        return None;
    }
    let port = free_port();
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .args(["ts_server.mjs", &port.to_string()]);
    Some(spawn("ts-sdk", cmd, "/mcp", port).await)
}

// ---------------------------------------------------------------------------------------------
// The child modes: a bare axum endpoint and a bare rmcp server.

mod bare {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    use rmcp::{ServerHandler, tool, tool_handler, tool_router};
    use std::sync::Arc;

    /// One trivial tool, nothing else.
    #[derive(Clone)]
    pub struct Bare;

    #[tool_router]
    impl Bare {
        #[tool(description = "Answers pong")]
        async fn ping(&self) -> String {
            "{\"pong\":true}".to_string()
        }
    }

    #[tool_handler]
    impl ServerHandler for Bare {}

    pub fn rmcp_router() -> axum::Router {
        let svc = StreamableHttpService::new(
            || Ok(Bare),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        axum::Router::new()
            .route_service("/mcp", svc)
            .route("/health", axum::routing::get(|| async { "ok" }))
    }
}

fn run_child(mode: &str, port: &str) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    rt.block_on(async move {
        let router = match mode {
            "bare-axum" => {
                axum::Router::new().route("/ping", axum::routing::get(|| async { "ok" }))
            }
            _ => bare::rmcp_router(),
        };
        let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|t| {
            let _ = t.set_nodelay(true);
        });
        let _ = axum::serve(listener, router).await;
    });
}

// ---------------------------------------------------------------------------------------------
// The load generator.

struct Conn {
    tx: SendRequest<Full<Bytes>>,
    host: String,
}

type Resp = (StatusCode, hyper::HeaderMap, Bytes);

impl Conn {
    async fn connect(addr: SocketAddr) -> Result<Conn, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            tx,
            host: addr.to_string(),
        })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Resp, String> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;
        self.tx.ready().await.map_err(|e| e.to_string())?;
        let fut = async {
            let resp = self.tx.send_request(req).await.map_err(|e| e.to_string())?;
            let (parts, body) = resp.into_parts();
            let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<Resp, String>((parts.status, parts.headers, bytes))
        };
        tokio::time::timeout(Duration::from_secs(30), fut)
            .await
            .map_err(|_| "request timed out".to_string())?
    }
}

/// Latencies (µs) and counts of one scenario.
#[derive(Default)]
struct Stats {
    ops: u64,
    errors: u64,
    lat_us: Vec<u32>,
    elapsed: Duration,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.ops += o.ops;
        self.errors += o.errors;
        self.lat_us.extend(o.lat_us);
    }
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn pct(&mut self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return 0.0;
        }
        self.lat_us.sort_unstable();
        let i = ((self.lat_us.len() as f64 - 1.0) * p).round() as usize;
        self.lat_us[i.min(self.lat_us.len() - 1)] as f64 / 1000.0
    }
}

/// Runs `conns` workers for `secs` (or until the request cap): each worker owns state from
/// `setup` and repeats `op`, which returns how many operations it did (0 = error).
async fn closed_loop<S, Setup, SetupFut, Op>(
    conns: usize,
    secs: u64,
    max_requests: u64,
    setup: Setup,
    op: Op,
) -> Stats
where
    S: Send + 'static,
    Setup: Fn(usize) -> SetupFut,
    SetupFut: std::future::Future<Output = S> + Send + 'static,
    Op: for<'a> Fn(&'a mut S) -> futures::future::BoxFuture<'a, u64> + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let mut states = Vec::new();
    for i in 0..conns {
        states.push(setup(i).await);
    }
    let per_worker_cap = (max_requests / conns.max(1) as u64).max(1);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for mut st in states {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            let mut done = 0u64;
            while Instant::now() < deadline && done < per_worker_cap {
                let t = Instant::now();
                let n = op(&mut st).await;
                let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                if n == 0 {
                    s.errors += 1;
                } else {
                    s.ops += n;
                    s.lat_us.push(us);
                }
                done += 1;
            }
            s
        }));
    }
    let mut total = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            total.merge(s);
        }
    }
    total.elapsed = start.elapsed();
    total
}

// ---------------------------------------------------------------------------------------------
// MCP helpers.

const ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");
const CT: (&str, &str) = ("content-type", "application/json");
const PV: (&str, &str) = ("mcp-protocol-version", "2025-06-18");

fn init_body() -> Bytes {
    Bytes::from(
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}})
        .to_string(),
    )
}

/// initialize + notifications/initialized; returns the session id.
async fn mcp_open(c: &mut Conn) -> Result<String, String> {
    let (st, h, _) = c
        .send(Method::POST, "/mcp", &[CT, ACCEPT], init_body())
        .await?;
    if st != StatusCode::OK {
        return Err(format!("initialize: {st}"));
    }
    let sid = h
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .ok_or("no session id")?
        .to_string();
    let note = Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    let (st, _, _) = c
        .send(
            Method::POST,
            "/mcp",
            &[CT, ACCEPT, PV, ("mcp-session-id", &sid)],
            note,
        )
        .await?;
    if !st.is_success() {
        return Err(format!("initialized: {st}"));
    }
    Ok(sid)
}

async fn mcp_call(
    c: &mut Conn,
    sid: &str,
    id: u64,
    tool: &str,
    args: &Value,
) -> Result<Value, String> {
    let body = Bytes::from(
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}}).to_string(),
    );
    let (st, _, b) = c
        .send(
            Method::POST,
            "/mcp",
            &[CT, ACCEPT, PV, ("mcp-session-id", sid)],
            body,
        )
        .await?;
    if st != StatusCode::OK {
        return Err(format!("tools/call: {st}"));
    }
    let text = String::from_utf8_lossy(&b);
    // Plain JSON or an SSE stream whose data lines carry the response.
    let msg = if text.trim_start().starts_with('{') {
        serde_json::from_str::<Value>(&text).ok()
    } else {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("id").is_some())
    };
    let msg = msg.ok_or_else(|| format!("no response in {text}"))?;
    if msg["result"]["isError"] == true || msg.get("error").is_some() {
        return Err(format!("tool error: {msg}"));
    }
    Ok(msg["result"].clone())
}

struct McpWorker {
    conn: Conn,
    sid: String,
    /// Next JSON-RPC id; workers sharing a session use disjoint ranges, since a session's
    /// in-flight request ids must be unique.
    n: u64,
    args: Value,
    tool: &'static str,
}

async fn mcp_worker(
    index: usize,
    addr: SocketAddr,
    shared_sid: Option<String>,
    tool: &'static str,
    args: Value,
) -> McpWorker {
    let mut conn = Conn::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let sid = match shared_sid {
        Some(s) => s,
        None => mcp_open(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("open: {e}")),
    };
    McpWorker {
        conn,
        sid,
        n: (index as u64 + 1) * 1_000_000_000,
        args,
        tool,
    }
}

async fn tools_call_bench(
    addr: SocketAddr,
    conns: usize,
    one_session: bool,
    tool: &'static str,
    args: Value,
    o: &Options,
) -> Stats {
    let shared = if one_session {
        let mut c = Conn::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        Some(
            mcp_open(&mut c)
                .await
                .unwrap_or_else(|e| panic!("open: {e}")),
        )
    } else {
        None
    };
    closed_loop(
        conns,
        o.secs,
        o.max_requests,
        |i| mcp_worker(i, addr, shared.clone(), tool, args.clone()),
        |w: &mut McpWorker| {
            Box::pin(async move {
                w.n += 1;
                let sid = w.sid.clone();
                match mcp_call(&mut w.conn, &sid, w.n, w.tool, &w.args).await {
                    Ok(_) => 1,
                    Err(_) => 0,
                }
            })
        },
    )
    .await
}

async fn init_delete_bench(addr: SocketAddr, conns: usize, o: &Options) -> Stats {
    closed_loop(
        conns,
        o.secs,
        o.max_requests,
        |_| async move {
            Conn::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}"))
        },
        |c: &mut Conn| {
            Box::pin(async move {
                let Ok(sid) = mcp_open(c).await else { return 0 };
                match c
                    .send(
                        Method::DELETE,
                        "/mcp",
                        &[PV, ("mcp-session-id", &sid)],
                        Bytes::new(),
                    )
                    .await
                {
                    Ok((st, _, _)) if st.is_success() => 1,
                    _ => 0,
                }
            })
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// REST scenarios.

async fn bare_axum_bench(addr: SocketAddr, o: &Options) -> Stats {
    closed_loop(
        o.conns,
        o.secs,
        o.max_requests,
        |_| async move {
            Conn::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}"))
        },
        |c: &mut Conn| {
            Box::pin(async move {
                match c.send(Method::GET, "/ping", &[], Bytes::new()).await {
                    Ok((st, _, _)) if st == StatusCode::OK => 1,
                    _ => 0,
                }
            })
        },
    )
    .await
}

/// One op = one request; each worker cycles create -> get -> update -> delete.
struct RestWorker {
    conn: Conn,
    step: u8,
    id: String,
    version: u64,
}

async fn session_ops_bench(addr: SocketAddr, o: &Options) -> Stats {
    closed_loop(
        o.conns,
        o.secs,
        o.max_requests,
        |_| async move {
            RestWorker {
                conn: Conn::connect(addr).await.unwrap_or_else(|e| panic!("connect: {e}")),
                step: 0,
                id: String::new(),
                version: 0,
            }
        },
        |w: &mut RestWorker| {
            Box::pin(async move {
                let r = match w.step {
                    0 => {
                        let body = Bytes::from_static(br#"{"labels":{"bench":"ops"},"total_steps":3}"#);
                        match w.conn.send(Method::POST, "/api/v1/sessions", &[CT], body).await {
                            Ok((st, _, b)) if st == StatusCode::CREATED => {
                                let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                                w.id = v["id"].as_str().unwrap_or_default().to_string();
                                w.version = v["version"].as_u64().unwrap_or(1);
                                true
                            }
                            _ => false,
                        }
                    }
                    1 => matches!(
                        w.conn.send(Method::GET, &format!("/api/v1/sessions/{}", w.id), &[], Bytes::new()).await,
                        Ok((st, _, _)) if st == StatusCode::OK
                    ),
                    2 => {
                        let body = Bytes::from_static(br#"{"op":"mark_step_completed","step":"build","result":{"ok":true}}"#);
                        let path = format!("/api/v1/sessions/{}/ops?version={}", w.id, w.version);
                        matches!(w.conn.send(Method::POST, &path, &[CT], body).await, Ok((st, _, _)) if st == StatusCode::OK)
                    }
                    _ => matches!(
                        w.conn.send(Method::DELETE, &format!("/api/v1/sessions/{}", w.id), &[], Bytes::new()).await,
                        Ok((st, _, _)) if st == StatusCode::NO_CONTENT
                    ),
                };
                w.step = (w.step + 1) % 4;
                u64::from(r)
            })
        },
    )
    .await
}

async fn workflow_bench(addr: SocketAddr, o: &Options) -> Stats {
    closed_loop(
        o.conns,
        o.secs,
        o.max_requests,
        |_| async move {
            Conn::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}"))
        },
        |c: &mut Conn| {
            Box::pin(async move {
                let body = Bytes::from_static(br#"{"params":{"name":"bench"},"wait":true}"#);
                match c
                    .send(
                        Method::POST,
                        "/api/v1/workflows/bench-three-steps/runs",
                        &[CT],
                        body,
                    )
                    .await
                {
                    Ok((st, _, b)) if st == StatusCode::OK && memchr_status_completed(&b) => 1,
                    _ => 0,
                }
            })
        },
    )
    .await
}

fn memchr_status_completed(b: &[u8]) -> bool {
    let needle: &[u8] = b"\"status\":\"completed\"";
    b.windows(needle.len()).any(|w| w == needle)
}

/// Creates `n` sessions over REST with `conns` connections (bounded by count).
async fn fill_sessions(addr: SocketAddr, n: usize, conns: usize) -> Stats {
    let per = n.div_ceil(conns);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            let Ok(mut c) = Conn::connect(addr).await else { return s };
            for _ in 0..per {
                let t = Instant::now();
                let body = Bytes::from_static(br#"{"labels":{"bench":"memory"},"metadata":{"repo":"github.com/example/app"}}"#);
                match c.send(Method::POST, "/api/v1/sessions", &[CT], body).await {
                    Ok((st, _, _)) if st == StatusCode::CREATED => {
                        s.ops += 1;
                        s.lat_us.push(t.elapsed().as_micros() as u32);
                    }
                    _ => s.errors += 1,
                }
            }
            s
        }));
    }
    let mut total = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            total.merge(s);
        }
    }
    total.elapsed = start.elapsed();
    total
}

// ---------------------------------------------------------------------------------------------
// Report.

struct Report {
    rows: Vec<Value>,
    lines: VecDeque<String>,
}

impl Report {
    fn add(&mut self, name: &str, server: &str, s: &mut Stats, extra: Value) {
        let row = json!({
            "scenario": name, "server": server, "ops": s.ops, "errors": s.errors,
            "seconds": s.elapsed.as_secs_f64(), "ops_per_sec": s.rate(),
            "p50_ms": s.pct(0.50), "p99_ms": s.pct(0.99), "extra": extra,
        });
        let line = format!(
            "{name:<34} {server:<10} {:>10.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {:<5} {}",
            s.rate(),
            s.pct(0.50),
            s.pct(0.99),
            s.errors,
            if extra.is_null() {
                String::new()
            } else {
                extra.to_string()
            }
        );
        println!("{line}");
        self.lines.push_back(line);
        self.rows.push(row);
    }
    fn note(&mut self, line: String) {
        println!("{line}");
        self.lines.push_back(line);
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Measures fsync latency of the disk the store uses: group commit makes write latency
/// follow it, so it is reported beside the numbers.
fn fsync_ms() -> f64 {
    use std::io::Write;
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap_or_else(|e| panic!("{e}"));
    let Ok(mut f) = std::fs::File::create(dir.path().join("probe")) else {
        return f64::NAN;
    };
    let start = Instant::now();
    for _ in 0..100 {
        let _ = f.write_all(&[0u8; 4096]);
        let _ = f.sync_data();
    }
    start.elapsed().as_secs_f64() * 1000.0 / 100.0
}

/// `session_get` through MCP over `conns` sessions, on a session created over REST.
async fn session_get_bench(addr: SocketAddr, conns: usize, o: &Options) -> Stats {
    let mut c = Conn::connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
    let (_, _, b) = c
        .send(
            Method::POST,
            "/api/v1/sessions",
            &[CT],
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null)["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let args = json!({ "session_id": id });
    tools_call_bench(addr, conns, false, "session_get", args, o).await
}

async fn run_one(addr: SocketAddr, o: &Options) {
    let mut s = match o.only.as_str() {
        "tools-call" => tools_call_bench(addr, o.conns, false, "ping", json!({}), o).await,
        "session-get" => session_get_bench(addr, o.conns, o).await,
        "tools-call-1" => tools_call_bench(addr, o.conns, true, "ping", json!({}), o).await,
        "init-delete" => init_delete_bench(addr, o.conns, o).await,
        "workflows" => workflow_bench(addr, o).await,
        _ => session_ops_bench(addr, o).await,
    };
    println!(
        "{} against {addr}: {:.0}/s p50 {:.2} ms p99 {:.2} ms errors {}",
        o.only,
        s.rate(),
        s.pct(0.5),
        s.pct(0.99),
        s.errors
    );
}

async fn run(o: Options) {
    if let Some(addr) = o.addr {
        run_one(addr, &o).await;
        return;
    }
    let mut rep = Report {
        rows: Vec::new(),
        lines: VecDeque::new(),
    };
    rep.note(format!(
        "server_bench: {} s per scenario, {} connections, {} cores, fsync {:.2} ms, load average {}",
        o.secs,
        o.conns,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        fsync_ms(),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    ));

    // Ceilings.
    let axum = start_child("bare-axum").await;
    let mut s = bare_axum_bench(axum.addr, &o).await;
    rep.add("http GET (ceiling)", axum.name, &mut s, Value::Null);
    drop(axum);

    let rmcp = start_child("bare-rmcp").await;
    let mut s1 = tools_call_bench(rmcp.addr, 16, true, "ping", json!({}), &o).await;
    rep.add(
        "tools/call, 1 session x16 conns",
        rmcp.name,
        &mut s1,
        Value::Null,
    );
    let mut s64 = tools_call_bench(rmcp.addr, 64, false, "ping", json!({}), &o).await;
    rep.add("tools/call, 64 sessions", rmcp.name, &mut s64, Value::Null);
    let mut si = init_delete_bench(rmcp.addr, 16, &o).await;
    rep.add("initialize+DELETE cycles", rmcp.name, &mut si, Value::Null);
    let rmcp_rss = rmcp.rss_bytes();
    let (bare1, bare64, bare_init) = (s1.rate(), s64.rate(), si.rate());
    drop(rmcp);

    // js-mcp.
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/workflows");
    let wf = workflows.to_string_lossy().to_string();
    let js = start_js_mcp(
        data.path(),
        &[
            "--max-sessions",
            "1000000",
            "--max-mcp-sessions",
            "100000",
            "--workflows-dir",
            &wf,
        ],
    )
    .await;
    settle_and_probe(js.addr, AFTER_FIRST_SWEEP).await;
    rep.note(format!(
        "js-mcp idle RSS (33 s after start: past the first expiry sweep, then a /health and /ready probe): {}",
        js.rss_report()
    ));

    let mut s = session_ops_bench(js.addr, &o).await;
    rep.add(
        "session ops (create/get/update/delete)",
        js.name,
        &mut s,
        Value::Null,
    );

    let mut s1 = tools_call_bench(js.addr, 16, true, "ping", json!({}), &o).await;
    let r1 = s1.rate() / bare1.max(1e-9);
    rep.add(
        "tools/call, 1 session x16 conns",
        js.name,
        &mut s1,
        json!({"vs_bare_rmcp": r1}),
    );
    let mut s64 = tools_call_bench(js.addr, 64, false, "ping", json!({}), &o).await;
    let r64 = s64.rate() / bare64.max(1e-9);
    rep.add(
        "tools/call, 64 sessions",
        js.name,
        &mut s64,
        json!({"vs_bare_rmcp": r64}),
    );
    let mut si = init_delete_bench(js.addr, 16, &o).await;
    let ri = si.rate() / bare_init.max(1e-9);
    rep.add(
        "initialize+DELETE cycles",
        js.name,
        &mut si,
        json!({"vs_bare_rmcp": ri}),
    );

    let js_loaded_rss = js.rss_bytes();

    let status: Value = {
        let mut c = Conn::connect(js.addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, _, b) = c
            .send(Method::GET, "/status", &[], Bytes::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_slice(&b).unwrap_or(Value::Null)
    };
    if status["components"]["workflows"]["state"] == "ok" {
        let mut sw = workflow_bench(js.addr, &o).await;
        rep.add(
            "3-step workflow runs (REST, wait)",
            js.name,
            &mut sw,
            Value::Null,
        );
    } else {
        rep.note(format!(
            "3-step workflow runs: skipped, workflows component is {} ({})",
            status["components"]["workflows"]["state"], status["components"]["workflows"]["detail"]
        ));
    }
    rep.note(format!(
        "js-mcp RSS after every load above: {:.1} MiB (now {}); bare rmcp RSS after its load: {:.1} MiB",
        mib(js_loaded_rss),
        js.rss_report(),
        mib(rmcp_rss)
    ));
    drop(js);

    // The session tool compared with the TypeScript SDK server: a fresh server of each gets
    // the same load, so neither carries memory from other scenarios.
    let data3 = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let js3 = start_js_mcp(data3.path(), &[]).await;
    settle_and_probe(js3.addr, SETTLE).await;
    let js_idle = js3.rss_bytes();
    let mut sg = session_get_bench(js3.addr, 64, &o).await;
    let js_get_rate = sg.rate();
    let js_get_p99 = sg.pct(0.99);
    let js_get_rss = js3.rss_bytes();
    rep.add(
        "session_get tool, 64 sessions",
        js3.name,
        &mut sg,
        json!({"idle_rss_mib": mib(js_idle), "loaded_rss_mib": mib(js_get_rss)}),
    );
    rep.note(format!(
        "js-mcp RSS after the session_get load: {}",
        js3.rss_report()
    ));
    drop(js3);

    // Memory with many live sessions, on a fresh server.
    let data2 = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let js2 = start_js_mcp(data2.path(), &["--max-sessions", "1000000"]).await;
    settle_and_probe(js2.addr, SETTLE).await;
    let before = js2.rss_bytes();
    let mut sf = fill_sessions(js2.addr, o.sessions_for_memory, o.conns).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = js2.rss_bytes();
    let per = (after.saturating_sub(before)) as f64 / sf.ops.max(1) as f64;
    rep.add(
        "session create (filling the store)",
        js2.name,
        &mut sf,
        json!({"rss_before_mib": mib(before), "rss_after_mib": mib(after), "bytes_per_session": per}),
    );
    drop(js2);

    // The TypeScript SDK server, same session tool.
    if !o.skip_ts
        && let Some(ts) = start_ts().await
    {
        let ts_idle = ts.rss_bytes();
        let sid = {
            let mut c = Conn::connect(ts.addr)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let msid = mcp_open(&mut c).await.unwrap_or_else(|e| panic!("{e}"));
            let r = mcp_call(&mut c, &msid, 1, "session_create", &json!({}))
                .await
                .unwrap_or(Value::Null);
            r["structuredContent"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let mut st = tools_call_bench(
            ts.addr,
            64,
            false,
            "session_get",
            json!({"session_id": sid}),
            &o,
        )
        .await;
        let ts_loaded = ts.rss_bytes();
        let ratio = js_get_rate / st.rate().max(1e-9);
        let p99 = st.pct(0.99);
        rep.add(
            "session_get tool, 64 sessions",
            ts.name,
            &mut st,
            json!({"idle_rss_mib": mib(ts_idle), "loaded_rss_mib": mib(ts_loaded)}),
        );
        rep.note(format!(
            "js-mcp vs TS SDK: {:.1}x throughput, p99 {:.2} ms vs {:.2} ms, memory {:.1} MiB vs {:.1} MiB ({:.2}x)",
            ratio,
            js_get_p99,
            p99,
            mib(js_get_rss),
            mib(ts_loaded),
            js_get_rss as f64 / ts_loaded.max(1) as f64
        ));
    }

    let doc = json!({ "results": rep.rows, "summary": rep.lines });
    if let Some(dir) = o.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&o.out, serde_json::to_vec_pretty(&doc).unwrap_or_default()) {
        Ok(()) => println!("results written to {}", o.out.display()),
        Err(e) => eprintln!("could not write {}: {e}", o.out.display()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let mode = args.get(pos + 1).cloned().unwrap_or_default();
        let port = args.get(pos + 2).cloned().unwrap_or_default();
        run_child(&mode, &port);
        return;
    }
    let o = Options::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    rt.block_on(run(o));
}
