//! Commands a test runs as a user would (the plugin, `make`, the example's
//! printed steps): what they printed and how they ended, within a deadline.

use std::fmt;
use std::io::Read;
use std::process::{Command, Stdio};
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
