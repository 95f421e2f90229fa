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
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifecycle_contract::output::{self, Diagnostic, MASK};

const MARKER: &str = "zsecretz";

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() < 4096 {
        let text = String::from_utf8_lossy(data);
        // The input as a value (string or raw), and as the `sensitive` field.
        for tpl in [
            "{\"A\": {\"value\": \"ZSECRETZ@\"}}",
            "{\"A\": {\"value\": @}}",
            "{\"A\": {\"value\": \"ZSECRETZ\", \"sensitive\": @}}",
            "{\"A\": @}",
        ] {
            check(tpl.replace('@', &text).as_bytes());
        }
    }
});

fn check(data: &[u8]) {
    match output::parse(data) {
        Ok(o) => {
            let mut prev: Option<&str> = None;
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
        }
        Err(rejected) => {
            assert!(!rejected.errors.is_empty());
            assert!(rejected.errors.len() <= output::MAX_ERRORS + 1);
            for e in &rejected.errors {
                no_value(e);
            }
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
