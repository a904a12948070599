//! Helpers shared by the server integration tests: a real `redis-server` on a free
//! loopback port, the real `js-mcp serve` binary on a free port, and a small HTTP client.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: the machine has 2 cores shared with parallel builds and test binaries.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A free loopback port (bound then released; callers retry if someone takes it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A `redis-server` child process on loopback, killed on drop.
pub struct RedisServer {
    child: Child,
    /// `redis://127.0.0.1:PORT/`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` (no persistence: tests check sharing, not Redis durability).
    pub fn start() -> RedisServer {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "/usr/bin/redis-server".into());
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
            let port = free_port();
            let child = Command::new(&bin)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                ])
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("start {bin} (install redis-server, see .ci/setup-server.sh): {e}")
                });
            let mut server = RedisServer {
                child,
                url: format!("redis://127.0.0.1:{port}/"),
                _dir: dir,
            };
            if server.wait_ready(port) {
                return server;
            }
            let _ = server.child.kill();
        }
        panic!("redis-server did not start after 5 attempts");
    }

    fn wait_ready(&mut self, port: u16) -> bool {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // exited: most likely the port was taken
            }
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if s.write_all(b"PING\r\n").is_ok() {
                    let mut buf = [0u8; 16];
                    if let Ok(n) = s.read(&mut buf)
                        && buf[..n].starts_with(b"+PONG")
                    {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `js-mcp serve` child process, killed on drop.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Bound address.
    pub addr: SocketAddr,
    /// Data directory (kept so a restart sees the same store).
    pub data_dir: PathBuf,
}

/// Path of the binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_js-mcp")
}

impl Server {
    /// Starts `js-mcp serve` with the given extra args/env, retrying on port races.
    pub fn start(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
        for _attempt in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(binary());
            cmd.arg("serve")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(args)
                .env("JSMCP_DATA_DIR", data_dir)
                .env_remove("JSMCP_AUTH_TOKEN")
                .env_remove("JSMCP_STORE")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            for (k, v) in envs {
                cmd.env(k, v);
            }
            let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn js-mcp: {e}"));
            let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut server = Server {
                child: Some(child),
                base: format!("http://127.0.0.1:{port}"),
                addr,
                data_dir: data_dir.to_path_buf(),
            };
            if server.wait_healthy() {
                return server;
            }
            server.kill();
        }
        panic!("js-mcp serve did not become healthy after 5 attempts");
    }

    fn wait_healthy(&mut self) -> bool {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if let Ok(resp) = http(self.addr, "GET", "/health", &[], None)
                && resp.status == 200
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Sends SIGTERM and waits for exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let mut child = child;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// One HTTP request to this server.
    pub fn req(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        http(self.addr, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// JSON request helper.
    pub fn json(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Resp {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap_or_default());
        self.req(
            method,
            path,
            &[("content-type", "application/json")],
            bytes.as_deref(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes (de-chunked).
    pub body: Vec<u8>,
}

impl Resp {
    /// Body as JSON (panics with the body text when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    /// Body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// First header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// JSON-RPC messages in the body, whether plain JSON or an SSE stream.
    pub fn jsonrpc_messages(&self) -> Vec<serde_json::Value> {
        let text = self.text();
        if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
        {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .filter_map(|d| serde_json::from_str(d).ok())
                .collect()
        } else {
            serde_json::from_str(&text).into_iter().collect()
        }
    }
}

/// A minimal blocking HTTP/1.1 client (one request per connection, `Connection: close`),
/// so tests see exactly what goes over the wire.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Resp> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or_default();
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes())?;
    // A server may answer (e.g. 413) and close before reading a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Resp> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("no status line"))?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(pos) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < pos + 2 + size {
            return out;
        }
        out.extend_from_slice(&b[pos + 2..pos + 2 + size]);
        b = &b[(pos + 4 + size).min(b.len())..];
    }
}

/// `Accept` for `/mcp` posts: JSON or an SSE stream.
pub const ACCEPT_BOTH: (&str, &str) = ("accept", "application/json, text/event-stream");
/// `Content-Type` of JSON bodies.
pub const JSON_CT: (&str, &str) = ("content-type", "application/json");

/// Opens an MCP session at `version` with the client `capabilities` (initialize, then
/// `notifications/initialized`) and returns its `Mcp-Session-Id`.
pub fn mcp_open(s: &Server, version: &str, capabilities: serde_json::Value) -> String {
    let init = serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": capabilities,
                   "clientInfo": {"name": "test", "version": "1"}}
    });
    let body = serde_json::to_vec(&init).unwrap_or_default();
    let r = s.req("POST", "/mcp", &[JSON_CT, ACCEPT_BOTH], Some(&body));
    assert_eq!(r.status, 200, "initialize: {}", r.text());
    let sid = r
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("no Mcp-Session-Id: {:?}", r.headers))
        .to_string();
    let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = mcp_post(s, &sid, version, &note);
    assert_eq!(r.status, 202, "initialized: {}", r.text());
    sid
}

/// Posts one JSON-RPC message to an MCP session.
pub fn mcp_post(s: &Server, sid: &str, version: &str, message: &serde_json::Value) -> Resp {
    let body = serde_json::to_vec(message).unwrap_or_default();
    s.req(
        "POST",
        "/mcp",
        &[
            JSON_CT,
            ACCEPT_BOTH,
            ("mcp-session-id", sid),
            ("mcp-protocol-version", version),
        ],
        Some(&body),
    )
}

/// Sends request `id` (`method`, `params`) and returns the whole reply (result or error).
pub fn mcp_request(
    s: &Server,
    sid: &str,
    version: &str,
    id: u64,
    method: &str,
    params: serde_json::Value,
) -> serde_json::Value {
    let message =
        serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let r = mcp_post(s, sid, version, &message);
    assert_eq!(r.status, 200, "{method}: {}", r.text());
    r.jsonrpc_messages()
        .into_iter()
        .find(|m| m["id"] == serde_json::json!(id))
        .unwrap_or_else(|| panic!("no reply to {method}: {}", r.text()))
}
