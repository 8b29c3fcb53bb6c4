//! Building blocks for semantic validation: field paths, API-server-style
//! error messages (`Required value`, `Invalid value: ...`, `Unsupported
//! value: ...`) and the checks shared by core objects and CRDs (names,
//! labels, selectors, ports, IP addresses, CIDRs). Type-specific rules live
//! beside their types; nothing here knows about a particular kind.

use std::fmt::{self, Debug};
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::FieldError;

/// Outcome of one validation step.
pub type Check = Result<(), FieldError>;

/// A field path under construction (`spec.template.spec.containers[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// A top-level field (`metadata`, `spec`).
    pub fn root(name: &str) -> Self {
        Self(name.to_string())
    }

    /// A child field (`.name`).
    pub fn field(&self, name: &str) -> Self {
        Self(format!("{}.{name}", self.0))
    }

    /// An element of a list (`[3]`).
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }

    /// An entry of a map (`[key]`).
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }

    /// `Required value`, optionally with a detail.
    pub fn required(&self, detail: &str) -> FieldError {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        FieldError::new(&self.0, message)
    }

    /// `Invalid value: <value>: <detail>`; strings are shown quoted.
    pub fn invalid(&self, value: impl Debug, detail: impl fmt::Display) -> FieldError {
        FieldError::new(&self.0, format!("Invalid value: {value:?}: {detail}"))
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn unsupported(&self, value: &str, supported: &[&str]) -> FieldError {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        FieldError::new(
            &self.0,
            format!("Unsupported value: {value:?}: supported values: {list}"),
        )
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(&self, value: impl Debug) -> FieldError {
        FieldError::new(&self.0, format!("Duplicate value: {value:?}"))
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(&self, detail: &str) -> FieldError {
        FieldError::new(&self.0, format!("Forbidden: {detail}"))
    }

    /// `Too many: <n>: must have at most <max> items`.
    pub fn too_many(&self, actual: usize, max: usize) -> FieldError {
        FieldError::new(
            &self.0,
            format!("Too many: {actual}: must have at most {max} items"),
        )
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const RFC1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')";
const RFC1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')";
const RFC1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')";

fn is_rfc1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_rfc1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_rfc1123_label)
}

/// The naming rule a kind applies to `metadata.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services: must start with a letter).
    Rfc1035,
    /// Any name usable as a URL path segment (RBAC objects:
    /// `system:discovery`): not `.` or `..`, no `/` or `%`.
    PathSegment,
}

/// Check `value` against an RFC 1123 label (at most 63 characters).
pub fn label_name(path: &Path, value: &str) -> Check {
    if value.len() > 63 {
        return Err(path.invalid(value, "must be no more than 63 characters"));
    }
    if !is_rfc1123_label(value) {
        return Err(path.invalid(value, RFC1123_LABEL_MSG));
    }
    Ok(())
}

/// Check `value` against an RFC 1123 subdomain (at most 253 characters).
pub fn subdomain_name(path: &Path, value: &str) -> Check {
    if value.len() > 253 {
        return Err(path.invalid(value, "must be no more than 253 characters"));
    }
    if !is_rfc1123_subdomain(value) {
        return Err(path.invalid(value, RFC1123_SUBDOMAIN_MSG));
    }
    Ok(())
}

fn rfc1035_name(path: &Path, value: &str) -> Check {
    if value.len() > 63 {
        return Err(path.invalid(value, "must be no more than 63 characters"));
    }
    if !is_rfc1123_label(value) || !value.as_bytes()[0].is_ascii_lowercase() {
        return Err(path.invalid(value, RFC1035_LABEL_MSG));
    }
    Ok(())
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A label or annotation key: optional DNS-subdomain prefix and `/`, then a
/// name of at most 63 alphanumerics, `-`, `_`, `.`.
pub fn qualified_name(path: &Path, key: &str) -> Check {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_rfc1123_subdomain(prefix)
    {
        return Err(path.invalid(key, format!("prefix part {RFC1123_SUBDOMAIN_MSG}")));
    }
    if !is_qualified_name_part(name) {
        return Err(path.invalid(
            key,
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc'), at most 63 characters",
        ));
    }
    Ok(())
}

/// A label value: empty, or a qualified-name part.
pub fn label_value(path: &Path, value: &str) -> Check {
    if value.is_empty() || is_qualified_name_part(value) {
        Ok(())
    } else {
        Err(path.invalid(
            value,
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345'), at most 63 characters",
        ))
    }
}

/// A name that is a valid URL path segment.
pub fn path_segment_name(path: &Path, value: &str) -> Check {
    if value == "." || value == ".." {
        return Err(path.invalid(value, "may not be '.' or '..'"));
    }
    if let Some(c) = value.chars().find(|c| matches!(c, '/' | '%')) {
        return Err(path.invalid(value, format!("may not contain '{c}'")));
    }
    Ok(())
}

/// Label keys and values of a map (`metadata.labels`, `matchLabels`).
pub fn labels<'a>(
    path: &Path,
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Check {
    for (key, value) in labels {
        qualified_name(path, key)?;
        label_value(path, value)?;
    }
    Ok(())
}

/// Object metadata: the name (required unless `generateName` is set),
/// the namespace (an RFC 1123 label) when given, labels and annotation keys.
pub fn object_meta(meta: &ObjectMeta, rule: NameRule) -> Check {
    let path = Path::root("metadata");
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => match rule {
            NameRule::Subdomain => subdomain_name(&path.field("name"), name)?,
            NameRule::Label => label_name(&path.field("name"), name)?,
            NameRule::Rfc1035 => rfc1035_name(&path.field("name"), name)?,
            NameRule::PathSegment => path_segment_name(&path.field("name"), name)?,
        },
        _ if meta.generate_name.as_deref().is_some_and(|g| !g.is_empty()) => {}
        _ => {
            return Err(path
                .field("name")
                .required("name or generateName is required"));
        }
    }
    if let Some(ns) = meta.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        label_name(&path.field("namespace"), ns)?;
    }
    if let Some(l) = &meta.labels {
        labels(&path.field("labels"), l)?;
    }
    if let Some(a) = &meta.annotations {
        for key in a.keys() {
            qualified_name(&path.field("annotations"), key)?;
        }
    }
    Ok(())
}

/// A label selector: valid `matchLabels`, operators `In`/`NotIn` with
/// values, `Exists`/`DoesNotExist` without.
pub fn label_selector(path: &Path, selector: &LabelSelector) -> Check {
    if let Some(ml) = &selector.match_labels {
        labels(&path.field("matchLabels"), ml)?;
    }
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let p = path.field("matchExpressions").index(i);
        qualified_name(&p.field("key"), &expr.key)?;
        let has_values = expr.values.as_ref().is_some_and(|v| !v.is_empty());
        match expr.operator.as_str() {
            "In" | "NotIn" if !has_values => {
                return Err(p
                    .field("values")
                    .required("must be specified when `operator` is 'In' or 'NotIn'"));
            }
            "Exists" | "DoesNotExist" if has_values => {
                return Err(p.field("values").forbidden(
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => {
                return Err(p
                    .field("operator")
                    .unsupported(other, &["DoesNotExist", "Exists", "In", "NotIn"]));
            }
        }
    }
    Ok(())
}

/// `value` must be in `supported`.
pub fn one_of(path: &Path, value: &str, supported: &[&str]) -> Check {
    if supported.contains(&value) {
        Ok(())
    } else {
        Err(path.unsupported(value, supported))
    }
}

/// An integer within `min..=max`, with the API server's wording.
pub fn in_range(path: &Path, value: i64, min: i64, max: i64) -> Check {
    if value < min || value > max {
        let detail = if max == i64::MAX {
            format!("must be greater than or equal to {min}")
        } else {
            format!("must be between {min} and {max}, inclusive")
        };
        return Err(path.invalid(value, detail));
    }
    Ok(())
}

/// A TCP/UDP port number, 1-65535.
pub fn port(path: &Path, value: i64) -> Check {
    in_range(path, value, 1, 65535)
}

/// An IANA service name (named port): 1-15 lower-case alphanumerics and
/// `-`, at least one letter, no leading, trailing or double `-`.
pub fn port_name(path: &Path, value: &str) -> Check {
    let ok = !value.is_empty()
        && value.len() <= 15
        && value
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && value.bytes().any(|c| c.is_ascii_lowercase())
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--");
    if ok {
        Ok(())
    } else {
        Err(path.invalid(
            value,
            "must be no more than 15 characters, contain only lowercase alphanumeric characters or '-', contain at least one letter, and not begin, end or contain consecutive '-'",
        ))
    }
}

/// An IPv4 or IPv6 address.
pub fn ip(path: &Path, value: &str) -> Result<IpAddr, FieldError> {
    value.parse().map_err(|_| {
        path.invalid(
            value,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        )
    })
}

/// An IPv4 address.
pub fn ipv4(path: &Path, value: &str) -> Check {
    match ip(path, value)? {
        IpAddr::V4(_) => Ok(()),
        IpAddr::V6(_) => Err(path.invalid(value, "must be a valid IPv4 address")),
    }
}

/// A CIDR (`10.0.0.0/8`, `fd00::/64`).
pub fn cidr(path: &Path, value: &str) -> Result<IpNet, FieldError> {
    value.parse().map_err(|_| {
        path.invalid(
            value,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        )
    })
}

/// Names of the items of a list must be unique and non-empty.
pub fn unique_names<'a>(path: &Path, names: impl IntoIterator<Item = &'a str>) -> Check {
    let mut seen = std::collections::BTreeSet::new();
    for (i, name) in names.into_iter().enumerate() {
        let p = path.index(i).field("name");
        if name.is_empty() {
            return Err(p.required(""));
        }
        if !seen.insert(name) {
            return Err(p.duplicate(name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_the_api_server() {
        let p = Path::root("spec")
            .field("containers")
            .index(0)
            .field("ports");
        assert_eq!(p.to_string(), "spec.containers[0].ports");
        let e = p.invalid(-1, "must be greater than or equal to 0");
        assert_eq!(
            e.to_string(),
            "spec.containers[0].ports: Invalid value: -1: must be greater than or equal to 0"
        );
        let e = Path::root("x").unsupported("HTTP", &["SCTP", "TCP"]);
        assert_eq!(
            e.to_string(),
            r#"x: Unsupported value: "HTTP": supported values: "SCTP", "TCP""#
        );
    }

    #[test]
    fn names() {
        let p = Path::root("n");
        assert!(subdomain_name(&p, "web.pod-1").is_ok());
        assert!(subdomain_name(&p, "Web_Pod").is_err());
        assert!(label_name(&p, "a.b").is_err());
        assert!(label_name(&p, &"a".repeat(64)).is_err());
        assert!(rfc1035_name(&p, "1abc").is_err());
        assert!(rfc1035_name(&p, "abc1").is_ok());
        assert!(qualified_name(&p, "kubernetes.io/hostname").is_ok());
        assert!(qualified_name(&p, "app").is_ok());
        assert!(qualified_name(&p, "-app").is_err());
        assert!(qualified_name(&p, "Bad_Prefix/app").is_err());
        assert!(label_value(&p, "").is_ok());
        assert!(label_value(&p, "a b").is_err());
        assert!(port_name(&p, "http").is_ok());
        assert!(port_name(&p, "80").is_err());
        assert!(port_name(&p, "a--b").is_err());
    }

    #[test]
    fn selectors_match_labels() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
        use toolkit::selector::label_selector_matches as selector_matches;
        let labels: std::collections::BTreeMap<String, String> =
            [("app".to_string(), "web".to_string())].into();
        let mut sel = LabelSelector::default();
        assert!(selector_matches(&sel, &labels));
        sel.match_labels = Some([("app".to_string(), "web".to_string())].into());
        assert!(selector_matches(&sel, &labels));
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "Exists".into(),
            values: None,
        }]);
        assert!(!selector_matches(&sel, &labels));
        sel.match_expressions.as_mut().unwrap()[0].operator = "DoesNotExist".into();
        assert!(selector_matches(&sel, &labels));
        sel.match_expressions.as_mut().unwrap()[0].operator = "In".into();
        assert!(label_selector(&Path::root("s"), &sel).is_err());
    }

    #[test]
    fn ranges_and_addresses() {
        let p = Path::root("p");
        assert_eq!(
            in_range(&p, -1, 0, i64::MAX).unwrap_err().message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            port(&p, 70000).unwrap_err().message,
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert!(ip(&p, "fd00::1").is_ok());
        assert!(ipv4(&p, "fd00::1").is_err());
        assert!(cidr(&p, "10.0.0.0/33").is_err());
        assert!(unique_names(&p, ["a", "b", "a"]).is_err());
        assert!(unique_names(&p, ["a", ""]).is_err());
    }
}
