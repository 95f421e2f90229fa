//! The command line: every command, flag and help text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lifecycle_contract::Event;

const MAIN_AFTER_HELP: &str = "\
Examples:
  kubectl lifecycle env list
  kubectl lifecycle env status preview-42
  kubectl lifecycle env stop preview-42 --wait
  kubectl lifecycle run seed-db --event start -n preview-42 --wait --logs
  kubectl lifecycle outputs seed-db -n preview-42
  kubectl lifecycle clone seed-db -n preview-42 --to preview-43

Exit codes: 0 success, 1 failure, 2 usage error.";

/// kubectl plugin for lifecycle-jobs.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-lifecycle",
    bin_name = "kubectl lifecycle",
    version,
    about = "Environments, lifecycle jobs and their outputs, from kubectl",
    long_about = "Environments, lifecycle jobs and their outputs, from kubectl.\n\n\
An environment is a namespace labelled lifecycle-jobs.dev/environment. Its lifecycle jobs are Jobs \
annotated lifecycle-jobs.dev/on: templates that the lifecycle-jobs controller runs when the environment \
starts, stops or is deleted. What their containers write to /qovery-output/qovery-output.json becomes \
QOVERY_OUTPUT_JOB_<JOBID>_<KEY> variables (and their <KEY> aliases) in every workload of the environment.\n\n\
This plugin starts, stops, redeploys and deletes environments (and waits for them), force-runs lifecycle \
jobs, shows their outputs and logs, and clones them into other environments.",
    after_help = MAIN_AFTER_HELP,
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Connection flags, as kubectl has them.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, value_name = "PATH", help_heading = "Global options")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME", help_heading = "Global options")]
    pub context: Option<String>,
    /// The namespace (default: the context's namespace, else "default")
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE", help_heading = "Global options")]
    pub namespace: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, inspect, create, start, stop, redeploy and delete environments
    #[command(subcommand, after_help = ENV_AFTER_HELP)]
    Env(EnvCommand),
    /// Force-run one event of a lifecycle job now
    #[command(
        long_about = "Force-run one event of a lifecycle job now, whatever the environment's state.\n\n\
Sets the annotation lifecycle-jobs.dev/force-run=<EVENT> on the lifecycle job (the template); the \
controller creates a run Job with that event's command, and clears the annotation. The event must be one \
of those in the job's lifecycle-jobs.dev/on annotation. Nothing else happens to the environment: forcing \
`stop` runs the stop command without stopping any workload.",
        after_help = "Examples:\n  \
kubectl lifecycle run seed-db --event start -n preview-42\n  \
kubectl lifecycle run seed-db --event start -n preview-42 --wait\n  \
kubectl lifecycle run backup --event stop -n preview-42 --logs"
    )]
    Run(RunArgs),
    /// Show the variables a job published, or all of an environment
    #[command(
        long_about = "Show the variables a job published, or all the variables of an environment.\n\n\
For a job: its JOBID (annotation lifecycle-jobs.dev/job-id, else derived from its name) and the variables \
QOVERY_OUTPUT_JOB_<JOBID>_<KEY> with their <KEY> aliases. For a namespace: every variable in the \
ConfigMap and Secret lifecycle-outputs. TARGET is a Job if a Job of that name exists in the current \
namespace, else a namespace of that name.\n\n\
Sensitive values are masked (******) unless --show-sensitive is given and you may read the Secret \
lifecycle-outputs.",
        after_help = "Examples:\n  \
kubectl lifecycle outputs seed-db -n preview-42\n  \
kubectl lifecycle outputs preview-42\n  \
kubectl lifecycle outputs seed-db -n preview-42 --show-sensitive -o json"
    )]
    Outputs(OutputsArgs),
    /// Show the logs of a job's latest run, with its output-capture log
    #[command(
        long_about = "Show the logs of a lifecycle job's latest run (of one event with --event), or of a \
plain Job's pod: its main containers, then the lines of the lifecycle-agent sidecar under a header: \
that is where an output file that was rejected, and why, shows up.",
        after_help = "Examples:\n  \
kubectl lifecycle logs seed-db -n preview-42\n  \
kubectl lifecycle logs seed-db --event stop -n preview-42\n  \
kubectl lifecycle logs migrate -n preview-42 -f"
    )]
    Logs(LogsArgs),
    /// Copy a lifecycle job to another environment (Qovery's clone rules)
    #[command(
        long_about = "Copy a lifecycle job (a template) to another environment, with Qovery's clone rules.\n\n\
Copied: the Job spec (containers, command and args, resources, env and envFrom, volumes, backoffLimit, \
activeDeadlineSeconds, ...), the lifecycle annotations (on, on-<event>-command/args, container, \
capture-output) and the other labels and annotations.\n\
Not copied: status and runs, the outputs / last-runs / force-run annotations, the job-id annotation \
(unless --keep-job-id), the object's identity (uid, resourceVersion, managedFields, ownerReferences, \
finalizers), the selector and the labels Kubernetes generates from it, and the capture label (the \
webhook sets it). Secrets and ConfigMaps the job refers to are not copied: the command lists them.\n\n\
The report says what was and was not copied, and why.",
        after_help = "Examples:\n  \
kubectl lifecycle clone seed-db -n preview-42 --to preview-43\n  \
kubectl lifecycle clone seed-db -n preview-42 --to staging --name seed-db-staging\n  \
kubectl lifecycle clone seed-db -n preview-42 --to preview-43 --dry-run -o yaml"
    )]
    Clone(CloneArgs),
    /// Serve a web view of the environments on this machine (loopback), with your credentials
    #[command(
        long_about = "Serve a web view of the environments on 127.0.0.1, with your kubeconfig's credentials: it \
shows what you may see and does what you may do (start, stop, redeploy, delete, force-run), nothing more, \
and installs nothing in the cluster.\n\n\
Prints a link with a one-time token and opens it in your browser (unless --no-browser); the link logs \
one browser in. Everything on the pages follows the cluster live. Sensitive values are never shown. \
With -n, the link opens that environment.",
        after_help = "Examples:\n  \
kubectl lifecycle ui\n  \
kubectl lifecycle ui -n preview-42\n  \
kubectl lifecycle ui --port 0 --no-browser"
    )]
    Ui(UiArgs),
}

const ENV_AFTER_HELP: &str = "\
Examples:
  kubectl lifecycle env list
  kubectl lifecycle env create preview-42 --project shop
  kubectl lifecycle env status preview-42
  kubectl lifecycle env vars preview-42
  kubectl lifecycle env stop preview-42 --wait --timeout 5m
  kubectl lifecycle env redeploy preview-42 --wait
  kubectl lifecycle env delete preview-42 --wait";

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List environments (namespaces labelled lifecycle-jobs.dev/environment)
    #[command(
        long_about = "List environments: namespaces labelled lifecycle-jobs.dev/environment, with their \
project, wanted state (label lifecycle-jobs.dev/state), the controller's status (annotation \
lifecycle-jobs.dev/status) and their number of lifecycle jobs (templates).",
        after_help = "Examples:\n  kubectl lifecycle env list\n  kubectl lifecycle env list -o wide\n  kubectl lifecycle env list -o json"
    )]
    List(ListArgs),
    /// Show an environment: state, lifecycle jobs and their last runs, runs, outputs
    #[command(
        long_about = "Show an environment: its wanted state and the controller's status, its lifecycle \
jobs (templates) with the last run of each event, the runs, and how many variables it holds.",
        after_help = "Examples:\n  kubectl lifecycle env status preview-42\n  kubectl lifecycle env status -n preview-42 -o wide\n  kubectl lifecycle env status preview-42 -o json"
    )]
    Status(StatusArgs),
    /// Make a namespace an environment, creating it if missing
    #[command(
        long_about = "Make a namespace an environment: label it lifecycle-jobs.dev/environment (and \
lifecycle-jobs.dev/project), creating the namespace if it does not exist. Jobs and workloads created in \
it from now on are captured and get the variables; the environment starts (its start jobs run).",
        after_help = "Examples:\n  kubectl lifecycle env create preview-42\n  kubectl lifecycle env create preview-42 --project shop --environment pr-42"
    )]
    Create(CreateArgs),
    /// Start an environment (label state=started): start jobs run, workloads scale back up
    #[command(
        long_about = "Start an environment: set the label lifecycle-jobs.dev/state=started. The controller \
runs the start jobs, then scales back up the workloads that a stop scaled down.",
        after_help = "Examples:\n  kubectl lifecycle env start preview-42\n  kubectl lifecycle env start preview-42 --wait --timeout 15m"
    )]
    Start(TransitionArgs),
    /// Stop an environment (label state=stopped): stop jobs run, workloads scale to zero
    #[command(
        long_about = "Stop an environment: set the label lifecycle-jobs.dev/state=stopped. The controller \
runs the stop jobs, then scales the environment's Deployments and StatefulSets to zero (remembering their \
replica counts for the next start).",
        after_help = "Examples:\n  kubectl lifecycle env stop preview-42\n  kubectl lifecycle env stop preview-42 --wait"
    )]
    Stop(TransitionArgs),
    /// Redeploy an environment (new deploy-id): start jobs run again
    #[command(
        long_about = "Redeploy a started environment: set the annotation lifecycle-jobs.dev/deploy-id to a \
new value. Each change is a start event: the controller runs the start jobs again.",
        after_help = "Examples:\n  kubectl lifecycle env redeploy preview-42\n  kubectl lifecycle env redeploy preview-42 --wait"
    )]
    Redeploy(TransitionArgs),
    /// Delete an environment (label state=deleted): delete jobs run, then the namespace goes
    #[command(
        long_about = "Delete an environment: set the label lifecycle-jobs.dev/state=deleted. The controller \
runs the delete jobs, then deletes the namespace. With --wait the command returns once the namespace is \
gone.",
        after_help = "Examples:\n  kubectl lifecycle env delete preview-42\n  kubectl lifecycle env delete preview-42 --wait"
    )]
    Delete(TransitionArgs),
    /// Show every variable a pod of the environment gets, with its scope and source
    #[command(
        long_about = "Show every variable that lifecycle-jobs gives a pod of the environment, with its scope \
and the object it comes from. Pods get, in this order (a later source wins a name): the built-in \
variables (ConfigMap lifecycle-builtins, written by the server: QOVERY_ENVIRONMENT_ID and the like), the project's \
variables (ConfigMap and Secret lifecycle-project, mirrored by the server from the project's source \
objects, shown in parentheses), the environment's own (ConfigMap and Secret lifecycle-environment), \
then the job outputs (ConfigMap and Secret lifecycle-outputs). The workload's own env and envFrom come \
after and win over all of them.\n\n\
Sensitive values (from Secrets) are masked (******) unless --show-sensitive is given.",
        after_help = "Examples:\n  \
kubectl lifecycle env vars preview-42\n  \
kubectl lifecycle env vars preview-42 -o wide\n  \
kubectl lifecycle env vars preview-42 --show-sensitive -o json"
    )]
    Vars(VarsArgs),
}

#[derive(Debug, Args)]
pub struct VarsArgs {
    /// The environment's namespace (default: the current namespace)
    #[arg(value_name = "NAMESPACE")]
    pub env: Option<String>,
    /// Show sensitive values (those you may read)
    #[arg(long)]
    pub show_sensitive: bool,
    /// Output format (default: a table)
    #[arg(short = 'o', long = "output", value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// `-o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table with more columns
    Wide,
    /// JSON, stable field names, for scripts
    Json,
    /// YAML, same fields as JSON
    Yaml,
}

/// `-o` for clone: the object itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectFormat {
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format (default: a table)
    #[arg(short = 'o', long = "output", value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The environment's namespace (default: the current namespace)
    #[arg(value_name = "NAMESPACE")]
    pub env: Option<String>,
    /// Output format (default: tables)
    #[arg(short = 'o', long = "output", value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The namespace
    #[arg(value_name = "NAMESPACE")]
    pub env: String,
    /// Project name (label lifecycle-jobs.dev/project), for project-scoped variables
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// Environment name (label value; default: the namespace's name)
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Wait until the transition ends, showing its progress
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits at most (e.g. 90s, 10m, 1h30m)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct TransitionArgs {
    /// The environment's namespace (or give it with -n)
    #[arg(value_name = "NAMESPACE")]
    pub env: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The lifecycle job (template) to run
    #[arg(value_name = "JOB")]
    pub job: String,
    /// The event to run: start, stop or delete (one of the job's `on`)
    #[arg(long, short = 'e', value_name = "EVENT", value_parser = parse_event)]
    pub event: Event,
    /// Wait for the run to finish; fail if it fails
    #[arg(long)]
    pub wait: bool,
    /// Stream the run's logs (implies --wait)
    #[arg(long)]
    pub logs: bool,
    /// How long --wait / --logs wait at most (e.g. 90s, 10m)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct OutputsArgs {
    /// A Job (in the current namespace) or a namespace
    #[arg(value_name = "JOB|NAMESPACE")]
    pub target: String,
    /// Show sensitive values (if you may read the Secret lifecycle-outputs)
    #[arg(long)]
    pub show_sensitive: bool,
    /// Output format (default: a table)
    #[arg(short = 'o', long = "output", value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// A lifecycle job (its latest run is shown), a run, or a plain Job
    #[arg(value_name = "JOB")]
    pub job: String,
    /// Only runs of this event (lifecycle jobs only)
    #[arg(long, short = 'e', value_name = "EVENT", value_parser = parse_event)]
    pub event: Option<Event>,
    /// Follow the logs until the containers end
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines of each container
    #[arg(long, value_name = "N")]
    pub tail: Option<i64>,
}

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Port on 127.0.0.1 (0: any free port)
    #[arg(long, default_value_t = 7731)]
    pub port: u16,
    /// Print the link without opening a browser
    #[arg(long)]
    pub no_browser: bool,
}

#[derive(Debug, Args)]
pub struct CloneArgs {
    /// The lifecycle job to copy (in the current namespace, or -n)
    #[arg(value_name = "JOB")]
    pub job: String,
    /// The environment (namespace) to copy it to
    #[arg(long, value_name = "NAMESPACE")]
    pub to: String,
    /// Name of the copy (default: the same name)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Keep the job-id annotation, so that the copy publishes the same variable names
    #[arg(long)]
    pub keep_job_id: bool,
    /// Show what would be created; create nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the created (or, with --dry-run, the would-be) Job in this format
    #[arg(short = 'o', long = "output", value_name = "FORMAT")]
    pub output: Option<ObjectFormat>,
}

/// A usage error found after parsing: exits 2, like clap's own.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl TransitionArgs {
    /// The environment: the argument, else an explicit `-n`. Never the context's default
    /// namespace: changing an environment's state takes a name.
    pub fn namespace(&self, global: &GlobalArgs, verb: &str) -> Result<String, UsageError> {
        match (&self.env, &global.namespace) {
            (Some(a), Some(n)) if a != n => {
                Err(UsageError(format!("two different environments given: {a} and -n {n}: give one")))
            }
            (Some(a), _) => Ok(a.clone()),
            (None, Some(n)) => Ok(n.clone()),
            (None, None) => {
                Err(UsageError(format!("which environment? give its namespace: `kubectl lifecycle env {verb} NAMESPACE`")))
            }
        }
    }
}

fn parse_event(s: &str) -> Result<Event, String> {
    s.parse::<Event>().map_err(|e| e.to_string())
}

/// Parses a duration the way kubectl does (`90s`, `10m`, `1h30m`, `500ms`), or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration: write e.g. 90s, 10m or 1h30m".into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return positive(Duration::from_secs(secs), s);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {s:?}: write e.g. 90s, 10m or 1h30m"));
        }
        let number: f64 = rest[..digits].parse().map_err(|_| format!("invalid number in duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let seconds = match unit {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            "" => return Err(format!("missing unit in duration {s:?}: use ms, s, m or h")),
            other => return Err(format!("unknown unit {other:?} in duration {s:?}: use ms, s, m or h")),
        };
        total += Duration::from_secs_f64(seconds);
    }
    positive(total, s)
}

fn positive(d: Duration, s: &str) -> Result<Duration, String> {
    if d.is_zero() { Err(format!("duration {s:?} must be more than zero")) } else { Ok(d) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn global_flags_anywhere() {
        let cli =
            Cli::try_parse_from(["kubectl-lifecycle", "outputs", "seed", "-n", "preview", "--context", "kind", "-o", "json"])
                .unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("preview"));
        assert_eq!(cli.global.context.as_deref(), Some("kind"));
        match cli.command {
            Command::Outputs(a) => assert_eq!(a.output, Some(OutputFormat::Json)),
            _ => panic!("wrong command"),
        }
    }

    #[test]
    fn transitions_take_an_explicit_namespace() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            match cli.command {
                Command::Env(EnvCommand::Stop(a)) => a.namespace(&cli.global, "stop"),
                _ => panic!("wrong command"),
            }
        };
        assert_eq!(parse(&["k", "env", "stop", "preview"]).unwrap(), "preview");
        assert_eq!(parse(&["k", "env", "stop", "-n", "preview"]).unwrap(), "preview");
        assert_eq!(parse(&["k", "env", "stop", "preview", "-n", "preview"]).unwrap(), "preview");
        assert!(parse(&["k", "env", "stop"]).unwrap_err().0.contains("env stop NAMESPACE"));
        assert!(parse(&["k", "env", "stop", "a", "-n", "b"]).is_err());
    }

    #[test]
    fn run_requires_a_known_event() {
        assert!(Cli::try_parse_from(["kubectl-lifecycle", "run", "seed"]).is_err());
        let err = Cli::try_parse_from(["kubectl-lifecycle", "run", "seed", "--event", "deploy"]).unwrap_err();
        assert!(err.to_string().contains("start, stop or delete"), "{err}");
        let cli = Cli::try_parse_from(["kubectl-lifecycle", "run", "seed", "--event", "Stop"]).unwrap();
        match cli.command {
            Command::Run(a) => assert_eq!(a.event, Event::Stop),
            _ => panic!("wrong command"),
        }
    }
}
