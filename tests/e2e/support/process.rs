//! Commands a test runs as a user would (the plugin, `make`, the example's
//! printed steps): what they printed and how they ended, within a deadline.

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use serde_json::Value;

/// What one command printed, and how it ended (`-1`: killed at its deadline).
pub struct Ran {
    /// The command as a person would type it, for messages.
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Ran {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` exited {}\n--- stdout:\n{}--- stderr:\n{}---", self.command, self.code, self.stdout, self.stderr)
    }
}

impl Ran {
    /// Exit code 0, else an error with everything printed.
    pub fn success(self) -> Result<Ran> {
        ensure!(self.code == 0, "expected success: {self}");
        Ok(self)
    }

    /// Exit code `code`, else an error with everything printed.
    pub fn exit(self, code: i32) -> Result<Ran> {
        ensure!(self.code == code, "expected exit code {code}: {self}");
        Ok(self)
    }

    /// stdout as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout).with_context(|| format!("stdout is not JSON: {self}"))
    }

    /// Checks that stdout (`out`) or stderr (`!out`) contains every piece of text.
    pub fn says(&self, out: bool, pieces: &[&str]) -> Result<&Ran> {
        let text = if out { &self.stdout } else { &self.stderr };
        for p in pieces {
            ensure!(text.contains(p), "{} should contain {p:?}: {self}", if out { "stdout" } else { "stderr" });
        }
        Ok(self)
    }

    /// stdout then stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Reads a pipe to its end on a thread of its own (a full pipe must never block the child).
pub fn read_all(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `cmd` (stdin closed, stdout and stderr captured) and waits for it at
/// most `timeout`: a command still running then is killed and is an error.
pub fn run(mut cmd: Command, command: String, timeout: Duration) -> Result<Ran> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{command}`"))?;
    let (out, err) = (read_all(child.stdout.take()), read_all(child.stderr.take()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ran = Ran {
        command,
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    match status {
        Some(_) => Ok(ran),
        None => Err(anyhow!("did not end within {timeout:?} (killed): {ran}")),
    }
}

/// The plugin binary: `$KUBECTL_LIFECYCLE` (set by tests/run-e2e.sh after it
/// builds it), else the workspace's release build (built once if missing).
/// The environment of a command run as a user runs it: the cluster's kubeconfig, a PATH where
/// `kubectl` and `kubectl-lifecycle` (so `kubectl lifecycle`) are found, and the example's local
/// variant (`scripts/example.sh`).
pub fn user_env() -> Result<Vec<(String, String)>> {
    let plugin = plugin_binary()?;
    let mut path = vec![plugin.parent().context("plugin directory")?.to_path_buf()];
    // kubectl: on PATH (tests/run-e2e.sh puts the cluster's binaries there), else the cluster's own.
    if let Some(dir) = crate::kubeconfig_path().parent() {
        path.push(dir.join("bin"));
    }
    let mut joined = std::env::join_paths(path)?.to_string_lossy().into_owned();
    if let Ok(old) = std::env::var("PATH") {
        joined = format!("{joined}:{old}");
    }
    Ok(vec![
        ("PATH".into(), joined),
        ("KUBECONFIG".into(), crate::kubeconfig_path().to_string_lossy().into_owned()),
        ("KUBECTL_LIFECYCLE".into(), plugin.to_string_lossy().into_owned()),
        ("EXAMPLE_VARIANT".into(), "local".into()),
    ])
}

pub fn plugin_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KUBECTL_LIFECYCLE").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        ensure!(p.is_file(), "KUBECTL_LIFECYCLE={} is not a file", p.display());
        return Ok(p);
    }
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.as_ref() {
        return Ok(p.clone());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("target/release/kubectl-lifecycle");
    if !path.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "kubectl-lifecycle"])
            .current_dir(&root)
            .status()
            .context("running cargo build for kubectl-lifecycle")?;
        ensure!(status.success(), "cargo build --release -p kubectl-lifecycle failed: {status}");
    }
    *built = Some(path.clone());
    Ok(path)
}

/// Runs `kubectl lifecycle ARGS` with the cluster's kubeconfig, within `timeout`.
pub async fn kubectl_lifecycle(timeout: Duration, args: &[&str]) -> Result<Ran> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(plugin_binary()?);
        cmd.arg("--kubeconfig").arg(crate::kubeconfig_path()).args(&args);
        run(cmd, format!("kubectl lifecycle {}", args.join(" ")), timeout)
    })
    .await?
}
