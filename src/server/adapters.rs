//! Binds the [`backends`](super::backends) seams to real clients for the configured settings.

use super::backends::Backends;
use super::config::Settings;
use super::metrics::Metrics;

/// Builds the backends the settings ask for; a component that cannot be set up is left out
/// with the reason, which `/status` and the tools report.
pub async fn build(settings: &Settings, _metrics: &Metrics) -> Backends {
    let mut b = Backends::default();
    let _ = settings;
    b.missing_reasons.push((
        "docker",
        "the Docker Engine client is not part of this build yet".into(),
    ));
    b.missing_reasons.push((
        "ai",
        "the AI completion client is not part of this build yet".into(),
    ));
    b.missing_reasons.push((
        "workflows",
        "the workflow engine is not part of this build yet".into(),
    ));
    b
}
