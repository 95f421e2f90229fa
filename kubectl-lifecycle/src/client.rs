//! The connection to the cluster (kubectl's flags), and errors that say what to do next.

use std::fmt::Display;

use anyhow::{Context as _, anyhow};
use k8s_openapi::api::core::v1::Namespace;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use lifecycle_contract::names;

use crate::cli::GlobalArgs;

/// Field manager of every change this plugin makes.
pub const FIELD_MANAGER: &str = "kubectl-lifecycle";

/// A client and the current namespace.
pub struct Ctx {
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
}

impl Ctx {
    pub async fn connect(g: &GlobalArgs) -> anyhow::Result<Ctx> {
        let options = KubeConfigOptions { context: g.context.clone(), cluster: None, user: None };
        let config = match (&g.kubeconfig, &g.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .map_err(|e| anyhow!("cannot read kubeconfig {}: {}", path.display(), root_cause(&e)))?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| anyhow!("cannot use kubeconfig {}: {}", path.display(), root_cause(&e)))?
            }
            (None, Some(context)) => Config::from_kubeconfig(&options).await.map_err(|e| {
                anyhow!("cannot use context {context:?} of your kubeconfig ($KUBECONFIG or ~/.kube/config): {}", root_cause(&e))
            })?,
            (None, None) => Config::infer().await.map_err(|e| {
                anyhow!(
                    "no cluster configured ({})\n  hint: set KUBECONFIG or pass --kubeconfig (or run inside a pod with a service account)",
                    root_cause(&e)
                )
            })?,
        };
        let namespace = g.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).context("cannot build a Kubernetes client from the configuration")?;
        Ok(Ctx { client, namespace })
    }
}

/// The innermost cause of an error, which is usually the one that says what happened.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The HTTP status of an API error, if the API server answered.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

pub fn is_forbidden(e: &kube::Error) -> bool {
    status_code(e) == Some(403)
}

/// A Kubernetes API error said for people, keeping the API server's status code for tools
/// (the web view answers with it); it prints as its text.
#[derive(Debug)]
pub struct Explained {
    /// The API server's HTTP status, when it answered.
    pub code: Option<u16>,
    text: String,
}

impl Display for Explained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Explained {}

/// Turns a Kubernetes error into one that says what failed and what to try.
pub fn explain(e: kube::Error, doing: impl Display) -> anyhow::Error {
    let text = match &e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "cannot {doing}: forbidden: {}\n  hint: your credentials lack this permission; check with `kubectl auth can-i` and ask your cluster admin",
            s.message
        ),
        kube::Error::Api(s) if s.code == 401 => format!(
            "cannot {doing}: unauthorized: {}\n  hint: your credentials were refused; log in again or check --context/--kubeconfig",
            s.message
        ),
        kube::Error::Api(s) => format!("cannot {doing}: {} ({})", s.message, s.reason),
        _ => format!(
            "cannot {doing}: {e} ({})\n  hint: is the cluster reachable? check your context with `kubectl cluster-info` (or --context/--kubeconfig)",
            root_cause(&e)
        ),
    };
    anyhow::Error::new(Explained { code: status_code(&e), text })
}

/// The API server's status code behind an error, if it came from [`explain`].
pub fn api_code(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<Explained>().and_then(|x| x.code)
}

pub trait KubeResultExt<T> {
    /// [`explain`] as a method.
    fn doing(self, doing: impl Display) -> anyhow::Result<T>;
}

impl<T> KubeResultExt<T> for Result<T, kube::Error> {
    fn doing(self, doing: impl Display) -> anyhow::Result<T> {
        self.map_err(|e| explain(e, doing))
    }
}

/// The namespace `name`, which must be an environment.
pub async fn get_environment(client: &Client, name: &str) -> anyhow::Result<Namespace> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = api
        .get_opt(name)
        .await
        .doing(format_args!("get namespace {name}"))?
        .ok_or_else(|| {
            anyhow!(
                "namespace {name} not found\n  hint: list environments with `kubectl lifecycle env list`, or create one with `kubectl lifecycle env create {name}`"
            )
        })?;
    if !crate::environment::is_environment(&ns) {
        return Err(not_an_environment(name));
    }
    Ok(ns)
}

pub fn not_an_environment(name: &str) -> anyhow::Error {
    anyhow!(
        "namespace {name} is not an environment\n  hint: label it with `kubectl label ns {name} {}=` (or `kubectl lifecycle env create {name}`)",
        names::LABEL_ENVIRONMENT
    )
}
