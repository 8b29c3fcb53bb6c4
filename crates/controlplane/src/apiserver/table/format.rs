//! Text formatting shared by the column sets: kubectl's human durations,
//! label maps, label selectors and `Created At` timestamps as the API
//! server prints them.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// kubectl's human duration (apimachinery `HumanDuration`): `45s` under two
/// minutes, `3m10s` under ten, `25m` under three hours, `5h3m` under
/// eight, `20h` under two days, `2d3h` under eight, `45d` under two years,
/// `3y20d` under eight, then `9y`. A duration up to a second negative
/// (clock skew) is `0s`; further in the future is `<invalid>`.
pub fn human_duration(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    let minutes = seconds / 60;
    let hours = seconds / 3600;
    let days = hours / 24;
    if seconds < 2 * 60 {
        format!("{seconds}s")
    } else if minutes < 10 {
        with_rest(minutes, "m", seconds % 60, "s")
    } else if minutes < 3 * 60 {
        format!("{minutes}m")
    } else if hours < 8 {
        with_rest(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if days < 8 {
        with_rest(days, "d", hours % 24, "h")
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if days < 365 * 8 {
        with_rest(days / 365, "y", days % 365, "d")
    } else {
        format!("{}y", days / 365)
    }
}

/// `{n}{unit}{rest}{rest_unit}`, without the rest when it is zero.
fn with_rest(n: i64, unit: &str, rest: i64, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{n}{unit}")
    } else {
        format!("{n}{unit}{rest}{rest_unit}")
    }
}

/// A timestamp as Go's RFC 3339 in UTC, whole seconds
/// (`2024-10-26T13:12:33Z`); the zero time when absent.
pub(super) fn rfc3339(timestamp: Option<Timestamp>) -> String {
    timestamp.map_or_else(
        || "0001-01-01T00:00:00Z".into(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// A label map as `k1=v1,k2=v2` (sorted by key); `<none>` when empty or
/// absent.
pub(super) fn label_map(map: Option<&Value>) -> String {
    let mut pairs: Vec<(&String, &str)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A `LabelSelector` in selector syntax (`app=web,tier in (a,b),!legacy`),
/// requirements sorted by key and values sorted: "" when it is absent or
/// selects everything; `None` when an expression is invalid (unknown
/// operator, values where none belong or none where some must be).
pub(super) fn selector(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Some(String::new());
    };
    let mut requirements: Vec<(String, String)> = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))))
        .collect();
    for expression in super::array_at(selector, "/matchExpressions") {
        let key = super::str_at(expression, "/key");
        requirements.push((key.to_string(), requirement(key, expression)?));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    let text: Vec<String> = requirements.into_iter().map(|(_, r)| r).collect();
    Some(text.join(","))
}

/// One `matchExpressions` entry in selector syntax.
fn requirement(key: &str, expression: &Value) -> Option<String> {
    let mut values: Vec<&str> = super::array_at(expression, "/values")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    values.sort_unstable();
    let operator = super::str_at(expression, "/operator");
    match (operator, values.is_empty()) {
        ("In", false) => Some(format!("{key} in ({})", values.join(","))),
        ("NotIn", false) => Some(format!("{key} notin ({})", values.join(","))),
        ("Exists", true) => Some(key.to_string()),
        ("DoesNotExist", true) => Some(format!("!{key}")),
        _ => None,
    }
}

/// A `LabelSelector` as apimachinery's `FormatLabelSelector` prints it:
/// [`selector`], `<none>` when that is empty, `<error>` when invalid.
pub(super) fn selector_or_none(value: Option<&Value>) -> String {
    match selector(value) {
        Some(text) if text.is_empty() => "<none>".into(),
        Some(text) => text,
        None => "<error>".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn durations_follow_kubectl() {
        let cases = [
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (190, "3m10s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 3 * 60 + 59, "5h3m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 3599, "47h"),
            (48 * 3600, "2d"),
            (2 * 86400 + 3 * 3600 + 10, "2d3h"),
            (7 * 86400 + 23 * 3600, "7d23h"),
            (8 * 86400, "8d"),
            (45 * 86400 + 7 * 3600, "45d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (751 * 86400, "2y21d"),
            (8 * 365 * 86400, "8y"),
            (10 * 365 * 86400 + 5 * 86400, "10y"),
            (-1, "0s"),
            (-2, "<invalid>"),
        ];
        for (seconds, text) in cases {
            assert_eq!(
                human_duration(SignedDuration::from_secs(seconds)),
                text,
                "{seconds}s"
            );
        }
        // Sub-second parts are truncated like Go's int(d.Seconds()).
        let almost_now = SignedDuration::from_millis(-1900);
        assert_eq!(human_duration(almost_now), "0s");
        assert_eq!(human_duration(SignedDuration::from_millis(119_999)), "119s");
    }

    #[test]
    fn created_at_is_rfc3339_utc() {
        let t: Timestamp = "2024-10-26T15:12:33.5+02:00".parse().unwrap();
        assert_eq!(rfc3339(Some(t)), "2024-10-26T13:12:33Z");
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn label_maps_are_sorted() {
        let map = json!({"tier": "web", "app": "webpod"});
        assert_eq!(label_map(Some(&map)), "app=webpod,tier=web");
        assert_eq!(label_map(Some(&json!({}))), "<none>");
        assert_eq!(label_map(None), "<none>");
    }

    #[test]
    fn selectors_print_like_apimachinery() {
        let full = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"}
            ]
        });
        assert_eq!(
            selector(Some(&full)).as_deref(),
            Some("app=web,env notin (prod),!legacy,tier in (a,b),zone")
        );
        assert_eq!(selector(Some(&json!({}))).as_deref(), Some(""));
        assert_eq!(selector(None).as_deref(), Some(""));
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Gt"}]});
        assert_eq!(selector(Some(&bad)), None);
        let in_without_values = json!({"matchExpressions": [{"key": "a", "operator": "In"}]});
        assert_eq!(selector(Some(&in_without_values)), None);
        assert_eq!(selector_or_none(Some(&json!({}))), "<none>");
        assert_eq!(selector_or_none(Some(&bad)), "<error>");
        let labels = json!({"matchLabels": {"app": "curl"}});
        assert_eq!(selector_or_none(Some(&labels)), "app=curl");
    }
}
