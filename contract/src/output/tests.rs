use super::*;

pub(super) fn ok(src: &str) -> Outputs {
    match parse(src.as_bytes()) {
        Ok(o) => o,
        Err(e) => panic!("expected valid, got {e:#}\n--- file:\n{src}"),
    }
}

fn rejected(src: impl AsRef<[u8]>) -> Vec<Diagnostic> {
    match parse(src.as_ref()) {
        Ok(o) => panic!("expected rejected, got {o:?}"),
        Err(e) => {
            assert!(!e.errors.is_empty());
            e.errors
        }
    }
}

/// The only error, which must be about `rule`.
pub(super) fn one(src: impl AsRef<[u8]>, rule: Rule) -> Diagnostic {
    let errors = rejected(src);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].rule, rule, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

pub(super) fn kv(o: &Outputs) -> Vec<(&str, &str, bool)> {
    o.entries.iter().map(|e| (e.key.as_str(), e.value.as_str(), e.sensitive)).collect()
}

const SEED: &str = r#"{ "POSTGRES_DB_HOST": { "sensitive": false, "value": "zf138d9c8-postgresql" },
  "POSTGRES_DB_PASS": { "sensitive": true,  "value": "mypassword" } }"#;

// ---- positives ----

#[test]
fn seed_example() {
    let o = ok(SEED);
    assert_eq!(kv(&o), vec![("POSTGRES_DB_HOST", "zf138d9c8-postgresql", false), ("POSTGRES_DB_PASS", "mypassword", true),]);
    assert!(o.warnings.is_empty());
    assert!(!o.empty_file);
    assert!(!o.is_empty());
    assert_eq!(o.sensitive_count(), 1);
    assert_eq!(o.get("POSTGRES_DB_PASS").unwrap().display_value(), MASK);
    assert_eq!(o.get("POSTGRES_DB_HOST").unwrap().display_value(), "zf138d9c8-postgresql");
    assert!(o.get("NOPE").is_none());
}

#[test]
fn empty_files_mean_no_outputs() {
    for src in [&b""[..], b"   ", b"\n", b"\r\n\t ", b"\xEF\xBB\xBF", b"\xEF\xBB\xBF \n"] {
        let o = parse(src).unwrap();
        assert!(o.empty_file && o.is_empty() && o.warnings.is_empty(), "{src:?}");
    }
}

#[test]
fn empty_object_is_a_file_with_no_entries() {
    let o = ok(" { } \n");
    assert!(o.is_empty());
    assert!(!o.empty_file);
}

#[test]
fn bom_is_ignored_and_columns_do_not_count_it() {
    let o = ok("\u{feff}{\"A\": {\"value\": \"x\"}}");
    assert_eq!(kv(&o), vec![("A", "x", false)]);
    let d = one("\u{feff}{\"A\": 1}", Rule::EntryObject);
    assert_eq!((d.line, d.column), (1, 7));
}

#[test]
fn keys_are_uppercased_and_sorted() {
    let o = ok(r#"{"zeta": {"value": "1"}, "_a1": {"value": "2"}, "Mid_Key": {"value": "3"}}"#);
    assert_eq!(kv(&o), vec![("MID_KEY", "3", false), ("ZETA", "1", false), ("_A1", "2", false)]);
}

#[test]
fn numbers_and_booleans_keep_their_json_text() {
    let o = ok(r#"{"PORT": {"value": 5432}, "PRICE": {"value": 1.50}, "NEG": {"value": -0},
        "EXP": {"value": 1E+10}, "SMALL": {"value": 2.5e-3}, "BIG": {"value": 123456789012345678901234567890},
        "ON": {"value": true}, "OFF": {"value": false}}"#);
    assert_eq!(
        kv(&o),
        vec![
            ("BIG", "123456789012345678901234567890", false),
            ("EXP", "1E+10", false),
            ("NEG", "-0", false),
            ("OFF", "false", false),
            ("ON", "true", false),
            ("PORT", "5432", false),
            ("PRICE", "1.50", false),
            ("SMALL", "2.5e-3", false),
        ]
    );
}

#[test]
fn sensitive_defaults_to_false() {
    let o = ok(r#"{"A": {"value": "x"}, "B": {"value": "y", "sensitive": true}, "C": {"sensitive": false, "value": ""}}"#);
    assert_eq!(kv(&o), vec![("A", "x", false), ("B", "y", true), ("C", "", false)]);
}

#[test]
fn unicode_and_escapes() {
    let o = ok(r#"{"A": {"value": "caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t"}, "B": {"value": "héllo 日本 😀"}}"#);
    assert_eq!(o.get("A").unwrap().value, "café 😀 \"q\" \\ / \u{8}\u{c}\n\r\t");
    assert_eq!(o.get("B").unwrap().value, "héllo 日本 😀");
}

#[test]
fn escaped_keys_are_decoded_before_the_key_rule() {
    let o = ok(r#"{"\u0041B": {"value": "x"}}"#);
    assert_eq!(kv(&o), vec![("AB", "x", false)]);
}

#[test]
fn unknown_fields_are_ignored_with_a_warning() {
    let src = "{\"A\": {\"value\": \"x\",\n  \"note\": {\"deep\": [1, 2, {\"x\": null}]}, \"also\": \"secret-ish\"}}";
    let o = ok(src);
    assert_eq!(kv(&o), vec![("A", "x", false)]);
    assert_eq!(o.warnings.len(), 2);
    let w = &o.warnings[0];
    assert_eq!(w.rule, Rule::UnknownField);
    assert_eq!((w.line, w.column, w.key.as_deref()), (2, 3, Some("A")));
    assert!(w.message.contains("`note`"));
    assert!(!o.warnings.iter().any(|w| w.to_string().contains("secret-ish")));
}

#[test]
fn deep_nesting_in_unknown_fields_is_fine_up_to_the_limit() {
    // top object (1) + entry (2) + 62 arrays = 64 levels.
    let n = MAX_DEPTH - 2;
    let src = format!(r#"{{"A": {{"value": "x", "deep": {}{}}}}}"#, "[".repeat(n), "]".repeat(n));
    assert_eq!(ok(&src).warnings.len(), 1);
    let src = format!(r#"{{"A": {{"value": "x", "deep": {}{}}}}}"#, "[".repeat(n + 1), "]".repeat(n + 1));
    let d = one(&src, Rule::NestingDepth);
    assert_eq!(d.key.as_deref(), Some("A"));
}

#[test]
fn no_stack_overflow_on_huge_nesting() {
    let src = "[".repeat(OUTPUT_FILE_MAX_BYTES);
    one(&src, Rule::TopLevelObject);
    let src = format!("{{\"A\": {}", "[".repeat(OUTPUT_FILE_MAX_BYTES - 10));
    one(&src, Rule::NestingDepth);
    let src = format!("{{\"A\": {{\"value\": \"x\", \"d\": {}", "{\"a\":".repeat(100_000));
    one(&src, Rule::NestingDepth);
}

#[test]
fn largest_file_accepted() {
    let head = r#"{"A": {"value": ""#;
    let tail = r#""}}"#;
    let fill = OUTPUT_FILE_MAX_BYTES - head.len() - tail.len();
    let src = format!("{head}{}{tail}", "x".repeat(fill));
    assert_eq!(src.len(), OUTPUT_FILE_MAX_BYTES);
    assert_eq!(ok(&src).entries[0].value.len(), fill);
}

// ---- every rule ----

#[test]
fn rule_too_large() {
    let src = vec![b' '; OUTPUT_FILE_MAX_BYTES + 1];
    let d = one(&src, Rule::TooLarge);
    assert_eq!((d.line, d.column), (0, 0));
    assert!(d.message.contains(&(OUTPUT_FILE_MAX_BYTES + 1).to_string()), "{d}");
}

#[test]
fn rule_encoding_invalid_utf8() {
    let d = one(b"{\"A\": {\"value\": \"caf\xE9\"}}", Rule::Encoding);
    assert!(d.message.contains("byte offset 20"), "{d}");
    assert_eq!((d.line, d.column), (1, 21));
    let d = one(b"\xEF\xBB\xBF{\n\"A\": {\"value\": \"\xC3\"}}", Rule::Encoding);
    assert!(d.message.contains("byte offset 21"), "{d}");
    assert_eq!((d.line, d.column), (2, 17));
}

#[test]
fn rule_encoding_utf16() {
    let d = one(b"\xFF\xFE{\0}\0", Rule::Encoding);
    assert!(d.message.contains("UTF-16"));
    // UTF-16 without a byte order mark: NUL bytes.
    let d = one(b"{\0\"\0", Rule::Syntax);
    assert!(d.hint.unwrap().contains("UTF-16"));
}

#[test]
fn rule_top_level_object() {
    for (src, found) in [
        ("[]", "an array"),
        ("[{\"A\": {\"value\": \"x\"}}]", "an array"),
        ("\"x\"", "a string"),
        ("42", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ] {
        let d = one(src, Rule::TopLevelObject);
        assert!(d.message.ends_with(found), "{src}: {d}");
        assert!(d.hint.is_some());
    }
}

#[test]
fn rule_key_pattern() {
    let src =
        r#"{"my-key": {"value": "1"}, "1ABC": {"value": "2"}, "": {"value": "3"}, "a b": {"value": "4"}, "é": {"value": "5"}}"#;
    let errors = rejected(src);
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert!(errors.iter().all(|e| e.rule == Rule::KeyPattern));
    assert_eq!(errors[0].key.as_deref(), Some("my-key"));
    assert_eq!(errors[0].column, 2);
    assert!(errors[1].hint.as_ref().unwrap().contains("digit"));
    assert!(errors[2].hint.as_ref().unwrap().contains("empty"));
    assert_eq!(
        errors[0].to_string(),
        "line 1, column 2: key \"my-key\": the key does not match ^[A-Za-z_][A-Za-z0-9_]*$ (rule: key-pattern). hint: use only letters, digits and `_` (e.g. `_` instead of `-`, `.` or a space)"
    );
}

#[test]
fn key_shown_escaped_and_shortened() {
    let long = "x-".repeat(100);
    let src = format!("{{\"{long}\": {{\"value\": \"1\"}}, \"a\\nb\\\"\": {{\"value\": \"2\"}}}}");
    let errors = rejected(src);
    assert_eq!(errors[0].key.as_ref().unwrap().chars().count(), 65);
    assert_eq!(errors[1].key.as_deref(), Some("a\\nb\\\""));
}

#[test]
fn rule_duplicate_key() {
    let src = "{\"A\": {\"value\": \"1\"},\n \"A\": {\"value\": \"2\"},\n \"a\": {\"value\": \"3\"}}";
    let errors = rejected(src);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors.iter().all(|e| e.rule == Rule::DuplicateKey));
    assert_eq!((errors[0].line, errors[0].key.as_deref()), (2, Some("A")));
    assert!(errors[0].message.contains("twice (first on line 1)"), "{}", errors[0]);
    assert_eq!((errors[1].line, errors[1].key.as_deref()), (3, Some("a")));
    assert!(errors[1].message.contains("same as key A on line 1 once uppercased"), "{}", errors[1]);
}

#[test]
fn rule_entry_object() {
    let d = one(r#"{"DB_PASS": "mypassword"}"#, Rule::EntryObject);
    assert_eq!(d.key.as_deref(), Some("DB_PASS"));
    assert!(d.message.ends_with("found a string"));
    assert!(d.hint.as_ref().unwrap().contains("\"DB_PASS\": {"));
    assert!(!d.to_string().contains("mypassword"));
    let d = one(r#"{"value": "x", "sensitive": false}"#.replace(", \"sensitive\": false", ""), Rule::EntryObject);
    assert!(d.hint.unwrap().contains("maps each KEY"));
    for (entry, kind) in [("1", "a number"), ("null", "null"), ("[1]", "an array"), ("true", "a boolean")] {
        let d = one(format!("{{\"A\": {entry}}}"), Rule::EntryObject);
        assert!(d.message.ends_with(kind), "{d}");
    }
}

#[test]
fn rule_duplicate_field() {
    let d = one(r#"{"A": {"value": "1", "value": "2"}}"#, Rule::DuplicateField);
    assert!(d.message.contains("`value` appears twice"));
    let d = one(r#"{"A": {"value": "1", "sensitive": true, "sensitive": false}}"#, Rule::DuplicateField);
    assert_eq!(d.column, 41);
    one(r#"{"A": {"value": "1", "x": 1, "x": 2}}"#, Rule::DuplicateField);
}

#[test]
fn rule_field_name_case() {
    let d = one(r#"{"A": {"value": "p", "Sensitive": true}}"#, Rule::FieldNameCase);
    assert_eq!(d.hint.as_deref(), Some("field names are lowercase: write `sensitive`"));
    // A mis-cased `value` is not also reported as missing.
    let d = one(r#"{"A": {"Value": "p"}}"#, Rule::FieldNameCase);
    assert_eq!(d.hint.as_deref(), Some("field names are lowercase: write `value`"));
}

#[test]
fn rule_value_missing() {
    let d = one("{\n  \"A\": {\"sensitive\": true}}", Rule::ValueMissing);
    assert_eq!((d.line, d.column, d.key.as_deref()), (2, 8, Some("A")));
    one(r#"{"A": {}}"#, Rule::ValueMissing);
}

#[test]
fn rule_value_type() {
    let d = one("{\"A\": {\"value\": null}}", Rule::ValueType);
    assert!(d.message.ends_with("found null"), "{d}");
    assert_eq!((d.line, d.column, d.key.as_deref()), (1, 17, Some("A")));
    let hint = d.hint.as_deref().unwrap();
    assert!(hint.starts_with("write \"\" for an empty value, or remove the entry"), "{hint}");
    assert!(hint.contains("`terraform output -json`") && hint.contains("leave null outputs out"), "{hint}");
    // The same with Terraform's fields around it.
    let d = one("{\n \"A\": {\"sensitive\": false, \"type\": \"string\",\n  \"value\": null}}", Rule::ValueType);
    assert_eq!((d.line, d.column), (3, 12));
}

#[test]
fn rule_value_content() {
    let d = one(r#"{"A": {"value": "a\u0000b"}}"#, Rule::ValueContent);
    assert!(d.message.contains("NUL"));
}

#[test]
fn rule_sensitive_type() {
    let d = one(r#"{"A": {"value": "p", "sensitive": "true"}}"#, Rule::SensitiveType);
    assert_eq!(d.hint.as_deref(), Some("write `true` or `false`, without quotes"));
    assert!(d.message.ends_with("found a string"));
    for v in ["1", "null", "[]", "{}", "\"maybe\""] {
        let d = one(format!("{{\"A\": {{\"value\": \"p\", \"sensitive\": {v}}}}}"), Rule::SensitiveType);
        assert_eq!(d.hint.as_deref(), Some("write `true` or `false`"));
    }
}

#[test]
fn rule_too_many_errors() {
    let mut src = String::from("{");
    for i in 0..300 {
        src.push_str(&format!("\"{i}\": {{\"value\": \"x\"}},"));
    }
    src.push_str("\"Z\": {\"value\": \"x\"}}");
    let errors = rejected(src);
    assert_eq!(errors.len(), MAX_ERRORS + 1);
    assert_eq!(errors.last().unwrap().rule, Rule::TooManyErrors);
}

#[test]
fn too_many_warnings_are_summarised() {
    let mut src = String::from("{\"A\": {\"value\": \"x\"");
    for i in 0..150 {
        src.push_str(&format!(", \"f{i}\": 1"));
    }
    src.push_str("}}");
    let o = ok(&src);
    assert_eq!(o.warnings.len(), MAX_WARNINGS + 1);
    assert!(o.warnings.last().unwrap().message.starts_with("50 more"));
}

#[test]
fn all_errors_are_collected() {
    let src = r#"{
  "my-key": {"value": "1"},
  "B": "plain",
  "C": {"sensitive": "yes"},
  "D": {"value": null},
  "E": {"value": "x", "extra": 1}
}"#;
    let errors = rejected(src);
    let rules: Vec<_> = errors.iter().map(|e| (e.line, e.rule)).collect();
    assert_eq!(
        rules,
        vec![
            (2, Rule::KeyPattern),
            (3, Rule::EntryObject),
            (4, Rule::SensitiveType),
            (4, Rule::ValueMissing),
            (5, Rule::ValueType),
        ]
    );
}

#[test]
fn errors_before_a_syntax_error_are_kept() {
    let errors = rejected("{\"a-b\": {\"value\": \"1\"},\n \"C\": {\"value\": \"2\",}}");
    let rules: Vec<_> = errors.iter().map(|e| e.rule).collect();
    assert_eq!(rules, vec![Rule::KeyPattern, Rule::Syntax]);
}

// ---- syntax errors and their hints ----

fn syntax(src: &str) -> Diagnostic {
    one(src, Rule::Syntax)
}

#[test]
fn python_false() {
    let src = "{\n  \"POSTGRES_DB_PASS\": { \"sensitive\": False, \"value\": \"mypassword\" }\n}";
    let d = syntax(src);
    assert_eq!((d.line, d.column, d.key.as_deref()), (2, 38, Some("POSTGRES_DB_PASS")));
    assert_eq!(
        d.to_string(),
        "line 2, column 38: key POSTGRES_DB_PASS: expected a JSON value, found `False` (rule: syntax). hint: `False` is not JSON: write `false`"
    );
    assert!(syntax(r#"{"A": {"value": "x", "sensitive": True}}"#).hint.unwrap().contains("write `true`"));
    assert!(syntax(r#"{"A": {"value": None}}"#).hint.unwrap().contains("`None` is not JSON"));
}

#[test]
fn unquoted_words_are_not_echoed() {
    let d = syntax(r#"{"A": {"value": hunter2}}"#);
    assert!(!d.to_string().contains("hunter2"));
    assert!(d.message.contains("unquoted word"));
    assert!(d.hint.unwrap().contains("double quotes"));
    let d = syntax(r#"{"A": {"value": trueish}}"#);
    assert!(!d.to_string().contains("trueish"));
}

#[test]
fn single_quotes() {
    let d = syntax(r#"{'A': {"value": "x"}}"#);
    assert!(d.hint.unwrap().contains("double quotes"));
    let d = syntax(r#"{"A": {"value": 'secret'}}"#);
    assert!(d.hint.as_ref().unwrap().contains("double quotes"));
    assert!(!d.to_string().contains("secret"));
}

#[test]
fn trailing_commas() {
    let d = syntax("{\"A\": {\"value\": \"x\",}}");
    assert_eq!(d.column, 20);
    assert_eq!(d.hint.as_deref(), Some("remove the `,` before `}`"));
    let d = syntax("{\"A\": {\"value\": \"x\"},\n}");
    assert_eq!((d.line, d.column), (1, 21));
    let d = syntax("{\"A\": {\"value\": \"x\", \"l\": [1,]}}");
    assert_eq!(d.hint.as_deref(), Some("remove the `,` before `]`"));
}

#[test]
fn missing_comma_and_colon() {
    let d = syntax("{\"A\": {\"value\": \"x\"}\n \"B\": {\"value\": \"y\"}}");
    assert!(d.hint.unwrap().contains("missing `,`"));
    let d = syntax("{\"A\" {\"value\": \"x\"}}");
    assert!(d.message.contains("`:`"));
    let d = syntax("{\"A\" = {\"value\": \"x\"}}");
    assert!(d.hint.unwrap().contains("use `:`"));
}

#[test]
fn unquoted_key() {
    let d = syntax("{A: {\"value\": \"x\"}}");
    assert!(d.hint.unwrap().contains("double quotes"));
}

#[test]
fn comments() {
    let d = syntax("{ // outputs\n \"A\": {\"value\": \"x\"}}");
    assert!(d.message.contains("comment"));
}

#[test]
fn unterminated() {
    let d = syntax("{\"A\": {\"value\": \"x\"}");
    assert!(d.message.contains("object opened at line 1, column 1 is not closed"), "{d}");
    let d = syntax("{\"A\": {\"value\": \"abc");
    assert!(d.message.contains("string that starts at line 1, column 17"), "{d}");
    let d = syntax("{\"A\": {\"value\": \"abc\n\"}}");
    assert!(d.message.contains("line break"), "{d}");
    let d = syntax("{");
    assert!(d.message.contains("end of file"), "{d}");
}

#[test]
fn strings_reject_raw_control_characters() {
    assert!(syntax("{\"A\": {\"value\": \"a\tb\"}}").hint.unwrap().contains("\\t"));
    syntax("{\"A\": {\"value\": \"a\u{1}b\"}}");
}

#[test]
fn bad_escapes() {
    syntax(r#"{"A": {"value": "C:\dir"}}"#);
    syntax(r#"{"A": {"value": "\u12"}}"#);
    syntax(r#"{"A": {"value": "\ud83d"}}"#);
    syntax(r#"{"A": {"value": "\ud83dx"}}"#);
    syntax(r#"{"A": {"value": "\ude00"}}"#);
    syntax(r#"{"A": {"value": "\ud83d\u0041"}}"#);
}

#[test]
fn bad_numbers() {
    assert!(syntax(r#"{"A": {"value": 0123}}"#).hint.unwrap().contains("string"));
    syntax(r#"{"A": {"value": 1.}}"#);
    syntax(r#"{"A": {"value": .5}}"#);
    syntax(r#"{"A": {"value": +1}}"#);
    syntax(r#"{"A": {"value": -}}"#);
    syntax(r#"{"A": {"value": 1e}}"#);
    syntax(r#"{"A": {"value": NaN}}"#);
}

#[test]
fn content_after_the_object() {
    let d = syntax("{\"A\": {\"value\": \"x\"}}\n{\"B\": {\"value\": \"y\"}}");
    assert!(d.hint.unwrap().contains("single object"));
    syntax("{} x");
}

#[test]
fn odd_characters_are_named_only_when_harmless() {
    let d = syntax("{\u{a0}\"A\": {\"value\": \"x\"}}");
    assert!(d.message.contains("non-breaking space"));
    let d = syntax("{\"A\": {\"value\": \u{201c}x\u{201d}}}");
    assert!(d.message.contains("curly quote"));
    let d = syntax("{\"A\": {\"value\": §}}");
    assert!(!d.to_string().contains('§'));
}

// ---- values never leak ----

const SECRET: &str = "S3CR3T_V4LU3";

#[test]
fn no_diagnostic_contains_a_value() {
    let cases = [
        format!(r#"{{"A": {{"value": "{SECRET}", "sensitive": "no"}}}}"#),
        format!(r#"{{"A": {{"value": "{SECRET}", "sensitive": False}}}}"#),
        format!(r#"{{"A": "{SECRET}"}}"#),
        format!(r#"{{"A": {{"value": "{SECRET}", "value": "{SECRET}"}}}}"#),
        format!(r#"{{"A": {{"value": "{SECRET}", "Sensitive": true}}}}"#),
        format!(r#"{{"A": {{"value": "{SECRET}"}}, "b-c": {{"value": "{SECRET}"}}}}"#),
        format!(r#"{{"A": {{"value": {SECRET}}}}}"#),
        format!(r#"{{"A": {{"value": "{SECRET}\q"}}}}"#),
        format!(r#"{{"A": {{"value": ["{SECRET}", {SECRET}]}}}}"#),
        format!(r#"{{"A": {{"value": {{"x": "{SECRET}", "y": "{SECRET}\q"}}}}}}"#),
        // A member name inside a value is part of the value.
        format!(r#"{{"A": {{"value": {{"{SECRET}": 1, "{SECRET}": 2}}}}}}"#),
        format!(r#"{{"A": {{"value": ["{SECRET}"], "sensitive": "yes"}}}}"#),
        format!(r#"{{"A": {{"value": {{"{SECRET}": "{SECRET}"}}, "Sensitive": true}}}}"#),
        format!(r#"{{"A": {{"value": "{SECRET}", "x": "{SECRET}"}}, "A": 1}}"#),
        format!("{{\"A\": {{\"value\": \"{SECRET}\n\"}}}}"),
        format!("[\"{SECRET}\"]"),
        format!("\"{SECRET}\""),
    ];
    for src in cases {
        let errors = rejected(&src);
        for e in &errors {
            let text = format!("{e} {e:?}");
            assert!(!text.contains(SECRET), "{src}\n{text}");
        }
        let all = Rejected { errors }.to_string();
        assert!(!all.contains(SECRET));
    }
    let o = ok(&format!(r#"{{"A": {{"value": "{SECRET}", "sensitive": true, "x": "{SECRET}"}}}}"#));
    assert!(!format!("{o:?}").contains(SECRET));
    assert!(format!("{:?}", o.entries[0]).contains(MASK));
}

#[test]
fn debug_masks_only_sensitive_values() {
    let o = Output { key: "K".into(), value: "v".into(), sensitive: false };
    assert_eq!(format!("{o:?}"), r#"Output { key: "K", value: "v", sensitive: false }"#);
    let o = Output { sensitive: true, ..o };
    assert_eq!(format!("{o:?}"), r#"Output { key: "K", value: "******", sensitive: true }"#);
}

// ---- formatting ----

#[test]
fn rejected_display() {
    let e = parse(br#"{"a-b": 1, "C": {}}"#).unwrap_err();
    assert_eq!(e.errors.len(), 3);
    let one_line = e.to_string();
    assert!(one_line.starts_with("output file rejected (3 errors): line 1, column 2: key \"a-b\""), "{one_line}");
    assert!(!one_line.contains('\n'));
    assert_eq!(format!("{e:#}").lines().count(), 4);
    let e = parse(b"[]").unwrap_err();
    assert!(e.to_string().starts_with("output file rejected (1 error): "));
}

#[test]
fn whole_file_diagnostics_have_no_position() {
    let d = whole_file(Rule::TooLarge, "big".into(), None);
    assert_eq!(d.to_string(), "big (rule: too-large)");
}

#[test]
fn rule_names_are_unique_kebab_case() {
    let mut names: Vec<_> = Rule::ALL.iter().map(|r| r.as_str()).collect();
    assert!(names.iter().all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')));
    names.sort();
    names.dedup();
    assert_eq!(names.len(), Rule::ALL.len());
}

#[test]
fn key_pattern_function() {
    for k in ["A", "_", "a_1", "_9", "ABC_def"] {
        assert!(is_valid_key(k), "{k}");
    }
    for k in ["", "1", "a-b", "a b", "é", "a.b"] {
        assert!(!is_valid_key(k), "{k}");
    }
}

#[test]
fn columns_count_characters() {
    let d = one("{\"A\": {\"value\": \"日本\", \"sensitive\": 1}}", Rule::SensitiveType);
    assert_eq!(d.column, 36);
}
