//! The `lifecycle-jobs.dev/outputs` annotation on a Job: the last published
//! outputs, for people (`kubectl describe job`) and tools.
//!
//! Format: one compact JSON object, keys sorted, `{"KEY": "value", ...}`:
//! - a non-sensitive output shows its value, cut to [`VALUE_MAX_CHARS`]
//!   characters followed by [`TRUNCATED`] when longer;
//! - a sensitive output shows [`SENSITIVE`], never its value;
//! - when that would exceed [`MAX_BYTES`], every value is replaced by
//!   [`OMITTED`] (sensitive ones still by [`SENSITIVE`]), and if even the names
//!   do not fit, the first keys are kept and the key [`MORE_KEY`] (not a valid
//!   output key, so it cannot clash) says how many were left out.

use std::collections::BTreeMap;

use lifecycle_contract::output::Output;

/// Shown instead of a sensitive value: the contract's one mask word.
pub(crate) const SENSITIVE: &str = lifecycle_contract::output::MASK;
/// Shown instead of a non-sensitive value when the values do not fit.
pub(crate) const OMITTED: &str = "<omitted>";
/// Longest value shown, in characters.
pub(crate) const VALUE_MAX_CHARS: usize = 200;
/// Appended to a value cut to [`VALUE_MAX_CHARS`].
pub(crate) const TRUNCATED: &str = "…(truncated)";
/// Largest annotation value written (annotations share 256 KiB per object).
pub(crate) const MAX_BYTES: usize = 64 * 1024;
/// Key of the entry that counts outputs left out of the summary.
pub(crate) const MORE_KEY: &str = "…";

/// Builds the annotation value for a published set of outputs.
pub(crate) fn summary(entries: &[Output]) -> String {
    summary_within(entries, MAX_BYTES)
}

fn summary_within(entries: &[Output], max: usize) -> String {
    let shown: BTreeMap<&str, String> = entries.iter().map(|o| (o.key.as_str(), shown_value(o))).collect();
    let json = to_json(&shown);
    if json.len() <= max {
        return json;
    }
    let names: BTreeMap<&str, String> =
        entries.iter().map(|o| (o.key.as_str(), if o.sensitive { SENSITIVE } else { OMITTED }.to_string())).collect();
    let json = to_json(&names);
    if json.len() <= max {
        return json;
    }
    // Keep the first keys that fit, with room for the count of the others.
    let reserve = format!(r#","{MORE_KEY}":"{} more outputs not shown"}}"#, names.len()).len() + 1;
    let mut kept = BTreeMap::new();
    let mut size = 1; // "{"
    for (k, v) in &names {
        let entry = serde_json::to_string(k).map_or(0, |s| s.len()) + 1 + serde_json::to_string(v).map_or(0, |s| s.len()) + 1;
        if size + entry + reserve > max {
            break;
        }
        size += entry;
        kept.insert(*k, v.clone());
    }
    let left_out = names.len() - kept.len();
    kept.insert(MORE_KEY, format!("{left_out} more outputs not shown"));
    to_json(&kept)
}

/// What the summary shows for one output.
pub(crate) fn shown_value(o: &Output) -> String {
    if o.sensitive {
        return SENSITIVE.to_string();
    }
    match o.value.char_indices().nth(VALUE_MAX_CHARS) {
        Some((cut, _)) => format!("{}{TRUNCATED}", &o.value[..cut]),
        None => o.value.clone(),
    }
}

fn to_json(map: &BTreeMap<&str, String>) -> String {
    serde_json::to_string(map).expect("a map of strings serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(key: &str, value: &str, sensitive: bool) -> Output {
        Output { key: key.into(), value: value.into(), sensitive }
    }

    #[test]
    fn masks_sensitive_values_and_keeps_others() {
        let s = summary(&[out("POSTGRES_DB_PASS", "mypassword", true), out("POSTGRES_DB_HOST", "zf138d9c8-postgresql", false)]);
        assert_eq!(s, r#"{"POSTGRES_DB_HOST":"zf138d9c8-postgresql","POSTGRES_DB_PASS":"******"}"#);
        assert!(!s.contains("mypassword"));
    }

    #[test]
    fn truncates_long_values_on_a_character_boundary() {
        let long = "é".repeat(VALUE_MAX_CHARS + 1);
        let shown = shown_value(&out("A", &long, false));
        assert_eq!(shown, format!("{}{TRUNCATED}", "é".repeat(VALUE_MAX_CHARS)));
        assert_eq!(shown_value(&out("A", &"x".repeat(VALUE_MAX_CHARS), false)), "x".repeat(VALUE_MAX_CHARS));
    }

    #[test]
    fn drops_values_then_names_to_stay_small() {
        let entries: Vec<Output> = (0..40).map(|i| out(&format!("KEY_{i:03}"), &"v".repeat(150), i == 0)).collect();
        // Values do not fit in 2 KiB, names do.
        let s = summary_within(&entries, 2048);
        assert!(s.len() <= 2048);
        let v: BTreeMap<String, String> = serde_json::from_str(&s).unwrap();
        assert_eq!(v.len(), 40);
        assert_eq!(v["KEY_000"], SENSITIVE);
        assert_eq!(v["KEY_001"], OMITTED);

        // Not even the names fit in 300 bytes: the first keys and a count.
        let s = summary_within(&entries, 300);
        assert!(s.len() <= 300, "{} bytes: {s}", s.len());
        let v: BTreeMap<String, String> = serde_json::from_str(&s).unwrap();
        let kept = v.len() - 1;
        assert!(kept > 5, "{s}");
        assert_eq!(v[MORE_KEY], format!("{} more outputs not shown", 40 - kept));
        assert!(v.contains_key("KEY_000"));
    }

    #[test]
    fn real_limit_holds_for_the_largest_files() {
        // About 1 MiB of short keys: the summary still fits.
        let entries: Vec<Output> = (0..40_000).map(|i| out(&format!("K{i:06}"), "x", false)).collect();
        let s = summary(&entries);
        assert!(s.len() <= MAX_BYTES);
        serde_json::from_str::<serde_json::Value>(&s).unwrap();
    }
}
