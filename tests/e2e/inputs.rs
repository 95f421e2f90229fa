//! Input variables end to end: project variables mirrored by the server from
//! labelled ConfigMaps and Secrets in its namespace (the default source
//! namespace) into the project's environments as `lifecycle-project`, the
//! environment's own `lifecycle-environment`, and their precedence with job
//! outputs and a workload's own env, as a pod sees them.
//!
//! Source objects are made in the server's namespace with a unique project
//! name per test, and removed afterwards (also when the test fails).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::{
    ENVIRONMENT_OBJECT, LABEL_ENVIRONMENT, LABEL_PROJECT, LABEL_PROJECT_VARIABLES, PROJECT_OBJECT, SYSTEM_NAMESPACE,
};
use lifecycle_e2e::lifecycle::{Runs, lifecycle_job, output_job, patch_namespace, wait_published, wait_runs_complete};
use lifecycle_e2e::{
    BUSYBOX, TIMEOUT, TestNamespace, client, kubeconfig_path, obj, pod_logs, unique_suffix, wait_for_job_complete,
    wait_for_pod_ended, wait_until,
};
use serde_json::{Value, json};

/// How long a change of a source may take to reach the mirrors: seconds (a
/// watch event, a 200 ms debounce, one apply per environment), with room for
/// a busy test machine.
const MIRROR_DEADLINE: Duration = Duration::from_secs(30);

/// Deletes, when dropped, the project variables source objects of one test
/// and the cluster objects it made for impersonated users (with kubectl, from
/// Drop, which cannot await).
struct Cleanup {
    project: String,
    extra: Vec<Vec<String>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let selector = format!("{LABEL_PROJECT_VARIABLES}={}", self.project);
        let mut all = vec![vec![
            "delete".to_string(),
            "configmaps,secrets".into(),
            "-n".into(),
            SYSTEM_NAMESPACE.into(),
            "-l".into(),
            selector,
        ]];
        all.append(&mut self.extra);
        for args in all {
            let _ = kubectl(
                &[args.iter().map(String::as_str).collect::<Vec<_>>().as_slice(), &["--ignore-not-found", "--wait=false"]]
                    .concat(),
            );
        }
    }
}

/// Runs kubectl (on PATH in the e2e runner) with the cluster's kubeconfig.
fn kubectl(args: &[&str]) -> Result<std::process::Output> {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .output()
        .with_context(|| format!("running kubectl {}", args.join(" ")))
}

/// Runs the plugin (`$KUBECTL_LIFECYCLE`, which the e2e runner sets).
fn plugin(args: &[&str]) -> Result<(i32, String, String)> {
    let bin = std::env::var("KUBECTL_LIFECYCLE").context("KUBECTL_LIFECYCLE is not set (tests/run-e2e.sh sets it)")?;
    let out = Command::new(&bin).arg("--kubeconfig").arg(kubeconfig_path()).args(args).output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn source_labels(project: &str) -> Value {
    json!({ LABEL_PROJECT_VARIABLES: project })
}

async fn create_source_config_map(client: &Client, name: &str, project: &str, data: Value) -> Result<()> {
    let cm: ConfigMap = obj(json!({"metadata": {"name": name, "labels": source_labels(project)}, "data": data}));
    Api::<ConfigMap>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .create(&PostParams::default(), &cm)
        .await
        .with_context(|| format!("creating source ConfigMap {name}"))?;
    Ok(())
}

async fn create_source_secret(client: &Client, name: &str, project: &str, data: Value) -> Result<()> {
    let s: Secret = obj(json!({"metadata": {"name": name, "labels": source_labels(project)}, "stringData": data}));
    Api::<Secret>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .create(&PostParams::default(), &s)
        .await
        .with_context(|| format!("creating source Secret {name}"))?;
    Ok(())
}

/// An environment of `project` (labels environment and project).
async fn project_env(client: &Client, prefix: &str, project: &str) -> Result<TestNamespace> {
    TestNamespace::with_labels(client, prefix, &[(LABEL_ENVIRONMENT, ""), (LABEL_PROJECT, project)]).await
}

/// The data of the mirror ConfigMap and Secret (decoded) in `ns`; `None` when absent.
async fn mirror(client: &Client, ns: &str) -> Result<(Option<BTreeMap<String, String>>, Option<BTreeMap<String, String>>)> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns).get_opt(PROJECT_OBJECT).await?.map(|c| c.data.unwrap_or_default());
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(PROJECT_OBJECT)
        .await?
        .map(|s| s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())).collect());
    Ok((cm, secret))
}

/// Waits until the mirror in `ns` has `key`=`value` in its ConfigMap (`secret`
/// false) or its Secret.
async fn wait_mirror_value(client: &Client, ns: &str, secret: bool, key: &str, value: &str, deadline: Duration) -> Result<()> {
    let what = format!("{} {ns}/{PROJECT_OBJECT} has {key} (expected value)", if secret { "Secret" } else { "ConfigMap" });
    wait_until(&what, deadline, || async {
        let (cm, s) = mirror(client, ns).await?;
        let data = if secret { s } else { cm };
        Ok(data.is_some_and(|d| d.get(key).map(String::as_str) == Some(value)).then_some(()))
    })
    .await
}

/// No server log, no Event of the given namespaces and no annotation of the
/// mirrors holds any of `values`.
async fn assert_values_nowhere(client: &Client, namespaces: &[&str], values: &[&str]) -> Result<()> {
    let mut places = Vec::new();
    let system: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    for pod in system.list(&ListParams::default()).await?.items {
        let logs = pod_logs(client, SYSTEM_NAMESPACE, &pod.name_any(), None).await.unwrap_or_default();
        places.push((format!("log of {}", pod.name_any()), logs));
    }
    for ns in namespaces.iter().copied().chain([SYSTEM_NAMESPACE]) {
        for e in Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items {
            places.push((format!("event {ns}/{}", e.name_any()), format!("{:?} {:?}", e.reason, e.message)));
        }
        if let Some(s) = Api::<Secret>::namespaced(client.clone(), ns).get_opt(PROJECT_OBJECT).await? {
            places.push((format!("metadata of Secret {ns}/{PROJECT_OBJECT}"), format!("{:?}", s.metadata.annotations)));
        }
    }
    ensure!(places.iter().any(|(p, _)| p.starts_with("log of")), "no server log found to check");
    for (place, text) in &places {
        for v in values {
            ensure!(!text.contains(v), "a sensitive value appears in the {place}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn project_variables_reach_its_environments_follow_changes_and_leave_with_the_namespace() -> Result<()> {
    let client = client().await?;
    let suffix = unique_suffix();
    let (project, other) = (format!("e2e-shop-{suffix}"), format!("e2e-blog-{suffix}"));
    let _cleanup = Cleanup { project: project.clone(), extra: vec![] };
    let (password, new_password) = (format!("pw-{}", unique_suffix()), format!("pw2-{}", unique_suffix()));

    create_source_config_map(&client, &format!("shop-{suffix}-settings"), &project, json!({"REGION": "eu-west", "SHARED": "a"}))
        .await?;
    // Merge order is by name: the later name wins a key both define.
    create_source_config_map(&client, &format!("shop-{suffix}-zz-override"), &project, json!({"SHARED": "z"})).await?;
    create_source_secret(&client, &format!("shop-{suffix}-db"), &project, json!({"DB_PASS": password})).await?;

    let a1 = project_env(&client, "vars-a1", &project).await?;
    let a2 = project_env(&client, "vars-a2", &project).await?;
    let b = project_env(&client, "vars-b", &other).await?;

    for ns in [&a1, &a2] {
        wait_mirror_value(&client, ns.name(), false, "REGION", "eu-west", MIRROR_DEADLINE).await?;
        wait_mirror_value(&client, ns.name(), true, "DB_PASS", &password, MIRROR_DEADLINE).await?;
        let (cm, _) = mirror(&client, ns.name()).await?;
        assert_eq!(cm.unwrap()["SHARED"], "z", "the source whose name sorts last wins a key");
    }
    // Both of the project's environments are served; the other project's is not.
    let (cm, secret) = mirror(&client, b.name()).await?;
    ensure!(cm.is_none() && secret.is_none(), "environment {} of another project got project {project}'s variables", b.name());

    // A change of the project Secret reaches both mirrors.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    secrets
        .patch(
            &format!("shop-{suffix}-db"),
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"DB_PASS": new_password}})),
        )
        .await?;
    for ns in [&a1, &a2] {
        wait_mirror_value(&client, ns.name(), true, "DB_PASS", &new_password, MIRROR_DEADLINE).await?;
    }

    // The plugin lists them with scope and source, the secret masked.
    let (code, out, err) = plugin(&["env", "vars", a1.name(), "-o", "json"])?;
    ensure!(code == 0, "env vars failed: {out}{err}");
    let report: Value = serde_json::from_str(&out)?;
    let vars = report["variables"].as_array().context("variables")?;
    let pass = vars.iter().find(|v| v["name"] == "DB_PASS").context("DB_PASS listed")?;
    assert_eq!(pass["scope"], "project");
    assert_eq!(pass["value"], "******");
    assert_eq!(pass["object"], "Secret/lifecycle-project");
    assert_eq!(pass["from"], format!("{SYSTEM_NAMESPACE}/shop-{suffix}-db"));
    ensure!(!out.contains(&new_password), "the plugin printed a sensitive value without --show-sensitive");
    let (code, out, _) = plugin(&["env", "vars", a1.name(), "--show-sensitive", "-o", "json"])?;
    ensure!(code == 0 && out.contains(&new_password), "--show-sensitive shows the value: {out}");

    // A namespace leaving the project loses its mirror; the other keeps it.
    let leave = json!({"metadata": {"labels": {LABEL_PROJECT: null}}});
    patch_namespace(&client, a2.name(), leave).await?;
    wait_until(&format!("{} lost its project mirror", a2.name()), MIRROR_DEADLINE, || async {
        let (cm, s) = mirror(&client, a2.name()).await?;
        Ok((cm.is_none() && s.is_none()).then_some(()))
    })
    .await?;
    let (cm, secret) = mirror(&client, a1.name()).await?;
    ensure!(cm.is_some() && secret.is_some(), "{} kept its mirror", a1.name());

    // A deleted source's keys disappear from the mirrors.
    Api::<ConfigMap>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .delete(&format!("shop-{suffix}-zz-override"), &DeleteParams::default())
        .await?;
    wait_mirror_value(&client, a1.name(), false, "SHARED", "a", MIRROR_DEADLINE).await?;

    assert_values_nowhere(&client, &[a1.name(), a2.name(), b.name()], &[&password, &new_password]).await
}

#[tokio::test]
async fn narrower_scopes_win_and_a_lifecycle_job_reads_a_project_secret() -> Result<()> {
    let client = client().await?;
    let suffix = unique_suffix();
    let project = format!("e2e-prec-{suffix}");
    let _cleanup = Cleanup { project: project.clone(), extra: vec![] };
    let password = format!("pw-{}", unique_suffix());

    // A: project only; B: project and environment; C: also an output; D: also the pod's own env.
    create_source_config_map(
        &client,
        &format!("prec-{suffix}"),
        &project,
        json!({"A": "project", "B": "project", "C": "project", "D": "project"}),
    )
    .await?;
    create_source_secret(&client, &format!("prec-{suffix}-db"), &project, json!({"DB_PASS": password})).await?;
    let ns = project_env(&client, "vars-prec", &project).await?;
    wait_mirror_value(&client, ns.name(), true, "DB_PASS", &password, MIRROR_DEADLINE).await?;
    wait_mirror_value(&client, ns.name(), false, "A", "project", MIRROR_DEADLINE).await?;

    let env_cm: ConfigMap = obj(
        json!({"metadata": {"name": ENVIRONMENT_OBJECT}, "data": {"B": "environment", "C": "environment", "D": "environment"}}),
    );
    ns.create(&env_cm).await?;

    // A job publishes C and D: outputs win over both input scopes.
    let out = r#"{"C": {"value": "output"}, "D": {"value": "output"}}"#;
    let job = ns.create(&output_job("publish", None, None, out)).await?;
    wait_for_job_complete(&client, ns.name(), &job.name_any(), TIMEOUT).await?;
    wait_published(&ns, "C and D are published", |cm, _| cm.get("C").is_some_and(|v| v == "output") && cm.contains_key("D"))
        .await?;

    // One pod, checked with `env` (the busybox image has no printenv applet).
    let pod: Pod = obj(json!({
        "metadata": {"name": "printenv"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "containers": [{
            "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["env"], "env": [{"name": "D", "value": "own"}]
        }]}
    }));
    ns.create(&pod).await?;
    let ended = wait_for_pod_ended(&client, ns.name(), "printenv", TIMEOUT).await?;
    // The kubelet may report the end a moment before the container's log is complete.
    let logs = wait_until("the pod's environment is in its log", Duration::from_secs(20), || async {
        let logs = pod_logs(&client, ns.name(), "printenv", Some("main")).await?;
        Ok(logs.contains("PATH=").then_some(logs))
    })
    .await
    .unwrap_or_default();
    let env: BTreeMap<&str, &str> = logs.lines().filter_map(|l| l.split_once('=')).collect();
    // On failure, what a person would look at: the admitted envFrom and the mirror.
    let context = format!(
        "envFrom {:?}; mirror {:?}; variables seen: {:?}",
        ended.spec.as_ref().map(|s| s.containers[0].env_from.clone()),
        mirror(&client, ns.name()).await?.0,
        env.keys().collect::<Vec<_>>()
    );
    assert_eq!(env.get("A"), Some(&"project"), "a project variable reaches the pod: {context}");
    assert_eq!(env.get("B"), Some(&"environment"), "the environment's variable overrides the project's: {context}");
    assert_eq!(env.get("C"), Some(&"output"), "a job output overrides both input scopes: {context}");
    assert_eq!(env.get("D"), Some(&"own"), "the workload's own env overrides everything: {context}");
    ensure!(env.get("DB_PASS") == Some(&password.as_str()), "the project Secret reaches the pod");

    // A lifecycle job reads the project secret: it republishes it as a sensitive output.
    let script =
        r#"printf '{"DB_PASS_SEEN": {"value": "%s", "sensitive": true}}' "$DB_PASS" > /qovery-output/qovery-output.json"#;
    ns.create(&lifecycle_job("reads-input", "start", script, true)).await?;
    wait_runs_complete(&client, ns.name(), "reads-input", "start", Runs::Exactly(1), TIMEOUT).await?;
    wait_published(&ns, "the lifecycle job republished the project secret", |_, secret| {
        secret.get("DB_PASS_SEEN").is_some_and(|v| *v == password)
    })
    .await?;

    assert_values_nowhere(&client, &[ns.name()], &[&password]).await
}

#[tokio::test]
async fn a_user_who_cannot_read_the_project_secrets_cannot_label_a_namespace_into_the_project() -> Result<()> {
    let client = client().await?;
    let suffix = unique_suffix();
    let project = format!("e2e-guard-{suffix}");
    let user = format!("e2e-labeller-{suffix}");
    let role = format!("e2e-ns-patcher-{suffix}");
    let _cleanup = Cleanup {
        project: project.clone(),
        extra: vec![
            vec!["delete".into(), "clusterrolebinding".into(), role.clone()],
            vec!["delete".into(), "clusterrole".into(), role.clone()],
            vec!["delete".into(), "rolebinding".into(), "-n".into(), SYSTEM_NAMESPACE.into(), role.clone()],
            vec!["delete".into(), "role".into(), "-n".into(), SYSTEM_NAMESPACE.into(), role.clone()],
        ],
    };
    create_source_secret(&client, &format!("guard-{suffix}"), &project, json!({"TOKEN": "t"})).await?;
    let ns = TestNamespace::with_labels(&client, "vars-guard", &[(LABEL_ENVIRONMENT, "")]).await?;

    // The user may read and patch namespaces, nothing else.
    let run =
        |args: Vec<String>| -> Result<std::process::Output> { kubectl(&args.iter().map(String::as_str).collect::<Vec<_>>()) };
    let ok = |o: std::process::Output| -> Result<()> {
        ensure!(o.status.success(), "kubectl failed: {}", String::from_utf8_lossy(&o.stderr));
        Ok(())
    };
    ok(run(vec![
        "create".into(),
        "clusterrole".into(),
        role.clone(),
        "--verb=get,list,patch,update".into(),
        "--resource=namespaces".into(),
    ])?)?;
    ok(run(vec![
        "create".into(),
        "clusterrolebinding".into(),
        role.clone(),
        format!("--clusterrole={role}"),
        format!("--user={user}"),
    ])?)?;

    let label = |value: &str| -> Result<std::process::Output> {
        kubectl(&["--as", &user, "label", "namespace", ns.name(), &format!("{LABEL_PROJECT}={value}"), "--overwrite"])
    };
    // RBAC itself lets the user label (they may patch namespaces): only the policy refuses.
    let refused = wait_until("the labeller's namespace patch right is in effect and the policy answers", TIMEOUT, || async {
        let o = label(&project)?;
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        Ok((!o.status.success() && err.contains("requires reading the project")).then_some(err))
    })
    .await?;
    ensure!(refused.contains(SYSTEM_NAMESPACE), "the refusal names the source namespace: {refused}");
    let labels = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get(ns.name())
        .await?
        .metadata
        .labels
        .unwrap_or_default();
    ensure!(!labels.contains_key(LABEL_PROJECT), "the project label was set despite the refusal");
    // Another label is no concern of the policy.
    ok(kubectl(&["--as", &user, "label", "namespace", ns.name(), "team=e2e", "--overwrite"])?)?;

    // Given read access to the source Secrets, the same user may.
    ok(run(vec![
        "create".into(),
        "role".into(),
        role.clone(),
        "-n".into(),
        SYSTEM_NAMESPACE.into(),
        "--verb=get".into(),
        "--resource=secrets".into(),
    ])?)?;
    ok(run(vec![
        "create".into(),
        "rolebinding".into(),
        role.clone(),
        "-n".into(),
        SYSTEM_NAMESPACE.into(),
        format!("--role={role}"),
        format!("--user={user}"),
    ])?)?;
    wait_until("the labeller may label the namespace into the project", TIMEOUT, || async {
        Ok(label(&project)?.status.success().then_some(()))
    })
    .await?;
    // And the namespace then gets the project's variables.
    wait_mirror_value(&client, ns.name(), true, "TOKEN", "t", MIRROR_DEADLINE).await
}
