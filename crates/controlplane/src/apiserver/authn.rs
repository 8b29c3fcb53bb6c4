//! Authentication: who sent a request, as the API server decides it.
//!
//! Two credentials are understood, tried in this order like upstream's
//! union authenticator:
//!
//! - a **client certificate** (the TLS layer has already verified its chain
//!   against the lab CA): user = subject `CN`, groups = every `O`;
//! - a **bearer token** (`Authorization: Bearer <jwt>`): a ServiceAccount
//!   token issued by [`ServiceAccountTokens`] (ES256), naming user
//!   `system:serviceaccount:<ns>:<name>` in groups `system:serviceaccounts`
//!   and `system:serviceaccounts:<ns>`.
//!
//! Every authenticated user is also in `system:authenticated`. A request
//! with neither credential is `system:anonymous` in `system:unauthenticated`
//! when anonymous access is on. Any [`AuthnError`] is a 401 `Unauthorized`
//! (see [`unauthorized_status`]); authenticated but not allowed is a
//! [`super::rbac`] 403.
//!
//! Everything here is pure: the current time is an argument, and the
//! caller checks that a token's ServiceAccount (returned as
//! [`ServiceAccountClaims`]) still exists with the claimed uid.

mod token;

use std::collections::BTreeMap;

use jiff::Timestamp;

pub use token::{
    CLOCK_SKEW, DEFAULT_ISSUER, IssuedToken, KeyError, ObjectRef, ServiceAccountClaims,
    ServiceAccountTokens, TokenError, TokenRequest,
};

/// The group of every authenticated user.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The group of the anonymous user.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// The user name of requests without credentials.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of every ServiceAccount.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

/// The `extra` key naming the pod a token is bound to.
const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// The `extra` key naming the uid of the pod a token is bound to.
const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// The `extra` key naming the node a token is bound to.
const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";

/// An authenticated (or anonymous) user, as RBAC and `auth whoami` see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    /// The user name (`alice`, `system:serviceaccount:kube-system:cilium`).
    pub username: String,
    /// A unique id (the ServiceAccount's uid for tokens; empty otherwise).
    pub uid: String,
    /// Every group the user is in, `system:authenticated` included.
    pub groups: Vec<String>,
    /// Further attributes (the pod or node a token is bound to).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The user of a request without credentials.
    pub fn anonymous() -> Self {
        Self {
            username: ANONYMOUS_USER.into(),
            groups: vec![UNAUTHENTICATED_GROUP.into()],
            ..Self::default()
        }
    }

    /// The user a client certificate subject names: `CN` is the user, each
    /// `O` a group. `None` when the `CN` is empty (upstream then ignores
    /// the certificate).
    pub fn from_subject(subject: &pki::Subject) -> Option<Self> {
        if subject.common_name.is_empty() {
            return None;
        }
        let user = Self {
            username: subject.common_name.clone(),
            groups: subject.organizations.clone(),
            ..Self::default()
        };
        Some(user.authenticated())
    }

    /// The user of a (chain-verified) DER client certificate; `None` when
    /// its `CN` is empty.
    pub fn from_certificate(der: &[u8]) -> Result<Option<Self>, AuthnError> {
        Ok(Self::from_subject(&pki::subject_of(der)?))
    }

    /// The user a verified ServiceAccount token names.
    pub fn from_service_account(claims: &ServiceAccountClaims) -> Self {
        let namespace = &claims.namespace;
        let mut extra = BTreeMap::new();
        if let Some(pod) = &claims.pod {
            extra.insert(EXTRA_POD_NAME.to_string(), vec![pod.name.clone()]);
            extra.insert(EXTRA_POD_UID.to_string(), vec![pod.uid.clone()]);
        }
        if let Some(node) = &claims.node {
            extra.insert(EXTRA_NODE_NAME.to_string(), vec![node.name.clone()]);
        }
        let user = Self {
            username: service_account_username(namespace, &claims.serviceaccount.name),
            uid: claims.serviceaccount.uid.clone(),
            groups: vec![
                SERVICE_ACCOUNTS_GROUP.into(),
                format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}"),
            ],
            extra,
        };
        user.authenticated()
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The user as `authentication.k8s.io/v1` `UserInfo` (the
    /// SelfSubjectReview status of `kubectl auth whoami`).
    pub fn to_api(&self) -> api::k8s_openapi::api::authentication::v1::UserInfo {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        api::k8s_openapi::api::authentication::v1::UserInfo {
            username: non_empty(&self.username),
            uid: non_empty(&self.uid),
            groups: (!self.groups.is_empty()).then(|| self.groups.clone()),
            extra: (!self.extra.is_empty()).then(|| self.extra.clone()),
        }
    }

    /// Adds `system:authenticated` unless already there.
    fn authenticated(mut self) -> Self {
        if !self.in_group(AUTHENTICATED_GROUP) {
            self.groups.push(AUTHENTICATED_GROUP.into());
        }
        self
    }
}

/// The user name of a ServiceAccount: `system:serviceaccount:<ns>:<name>`.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Why a request is not authenticated; each is a 401 `Unauthorized`.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// The client certificate does not parse.
    #[error("client certificate: {0}")]
    Certificate(#[from] pki::Error),
    /// The bearer token is not a valid ServiceAccount token.
    #[error("invalid bearer token: {0}")]
    Token(#[from] TokenError),
    /// No credentials, and anonymous access is off.
    #[error("no credentials and anonymous access is disabled")]
    NoCredentials,
}

/// The body of a 401 reply (upstream's `Unauthorized` Status).
pub fn unauthorized_status() -> serde_json::Value {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    })
}

/// The token of an `Authorization` header value, as upstream reads it:
/// scheme `Bearer` (any case), a single space, a non-empty token. `None`
/// means the header carries no bearer token (not an error).
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let mut parts = authorization.trim().splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The credentials a request carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The DER leaf of the client certificate, already verified by TLS.
    pub client_certificate: Option<&'a [u8]>,
    /// The `Authorization` header value.
    pub authorization: Option<&'a str>,
}

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The user RBAC authorizes.
    pub user: UserInfo,
    /// For ServiceAccount tokens: what the token claims, for the caller to
    /// check that the ServiceAccount (and bound pod) still exist.
    pub service_account: Option<ServiceAccountClaims>,
}

/// Authenticates requests: client certificate first, then bearer token,
/// then anonymous (if enabled).
#[derive(Debug)]
pub struct Authenticator {
    tokens: ServiceAccountTokens,
    anonymous: bool,
}

impl Authenticator {
    /// An authenticator trusting `tokens`; `anonymous` turns on
    /// `system:anonymous` for requests without credentials.
    pub fn new(tokens: ServiceAccountTokens, anonymous: bool) -> Self {
        Self { tokens, anonymous }
    }

    /// The token issuer, e.g. to serve TokenRequests.
    pub fn tokens(&self) -> &ServiceAccountTokens {
        &self.tokens
    }

    /// Who sent a request with `credentials` at time `now`. A certificate
    /// with an empty `CN` and an `Authorization` header that is not a
    /// bearer token are ignored, as upstream does.
    pub fn authenticate(
        &self,
        credentials: &Credentials<'_>,
        now: Timestamp,
    ) -> Result<Authenticated, AuthnError> {
        let mut failure = None;
        if let Some(der) = credentials.client_certificate {
            match UserInfo::from_certificate(der) {
                Ok(Some(user)) => {
                    return Ok(Authenticated {
                        user,
                        service_account: None,
                    });
                }
                Ok(None) => {}
                Err(e) => failure = Some(e),
            }
        }
        if let Some(token) = credentials.authorization.and_then(bearer_token) {
            match self.tokens.authenticate(token, now) {
                Ok(authenticated) => return Ok(authenticated),
                Err(e) => failure = failure.or(Some(e.into())),
            }
        }
        match failure {
            Some(e) => Err(e),
            None if self.anonymous => Ok(Authenticated {
                user: UserInfo::anonymous(),
                service_account: None,
            }),
            None => Err(AuthnError::NoCredentials),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::token::tests::{T0, at, issue, request, tokens};
    use super::*;

    fn subject(cn: &str, orgs: &[&str]) -> pki::Subject {
        pki::Subject {
            common_name: cn.into(),
            organizations: orgs.iter().map(|o| o.to_string()).collect(),
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn certificate_subjects_become_users() {
        /// CN, Os → user and groups (`None`: certificate ignored).
        type Case<'a> = (&'a str, &'a [&'a str], Option<(&'a str, &'a [&'a str])>);
        let cases: &[Case] = &[
            ("alice", &[], Some(("alice", &[AUTHENTICATED_GROUP]))),
            (
                "alice",
                &["system:masters", "devs"],
                Some(("alice", &["system:masters", "devs", AUTHENTICATED_GROUP])),
            ),
            (
                "bob",
                &[AUTHENTICATED_GROUP],
                Some(("bob", &[AUTHENTICATED_GROUP])),
            ),
            ("", &["system:masters"], None),
        ];
        for (cn, orgs, want) in cases {
            let got = UserInfo::from_subject(&subject(cn, orgs));
            let got = got.map(|u| (u.username, u.groups));
            let want = want.map(|(u, g)| (u.to_string(), strings(g)));
            assert_eq!(got, want, "CN={cn:?} O={orgs:?}");
        }
    }

    #[test]
    fn real_client_certificate_authenticates() {
        let ca = pki::Ca::generate("lab-ca").unwrap();
        let pair = ca
            .issue(&pki::Leaf::client("alice", &["system:masters", "devs"]))
            .unwrap();
        let der = pki::certs_from_pem(&pair.cert_pem).unwrap().remove(0);
        let auth = Authenticator::new(tokens(), false);
        let credentials = Credentials {
            client_certificate: Some(&der),
            authorization: None,
        };
        let got = auth.authenticate(&credentials, at(T0)).unwrap();
        assert_eq!(got.user.username, "alice");
        assert_eq!(
            got.user.groups,
            strings(&["system:masters", "devs", AUTHENTICATED_GROUP])
        );
        assert_eq!(got.service_account, None);
    }

    #[test]
    fn bearer_header_parsing() {
        let cases = [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER abc extra", Some("abc")),
            ("  Bearer abc  ", Some("abc")),
            ("Bearer  abc", None),
            ("Bearer", None),
            ("Bearer ", None),
            ("Basic dXNlcjpwdw==", None),
            ("", None),
            ("abc", None),
        ];
        for (header, want) in cases {
            assert_eq!(bearer_token(header), want, "{header:?}");
        }
    }

    #[test]
    fn authenticator_precedence() {
        let auth = Authenticator::new(tokens(), true);
        let same_key = ServiceAccountTokens::from_pem(auth.tokens().key_pem(), DEFAULT_ISSUER, &[]);
        let closed = Authenticator::new(same_key.unwrap(), false);
        let ca = pki::Ca::generate("lab-ca").unwrap();
        let cert = |cn: &str| {
            let pair = ca.issue(&pki::Leaf::client(cn, &[])).unwrap();
            pki::certs_from_pem(&pair.cert_pem)
                .unwrap()
                .remove(0)
                .to_vec()
        };
        let (alice, no_cn) = (cert("alice"), cert(""));
        let (alice, no_cn) = (alice.as_slice(), no_cn.as_slice());
        let sa = format!(
            "Bearer {}",
            issue(auth.tokens(), &request("default", "builder"))
        );
        let sa_user = "system:serviceaccount:default:builder";
        /// Authenticator, client certificate, `Authorization` → user name
        /// (`None`: 401).
        type Case<'a> = (
            &'a Authenticator,
            Option<&'a [u8]>,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            (&auth, Some(alice), Some(&sa), Some("alice")),
            (&auth, Some(alice), Some("Bearer garbage"), Some("alice")),
            (&auth, Some(no_cn), Some(&sa), Some(sa_user)),
            (&auth, Some(no_cn), None, Some(ANONYMOUS_USER)),
            (&auth, None, Some(&sa), Some(sa_user)),
            (&auth, None, Some("Bearer garbage"), None),
            (&auth, Some(b"not der".as_slice()), None, None),
            (
                &auth,
                None,
                Some("Basic dXNlcjpwdw=="),
                Some(ANONYMOUS_USER),
            ),
            (&auth, None, None, Some(ANONYMOUS_USER)),
            (&closed, None, None, None),
            (&closed, None, Some(&sa), Some(sa_user)),
        ];
        for (i, (authenticator, cert, header, want)) in cases.iter().enumerate() {
            let credentials = Credentials {
                client_certificate: *cert,
                authorization: *header,
            };
            let got = authenticator.authenticate(&credentials, at(T0));
            let got = got.ok().map(|a| a.user.username);
            assert_eq!(got.as_deref(), *want, "case {i}");
        }
    }

    #[test]
    fn anonymous_and_whoami() {
        let anonymous = UserInfo::anonymous();
        assert_eq!(anonymous.username, ANONYMOUS_USER);
        assert_eq!(anonymous.groups, strings(&[UNAUTHENTICATED_GROUP]));
        let api = UserInfo::from_subject(&subject("alice", &["devs"]))
            .unwrap()
            .to_api();
        assert_eq!(
            serde_json::to_value(api).unwrap(),
            serde_json::json!({"username": "alice", "groups": ["devs", AUTHENTICATED_GROUP]})
        );
        assert_eq!(unauthorized_status()["code"], 401);
    }
}
