//! What the plugin prints that comes from the cluster (names, annotations,
//! output names and values, Event messages, API errors) is text a tenant
//! wrote. Printed as it is, an `ESC [ 2 J`, an OSC 52 (write the clipboard),
//! an OSC 8 link, a carriage return or a bidi override in an output value or an
//! annotation would act on the reader's terminal: hide rows, rewrite what a
//! command seems to say, set the title. [`terminal`] is the one function every
//! printer goes through ([`crate::out`], [`crate::outln`], [`crate::errln`],
//! [`crate::err`], and the table renderer): every control character becomes
//! visible text.
//!
//! Kept: newline and tab (the plugin's own layout; table cells escape theirs,
//! see [`crate::table`]). Replaced by `\uXXXX` (a valid escape inside a JSON or
//! YAML double-quoted string, so `-o json` and `-o yaml` keep their values):
//! the other C0 controls (ESC and CR included), DEL, the C1 controls (U+0080 to
//! U+009F: `U+009B` is CSI on some terminals) and the bidirectional embedding,
//! override and isolate characters (U+202A to U+202E, U+2066 to U+2069), which
//! reorder what is shown. An escape sequence loses its ESC and is shown as
//! text.
//!
//! Logs are the exception: `kubectl lifecycle logs` streams the container's
//! output unchanged, as `kubectl logs` does, because it is the program's own
//! output, asked for by name, that people pipe to files and tools and whose
//! colours and progress bars they expect; what the plugin adds around them
//! (headers, pod and container names, notes) is sanitized.

use std::borrow::Cow;

/// Whether `c` is shown as an escape rather than written.
fn dangerous(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character but newline and tab shown as `\uXXXX`.
/// Borrowed when there is nothing to replace (the usual case).
pub(crate) fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(dangerous) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if dangerous(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `print!` through [`terminal`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        let mut o = std::io::stdout().lock();
        let _ = o.write_all($crate::sanitize::terminal(&text).as_bytes());
        let _ = o.flush();
    }};
}

/// `println!` through [`terminal`].
#[macro_export]
macro_rules! outln {
    () => { $crate::out!("\n") };
    ($($arg:tt)*) => {{
        let text = format!($($arg)*);
        $crate::out!("{}\n", text)
    }};
}

/// `eprint!` through [`terminal`].
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        let _ = std::io::stderr().lock().write_all($crate::sanitize::terminal(&text).as_bytes());
    }};
}

/// `eprintln!` through [`terminal`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        let text = format!($($arg)*);
        $crate::err!("{}\n", text)
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["", "db-host", "pg-42.svc:5432", "multi\nline\twith tab", "é ü 日本 🚀", "\\u001b as text"] {
            assert!(matches!(terminal(s), Cow::Borrowed(_)), "{s:?}");
        }
    }

    #[test]
    fn escape_sequences_lose_their_escape() {
        assert_eq!(terminal("\x1b[2J\x1b[31mred"), "\\u001b[2J\\u001b[31mred");
        // OSC 52 (clipboard) and OSC 8 (hyperlink), BEL- and ST-terminated.
        assert_eq!(terminal("\x1b]52;c;ZWNobyBwd25k\x07"), "\\u001b]52;c;ZWNobyBwd25k\\u0007");
        assert_eq!(terminal("\x1b]8;;http://evil\x1b\\x\x1b]8;;\x1b\\"), "\\u001b]8;;http://evil\\u001b\\x\\u001b]8;;\\u001b\\");
        // A carriage return would let a value overwrite the start of its line.
        assert_eq!(terminal("ok\rFAILED"), "ok\\u000dFAILED");
    }

    #[test]
    fn every_control_but_newline_and_tab_is_shown() {
        for c in (0u32..=0x9f).chain(0x202a..=0x202e).chain(0x2066..=0x2069).filter_map(char::from_u32) {
            let s = c.to_string();
            let shown = terminal(&s);
            if c == '\n' || c == '\t' || (' '..='~').contains(&c) || ('\u{a0}'..).contains(&c) && !dangerous(c) {
                assert_eq!(shown, s, "{c:?}");
            } else {
                assert_eq!(shown, format!("\\u{:04x}", c as u32), "{c:?}");
                assert!(shown.chars().all(|c| (' '..='~').contains(&c)), "{c:?}");
            }
        }
        // C1 CSI (U+009B) and a right-to-left override.
        assert_eq!(terminal("a\u{9b}31mb\u{202e}c"), "a\\u009b31mb\\u202ec");
    }

    #[test]
    fn json_output_stays_json_with_the_same_values() {
        let v = serde_json::json!({"k": "a\u{7f}b\u{85}c\u{2066}d", "e": "\u{1b}[0m"});
        let text = serde_json::to_string(&v).unwrap();
        let clean = terminal(&text);
        assert!(!clean.contains('\u{1b}') && !clean.contains('\u{7f}') && !clean.contains('\u{85}'), "{clean}");
        let back: serde_json::Value = serde_json::from_str(&clean).unwrap();
        assert_eq!(back, v);
    }
}
