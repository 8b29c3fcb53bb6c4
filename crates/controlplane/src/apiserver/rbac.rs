//! RBAC authorization: may this user do this, as upstream's RBAC
//! authorizer decides it over a snapshot of Roles, ClusterRoles,
//! RoleBindings and ClusterRoleBindings.
//!
//! ```text
//!  Attributes (user, verb, resource | path)
//!    ─► system:masters?                      → allow (superuser)
//!    ─► ClusterRoleBindings, then the RoleBindings of the request's
//!       namespace, whose subjects name the user (User, Group,
//!       ServiceAccount) ─► their role's rules ─► any rule matches → allow
//!    ─► otherwise deny (403 with upstream's message, see [`Forbidden`])
//! ```
//!
//! Policy is allow-only. A RoleBinding grants only inside its namespace
//! (it may reference a ClusterRole); non-resource URLs are granted by
//! ClusterRoleBindings only. Rule matching follows upstream exactly:
//! `*` everywhere, `plural/sub` and `*/sub` for subresources (`pods` does
//! not cover `pods/exec`), `resourceNames` never match a request without
//! a name (create, list), `nonResourceURLs` ending in `*` are prefixes.
//!
//! Pure: the caller keeps the snapshot current and builds a new
//! [`Authorizer`] when RBAC objects change.

use std::collections::BTreeMap;

use api::k8s_openapi::api::authorization::v1::{
    NonResourceRule, ResourceRule, SelfSubjectAccessReviewSpec, SubjectAccessReviewStatus,
    SubjectRulesReviewStatus,
};
use api::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::authn::{UserInfo, service_account_username};

/// The group the API server authorizes for everything before RBAC.
pub const SUPERUSER_GROUP: &str = "system:masters";

/// The RBAC objects an [`Authorizer`] decides over.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Namespaced roles.
    pub roles: Vec<Role>,
    /// Cluster roles.
    pub cluster_roles: Vec<ClusterRole>,
    /// Namespaced bindings.
    pub role_bindings: Vec<RoleBinding>,
    /// Cluster-wide bindings.
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
}

/// What a resource request addresses. Empty strings are absent fields
/// (`api_group` `""` is the core group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResourceAttributes<'a> {
    /// The API group (`""`, `apps`, `cilium.io`).
    pub api_group: &'a str,
    /// The plural resource (`pods`).
    pub resource: &'a str,
    /// The subresource (`exec`, `status`), or empty.
    pub subresource: &'a str,
    /// The namespace, or empty at cluster scope.
    pub namespace: &'a str,
    /// The object name, or empty (list, watch, create).
    pub name: &'a str,
}

/// A resource request or a non-resource path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// An API resource.
    Resource(ResourceAttributes<'a>),
    /// Any other path (`/healthz`, `/version`, `/apis`).
    NonResource {
        /// The URL path.
        path: &'a str,
    },
}

/// One request to authorize.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    /// Who asks.
    pub user: &'a UserInfo,
    /// `get list watch create update patch delete deletecollection` (or
    /// another verb a rule may name); lowercase HTTP method for paths.
    pub verb: &'a str,
    /// What is asked for.
    pub target: Target<'a>,
}

impl Attributes<'_> {
    /// The namespace whose RoleBindings apply (empty for cluster scope and
    /// paths).
    fn namespace(&self) -> &str {
        match self.target {
            Target::Resource(r) => r.namespace,
            Target::NonResource { .. } => "",
        }
    }
}

/// An authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Upstream's reason: `RBAC: allowed by <binding>` when allowed (empty
    /// for the superuser group); when denied, empty or the evaluation
    /// errors (`RBAC: clusterrole.rbac.authorization.k8s.io "x" not found`).
    pub reason: String,
}

/// Why a SelfSubjectAccessReview spec cannot be evaluated (a 422
/// `Invalid`; the text is upstream's field error detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// Neither attribute set is given.
    #[error("exactly one of nonResourceAttributes or resourceAttributes must be specified")]
    Neither,
    /// Both attribute sets are given.
    #[error("cannot be specified in combination with resourceAttributes")]
    Both,
}

impl ReviewError {
    /// The offending field, as upstream names it.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Neither => "spec.resourceAttributes",
            Self::Both => "spec.nonResourceAttributes",
        }
    }
}

/// Decides requests over one [`Policy`] snapshot.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    roles: BTreeMap<(String, String), Vec<PolicyRule>>,
    cluster_roles: BTreeMap<String, Vec<PolicyRule>>,
    role_bindings: BTreeMap<String, Vec<RoleBinding>>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
}

impl Authorizer {
    /// Indexes a snapshot. Objects without a name (or namespaced ones
    /// without a namespace) are ignored; bindings are evaluated in name
    /// order.
    pub fn new(policy: Policy) -> Self {
        let name_of = |meta: &ObjectMeta| {
            (
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
            )
        };
        let mut this = Self::default();
        for role in policy.roles {
            let (namespace, name) = name_of(&role.metadata);
            if !namespace.is_empty() && !name.is_empty() {
                let rules = role.rules.unwrap_or_default();
                this.roles.insert((namespace, name), rules);
            }
        }
        for role in policy.cluster_roles {
            let (_, name) = name_of(&role.metadata);
            if !name.is_empty() {
                this.cluster_roles
                    .insert(name, role.rules.unwrap_or_default());
            }
        }
        for binding in policy.role_bindings {
            let (namespace, name) = name_of(&binding.metadata);
            if !namespace.is_empty() && !name.is_empty() {
                this.role_bindings
                    .entry(namespace)
                    .or_default()
                    .push(binding);
            }
        }
        for bindings in this.role_bindings.values_mut() {
            bindings.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        }
        this.cluster_role_bindings = policy.cluster_role_bindings;
        this.cluster_role_bindings
            .retain(|b| b.metadata.name.as_deref().is_some_and(|n| !n.is_empty()));
        this.cluster_role_bindings
            .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        this
    }

    /// Whether `attributes` is allowed, and why.
    pub fn authorize(&self, attributes: &Attributes<'_>) -> Decision {
        if attributes.user.in_group(SUPERUSER_GROUP) {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let (grants, errors) = self.grants(attributes.user, attributes.namespace());
        let allowing = grants.iter().find(|grant| {
            grant
                .rules
                .iter()
                .any(|rule| rule_allows(rule, attributes.verb, &attributes.target))
        });
        match allowing {
            Some(grant) => Decision {
                allowed: true,
                reason: format!("RBAC: allowed by {}", grant.describe()),
            },
            None => Decision {
                allowed: false,
                reason: aggregate(&errors)
                    .map(|e| format!("RBAC: {e}"))
                    .unwrap_or_default(),
            },
        }
    }

    /// Evaluates a SelfSubjectAccessReview spec (`kubectl auth can-i`) for
    /// `user`.
    pub fn review(
        &self,
        user: &UserInfo,
        spec: &SelfSubjectAccessReviewSpec,
    ) -> Result<SubjectAccessReviewStatus, ReviewError> {
        fn field(value: &Option<String>) -> &str {
            value.as_deref().unwrap_or_default()
        }
        let (verb, target) = match (&spec.resource_attributes, &spec.non_resource_attributes) {
            (Some(r), None) => (
                field(&r.verb),
                Target::Resource(ResourceAttributes {
                    api_group: field(&r.group),
                    resource: field(&r.resource),
                    subresource: field(&r.subresource),
                    namespace: field(&r.namespace),
                    name: field(&r.name),
                }),
            ),
            (None, Some(n)) => (
                field(&n.verb),
                Target::NonResource {
                    path: field(&n.path),
                },
            ),
            (None, None) => return Err(ReviewError::Neither),
            (Some(_), Some(_)) => return Err(ReviewError::Both),
        };
        let decision = self.authorize(&Attributes { user, verb, target });
        Ok(SubjectAccessReviewStatus {
            allowed: decision.allowed,
            reason: (!decision.reason.is_empty()).then_some(decision.reason),
            ..SubjectAccessReviewStatus::default()
        })
    }

    /// Every rule granting `user` something in `namespace` (cluster-wide
    /// grants included): the status of a SelfSubjectRulesReview
    /// (`kubectl auth can-i --list`).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> SubjectRulesReviewStatus {
        let mut status = SubjectRulesReviewStatus::default();
        if user.in_group(SUPERUSER_GROUP) {
            let all = || Some(vec!["*".to_string()]);
            status.resource_rules.push(ResourceRule {
                verbs: vec!["*".into()],
                api_groups: all(),
                resources: all(),
                resource_names: None,
            });
            status.non_resource_rules.push(NonResourceRule {
                verbs: vec!["*".into()],
                non_resource_urls: all(),
            });
        }
        let (grants, errors) = self.grants(user, namespace);
        for rule in grants.iter().flat_map(|grant| grant.rules) {
            if !list(&rule.resources).is_empty() {
                status.resource_rules.push(ResourceRule {
                    verbs: rule.verbs.clone(),
                    api_groups: rule.api_groups.clone(),
                    resources: rule.resources.clone(),
                    resource_names: rule.resource_names.clone(),
                });
            }
            if !list(&rule.non_resource_urls).is_empty() {
                status.non_resource_rules.push(NonResourceRule {
                    verbs: rule.verbs.clone(),
                    non_resource_urls: rule.non_resource_urls.clone(),
                });
            }
        }
        status.evaluation_error = aggregate(&errors);
        status
    }

    /// The bindings naming `user` that apply in `namespace`, with their
    /// roles' rules (cluster bindings first), and the roles that could not
    /// be resolved.
    fn grants<'s>(&'s self, user: &UserInfo, namespace: &str) -> (Vec<Grant<'s>>, Vec<String>) {
        let cluster = self.cluster_role_bindings.iter().map(Binding::cluster);
        let local = (!namespace.is_empty())
            .then(|| self.role_bindings.get(namespace))
            .flatten()
            .into_iter()
            .flatten()
            .map(Binding::namespaced);
        let mut grants = Vec::new();
        let mut errors = Vec::new();
        for binding in cluster.chain(local) {
            let Some(subject) = binding.subject_for(user) else {
                continue;
            };
            match self.rules_of(&binding) {
                Ok(rules) => grants.push(Grant {
                    binding,
                    subject,
                    rules,
                }),
                Err(e) => errors.push(e),
            }
        }
        (grants, errors)
    }

    /// The rules of the role a binding references (a Role in the binding's
    /// namespace or a ClusterRole), or upstream's error text.
    fn rules_of(&self, binding: &Binding<'_>) -> Result<&[PolicyRule], String> {
        let role_ref = binding.role_ref;
        let found = match role_ref.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&role_ref.name),
            "Role" => self
                .roles
                .get(&(binding.namespace.to_string(), role_ref.name.clone())),
            other => return Err(format!("unsupported role reference kind: {other:?}")),
        };
        found.map(Vec::as_slice).ok_or_else(|| {
            format!(
                "{}.rbac.authorization.k8s.io {:?} not found",
                role_ref.kind.to_lowercase(),
                role_ref.name
            )
        })
    }
}

/// A RoleBinding or ClusterRoleBinding, seen the same way.
#[derive(Debug, Clone, Copy)]
struct Binding<'a> {
    /// Empty for a ClusterRoleBinding.
    namespace: &'a str,
    name: &'a str,
    role_ref: &'a RoleRef,
    subjects: &'a [Subject],
}

impl<'a> Binding<'a> {
    fn cluster(binding: &'a ClusterRoleBinding) -> Self {
        Self {
            namespace: "",
            name: binding.metadata.name.as_deref().unwrap_or_default(),
            role_ref: &binding.role_ref,
            subjects: binding.subjects.as_deref().unwrap_or_default(),
        }
    }

    fn namespaced(binding: &'a RoleBinding) -> Self {
        Self {
            namespace: binding.metadata.namespace.as_deref().unwrap_or_default(),
            name: binding.metadata.name.as_deref().unwrap_or_default(),
            role_ref: &binding.role_ref,
            subjects: binding.subjects.as_deref().unwrap_or_default(),
        }
    }

    /// The first subject naming `user`. A ServiceAccount subject without a
    /// namespace means the binding's own.
    fn subject_for(&self, user: &UserInfo) -> Option<&'a Subject> {
        self.subjects
            .iter()
            .find(|subject| match subject.kind.as_str() {
                "User" => user.username == subject.name,
                "Group" => user.in_group(&subject.name),
                "ServiceAccount" => {
                    let namespace = self.subject_namespace(subject);
                    !namespace.is_empty()
                        && user.username == service_account_username(namespace, &subject.name)
                }
                _ => false,
            })
    }

    fn subject_namespace(&self, subject: &'a Subject) -> &'a str {
        match subject.namespace.as_deref() {
            Some(namespace) if !namespace.is_empty() => namespace,
            _ => self.namespace,
        }
    }
}

/// A binding that names the user, with its role's rules.
struct Grant<'a> {
    binding: Binding<'a>,
    subject: &'a Subject,
    rules: &'a [PolicyRule],
}

impl Grant<'_> {
    /// Upstream's description: `ClusterRoleBinding "b" of ClusterRole "r"
    /// to Group "g"`, `RoleBinding "b/ns" of Role "r" to ServiceAccount
    /// "sa/ns"`.
    fn describe(&self) -> String {
        let Binding {
            namespace,
            name,
            role_ref,
            ..
        } = self.binding;
        let binding = if namespace.is_empty() {
            format!("ClusterRoleBinding {}", go_quote(name))
        } else {
            format!("RoleBinding {}", go_quote(&format!("{name}/{namespace}")))
        };
        let subject = match self.subject.kind.as_str() {
            "ServiceAccount" => format!(
                "{}/{}",
                self.subject.name,
                self.binding.subject_namespace(self.subject)
            ),
            _ => self.subject.name.clone(),
        };
        format!(
            "{binding} of {} {} to {} {}",
            role_ref.kind,
            go_quote(&role_ref.name),
            self.subject.kind,
            go_quote(&subject)
        )
    }
}

/// Whether one rule allows `verb` on `target`.
pub fn rule_allows(rule: &PolicyRule, verb: &str, target: &Target<'_>) -> bool {
    if !star_or(&rule.verbs, verb) {
        return false;
    }
    match target {
        Target::Resource(r) => {
            star_or(list(&rule.api_groups), r.api_group)
                && resource_matches(list(&rule.resources), r.resource, r.subresource)
                && resource_name_matches(list(&rule.resource_names), r.name)
        }
        Target::NonResource { path } => {
            non_resource_url_matches(list(&rule.non_resource_urls), path)
        }
    }
}

fn list(items: &Option<Vec<String>>) -> &[String] {
    items.as_deref().unwrap_or_default()
}

fn star_or(items: &[String], wanted: &str) -> bool {
    items.iter().any(|item| item == "*" || item == wanted)
}

/// `*`, `plural`, `plural/sub` or `*/sub`.
fn resource_matches(rule_resources: &[String], resource: &str, subresource: &str) -> bool {
    rule_resources.iter().any(|rule| {
        if rule == "*" {
            return true;
        }
        if subresource.is_empty() {
            return rule == resource;
        }
        let (plural, sub) = rule.split_once('/').unwrap_or((rule, ""));
        sub == subresource && (plural == resource || plural == "*")
    })
}

/// An empty list matches any name; otherwise the name must be listed (so
/// requests without a name never match).
fn resource_name_matches(names: &[String], name: &str) -> bool {
    names.is_empty() || names.iter().any(|n| n == name)
}

/// `*`, the exact path, or a prefix ending in `*`.
fn non_resource_url_matches(urls: &[String], path: &str) -> bool {
    urls.iter().any(|url| match url.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => url == path,
    })
}

/// Upstream's aggregate error text: the one error, or `[e1, e2]`
/// (duplicates dropped).
fn aggregate(errors: &[String]) -> Option<String> {
    let mut unique: Vec<&str> = Vec::new();
    for error in errors {
        if !unique.contains(&error.as_str()) {
            unique.push(error);
        }
    }
    match unique.as_slice() {
        [] => None,
        [one] => Some(one.to_string()),
        many => Some(format!("[{}]", many.join(", "))),
    }
}

/// A 403: the message and details upstream's API server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    /// `pods is forbidden: User "u" cannot list resource "pods" in API
    /// group "" in the namespace "default"` and its other forms.
    pub message: String,
    /// `details.group`: the API group.
    pub group: String,
    /// `details.kind`: the plural resource (upstream puts it there).
    pub kind: String,
    /// `details.name`: the object name.
    pub name: String,
}

impl Forbidden {
    /// The 403 for a denied request; `reason` is the decision's reason
    /// (appended after `: ` when not empty).
    pub fn new(attributes: &Attributes<'_>, reason: &str) -> Self {
        let mut denial = denial(attributes);
        if !reason.is_empty() {
            denial = format!("{denial}: {reason}");
        }
        let (group, resource, name) = match attributes.target {
            Target::Resource(r) => (r.api_group, r.resource, r.name),
            Target::NonResource { .. } => ("", "", ""),
        };
        let qualified = match group {
            "" => resource.to_string(),
            group => format!("{resource}.{group}"),
        };
        let message = match (qualified.as_str(), name) {
            ("", _) => format!("forbidden: {denial}"),
            (qualified, "") => format!("{qualified} is forbidden: {denial}"),
            (qualified, name) => format!("{qualified} {} is forbidden: {denial}", go_quote(name)),
        };
        Self {
            message,
            group: group.into(),
            kind: resource.into(),
            name: name.into(),
        }
    }

    /// The body of the 403 reply (`kind: Status`, reason `Forbidden`).
    pub fn status(&self) -> serde_json::Value {
        let mut details = serde_json::Map::new();
        for (key, value) in [
            ("name", &self.name),
            ("group", &self.group),
            ("kind", &self.kind),
        ] {
            if !value.is_empty() {
                details.insert(key.into(), value.as_str().into());
            }
        }
        serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": "Forbidden",
            "details": details,
            "code": 403,
        })
    }
}

/// `User "u" cannot <verb> resource "<plural>[/<sub>]" in API group "<g>"
/// in the namespace "<ns>"` / `at the cluster scope`, or `User "u" cannot
/// <verb> path "<path>"`.
fn denial(attributes: &Attributes<'_>) -> String {
    let user = go_quote(&attributes.user.username);
    let verb = attributes.verb;
    let r = match attributes.target {
        Target::NonResource { path } => {
            return format!("User {user} cannot {verb} path {}", go_quote(path));
        }
        Target::Resource(r) => r,
    };
    let resource = match r.subresource {
        "" => r.resource.to_string(),
        sub => format!("{}/{sub}", r.resource),
    };
    let scope = match r.namespace {
        "" => "at the cluster scope".to_string(),
        namespace => format!("in the namespace {}", go_quote(namespace)),
    };
    format!(
        "User {user} cannot {verb} resource {} in API group {} {scope}",
        go_quote(&resource),
        go_quote(r.api_group)
    )
}

/// A string quoted as Go's `%q` does for the text found in requests:
/// `"` and `\` escaped, control characters as `\n`, `\t`, `\x00`, `\u0085`.
fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
pub(crate) mod tests;
