//! `env vars NS`: every variable a pod of the environment gets from
//! lifecycle-jobs, with its scope (builtin, project, environment, output) and
//! the object it comes from; the later source wins, as in the pod. A run
//! pod's own built-ins (event, deploy-id, JOBID) are in its `env`, not in any
//! object: they are not listed here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};
use lifecycle_contract::names::{self, INJECTED_SOURCES, Scope, SourceKind};
use serde::Serialize;

use crate::cli::{OutputFormat, VarsArgs};
use crate::client::{Ctx, explain, get_environment, is_forbidden};
use crate::table::{Table, truncate};
use crate::variable::{Variable, mask};

/// One injected object as read from the cluster.
#[derive(Debug, Clone, Default)]
pub struct Read {
    /// Absent object: `None`.
    pub data: Option<BTreeMap<String, String>>,
    /// For the project mirror: key → `<namespace>/<name>` of its source.
    pub origins: BTreeMap<String, String>,
    /// The caller may not read it.
    pub forbidden: bool,
}

/// Where a variable a pod gets comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Injected {
    /// `builtin`, `project`, `environment` or `output`.
    pub scope: &'static str,
    /// `ConfigMap/<name>` or `Secret/<name>` in the environment.
    pub object: String,
    /// For a project variable: the source object it was mirrored from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The sources it overrides (earlier in the order), as `scope ConfigMap/<name>`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
}

/// One variable as a pod gets it.
pub type InjectedVariable = Variable<Injected>;

fn object(kind: SourceKind, name: &str) -> String {
    format!("{kind:?}/{name}")
}

/// Pure: the variables in effect, from the injected objects in injection
/// order (`reads[i]` is [`INJECTED_SOURCES`]`[i]`). A later source wins a
/// name, so the result says which one a pod sees and which it hides.
pub fn effective(reads: &[Read; INJECTED_SOURCES.len()]) -> Vec<InjectedVariable> {
    let mut out: BTreeMap<String, InjectedVariable> = BTreeMap::new();
    for (&(scope, kind, name), read) in INJECTED_SOURCES.iter().zip(reads) {
        for (key, value) in read.data.iter().flatten() {
            let mut overrides = Vec::new();
            if let Some(previous) = out.remove(key) {
                overrides = previous.origin.overrides;
                overrides.push(format!("{} {}", previous.origin.scope, previous.origin.object));
            }
            let origin = Injected {
                scope: scope.as_str(),
                object: object(kind, name),
                from: (scope == Scope::Project).then(|| read.origins.get(key).cloned()).flatten(),
                overrides,
            };
            out.insert(key.clone(), Variable::new(key, value, kind == SourceKind::Secret, origin));
        }
    }
    out.into_values().collect()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Report {
    pub(crate) namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) project: Option<String>,
    pub(crate) sensitive_shown: bool,
    /// Objects that do not exist, or that the caller may not read.
    pub(crate) missing: Vec<String>,
    pub(crate) unreadable: Vec<String>,
    pub(crate) variables: Vec<InjectedVariable>,
}

async fn read(client: &Client, namespace: &str, kind: SourceKind, name: &str) -> anyhow::Result<Read> {
    let (got, annotations) = match kind {
        SourceKind::ConfigMap => match Api::<ConfigMap>::namespaced(client.clone(), namespace).get_opt(name).await {
            Ok(o) => {
                let ann = o.as_ref().and_then(|o| o.metadata.annotations.clone());
                (Ok(o.map(|o| o.data.unwrap_or_default())), ann)
            }
            Err(e) => (Err(e), None),
        },
        SourceKind::Secret => match Api::<Secret>::namespaced(client.clone(), namespace).get_opt(name).await {
            Ok(o) => {
                let ann = o.as_ref().and_then(|o| o.metadata.annotations.clone());
                let data = o.map(|s| {
                    s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())).collect()
                });
                (Ok(data), ann)
            }
            Err(e) => (Err(e), None),
        },
    };
    let origins = annotations
        .and_then(|a| a.get(names::ANNOTATION_VARIABLE_SOURCES).and_then(|s| serde_json::from_str(s).ok()))
        .unwrap_or_default();
    match got {
        Ok(data) => Ok(Read { data, origins, forbidden: false }),
        Err(e) if is_forbidden(&e) => Ok(Read { forbidden: true, ..Default::default() }),
        Err(e) => Err(explain(e, format_args!("get {} {name} in namespace {namespace}", format!("{kind:?}").to_lowercase()))),
    }
}

pub async fn run(ctx: &Ctx, args: &VarsArgs) -> anyhow::Result<()> {
    let namespace = args.env.clone().unwrap_or_else(|| ctx.namespace.clone());
    let (report, notes) = read_report(&ctx.client, &namespace, args.show_sensitive).await?;
    for n in &notes {
        crate::errln!("note: {n}");
    }
    crate::out!("{}", render(&report, args.output)?);
    Ok(())
}

/// The variables a pod of environment `namespace` gets (masked unless `show_sensitive`), and
/// notes for people on what could not be listed.
pub(crate) async fn read_report(client: &Client, namespace: &str, show_sensitive: bool) -> anyhow::Result<(Report, Vec<String>)> {
    let ns = get_environment(client, namespace).await?;
    let project = ns.metadata.labels.as_ref().and_then(|l| l.get(names::LABEL_PROJECT)).filter(|p| !p.is_empty()).cloned();
    let mut reads: [Read; INJECTED_SOURCES.len()] = Default::default();
    let mut missing = Vec::new();
    let mut unreadable = Vec::new();
    for (slot, &(_, kind, name)) in reads.iter_mut().zip(INJECTED_SOURCES.iter()) {
        *slot = read(client, namespace, kind, name).await?;
        if slot.forbidden {
            unreadable.push(object(kind, name));
        } else if slot.data.is_none() {
            missing.push(object(kind, name));
        }
    }
    let mut vars = effective(&reads);
    if !show_sensitive {
        mask(&mut vars);
    }
    let mut notes: Vec<String> = unreadable
        .iter()
        .map(|o| format!("you may not read {o} in namespace {namespace}: its variables are not listed"))
        .collect();
    if project.is_none() {
        notes.push(format!("namespace {namespace} has no {} label: it gets no project variables", names::LABEL_PROJECT));
    }
    let report = Report {
        namespace: namespace.to_string(),
        project,
        sensitive_shown: show_sensitive,
        missing,
        unreadable,
        variables: vars,
    };
    Ok((report, notes))
}

fn render(report: &Report, format: Option<OutputFormat>) -> anyhow::Result<String> {
    crate::output::report(report, format, |wide| text(report, wide))
}

fn text(report: &Report, wide: bool) -> String {
    if report.variables.is_empty() {
        return format!(
            "No variables in environment {}: none of {} exists or has data.\n",
            report.namespace,
            INJECTED_SOURCES.iter().map(|&(_, k, n)| object(k, n)).collect::<Vec<_>>().join(", ")
        );
    }
    let mut table = if wide {
        Table::new(&["NAME", "VALUE", "SCOPE", "SOURCE", "FROM", "OVERRIDES"])
    } else {
        Table::new(&["NAME", "VALUE", "SCOPE", "SOURCE"])
    };
    for v in &report.variables {
        let value = if wide { v.value.clone() } else { truncate(&v.value, 50) };
        // The project mirror's own source object says more than the mirror's name.
        let o = &v.origin;
        let source = match (&o.from, wide) {
            (Some(from), false) => format!("{} ({from})", o.object),
            _ => o.object.clone(),
        };
        if wide {
            let from = o.from.clone().unwrap_or_else(|| "-".into());
            let overrides = if o.overrides.is_empty() { "-".into() } else { o.overrides.join(", ") };
            table.row([v.name.clone(), value, o.scope.into(), source, from, overrides]);
        } else {
            table.row([v.name.clone(), value, o.scope.into(), source]);
        }
    }
    let mut out = table.render();
    out.push_str(
        "\nLater sources win: builtin < project < environment < output; a workload's own env and envFrom win over all.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variable::MASK;

    fn data(kv: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn reads() -> [Read; 7] {
        [
            Read {
                data: data(&[
                    ("QOVERY_ENVIRONMENT_NAME", "pr-1"),
                    ("QOVERY_KUBERNETES_NAMESPACE_NAME", "shop-1"),
                    ("REGION", "none"),
                ]),
                ..Default::default()
            },
            Read {
                data: data(&[("REGION", "eu"), ("DB_HOST", "project-db")]),
                origins: [("REGION".to_string(), "lifecycle-jobs-system/shop".to_string())].into(),
                ..Default::default()
            },
            Read { data: data(&[("DB_PASS", "p-secret")]), ..Default::default() },
            Read { data: data(&[("DB_HOST", "env-db")]), ..Default::default() },
            Read::default(),
            Read { data: data(&[("DB_HOST", "job-db")]), ..Default::default() },
            Read { data: data(&[("TOKEN", "t0k")]), ..Default::default() },
        ]
    }

    #[test]
    fn later_scope_wins_and_records_what_it_overrides() {
        let vars = effective(&reads());
        let by: BTreeMap<_, _> = vars.iter().map(|v| (v.name.as_str(), v)).collect();
        let host = by["DB_HOST"];
        assert_eq!(host.value, "job-db");
        assert_eq!(host.origin.scope, "output");
        assert_eq!(host.origin.object, "ConfigMap/lifecycle-outputs");
        assert_eq!(host.origin.overrides, ["project ConfigMap/lifecycle-project", "environment ConfigMap/lifecycle-environment"]);
        assert_eq!(by["REGION"].origin.from.as_deref(), Some("lifecycle-jobs-system/shop"));
        assert_eq!(by["REGION"].origin.scope, "project");
        assert_eq!(
            by["REGION"].origin.overrides,
            ["builtin ConfigMap/lifecycle-builtins"],
            "a project variable overrides a built-in"
        );
        let ns = by["QOVERY_KUBERNETES_NAMESPACE_NAME"];
        assert_eq!(
            (ns.origin.scope, ns.origin.object.as_str(), ns.value.as_str()),
            ("builtin", "ConfigMap/lifecycle-builtins", "shop-1")
        );
        assert!(ns.origin.from.is_none() && !ns.sensitive);
        assert!(by["DB_PASS"].sensitive);
        assert_eq!(by["DB_PASS"].origin.object, "Secret/lifecycle-project");
        assert!(by["TOKEN"].sensitive);
        assert_eq!(vars.len(), 6);
    }

    #[test]
    fn sensitive_values_are_masked_with_the_plugins_mask() {
        let mut vars = effective(&reads());
        mask(&mut vars);
        let text = render(
            &Report {
                namespace: "shop-1".into(),
                project: Some("shop".into()),
                sensitive_shown: false,
                missing: vec![],
                unreadable: vec![],
                variables: vars,
            },
            None,
        )
        .unwrap();
        assert!(!text.contains("p-secret") && !text.contains("t0k"), "{text}");
        assert!(text.contains(MASK));
        assert!(text.contains("eu"));
        assert!(text.contains("ConfigMap/lifecycle-project (lifecycle-jobs-system/shop)"), "{text}");
    }

    #[test]
    fn nothing_to_show() {
        let text = render(
            &Report {
                namespace: "e".into(),
                project: None,
                sensitive_shown: false,
                missing: vec![],
                unreadable: vec![],
                variables: effective(&Default::default()),
            },
            None,
        )
        .unwrap();
        assert!(text.starts_with("No variables in environment e"), "{text}");
    }
}
