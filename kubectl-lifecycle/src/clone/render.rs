//! The report of `clone`: what was copied, what was not and why, the objects
//! the copy refers to and whether the target has them, the JOBIDs.

use lifecycle_contract::names;

use super::Cloned;
use crate::jobs;

pub fn render_report(src_name: &str, src_ns: &str, c: &Cloned, presence: &[Option<bool>], dry_run: bool) -> String {
    let to = c.job.metadata.namespace.as_deref().unwrap_or_default();
    let name = jobs::name(&c.job);
    let mut out = format!(
        "{} lifecycle job {src_name} (namespace {src_ns}) to namespace {to} as {name}\n",
        if dry_run { "Would clone (dry run, nothing created)" } else { "Cloned" }
    );
    out.push_str("\nCopied:\n");
    for i in &c.copied {
        out.push_str(&format!("  {}: {}\n", i.what, i.why));
    }
    out.push_str("\nNot copied:\n");
    for i in &c.not_copied {
        out.push_str(&format!("  {}: {}\n", i.what, i.why));
    }
    if !c.references.is_empty() {
        out.push_str(&format!(
            "\nReferenced, NOT copied (Secrets, ConfigMaps and ServiceAccounts stay per environment): create them in {to} before the job runs\n"
        ));
        for (r, p) in c.references.iter().zip(presence.iter().copied().chain(std::iter::repeat(None))) {
            let state = match p {
                Some(true) => format!("exists in {to}"),
                Some(false) if r.optional => format!("missing in {to} (optional)"),
                Some(false) => format!("MISSING in {to}"),
                None => format!("cannot tell whether it exists in {to}"),
            };
            out.push_str(&format!("  {} {} ({}): {state}\n", r.kind, r.name, r.used_by.join("; ")));
        }
    }
    out.push_str(&format!(
        "\nJOBID in {to}: {} (variables {}){}\n",
        c.job_id_copy,
        names::variable_name(&c.job_id_copy, "<KEY>"),
        if c.job_id_copy == c.job_id_source { String::new() } else { format!("; in {src_ns}: {}", c.job_id_source) }
    ));
    out
}
