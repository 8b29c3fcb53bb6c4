//! Verbs that change objects: `delete`, `scale`, `label`, `annotate`,
//! `cordon`, `uncordon`, `drain`. Each prints kubectl's confirmation line.

use std::time::Duration;

use anyhow::{Result, bail};
use api::Kind;
use api::k8s_openapi::api::apps::v1::Deployment;
use api::k8s_openapi::api::core::v1::{Node, Pod};
use controlplane::request_pod_deletion;
use serde_json::Value;
use store::Store;

use super::{namespace_for, qualified};
use crate::lab::wait_for;

/// Delete objects by name. Pods are deleted gracefully (the kubelet stops
/// them first) unless `force`; `wait` waits until they are gone.
pub async fn delete(
    store: &Store,
    kind: &'static Kind,
    names: &[String],
    ns: Option<&str>,
    force: bool,
    wait: bool,
) -> Result<Vec<String>> {
    if names.is_empty() {
        bail!("resource(s) were provided, but no name was specified");
    }
    let ns = namespace_for(kind, ns);
    let mut lines = Vec::new();
    for name in names {
        if store.get_value(&kind.ty, ns, name).await?.is_none() {
            bail!("{} \"{name}\" not found", kind.ty.qualified_plural());
        }
        if kind.ty.kind == "Pod" {
            request_pod_deletion(store, ns.unwrap_or("default"), name, force).await?;
        } else {
            store.delete_value(&kind.ty, ns, name).await?;
        }
        if wait {
            wait_for(
                &format!("{name} to be deleted"),
                Duration::from_secs(60),
                || async {
                    Ok(store
                        .get_value(&kind.ty, ns, name)
                        .await?
                        .is_none()
                        .then_some(()))
                },
            )
            .await?;
        }
        lines.push(format!("{} \"{name}\" deleted", kind.ty.singular));
    }
    Ok(lines)
}

/// `scale deployment NAME --replicas K`.
pub async fn scale(
    store: &Store,
    kind: &'static Kind,
    name: &str,
    ns: Option<&str>,
    replicas: i32,
) -> Result<String> {
    if kind.ty.kind != "Deployment" {
        bail!(
            "cannot scale {}: only deployments can be scaled",
            kind.ty.plural
        );
    }
    if replicas < 0 {
        bail!(
            "The Deployment \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
        );
    }
    let ns = ns.unwrap_or("default");
    store
        .modify::<Deployment>(Some(ns), name, |d| {
            let spec = d.spec.get_or_insert_with(Default::default);
            let changed = spec.replicas != Some(replicas);
            spec.replicas = Some(replicas);
            changed
        })
        .await?;
    Ok(format!("{} scaled", qualified(kind, name)))
}

/// Which metadata map `label`/`annotate` edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaMap {
    /// `metadata.labels`.
    Labels,
    /// `metadata.annotations`.
    Annotations,
}

/// `label|annotate KIND NAME key=value... key-... [--overwrite]`.
pub async fn set_meta(
    store: &Store,
    kind: &'static Kind,
    name: &str,
    ns: Option<&str>,
    which: MetaMap,
    changes: &[String],
    overwrite: bool,
) -> Result<String> {
    let field = match which {
        MetaMap::Labels => "labels",
        MetaMap::Annotations => "annotations",
    };
    let mut edits: Vec<(String, Option<String>)> = Vec::new();
    for c in changes {
        if let Some(key) = c.strip_suffix('-') {
            edits.push((key.to_string(), None));
        } else if let Some((k, v)) = c.split_once('=') {
            if k.is_empty() {
                bail!("invalid {field} change {c:?}: empty key");
            }
            edits.push((k.to_string(), Some(v.to_string())));
        } else {
            bail!("invalid {field} change {c:?}: use key=value or key-");
        }
    }
    if edits.is_empty() {
        bail!("at least one {field} update is required");
    }
    let ns = namespace_for(kind, ns);
    loop {
        let Some(mut obj) = store.get_value(&kind.ty, ns, name).await? else {
            bail!("{} \"{name}\" not found", kind.ty.qualified_plural());
        };
        let map = obj["metadata"]
            .as_object_mut()
            .expect("stored objects have metadata")
            .entry(field)
            .or_insert_with(|| Value::Object(Default::default()));
        let map = map.as_object_mut().expect("labels are a map");
        for (k, v) in &edits {
            match v {
                Some(v) => {
                    if let Some(old) = map.get(k)
                        && old.as_str() != Some(v)
                        && !overwrite
                    {
                        bail!(
                            "'{k}' already has a value ({}), and --overwrite is false",
                            old.as_str().unwrap_or("")
                        );
                    }
                    map.insert(k.clone(), Value::String(v.clone()));
                }
                None => {
                    map.remove(k);
                }
            }
        }
        match store.update_value(&kind.ty, &obj).await {
            Ok(_) => break,
            Err(store::Error::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let verb = match which {
        MetaMap::Labels => "labeled",
        MetaMap::Annotations => "annotated",
    };
    Ok(format!("{} {verb}", qualified(kind, name)))
}

/// `cordon` (true) / `uncordon` (false).
pub async fn cordon(store: &Store, node: &str, unschedulable: bool) -> Result<String> {
    let mut changed = false;
    store
        .modify::<Node>(None, node, |n| {
            let spec = n.spec.get_or_insert_with(Default::default);
            let now = unschedulable.then_some(true);
            changed = spec.unschedulable.unwrap_or(false) != unschedulable;
            spec.unschedulable = now;
            changed
        })
        .await
        .map_err(|e| match e {
            store::Error::NotFound { .. } => anyhow::anyhow!("nodes \"{node}\" not found"),
            e => e.into(),
        })?;
    let verb = match (unschedulable, changed) {
        (true, true) => "cordoned",
        (false, true) => "uncordoned",
        (_, false) => "already in the requested state",
    };
    Ok(format!("node/{node} {verb}"))
}

/// `drain NODE`: cordon, then evict every pod bound to it and wait until
/// they are gone (controllers recreate Deployment pods elsewhere).
pub async fn drain(store: &Store, node: &str, timeout: Duration) -> Result<Vec<String>> {
    let mut lines = vec![cordon(store, node, true).await?];
    let pods: Vec<Pod> = store
        .list::<Pod>(None)
        .await?
        .items
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .collect();
    for p in &pods {
        let ns = p.metadata.namespace.as_deref().unwrap_or("default");
        let name = p.metadata.name.as_deref().unwrap_or("");
        lines.push(format!("evicting pod {ns}/{name}"));
        request_pod_deletion(store, ns, name, false).await?;
    }
    for p in &pods {
        let ns = p.metadata.namespace.as_deref().unwrap_or("default");
        let name = p.metadata.name.as_deref().unwrap_or("");
        wait_for(
            &format!("pod {ns}/{name} to be evicted"),
            timeout,
            || async {
                let gone = match store.get::<Pod>(Some(ns), name).await? {
                    None => true,
                    Some(cur) => cur.metadata.uid != p.metadata.uid,
                };
                Ok(gone.then_some(()))
            },
        )
        .await?;
        lines.push(format!("pod/{name} evicted"));
    }
    lines.push(format!("node/{node} drained"));
    Ok(lines)
}
