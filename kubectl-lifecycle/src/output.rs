//! Machine-readable output: JSON, and YAML written from the same JSON value.

use serde::Serialize;
use serde_json::Value;

use crate::cli::OutputFormat;

/// A report as `-o json|yaml` asks, else as `text(wide)` writes it for people
/// (`wide`: `-o wide`, every column). Every command prints its report so.
pub fn report<T: Serialize>(v: &T, format: Option<OutputFormat>, text: impl FnOnce(bool) -> String) -> anyhow::Result<String> {
    match format {
        Some(OutputFormat::Json) => json(v),
        Some(OutputFormat::Yaml) => yaml(v),
        Some(OutputFormat::Wide) => Ok(text(true)),
        None => Ok(text(false)),
    }
}

/// Prints `v` as pretty JSON (with a final newline).
pub fn json<T: Serialize>(v: &T) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    Ok(s)
}

/// Prints `v` as YAML.
pub fn yaml<T: Serialize>(v: &T) -> anyhow::Result<String> {
    Ok(to_yaml(&serde_json::to_value(v)?))
}

/// A YAML document for a JSON value. Strings that YAML could read as anything else are quoted
/// (JSON's double-quoted strings are valid YAML).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => block(&mut out, v, 0, false),
        Value::Array(a) if !a.is_empty() => block(&mut out, v, 0, false),
        _ => {
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes a non-empty object or array at `indent`; with `inline`, the first line is already
/// positioned (after `- `).
fn block(out: &mut String, v: &Value, indent: usize, inline: bool) {
    let mut first = true;
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                if !(first && inline) {
                    pad(out, indent);
                }
                first = false;
                out.push_str(&string(k));
                out.push(':');
                after(out, val, indent, true);
            }
        }
        Value::Array(a) => {
            for item in a {
                if !(first && inline) {
                    pad(out, indent);
                }
                first = false;
                out.push('-');
                after(out, item, indent, false);
            }
        }
        _ => unreachable!("block called on a scalar"),
    }
}

/// Writes what follows `key:` (`after_key`) or `-`.
fn after(out: &mut String, v: &Value, indent: usize, after_key: bool) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            if after_key {
                out.push('\n');
                block(out, v, indent + 2, false);
            } else {
                out.push(' ');
                block(out, v, indent + 2, true);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            if after_key {
                out.push('\n');
                block(out, v, indent, false);
            } else {
                out.push(' ');
                block(out, v, indent + 2, true);
            }
        }
        _ => {
            out.push(' ');
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

fn string(s: &str) -> String {
    if plain_is_safe(s) { s.to_string() } else { serde_json::to_string(s).expect("strings serialize") }
}

/// Whether `s` reads back as the same string when written plain. Conservative: anything unusual
/// is quoted.
fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    if !(first.is_ascii_alphabetic() || first == '_' || first == '/') {
        return false;
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric() || "_-./@+=".contains(c)) {
        return false;
    }
    const SPECIAL: [&str; 12] = ["true", "false", "yes", "no", "on", "off", "null", "y", "n", "nan", "inf", "infinity"];
    let lower = s.to_ascii_lowercase();
    !SPECIAL.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_nested_values() {
        // Keys in sorted order, so that the test holds with or without serde_json's preserve_order.
        let v = json!({
            "count": 3,
            "empty": {},
            "lastRuns": {"start": {"result": "succeeded", "time": "2025-01-01T00:00:00Z"}},
            "name": "seed",
            "nested": [["a", "b"]],
            "none": [],
            "nothing": null,
            "ok": true,
            "on": ["start", "stop"],
            "runs": [{"event": "start", "name": "a"}, {"event": "stop", "name": "b"}],
        });
        let expected = r#"count: 3
empty: {}
lastRuns:
  start:
    result: succeeded
    time: "2025-01-01T00:00:00Z"
name: seed
nested:
- - a
  - b
none: []
nothing: null
ok: true
"on":
- start
- stop
runs:
- event: start
  name: a
- event: stop
  name: b
"#;
        assert_eq!(to_yaml(&v), expected);
    }

    #[test]
    fn quotes_what_yaml_would_misread() {
        for s in ["", "true", "No", "on", "null", "3", "1.5", "-x", "a: b", "a b", "#x", "*x", "line\nbreak", "é"] {
            assert!(string(s).starts_with('"'), "{s:?} should be quoted");
        }
        for s in ["seed", "QOVERY_OUTPUT_JOB_SEED_HOST", "lifecycle-jobs.dev/on", "v1.2"] {
            assert_eq!(string(s), s);
        }
        assert_eq!(to_yaml(&json!("x")), "x\n");
        assert_eq!(to_yaml(&json!({})), "{}\n");
    }
}
