//! Column output as kubectl prints it: upper-case headers, columns padded
//! to the widest cell plus three spaces, and kubectl's short ages.

use std::time::Duration;

use serde_json::Value;

/// Render rows under headers, kubectl style.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<&str> = cells.collect();
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i + 1 < cells.len() {
                let pad = widths[i] - c.chars().count() + 3;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// kubectl's human duration (`45s`, `3m12s`, `25m`, `5h3m`, `20h`, `3d`).
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, days) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        with_rest(m, "m", s % 60, "s")
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        with_rest(h, "h", m % 60, "m")
    } else if h < 48 {
        format!("{h}h")
    } else if days < 8 {
        with_rest(days, "d", h % 24, "h")
    } else if days < 365 * 2 {
        format!("{days}d")
    } else {
        format!("{}y", days / 365)
    }
}

/// `{n}{unit}`, then `{rest}{rest_unit}` unless `rest` is zero (`3m12s`,
/// `3m`).
fn with_rest(n: u64, unit: &str, rest: u64, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{n}{unit}")
    } else {
        format!("{n}{unit}{rest}{rest_unit}")
    }
}

/// Age of an object from `metadata.creationTimestamp`, or `<unknown>`.
pub fn age(obj: &Value) -> String {
    let Some(ts) = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<api::k8s_openapi::jiff::Timestamp>().ok())
    else {
        return "<unknown>".into();
    };
    let now = api::k8s_openapi::jiff::Timestamp::now();
    let secs = now.as_second().saturating_sub(ts.as_second()).max(0);
    human_duration(Duration::from_secs(secs.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_by_three() {
        let out = render(
            &["NAME", "AGE"],
            &[
                vec!["webpod".into(), "5s".into()],
                vec!["a".into(), "10m".into()],
            ],
        );
        assert_eq!(out, "NAME     AGE\nwebpod   5s\na        10m\n");
    }

    #[test]
    fn durations_read_like_kubectl() {
        let d = |s| human_duration(Duration::from_secs(s));
        assert_eq!(d(45), "45s");
        assert_eq!(d(119), "119s");
        assert_eq!(d(192), "3m12s");
        assert_eq!(d(180), "3m");
        assert_eq!(d(3 * 86400 + 7200), "3d2h");
        assert_eq!(d(1500), "25m");
        assert_eq!(d(5 * 3600 + 180), "5h3m");
        assert_eq!(d(20 * 3600), "20h");
        assert_eq!(d(3 * 86400), "3d");
        assert_eq!(d(800 * 86400), "2y");
    }
}
