//! The kubectl-like verbs of `cilium-lab` (apply, get, delete, scale,
//! label, annotate, cordon, uncordon, drain, exec, logs, wait). They work
//! on the lab's cluster store directly: this module is the lab's "API
//! server" front end, so it resolves kinds, namespaces and selectors the
//! way kubectl users expect.

pub mod apply;
pub mod edit;
pub mod exec;
pub mod get;
pub mod table;

use anyhow::{Result, bail};
use api::Kind;
use serde_json::Value;
use toolkit::selector::LabelQuery;

/// Resolve a kind as typed on the command line (`pods`, `po`, `svc`,
/// `ciliumnodes`, `deployments.apps`, `deployment/webpod`'s first half).
pub fn resolve_kind(name: &str) -> Result<&'static Kind> {
    match api::lookup(name) {
        Some(k) => Ok(k),
        None => bail!("the server doesn't have a resource type \"{name}\""),
    }
}

/// Split `KIND/NAME` or `KIND NAME...` arguments into a kind and names.
pub fn kind_and_names(args: &[String]) -> Result<(&'static Kind, Vec<String>)> {
    let Some(first) = args.first() else {
        bail!("you must specify the type of resource");
    };
    if let Some((kind, name)) = first.split_once('/') {
        let k = resolve_kind(kind)?;
        let mut names = vec![name.to_string()];
        for a in &args[1..] {
            match a.split_once('/') {
                Some((k2, n)) if resolve_kind(k2)?.ty == k.ty => names.push(n.to_string()),
                Some(_) => bail!("mixed kinds in one command are not supported: {a}"),
                None => bail!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form"
                ),
            }
        }
        return Ok((k, names));
    }
    Ok((resolve_kind(first)?, args[1..].to_vec()))
}

/// The namespace a command acts in: `-n`, else `default` (ignored for
/// cluster-scoped kinds).
pub fn namespace_for<'a>(kind: &Kind, ns: Option<&'a str>) -> Option<&'a str> {
    if kind.ty.namespaced {
        Some(ns.unwrap_or("default"))
    } else {
        None
    }
}

/// A parsed label selector (`a=b,c!=d,e,!f`, `a in (x,y)`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector(LabelQuery);

impl Selector {
    /// Parse kubectl's `-l` syntax.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(Self(LabelQuery::parse(s)?))
    }

    /// Whether an object's `metadata.labels` match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        self.0
            .matches_with(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }
}

/// `kind/name` as kubectl prints it (`deployment.apps/webpod`).
pub fn qualified(kind: &Kind, name: &str) -> String {
    format!("{}/{name}", kind.ty.qualified_singular())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_match_like_kubectl() {
        let pod = json!({"metadata": {"labels": {"app": "webpod", "tier": "web"}}});
        let m = |s: &str| Selector::parse(s).unwrap().matches(&pod);
        assert!(m("app=webpod"));
        assert!(m("app==webpod,tier"));
        assert!(!m("app=curl"));
        assert!(m("app!=curl"));
        assert!(m("app in (curl, webpod)"));
        assert!(!m("app notin (curl,webpod)"));
        assert!(m("!missing"));
        assert!(!m("missing"));
        assert!(m(""));
        assert!(Selector::parse("app in curl").is_err());
    }

    #[test]
    fn kinds_resolve_from_names_and_slashes() {
        let (k, names) = kind_and_names(&["deploy/webpod".to_string()]).unwrap();
        assert_eq!(k.ty.kind, "Deployment");
        assert_eq!(names, ["webpod"]);
        let (k, names) = kind_and_names(&["po".into(), "a".into(), "b".into()]).unwrap();
        assert_eq!(k.ty.kind, "Pod");
        assert_eq!(names, ["a", "b"]);
        let e = resolve_kind("widgets").unwrap_err();
        assert!(
            e.to_string()
                .contains("doesn't have a resource type \"widgets\"")
        );
        assert_eq!(
            qualified(resolve_kind("deployment").unwrap(), "w"),
            "deployment.apps/w"
        );
        assert_eq!(qualified(resolve_kind("pods").unwrap(), "p"), "pod/p");
    }
}
