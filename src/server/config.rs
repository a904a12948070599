//! Configuration of `js-mcp serve`: command-line flags (each also an `JSMCP_*` environment
//! variable), an optional JSON config file, and the merged [`Settings`] the server runs with.
//! Flags and environment win over the file; the file wins over built-in defaults.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::server::workflows::EgressPolicy;

/// Which session store to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// redb on local disk under the data directory.
    Embedded,
    /// Redis at `--redis-url`, shared by replicas.
    Redis,
}

/// Flags of `js-mcp serve`; every flag is also read from the environment.
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Address to bind.
    #[arg(long, env = "JSMCP_BIND", default_value = "0.0.0.0")]
    pub bind: Option<IpAddr>,
    /// Port to listen on (default 3000).
    #[arg(long, env = "JSMCP_PORT")]
    pub port: Option<u16>,
    /// JSON config file: {logLevel, maxSessions, sessionTtlSeconds, idleTimeoutSeconds,
    /// allowedOrigins[], allowedHosts[], maxBodyBytes, httpAllowedHosts[]}, all optional.
    #[arg(long, env = "JSMCP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter (`info`, `debug`, `js_mcp=debug,info`, ...); RUST_LOG wins when set.
    #[arg(long, env = "JSMCP_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Directory of the embedded session store.
    #[arg(long, env = "JSMCP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Session store: embedded (default) or redis.
    #[arg(long, env = "JSMCP_STORE", value_enum)]
    pub store: Option<StoreKind>,
    /// Redis URL (`redis://host:6379/0`) when `--store redis`.
    #[arg(long, env = "JSMCP_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Page cache of the embedded store, MiB (default 16); colder pages come from the file.
    #[arg(long, env = "JSMCP_STORE_CACHE_MIB")]
    pub store_cache_mib: Option<usize>,
    /// Key prefix in Redis (lets deployments share one Redis).
    #[arg(long, env = "JSMCP_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Bearer token required on /mcp, /api and /admin (probes stay open).
    #[arg(long, env = "JSMCP_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Most live sessions in the store (and, unless --max-mcp-sessions, live MCP sessions).
    #[arg(long, env = "JSMCP_MAX_SESSIONS")]
    pub max_sessions: Option<usize>,
    /// Most live MCP transport sessions (default: min(max-sessions, 10000, what fits the
    /// container's memory limit at 256 KiB each after a 64 MiB reserve)).
    #[arg(long, env = "JSMCP_MAX_MCP_SESSIONS")]
    pub max_mcp_sessions: Option<usize>,
    /// Idle TTL of stored sessions, seconds (default 86400).
    #[arg(long, env = "JSMCP_SESSION_TTL_SECONDS")]
    pub session_ttl_seconds: Option<u64>,
    /// MCP sessions with no request for this long are closed, seconds (default 300).
    #[arg(long, env = "JSMCP_IDLE_TIMEOUT_SECONDS")]
    pub idle_timeout_seconds: Option<u64>,
    /// Allowed `Host` values for /mcp (comma list of hosts or host:port; loopback always allowed).
    #[arg(long, env = "JSMCP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// Allowed browser `Origin`s for /mcp (comma list, with scheme); empty = no Origin check.
    #[arg(long, env = "JSMCP_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Largest request body accepted, bytes (default 4 MiB).
    #[arg(long, env = "JSMCP_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Hosts `http.request` workflow steps may call (comma list of `host`, `*.domain` or
    /// `*`; checked on every redirect too). Unset: any host.
    #[arg(long, env = "JSMCP_HTTP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub http_allowed_hosts: Option<Vec<String>>,
    /// Workflow definition directories (colon-separated list).
    #[arg(long, env = "JSMCP_WORKFLOWS_DIR", value_delimiter = ':')]
    pub workflows_dir: Option<Vec<PathBuf>>,
    /// Docker Engine API unix socket path (default: the Docker default socket).
    #[arg(long, env = "JSMCP_DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// OpenAI-compatible API base URL for `ai_complete` (e.g. http://127.0.0.1:8080/v1).
    #[arg(long, env = "JSMCP_AI_BASE_URL")]
    pub ai_base_url: Option<String>,
    /// Model name for `ai_complete`.
    #[arg(long, env = "JSMCP_AI_MODEL")]
    pub ai_model: Option<String>,
    /// API key for the AI endpoint.
    #[arg(long, env = "JSMCP_AI_API_KEY", hide_env_values = true)]
    pub ai_api_key: Option<String>,
    /// Seconds to wait for in-flight work on SIGTERM before exiting anyway (default 25).
    #[arg(long, env = "JSMCP_DRAIN_TIMEOUT_SECONDS")]
    pub drain_timeout_seconds: Option<u64>,
    /// Seconds between expiry sweeps of the session store (default 30).
    #[arg(long, env = "JSMCP_SWEEP_INTERVAL_SECONDS")]
    pub sweep_interval_seconds: Option<u64>,
}

/// The JSON config file (camelCase keys, all optional). Unknown keys are refused so a
/// typo does not silently leave a default in force.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    /// Log filter.
    pub log_level: Option<String>,
    /// Most live sessions.
    pub max_sessions: Option<usize>,
    /// Idle TTL of stored sessions, seconds.
    pub session_ttl_seconds: Option<u64>,
    /// MCP idle timeout, seconds.
    pub idle_timeout_seconds: Option<u64>,
    /// Allowed browser origins.
    pub allowed_origins: Option<Vec<String>>,
    /// Allowed Host values.
    pub allowed_hosts: Option<Vec<String>>,
    /// Largest request body, bytes.
    pub max_body_bytes: Option<usize>,
    /// Hosts `http.request` steps may call.
    pub http_allowed_hosts: Option<Vec<String>>,
}

impl FileConfig {
    /// Reads and parses the file; the error names the file and the bad key or value.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            field: "config".into(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        serde_json::from_str(&text).map_err(|e| ConfigError {
            field: "config".into(),
            reason: format!("{}: {e}", path.display()),
        })
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration {field}: {reason}")]
pub struct ConfigError {
    /// Flag or file key.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// AI endpoint settings (present only when a base URL is configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiSettings {
    /// Base URL of the OpenAI-compatible API.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// API key.
    pub api_key: Option<String>,
}

/// Everything the server runs with, after merging flags, environment, file and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Address to bind.
    pub bind: IpAddr,
    /// Port.
    pub port: u16,
    /// Log filter, if configured.
    pub log_level: Option<String>,
    /// Embedded store directory.
    pub data_dir: PathBuf,
    /// Store kind.
    pub store: StoreKind,
    /// Redis URL.
    pub redis_url: Option<String>,
    /// Redis key prefix.
    pub redis_prefix: String,
    /// Embedded store page cache, bytes.
    pub store_cache_bytes: usize,
    /// Bearer token.
    pub auth_token: Option<String>,
    /// Store session cap.
    pub max_sessions: usize,
    /// MCP session cap.
    pub max_mcp_sessions: usize,
    /// The container's memory limit, when it has one (sizes the default MCP session cap).
    pub memory_limit_bytes: Option<u64>,
    /// Stored session idle TTL.
    pub session_ttl_seconds: u64,
    /// MCP session idle timeout.
    pub idle_timeout: Duration,
    /// Allowed Host values (loopback names always included).
    pub allowed_hosts: Vec<String>,
    /// Allowed Origins (empty = no check).
    pub allowed_origins: Vec<String>,
    /// Body limit.
    pub max_body_bytes: usize,
    /// Where `http.request` steps may go.
    pub http_egress: EgressPolicy,
    /// Workflow directories.
    pub workflows_dirs: Vec<PathBuf>,
    /// Docker socket path.
    pub docker_host: Option<String>,
    /// AI endpoint.
    pub ai: Option<AiSettings>,
    /// Shutdown grace period.
    pub drain_timeout: Duration,
    /// Expiry sweep interval.
    pub sweep_interval: Duration,
}

/// Host names always accepted: loopback, so local probes and tests work.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

fn positive<T: PartialOrd + Default + Copy>(field: &str, v: T) -> Result<T, ConfigError> {
    if v <= T::default() {
        return Err(ConfigError {
            field: field.into(),
            reason: "must be greater than zero".into(),
        });
    }
    Ok(v)
}

fn clean_list(items: Vec<String>) -> Vec<String> {
    items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Settings {
    /// Merges flags/env (`args`) over the file (`file`) over defaults, validating values.
    pub fn resolve(args: &ServeArgs, file: &FileConfig) -> Result<Settings, ConfigError> {
        let max_sessions = positive(
            "maxSessions",
            args.max_sessions.or(file.max_sessions).unwrap_or(100_000),
        )?;
        // Unset: as many as fit the container's memory limit, at most 10,000.
        let memory_limit_bytes = super::cgroup::memory_limit_bytes();
        let fits_memory = memory_limit_bytes.map_or(usize::MAX, super::cgroup::mcp_sessions_for);
        let max_mcp_sessions = positive(
            "maxMcpSessions",
            args.max_mcp_sessions
                .unwrap_or_else(|| max_sessions.min(10_000).min(fits_memory)),
        )?;
        let session_ttl_seconds = positive(
            "sessionTtlSeconds",
            args.session_ttl_seconds
                .or(file.session_ttl_seconds)
                .unwrap_or(86_400),
        )?;
        let idle = positive(
            "idleTimeoutSeconds",
            args.idle_timeout_seconds
                .or(file.idle_timeout_seconds)
                .unwrap_or(300),
        )?;
        let max_body_bytes = positive(
            "maxBodyBytes",
            args.max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(4 * 1024 * 1024),
        )?;
        let store = args.store.unwrap_or(StoreKind::Embedded);
        let redis_url = args.redis_url.clone().filter(|u| !u.is_empty());
        if store == StoreKind::Redis && redis_url.is_none() {
            return Err(ConfigError {
                field: "redisUrl".into(),
                reason: "JSMCP_REDIS_URL (--redis-url) is required with JSMCP_STORE=redis".into(),
            });
        }
        let mut allowed_hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|s| s.to_string()).collect();
        for h in clean_list(
            args.allowed_hosts
                .clone()
                .or_else(|| file.allowed_hosts.clone())
                .unwrap_or_default(),
        ) {
            if !allowed_hosts.contains(&h) {
                allowed_hosts.push(h);
            }
        }
        let allowed_origins = clean_list(
            args.allowed_origins
                .clone()
                .or_else(|| file.allowed_origins.clone())
                .unwrap_or_default(),
        );
        for o in &allowed_origins {
            if o != "null" && !o.contains("://") {
                return Err(ConfigError {
                    field: "allowedOrigins".into(),
                    reason: format!("{o:?} needs a scheme, e.g. https://{o}"),
                });
            }
        }
        let http_egress = EgressPolicy::parse(
            &args
                .http_allowed_hosts
                .clone()
                .or_else(|| file.http_allowed_hosts.clone())
                .unwrap_or_default(),
        )
        .map_err(|reason| ConfigError {
            field: "httpAllowedHosts".into(),
            reason,
        })?;
        let ai = match args.ai_base_url.clone().filter(|u| !u.is_empty()) {
            Some(base_url) => Some(AiSettings {
                base_url,
                model: args
                    .ai_model
                    .clone()
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| ConfigError {
                        field: "aiModel".into(),
                        reason: "JSMCP_AI_MODEL is required with JSMCP_AI_BASE_URL".into(),
                    })?,
                api_key: args.ai_api_key.clone().filter(|k| !k.is_empty()),
            }),
            None => None,
        };
        Ok(Settings {
            bind: args.bind.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            port: args.port.unwrap_or(3000),
            log_level: args.log_level.clone().or_else(|| file.log_level.clone()),
            data_dir: args
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("data")),
            store,
            redis_url,
            store_cache_bytes: positive("storeCacheMib", args.store_cache_mib.unwrap_or(16))?
                .saturating_mul(1024 * 1024),
            redis_prefix: args
                .redis_prefix
                .clone()
                .unwrap_or_else(|| "jsmcp:".to_string()),
            auth_token: args.auth_token.clone().filter(|t| !t.is_empty()),
            max_sessions,
            max_mcp_sessions,
            memory_limit_bytes,
            session_ttl_seconds,
            idle_timeout: Duration::from_secs(idle),
            allowed_hosts,
            allowed_origins,
            max_body_bytes,
            http_egress,
            workflows_dirs: args
                .workflows_dir
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            docker_host: args.docker_host.clone().filter(|d| !d.is_empty()),
            ai,
            drain_timeout: Duration::from_secs(args.drain_timeout_seconds.unwrap_or(25)),
            sweep_interval: Duration::from_secs(positive(
                "sweepIntervalSeconds",
                args.sweep_interval_seconds.unwrap_or(30),
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let cli = Cli::parse_from([
            "x",
            "--max-sessions",
            "5",
            "--allowed-hosts",
            "a.svc,10.0.0.1",
        ]);
        let file: FileConfig = serde_json::from_str(
            r#"{"maxSessions": 9, "sessionTtlSeconds": 60, "allowedHosts": ["file.host"], "logLevel": "debug"}"#,
        )
        .unwrap_or_default();
        let s = Settings::resolve(&cli.serve, &file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.max_sessions, 5);
        assert_eq!(s.session_ttl_seconds, 60);
        assert_eq!(s.log_level.as_deref(), Some("debug"));
        assert!(s.allowed_hosts.contains(&"a.svc".to_string()));
        assert!(s.allowed_hosts.contains(&"10.0.0.1".to_string()));
        assert!(!s.allowed_hosts.contains(&"file.host".to_string()));
        assert!(s.allowed_hosts.contains(&"localhost".to_string()));
        assert_eq!(s.port, 3000);
        assert_eq!(s.idle_timeout, Duration::from_secs(300));
    }

    #[test]
    fn file_with_unknown_key_is_refused_naming_the_key() {
        let err = serde_json::from_str::<FileConfig>(r#"{"maxSesions": 3}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("maxSesions"), "{err}");
    }

    #[test]
    fn redis_store_without_url_is_refused() {
        let cli = Cli::parse_from(["x", "--store", "redis"]);
        let err = Settings::resolve(&cli.serve, &FileConfig::default()).err();
        assert_eq!(err.map(|e| e.field), Some("redisUrl".to_string()));
    }

    #[test]
    fn zero_limits_and_schemeless_origins_are_refused() {
        let cli = Cli::parse_from(["x", "--max-body-bytes", "0"]);
        assert_eq!(
            Settings::resolve(&cli.serve, &FileConfig::default())
                .err()
                .map(|e| e.field),
            Some("maxBodyBytes".to_string())
        );
        let cli = Cli::parse_from(["x", "--allowed-origins", "example.com"]);
        assert_eq!(
            Settings::resolve(&cli.serve, &FileConfig::default())
                .err()
                .map(|e| e.field),
            Some("allowedOrigins".to_string())
        );
    }

    #[test]
    fn workflows_dir_is_a_colon_list() {
        let cli = Cli::parse_from(["x", "--workflows-dir", "/a:/b"]);
        let s =
            Settings::resolve(&cli.serve, &FileConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.workflows_dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
    }
}
