//! Leader election through a coordination.k8s.io/v1 Lease, so several operator replicas can run
//! and only one acts. Updates use the Lease's resourceVersion: two candidates never both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

/// Lease timing, as in client-go's defaults scaled for a small operator.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (pod name + random suffix).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews.
    pub renew_every: Duration,
    /// How often a candidate retries.
    pub retry_every: Duration,
}

impl LeaseSettings {
    /// Defaults: 15 s lease, renew every 5 s, retry every 2 s.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaseSettings {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// What one attempt on the Lease found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold it now.
    Held,
    /// Someone else holds a live lease.
    Taken(String),
}

/// Blocks until this replica holds the lease (or `shutdown` fires: returns false).
pub async fn acquire(
    client: &Client,
    settings: &LeaseSettings,
    shutdown: &CancellationToken,
) -> bool {
    let api: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    let mut last_holder = String::new();
    loop {
        match try_acquire_or_renew(&api, settings).await {
            Ok(Attempt::Held) => {
                tracing::info!(identity = %settings.identity, lease = %settings.name, "became leader");
                return true;
            }
            Ok(Attempt::Taken(holder)) => {
                if holder != last_holder {
                    tracing::info!(%holder, "another replica leads; standing by");
                    last_holder = holder;
                }
            }
            Err(error) => tracing::warn!(%error, "leader election attempt failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(settings.retry_every) => {}
        }
    }
}

/// Renews the lease until `shutdown` fires (then releases it) or the lease is lost (then fires
/// `lost`). A leader that cannot renew within the lease duration must stop acting.
pub async fn keep(
    client: Client,
    settings: LeaseSettings,
    shutdown: CancellationToken,
    lost: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                release(&api, &settings).await;
                return;
            }
            _ = tokio::time::sleep(settings.renew_every) => {}
        }
        match try_acquire_or_renew(&api, &settings).await {
            Ok(Attempt::Held) => last_renewal = tokio::time::Instant::now(),
            Ok(Attempt::Taken(holder)) => {
                tracing::error!(%holder, "lost the leader lease");
                lost.cancel();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "could not renew the leader lease");
                if last_renewal.elapsed() >= settings.lease_duration {
                    tracing::error!("leader lease expired without renewal");
                    lost.cancel();
                    return;
                }
            }
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn expired(spec: &LeaseSpec) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    renewed
        .0
        .checked_add(duration)
        .map(|until| until < Timestamp::now())
        .unwrap_or(true)
}

async fn try_acquire_or_renew(api: &Api<Lease>, settings: &LeaseSettings) -> kube::Result<Attempt> {
    let duration_secs = i32::try_from(settings.lease_duration.as_secs()).unwrap_or(15);
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(settings.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(settings.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Held),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                Ok(Attempt::Taken("unknown (raced)".into()))
            }
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == settings.identity {
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(duration_secs);
    } else if holder.is_empty() || expired(spec) {
        spec.holder_identity = Some(settings.identity.clone());
        spec.lease_duration_seconds = Some(duration_secs);
        spec.acquire_time = Some(now());
        spec.renew_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    } else {
        return Ok(Attempt::Taken(holder));
    }
    // replace() sends our resourceVersion: a concurrent writer makes this a 409, never a double win.
    match api
        .replace(&settings.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(Attempt::Held),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Ok(Attempt::Taken("unknown (raced)".into()))
        }
        Err(e) => Err(e),
    }
}

/// Gives the lease up so a standby replica takes over at once instead of after expiry.
async fn release(api: &Api<Lease>, settings: &LeaseSettings) {
    let Ok(Some(mut lease)) = api.get_opt(&settings.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    spec.acquire_time = None;
    match api
        .replace(&settings.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => tracing::info!("released the leader lease"),
        Err(error) => tracing::warn!(%error, "could not release the leader lease"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_without_renewal_is_expired_and_fresh_lease_is_not() {
        assert!(expired(&LeaseSpec::default()));
        let fresh = LeaseSpec {
            renew_time: Some(now()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        };
        assert!(!expired(&fresh));
        let old = LeaseSpec {
            renew_time: Some(MicroTime(Timestamp::now() - SignedDuration::from_secs(60))),
            lease_duration_seconds: Some(15),
            ..Default::default()
        };
        assert!(expired(&old));
    }
}
