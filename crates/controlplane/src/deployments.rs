//! The Deployment controller (without ReplicaSets: pods are owned by the
//! Deployment directly). Keeps `spec.replicas` active pods of the current
//! template, named `<deploy>-<template hash>-<5 random>` and labelled
//! `pod-template-hash`; on a template change it creates the new pods first
//! and retires old ones as new ones become Ready; writes the status
//! (`replicas`, `readyReplicas`, `availableReplicas`, `updatedReplicas`,
//! `observedGeneration`, `Available`/`Progressing`); deletes pods whose
//! Deployment is gone. Pods are removed through
//! [`crate::request_pod_deletion`] so kubelets shut them down gracefully.

use std::collections::{BTreeMap, HashSet};

use api::k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentCondition, DeploymentStatus},
        core::v1::Pod,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
use futures::StreamExt;
use store::Store;

use crate::Error;
use crate::PodDeletion;
use crate::cache::{Cache, Pacer, Pass, feed};
use crate::meta::{
    POD_TEMPLATE_HASH, controller_reference, controller_uid_of_kind, creation_order, key_of, now,
    pod_is_active, pod_is_finished, pod_is_ready, pod_is_terminating, pod_node, random_suffix,
    safe_encode, stable_hash,
};

/// What one reconcile of a Deployment must do.
#[derive(Debug, Clone, Default)]
pub struct DeploymentPlan<'a> {
    /// New pods to create (names already generated).
    pub create: Vec<Pod>,
    /// Pods to delete gracefully.
    pub delete: Vec<&'a Pod>,
    /// The new status, when it differs from the stored one.
    pub status: Option<DeploymentStatus>,
}

/// The stable hash of a Deployment's pod template (10 characters).
pub fn template_hash(deploy: &Deployment) -> String {
    let json = serde_json::to_vec(&deploy.spec.as_ref().map(|s| &s.template)).unwrap_or_default();
    safe_encode(stable_hash(&json), 10)
}

fn desired_replicas(deploy: &Deployment) -> usize {
    let n = deploy.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    usize::try_from(n).unwrap_or(0)
}

/// A new pod of the Deployment's current template.
fn new_pod(deploy: &Deployment, hash: &str, suffix: &str) -> Pod {
    let template = deploy
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(POD_TEMPLATE_HASH.into(), hash.into());
    let name = deploy.metadata.name.as_deref().unwrap_or("");
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}-{suffix}")),
            namespace: Some(
                deploy
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            ),
            labels: Some(labels),
            annotations: tmeta.annotations,
            owner_references: Some(vec![controller_reference(deploy)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Deletion preference: unscheduled, then not ready, then newest first.
fn deletion_rank(pod: &Pod) -> impl Ord + '_ {
    let (created, ns, name) = creation_order(&pod.metadata);
    (
        pod_node(pod).is_some(),
        pod_is_ready(pod),
        std::cmp::Reverse(created),
        ns,
        std::cmp::Reverse(name),
    )
}

fn count(n: usize) -> Option<i32> {
    Some(i32::try_from(n).unwrap_or(i32::MAX))
}

/// A condition, keeping the old timestamps when its status is unchanged.
fn condition(
    old: Option<&DeploymentStatus>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: &Time,
) -> DeploymentCondition {
    let status = if status { "True" } else { "False" };
    let previous = old
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    let unchanged = previous.filter(|c| c.status == status);
    let same_text = unchanged
        .filter(|c| c.reason.as_deref() == Some(reason) && c.message.as_deref() == Some(&message));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: unchanged
            .and_then(|c| c.last_transition_time.clone())
            .or_else(|| Some(now.clone())),
        last_update_time: same_text
            .and_then(|c| c.last_update_time.clone())
            .or_else(|| Some(now.clone())),
    }
}

/// Reconcile one Deployment against the pods it owns (any state).
/// Pure: `suffix` supplies random name suffixes, `now` the condition time.
pub fn plan_deployment<'a>(
    deploy: &Deployment,
    owned: &[&'a Pod],
    now: &Time,
    suffix: impl FnMut() -> String,
) -> DeploymentPlan<'a> {
    let desired = desired_replicas(deploy);
    let hash = template_hash(deploy);
    let active: Vec<&Pod> = owned.iter().copied().filter(|p| pod_is_active(p)).collect();
    let (current, old) = by_template(&active, &hash);
    let mut plan = DeploymentPlan {
        create: new_pods(
            deploy,
            &hash,
            owned,
            desired.saturating_sub(current.len()),
            suffix,
        ),
        // Finished pods (Succeeded/Failed) are replaced and cleaned up.
        delete: owned
            .iter()
            .copied()
            .filter(|p| pod_is_finished(p) && !pod_is_terminating(p))
            .collect(),
        status: None,
    };
    plan.delete.extend(pods_to_retire(current, old, desired));
    let status = deployment_status(deploy, &active, &hash, desired, now);
    if deploy.status.as_ref() != Some(&status) {
        plan.status = Some(status);
    }
    plan
}

/// Whether a pod belongs to the template with this hash.
fn is_current(pod: &Pod, hash: &str) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH))
        .is_some_and(|h| h == hash)
}

/// Active pods of the current template and of older ones, each in
/// [`deletion_rank`] order.
fn by_template<'a>(active: &[&'a Pod], hash: &str) -> (Vec<&'a Pod>, Vec<&'a Pod>) {
    let (mut current, mut old): (Vec<&Pod>, Vec<&Pod>) =
        active.iter().partition(|p| is_current(p, hash));
    current.sort_by(|a, b| deletion_rank(a).cmp(&deletion_rank(b)));
    old.sort_by(|a, b| deletion_rank(a).cmp(&deletion_rank(b)));
    (current, old)
}

/// `count` new pods of the current template, with names that clash with
/// no owned pod's (a clash, however unlikely, draws another suffix).
fn new_pods(
    deploy: &Deployment,
    hash: &str,
    owned: &[&Pod],
    count: usize,
    mut suffix: impl FnMut() -> String,
) -> Vec<Pod> {
    let mut taken: HashSet<String> = owned
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    (0..count)
        .map(|_| {
            loop {
                let pod = new_pod(deploy, hash, &suffix());
                if taken.insert(pod.metadata.name.clone().unwrap_or_default()) {
                    break pod;
                }
            }
        })
        .collect()
}

/// The active pods to delete: current-template pods beyond `desired`,
/// and old-template pods except as many (ready ones preferred) as still
/// cover for current ones that are not Ready yet. Both lists come in
/// [`deletion_rank`] order.
fn pods_to_retire<'a>(
    mut current: Vec<&'a Pod>,
    mut old: Vec<&'a Pod>,
    desired: usize,
) -> Vec<&'a Pod> {
    let mut retire: Vec<&Pod> = current
        .drain(..current.len().saturating_sub(desired))
        .collect();
    let current_ready = current.iter().filter(|p| pod_is_ready(p)).count();
    let keep_old = desired.saturating_sub(current_ready).min(old.len());
    retire.extend(old.drain(..old.len() - keep_old));
    retire
}

/// The Deployment's status for its active pods, keeping the fields and
/// condition timestamps it does not change.
fn deployment_status(
    deploy: &Deployment,
    active: &[&Pod],
    hash: &str,
    desired: usize,
    now: &Time,
) -> DeploymentStatus {
    let ready = active.iter().filter(|p| pod_is_ready(p)).count();
    let updated = active.iter().filter(|p| is_current(p, hash)).count();
    let old_status = deploy.status.as_ref();
    let available = ready >= desired;
    let complete = updated == desired && active.len() == desired && ready == desired;
    DeploymentStatus {
        observed_generation: deploy.metadata.generation,
        replicas: count(active.len()),
        updated_replicas: count(updated),
        ready_replicas: count(ready),
        available_replicas: count(ready),
        unavailable_replicas: count(desired.saturating_sub(ready)),
        conditions: Some(vec![
            condition(
                old_status,
                "Available",
                available,
                if available {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                format!(
                    "Deployment {} minimum availability.",
                    if available { "has" } else { "does not have" }
                ),
                now,
            ),
            condition(
                old_status,
                "Progressing",
                true,
                if complete {
                    "NewReplicaSetAvailable"
                } else {
                    "ReplicaSetUpdated"
                },
                format!(
                    "Pods of template \"{hash}\" {}.",
                    if complete {
                        "have successfully progressed"
                    } else {
                        "are progressing"
                    }
                ),
                now,
            ),
        ]),
        ..old_status.cloned().unwrap_or_default()
    }
}

/// Pods controlled by a Deployment uid that no longer exists.
pub fn orphaned_pods<'a>(deployments: &[&Deployment], pods: &[&'a Pod]) -> Vec<&'a Pod> {
    let live: HashSet<&str> = deployments
        .iter()
        .filter_map(|d| d.metadata.uid.as_deref())
        .collect();
    pods.iter()
        .copied()
        .filter(|p| !pod_is_terminating(p))
        .filter(|p| {
            controller_uid_of_kind::<Deployment>(&p.metadata).is_some_and(|uid| !live.contains(uid))
        })
        .collect()
}

/// One pass over every Deployment and owned pod.
async fn reconcile(
    store: &Store,
    deployments: &mut Cache<Deployment>,
    pods: &mut Cache<Pod>,
) -> bool {
    let mut pass = Pass::new("deployments");
    let stamp = now();
    let mut creates = Vec::new();
    let mut deletes: Vec<(String, String)> = Vec::new();
    let mut statuses = Vec::new();
    {
        let mut by_owner: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
        for p in pods.values() {
            if let Some(uid) = controller_uid_of_kind::<Deployment>(&p.metadata) {
                by_owner.entry(uid).or_default().push(p);
            }
        }
        let deploy_view: Vec<&Deployment> = deployments.values().collect();
        for d in &deploy_view {
            let owned = d.metadata.uid.as_deref().and_then(|u| by_owner.get(u));
            let plan = plan_deployment(
                d,
                owned.map_or(&[][..], Vec::as_slice),
                &stamp,
                random_suffix,
            );
            creates.extend(plan.create);
            deletes.extend(plan.delete.iter().map(|p| pod_id(p)));
            if let Some(status) = plan.status {
                let mut d = (*d).clone();
                d.status = Some(status);
                statuses.push(d);
            }
        }
        let pod_view: Vec<&Pod> = pods.values().collect();
        for p in orphaned_pods(&deploy_view, &pod_view) {
            tracing::info!(
                pod = key_of(&p.metadata),
                "deleting pod of a deleted Deployment"
            );
            deletes.push(pod_id(p));
        }
    }
    for pod in creates {
        let key = key_of(&pod.metadata);
        if let Some(created) = pass.check("create pod", &key, store.create(&pod).await) {
            tracing::info!(pod = key, "created pod");
            pods.written(created);
        }
    }
    for (ns, name) in deletes {
        let key = format!("{ns}/{name}");
        let result = crate::delete_pod(store, &ns, &name, false).await;
        match pass.check("delete pod", &key, result) {
            Some(PodDeletion::Terminating(p)) => {
                tracing::info!(pod = key, "requested graceful pod deletion");
                pods.written(p);
            }
            Some(PodDeletion::Deleted(p)) => {
                tracing::info!(pod = key, "deleted pod");
                pods.deleted(&p);
            }
            Some(PodDeletion::Absent) | None => {}
        }
    }
    for d in statuses {
        let key = key_of(&d.metadata);
        if let Some(written) = pass.check("update status", &key, store.update(&d).await) {
            deployments.written(written);
        }
    }
    pass.ok()
}

fn pod_id(pod: &Pod) -> (String, String) {
    (
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Controller loop: watches Deployments and Pods.
pub async fn run(store: Store) -> Result<(), Error> {
    let mut deployments = Cache::<Deployment>::default();
    let mut pods = Cache::<Pod>::default();
    let mut deploy_rx = store.reflect::<Deployment>(None);
    let mut pod_rx = store.reflect::<Pod>(None);
    let mut pacer = Pacer::default();
    loop {
        tokio::select! {
            change = deploy_rx.next() => feed(&mut deployments, change, &mut pacer)?,
            change = pod_rx.next() => feed(&mut pods, change, &mut pacer)?,
            () = pacer.due(), if deployments.synced() && pods.synced() => {
                let ok = reconcile(&store, &mut deployments, &mut pods).await;
                pacer.finished(ok);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use api::k8s_openapi::{
        api::core::v1::{PodCondition, PodStatus},
        jiff::Timestamp,
    };

    use super::*;

    fn webpod(replicas: i32) -> Deployment {
        let mut d: Deployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "webpod", "namespace": "default", "uid": "d-uid", "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "webpod"}},
                "template": {
                    "metadata": {"labels": {"app": "webpod"}},
                    "spec": {"containers": [{"name": "webpod", "image": "traefik/whoami",
                                             "ports": [{"containerPort": 80}]}]}
                }
            }
        }))
        .unwrap();
        d.metadata.generation = Some(1);
        d
    }

    fn counter() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("s{n:04}")
        }
    }

    fn ready(mut p: Pod, node: &str, ready: bool, created: i64) -> Pod {
        p.spec.get_or_insert_default().node_name = Some(node.into());
        p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    fn names<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Vec<&'a str> {
        pods.into_iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn creates_pods_of_the_template_with_hash_label_and_owner() {
        let d = webpod(3);
        let plan = plan_deployment(&d, &[], &now(), counter());
        assert_eq!(plan.create.len(), 3);
        let hash = template_hash(&d);
        assert_eq!(hash.len(), 10);
        let p = &plan.create[0];
        assert_eq!(
            p.metadata.name.as_deref(),
            Some(format!("webpod-{hash}-s0001").as_str())
        );
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "webpod");
        assert_eq!(labels[POD_TEMPLATE_HASH], hash);
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Deployment", "d-uid", Some(true))
        );
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        let status = plan.status.unwrap();
        assert_eq!(
            (
                status.replicas,
                status.ready_replicas,
                status.updated_replicas
            ),
            (Some(0), Some(0), Some(0))
        );
        // Default replicas is 1.
        let mut one = webpod(1);
        one.spec.as_mut().unwrap().replicas = None;
        assert_eq!(
            plan_deployment(&one, &[], &now(), counter()).create.len(),
            1
        );
    }

    #[test]
    fn scale_down_deletes_unready_and_newest_first_and_ignores_terminating() {
        let d = webpod(3);
        let seed = plan_deployment(&d, &[], &now(), counter()).create;
        let mut pods: Vec<Pod> = seed
            .into_iter()
            .enumerate()
            .map(|(i, p)| ready(p, "n", i != 0, i as i64))
            .collect();
        let view: Vec<&Pod> = pods.iter().collect();
        let plan = plan_deployment(&d, &view, &now(), counter());
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        let status = plan.status.unwrap();
        assert_eq!(
            (
                status.replicas,
                status.ready_replicas,
                status.available_replicas
            ),
            (Some(3), Some(2), Some(2))
        );

        let mut d1 = webpod(1);
        d1.status = Some(status);
        let plan = plan_deployment(&d1, &view, &now(), counter());
        // pod 0 is not ready, pod 2 is the newest ready one.
        assert_eq!(
            names(plan.delete.iter().copied()),
            [
                pods[0].metadata.name.as_deref().unwrap(),
                pods[2].metadata.name.as_deref().unwrap()
            ]
        );

        // Terminating pods do not count: one left terminating -> create one.
        pods[1].metadata.deletion_timestamp = Some(now());
        let view: Vec<&Pod> = pods.iter().collect();
        let plan = plan_deployment(&d, &view, &now(), counter());
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.status.unwrap().replicas, Some(2));

        // Scale to zero deletes every active pod.
        let plan = plan_deployment(&webpod(0), &view, &now(), counter());
        assert_eq!(plan.delete.len(), 2);
    }

    #[test]
    fn template_change_creates_new_first_then_retires_old_as_new_get_ready() {
        let d = webpod(2);
        let old: Vec<Pod> = plan_deployment(&d, &[], &now(), counter())
            .create
            .into_iter()
            .enumerate()
            .map(|(i, p)| ready(p, "n", true, i as i64))
            .collect();
        let mut d2 = webpod(2);
        d2.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .image = Some("traefik/whoami:v2".into());
        d2.metadata.generation = Some(2);
        assert_ne!(template_hash(&d), template_hash(&d2));

        let view: Vec<&Pod> = old.iter().collect();
        let plan = plan_deployment(&d2, &view, &now(), counter());
        assert_eq!(plan.create.len(), 2);
        assert!(
            plan.delete.is_empty(),
            "old pods stay until new ones are ready"
        );
        let status = plan.status.unwrap();
        assert_eq!(
            (status.updated_replicas, status.observed_generation),
            (Some(0), Some(2))
        );

        // One new pod ready: one old pod may go.
        let new: Vec<Pod> = plan
            .create
            .into_iter()
            .enumerate()
            .map(|(i, p)| ready(p, "n", i == 0, 10 + i as i64))
            .collect();
        let view: Vec<&Pod> = old.iter().chain(&new).collect();
        let plan = plan_deployment(&d2, &view, &now(), counter());
        assert!(plan.create.is_empty());
        assert_eq!(plan.delete.len(), 1);
        // Both ready: all old pods go.
        let new: Vec<Pod> = new.into_iter().map(|p| ready(p, "n", true, 10)).collect();
        let view: Vec<&Pod> = old.iter().chain(&new).collect();
        let plan = plan_deployment(&d2, &view, &now(), counter());
        assert_eq!(names(plan.delete.iter().copied()).len(), 2);
        assert!(
            plan.delete
                .iter()
                .all(|p| !new.iter().any(|n| n.metadata.name == p.metadata.name))
        );
    }

    #[test]
    fn status_is_stable_and_orphans_are_found() {
        let d = webpod(1);
        let pods: Vec<Pod> = plan_deployment(&d, &[], &now(), counter())
            .create
            .into_iter()
            .map(|p| ready(p, "n", true, 1))
            .collect();
        let view: Vec<&Pod> = pods.iter().collect();
        let mut d = d;
        d.status = plan_deployment(&d, &view, &now(), counter()).status;
        let conditions = d.status.as_ref().unwrap().conditions.as_ref().unwrap();
        assert!(
            conditions.iter().all(|c| c.status == "True"),
            "{conditions:?}"
        );
        assert_eq!(
            conditions[1].reason.as_deref(),
            Some("NewReplicaSetAvailable")
        );
        let later = Time(now().0 + std::time::Duration::from_secs(60));
        assert!(
            plan_deployment(&d, &view, &later, counter())
                .status
                .is_none(),
            "no rewrite without change"
        );

        assert!(orphaned_pods(&[&d], &view).is_empty());
        assert_eq!(orphaned_pods(&[], &view).len(), 1);
        let mut other = d.clone();
        other.metadata.uid = Some("new-uid".into());
        assert_eq!(
            orphaned_pods(&[&other], &view).len(),
            1,
            "re-created Deployment does not adopt"
        );
    }
}
