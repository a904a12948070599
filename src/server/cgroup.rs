//! The container's memory limit (cgroup v2 or v1), so the default cap on live MCP sessions
//! fits the pod instead of letting leaked sessions run it out of memory.

use std::path::PathBuf;

/// What one live MCP transport session may hold, with margin (measured: ~190 KB, mostly
/// rmcp's per-session channels).
pub const BYTES_PER_MCP_SESSION: u64 = 256 * 1024;

/// Kept free for the server itself, its store cache and request buffers.
pub const RESERVED_BYTES: u64 = 64 * 1024 * 1024;

/// The default cap never goes below this, however small the limit.
pub const MIN_MCP_SESSIONS: usize = 16;

/// The memory limit of this process's cgroup, or `None` when there is none (or no cgroup
/// file could be read).
pub fn memory_limit_bytes() -> Option<u64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    limit_files(&membership)
        .into_iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| parse_limit(&text))
}

/// The default MCP session cap for a memory limit: what fits after the reserve, at least
/// [`MIN_MCP_SESSIONS`].
pub fn mcp_sessions_for(limit_bytes: u64) -> usize {
    let fitting = limit_bytes.saturating_sub(RESERVED_BYTES) / BYTES_PER_MCP_SESSION;
    usize::try_from(fitting)
        .unwrap_or(usize::MAX)
        .max(MIN_MCP_SESSIONS)
}

/// Files that may hold the limit, most specific first: the process's own cgroup (v2, then
/// v1 `memory` controller), then the namespace roots a container usually sees.
fn limit_files(proc_self_cgroup: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if controllers.is_empty() {
            files.push(
                PathBuf::from("/sys/fs/cgroup")
                    .join(relative)
                    .join("memory.max"),
            );
        } else if controllers.split(',').any(|c| c == "memory") {
            files.push(
                PathBuf::from("/sys/fs/cgroup/memory")
                    .join(relative)
                    .join("memory.limit_in_bytes"),
            );
        }
    }
    files.push(PathBuf::from("/sys/fs/cgroup/memory.max"));
    files.push(PathBuf::from("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    files
}

/// `max` (v2) and the page-rounded `i64::MAX` of v1 mean no limit.
fn parse_limit(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < 1 << 60).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_limit_after_the_reserve() {
        assert_eq!(mcp_sessions_for(256 * 1024 * 1024), 768);
        assert_eq!(mcp_sessions_for(1024 * 1024 * 1024), 3840);
        assert_eq!(mcp_sessions_for(32 * 1024 * 1024), MIN_MCP_SESSIONS);
    }

    #[test]
    fn no_limit_reads_as_none() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("268435456\n"), Some(268_435_456));
        assert_eq!(parse_limit("garbage"), None);
    }

    #[test]
    fn the_process_cgroup_is_tried_before_the_roots() {
        let v1 = "9:name=systemd:/\n4:memory:/kubepods/pod1/abc\n1:cpu,cpuacct:/x\n0::/\n";
        let files = limit_files(v1);
        assert_eq!(
            files[0],
            PathBuf::from("/sys/fs/cgroup/memory/kubepods/pod1/abc/memory.limit_in_bytes")
        );
        assert_eq!(files[1], PathBuf::from("/sys/fs/cgroup/memory.max"));
        let v2 = "0::/kubepods.slice/pod2.slice/cri-containerd-1.scope\n";
        assert_eq!(
            limit_files(v2)[0],
            PathBuf::from(
                "/sys/fs/cgroup/kubepods.slice/pod2.slice/cri-containerd-1.scope/memory.max"
            )
        );
    }
}
