//! `outputs JOB|NS`: the variables a job published, or all of an environment.
//! [`run`] reads the Job or environment, its Jobs, ConfigMap and Secret
//! ([`Gathered`]); [`decide`] sorts the variables into jobs and masks them,
//! pure ([`classify`], [`for_job`]); [`render`] prints the report.

use std::collections::BTreeMap;

use anyhow::anyhow;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use lifecycle_contract::{JobId, names};
use serde::Serialize;

use crate::cli::{OutputFormat, OutputsArgs};
use crate::client::{Ctx, KubeResultExt, is_forbidden, not_an_environment};
use crate::environment::is_environment;
use crate::jobs;
use crate::table::{Table, truncate};
use crate::variable::{Variable, mask};

/// Where a variable of `lifecycle-outputs` comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// The JOBID that published it (for an alias: the job whose full variable has the same value).
    pub job_id: Option<String>,
    /// For an alias `<KEY>`: the full variable `QOVERY_OUTPUT_JOB_<JOBID>_<KEY>` it mirrors.
    pub alias_of: Option<String>,
    /// `ConfigMap` or `Secret`.
    pub source: &'static str,
}

/// One variable of `lifecycle-outputs`.
pub type OutputVariable = Variable<Published>;

/// Sorts out the keys of the ConfigMap (non-sensitive) and the Secret (sensitive) into variables
/// with their job. A full name belongs to the longest known JOBID it starts with; an alias belongs
/// to the job whose full variable of the same key has the same value (the later publish wins
/// an alias, so that is the job it holds the value of). Values are not masked here.
pub fn classify(
    config_map: &BTreeMap<String, String>,
    secret: &BTreeMap<String, String>,
    job_ids: &[JobId],
) -> Vec<OutputVariable> {
    struct Full<'a> {
        job_id: &'a str,
        key: &'a str,
        name: &'a str,
        value: &'a str,
        sensitive: bool,
    }
    let entries: Vec<(&str, &str, bool)> = config_map
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str(), false))
        .chain(secret.iter().map(|(k, v)| (k.as_str(), v.as_str(), true)))
        .collect();
    let fulls: Vec<Full> = entries
        .iter()
        .filter_map(|&(name, value, sensitive)| {
            let rest = name.strip_prefix(names::VARIABLE_PREFIX)?;
            let job_id = job_ids
                .iter()
                .map(JobId::as_str)
                .filter(|id| rest.len() > id.len() + 1 && rest.starts_with(id) && rest.as_bytes()[id.len()] == b'_')
                .max_by_key(|id| id.len())?;
            Some(Full { job_id, key: &rest[job_id.len() + 1..], name, value, sensitive })
        })
        .collect();
    let mut out = Vec::new();
    for (name, value, sensitive) in &entries {
        let source = if *sensitive { "Secret" } else { "ConfigMap" };
        if let Some(full) = fulls.iter().find(|f| f.name == *name && f.sensitive == *sensitive) {
            let origin = Published { job_id: Some(full.job_id.to_string()), alias_of: None, source };
            out.push(Variable::new(*name, *value, *sensitive, origin));
            continue;
        }
        let owner =
            fulls.iter().filter(|f| f.key == *name && f.value == *value && f.sensitive == *sensitive).min_by_key(|f| f.job_id);
        let origin =
            Published { job_id: owner.map(|f| f.job_id.to_string()), alias_of: owner.map(|f| f.name.to_string()), source };
        out.push(Variable::new(*name, *value, *sensitive, origin));
    }
    // Grouped by job (unknown last); in a job, each full variable followed by its alias.
    let sort_key = |v: &OutputVariable| {
        let key = match (&v.origin.alias_of, &v.origin.job_id) {
            (Some(_), _) => v.name.clone(),
            (None, Some(id)) => v.name[names::VARIABLE_PREFIX.len() + id.len() + 1..].to_string(),
            (None, None) => v.name.clone(),
        };
        (v.origin.job_id.is_none(), v.origin.job_id.clone(), key, v.origin.alias_of.is_some(), v.sensitive)
    };
    out.sort_by_key(sort_key);
    out
}

/// The variables of one job: its full variables, and the aliases of their keys (whoever holds them now).
pub fn for_job(vars: Vec<OutputVariable>, id: &JobId) -> Vec<OutputVariable> {
    let prefix = names::variable_name(id, "");
    let own = |v: &OutputVariable| v.origin.alias_of.is_none() && v.origin.job_id.as_deref() == Some(id.as_str());
    let keys: Vec<String> = vars.iter().filter(|v| own(v)).map(|v| v.name[prefix.len()..].to_string()).collect();
    vars.into_iter().filter(|v| own(v) || (!v.name.starts_with(names::VARIABLE_PREFIX) && keys.contains(&v.name))).collect()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Report {
    pub(crate) namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) job: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) job_id: Option<String>,
    /// Whether the Secret (sensitive variables) could be read at all.
    pub(crate) sensitive_readable: bool,
    /// Whether sensitive values are shown unmasked.
    pub(crate) sensitive_shown: bool,
    pub(crate) variables: Vec<OutputVariable>,
}

/// What `outputs` read from the cluster.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    /// The environment the variables are read from.
    pub(crate) namespace: String,
    /// The Job asked for, when the target is a Job (else the whole environment).
    pub(crate) job: Option<Job>,
    /// The environment's Jobs (none when they may not be listed): who publishes under which JOBID.
    pub(crate) jobs: Vec<Job>,
    pub(crate) config_map: BTreeMap<String, String>,
    /// `None` when the Secret may not be read.
    pub(crate) secret: Option<BTreeMap<String, String>>,
    /// The caller may get the Secret (asked only with `--show-sensitive`).
    pub(crate) may_show: bool,
}

pub async fn run(ctx: &Ctx, args: &OutputsArgs) -> anyhow::Result<()> {
    let (namespace, job) = target(ctx, &args.target).await?;
    let gathered = gather(&ctx.client, namespace, job, args.show_sensitive).await?;
    let (report, notes) = decide(&gathered, args.show_sensitive);
    for n in &notes {
        crate::errln!("note: {n}");
    }
    crate::out!("{}", render(&report, args.output)?);
    Ok(())
}

/// Reads what [`decide`] needs: the environment's Jobs, ConfigMap and Secret; `job`: the Job asked
/// for, if any; whether the caller may see sensitive values is asked only when they want to.
pub(crate) async fn gather(
    client: &Client,
    namespace: String,
    job: Option<Job>,
    show_sensitive: bool,
) -> anyhow::Result<Gathered> {
    let jobs = match Api::<Job>::namespaced(client.clone(), &namespace).list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) if is_forbidden(&e) => Vec::new(),
        Err(e) => return Err(crate::client::explain(e, format_args!("list jobs in namespace {namespace}"))),
    };
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .get_opt(names::OUTPUTS_OBJECT)
        .await
        .doing(format_args!("get configmap {} in namespace {namespace}", names::OUTPUTS_OBJECT))?
        .and_then(|c| c.data)
        .unwrap_or_default();
    let may_show = show_sensitive && may_read_secret(client, &namespace).await?;
    let secret = match Api::<Secret>::namespaced(client.clone(), &namespace).get_opt(names::OUTPUTS_OBJECT).await {
        Ok(s) => Some(
            s.and_then(|s| s.data)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect(),
        ),
        Err(e) if is_forbidden(&e) => None,
        Err(e) => {
            return Err(crate::client::explain(e, format_args!("get secret {} in namespace {namespace}", names::OUTPUTS_OBJECT)));
        }
    };
    Ok(Gathered { namespace, job, jobs, config_map, secret, may_show })
}

/// The target: a Job of that name in the current namespace (its environment's
/// variables, then), else the environment of that name.
async fn target(ctx: &Ctx, target: &str) -> anyhow::Result<(String, Option<Job>)> {
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    // Not being allowed to look for the Job is "no such Job".
    match jobs_api.get_opt(target).await {
        Ok(Some(job)) => return Ok((ctx.namespace.clone(), Some(job))),
        Ok(None) => {}
        Err(e) if is_forbidden(&e) => {}
        Err(e) => return Err(crate::client::explain(e, format_args!("get job {target} in namespace {}", ctx.namespace))),
    }
    let ns = Api::<Namespace>::all(ctx.client.clone()).get_opt(target).await.doing(format_args!("get namespace {target}"))?;
    match ns {
        Some(ns) if is_environment(&ns) => Ok((target.to_string(), None)),
        Some(_) => Err(not_an_environment(target)),
        None => Err(anyhow!(
            "no job {target} in namespace {ns} and no namespace {target}\n  hint: for a job, give its namespace with -n (`kubectl lifecycle outputs {target} -n NAMESPACE`); for an environment, give the namespace's name; `kubectl lifecycle env list` lists them",
            ns = ctx.namespace
        )),
    }
}

/// The report of `outputs` from what was read, and the notes for people: the
/// variables sorted into jobs (only the Job's when one is asked for), masked
/// unless `--show-sensitive` and the caller may read the Secret.
pub(crate) fn decide(g: &Gathered, show_sensitive: bool) -> (Report, Vec<String>) {
    let namespace = &g.namespace;
    let mut job_ids = jobs::held_job_ids(&g.jobs);
    let mut notes = Vec::new();
    // The JOBID of the job asked for: the one admission recorded (a run's is its template's).
    let job_id = g.job.as_ref().map(|job| {
        if let Some(template) = jobs::run_of(job) {
            notes.push(format!("{} is a run of lifecycle job {template}: it publishes as {template}", jobs::name(job)));
        }
        if !jobs::captures(job) {
            notes.push(format!(
                "job {} opted out of output capture ({}: \"false\"): it publishes nothing",
                jobs::name(job),
                names::ANNOTATION_CAPTURE_OUTPUT
            ));
        }
        let id = jobs::job_id(job);
        if !job_ids.contains(&id) {
            job_ids.push(id.clone());
        }
        id
    });
    let sensitive_readable = g.secret.is_some();
    if !sensitive_readable {
        notes.push(format!(
            "sensitive variables are not listed: you may not read Secret {} in namespace {namespace}",
            names::OUTPUTS_OBJECT
        ));
    } else if show_sensitive && !g.may_show {
        notes.push(format!(
            "you may not get secrets/{} in namespace {namespace}: sensitive values stay masked",
            names::OUTPUTS_OBJECT
        ));
    }
    let mut vars = classify(&g.config_map, g.secret.as_ref().unwrap_or(&BTreeMap::new()), &job_ids);
    if let Some(id) = &job_id {
        vars = for_job(vars, id);
    }
    let shown = show_sensitive && g.may_show && sensitive_readable;
    if !shown {
        mask(&mut vars);
    }
    let report = Report {
        namespace: namespace.clone(),
        job: g.job.as_ref().map(|j| jobs::name(j).to_string()),
        job_id: job_id.as_ref().map(ToString::to_string),
        sensitive_readable,
        sensitive_shown: shown,
        variables: vars,
    };
    (report, notes)
}

fn render(report: &Report, format: Option<OutputFormat>) -> anyhow::Result<String> {
    crate::output::report(report, format, |wide| text(report, wide))
}

fn text(report: &Report, wide: bool) -> String {
    let mut out = String::new();
    if let (Some(job), Some(id)) = (&report.job, &report.job_id) {
        out.push_str(&format!(
            "Job {job} in namespace {}: JOBID {id}, variables {}<KEY> and their <KEY> aliases\n\n",
            report.namespace,
            names::variable_name(&JobId::parse(id).unwrap_or_else(|| JobId::derive(None, id)), "")
        ));
    }
    if report.variables.is_empty() {
        match &report.job {
            Some(job) => out.push_str(&format!(
                "No variables: job {job} has published no outputs yet.\n  hint: its logs tell why (`kubectl lifecycle logs {job} -n {}`); a job publishes by writing {}\n",
                report.namespace,
                names::OUTPUT_FILE
            )),
            None => out.push_str(&format!(
                "No variables in environment {}: no job has published outputs yet.\n",
                report.namespace
            )),
        }
        return out;
    }
    let mut table = if wide {
        Table::new(&["NAME", "VALUE", "SENSITIVE", "JOB", "ALIAS-OF", "SOURCE"])
    } else {
        Table::new(&["NAME", "VALUE", "SENSITIVE", "JOB"])
    };
    for v in &report.variables {
        let value = if wide { v.value.clone() } else { truncate(&v.value, 60) };
        let sensitive = if v.sensitive { "yes" } else { "no" };
        let job = v.origin.job_id.clone().unwrap_or_else(|| "-".into());
        if wide {
            let alias_of = v.origin.alias_of.clone().unwrap_or_else(|| "-".into());
            table.row([v.name.clone(), value, sensitive.into(), job, alias_of, v.origin.source.into()]);
        } else {
            table.row([v.name.clone(), value, sensitive.into(), job]);
        }
    }
    out.push_str(&table.render());
    out
}

/// SelfSubjectAccessReview: may the caller get the Secret `lifecycle-outputs` in `namespace`?
pub async fn may_read_secret(client: &Client, namespace: &str) -> anyhow::Result<bool> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some("get".into()),
                resource: Some("secrets".into()),
                name: Some(names::OUTPUTS_OBJECT.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .doing("check whether you may read secrets (SelfSubjectAccessReview)")?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variable::MASK;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn ids(v: &[&str]) -> Vec<JobId> {
        v.iter().map(|s| JobId::parse(s).unwrap()).collect()
    }

    #[test]
    fn sorts_variables_into_jobs_and_aliases() {
        let cm = map(&[
            ("QOVERY_OUTPUT_JOB_SEED_HOST", "pg"),
            ("HOST", "pg"),
            ("QOVERY_OUTPUT_JOB_SEED_DB_HOST", "db2"),
            ("QOVERY_OUTPUT_JOB_GONE_X", "1"),
            ("X", "1"),
        ]);
        let secret = map(&[("QOVERY_OUTPUT_JOB_SEED_PASS", "s3cret"), ("PASS", "s3cret")]);
        let vars = classify(&cm, &secret, &ids(&["SEED", "SEED_DB"]));
        let rows: Vec<(&str, Option<&str>, Option<&str>, bool)> = vars
            .iter()
            .map(|v| (v.name.as_str(), v.origin.job_id.as_deref(), v.origin.alias_of.as_deref(), v.sensitive))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("QOVERY_OUTPUT_JOB_SEED_HOST", Some("SEED"), None, false),
                ("HOST", Some("SEED"), Some("QOVERY_OUTPUT_JOB_SEED_HOST"), false),
                ("QOVERY_OUTPUT_JOB_SEED_PASS", Some("SEED"), None, true),
                ("PASS", Some("SEED"), Some("QOVERY_OUTPUT_JOB_SEED_PASS"), true),
                // SEED_DB is the longest JOBID that QOVERY_OUTPUT_JOB_SEED_DB_HOST starts with.
                ("QOVERY_OUTPUT_JOB_SEED_DB_HOST", Some("SEED_DB"), None, false),
                // No job named GONE: neither the full name nor its alias can be placed.
                ("QOVERY_OUTPUT_JOB_GONE_X", None, None, false),
                ("X", None, None, false),
            ]
        );
        assert_eq!(vars[2].origin.source, "Secret");
    }

    #[test]
    fn an_alias_belongs_to_the_job_whose_value_it_holds() {
        let cm = map(&[("QOVERY_OUTPUT_JOB_A_URL", "a"), ("QOVERY_OUTPUT_JOB_B_URL", "b"), ("URL", "b")]);
        let vars = classify(&cm, &BTreeMap::new(), &ids(&["A", "B"]));
        let alias = vars.iter().find(|v| v.name == "URL").unwrap();
        assert_eq!(alias.origin.job_id.as_deref(), Some("B"));
        assert_eq!(alias.origin.alias_of.as_deref(), Some("QOVERY_OUTPUT_JOB_B_URL"));

        // Job A's view still lists the alias of its key, now held by B.
        let a = for_job(vars.clone(), &JobId::parse("A").unwrap());
        let names: Vec<(&str, Option<&str>)> = a.iter().map(|v| (v.name.as_str(), v.origin.job_id.as_deref())).collect();
        assert_eq!(names, vec![("QOVERY_OUTPUT_JOB_A_URL", Some("A")), ("URL", Some("B"))]);
        let b = for_job(vars, &JobId::parse("B").unwrap());
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn a_job_view_excludes_other_jobs_and_masking_hides_values() {
        let cm = map(&[("QOVERY_OUTPUT_JOB_A_X", "1"), ("QOVERY_OUTPUT_JOB_B_Y", "2"), ("X", "1"), ("Y", "2")]);
        let secret = map(&[("QOVERY_OUTPUT_JOB_A_PW", "pw"), ("PW", "pw")]);
        let mut vars = for_job(classify(&cm, &secret, &ids(&["A", "B"])), &JobId::parse("A").unwrap());
        mask(&mut vars);
        let shown: Vec<(&str, &str, bool)> = vars.iter().map(|v| (v.name.as_str(), v.value.as_str(), v.masked)).collect();
        assert_eq!(
            shown,
            vec![
                ("QOVERY_OUTPUT_JOB_A_PW", MASK, true),
                ("PW", MASK, true),
                ("QOVERY_OUTPUT_JOB_A_X", "1", false),
                ("X", "1", false),
            ]
        );
    }

    fn gathered(job: Option<Job>, secret: Option<&[(&str, &str)]>, may_show: bool) -> Gathered {
        let template =
            crate::jobs::tests::job("seed", &[], &[(names::ANNOTATION_ON, "start"), (names::ANNOTATION_JOB_ID, "SEED")]);
        Gathered {
            namespace: "env".into(),
            job,
            jobs: vec![template],
            config_map: map(&[("QOVERY_OUTPUT_JOB_SEED_HOST", "pg"), ("HOST", "pg"), ("QOVERY_OUTPUT_JOB_MIGRATE_V", "3")]),
            secret: secret.map(map),
            may_show,
        }
    }

    #[test]
    fn a_run_shows_its_templates_variables_under_the_recorded_jobid() {
        use crate::jobs::tests::job;
        let mut run = crate::jobs::tests::run("seed-start-x1", "seed", "start", "2025-01-01T00:00:00Z");
        run.metadata.annotations = Some([(names::ANNOTATION_JOB_ID.to_string(), "SEED".to_string())].into());
        let (report, notes) = decide(&gathered(Some(run), Some(&[]), false), false);
        assert_eq!(report.job_id.as_deref(), Some("SEED"));
        let names: Vec<&str> = report.variables.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["QOVERY_OUTPUT_JOB_SEED_HOST", "HOST"]);
        assert_eq!(notes, ["seed-start-x1 is a run of lifecycle job seed: it publishes as seed"]);
        // A plain Job that opts out (the contract's rule: case and spaces do not matter) is told so.
        let migrate = job("migrate", &[], &[(names::ANNOTATION_CAPTURE_OUTPUT, " False ")]);
        let (report, notes) = decide(&gathered(Some(migrate), Some(&[]), false), false);
        assert_eq!(report.job_id.as_deref(), Some("MIGRATE"));
        assert_eq!(report.variables.len(), 1, "MIGRATE is a known JOBID now: {:?}", report.variables);
        assert!(notes[0].contains("job migrate opted out of output capture"), "{notes:?}");
    }

    #[test]
    fn sensitive_values_are_shown_only_when_asked_and_allowed() {
        let secret: &[(&str, &str)] = &[("QOVERY_OUTPUT_JOB_SEED_PW", "pw"), ("PW", "pw")];
        let values = |r: &Report| r.variables.iter().filter(|v| v.sensitive).map(|v| v.value.clone()).collect::<Vec<_>>();
        let (masked, notes) = decide(&gathered(None, Some(secret), false), false);
        assert!(notes.is_empty() && masked.sensitive_readable && !masked.sensitive_shown, "{notes:?}");
        assert_eq!(values(&masked), [MASK, MASK]);
        let (refused, notes) = decide(&gathered(None, Some(secret), false), true);
        assert_eq!(values(&refused), [MASK, MASK]);
        assert_eq!(notes, ["you may not get secrets/lifecycle-outputs in namespace env: sensitive values stay masked"]);
        let (shown, notes) = decide(&gathered(None, Some(secret), true), true);
        assert!(notes.is_empty() && shown.sensitive_shown);
        assert_eq!(values(&shown), ["pw", "pw"]);
        let (hidden, notes) = decide(&gathered(None, None, false), true);
        assert!(!hidden.sensitive_readable && !hidden.sensitive_shown && hidden.variables.iter().all(|v| !v.sensitive));
        assert!(notes[0].starts_with("sensitive variables are not listed"), "{notes:?}");
    }

    #[test]
    fn renders_tables_and_json() {
        let report = Report {
            namespace: "env".into(),
            job: Some("seed".into()),
            job_id: Some("SEED".into()),
            sensitive_readable: true,
            sensitive_shown: false,
            variables: vec![Variable {
                masked: true,
                ..Variable::new(
                    "QOVERY_OUTPUT_JOB_SEED_PW",
                    MASK,
                    true,
                    Published { job_id: Some("SEED".into()), alias_of: None, source: "Secret" },
                )
            }],
        };
        let table = render(&report, None).unwrap();
        assert!(table.starts_with("Job seed in namespace env: JOBID SEED, variables QOVERY_OUTPUT_JOB_SEED_<KEY>"), "{table}");
        assert!(
            table.contains(
                "NAME                        VALUE    SENSITIVE   JOB\nQOVERY_OUTPUT_JOB_SEED_PW   ******   yes         SEED\n"
            ),
            "{table}"
        );
        let json: serde_json::Value = serde_json::from_str(&render(&report, Some(OutputFormat::Json)).unwrap()).unwrap();
        assert_eq!(json["jobId"], "SEED");
        assert_eq!(json["variables"][0]["value"], MASK);
        assert_eq!(json["variables"][0]["aliasOf"], serde_json::Value::Null);
        let empty = Report { variables: vec![], ..report };
        assert!(render(&empty, None).unwrap().contains("has published no outputs yet"));
    }
}
