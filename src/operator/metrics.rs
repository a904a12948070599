//! The operator's Prometheus metrics: one registry, bounded labels (controller, result, reason).

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the operator exports.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Reconciles by controller and result (`success` | `error`).
    pub reconciles: IntCounterVec,
    /// Reconcile failures by controller and error class.
    pub failures: IntCounterVec,
    /// Reconcile duration by controller.
    pub duration: HistogramVec,
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("jsmcp_operator".into()), None).unwrap_or_default();
        let reconciles = IntCounterVec::new(
            Opts::new("reconcile_total", "Reconciles by controller and result"),
            &["controller", "result"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let failures = IntCounterVec::new(
            Opts::new(
                "reconcile_errors_total",
                "Failed reconciles by controller and error class",
            ),
            &["controller", "reason"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "reconcile_duration_seconds",
                "Reconcile duration by controller",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["controller"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let leader = IntGauge::new("leader", "1 while this replica holds the leader lease")
            .unwrap_or_else(|_| unreachable_metric());
        for collector in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failures.clone()),
            Box::new(duration.clone()),
            Box::new(leader.clone()),
        ] {
            // Names are constants and unique, so registration cannot collide.
            let _ = registry.register(collector);
        }
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            leader,
        }
    }

    /// Records one reconcile.
    pub fn observe(&self, controller: &str, elapsed: Duration, error: Option<&crate::Error>) {
        let result = if error.is_some() { "error" } else { "success" };
        self.reconciles
            .with_label_values(&[controller, result])
            .inc();
        self.duration
            .with_label_values(&[controller])
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let encoder = prometheus::TextEncoder::new();
        if encoder
            .encode_utf8(&self.registry.gather(), &mut out)
            .is_err()
        {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Metric constructors only fail on invalid constant names, which tests rule out.
fn unreachable_metric<T>() -> T {
    panic!("invalid constant metric definition")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_reconcile_counts_with_bounded_labels() {
        let metrics = Metrics::new();
        metrics.observe("mcpinstance", Duration::from_millis(3), None);
        metrics.observe(
            "mcpinstance",
            Duration::from_millis(3),
            Some(&crate::Error::Other("x".into())),
        );
        let text = metrics.render();
        assert!(
            text.contains(
                r#"jsmcp_operator_reconcile_total{controller="mcpinstance",result="success"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"jsmcp_operator_reconcile_total{controller="mcpinstance",result="error"} 1"#
        ));
        assert!(text.contains("jsmcp_operator_reconcile_duration_seconds_bucket"));
    }
}
