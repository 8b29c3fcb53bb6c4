//! The cluster side of the agent's edges: the store writes its reconcilers
//! own (this node's `CiliumEndpoint`s and its `CiliumNode`) and security
//! identity resolution for new endpoints. Store I/O only; decisions live
//! in [`crate::node`] and [`crate::endpoint`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use api::Object as _;
use api::cilium::endpoint::CiliumEndpoint;
use api::cilium::node::CiliumNode;
use api::k8s_openapi::api::core::v1::Pod;
use reconciler::{OpError, Operations};
use store::Store;

use crate::endpoints::{IdentityResolver, PodRef};
use crate::node::{apply_intent, new_cilium_node};
use crate::tables::{CepRow, NodeRow};

/// Label key for containers that are not Kubernetes pods (podman ...):
/// they all share one identity rather than one per container.
pub const UNMANAGED_CONTAINER_LABEL: &str = "container:io.cilium.cni.runtime";

fn op_err(e: impl std::fmt::Display) -> OpError {
    OpError::new(e)
}

/// The container ID a CiliumEndpoint was published for.
fn cep_container(cep: &CiliumEndpoint) -> Option<&str> {
    cep.status
        .as_ref()?
        .external_identifiers
        .as_ref()?
        .container_id
        .as_deref()
}

/// This node's CiliumEndpoints (`status.networking.node` is its IP).
pub struct CiliumEndpoints {
    store: Store,
    node_ip: Ipv4Addr,
}

impl CiliumEndpoints {
    /// Operations publishing the CiliumEndpoints of the node at `node_ip`.
    pub fn new(store: Store, node_ip: Ipv4Addr) -> Self {
        Self { store, node_ip }
    }
}

impl Operations<CepRow> for CiliumEndpoints {
    async fn update(&self, row: &CepRow) -> Result<(), OpError> {
        let ep = &row.endpoint;
        let Some(want) = ep.cilium_endpoint(self.node_ip) else {
            return Ok(());
        };
        loop {
            let found = self
                .store
                .get::<CiliumEndpoint>(Some(&ep.pod_namespace), &ep.pod_name)
                .await
                .map_err(op_err)?;
            if found.is_none() {
                match self.store.create(&want).await {
                    Err(store::Error::AlreadyExists { .. }) => continue,
                    r => return r.map(|_| ()).map_err(op_err),
                }
            }
            return self
                .store
                .modify::<CiliumEndpoint>(Some(&ep.pod_namespace), &ep.pod_name, |c| {
                    if c.status == want.status {
                        return false;
                    }
                    c.status = want.status.clone();
                    true
                })
                .await
                .map(|_| ())
                .map_err(op_err);
        }
    }

    /// Delete the CiliumEndpoint unless a newer sandbox of the same pod
    /// owns it now.
    async fn delete(&self, row: &CepRow) -> Result<(), OpError> {
        let ep = &row.endpoint;
        let Some(cep) = self
            .store
            .get::<CiliumEndpoint>(Some(&ep.pod_namespace), &ep.pod_name)
            .await
            .map_err(op_err)?
        else {
            return Ok(());
        };
        if cep_container(&cep).is_some_and(|c| c != ep.container_id) {
            return Ok(());
        }
        match self
            .store
            .delete::<CiliumEndpoint>(Some(&ep.pod_namespace), &ep.pod_name)
            .await
        {
            Ok(_) | Err(store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(op_err(e)),
        }
    }

    /// Delete this node's CiliumEndpoints that no endpoint publishes.
    async fn prune(&self, desired: &[Arc<CepRow>]) -> Result<(), OpError> {
        let wanted: BTreeSet<(String, String)> = desired
            .iter()
            .map(|r| {
                (
                    r.endpoint.pod_namespace.clone(),
                    r.endpoint.pod_name.clone(),
                )
            })
            .collect();
        let node = self.node_ip.to_string();
        let list = self
            .store
            .list::<CiliumEndpoint>(None)
            .await
            .map_err(op_err)?;
        for cep in list.items {
            let ours = cep
                .status
                .as_ref()
                .and_then(|s| s.networking.as_ref())
                .and_then(|n| n.node.as_deref())
                == Some(node.as_str());
            let key = (
                cep.namespace().unwrap_or_default().to_string(),
                cep.name().to_string(),
            );
            if !ours || wanted.contains(&key) {
                continue;
            }
            tracing::info!(namespace = %key.0, name = %key.1, "deleting a stale CiliumEndpoint of this node");
            match self
                .store
                .delete::<CiliumEndpoint>(Some(&key.0), &key.1)
                .await
            {
                Ok(_) | Err(store::Error::NotFound { .. }) => {}
                Err(e) => return Err(op_err(e)),
            }
        }
        Ok(())
    }
}

/// This node's CiliumNode: created or updated, never deleted.
pub struct CiliumNodes {
    store: Store,
}

impl CiliumNodes {
    /// Operations writing CiliumNodes to `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Operations<NodeRow> for CiliumNodes {
    async fn update(&self, row: &NodeRow) -> Result<(), OpError> {
        loop {
            match self
                .store
                .get::<CiliumNode>(None, &row.name)
                .await
                .map_err(op_err)?
            {
                None => match self
                    .store
                    .create(&new_cilium_node(&row.name, &row.intent))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(node = %row.name, "created CiliumNode");
                        return Ok(());
                    }
                    Err(store::Error::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(op_err(e)),
                },
                Some(_) => {
                    return self
                        .store
                        .modify::<CiliumNode>(None, &row.name, |cn| apply_intent(cn, &row.intent))
                        .await
                        .map(|_| ())
                        .map_err(op_err);
                }
            }
        }
    }

    /// A node's CiliumNode outlives its agent (the operator keeps its pod
    /// CIDR); nothing is deleted.
    async fn delete(&self, _row: &NodeRow) -> Result<(), OpError> {
        Ok(())
    }

    async fn prune(&self, _desired: &[Arc<NodeRow>]) -> Result<(), OpError> {
        Ok(())
    }
}

/// Identities from the store: a pod's labels, namespace and service
/// account, allocated as a `CiliumIdentity`.
pub struct StoreIdentities {
    store: Store,
    allocator: identity::Allocator,
    cluster: String,
}

impl StoreIdentities {
    /// Resolve identities of `cluster`'s pods through `store`.
    pub fn new(store: Store, cluster: String) -> Self {
        let allocator =
            identity::Allocator::new(store.clone(), identity::MIN_GLOBAL, identity::MAX_GLOBAL);
        Self {
            store,
            allocator,
            cluster,
        }
    }
}

impl IdentityResolver for StoreIdentities {
    async fn resolve(&self, pod: &PodRef) -> Result<(u32, Vec<String>), String> {
        let labels = if pod.namespace.is_empty() || pod.name.is_empty() {
            identity::Labels(BTreeMap::from([(
                UNMANAGED_CONTAINER_LABEL.to_string(),
                "cni".to_string(),
            )]))
        } else {
            let found = self
                .store
                .get::<Pod>(Some(&pod.namespace), &pod.name)
                .await
                .map_err(|e| e.to_string())?;
            let (pod_labels, sa) = match &found {
                Some(p) => (
                    p.metadata.labels.clone().unwrap_or_default(),
                    p.spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.clone())
                        .unwrap_or_else(|| "default".to_string()),
                ),
                None => {
                    tracing::warn!(namespace = %pod.namespace, pod = %pod.name, "pod not in the store; identity from its namespace only");
                    (BTreeMap::new(), "default".to_string())
                }
            };
            identity::Labels::for_pod(&pod.namespace, &pod_labels, &sa, &self.cluster)
        };
        let id = self
            .allocator
            .allocate(&labels)
            .await
            .map_err(|e| e.to_string())?;
        Ok((id, labels.to_strings()))
    }
}
