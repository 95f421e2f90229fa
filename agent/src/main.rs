//! `lifecycle-agent`: the native sidecar of lifecycle-jobs, and a checker of
//! output files for job authors.
//!
//! ```text
//! lifecycle-agent [run]                        the sidecar (the webhook passes `run`)
//! lifecycle-agent validate [--job-id ID] FILE  check FILE like the sidecar and the server
//! lifecycle-agent --help | --version
//! ```
//!
//! The command line is parsed by hand: two subcommands and one option do not
//! justify clap's few hundred KiB in a binary shipped into every job pod.

mod http;
mod log;
mod publish;
mod run;
mod safe_file;
mod validate;

use std::process::ExitCode;

const USAGE: &str = "\
lifecycle-agent: the output capture sidecar of lifecycle-jobs

usage:
  lifecycle-agent [run]                        run as the job pod's sidecar (configured by LIFECYCLE_* variables)
  lifecycle-agent validate [--job-id ID] FILE  check an output file exactly as the sidecar and the server do;
                                               exit 0 when valid, 1 when not, 2 on a usage error
  lifecycle-agent --help | --version
";

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Run,
    Validate { file: String, job_id: Option<String> },
    Help,
    Version,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter().map(String::as_str);
    match it.next() {
        None | Some("run") => match it.next() {
            None => Ok(Command::Run),
            Some(a) => Err(format!("unexpected argument {a:?} after run")),
        },
        Some("-h" | "--help" | "help") => Ok(Command::Help),
        Some("-V" | "--version" | "version") => Ok(Command::Version),
        Some("validate") => {
            let mut file = None;
            let mut job_id = None;
            let mut only_files = false;
            while let Some(a) = it.next() {
                if !only_files && a == "--" {
                    only_files = true;
                } else if !only_files && (a == "--job-id" || a.starts_with("--job-id=")) {
                    let v = match a.strip_prefix("--job-id=") {
                        Some(v) => v,
                        None => it.next().ok_or("--job-id needs a value")?,
                    };
                    if v.trim().is_empty() {
                        return Err("--job-id needs a value".into());
                    }
                    job_id = Some(v.to_string());
                } else if !only_files && (a == "-h" || a == "--help") {
                    return Ok(Command::Help);
                } else if !only_files && a.starts_with('-') && a != "-" {
                    return Err(format!("unknown option {a:?}"));
                } else if file.is_some() {
                    return Err("validate takes one FILE".into());
                } else {
                    file = Some(a.to_string());
                }
            }
            let file = file.ok_or("validate needs a FILE")?;
            Ok(Command::Validate { file, job_id })
        }
        Some(other) => Err(format!("unknown command {other:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let code = match parse_args(&args) {
        Ok(Command::Run) => run::run(),
        Ok(Command::Validate { file, job_id }) => validate::validate(&file, job_id.as_deref()),
        Ok(Command::Help) => {
            print!("{USAGE}");
            0
        }
        Ok(Command::Version) => {
            println!("lifecycle-agent {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Err(e) => {
            eprint!("lifecycle-agent: {e}\n\n{USAGE}");
            2
        }
    };
    ExitCode::from(code as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn args() {
        assert_eq!(p(&[]), Ok(Command::Run));
        assert_eq!(p(&["run"]), Ok(Command::Run));
        assert!(p(&["run", "x"]).is_err());
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(p(&["validate", "f.json"]), Ok(Command::Validate { file: "f.json".into(), job_id: None }));
        assert_eq!(
            p(&["validate", "--job-id", "db", "f.json"]),
            Ok(Command::Validate { file: "f.json".into(), job_id: Some("db".into()) })
        );
        assert_eq!(
            p(&["validate", "f.json", "--job-id=db"]),
            Ok(Command::Validate { file: "f.json".into(), job_id: Some("db".into()) })
        );
        assert_eq!(p(&["validate", "--", "-f"]), Ok(Command::Validate { file: "-f".into(), job_id: None }));
        for bad in
            [&["validate"][..], &["validate", "a", "b"], &["validate", "--x", "a"], &["validate", "a", "--job-id"], &["nope"]]
        {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }
}
