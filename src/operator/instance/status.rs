//! Pure status computation: what the Deployment reports -> the McpInstance's conditions and counts.

use k8s_openapi::api::apps::v1::Deployment;

use crate::api::conditions::{DEGRADED, NewCondition, PROGRESSING, READY};

/// Rollout facts read off a Deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutView {
    /// Desired pods (whoever set them).
    pub desired: i32,
    /// Pods of any revision.
    pub replicas: i32,
    /// Pods passing readiness.
    pub ready: i32,
    /// Pods on the newest revision.
    pub updated: i32,
    /// Pods available.
    pub available: i32,
    /// The Deployment controller has seen the latest spec.
    pub observed: bool,
    /// The Deployment controller gave up (ProgressDeadlineExceeded).
    pub deadline_exceeded: bool,
}

impl RolloutView {
    /// Reads the view off a Deployment (a missing status counts as nothing running yet).
    pub fn from_deployment(deployment: &Deployment) -> Self {
        let desired = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let status = deployment.status.clone().unwrap_or_default();
        let observed = match (deployment.metadata.generation, status.observed_generation) {
            (Some(generation), Some(observed)) => observed >= generation,
            _ => false,
        };
        let deadline_exceeded = status.conditions.unwrap_or_default().iter().any(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        RolloutView {
            desired,
            replicas: status.replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            observed,
            deadline_exceeded,
        }
    }

    /// Every desired pod runs the newest revision and is available, and no old pod is left.
    pub fn complete(&self) -> bool {
        self.observed
            && self.updated == self.desired
            && self.available >= self.desired
            && self.replicas == self.desired
    }
}

/// Conditions for an instance whose children were applied (or are paused) and whose Deployment is `view`.
pub fn rollout_conditions(view: &RolloutView, paused: bool) -> Vec<NewCondition> {
    // Ready once every desired pod runs the newest revision and is available, even while
    // old pods are still terminating.
    let serving = view.observed && view.updated >= view.desired && view.available >= view.desired;
    let ready = if view.desired == 0 {
        NewCondition::new(
            READY,
            false,
            "ScaledToZero",
            "the Deployment wants 0 replicas",
        )
    } else if serving {
        NewCondition::new(
            READY,
            true,
            "AllReplicasReady",
            format!("{}/{} replicas ready", view.ready, view.desired),
        )
    } else {
        NewCondition::new(
            READY,
            false,
            "ReplicasNotReady",
            format!(
                "{}/{} replicas available, {} on the new revision",
                view.available, view.desired, view.updated
            ),
        )
    };
    let progressing = if paused {
        NewCondition::new(
            PROGRESSING,
            false,
            "Paused",
            "spec.paused is true: the operator leaves the children as they are",
        )
    } else if view.complete() || view.desired == 0 {
        NewCondition::new(
            PROGRESSING,
            false,
            "RolloutComplete",
            "the current revision is fully rolled out",
        )
    } else {
        NewCondition::new(
            PROGRESSING,
            true,
            "RollingOut",
            format!(
                "{}/{} replicas updated, {} available",
                view.updated, view.desired, view.available
            ),
        )
    };
    let degraded = if view.deadline_exceeded {
        NewCondition::new(
            DEGRADED,
            true,
            "ProgressDeadlineExceeded",
            "the Deployment's rollout passed its progress deadline",
        )
    } else {
        NewCondition::new(DEGRADED, false, "AsExpected", "no problem found")
    };
    vec![ready, progressing, degraded]
}

/// Conditions while the operator cannot apply (invalid spec, missing reference): Degraded says
/// why, Progressing says what it waits for, Ready still reflects what runs now.
pub fn blocked_conditions(
    view: &RolloutView,
    reason: &str,
    message: String,
    waiting_for: &str,
) -> Vec<NewCondition> {
    let mut conditions = rollout_conditions(view, false);
    conditions.retain(|c| c.type_ == READY);
    conditions.push(NewCondition::new(DEGRADED, true, reason, message));
    conditions.push(NewCondition::new(PROGRESSING, false, reason, waiting_for));
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(desired: i32, replicas: i32, updated: i32, available: i32) -> RolloutView {
        RolloutView {
            desired,
            replicas,
            ready: available,
            updated,
            available,
            observed: true,
            deadline_exceeded: false,
        }
    }

    #[test]
    fn fully_rolled_out_deployment_is_ready_and_not_progressing() {
        let conditions = rollout_conditions(&view(2, 2, 2, 2), false);
        assert!(conditions[0].status && conditions[0].reason == "AllReplicasReady");
        assert!(!conditions[1].status && conditions[1].reason == "RolloutComplete");
        assert!(!conditions[2].status);
    }

    #[test]
    fn rollout_with_old_pods_left_is_progressing() {
        let conditions = rollout_conditions(&view(2, 3, 1, 2), false);
        assert!(conditions[1].status, "{conditions:?}");
        assert!(!conditions[0].status);
    }

    #[test]
    fn paused_instance_reports_paused_and_deadline_reports_degraded() {
        let mut v = view(1, 1, 0, 0);
        v.deadline_exceeded = true;
        let conditions = rollout_conditions(&v, true);
        assert_eq!(conditions[1].reason, "Paused");
        assert!(conditions[2].status && conditions[2].reason == "ProgressDeadlineExceeded");
    }

    #[test]
    fn blocked_instance_is_degraded_with_the_reason_and_keeps_ready_from_the_pods() {
        let conditions = blocked_conditions(
            &view(1, 1, 1, 1),
            "InvalidSpec",
            "spec.x: bad".into(),
            "waiting",
        );
        assert!(conditions.iter().any(|c| c.type_ == READY && c.status));
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == DEGRADED && c.status && c.reason == "InvalidSpec")
        );
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == PROGRESSING && !c.status && c.message == "waiting")
        );
    }

    #[test]
    fn unobserved_generation_is_not_complete() {
        let mut v = view(1, 1, 1, 1);
        v.observed = false;
        assert!(!v.complete());
    }
}
