//! The lab's public-key infrastructure: one certificate authority per
//! cluster that issues the API server's and etcd's serving certificates
//! and the client certificates components authenticate with (the subject's
//! `CN` is the user, every `O` a group, as the Kubernetes API server reads
//! them). Also: the subject of a presented client certificate, and rustls
//! configurations for mutual TLS.
//!
//! ```text
//!  Ca::generate ──► ca.crt/ca.key ──► Ca::issue(Leaf) ──► CertPair ──► write(dir, "apiserver")
//!                                                                    apiserver.crt, apiserver.key (0600)
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// Errors of certificate handling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Generating or signing a certificate failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file or certificate does not parse.
    #[error("{what}: {detail}")]
    Parse {
        /// What was parsed (a path or a description).
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Result of this crate's operations.
pub type Result<T> = std::result::Result<T, Error>;

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertPair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair").finish_non_exhaustive()
    }
}

impl CertPair {
    /// Write `<dir>/<name>.crt` and `<dir>/<name>.key` (the key readable
    /// by its owner only); returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        write_file(&cert, self.cert_pem.as_bytes(), 0o644)?;
        write_file(&key, self.key_pem.as_bytes(), 0o600)?;
        Ok((cert, key))
    }

    /// Read `<dir>/<name>.crt` and `<dir>/<name>.key`.
    pub fn read(dir: &Path, name: &str) -> Result<Self> {
        Ok(Self {
            cert_pem: read_file(&dir.join(format!("{name}.crt")))?,
            key_pem: read_file(&dir.join(format!("{name}.key")))?,
        })
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server authentication.
    Server,
    /// TLS client authentication.
    Client,
    /// Both (etcd peers, servers that are also clients).
    ServerAndClient,
}

/// A certificate to issue.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Subject `CN` (the user name of a client certificate).
    pub common_name: String,
    /// Subject `O`s (the groups of a client certificate).
    pub organizations: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ips: Vec<IpAddr>,
    /// Server, client or both.
    pub usage: Usage,
}

impl Leaf {
    /// A client certificate for `user` in `groups`.
    pub fn client(user: &str, groups: &[&str]) -> Self {
        Self {
            common_name: user.to_string(),
            organizations: groups.iter().map(|g| g.to_string()).collect(),
            dns_names: Vec::new(),
            ips: Vec::new(),
            usage: Usage::Client,
        }
    }

    /// A serving certificate for the given names and addresses.
    pub fn server(common_name: &str, dns_names: &[&str], ips: &[IpAddr]) -> Self {
        Self {
            common_name: common_name.to_string(),
            organizations: Vec::new(),
            dns_names: dns_names.iter().map(|d| d.to_string()).collect(),
            ips: ips.to_vec(),
            usage: Usage::Server,
        }
    }

    /// The same certificate, usable by servers and clients.
    pub fn for_both(mut self) -> Self {
        self.usage = Usage::ServerAndClient;
        self
    }
}

/// A certificate authority: its certificate and signing key.
pub struct Ca {
    pair: CertPair,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA named `common_name`.
    pub fn generate(common_name: &str) -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = base_params(common_name, &[])?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pair: CertPair {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
            key,
        })
    }

    /// A CA from its PEM certificate and key.
    pub fn from_pair(pair: CertPair) -> Result<Self> {
        let key = KeyPair::from_pem(&pair.key_pem).map_err(|e| Error::Parse {
            what: "CA key".into(),
            detail: e.to_string(),
        })?;
        // Checks the certificate parses before anything is signed with it.
        Issuer::from_ca_cert_pem(&pair.cert_pem, &key).map_err(|e| Error::Parse {
            what: "CA certificate".into(),
            detail: e.to_string(),
        })?;
        Ok(Self { pair, key })
    }

    /// Load `<dir>/ca.crt` and `<dir>/ca.key`, or create and write them
    /// when absent.
    pub fn load_or_generate(dir: &Path, common_name: &str) -> Result<Self> {
        if dir.join("ca.crt").exists() {
            return Self::from_pair(CertPair::read(dir, "ca")?);
        }
        let ca = Self::generate(common_name)?;
        ca.pair.write(dir, "ca")?;
        Ok(ca)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.pair.cert_pem
    }

    /// Issue a leaf certificate with a fresh key.
    pub fn issue(&self, leaf: &Leaf) -> Result<CertPair> {
        let key = KeyPair::generate()?;
        let mut params = base_params(&leaf.common_name, &leaf.organizations)?;
        params.subject_alt_names = leaf
            .dns_names
            .iter()
            .map(|d| {
                Ok(SanType::DnsName(d.clone().try_into().map_err(
                    |e: rcgen::Error| Error::Parse {
                        what: format!("DNS name {d:?}"),
                        detail: e.to_string(),
                    },
                )?))
            })
            .chain(leaf.ips.iter().map(|ip| Ok(SanType::IpAddress(*ip))))
            .collect::<Result<_>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match leaf.usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_pem(&self.pair.cert_pem, &self.key)?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// X.520 `organizationName`.
const ORGANIZATION_OID: &[u64] = &[2, 5, 4, 10];

fn base_params(common_name: &str, organizations: &[String]) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    // rcgen keeps one value per attribute type: the second `O` goes in
    // under the same OID spelled as a custom type.
    let org_types = [
        DnType::OrganizationName,
        DnType::CustomDnType(ORGANIZATION_OID.to_vec()),
    ];
    if organizations.len() > org_types.len() {
        return Err(Error::Parse {
            what: format!("subject of {common_name:?}"),
            detail: format!("at most {} organizations (groups)", org_types.len()),
        });
    }
    for (ty, org) in org_types.into_iter().zip(organizations) {
        dn.push(ty, org.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2100, 1, 1);
    Ok(params)
}

/// A new ECDSA P-256 private key, PKCS#8 PEM (signing keys, e.g. of
/// service-account tokens).
pub fn new_key_pem() -> Result<String> {
    Ok(KeyPair::generate()?.serialize_pem())
}

/// Write a private key file readable by its owner only, unless present.
pub fn write_key_if_missing(path: &Path, key_pem: impl FnOnce() -> Result<String>) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    write_file(path, key_pem()?.as_bytes(), 0o600)
}

/// The identity a client certificate names: subject `CN` and `O`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `CN`.
    pub common_name: String,
    /// Every `O`, in order.
    pub organizations: Vec<String>,
}

/// The subject of a DER certificate.
pub fn subject_of(der: &[u8]) -> Result<Subject> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| Error::Parse {
        what: "client certificate".into(),
        detail: e.to_string(),
    })?;
    let subject = cert.subject();
    let text = |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        attr.as_str().map(str::to_string).unwrap_or_default()
    };
    Ok(Subject {
        common_name: subject
            .iter_common_name()
            .next()
            .map(text)
            .unwrap_or_default(),
        organizations: subject.iter_organization().map(text).collect(),
    })
}

/// Every certificate of a PEM bundle, DER.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Parse {
            what: "PEM certificates".into(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Parse {
            what: "PEM certificates".into(),
            detail: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| Error::Parse {
        what: "PEM private key".into(),
        detail: e.to_string(),
    })
}

/// The CA certificates of a PEM bundle as a rustls root store.
pub fn root_store(ca_pem: &str) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs_from_pem(ca_pem)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whether a server asks clients for certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every client must present a certificate issued by the CA.
    Required,
    /// A client may present one (verified when presented) or
    /// authenticate otherwise (bearer tokens).
    Optional,
}

/// A rustls server configuration serving `pair`, verifying client
/// certificates against `ca_pem`. ALPN offers HTTP/1.1 only.
pub fn server_config(
    ca_pem: &str,
    pair: &CertPair,
    client_auth: ClientAuth,
) -> Result<rustls::ServerConfig> {
    let roots = Arc::new(root_store(ca_pem)?);
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider());
    let builder = match client_auth {
        ClientAuth::Required => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    let verifier = builder.build().map_err(|e| Error::Parse {
        what: "client verifier".into(),
        detail: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs_from_pem(&pair.cert_pem)?,
            key_from_pem(&pair.key_pem)?,
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A rustls client configuration trusting `ca_pem`, presenting `pair`
/// when given.
pub fn client_config(ca_pem: &str, pair: Option<&CertPair>) -> Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(root_store(ca_pem)?);
    Ok(match pair {
        Some(pair) => builder.with_client_auth_cert(
            certs_from_pem(&pair.cert_pem)?,
            key_from_pem(&pair.key_pem)?,
        )?,
        None => builder.with_no_client_auth(),
    })
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    toolkit::fs::write_atomic(path, bytes).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificates_carry_user_and_groups() {
        let ca = Ca::generate("lab-ca").unwrap();
        let pair = ca
            .issue(&Leaf::client("alice", &["system:masters", "devs"]))
            .unwrap();
        let der = &certs_from_pem(&pair.cert_pem).unwrap()[0];
        let subject = subject_of(der).unwrap();
        assert_eq!(subject.common_name, "alice");
        assert_eq!(subject.organizations, ["system:masters", "devs"]);
    }

    #[test]
    fn three_groups_are_refused() {
        let ca = Ca::generate("lab-ca").unwrap();
        let err = ca
            .issue(&Leaf::client("bob", &["a", "b", "c"]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "subject of \"bob\": at most 2 organizations (groups)"
        );
    }

    #[test]
    fn files_round_trip_and_keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_generate(dir.path(), "lab-ca").unwrap();
        let again = Ca::load_or_generate(dir.path(), "lab-ca").unwrap();
        assert_eq!(ca.cert_pem(), again.cert_pem());
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_pem_is_named() {
        let err = certs_from_pem("not a certificate").unwrap_err();
        assert_eq!(err.to_string(), "PEM certificates: no certificate found");
        let pair = CertPair {
            cert_pem: "x".into(),
            key_pem: "y".into(),
        };
        assert!(
            Ca::from_pair(pair)
                .unwrap_err()
                .to_string()
                .starts_with("CA key")
        );
    }

    #[test]
    fn configs_build_for_servers_and_clients() {
        let ca = Ca::generate("lab-ca").unwrap();
        let ip: IpAddr = "192.168.10.100".parse().unwrap();
        let server = ca
            .issue(&Leaf::server("kube-apiserver", &["kubernetes"], &[ip]))
            .unwrap();
        let client = ca
            .issue(&Leaf::client("admin", &["system:masters"]))
            .unwrap();
        server_config(ca.cert_pem(), &server, ClientAuth::Optional).unwrap();
        server_config(ca.cert_pem(), &server, ClientAuth::Required).unwrap();
        client_config(ca.cert_pem(), Some(&client)).unwrap();
        client_config(ca.cert_pem(), None).unwrap();
    }
}
