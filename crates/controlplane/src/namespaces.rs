//! Ensures the namespaces every cluster has (`default`, `kube-system`)
//! exist, re-creating them if deleted. Touches no other namespace.

use api::k8s_openapi::api::core::v1::{Namespace, NamespaceStatus};
use futures::StreamExt;
use store::Store;

use crate::Error;
use crate::cache::{Cache, Pacer, Pass, feed};

/// Namespaces that must always exist.
pub const SYSTEM_NAMESPACES: [&str; 2] = ["default", "kube-system"];

/// The system namespaces missing from `existing`, ready to create.
pub fn missing_namespaces(existing: &[&Namespace]) -> Vec<Namespace> {
    SYSTEM_NAMESPACES
        .iter()
        .filter(|want| {
            !existing
                .iter()
                .any(|ns| ns.metadata.name.as_deref() == Some(**want))
        })
        .map(|name| {
            let mut ns = Namespace::default();
            ns.metadata.name = Some((*name).into());
            ns.status = Some(NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            });
            ns
        })
        .collect()
}

/// Controller loop: watches Namespaces, creates missing system ones.
pub async fn run(store: Store) -> Result<(), Error> {
    let mut namespaces = Cache::<Namespace>::default();
    let mut ns_rx = store.reflect::<Namespace>(None);
    let mut pacer = Pacer::default();
    loop {
        tokio::select! {
            change = ns_rx.next() => feed(&mut namespaces, change, &mut pacer)?,
            () = pacer.due(), if namespaces.synced() => {
                let mut pass = Pass::new("namespaces");
                let missing = missing_namespaces(&namespaces.values().collect::<Vec<_>>());
                for ns in missing {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    match store.create(&ns).await {
                        Ok(created) => {
                            tracing::info!(namespace = name, "created namespace");
                            namespaces.written(created);
                        }
                        Err(store::Error::AlreadyExists { .. }) => {}
                        Err(e) => {
                            pass.check::<()>("create namespace", &name, Err(e));
                        }
                    }
                }
                pacer.finished(pass.ok());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_only_what_is_missing() {
        let names = |v: Vec<Namespace>| {
            v.into_iter()
                .map(|n| n.metadata.name.unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(missing_namespaces(&[])), ["default", "kube-system"]);
        let default = missing_namespaces(&[]).remove(0);
        assert_eq!(names(missing_namespaces(&[&default])), ["kube-system"]);
        let all = missing_namespaces(&[]);
        assert!(missing_namespaces(&all.iter().collect::<Vec<_>>()).is_empty());
    }
}
