//! Fuzzes `lifecycle_contract::output::parse`.
//!
//! Invariants: no panic (and no stack overflow); every accepted key matches
//! the key rule, is uppercase, and keys are sorted and unique; every
//! diagnostic has a rule and a sane position; and no diagnostic ever holds a
//! value. For the last one the marker `ZSECRETZ` stands for a value: the
//! dictionary (`fuzz/parse_output.dict`) makes the fuzzer place it anywhere,
//! and each input is also tried inside a template where it sits in value
//! positions. A diagnostic may name the marker only as (part of) a key or an
//! entry field name: keys are not values.
//!
//! For an array or object value (the input placed raw as `value`), the
//! published compact JSON text is also checked: no longer than the input, the
//! same value as serde_json reads the input, and a fixed point (published
//! again, it gives the same text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifecycle_contract::output::{self, Diagnostic, MASK};

const MARKER: &str = "zsecretz";

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() < 4096 {
        let text = String::from_utf8_lossy(data);
        // The input as a value (string or raw), and as the `sensitive` field.
        for tpl in ["{\"A\": {\"value\": \"ZSECRETZ@\"}}", "{\"A\": {\"value\": \"ZSECRETZ\", \"sensitive\": @}}", "{\"A\": @}"] {
            check(tpl.replace('@', &text).as_bytes());
        }
        let raw = format!("{{\"A\": {{\"value\": {text}}}}}");
        if let Some(published) = check(raw.as_bytes()).and_then(|o| o.get("A").map(|a| a.value.clone())) {
            compact_text(&text, &published);
        }
    }
});

/// `published` is the text `{"A": {"value": <input>}}` published for `input`.
fn compact_text(input: &str, published: &str) {
    let trimmed = input.trim_matches([' ', '\t', '\n', '\r']);
    if !(trimmed.starts_with('[') || trimmed.starts_with('{')) {
        return;
    }
    assert!(published.len() <= trimmed.len(), "compact text longer than the value as written");
    let again = format!("{{\"A\": {{\"value\": {published}}}}}");
    let o = output::parse(again.as_bytes()).expect("a compact text is accepted again");
    assert_eq!(o.get("A").map(|a| a.value.as_str()), Some(published), "compact text is not a fixed point");
    // serde_json may refuse what the parser accepts (numbers out of f64's range) or the reverse (depth).
    let read = |t: &str| serde_json::from_str::<serde_json::Value>(t).ok();
    if let Some(v) = read(trimmed) {
        assert_eq!(read(published).as_ref(), Some(&v), "compact text is another value");
    }
}

/// The invariants of every parse; the outputs when accepted.
fn check(data: &[u8]) -> Option<output::Outputs> {
    match output::parse(data) {
        Ok(o) => {
            let mut prev: Option<&str> = None;
            // Each value comes from its own part of the file, and none is longer as published.
            assert!(o.entries.iter().map(|e| e.value.len()).sum::<usize>() <= data.len());
            for e in &o.entries {
                assert!(output::is_valid_key(&e.key), "bad key accepted");
                assert_eq!(e.key, e.key.to_ascii_uppercase());
                assert!(!e.value.contains('\0'));
                if let Some(p) = prev {
                    assert!(p < e.key.as_str(), "keys not sorted/unique");
                }
                prev = Some(&e.key);
                if e.sensitive {
                    assert!(format!("{e:?}").contains(MASK));
                }
            }
            assert!(!o.empty_file || o.entries.is_empty());
            for w in &o.warnings {
                no_value(w);
            }
            Some(o)
        }
        Err(rejected) => {
            assert!(!rejected.errors.is_empty());
            assert!(rejected.errors.len() <= output::MAX_ERRORS + 1);
            for e in &rejected.errors {
                no_value(e);
            }
            None
        }
    }
}

/// The marker may appear in a diagnostic only inside its key, or inside a
/// backquoted field name in its message (unknown / duplicate / mis-cased
/// field): remove those and it must be gone.
fn no_value(d: &Diagnostic) {
    assert!(d.line > 0 || d.column == 0);
    let mut text = d.to_string().to_lowercase();
    if let Some(k) = &d.key {
        text = text.replace(&k.to_lowercase(), "");
    }
    // Field names: the text between backquotes in "field `...`".
    while let Some(i) = text.find("field `") {
        let rest = &text[i + 7..];
        let end = rest.find('`').map_or(text.len(), |j| i + 7 + j + 1);
        text.replace_range(i..end, "");
    }
    assert!(!text.contains(MARKER), "a diagnostic holds a value: {d}");
}
