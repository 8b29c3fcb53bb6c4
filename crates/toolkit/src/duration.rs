//! Durations as Go's `time.ParseDuration` writes them (`300ms`, `1m30s`,
//! `1.5h`, `15m0s`): the format of upstream's config values and flags.
//! A bare number is taken as seconds, as kubectl's `--timeout` does.

use std::time::Duration;

/// Nanoseconds per unit.
const UNITS: &[(&str, f64)] = &[
    ("ns", 1.0),
    ("us", 1e3),
    ("µs", 1e3),
    ("μs", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("m", 60e9),
    ("h", 3600e9),
];

/// Parse a duration: one or more `<number><unit>` terms (units `ns`,
/// `us`, `ms`, `s`, `m`, `h`; fractions allowed), `0`, or a bare number of
/// seconds. Negative and malformed values are errors that quote the
/// input.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let bad = |why: &str| format!("{text:?} is not a duration like 30s, 500ms or 1m30s: {why}");
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if s.starts_with('-') {
        return Err(bad("negative"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| bad(&e.to_string()));
    }
    let mut rest = s;
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        if number.is_empty() || number == "." {
            return Err(bad("expected a number"));
        }
        let value: f64 = number.parse().map_err(|_| bad("bad number"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, after) = tail.split_at(unit_len);
        let Some((_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(if unit.is_empty() {
                bad("missing unit")
            } else {
                bad(&format!("unknown unit {unit:?} (ns, us, ms, s, m, h)"))
            });
        };
        nanos += value * scale;
        rest = after;
    }
    Duration::try_from_secs_f64(nanos / 1e9).map_err(|e| bad(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ok = |s: &str| parse_duration(s).unwrap();
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("15m0s"), Duration::from_secs(900));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("2us"), Duration::from_micros(2));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("90"), Duration::from_secs(90));
        assert_eq!(ok(" 2m "), Duration::from_secs(120));
    }

    #[test]
    fn errors_quote_the_input() {
        for bad in ["", "-1s", "5x", "m", "1s2", ".s", "1..2s"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }
}
