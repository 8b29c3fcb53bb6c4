//! The lab's certificates and kubeconfig: one CA per cluster (under
//! `/run/cilium-lab/<lab>/clusters/<cluster>/pki/`), the API server's
//! serving certificate, the administrator's client certificate (group
//! `system:masters`), etcd's serving certificate and the API server's
//! client certificate for etcd (kubeadm's `apiserver-etcd-client`), and a
//! kubeconfig with a context per cluster that `cilium-lab kubeconfig`
//! prints the path of.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pki::{Ca, Leaf};
use serde_json::json;

use crate::lab::LabPaths;

/// Port the API server listens on in the control-plane node.
pub const API_PORT: u16 = 6443;

/// The user of the administrator's certificate.
const ADMIN_USER: &str = "kubernetes-admin";

/// etcd's serving certificate.
pub const ETCD_SERVER: &str = "etcd-server";
/// The certificate the API server presents to etcd.
pub const APISERVER_ETCD_CLIENT: &str = "apiserver-etcd-client";

/// Where a cluster's certificates live.
#[derive(Debug, Clone)]
pub struct ClusterPki {
    /// The directory (`ca.crt`, `apiserver.crt`, `admin.crt`, ...).
    pub dir: PathBuf,
}

impl ClusterPki {
    /// The CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The key service-account tokens are signed with.
    pub fn service_account_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }

    /// A named certificate and its key.
    pub fn pair(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        )
    }

    /// The files an etcd client presenting certificate `name` uses.
    pub fn etcd_client(&self, name: &str) -> store::EtcdTls {
        let (cert_file, key_file) = self.pair(name);
        store::EtcdTls {
            trusted_ca_file: self.ca_cert(),
            cert_file,
            key_file,
        }
    }
}

/// The PKI directory of a cluster.
pub fn cluster_pki(paths: &LabPaths, cluster: &str) -> ClusterPki {
    ClusterPki {
        dir: paths.root().join("clusters").join(cluster).join("pki"),
    }
}

/// Create whatever is missing of a cluster's CA, the API server's
/// certificate (names and addresses clients use: the control-plane
/// node's address, the `kubernetes` Service's ClusterIP and DNS names,
/// loopback), the administrator's certificate, and etcd's certificates.
pub fn ensure(
    paths: &LabPaths,
    cluster: &str,
    cp_ip: Ipv4Addr,
    api_service_ip: Ipv4Addr,
) -> Result<ClusterPki> {
    let pki = cluster_pki(paths, cluster);
    std::fs::create_dir_all(&pki.dir)
        .with_context(|| format!("cannot create {}", pki.dir.display()))?;
    let ca = Ca::load_or_generate(&pki.dir, &format!("cilium-lab-{cluster}-ca"))?;
    let ips = [
        IpAddr::V4(cp_ip),
        IpAddr::V4(api_service_ip),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    ];
    let names = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
    ];
    issue_missing(
        &ca,
        &pki.dir,
        "apiserver",
        &Leaf::server("kube-apiserver", &names, &ips),
    )?;
    issue_missing(
        &ca,
        &pki.dir,
        "admin",
        &Leaf::client(ADMIN_USER, &["system:masters"]),
    )?;
    pki::write_key_if_missing(&pki.service_account_key(), pki::new_key_pem)?;
    ensure_etcd(&ca, &pki, &paths.etcd_socket_file(cluster), cp_ip)?;
    Ok(pki)
}

/// etcd's certificates: its serving certificate and the API server's
/// client certificate (etcd accepts no client without one).
fn ensure_etcd(ca: &Ca, pki: &ClusterPki, socket: &Path, cp_ip: Ipv4Addr) -> Result<()> {
    // On the unix socket, the `store` crate checks the name `localhost`,
    // etcdctl the socket's path without the `:0` of etcd's URL (matched
    // exactly by Go; rustls skips it as no DNS name).
    let socket = socket.display().to_string();
    let socket = socket.strip_suffix(":0").unwrap_or(&socket);
    let ips = [IpAddr::V4(cp_ip), IpAddr::V4(Ipv4Addr::LOCALHOST)];
    // Also a client certificate: etcd's HTTP gateway dials etcd's own
    // listeners with it.
    let server = Leaf::server("etcd", &["localhost", socket], &ips).for_both();
    issue_missing(ca, &pki.dir, ETCD_SERVER, &server)?;
    issue_missing(
        ca,
        &pki.dir,
        APISERVER_ETCD_CLIENT,
        &Leaf::client("kube-apiserver-etcd-client", &[]),
    )
}

/// Issue `<name>.crt`/`<name>.key` unless present.
pub fn issue_missing(ca: &Ca, dir: &Path, name: &str, leaf: &Leaf) -> Result<()> {
    if !dir.join(format!("{name}.crt")).exists() {
        ca.issue(leaf)?.write(dir, name)?;
    }
    Ok(())
}

/// One cluster's entry of a kubeconfig.
pub struct KubeconfigCluster<'a> {
    /// Cluster (and context) name.
    pub name: &'a str,
    /// `https://127.0.0.1:<port>` (host) or `https://<cp>:6443` (nodes).
    pub server: String,
    /// Its certificates.
    pub pki: &'a ClusterPki,
    /// The client certificate to present (`admin`, `cilium-agent`, ...).
    pub cert: &'a str,
}

/// The kubeconfig path of a lab.
pub fn kubeconfig_path(paths: &LabPaths) -> PathBuf {
    paths.root().join("kubeconfig")
}

/// Write a kubeconfig: a context per cluster, the first current.
pub fn write_kubeconfig(path: &Path, clusters: &[KubeconfigCluster<'_>]) -> Result<()> {
    let show = |p: PathBuf| p.display().to_string();
    let (mut cl, mut users, mut contexts) = (Vec::new(), Vec::new(), Vec::new());
    for c in clusters {
        let (cert, key) = c.pki.pair(c.cert);
        let user = format!("{}-{}", c.name, c.cert);
        cl.push(json!({"name": c.name, "cluster": {"server": c.server, "certificate-authority": show(c.pki.ca_cert())}}));
        users.push(json!({"name": user, "user": {"client-certificate": show(cert), "client-key": show(key)}}));
        contexts.push(json!({"name": c.name, "context": {"cluster": c.name, "user": user}}));
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": cl,
        "users": users,
        "contexts": contexts,
        "current-context": clusters.first().map(|c| c.name).unwrap_or_default(),
        "preferences": {},
    });
    let text = serde_json::to_string_pretty(&config)?;
    toolkit::fs::write_atomic(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A component's client certificate (`CN=user`, `O=groups`) and a
/// kubeconfig for it next to the cluster's certificates; returns the
/// kubeconfig's path.
pub fn component_kubeconfig(
    pki: &ClusterPki,
    cluster: &str,
    name: &str,
    user: &str,
    groups: &[&str],
    server: &str,
) -> Result<PathBuf> {
    let ca = Ca::load_or_generate(&pki.dir, &format!("cilium-lab-{cluster}-ca"))?;
    issue_missing(&ca, &pki.dir, name, &Leaf::client(user, groups))?;
    let path = pki.dir.join(format!("{name}.kubeconfig"));
    let entry = KubeconfigCluster {
        name: cluster,
        server: server.to_string(),
        pki,
        cert: name,
    };
    write_kubeconfig(&path, &[entry])?;
    Ok(path)
}
