//! Human durations for certificate lifetimes: `90d`, `12h`, `10m`, `30s`, `1h30m`.

use std::time::Duration;

/// Parses a duration written as one or more `<integer><unit>` groups, units `d`, `h`, `m`, `s`
/// (each at most once, largest first), e.g. `365d`, `10m`, `1h30m`. Zero is refused: every
/// lifetime and delay of the certificate manager must be positive.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration: write e.g. 90d, 12h, 10m or 30s".into());
    }
    let mut total: u64 = 0;
    let mut last_rank = usize::MAX;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("invalid duration {text:?}: expected a number at {rest:?} (write e.g. 90d, 12h, 10m or 30s)"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit =
            rest.chars().next().ok_or_else(|| format!("invalid duration {text:?}: the number {n} has no unit (d, h, m or s)"))?;
        let (rank, secs) = match unit {
            'd' => (0, 86_400),
            'h' => (1, 3_600),
            'm' => (2, 60),
            's' => (3, 1),
            other => {
                return Err(format!("invalid duration {text:?}: unknown unit {other:?} (use d, h, m or s)"));
            }
        };
        if last_rank != usize::MAX && rank <= last_rank {
            return Err(format!("invalid duration {text:?}: units must appear once each, largest first (e.g. 1h30m)"));
        }
        last_rank = rank;
        rest = &rest[unit.len_utf8()..];
        total = n
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
    }
    if total == 0 {
        return Err(format!("invalid duration {text:?}: must be greater than zero"));
    }
    Ok(Duration::from_secs(total))
}

/// The shortest exact rendering of whole seconds in the same notation (`90d`, `1h30m`, `45s`).
pub(crate) fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_units() {
        assert_eq!(parse_duration("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(12 * 3_600));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration(" 30s ").unwrap(), Duration::from_secs(30));
    }

    #[test]
    fn parses_compound() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("1d2h3m4s").unwrap(), Duration::from_secs(86_400 + 7_200 + 180 + 4));
    }

    #[test]
    fn refuses_bad_input() {
        for bad in ["", "10", "d", "10x", "1m1h", "1h1h", "0s", "-5m", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["90d", "1h30m", "45s", "1d2h3m4s", "10m"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
