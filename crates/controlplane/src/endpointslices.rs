//! The EndpointSlice controller: for every Service with a selector, one
//! IPv4 EndpointSlice `<service>-<5 chars derived from the Service uid>`
//! listing the pods of the namespace that match the selector and have an
//! IP, with `ready`/`serving`/`terminating` conditions, node and pod
//! reference, and the Service ports resolved against the pods' (possibly
//! named) container ports. Writes only on change; deletes slices of
//! deleted or selector-less Services. Owns only the slices labelled
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`.

use std::collections::BTreeMap;

use api::k8s_openapi::{
    api::{
        core::v1::{ObjectReference, Pod, Service, ServicePort},
        discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice},
    },
    apimachinery::{pkg::apis::meta::v1::ObjectMeta, pkg::util::intstr::IntOrString},
};
use futures::StreamExt;
use store::Store;

use crate::Error;
use crate::cache::{Cache, Pacer, Pass, Write, feed};
use crate::meta::{
    controller_reference, key_of, labels, map_selector_matches, pod_ip, pod_is_finished,
    pod_is_ready, pod_is_terminating, pod_node, safe_encode, stable_hash,
};

/// Label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`] (as upstream's).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// A write this controller must make.
pub type SliceAction = Write<EndpointSlice>;

/// The slice name of a Service: stable for its lifetime (from the uid).
pub fn slice_name(svc: &Service) -> String {
    let seed = svc
        .metadata
        .uid
        .clone()
        .unwrap_or_else(|| key_of(&svc.metadata));
    format!(
        "{}-{}",
        svc.metadata.name.as_deref().unwrap_or(""),
        safe_encode(stable_hash(seed.as_bytes()), 5)
    )
}

/// The Service's selector, if it manages endpoints at all.
fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// The container port a Service port's targetPort names on `pod`.
fn named_port(pod: &Pod, name: &str, protocol: &str) -> Option<i32> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| {
            p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol
        })
        .map(|p| p.container_port)
}

/// A Service port resolved against the endpoint pods (numeric targetPort,
/// or the first pod that defines the named port); `None` if unresolvable.
fn resolve_port(port: &ServicePort, pods: &[&Pod]) -> Option<EndpointPort> {
    let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
    let number = match &port.target_port {
        None => port.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => {
            pods.iter().find_map(|p| named_port(p, name, &protocol))?
        }
    };
    Some(EndpointPort {
        name: Some(port.name.clone().unwrap_or_default()),
        protocol: Some(protocol),
        port: Some(number),
        app_protocol: port.app_protocol.clone(),
    })
}

fn endpoint(pod: &Pod, ip: &str, publish_not_ready: bool) -> Endpoint {
    let terminating = pod_is_terminating(pod);
    let serving = pod_is_ready(pod) || publish_not_ready;
    Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(serving && !terminating),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        node_name: pod_node(pod).map(Into::into),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The slice a Service should have, given all pods (any namespace), or
/// `None` when the Service has no selector.
pub fn desired_slice(svc: &Service, pods: &[&Pod]) -> Option<EndpointSlice> {
    let selector = selector(svc)?;
    let spec = svc.spec.as_ref()?;
    let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
    let mut members: Vec<(&Pod, &str)> = pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref().unwrap_or("default") == ns)
        .filter(|p| !pod_is_finished(p) && map_selector_matches(selector, labels(&p.metadata)))
        .filter_map(|p| Some((*p, pod_ip(p)?)))
        .collect();
    members.sort_by(|a, b| a.0.metadata.name.cmp(&b.0.metadata.name));
    let member_pods: Vec<&Pod> = members.iter().map(|(p, _)| *p).collect();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);

    let mut slice_labels = labels(&svc.metadata).clone();
    slice_labels.insert(
        SERVICE_NAME_LABEL.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    slice_labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    Some(EndpointSlice {
        metadata: ObjectMeta {
            name: Some(slice_name(svc)),
            namespace: Some(ns.into()),
            labels: Some(slice_labels),
            owner_references: Some(vec![controller_reference(svc)]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: members
            .iter()
            .map(|(p, ip)| endpoint(p, ip, publish))
            .collect(),
        ports: Some(
            spec.ports
                .iter()
                .flatten()
                .filter_map(|port| resolve_port(port, &member_pods))
                .collect(),
        ),
    })
}

fn same_content(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.metadata.labels == b.metadata.labels
        && a.metadata.owner_references == b.metadata.owner_references
        && a.address_type == b.address_type
        && a.endpoints == b.endpoints
        && a.ports == b.ports
}

fn is_managed(slice: &EndpointSlice) -> bool {
    labels(&slice.metadata)
        .get(MANAGED_BY_LABEL)
        .map(String::as_str)
        == Some(MANAGED_BY)
}

/// Every create/update/delete needed to bring the slices in line.
pub fn plan_slices(
    services: &[&Service],
    pods: &[&Pod],
    slices: &[&EndpointSlice],
) -> Vec<SliceAction> {
    let existing: BTreeMap<String, &EndpointSlice> =
        slices.iter().map(|s| (key_of(&s.metadata), *s)).collect();
    let mut wanted: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    for svc in services {
        if let Some(slice) = desired_slice(svc, pods) {
            wanted.insert(key_of(&slice.metadata), slice);
        }
    }
    let mut actions = Vec::new();
    for (key, want) in &wanted {
        match existing.get(key) {
            None => actions.push(SliceAction::Create(want.clone())),
            Some(have) if !same_content(have, want) => {
                let mut updated = (*have).clone();
                updated.metadata.labels = want.metadata.labels.clone();
                updated.metadata.owner_references = want.metadata.owner_references.clone();
                updated.address_type = want.address_type.clone();
                updated.endpoints = want.endpoints.clone();
                updated.ports = want.ports.clone();
                actions.push(SliceAction::Update(updated));
            }
            Some(_) => {}
        }
    }
    for (key, have) in &existing {
        if is_managed(have) && !wanted.contains_key(key) {
            actions.push(SliceAction::Delete((*have).clone()));
        }
    }
    actions
}

/// Controller loop: watches Services, Pods and EndpointSlices.
pub async fn run(store: Store) -> Result<(), Error> {
    let mut services = Cache::<Service>::default();
    let mut pods = Cache::<Pod>::default();
    let mut slices = Cache::<EndpointSlice>::default();
    let mut svc_rx = store.reflect::<Service>(None);
    let mut pod_rx = store.reflect::<Pod>(None);
    let mut slice_rx = store.reflect::<EndpointSlice>(None);
    let mut pacer = Pacer::default();
    loop {
        tokio::select! {
            change = svc_rx.next() => feed(&mut services, change, &mut pacer)?,
            change = pod_rx.next() => feed(&mut pods, change, &mut pacer)?,
            change = slice_rx.next() => feed(&mut slices, change, &mut pacer)?,
            () = pacer.due(), if services.synced() && pods.synced() && slices.synced() => {
                let actions = {
                    let s: Vec<&Service> = services.values().collect();
                    let p: Vec<&Pod> = pods.values().collect();
                    let e: Vec<&EndpointSlice> = slices.values().collect();
                    plan_slices(&s, &p, &e)
                };
                let mut pass = Pass::new("endpointslices");
                pass.write_all(&store, &mut slices, actions).await;
                pacer.finished(pass.ok());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use api::k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus,
    };

    use super::*;
    use crate::meta::now;

    fn service(selector: Option<&str>, target: IntOrString) -> Service {
        let mut s: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "webpod", "namespace": "default", "uid": "svc-uid", "labels": {"app": "webpod"}},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
        }))
        .unwrap();
        let spec = s.spec.as_mut().unwrap();
        spec.selector = selector.map(|app| [("app".to_string(), app.to_string())].into());
        spec.ports.as_mut().unwrap()[0].target_port = Some(target);
        s
    }

    fn pod(name: &str, ns: &str, ip: Option<&str>, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                uid: Some(format!("uid-{name}")),
                labels: Some([("app".to_string(), "webpod".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("k8s-w1".into()),
                containers: vec![Container {
                    name: "web".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("web".into()),
                        container_port: 8080,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: ip.map(Into::into),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn conditions(s: &EndpointSlice) -> Vec<(String, bool, bool, bool)> {
        s.endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.as_ref().unwrap();
                (
                    e.addresses[0].clone(),
                    c.ready.unwrap(),
                    c.serving.unwrap(),
                    c.terminating.unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn endpoints_with_conditions_refs_and_ports() {
        let svc = service(Some("webpod"), IntOrString::Int(80));
        let mut terminating = pod("c", "default", Some("10.244.0.3"), true);
        terminating.metadata.deletion_timestamp = Some(now());
        let pods = [
            pod("b", "default", Some("10.244.0.2"), false),
            pod("a", "default", Some("10.244.0.1"), true),
            terminating,
            pod("no-ip", "default", None, false),
            pod("elsewhere", "other", Some("10.244.9.9"), true),
        ];
        let view: Vec<&Pod> = pods.iter().collect();
        let slice = desired_slice(&svc, &view).unwrap();
        assert_eq!(
            slice.metadata.name.as_deref(),
            Some(slice_name(&svc).as_str())
        );
        assert!(
            slice_name(&svc).starts_with("webpod-")
                && slice_name(&svc).len() == "webpod-".len() + 5
        );
        let l = slice.metadata.labels.as_ref().unwrap();
        assert_eq!(
            (l[SERVICE_NAME_LABEL].as_str(), l[MANAGED_BY_LABEL].as_str()),
            ("webpod", MANAGED_BY)
        );
        assert_eq!(
            slice.metadata.owner_references.as_ref().unwrap()[0].kind,
            "Service"
        );
        assert_eq!(slice.address_type, "IPv4");
        assert_eq!(
            conditions(&slice),
            [
                ("10.244.0.1".into(), true, true, false),
                ("10.244.0.2".into(), false, false, false),
                ("10.244.0.3".into(), false, true, true),
            ]
        );
        let e = &slice.endpoints[0];
        let r = e.target_ref.as_ref().unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (Some("Pod"), Some("a"), Some("uid-a"))
        );
        assert_eq!(e.node_name.as_deref(), Some("k8s-w1"));
        let p = &slice.ports.as_ref().unwrap()[0];
        assert_eq!(
            (p.name.as_deref(), p.protocol.as_deref(), p.port),
            (Some("http"), Some("TCP"), Some(80))
        );
    }

    #[test]
    fn named_target_ports_resolve_through_pods() {
        let svc = service(Some("webpod"), IntOrString::String("web".into()));
        let pods = [pod("a", "default", Some("10.244.0.1"), true)];
        let view: Vec<&Pod> = pods.iter().collect();
        let slice = desired_slice(&svc, &view).unwrap();
        assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(8080));
        // No pod to resolve against: the port is left out.
        let slice = desired_slice(&svc, &[]).unwrap();
        assert!(slice.ports.as_ref().unwrap().is_empty());
        assert!(slice.endpoints.is_empty());
        // Defaulted targetPort is the port itself.
        let mut svc = service(Some("webpod"), IntOrString::Int(1));
        svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].target_port = None;
        assert_eq!(
            desired_slice(&svc, &view).unwrap().ports.unwrap()[0].port,
            Some(80)
        );
    }

    #[test]
    fn plan_creates_updates_only_on_change_and_deletes() {
        let svc = service(Some("webpod"), IntOrString::Int(80));
        let mut pods = vec![pod("a", "default", Some("10.244.0.1"), true)];
        let actions = plan_slices(&[&svc], &pods.iter().collect::<Vec<_>>(), &[]);
        let [SliceAction::Create(stored)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        let mut stored = stored.clone();
        stored.metadata.resource_version = Some("7".into());

        assert!(plan_slices(&[&svc], &pods.iter().collect::<Vec<_>>(), &[&stored]).is_empty());

        pods.push(pod("b", "default", Some("10.244.0.2"), true));
        let actions = plan_slices(&[&svc], &pods.iter().collect::<Vec<_>>(), &[&stored]);
        let [SliceAction::Update(updated)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(updated.endpoints.len(), 2);
        assert_eq!(updated.metadata.resource_version.as_deref(), Some("7"));

        // Selector removed, or the Service deleted: the slice goes.
        let bare = service(None, IntOrString::Int(80));
        let view: Vec<&Pod> = pods.iter().collect();
        assert!(matches!(
            plan_slices(&[&bare], &view, &[&stored]).as_slice(),
            [SliceAction::Delete(_)]
        ));
        assert!(matches!(
            plan_slices(&[], &view, &[&stored]).as_slice(),
            [SliceAction::Delete(_)]
        ));
        // Slices managed by someone else are left alone.
        let mut foreign = stored.clone();
        foreign
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(MANAGED_BY_LABEL.into(), "someone-else".into());
        assert!(plan_slices(&[], &view, &[&foreign]).is_empty());
    }
}
