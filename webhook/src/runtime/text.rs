//! Cutting text to the size limits of where it goes: annotations the server
//! keeps or writes, Event notes, log lines. One rule everywhere: cut on a
//! character boundary and end a cut text with `…`, so that a cut value is
//! never mistaken for a whole one (no valid event, number, JOBID, JSON
//! document or `false` ends with `…`).

/// The API server refuses an Event whose note is longer.
pub(crate) const EVENT_NOTE_MAX_BYTES: usize = 1024;
/// Longest message quoted in a log line or an error (a header value, an API
/// server's message).
const ONE_LINE_MAX_BYTES: usize = 300;

/// `text` cut to at most `max` bytes (see the module's doc).
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    format!("{}…", &text[..boundary(text, max.saturating_sub('…'.len_utf8()))])
}

/// [`cut`] of an owned value: no copy when it fits.
pub(crate) fn capped(value: String, max: usize) -> String {
    if value.len() <= max { value } else { cut(&value, max) }
}

/// An Event note the API server takes.
pub(crate) fn event_note(text: &str) -> String {
    cut(text, EVENT_NOTE_MAX_BYTES)
}

/// A message fit for one log line: control characters as spaces, trimmed, cut.
pub(crate) fn one_line(text: &str) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    cut(flat.trim(), ONE_LINE_MAX_BYTES)
}

/// The largest character boundary of `text` at or below `at`.
pub(crate) fn boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_character_boundary_and_marks_the_cut() {
        assert_eq!(cut("abc", 10), "abc");
        let t = cut("ééééé", 6);
        assert!(t.len() <= 6 && t.ends_with('…'), "{t}");
        assert!(cut(&"x".repeat(300), 256).len() <= 256);
        assert_eq!(capped("start".into(), 16), "start");
        assert!(event_note(&"é".repeat(600)).len() <= EVENT_NOTE_MAX_BYTES);
    }

    #[test]
    fn cut_values_are_never_valid() {
        assert_eq!(capped("start".into(), 16), "start");
        let cut = capped(format!("start,{}", "x".repeat(100)), 16);
        assert!(cut.len() <= 16 && cut.ends_with('…'), "{cut}");
        assert!(lifecycle_contract::Event::parse_list(&cut).is_err());
        let id = lifecycle_contract::JobId::derive(Some(&capped("é".repeat(200), 128)), "x");
        assert!(id.check().is_err(), "{id}");
    }

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(one_line(" a\nb\t "), "a b");
        let s = one_line(&"é".repeat(400));
        assert!(s.len() <= ONE_LINE_MAX_BYTES && s.ends_with('…'));
    }
}
