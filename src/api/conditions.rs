//! Kubernetes-style status conditions, merged so `lastTransitionTime` only moves on a change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition type: the instance serves traffic with every desired replica ready.
pub const READY: &str = "Ready";
/// Condition type: a rollout is under way.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: something is wrong (invalid spec, missing reference, failing pods).
pub const DEGRADED: &str = "Degraded";
/// Condition type: the operator rolled the instance back to its last known good revision.
pub const ROLLED_BACK: &str = "RolledBack";

/// A condition to set, before it is merged with what status already holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCondition {
    /// Condition type, e.g. [`READY`].
    pub type_: &'static str,
    /// `true` → "True", `false` → "False".
    pub status: bool,
    /// CamelCase machine-readable reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl NewCondition {
    /// Builds a condition.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Merges `updates` into `existing`: a condition whose status did not change keeps its
/// `lastTransitionTime`; reason, message and observedGeneration always follow the update.
/// Conditions not named in `updates` are kept as they are.
pub fn merge(
    existing: &[Condition],
    updates: &[NewCondition],
    generation: Option<i64>,
) -> Vec<Condition> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut merged: Vec<Condition> = existing.to_vec();
    for update in updates {
        let status = status_str(update.status).to_string();
        match merged.iter_mut().find(|c| c.type_ == update.type_) {
            Some(current) => {
                if current.status != status {
                    current.last_transition_time = now.clone();
                }
                current.status = status;
                current.reason = update.reason.clone();
                current.message = update.message.clone();
                current.observed_generation = generation;
            }
            None => merged.push(Condition {
                type_: update.type_.to_string(),
                status,
                reason: update.reason.clone(),
                message: update.message.clone(),
                observed_generation: generation,
                last_transition_time: now.clone(),
            }),
        }
    }
    merged
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition exists with status "True".
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_status_keeps_transition_time_but_takes_new_reason() {
        let first = merge(
            &[],
            &[NewCondition::new(READY, false, "Pending", "waiting")],
            Some(1),
        );
        let before = first[0].last_transition_time.clone();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = merge(
            &first,
            &[NewCondition::new(READY, false, "PodsStarting", "1/2")],
            Some(2),
        );
        assert_eq!(second[0].last_transition_time, before);
        assert_eq!(second[0].reason, "PodsStarting");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn changed_status_moves_transition_time_and_keeps_other_conditions() {
        let first = merge(
            &[],
            &[
                NewCondition::new(READY, false, "Pending", ""),
                NewCondition::new(DEGRADED, false, "AsExpected", ""),
            ],
            Some(1),
        );
        let before = first[0].last_transition_time.clone();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = merge(
            &first,
            &[NewCondition::new(READY, true, "AllReplicasReady", "")],
            Some(1),
        );
        assert_ne!(second[0].last_transition_time, before);
        assert!(is_true(&second, READY));
        assert!(!is_true(&second, DEGRADED));
        assert_eq!(second.len(), 2);
    }
}
