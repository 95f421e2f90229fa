//! `lifecycle-agent validate [--job-id ID] FILE`: checks FILE with the same
//! safe-open rules as the sidecar and the same `contract::output::parse` as
//! the sidecar and the server, and prints what would be published.
//!
//! Exit codes: 0 valid (including an empty file: no outputs), 1 invalid,
//! unsafe to read (link, FIFO, directory, too large...) or missing, 2 usage
//! error (in main). Sensitive values are masked; other values are printed as
//! JSON strings so that spaces and line breaks show: what the variable holds,
//! so a list or a map shows as its compact JSON text, quoted
//! (`SUBNETS = "[\"a\",\"b\"]"`).

use std::fmt::Write as _;
use std::path::Path;

use lifecycle_contract::JobId;
use lifecycle_contract::names;
use lifecycle_contract::output::{self, MASK};
use lifecycle_contract::reserved::{is_reserved_alias, reserved_aliases_doc};

pub fn validate(file: &str, job_id: Option<&str>) -> i32 {
    let (code, text) = check(Path::new(file), job_id);
    print!("{text}");
    code
}

/// The exit code and the report.
pub fn check(path: &Path, job_id: Option<&str>) -> (i32, String) {
    let shown = path.display();
    let bytes = match crate::safe_file::read(path) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return (1, format!("{shown}: no such file (the agent would publish no outputs)\n"));
        }
        Err(e) => return (1, format!("{shown}: invalid: {e}\n")),
    };
    let mut out = String::new();
    let job = job_id.map(|j| JobId::derive(Some(j), j));
    match output::parse(&bytes) {
        Ok(o) if o.empty_file => {
            let _ = writeln!(out, "{shown}: valid, empty: no outputs (the job's earlier outputs stay)");
            (0, out)
        }
        Ok(o) => {
            let n = o.entries.len();
            let _ =
                writeln!(out, "{shown}: valid: {n} output{} ({} sensitive)", if n == 1 { "" } else { "s" }, o.sensitive_count());
            if let (Some(j), Some(given)) = (&job, job_id)
                && j.as_str() != given
            {
                let _ = writeln!(out, "note: job id {given:?} is used as {j}");
            }
            for e in &o.entries {
                let shown_value =
                    if e.sensitive { format!("{MASK} (sensitive)") } else { serde_json::to_string(&e.value).unwrap_or_default() };
                let reserved = is_reserved_alias(&e.key);
                match &job {
                    Some(j) => {
                        let _ = writeln!(out, "  {} = {shown_value}", names::variable_name(j, &e.key));
                        if !reserved {
                            let _ = writeln!(out, "  {} = {shown_value} (alias)", e.key);
                        }
                    }
                    None => {
                        let _ = writeln!(out, "  {} = {shown_value}", e.key);
                    }
                }
            }
            for w in &o.warnings {
                let _ = writeln!(out, "warning: {w}");
            }
            let reserved: Vec<&str> = o.entries.iter().map(|e| e.key.as_str()).filter(|k| is_reserved_alias(k)).collect();
            if !reserved.is_empty() {
                let _ = writeln!(
                    out,
                    "warning: no alias for {}: reserved names (system, loader and runtime variables); workloads get only \
                     QOVERY_OUTPUT_JOB_<JOBID>_<KEY> for them. Reserved: {}",
                    reserved.join(", "),
                    reserved_aliases_doc()
                );
            }
            (0, out)
        }
        Err(rejected) => {
            let n = rejected.errors.len();
            let _ =
                writeln!(out, "{shown}: invalid: {n} error{}; nothing of it would be published", if n == 1 { "" } else { "s" });
            for e in &rejected.errors {
                let _ = writeln!(out, "error: {e}");
            }
            (1, out)
        }
    }
}
