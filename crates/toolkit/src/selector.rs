//! Kubernetes label selectors: the map form (`Service.spec.selector`,
//! `nodeSelector`), `metav1.LabelSelector` with `matchLabels` and
//! `matchExpressions`, and the query-string form of `labelSelector=` and
//! kubectl's `-l` ([`LabelQuery`]).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether a map selector matches `labels`: every pair must be present.
/// An empty map matches everything.
pub fn map_selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether a `LabelSelector` matches `labels`. An empty selector matches
/// everything; an unknown operator matches nothing.
pub fn label_selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(match_labels) = &selector.match_labels
        && !map_selector_matches(match_labels, labels)
    {
        return false;
    }
    selector.match_expressions.iter().flatten().all(|req| {
        let values = req.values.as_deref().unwrap_or(&[]);
        let value = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    })
}

/// A label selector in its string form (`a=b,c!=d,e,!f`, `a in (x,y)`,
/// `a notin (x)`), as `labelSelector=` and kubectl's `-l` carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelQuery(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A label selector string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError(pub String);

impl std::fmt::Display for SelectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SelectorError {}

impl LabelQuery {
    /// Parse the string form. An empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        let mut rest = s.trim();
        while !rest.is_empty() {
            // A term ends at a comma outside parentheses.
            let mut depth = 0;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    c == ',' && depth == 0
                })
                .map(|(i, _)| i)
                .unwrap_or(rest.len());
            let term = rest[..end].trim();
            rest = rest.get(end + 1..).unwrap_or("").trim();
            reqs.push(Self::term(term)?);
        }
        Ok(Self(reqs))
    }

    fn term(t: &str) -> Result<Requirement, SelectorError> {
        let set = |v: &str| -> Result<Vec<String>, SelectorError> {
            let v = v.trim();
            let Some(inner) = v.strip_prefix('(').and_then(|v| v.strip_suffix(')')) else {
                return Err(SelectorError(format!(
                    "invalid label selector term {t:?}: expected a (value,...) list"
                )));
            };
            Ok(inner.split(',').map(|x| x.trim().to_string()).collect())
        };
        if let Some((k, v)) = t.split_once(" notin ") {
            return Ok(Requirement::NotIn(k.trim().into(), set(v)?));
        }
        if let Some((k, v)) = t.split_once(" in ") {
            return Ok(Requirement::In(k.trim().into(), set(v)?));
        }
        if let Some((k, v)) = t.split_once("!=") {
            return Ok(Requirement::NotEq(k.trim().into(), v.trim().into()));
        }
        if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            return Ok(Requirement::Eq(k.trim().into(), v.trim().into()));
        }
        if let Some(k) = t.strip_prefix('!') {
            return Ok(Requirement::NotExists(k.trim().into()));
        }
        if t.is_empty() || t.contains(char::is_whitespace) {
            return Err(SelectorError(format!("invalid label selector term {t:?}")));
        }
        Ok(Requirement::Exists(t.into()))
    }

    /// Whether labels looked up by `get` match (`!=` and `notin` also
    /// match a missing key).
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v),
            Requirement::NotEq(k, v) => get(k) != Some(v),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }

    /// Whether a label map matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn map_selectors() {
        let l = labels(&[("app", "webpod"), ("tier", "web")]);
        assert!(map_selector_matches(&BTreeMap::new(), &l));
        assert!(map_selector_matches(&labels(&[("app", "webpod")]), &l));
        assert!(!map_selector_matches(&labels(&[("app", "curl")]), &l));
    }

    #[test]
    fn query_strings() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let yes = [
            "app=web",
            "app==web,tier",
            "app in (web,db)",
            "tier notin (back)",
            "!gone",
            "",
        ];
        for q in yes {
            assert!(LabelQuery::parse(q).unwrap().matches(&l), "{q}");
        }
        let no = ["app=db", "app!=web", "gone", "!app", "app notin (web)"];
        for q in no {
            assert!(!LabelQuery::parse(q).unwrap().matches(&l), "{q}");
        }
        assert!(LabelQuery::parse("a b").is_err());
        assert!(LabelQuery::parse("a in x").is_err());
    }

    #[test]
    fn label_selectors() {
        let l = labels(&[("app", "webpod")]);
        let sel = |exprs: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: None,
            match_expressions: Some(exprs),
        };
        assert!(label_selector_matches(&LabelSelector::default(), &l));
        assert!(label_selector_matches(
            &sel(vec![expr("app", "In", &["webpod", "x"])]),
            &l
        ));
        assert!(!label_selector_matches(
            &sel(vec![expr("app", "NotIn", &["webpod"])]),
            &l
        ));
        assert!(label_selector_matches(
            &sel(vec![expr("zone", "NotIn", &["a"])]),
            &l
        ));
        assert!(label_selector_matches(
            &sel(vec![expr("app", "Exists", &[])]),
            &l
        ));
        assert!(!label_selector_matches(
            &sel(vec![expr("app", "DoesNotExist", &[])]),
            &l
        ));
        assert!(!label_selector_matches(
            &sel(vec![expr("app", "Gt", &["1"])]),
            &l
        ));
        let both = LabelSelector {
            match_labels: Some(labels(&[("app", "other")])),
            match_expressions: Some(vec![expr("app", "Exists", &[])]),
        };
        assert!(!label_selector_matches(&both, &l));
    }
}
