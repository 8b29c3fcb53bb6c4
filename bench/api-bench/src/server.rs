//! The API server of the fan-out benchmark: certificates and an admin
//! kubeconfig in a directory ([`Pki`]), and `serve-api` (the lab's API
//! server code, `controlplane::apiserver::serve`, over an etcd store).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use controlplane::apiserver::{self, authn::ServiceAccountTokens};
use pki::{Ca, Leaf};
use serde_json::json;
use store::Store;

/// Name of the CA (and of its files' stem).
const CA_NAME: &str = "api-bench-ca";

/// Certificates of one benchmark run.
pub struct Pki {
    dir: PathBuf,
    ca: Ca,
}

impl Pki {
    /// A new CA and service-account key in `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        let ca = Ca::load_or_generate(dir, CA_NAME)?;
        pki::write_key_if_missing(&dir.join("sa.key"), pki::new_key_pem)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            ca,
        })
    }

    /// A kubeconfig for `user` (a client certificate, group
    /// `system:masters`) of the server at `addr`.
    pub fn kubeconfig(&self, addr: SocketAddr, user: &str) -> anyhow::Result<PathBuf> {
        let pair = self.ca.issue(&Leaf::client(user, &["system:masters"]))?;
        let (cert, key) = pair.write(&self.dir, user)?;
        let ca = self.dir.join("ca.crt");
        let config = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "bench", "cluster": {
                "server": format!("https://{addr}"), "certificate-authority": ca}}],
            "users": [{"name": user, "user": {"client-certificate": cert, "client-key": key}}],
            "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": user}}],
            "current-context": "bench",
        });
        let path = self.dir.join(format!("{user}.kubeconfig"));
        std::fs::write(&path, config.to_string())?;
        Ok(path)
    }
}

/// Serve the API on `listen` over the etcd at `etcd`, with the CA and
/// service-account key of `dir` (made by [`Pki::create`]).
pub async fn serve(etcd: &str, dir: &Path, listen: SocketAddr) -> anyhow::Result<()> {
    let ca = Ca::load_or_generate(dir, CA_NAME)?;
    let pair = ca.issue(&Leaf::server(
        "kube-apiserver",
        &["localhost"],
        &[listen.ip()],
    ))?;
    let tls = pki::server_config(ca.cert_pem(), &pair, pki::ClientAuth::Optional)?;
    let key = std::fs::read_to_string(dir.join("sa.key")).context("reading sa.key")?;
    let tokens = ServiceAccountTokens::from_pem(&key, apiserver::authn::DEFAULT_ISSUER, &[])?;
    let store = Store::etcd(&[etcd.to_string()]).await?;
    let config = apiserver::ServerConfig {
        listen,
        unix: None,
        advertise: listen.to_string(),
        tls: Arc::new(tls),
        tokens,
        kubernetes_service: None,
        kubelet_socket: None,
    };
    apiserver::serve(store, config).await?;
    Ok(())
}
