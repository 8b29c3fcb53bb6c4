//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! LeaseLock does it, so that only one of several operator replicas runs
//! the controllers.
//!
//! A candidate reads the Lease every `retry_period`: absent → create it
//! holding it; held by someone else whose record has not changed for
//! `lease_duration` (measured on the local clock from when the record was
//! last seen to change, never from the remote timestamps) → take it over
//! (`leaseTransitions + 1`); held by itself → renew `renewTime`. Writes are
//! compare-and-swap on the resourceVersion, so two candidates never both
//! win. A leader that cannot renew within `renew_deadline` has lost.

use std::time::Duration;

use api::k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use api::k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use store::Store;
use tokio::time::Instant;

/// The operator's Lease (upstream's name).
pub const LEASE_NAME: &str = "cilium-operator-resource-lock";

/// Timings of an election (client-go's defaults for core components).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long others wait after the last observed renewal.
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it gives up.
    pub renew_deadline: Duration,
    /// How often candidates and the leader act.
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a candidate should do with the Lease it read.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create the Lease, holding it.
    Create(Lease),
    /// Write this Lease (take over, or renew).
    Write(Lease),
    /// Someone else holds it: wait.
    Wait,
}

/// The last record a candidate saw and when (local clock).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    record: Option<LeaseSpec>,
    at: Option<Instant>,
}

/// Decide on the Lease as read (`None`: absent), as `me`, at `now`.
pub fn decide(
    current: Option<&Lease>,
    me: &str,
    namespace: &str,
    timings: &Timings,
    observed: &mut Observed,
    now: Instant,
    wall: jiff::Timestamp,
) -> Step {
    let stamp = Some(MicroTime(wall));
    let duration = i32::try_from(timings.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let Some(current) = current else {
        let mut lease = Lease::default();
        lease.metadata.name = Some(LEASE_NAME.into());
        lease.metadata.namespace = Some(namespace.into());
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(me.into()),
            lease_duration_seconds: Some(duration),
            acquire_time: stamp.clone(),
            renew_time: stamp,
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        });
        return Step::Create(lease);
    };
    let spec = current.spec.clone().unwrap_or_default();
    if observed.record.as_ref() != Some(&spec) {
        observed.record = Some(spec.clone());
        observed.at = Some(now);
    }
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
    let mine = holder == Some(me);
    let held_duration = spec
        .lease_duration_seconds
        .map_or(timings.lease_duration, |s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0))
        });
    let expired = observed
        .at
        .is_none_or(|at| now.duration_since(at) >= held_duration);
    if holder.is_some() && !mine && !expired {
        return Step::Wait;
    }
    let mut lease = current.clone();
    let transitions = spec.lease_transitions.unwrap_or(0);
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(me.into()),
        lease_duration_seconds: Some(duration),
        acquire_time: if mine {
            spec.acquire_time.clone()
        } else {
            stamp.clone()
        },
        renew_time: stamp,
        lease_transitions: Some(if mine { transitions } else { transitions + 1 }),
        ..LeaseSpec::default()
    });
    Step::Write(lease)
}

/// One candidate.
#[derive(Debug)]
pub struct Elector {
    store: Store,
    namespace: String,
    identity: String,
    timings: Timings,
    observed: Observed,
}

impl Elector {
    /// A candidate named `identity` for the Lease in `namespace`.
    pub fn new(store: Store, namespace: &str, identity: &str, timings: Timings) -> Self {
        Self {
            store,
            namespace: namespace.into(),
            identity: identity.into(),
            timings,
            observed: Observed::default(),
        }
    }

    /// One attempt to acquire or renew: whether this candidate holds the
    /// Lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> store::Result<bool> {
        let current = self
            .store
            .get::<Lease>(Some(&self.namespace), LEASE_NAME)
            .await?;
        let step = decide(
            current.as_ref(),
            &self.identity,
            &self.namespace,
            &self.timings,
            &mut self.observed,
            Instant::now(),
            jiff::Timestamp::now(),
        );
        let written = match step {
            Step::Wait => return Ok(false),
            Step::Create(lease) => self.store.create(&lease).await,
            Step::Write(lease) => self.store.update(&lease).await,
        };
        match written {
            Ok(lease) => {
                self.observed.record = lease.spec;
                self.observed.at = Some(Instant::now());
                Ok(true)
            }
            Err(store::Error::Conflict { .. } | store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Wait until this candidate leads.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = LEASE_NAME, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "cannot read or write the leader lease"),
            }
            tokio::time::sleep(self.timings.retry_period).await;
        }
    }

    /// Renew every retry period; returns when leadership is lost (no
    /// successful renewal within the renew deadline, or someone else
    /// holds the Lease).
    pub async fn hold(&mut self) {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.timings.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = Instant::now(),
                Ok(false) => {
                    tracing::warn!(
                        lease = LEASE_NAME,
                        "leader lease taken by another candidate"
                    );
                    return;
                }
                Err(error) => tracing::warn!(%error, "cannot renew the leader lease"),
            }
            if last_renewal.elapsed() >= self.timings.renew_deadline {
                tracing::warn!(
                    lease = LEASE_NAME,
                    "could not renew the leader lease in time"
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timings() -> Timings {
        Timings::default()
    }

    #[test]
    fn decisions_follow_the_lease_lock_algorithm() {
        let t0 = Instant::now();
        let wall = jiff::Timestamp::UNIX_EPOCH;
        let mut seen = Observed::default();
        let Step::Create(lease) = decide(None, "a", "kube-system", &timings(), &mut seen, t0, wall)
        else {
            panic!("absent lease is created")
        };
        let spec = lease.spec.clone().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.lease_duration_seconds, Some(15));

        // Another candidate waits while the record keeps changing...
        let mut b = Observed::default();
        assert_eq!(
            decide(
                Some(&lease),
                "b",
                "kube-system",
                &timings(),
                &mut b,
                t0,
                wall
            ),
            Step::Wait
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            decide(
                Some(&lease),
                "b",
                "kube-system",
                &timings(),
                &mut b,
                later,
                wall
            ),
            Step::Wait
        );
        // ...and takes over once it has not changed for the lease duration.
        let expired = t0 + Duration::from_secs(15);
        let Step::Write(taken) = decide(
            Some(&lease),
            "b",
            "kube-system",
            &timings(),
            &mut b,
            expired,
            wall,
        ) else {
            panic!("expired lease is taken over")
        };
        let spec = taken.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_transitions, Some(1));

        // The holder renews, keeping its acquire time and transitions.
        let Step::Write(renewed) = decide(
            Some(&lease),
            "a",
            "kube-system",
            &timings(),
            &mut seen,
            later,
            wall,
        ) else {
            panic!("holder renews")
        };
        let spec = renewed.spec.unwrap();
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.acquire_time, lease.spec.unwrap().acquire_time);
    }

    #[tokio::test(start_paused = true)]
    async fn one_leader_and_a_takeover_when_it_stops() {
        let store = Store::memory();
        let fast = Timings {
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_millis(500),
        };
        let mut a = Elector::new(store.clone(), "kube-system", "a", fast);
        let mut b = Elector::new(store.clone(), "kube-system", "b", fast);
        a.acquire().await;
        assert!(!b.try_acquire_or_renew().await.unwrap(), "b waits");
        assert!(a.try_acquire_or_renew().await.unwrap(), "a renews");
        // a stops renewing; b takes over after the lease duration.
        let takeover = tokio::time::timeout(Duration::from_secs(10), b.acquire()).await;
        assert!(takeover.is_ok());
        let lease: Lease = store
            .get(Some("kube-system"), LEASE_NAME)
            .await
            .unwrap()
            .unwrap();
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_transitions, Some(1));
        // a notices it lost.
        assert!(
            tokio::time::timeout(Duration::from_secs(10), a.hold())
                .await
                .is_ok()
        );
    }
}
