//! ServiceAccount tokens: the JWTs the lab issues to pods and verifies
//! on every request bearing one, shaped as upstream's bound tokens (ES256,
//! claims `iss`, `sub`, `aud`, `exp`, `iat`, `nbf` and `kubernetes.io`).
//!
//! Verification is strict about the signature and algorithm (ES256 only,
//! so `none` and HMAC tokens are refused) and about time with
//! [`CLOCK_SKEW`] leeway; it never panics on garbage input.

use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{Authenticated, UserInfo, service_account_username};

/// The issuer (and default audience) of the lab's ServiceAccount tokens,
/// as kubeadm configures it.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Clock skew tolerated on `exp`, `nbf` and `iat` (upstream's leeway).
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_secs(60);

/// A name and uid: the ServiceAccount, pod or node a token names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
}

/// The `kubernetes.io` claim of a ServiceAccount token: whose it is and
/// what it is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountClaims {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: ObjectRef,
    /// The pod the token is bound to (tokens the kubelet mounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The node the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
}

/// The registered and private claims of a token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    #[serde(deserialize_with = "one_or_many")]
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    nbf: i64,
    #[serde(rename = "kubernetes.io")]
    kubernetes: ServiceAccountClaims,
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// What to put in a new token (the TokenRequest API's spec, resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: ObjectRef,
    /// Audiences; empty means the issuer's default audiences.
    pub audiences: Vec<String>,
    /// Lifetime (TokenRequest `expirationSeconds`; the caller validates
    /// its bounds).
    pub lifetime: SignedDuration,
    /// The pod the token is bound to, if any.
    pub pod: Option<ObjectRef>,
    /// The node the token is bound to, if any.
    pub node: Option<ObjectRef>,
}

/// A signed token and when it expires (TokenRequest status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Its `exp`.
    pub expires: Timestamp,
}

/// Why the signing key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Generating or parsing the key failed.
    #[error("service-account key: {0}")]
    Key(#[from] rcgen::Error),
    /// The key is not ECDSA P-256 (ES256 needs one).
    #[error("service-account key must be ECDSA P-256, got {0:?}")]
    Algorithm(String),
    /// jsonwebtoken refused the key.
    #[error("service-account key: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// Why a bearer token is not a valid ServiceAccount token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, not ES256, or claims missing or inconsistent.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The signature does not verify with the issuer's key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is another issuer.
    #[error("token issuer {0:?} is not trusted")]
    UntrustedIssuer(String),
    /// No `aud` is an accepted audience.
    #[error("token audiences {0:?} are not accepted")]
    WrongAudience(Vec<String>),
    /// Signing a new token failed.
    #[error("signing token: {0}")]
    Signing(String),
}

/// Issues and verifies the lab's ServiceAccount tokens (ES256 JWTs).
pub struct ServiceAccountTokens {
    issuer: String,
    audiences: Vec<String>,
    key_pem: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for ServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokens")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountTokens {
    /// Tokens signed with a new ECDSA P-256 key; persist [`Self::key_pem`]
    /// to keep issued tokens valid across restarts. `audiences` are the
    /// accepted ones (and the default of new tokens); empty means
    /// `[issuer]`.
    pub fn generate(issuer: &str, audiences: &[String]) -> Result<Self, KeyError> {
        Self::from_key(rcgen::KeyPair::generate()?, issuer, audiences)
    }

    /// Tokens signed with a PKCS#8 PEM ECDSA P-256 key (as
    /// [`Self::key_pem`] returns it).
    pub fn from_pem(key_pem: &str, issuer: &str, audiences: &[String]) -> Result<Self, KeyError> {
        Self::from_key(rcgen::KeyPair::from_pem(key_pem)?, issuer, audiences)
    }

    fn from_key(key: rcgen::KeyPair, issuer: &str, audiences: &[String]) -> Result<Self, KeyError> {
        if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(KeyError::Algorithm(format!("{:?}", key.algorithm())));
        }
        let key_pem = key.serialize_pem();
        let audiences = if audiences.is_empty() {
            vec![issuer.to_string()]
        } else {
            audiences.to_vec()
        };
        Ok(Self {
            issuer: issuer.into(),
            audiences,
            encoding: EncodingKey::from_ec_pem(key_pem.as_bytes())?,
            decoding: DecodingKey::from_ec_der(key.public_key_raw()),
            key_pem,
        })
    }

    /// The signing key, PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The `iss` of issued tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs a token for `request`, valid from `now`.
    pub fn issue(&self, request: &TokenRequest, now: Timestamp) -> Result<IssuedToken, TokenError> {
        let expires = now
            .checked_add(request.lifetime)
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        let audiences = if request.audiences.is_empty() {
            self.audiences.clone()
        } else {
            request.audiences.clone()
        };
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: service_account_username(&request.namespace, &request.serviceaccount.name),
            aud: audiences,
            exp: expires.as_second(),
            iat: now.as_second(),
            nbf: now.as_second(),
            kubernetes: ServiceAccountClaims {
                namespace: request.namespace.clone(),
                serviceaccount: request.serviceaccount.clone(),
                pod: request.pod.clone(),
                node: request.node.clone(),
            },
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        Ok(IssuedToken { token, expires })
    }

    /// Verifies a token at time `now`: ES256 signature by this issuer's
    /// key, `iss`, an accepted `aud`, `exp`/`nbf`/`iat` (with
    /// [`CLOCK_SKEW`]) and `sub` matching the `kubernetes.io` claim.
    /// Never panics, whatever the input.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<ServiceAccountClaims, TokenError> {
        let claims = self.decode(token)?;
        if claims.iss != self.issuer {
            return Err(TokenError::UntrustedIssuer(claims.iss));
        }
        if !claims.aud.iter().any(|a| self.audiences.contains(a)) {
            return Err(TokenError::WrongAudience(claims.aud));
        }
        check_times(&claims, now)?;
        let sa = &claims.kubernetes;
        if sa.namespace.is_empty() || sa.serviceaccount.name.is_empty() {
            return Err(TokenError::Malformed(
                "no service account namespace or name".into(),
            ));
        }
        if claims.sub != service_account_username(&sa.namespace, &sa.serviceaccount.name) {
            return Err(TokenError::Malformed(format!(
                "subject {:?} does not match the service account",
                claims.sub
            )));
        }
        Ok(claims.kubernetes)
    }

    /// Verifies a token and returns the user it names.
    pub fn authenticate(&self, token: &str, now: Timestamp) -> Result<Authenticated, TokenError> {
        let claims = self.verify(token, now)?;
        Ok(Authenticated {
            user: UserInfo::from_service_account(&claims),
            service_account: Some(claims),
        })
    }

    /// Checks the signature and algorithm and parses the claims; the
    /// claims themselves are checked by [`Self::verify`] against `now`.
    fn decode(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(e.to_string()),
            })
    }
}

/// `exp`, `nbf` and `iat` against `now`, allowing [`CLOCK_SKEW`].
fn check_times(claims: &Claims, now: Timestamp) -> Result<(), TokenError> {
    let now = now.as_second();
    let skew = CLOCK_SKEW.as_secs();
    if now > claims.exp.saturating_add(skew) {
        return Err(TokenError::Expired);
    }
    if now.saturating_add(skew) < claims.nbf.max(claims.iat) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{
        AUTHENTICATED_GROUP, EXTRA_POD_NAME, EXTRA_POD_UID, SERVICE_ACCOUNTS_GROUP,
    };
    use super::*;

    pub(crate) const T0: i64 = 1_750_000_000;

    pub(crate) fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    pub(crate) fn tokens() -> ServiceAccountTokens {
        ServiceAccountTokens::generate(DEFAULT_ISSUER, &[]).unwrap()
    }

    pub(crate) fn request(namespace: &str, name: &str) -> TokenRequest {
        TokenRequest {
            namespace: namespace.into(),
            serviceaccount: ObjectRef {
                name: name.into(),
                uid: format!("uid-{name}"),
            },
            audiences: vec![],
            lifetime: SignedDuration::from_secs(3607),
            pod: None,
            node: None,
        }
    }

    pub(crate) fn issue(tokens: &ServiceAccountTokens, request: &TokenRequest) -> String {
        tokens.issue(request, at(T0)).unwrap().token
    }

    /// Signs arbitrary claims with the issuer's key.
    fn sign(tokens: &ServiceAccountTokens, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &tokens.encoding).unwrap()
    }

    fn valid_claims() -> serde_json::Value {
        serde_json::json!({
            "iss": DEFAULT_ISSUER,
            "sub": "system:serviceaccount:default:builder",
            "aud": [DEFAULT_ISSUER],
            "exp": T0 + 600, "iat": T0, "nbf": T0,
            "kubernetes.io": {
                "namespace": "default",
                "serviceaccount": {"name": "builder", "uid": "u1"},
            },
        })
    }

    #[test]
    fn issued_token_verifies_and_names_the_service_account() {
        let tokens = tokens();
        let mut req = request("kube-system", "cilium");
        req.pod = Some(ObjectRef {
            name: "cilium-x1".into(),
            uid: "pod-uid".into(),
        });
        let issued = tokens.issue(&req, at(T0)).unwrap();
        assert_eq!(issued.expires, at(T0 + 3607));
        let got = tokens.authenticate(&issued.token, at(T0 + 10)).unwrap();
        let user = got.user;
        assert_eq!(user.username, "system:serviceaccount:kube-system:cilium");
        assert_eq!(user.uid, "uid-cilium");
        assert_eq!(
            user.groups,
            strings(&[
                SERVICE_ACCOUNTS_GROUP,
                "system:serviceaccounts:kube-system",
                AUTHENTICATED_GROUP
            ])
        );
        assert_eq!(user.extra[EXTRA_POD_NAME], strings(&["cilium-x1"]));
        assert_eq!(user.extra[EXTRA_POD_UID], strings(&["pod-uid"]));
        let sa = got.service_account.unwrap();
        assert_eq!((sa.namespace.as_str(), sa.pod), ("kube-system", req.pod));
        assert_eq!(sa.serviceaccount, req.serviceaccount);
    }

    #[test]
    fn token_carries_the_upstream_claims() {
        let tokens = tokens();
        let token = issue(&tokens, &request("default", "builder"));
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": DEFAULT_ISSUER,
                "sub": "system:serviceaccount:default:builder",
                "aud": [DEFAULT_ISSUER],
                "exp": T0 + 3607, "iat": T0, "nbf": T0,
                "kubernetes.io": {
                    "namespace": "default",
                    "serviceaccount": {"name": "builder", "uid": "uid-builder"},
                },
            })
        );
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
    }

    #[test]
    fn token_validity_window() {
        let tokens = tokens();
        let token = issue(&tokens, &request("default", "builder"));
        let cases = [
            (T0, Ok(())),
            (T0 - 60, Ok(())),
            (T0 - 61, Err(TokenError::NotYetValid)),
            (T0 + 3607, Ok(())),
            (T0 + 3607 + 60, Ok(())),
            (T0 + 3607 + 61, Err(TokenError::Expired)),
            (T0 + 86_400, Err(TokenError::Expired)),
        ];
        for (now, want) in cases {
            let got = tokens.verify(&token, at(now)).map(|_| ());
            assert_eq!(got, want, "at T0{:+}", now - T0);
        }
    }

    #[test]
    fn audiences() {
        let narrow = ServiceAccountTokens::generate(DEFAULT_ISSUER, &strings(&["a", "b"])).unwrap();
        let cases: &[(&[&str], bool)] = &[
            (&[], true),
            (&["b"], true),
            (&["x", "a"], true),
            (&["x"], false),
        ];
        for (audiences, ok) in cases {
            let mut req = request("default", "builder");
            req.audiences = strings(audiences);
            let got = narrow.verify(&issue(&narrow, &req), at(T0));
            assert_eq!(got.is_ok(), *ok, "{audiences:?}: {got:?}");
        }
    }

    #[test]
    fn tampered_and_foreign_tokens_are_rejected() {
        let tokens = tokens();
        let token = issue(&tokens, &request("default", "builder"));
        let parts: Vec<&str> = token.split('.').collect();
        let other_key = issue(&self::tokens(), &request("default", "builder"));
        let other_issuer = ServiceAccountTokens::from_pem(tokens.key_pem(), "https://evil", &[])
            .unwrap()
            .issue(&request("default", "builder"), at(T0))
            .unwrap()
            .token;
        // Same claims with another namespace: re-encoded payload, old signature.
        let forged_payload = {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut claims: serde_json::Value =
                serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
            claims["kubernetes.io"]["namespace"] = "kube-system".into();
            claims["sub"] = "system:serviceaccount:kube-system:builder".into();
            let payload = b64.encode(serde_json::to_vec(&claims).unwrap());
            format!("{}.{}.{}", parts[0], payload, parts[2])
        };
        let mut flipped_signature = parts[2].to_string().into_bytes();
        flipped_signature[10] = if flipped_signature[10] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let flipped_signature = String::from_utf8(flipped_signature).unwrap();
        let cases = [
            (forged_payload, TokenError::BadSignature),
            (
                format!("{}.{}.{}", parts[0], parts[1], flipped_signature),
                TokenError::BadSignature,
            ),
            (other_key, TokenError::BadSignature),
            (
                other_issuer,
                TokenError::UntrustedIssuer("https://evil".into()),
            ),
        ];
        for (token, want) in cases {
            assert_eq!(tokens.verify(&token, at(T0)), Err(want), "{token}");
        }
    }

    #[test]
    fn inconsistent_claims_are_rejected() {
        let tokens = tokens();
        type Edit = fn(&mut serde_json::Value);
        let edits: [(&str, Edit); 6] = [
            ("wrong sub", |c| {
                c["sub"] = "system:serviceaccount:x:y".into()
            }),
            ("no exp", |c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            ("no kubernetes.io", |c| {
                c.as_object_mut().unwrap().remove("kubernetes.io");
            }),
            ("empty namespace", |c| {
                c["kubernetes.io"]["namespace"] = "".into();
                c["sub"] = "system:serviceaccount::builder".into();
            }),
            ("exp is a string", |c| c["exp"] = "soon".into()),
            ("iat in the future", |c| c["iat"] = (T0 + 3600).into()),
        ];
        assert!(
            tokens
                .verify(&sign(&tokens, &valid_claims()), at(T0))
                .is_ok()
        );
        for (what, edit) in edits {
            let mut claims = valid_claims();
            edit(&mut claims);
            let got = tokens.verify(&sign(&tokens, &claims), at(T0));
            assert!(got.is_err(), "{what}: {got:?}");
        }
        let mut single_aud = valid_claims();
        single_aud["aud"] = DEFAULT_ISSUER.into();
        assert!(tokens.verify(&sign(&tokens, &single_aud), at(T0)).is_ok());
    }

    #[test]
    fn other_algorithms_are_rejected() {
        let tokens = tokens();
        let hs256 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &valid_claims(),
            &EncodingKey::from_secret(tokens.key_pem().as_bytes()),
        )
        .unwrap();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = b64.encode(serde_json::to_vec(&valid_claims()).unwrap());
        let none = format!("{}.{payload}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#));
        for token in [hs256, none] {
            let got = tokens.verify(&token, at(T0));
            assert!(matches!(got, Err(TokenError::Malformed(_))), "{got:?}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let tokens = tokens();
        let fixed = [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b",
            "eyJhbGciOiJFUzI1NiJ9..",
            "eyJhbGciOiJFUzI1NiJ9.e30.",
            "eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
            "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.AAAA",
            "\u{0}\u{ff}\u{feff}.x.y",
        ];
        for token in fixed {
            assert!(tokens.verify(token, at(T0)).is_err(), "{token:?}");
        }
        let valid = issue(&tokens, &request("default", "builder"));
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bytes = valid.clone().into_bytes();
            let i = (seed % bytes.len() as u64) as usize;
            bytes[i] = b"A.-_=/+\0"[(seed >> 32) as usize % 8];
            bytes.truncate(bytes.len() - (seed >> 40) as usize % 4);
            let mutated = String::from_utf8_lossy(&bytes);
            let _ = tokens.verify(&mutated, at(T0));
        }
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let first = tokens();
        let token = issue(&first, &request("default", "builder"));
        let again = ServiceAccountTokens::from_pem(first.key_pem(), DEFAULT_ISSUER, &[]).unwrap();
        assert!(again.verify(&token, at(T0)).is_ok());
        let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let refused = [
            ServiceAccountTokens::from_pem("not a key", DEFAULT_ISSUER, &[]),
            ServiceAccountTokens::from_pem(&ed25519.serialize_pem(), DEFAULT_ISSUER, &[]),
        ];
        for got in refused {
            assert!(got.is_err(), "{got:?}");
        }
    }
}
