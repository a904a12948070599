//! Tracing setup shared by every subcommand: `RUST_LOG` filter, text or JSON lines on stderr.

use std::sync::OnceLock;

use tracing_subscriber::{EnvFilter, Registry, fmt, prelude::*, reload};

/// Handle to swap the filter after start (`js-mcp serve` reads its log level from a file).
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber. `json` selects JSON lines (for log collectors).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    // A second init (tests that start several components) keeps the first subscriber.
    if result.is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// Replaces the log filter (`info`, `debug`, `js_mcp=debug,info`, ...).
pub fn set_filter(directives: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
    match FILTER.get() {
        Some(h) => h.reload(filter).map_err(|e| e.to_string()),
        None => Err("tracing is not initialised".into()),
    }
}
