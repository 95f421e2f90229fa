//! The shapes of `value` (DESIGN.md "The output file"): what each publishes,
//! Terraform's and Qovery's extra fields, and a real `tofu output -json` file.

use super::tests::{kv, ok, one};
use super::*;

/// The published text of the only entry of `{"A": {"value": <v>}}`.
fn text(v: &str) -> String {
    let o = ok(&format!("{{\"A\": {{\"value\": {v}}}}}"));
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    o.get("A").unwrap().value.clone()
}

/// What `serde_json::to_string` gives for the value parsed by serde_json
/// (this workspace builds it without `preserve_order`: keys sorted).
fn serde_text(v: &str) -> String {
    serde_json::to_string(&serde_json::from_str::<serde_json::Value>(v).unwrap()).unwrap()
}

#[test]
fn each_shape_of_value() {
    for (v, published) in [
        (r#""zf138d9c8-postgresql""#, "zf138d9c8-postgresql"),
        (r#""""#, ""),
        ("5432", "5432"),
        ("1.50", "1.50"),
        ("-2.5e-3", "-2.5e-3"),
        ("true", "true"),
        ("false", "false"),
        (r#"["a", "b"]"#, r#"["a","b"]"#),
        (r#"{"env": "pr-42"}"#, r#"{"env":"pr-42"}"#),
        (r#"{"a": [1, {"b": null, "c": [true, false]}], "d": {}}"#, r#"{"a":[1,{"b":null,"c":[true,false]}],"d":{}}"#),
        ("[]", "[]"),
        ("{}", "{}"),
        ("[ ]", "[]"),
        ("{ \n }", "{}"),
        ("[null]", "[null]"),
        ("[[[]]]", "[[[]]]"),
    ] {
        assert_eq!(text(v), published, "{v}");
    }
}

#[test]
fn compact_text_is_serde_json_text_for_terraform_shaped_values() {
    // Keys sorted and numbers in plain form, as Terraform and OpenTofu write them.
    for v in [
        r#"["subnet-a", "subnet-b"]"#,
        r#"{ "env": "pr-42", "team": "web" }"#,
        "[\n  1,\n  2.5,\n  -3,\n  0\n]",
        r#"{"a": {"b": [{"c": "d"}]}, "e": [], "f": {}, "g": null, "h": true}"#,
        r#"["caf\u00e9", "\ud83d\ude00", "q\"uote", "back\\slash", "sl\/ash", "\b\f\n\r\t", "\u0001\u001f\u007f", "日本"]"#,
        r#"{"": "empty key", "\u0041": "key escaped", "a b": "space in a key"}"#,
    ] {
        assert_eq!(text(v), serde_text(v), "{v}");
    }
}

#[test]
fn compact_text_keeps_what_is_written() {
    // Members in the order written, not sorted; numbers as written, not normalised.
    assert_eq!(text(r#"{"z": 1, "a": 2}"#), r#"{"z":1,"a":2}"#);
    assert_eq!(text("[1.50, 1E+3, -0, 123456789012345678901234567890]"), "[1.50,1E+3,-0,123456789012345678901234567890]");
    // Deterministic, and a fixed point: parsing the text again gives the same text.
    let v = "{ \"b\" : [ \"x\\u00e9\" , { \"a\" : 1.0 } ] , \"a\" : \"\\n\" }";
    let once = text(v);
    assert_eq!(once, text(v));
    assert_eq!(text(&once), once);
    // The same value as serde_json reads it.
    let parsed = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
    assert_eq!(parsed(&once), parsed(v));
}

#[test]
fn compact_text_is_never_longer_than_written() {
    for v in [r#"["\u00e9\u00e9"]"#, r#"["\u0000\u0001"]"#, r#"["\ud83d\ude00"]"#, r#"["\/\"\\"]"#, "[\"\u{7f}\"]"] {
        assert!(text(v).len() <= v.len(), "{v}");
    }
}

#[test]
fn nul_inside_an_array_or_object_stays_escaped() {
    // No NUL character in the published text: an environment variable can hold it.
    assert_eq!(text(r#"["a\u0000b"]"#), r#"["a\u0000b"]"#);
    assert_eq!(text(r#"{"k": "\u0000"}"#), r#"{"k":"\u0000"}"#);
    // A NUL in a string value is still refused.
    one(r#"{"A": {"value": "a\u0000b"}}"#, Rule::ValueContent);
}

#[test]
fn a_member_name_repeated_inside_a_value_rejects_the_file() {
    let d = one("{\"A\": {\"value\": {\"x\": 1,\n  \"x\": 2}}}", Rule::DuplicateKey);
    assert_eq!((d.line, d.column, d.key.as_deref()), (2, 3, Some("A")));
    assert_eq!(d.message, "an object in `value` has a member name twice (first at line 1, column 18)");
    assert!(!d.to_string().contains("\"x\""), "{d}");
    // Deeper, and in an array of objects; the same name in two objects is fine.
    one(r#"{"A": {"value": [{"a": {"b": 1, "b": 1}}]}}"#, Rule::DuplicateKey);
    assert_eq!(text(r#"[{"a": 1}, {"a": 2}, {"b": {"a": 3}, "a": 4}]"#), r#"[{"a":1},{"a":2},{"b":{"a":3},"a":4}]"#);
    // A string value equal to a member name is no member name.
    assert_eq!(text(r#"{"a": "a", "b": ["a", "b"]}"#), r#"{"a":"a","b":["a","b"]}"#);
    // In fields that are not published, repeats do not matter.
    assert!(ok(r#"{"A": {"value": "x", "type": {"a": 1, "a": 2}}}"#).warnings.is_empty());
}

#[test]
fn null_and_missing_value_reject_the_whole_file() {
    for src in [r#"{"A": {"value": null}, "B": {"value": "b"}}"#, r#"{"A": {"type": "string"}, "B": {"value": "b"}}"#] {
        let e = parse(src.as_bytes()).unwrap_err();
        assert_eq!(e.errors.len(), 1, "{e}");
        assert_eq!(e.errors[0].key.as_deref(), Some("A"));
    }
    let d = one(r#"{"A": {"sensitive": true, "description": "the password"}}"#, Rule::ValueMissing);
    assert_eq!(d.hint.as_deref(), Some(r#"write { "value": "...", "sensitive": false }"#));
}

#[test]
fn type_and_description_are_known_fields() {
    let o = ok(r#"{
      "A": {"value": "x", "type": "string", "description": "Qovery's description"},
      "B": {"value": ["x"], "type": ["list", "string"], "sensitive": false},
      "C": {"value": {"k": 1}, "type": ["object", {"k": "number"}], "description": null},
      "D": {"description": 5, "type": true, "value": 1}
    }"#);
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    assert_eq!(kv(&o), vec![("A", "x", false), ("B", r#"["x"]"#, false), ("C", r#"{"k":1}"#, false), ("D", "1", false)]);
    // Known, so repeating one rejects the file as any other field.
    one(r#"{"A": {"value": "x", "type": "string", "type": "string"}}"#, Rule::DuplicateField);
}

#[test]
fn type_and_description_in_another_case_are_warned_about_not_rejected() {
    let o = ok("{\"A\": {\"value\": \"x\",\n \"Type\": \"string\", \"DESCRIPTION\": \"d\"}}");
    assert_eq!(kv(&o), vec![("A", "x", false)]);
    let w: Vec<_> = o.warnings.iter().map(|w| (w.line, w.column, w.rule, w.hint.as_deref().unwrap())).collect();
    assert_eq!(
        w,
        vec![
            (2, 2, Rule::UnknownField, "field names are lowercase: write `type`"),
            (2, 20, Rule::UnknownField, "field names are lowercase: write `description`"),
        ]
    );
    // `Value` and `Sensitive` in another case still reject it: they decide what is published, and where.
    one(r#"{"A": {"value": ["x"], "SENSITIVE": true}}"#, Rule::FieldNameCase);
    one(r#"{"A": {"VALUE": ["x"], "type": ["list", "string"]}}"#, Rule::FieldNameCase);
}

#[test]
fn a_sensitive_list_is_one_masked_value() {
    let o = ok(r#"{"KEYS": {"sensitive": true, "type": ["list", "string"], "value": ["k1", "k2"]}}"#);
    let e = o.get("KEYS").unwrap();
    assert_eq!((e.value.as_str(), e.sensitive), (r#"["k1","k2"]"#, true));
    assert_eq!(e.display_value(), MASK);
    assert!(!format!("{e:?}").contains("k1"));
}

/// A real `tofu output -json` file (testdata/tofu-output.tf says how it was
/// made; Terraform writes the same bytes): pretty-printed, keys sorted, a
/// `type` in every entry (a literal list is a `tuple`), a string, numbers, a
/// list, maps and objects, an empty list, and two sensitive outputs, one of
/// them a list.
const TOFU_OUTPUT: &str = include_str!("testdata/tofu-output.json");

#[test]
fn a_real_tofu_output_file_publishes_every_output_with_no_warning() {
    let o = ok(TOFU_OUTPUT);
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    assert_eq!(
        kv(&o),
        vec![
            ("DB_PASSWORD", "hunter2-not-for-logs", true),
            ("DB_PORT", "5432", false),
            ("DESCRIBED", "x", false),
            ("EMPTY_LIST", "[]", false),
            ("ENDPOINT", "db.pr-42.example.internal", false),
            ("RATIO", "0.25", false),
            ("REPLICAS", r#"["replica-a","replica-b"]"#, true),
            ("SETTINGS", r#"{"enabled":true,"n":1.5,"zones":["a","b"]}"#, false),
            ("SUBNETS", r#"["subnet-a","subnet-b"]"#, false),
            ("TAGS", r#"{"env":"pr-42","team":"web"}"#, false),
        ]
    );
    assert_eq!(o.sensitive_count(), 2);
    // Each text is what Qovery's engine publishes: the string, else serde_json's text of the value.
    let file: serde_json::Value = serde_json::from_str(TOFU_OUTPUT).unwrap();
    for e in &o.entries {
        let v = &file[e.key.to_ascii_lowercase()]["value"];
        let qovery = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        assert_eq!(e.value, qovery, "{}", e.key);
    }
}

#[test]
fn messages_printed_before_the_json_are_named_as_such() {
    // OpenTofu 1.12 prints this warning on its standard output, so
    // `tofu output -json > FILE` puts it in the file (TF_CLI_CONFIG_FILE set to
    // a missing file).
    let src = format!(
        "\nWarning: Unable to open CLI configuration file\n\nThe CLI configuration file at \"/root/.terraformrc\" does not \
         exist.\n{TOFU_OUTPUT}"
    );
    let d = one(&src, Rule::Syntax);
    assert_eq!((d.line, d.column, d.key.as_deref()), (2, 1, None));
    assert_eq!(d.message, "expected `{`, found an unquoted word");
    assert!(d.hint.as_deref().unwrap().contains("print messages on its standard output (e.g. `Warning: ...`)"), "{d}");
    // JSON's own words keep their error, and Python's keep their hint.
    one("true", Rule::TopLevelObject);
    let d = one("None", Rule::Syntax);
    assert_eq!(d.hint.as_deref(), Some("`None` is not JSON: JSON's is `null`"));
}
