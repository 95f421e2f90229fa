//! A small column formatter in kubectl's style, and kubectl's human durations.

use std::time::Duration;

/// Gap between columns, as `kubectl get` prints them.
const GAP: usize = 3;

/// A table: upper-case headers, left-aligned columns, no trailing spaces.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: AsRef<str>>(headers: &[S]) -> Table {
        Table { headers: headers.iter().map(|h| h.as_ref().to_string()).collect(), rows: Vec::new() }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped. Newlines and tabs in
    /// cells are shown escaped, so that one row stays one line.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells.into_iter().map(|c| one_line(&c.into())).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| {
                std::iter::once(&self.headers[i])
                    .chain(self.rows.iter().map(|r| &r[i]))
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(self.rows.iter()) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count() + GAP;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A cell on one line, and safe for a terminal: newline, CR and tab shown as
/// `\n`, `\r`, `\t`, every other control character as `\uXXXX`
/// ([`crate::sanitize::terminal`]).
fn one_line(s: &str) -> String {
    let s = if s.contains(['\n', '\r', '\t']) {
        s.replace('\\', "\\\\").replace('\n', "\\n").replace('\r', "\\r").replace('\t', "\\t")
    } else {
        s.to_string()
    };
    crate::sanitize::terminal(&s).into_owned()
}

/// Cuts a cell to `max` characters, marking the cut with `...`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(3);
    let mut out: String = s.chars().take(keep).collect();
    out.push_str("...");
    out
}

/// kubectl's `HumanDuration`: `45s`, `3m20s`, `42m`, `5h3m`, `20h`, `3d4h`, `120d`, `2y10d`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let minutes = secs / 60;
    let hours = secs / 3600;
    let days = hours / 24;
    let years = days / 365;
    if secs < 2 * 60 {
        format!("{secs}s")
    } else if minutes < 10 {
        let s = secs % 60;
        if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") }
    } else if hours < 3 {
        format!("{minutes}m")
    } else if hours < 8 {
        let m = minutes % 60;
        if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 { format!("{days}d") } else { format!("{days}d{h}h") }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if years < 8 {
        let d = days % 365;
        if d == 0 { format!("{years}y") } else { format!("{years}y{d}d") }
    } else {
        format!("{years}y")
    }
}

/// Age of `then` at `now`, kubectl style; `<unknown>` without a time.
pub fn age(then: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    match then {
        Some(t) => {
            let secs = now.as_second().saturating_sub(t.as_second()).max(0);
            human_duration(Duration::from_secs(secs as u64))
        }
        None => "<unknown>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_columns_without_trailing_spaces() {
        let mut t = Table::new(&["NAME", "STATUS", "AGE"]);
        t.row(["seed", "Succeeded", "5m"]);
        t.row(["migrate-database", "", "12s"]);
        t.row(["x"]);
        let expected = "\
NAME               STATUS      AGE
seed               Succeeded   5m
migrate-database               12s
x
";
        assert_eq!(t.render(), expected);
    }

    #[test]
    fn counts_characters_not_bytes_and_keeps_rows_on_one_line() {
        let mut t = Table::new(&["A", "B"]);
        t.row(["é", "1"]);
        t.row(["two\nlines", "2"]);
        assert_eq!(t.render(), "A            B\né            1\ntwo\\nlines   2\n");
    }

    #[test]
    fn empty_table_is_just_headers() {
        let t = Table::new(&["NAME", "AGE"]);
        assert_eq!(t.render(), "NAME   AGE\n");
    }

    #[test]
    fn truncates_long_cells() {
        assert_eq!(truncate("abcdef", 6), "abcdef");
        assert_eq!(truncate("abcdefgh", 6), "abc...");
    }

    #[test]
    fn human_durations_match_kubectl() {
        let d = |s| human_duration(Duration::from_secs(s));
        assert_eq!(d(0), "0s");
        assert_eq!(d(119), "119s");
        assert_eq!(d(120), "2m");
        assert_eq!(d(200), "3m20s");
        assert_eq!(d(42 * 60 + 5), "42m");
        assert_eq!(d(5 * 3600 + 3 * 60), "5h3m");
        assert_eq!(d(20 * 3600), "20h");
        assert_eq!(d(3 * 86400 + 4 * 3600), "3d4h");
        assert_eq!(d(120 * 86400), "120d");
        assert_eq!(d(2 * 365 * 86400 + 10 * 86400), "2y10d");
        assert_eq!(d(9 * 365 * 86400), "9y");
    }

    #[test]
    fn ages() {
        let now: jiff::Timestamp = "2025-01-01T00:10:00Z".parse().unwrap();
        let then: jiff::Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(age(Some(then), now), "10m");
        assert_eq!(age(Some(now), then), "0s");
        assert_eq!(age(None, now), "<unknown>");
    }

    #[test]
    fn cells_from_the_cluster_cannot_drive_the_terminal() {
        let mut t = Table::new(&["NAME", "VALUE"]);
        t.row(["\x1b]0;pwned\x07db", "ok\rFAILED \x1b[2J\u{9b}1A"]);
        let text = t.render();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{9b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
        assert!(text.contains("\\u001b]0;pwned\\u0007db"), "{text}");
        assert!(text.contains("ok\\rFAILED \\u001b[2J\\u009b1A"), "{text}");
    }
}
