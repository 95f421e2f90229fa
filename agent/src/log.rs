//! Structured logs: one logfmt line per event on stderr, e.g.
//! `ts=2026-05-01T10:00:00.123Z level=info event=published job=DB keys=4 msg="4 outputs published"`.
//!
//! Plain logfmt written by hand instead of `tracing`: the agent has a dozen log
//! sites, and `tracing` + a subscriber would cost more binary size than the
//! rest of the agent's own code. Callers pass only keys, counts, paths and
//! diagnostics from `contract::output` (which never hold values): never a
//! value of the output file.

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

pub fn info(event: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Info, event, fields)
}

pub fn warn(event: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Warn, event, fields)
}

pub fn error(event: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Error, event, fields)
}

pub fn log(level: Level, event: &str, fields: &[(&str, &dyn Display)]) {
    let line = format_line(&timestamp(SystemTime::now()), level, event, fields);
    // One write per line: lines of concurrent writers never mix.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

pub fn format_line(ts: &str, level: Level, event: &str, fields: &[(&str, &dyn Display)]) -> String {
    let mut line = format!("ts={ts} level={} event={event}", level.as_str());
    for (k, v) in fields {
        line.push(' ');
        line.push_str(k);
        line.push('=');
        push_value(&mut line, &v.to_string());
    }
    line.push('\n');
    line
}

/// A logfmt value: bare when it is a plain token, else quoted with escapes.
fn push_value(out: &mut String, v: &str) {
    let bare = !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if bare {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// RFC 3339 UTC with milliseconds.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!("{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", s / 3600, s / 60 % 60, s % 60, d.subsec_millis())
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn logfmt_quoting() {
        let line = format_line(
            "T",
            Level::Warn,
            "ev",
            &[("a", &"plain"), ("b", &"two words"), ("c", &""), ("d", &"q\"\\\n\u{1}"), ("n", &3)],
        );
        assert_eq!(line, "ts=T level=warn event=ev a=plain b=\"two words\" c=\"\" d=\"q\\\"\\\\\\n\\u0001\" n=3\n");
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_999);
        assert_eq!(timestamp(t), "2024-02-29T23:59:59.999Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(t), "2000-02-29T00:00:00.000Z");
    }
}
