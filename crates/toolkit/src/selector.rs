//! Kubernetes label selectors: the map form (`Service.spec.selector`,
//! `nodeSelector`) and `metav1.LabelSelector` with `matchLabels` and
//! `matchExpressions`.

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
