//! Prometheus metrics of the server: one [`prometheus::Registry`], every name documented
//! in `docs/server.md`. Label values are bounded (routes, op names, tool names, outcomes).

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// Latency buckets (seconds): 50 µs to 10 s, dense where session ops and tool calls live.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];
/// Workflow run durations (seconds): 1 ms to 10 min.
const RUN_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];

/// Every metric of the server.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// `jsmcp_http_requests_total{route,method,status}`.
    pub http_requests: IntCounterVec,
    /// `jsmcp_http_request_duration_seconds{route,method}`.
    pub http_duration: HistogramVec,
    /// `jsmcp_session_ops_total{op,outcome}`.
    pub session_ops: IntCounterVec,
    /// `jsmcp_session_op_duration_seconds{op}`.
    pub session_op_duration: HistogramVec,
    /// `jsmcp_sessions_live`.
    pub sessions_live: IntGauge,
    /// `jsmcp_sessions_created_total`.
    pub sessions_created: IntCounter,
    /// `jsmcp_sessions_deleted_total`.
    pub sessions_deleted: IntCounter,
    /// `jsmcp_sessions_expired_total`.
    pub sessions_expired: IntCounter,
    /// `jsmcp_sessions_rejected_total{reason}` (full, draining).
    pub sessions_rejected: IntCounterVec,
    /// `jsmcp_mcp_sessions_live`.
    pub mcp_sessions_live: IntGauge,
    /// `jsmcp_mcp_sessions_opened_total`.
    pub mcp_sessions_opened: IntCounter,
    /// `jsmcp_mcp_sessions_closed_total`.
    pub mcp_sessions_closed: IntCounter,
    /// `jsmcp_mcp_sessions_rejected_total{reason}` (full, draining).
    pub mcp_sessions_rejected: IntCounterVec,
    /// `jsmcp_tool_calls_total{tool,outcome}`.
    pub tool_calls: IntCounterVec,
    /// `jsmcp_tool_call_duration_seconds{tool}`.
    pub tool_duration: HistogramVec,
    /// `jsmcp_workflow_runs_total{outcome}`.
    pub workflow_runs: IntCounterVec,
    /// `jsmcp_workflow_run_duration_seconds{outcome}`.
    pub workflow_duration: HistogramVec,
    /// `jsmcp_workflow_runs_active`.
    pub workflow_active: IntGauge,
    /// `jsmcp_docker_call_duration_seconds{call}`.
    pub docker_duration: HistogramVec,
    /// `jsmcp_docker_errors_total{call}`.
    pub docker_errors: IntCounterVec,
    /// `jsmcp_ai_call_duration_seconds`.
    pub ai_duration: HistogramVec,
    /// `jsmcp_ai_errors_total`.
    pub ai_errors: IntCounter,
    /// `jsmcp_draining` (1 while draining).
    pub draining: IntGauge,
    /// `jsmcp_build_info{version}` (always 1).
    pub build_info: GaugeVec,
    /// `process_resident_memory_bytes`.
    pub process_rss: IntGauge,
    /// `process_virtual_memory_bytes`.
    pub process_vsz: IntGauge,
    /// `process_cpu_seconds_total` (a gauge set from /proc at scrape time).
    pub process_cpu: Gauge,
    /// `process_open_fds`.
    pub process_fds: IntGauge,
    /// `process_start_time_seconds`.
    pub process_start: Gauge,
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn fgauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<Gauge> {
    let g = Gauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        let m = Metrics {
            http_requests: counter_vec(
                &r,
                "jsmcp_http_requests_total",
                "HTTP requests by route template, method and status code",
                &["route", "method", "status"],
            )?,
            http_duration: histogram(
                &r,
                "jsmcp_http_request_duration_seconds",
                "HTTP request duration (to response headers) by route template and method",
                &["route", "method"],
                LATENCY_BUCKETS,
            )?,
            session_ops: counter_vec(
                &r,
                "jsmcp_session_ops_total",
                "Session store operations by op and outcome (ok or the error kind)",
                &["op", "outcome"],
            )?,
            session_op_duration: histogram(
                &r,
                "jsmcp_session_op_duration_seconds",
                "Session store operation latency by op",
                &["op"],
                LATENCY_BUCKETS,
            )?,
            sessions_live: gauge(
                &r,
                "jsmcp_sessions_live",
                "Sessions held by the store (live plus expired not yet swept)",
            )?,
            sessions_created: counter(&r, "jsmcp_sessions_created_total", "Sessions created")?,
            sessions_deleted: counter(&r, "jsmcp_sessions_deleted_total", "Sessions deleted")?,
            sessions_expired: counter(
                &r,
                "jsmcp_sessions_expired_total",
                "Sessions removed by the expiry sweep",
            )?,
            sessions_rejected: counter_vec(
                &r,
                "jsmcp_sessions_rejected_total",
                "Session creations refused, by reason (full, draining)",
                &["reason"],
            )?,
            mcp_sessions_live: gauge(
                &r,
                "jsmcp_mcp_sessions_live",
                "Live MCP Streamable HTTP sessions (Mcp-Session-Id)",
            )?,
            mcp_sessions_opened: counter(
                &r,
                "jsmcp_mcp_sessions_opened_total",
                "MCP sessions opened (initialize)",
            )?,
            mcp_sessions_closed: counter(
                &r,
                "jsmcp_mcp_sessions_closed_total",
                "MCP sessions closed (DELETE, idle timeout or shutdown)",
            )?,
            mcp_sessions_rejected: counter_vec(
                &r,
                "jsmcp_mcp_sessions_rejected_total",
                "MCP initialize requests refused, by reason (full, draining)",
                &["reason"],
            )?,
            tool_calls: counter_vec(
                &r,
                "jsmcp_tool_calls_total",
                "MCP tool calls by tool and outcome (ok, error)",
                &["tool", "outcome"],
            )?,
            tool_duration: histogram(
                &r,
                "jsmcp_tool_call_duration_seconds",
                "MCP tool call latency by tool",
                &["tool"],
                LATENCY_BUCKETS,
            )?,
            workflow_runs: counter_vec(
                &r,
                "jsmcp_workflow_runs_total",
                "Finished workflow runs by outcome (completed, partial, failed, cancelled)",
                &["outcome"],
            )?,
            workflow_duration: histogram(
                &r,
                "jsmcp_workflow_run_duration_seconds",
                "Workflow run duration by outcome",
                &["outcome"],
                RUN_BUCKETS,
            )?,
            workflow_active: gauge(
                &r,
                "jsmcp_workflow_runs_active",
                "Workflow runs in progress",
            )?,
            docker_duration: histogram(
                &r,
                "jsmcp_docker_call_duration_seconds",
                "Docker Engine API call latency by call (info, ps, df, prune)",
                &["call"],
                LATENCY_BUCKETS,
            )?,
            docker_errors: counter_vec(
                &r,
                "jsmcp_docker_errors_total",
                "Docker Engine API call failures by call",
                &["call"],
            )?,
            ai_duration: histogram(
                &r,
                "jsmcp_ai_call_duration_seconds",
                "AI chat-completion call latency by outcome",
                &["outcome"],
                LATENCY_BUCKETS,
            )?,
            ai_errors: counter(
                &r,
                "jsmcp_ai_errors_total",
                "AI chat-completion call failures",
            )?,
            draining: gauge(&r, "jsmcp_draining", "1 while the server drains, else 0")?,
            build_info: {
                let g = GaugeVec::new(
                    Opts::new("jsmcp_build_info", "Build information (value is always 1)"),
                    &["version"],
                )?;
                r.register(Box::new(g.clone()))?;
                g.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1.0);
                g
            },
            process_rss: gauge(
                &r,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
            )?,
            process_vsz: gauge(
                &r,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
            )?,
            process_cpu: fgauge(
                &r,
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds",
            )?,
            process_fds: gauge(&r, "process_open_fds", "Number of open file descriptors")?,
            process_start: fgauge(
                &r,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
            )?,
            registry: r,
        };
        if let Some(p) = read_proc() {
            m.process_start.set(p.start_time_seconds);
        }
        Ok(m)
    }

    /// Records one finished session-store operation.
    pub fn session_op<T>(
        &self,
        op: &str,
        started: std::time::Instant,
        result: &Result<T, crate::server::sessions::SessionError>,
    ) {
        self.session_op_duration
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.metric_label(),
        };
        self.session_ops.with_label_values(&[op, outcome]).inc();
    }

    /// Renders the registry in the Prometheus text format, refreshing process figures first.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        if let Some(p) = read_proc() {
            self.process_rss.set(p.rss_bytes as i64);
            self.process_vsz.set(p.vsize_bytes as i64);
            self.process_cpu.set(p.cpu_seconds);
            self.process_fds.set(p.open_fds as i64);
        }
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// Process figures from `/proc/self` (Linux).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStats {
    /// Resident set size.
    pub rss_bytes: u64,
    /// Virtual size.
    pub vsize_bytes: u64,
    /// User + system CPU seconds.
    pub cpu_seconds: f64,
    /// Open file descriptors.
    pub open_fds: usize,
    /// Process start, seconds since the epoch.
    pub start_time_seconds: f64,
}

/// Resident set size from `/proc/self/status` (reported in kB, so no page-size lookup).
fn vm_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

/// Reads `/proc/self/stat`; `None` where /proc is not available.
pub fn read_proc() -> Option<ProcStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name (which may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime=14, stime=15, starttime=22, vsize=23, rss=24.
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    // USER_HZ is fixed at 100 in the Linux user-space ABI, whatever the kernel's HZ.
    let ticks = 100.0;
    let cpu_seconds = (field(14)? + field(15)?) as f64 / ticks;
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("btime ")
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
        })
        .unwrap_or(0);
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    Some(ProcStats {
        rss_bytes: vm_rss_bytes().unwrap_or(0),
        vsize_bytes: field(23)?,
        cpu_seconds,
        open_fds,
        start_time_seconds: boot_time as f64 + field(22)? as f64 / ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_renders_documented_names_and_process_figures() {
        let m = Metrics::new().unwrap_or_else(|e| panic!("{e}"));
        m.tool_calls.with_label_values(&["ping", "ok"]).inc();
        let text = m.render().unwrap_or_default();
        for name in [
            "jsmcp_tool_calls_total",
            "jsmcp_build_info",
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
        let p = read_proc().unwrap_or_else(|| panic!("no /proc"));
        assert!(p.rss_bytes > 0);
        assert!(p.start_time_seconds > 1_000_000_000.0);
    }
}
