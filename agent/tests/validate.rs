//! `lifecycle-agent validate` on the built binary: exit codes and output.

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_lifecycle-agent");

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lifecycle-agent-validate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> (i32, String, String) {
    let Output { status, stdout, stderr } = Command::new(BIN).args(args).output().unwrap();
    (status.code().unwrap(), String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
}

fn file(name: &str, content: &str) -> String {
    let f = dir(name).join("qovery-output.json");
    std::fs::write(&f, content).unwrap();
    f.display().to_string()
}

const SEED: &str = r#"{ "POSTGRES_DB_HOST": { "sensitive": false, "value": "zf138d9c8-postgresql" },
  "POSTGRES_DB_PASS": { "sensitive": true,  "value": "mypassword" },
  "POSTGRES_DB_PORT": { "value": 5432, "comment": "x" } }"#;

#[test]
fn valid_file_masks_sensitive_values() {
    let f = file("valid", SEED);
    let (code, out, err) = run(&["validate", &f]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("valid: 3 outputs (1 sensitive)"), "{out}");
    assert!(out.contains("  POSTGRES_DB_HOST = \"zf138d9c8-postgresql\"\n"), "{out}");
    assert!(out.contains("  POSTGRES_DB_PASS = ****** (sensitive)\n"), "{out}");
    assert!(out.contains("  POSTGRES_DB_PORT = \"5432\"\n"), "{out}");
    assert!(out.contains("warning: line 3, column 40: key POSTGRES_DB_PORT: unknown field `comment` is ignored"), "{out}");
    assert!(!out.contains("mypassword") && !err.contains("mypassword"));
}

#[test]
fn job_id_prints_full_names_and_aliases() {
    let f = file("jobid", SEED);
    let (code, out, _) = run(&["validate", "--job-id", "my-db", &f]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("note: job id \"my-db\" is used as MY_DB"), "{out}");
    assert!(out.contains("  QOVERY_OUTPUT_JOB_MY_DB_POSTGRES_DB_PASS = ****** (sensitive)\n"), "{out}");
    assert!(out.contains("  POSTGRES_DB_PASS = ****** (sensitive) (alias)\n"), "{out}");
    assert!(out.contains("  QOVERY_OUTPUT_JOB_MY_DB_POSTGRES_DB_HOST = \"zf138d9c8-postgresql\"\n"), "{out}");
    assert!(!out.contains("mypassword"));
}

#[test]
fn invalid_file_lists_every_error_without_values() {
    let f = file(
        "invalid",
        "{\n \"a-b\": {\"value\": \"mypassword\"},\n \"C\": \"mypassword\",\n \"D\": {\"value\": \"mypassword\", \"sensitive\": False}\n}",
    );
    let (code, out, _) = run(&["validate", &f]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("invalid: 3 errors"), "{out}");
    assert!(out.contains("error: line 2, column 2: key \"a-b\""), "{out}");
    assert!(out.contains("error: line 3, column 7: key C:"), "{out}");
    assert!(out.contains("hint: `False` is not JSON: write `false`"), "{out}");
    assert!(!out.contains("mypassword"), "{out}");
}

#[test]
fn empty_file_is_valid() {
    let f = file("empty", "\n");
    let (code, out, _) = run(&["validate", &f]);
    assert_eq!(code, 0);
    assert!(out.contains("no outputs"), "{out}");
}

#[test]
fn unsafe_or_missing_files_are_invalid() {
    let d = dir("unsafe");
    std::os::unix::fs::symlink("/etc/hostname", d.join("link.json")).unwrap();
    let (code, out, _) = run(&["validate", &d.join("link.json").display().to_string()]);
    assert_eq!(code, 1);
    assert!(out.contains("symbolic link"), "{out}");
    let (code, out, _) = run(&["validate", &d.display().to_string()]);
    assert_eq!(code, 1);
    assert!(out.contains("is a directory"), "{out}");
    let (code, out, _) = run(&["validate", &d.join("missing.json").display().to_string()]);
    assert_eq!(code, 1);
    assert!(out.contains("no such file"), "{out}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [&["validate"][..], &["validate", "a", "b"], &["validate", "--bogus", "a"], &["bogus"]] {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty());
        assert!(err.contains("usage:"), "{err}");
    }
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("validate"));
}

#[test]
fn reserved_names_are_shown_without_an_alias() {
    let f = file("reserved", r#"{"PATH": {"value": "/x"}, "DB_HOST": {"value": "db"}}"#);
    let (code, out, _) = run(&["validate", "--job-id", "seed", &f]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("  QOVERY_OUTPUT_JOB_SEED_PATH = \"/x\"\n"), "{out}");
    assert!(!out.contains("  PATH = \"/x\" (alias)"), "{out}");
    assert!(out.contains("  DB_HOST = \"db\" (alias)"), "{out}");
    assert!(out.contains("warning: no alias for PATH: reserved names"), "{out}");
}

/// A real `tofu output -json` file (the contract's test data, which says how
/// it was made): a `type` in every entry, a list, maps, and two sensitive
/// outputs, one of them a list.
const TOFU_OUTPUT: &str = include_str!("../../contract/src/output/testdata/tofu-output.json");

#[test]
fn a_tofu_output_file_shows_each_variable_and_no_warning() {
    let f = file("tofu", TOFU_OUTPUT);
    let (code, out, err) = run(&["validate", "--job-id", "infra", &f]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("valid: 10 outputs (2 sensitive)"), "{out}");
    // Values are shown as JSON strings: a list or a map is its compact JSON text, quoted.
    for line in [
        r#"  QOVERY_OUTPUT_JOB_INFRA_DB_PASSWORD = ****** (sensitive)"#,
        r#"  DB_PASSWORD = ****** (sensitive) (alias)"#,
        r#"  DB_PORT = "5432" (alias)"#,
        r#"  ENDPOINT = "db.pr-42.example.internal" (alias)"#,
        r#"  EMPTY_LIST = "[]" (alias)"#,
        r#"  QOVERY_OUTPUT_JOB_INFRA_REPLICAS = ****** (sensitive)"#,
        r#"  SUBNETS = "[\"subnet-a\",\"subnet-b\"]" (alias)"#,
        r#"  QOVERY_OUTPUT_JOB_INFRA_TAGS = "{\"env\":\"pr-42\",\"team\":\"web\"}""#,
        r#"  SETTINGS = "{\"enabled\":true,\"n\":1.5,\"zones\":[\"a\",\"b\"]}" (alias)"#,
    ] {
        assert!(out.contains(&format!("{line}\n")), "{line}\n{out}");
    }
    assert!(!out.contains("warning"), "{out}");
    for secret in ["hunter2", "replica-a"] {
        assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    }
}

#[test]
fn a_null_value_is_refused_with_a_hint() {
    let f = file("null", "{\n  \"db_host\": {\"sensitive\": false, \"type\": \"string\", \"value\": null}\n}");
    let (code, out, _) = run(&["validate", &f]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error: line 2, column 62: key db_host: `value` must be"), "{out}");
    assert!(out.contains("(rule: value-type). hint: write \"\" for an empty value"), "{out}");
    assert!(out.contains("leave null outputs out"), "{out}");
}
