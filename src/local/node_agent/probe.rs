//! Readiness, liveness and startup probes against a pod's loopback address: httpGet (plain
//! HTTP; an HTTPS probe checks that the port accepts connections), tcpSocket, exec.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::process::ChildProcess;

/// Which probe a result belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// startupProbe: gates the other two.
    Startup,
    /// readinessProbe: the container's Ready.
    Readiness,
    /// livenessProbe: failures restart the container.
    Liveness,
}

/// Timing of a probe with kubelet defaults and local minimums applied.
#[derive(Debug, Clone, Copy)]
pub struct ProbeTiming {
    /// Wait before the first probe.
    pub initial_delay: Duration,
    /// Interval between probes (at least 1 s).
    pub period: Duration,
    /// Per-probe timeout (at least 1 s).
    pub timeout: Duration,
    /// Consecutive successes to count as passing.
    pub success_threshold: u32,
    /// Consecutive failures to count as failing.
    pub failure_threshold: u32,
}

impl ProbeTiming {
    /// Kubelet defaults (period 10 s, timeout 1 s, thresholds 1/3) for unset fields.
    pub fn of(probe: &Probe) -> Self {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        ProbeTiming {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// What an exec probe needs to run a command like the container does.
#[derive(Debug, Clone, Default)]
pub struct ExecEnv {
    /// Environment of the container process.
    pub env: Vec<(String, String)>,
    /// Working directory of the container process.
    pub cwd: std::path::PathBuf,
    /// Rewrites mount paths in the command.
    pub rewriter: super::env::PathRewriter,
}

/// Runs `probe` once; `true` when it passes.
pub async fn run_once(
    probe: &Probe,
    container: &Container,
    pod_ip: IpAddr,
    exec_env: &ExecEnv,
) -> bool {
    let timeout = ProbeTiming::of(probe).timeout;
    if let Some(http) = &probe.http_get {
        let Some(port) = resolve_port(&http.port, container) else {
            return false;
        };
        let ip = http
            .host
            .as_deref()
            .and_then(|h| h.parse().ok())
            .unwrap_or(pod_ip);
        let addr = SocketAddr::new(ip, port);
        if http.scheme.as_deref() == Some("HTTPS") {
            return tcp_ok(addr, timeout).await;
        }
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let host = ip.to_string();
        return matches!(
            super::super::http::get(addr, &host, &path, &headers, timeout).await,
            Ok((code, _)) if (200..400).contains(&code)
        );
    }
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = resolve_port(&tcp.port, container) else {
            return false;
        };
        let ip = tcp
            .host
            .as_deref()
            .and_then(|h| h.parse().ok())
            .unwrap_or(pod_ip);
        return tcp_ok(SocketAddr::new(ip, port), timeout).await;
    }
    if let Some(exec) = &probe.exec {
        let command: Vec<String> = exec
            .command
            .iter()
            .flatten()
            .map(|a| exec_env.rewriter.rewrite(a))
            .collect();
        let Some((program, args)) = command.split_first() else {
            return false;
        };
        let mut cmd = std::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(exec_env.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&exec_env.cwd);
        let Ok(child) = ChildProcess::spawn(cmd, None).await else {
            return false;
        };
        return match tokio::time::timeout(timeout, child.wait()).await {
            Ok(exit) => exit.code == 0,
            Err(_) => false, // dropping `child` kills it
        };
    }
    // A probe with no handler (e.g. gRPC, unsupported here) is treated as passing, so such
    // pods still become ready.
    true
}

async fn tcp_ok(addr: SocketAddr, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// A probe port: a number, or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Some(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    #[test]
    fn named_ports_resolve_through_container_ports() {
        let c = Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 3000,
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Some(3000)
        );
        assert_eq!(resolve_port(&IntOrString::Int(8080), &c), Some(8080));
        assert_eq!(resolve_port(&IntOrString::String("nope".into()), &c), None);
    }

    #[test]
    fn probe_timing_applies_defaults_and_minimums() {
        let t = ProbeTiming::of(&Probe {
            period_seconds: Some(0),
            failure_threshold: Some(0),
            ..Default::default()
        });
        assert_eq!(t.period, Duration::from_secs(1));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!(t.failure_threshold, 1);
        let d = ProbeTiming::of(&Probe::default());
        assert_eq!(d.period, Duration::from_secs(10));
        assert_eq!(d.failure_threshold, 3);
    }
}
