//! The `default/kubernetes` Service the API server maintains for itself:
//! ClusterIP = the first address of the service range, port `https` 443
//! → the server's port, and the Endpoints and EndpointSlice naming the
//! server's address. In-cluster clients (`KUBERNETES_SERVICE_HOST`) reach
//! the API through it.

use std::net::{Ipv4Addr, SocketAddr};

use api::Object;
use api::k8s_openapi::api::core::v1::{Endpoints, Service};
use api::k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use store::Store;

/// Where the Service points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubernetesService {
    /// The Service's ClusterIP (`10.96.0.1`).
    pub cluster_ip: Ipv4Addr,
    /// The API server's address (`192.168.10.100:6443`).
    pub endpoint: SocketAddr,
}

impl KubernetesService {
    /// The three objects, as stored.
    pub fn objects(&self) -> [(&'static api::ResourceType, Value); 3] {
        let (ip, port) = (self.endpoint.ip().to_string(), self.endpoint.port());
        let meta = json!({"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}});
        let service = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {
                "type": "ClusterIP",
                "clusterIP": self.cluster_ip.to_string(),
                "clusterIPs": [self.cluster_ip.to_string()],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                "sessionAffinity": "None",
            },
        });
        let endpoints = json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        });
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        });
        [
            (&Service::TYPE, service),
            (&Endpoints::TYPE, endpoints),
            (&EndpointSlice::TYPE, slice),
        ]
    }

    /// Create the objects that are missing.
    pub async fn ensure(&self, store: &Store) -> store::Result<()> {
        for (ty, object) in self.objects() {
            if store
                .get_value(ty, Some("default"), "kubernetes")
                .await?
                .is_none()
            {
                match store.create_value(ty, &object).await {
                    Ok(_) | Err(store::Error::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_service_points_at_the_server() {
        let store = Store::memory();
        let svc = KubernetesService {
            cluster_ip: Ipv4Addr::new(10, 96, 0, 1),
            endpoint: "192.168.10.100:6443".parse().unwrap(),
        };
        svc.ensure(&store).await.unwrap();
        svc.ensure(&store).await.unwrap();
        let s: Service = store
            .get(Some("default"), "kubernetes")
            .await
            .unwrap()
            .unwrap();
        let spec = s.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
        assert_eq!(spec.ports.unwrap()[0].port, 443);
        let e: Endpoints = store
            .get(Some("default"), "kubernetes")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            e.subsets.unwrap()[0].addresses.as_ref().unwrap()[0].ip,
            "192.168.10.100"
        );
        let slice: EndpointSlice = store
            .get(Some("default"), "kubernetes")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(slice.ports.unwrap()[0].port, Some(6443));
    }
}
