//! `js-mcp serve` inside a real memory cgroup: with no `--max-mcp-sessions`, the cap on live
//! MCP sessions fits the cgroup's limit. Needs root and a writable cgroup (v1 `memory`
//! controller or v2), as on the CI machine.

mod server_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use server_support::{binary, free_port, http};

/// A child memory cgroup of this process's own, removed on drop.
struct MemoryCgroup {
    dir: PathBuf,
}

impl MemoryCgroup {
    fn create(limit_bytes: u64) -> MemoryCgroup {
        let membership = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let v1 = membership
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()));
        let (dir, limit_file) = match v1 {
            Some(path) => (
                PathBuf::from("/sys/fs/cgroup/memory").join(path.trim_start_matches('/')),
                "memory.limit_in_bytes",
            ),
            None => {
                let path = membership
                    .lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .unwrap_or("/");
                (
                    PathBuf::from("/sys/fs/cgroup").join(path.trim_start_matches('/')),
                    "memory.max",
                )
            }
        };
        let dir = dir.join(format!("jsmcp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("create cgroup {}: {e}", dir.display()));
        std::fs::write(dir.join(limit_file), limit_bytes.to_string())
            .unwrap_or_else(|e| panic!("set {limit_file} in {}: {e}", dir.display()));
        MemoryCgroup { dir }
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // The server has exited by now; an empty cgroup is removed with rmdir.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_default_mcp_session_cap_fits_the_cgroup_memory_limit() {
    let cgroup = MemoryCgroup::create(256 * 1024 * 1024);
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    // The shell joins the cgroup, then becomes the server.
    let server = Command::new("sh")
        .args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""])
        .arg(&cgroup.dir)
        .arg(binary())
        .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .env("JSMCP_DATA_DIR", data.path())
        .env_remove("JSMCP_MAX_MCP_SESSIONS")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let mut server = Killed(server);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(r) = http(addr, "GET", "/status", &[], None)
            && r.status == 200
        {
            break r.json();
        }
        if let Ok(Some(exit)) = server.0.try_wait() {
            panic!("js-mcp serve exited in the cgroup: {exit}");
        }
        assert!(Instant::now() < deadline, "js-mcp serve did not come up");
        std::thread::sleep(Duration::from_millis(50));
    };
    let members = std::fs::read_to_string(cgroup.dir.join("cgroup.procs")).unwrap_or_default();
    assert!(
        members.lines().any(|p| p == server.0.id().to_string()),
        "the server runs in the test cgroup: {members:?}"
    );
    // (256 MiB - 64 MiB reserve) / 256 KiB per session.
    let detail = status["components"]["sessions"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(detail.ends_with("live MCP sessions of max 768"), "{detail}");
    drop(server);
}
