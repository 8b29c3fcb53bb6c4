//! The Endpoints controller: the legacy `Endpoints` object of every
//! Service, derived from the Service's EndpointSlice (ready addresses,
//! not-ready addresses, ports), so that `kubectl get endpoints` shows
//! what it shows on a real cluster. Owns only Endpoints labelled
//! `endpointslice.kubernetes.io/skip-mirror: "true"` (as upstream's
//! controller labels them).

use std::collections::BTreeMap;

use api::k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
use api::k8s_openapi::api::discovery::v1::EndpointSlice;
use api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use futures::StreamExt;
use store::Store;

use crate::Error;
use crate::cache::{Cache, Pacer, Pass, Write, feed};
use crate::endpointslices::{MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use crate::meta::{key_of, labels};

/// Label that keeps the EndpointSlice mirroring controller off an
/// Endpoints object (set on every object this controller writes).
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";

/// The Endpoints a managed slice stands for.
pub fn desired_endpoints(slice: &EndpointSlice) -> Option<Endpoints> {
    let slice_labels = labels(&slice.metadata);
    if slice_labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    let service = slice_labels.get(SERVICE_NAME_LABEL)?;
    let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
    for endpoint in &slice.endpoints {
        let is_ready = endpoint
            .conditions
            .as_ref()
            .and_then(|c| c.ready)
            .unwrap_or(true);
        for ip in &endpoint.addresses {
            let address = EndpointAddress {
                ip: ip.clone(),
                node_name: endpoint.node_name.clone(),
                target_ref: endpoint.target_ref.clone(),
                ..Default::default()
            };
            if is_ready {
                ready.push(address)
            } else {
                not_ready.push(address)
            }
        }
    }
    let ports: Vec<EndpointPort> = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(EndpointPort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: p.port?,
                protocol: p.protocol.clone(),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect();
    let subsets = (!ready.is_empty() || !not_ready.is_empty()).then(|| {
        vec![EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then_some(ports),
        }]
    });
    let mut object_labels: BTreeMap<String, String> = slice_labels
        .iter()
        .filter(|(k, _)| *k != MANAGED_BY_LABEL && *k != SERVICE_NAME_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    object_labels.insert(SKIP_MIRROR_LABEL.into(), "true".into());
    Some(Endpoints {
        metadata: ObjectMeta {
            name: Some(service.clone()),
            namespace: slice.metadata.namespace.clone(),
            labels: Some(object_labels),
            owner_references: slice.metadata.owner_references.clone(),
            ..Default::default()
        },
        subsets,
    })
}

fn is_owned(endpoints: &Endpoints) -> bool {
    labels(&endpoints.metadata)
        .get(SKIP_MIRROR_LABEL)
        .map(String::as_str)
        == Some("true")
}

/// Every write needed to bring the Endpoints in line with the slices.
pub fn plan_endpoints(slices: &[&EndpointSlice], existing: &[&Endpoints]) -> Vec<Write<Endpoints>> {
    let have: BTreeMap<String, &Endpoints> =
        existing.iter().map(|e| (key_of(&e.metadata), *e)).collect();
    let want: BTreeMap<String, Endpoints> = slices
        .iter()
        .filter_map(|s| desired_endpoints(s))
        .map(|e| (key_of(&e.metadata), e))
        .collect();
    let mut writes = Vec::new();
    for (key, wanted) in &want {
        match have.get(key) {
            None => writes.push(Write::Create(wanted.clone())),
            Some(current)
                if current.subsets != wanted.subsets
                    || current.metadata.labels != wanted.metadata.labels =>
            {
                let mut updated = (*current).clone();
                updated.subsets = wanted.subsets.clone();
                updated.metadata.labels = wanted.metadata.labels.clone();
                updated.metadata.owner_references = wanted.metadata.owner_references.clone();
                writes.push(Write::Update(updated));
            }
            Some(_) => {}
        }
    }
    for (key, current) in &have {
        if is_owned(current) && !want.contains_key(key) {
            writes.push(Write::Delete((*current).clone()));
        }
    }
    writes
}

/// Controller loop: watches EndpointSlices and Endpoints.
pub async fn run(store: Store) -> Result<(), Error> {
    let mut slices = Cache::<EndpointSlice>::default();
    let mut endpoints = Cache::<Endpoints>::default();
    let mut slice_rx = store.reflect::<EndpointSlice>(None);
    let mut ep_rx = store.reflect::<Endpoints>(None);
    let mut pacer = Pacer::default();
    loop {
        tokio::select! {
            change = slice_rx.next() => feed(&mut slices, change, &mut pacer)?,
            change = ep_rx.next() => feed(&mut endpoints, change, &mut pacer)?,
            () = pacer.due(), if slices.synced() && endpoints.synced() => {
                let writes = {
                    let s: Vec<&EndpointSlice> = slices.values().collect();
                    let e: Vec<&Endpoints> = endpoints.values().collect();
                    plan_endpoints(&s, &e)
                };
                let mut pass = Pass::new("endpoints");
                pass.write_all(&store, &mut endpoints, writes).await;
                pacer.finished(pass.ok());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "webpod-abcde", "namespace": "default", "labels": {
                "app": "webpod", SERVICE_NAME_LABEL: "webpod", MANAGED_BY_LABEL: MANAGED_BY}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
        }))
        .unwrap()
    }

    #[test]
    fn ready_and_not_ready_addresses() {
        let s = slice(json!([
            {"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "nodeName": "k8s-w1"},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
        ]));
        let e = desired_endpoints(&s).unwrap();
        assert_eq!(e.metadata.name.as_deref(), Some("webpod"));
        let subset = &e.subsets.unwrap()[0];
        assert_eq!(subset.addresses.as_ref().unwrap()[0].ip, "10.0.0.1");
        assert_eq!(
            subset.not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.0.0.2"
        );
        assert_eq!(subset.ports.as_ref().unwrap()[0].port, 80);
        assert_eq!(labels(&e.metadata)[SKIP_MIRROR_LABEL], "true");
        assert_eq!(labels(&e.metadata)["app"], "webpod");
    }

    #[test]
    fn plans_create_update_and_delete_of_owned_objects_only() {
        let s = slice(json!([{"addresses": ["10.0.0.1"]}]));
        let writes = plan_endpoints(&[&s], &[]);
        assert!(matches!(&writes[..], [Write::Create(_)]));
        let Write::Create(mut current) = writes[0].clone() else {
            unreachable!()
        };
        assert!(plan_endpoints(&[&s], &[&current]).is_empty());
        current.subsets = None;
        assert!(matches!(
            &plan_endpoints(&[&s], &[&current])[..],
            [Write::Update(_)]
        ));
        assert!(matches!(
            &plan_endpoints(&[], &[&current])[..],
            [Write::Delete(_)]
        ));
        let mut foreign = current.clone();
        foreign.metadata.labels = None;
        assert!(plan_endpoints(&[], &[&foreign]).is_empty(), "not ours");
        let empty = slice(json!([]));
        assert!(desired_endpoints(&empty).unwrap().subsets.is_none());
    }
}
