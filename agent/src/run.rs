//! `lifecycle-agent run`: the native sidecar.
//!
//! Single-threaded. SIGTERM and SIGINT are blocked and read from a signalfd;
//! the output directory is watched with inotify; the agent sleeps in `poll`
//! on both with no timeout, so it uses no CPU while idle. When the output
//! file is written (`IN_CLOSE_WRITE`, `IN_MOVED_TO`, or `IN_CREATE` of
//! something that is not an empty regular file), it is checked 200 ms after
//! the last such event (a burst of writes gives one check) and problems are
//! logged at once. On the first SIGTERM or SIGINT (the kubelet stops native
//! sidecars once the job's main containers have ended) the file is read for
//! good and handed to the server; later signals change nothing.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchMask};

use lifecycle_contract::names::{self, agent_env};
use lifecycle_contract::output;

use crate::http::{self, Client, Url};
use crate::log;
use crate::publish::{self, Outcome, Publisher, Submission};
use crate::safe_file;

/// Delay between the last write event and the early check.
const SETTLE: Duration = Duration::from_millis(200);
/// Kept out of the grace period for the kubelet and our own exit.
const GRACE_MARGIN: Duration = Duration::from_secs(3);

pub struct Config {
    pub client: Result<Client, String>,
    pub output_file: PathBuf,
    pub token_file: PathBuf,
    pub grace: Duration,
    pub job_id: String,
    pub termination_log: PathBuf,
}

impl Config {
    /// From the environment. Never fails: a misconfiguration is logged at
    /// start and reported when publishing (a sidecar that exits early would
    /// only be restarted by the kubelet).
    pub fn from_env() -> Config {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let client = (|| {
            let url = Url::parse(&var(agent_env::SERVER_URL).ok_or(format!("{} is not set", agent_env::SERVER_URL))?)?;
            let tls = if url.tls {
                let ca = var(agent_env::SERVER_CA).ok_or(format!("{} is not set", agent_env::SERVER_CA))?;
                Some(http::tls_config(ca.as_bytes())?)
            } else {
                None
            };
            let addr = match var(agent_env::SERVER_ADDR) {
                Some(a) => Some(a.trim().parse().map_err(|_| {
                    format!("{}={a:?} is not an IP address and port (e.g. 10.96.12.34:443)", agent_env::SERVER_ADDR)
                })?),
                None => None,
            };
            Ok(Client { url, addr, tls })
        })();
        let grace = match var(agent_env::GRACE_SECONDS).map(|v| v.trim().parse::<u64>()) {
            Some(Ok(s)) => Duration::from_secs(s),
            Some(Err(_)) => {
                log::warn("config", &[("error", &format!("{} is not a number; using 30", agent_env::GRACE_SECONDS))]);
                Duration::from_secs(30)
            }
            None => Duration::from_secs(30),
        };
        Config {
            client,
            output_file: var(agent_env::OUTPUT_FILE).unwrap_or_else(|| names::OUTPUT_FILE.into()).into(),
            token_file: var(agent_env::TOKEN_FILE).unwrap_or_else(|| names::injected::TOKEN_FILE.into()).into(),
            grace,
            job_id: var(agent_env::JOB_ID).unwrap_or_default(),
            termination_log: var(agent_env::TERMINATION_LOG).unwrap_or_else(|| "/dev/termination-log".into()).into(),
        }
    }
}

/// Time to publish after SIGTERM: the grace period less a margin (half of it
/// when it is short), at least one second.
pub fn publish_budget(grace: Duration) -> Duration {
    let budget = if grace > 2 * GRACE_MARGIN { grace - GRACE_MARGIN } else { grace / 2 };
    budget.max(Duration::from_secs(1))
}

pub fn run() -> i32 {
    // Signals first: a SIGTERM from now on is never lost.
    let signals = Signals::block();
    let cfg = Config::from_env();
    let watch = Watch::new(&cfg.output_file);
    let server = match &cfg.client {
        Ok(c) => c.url.to_string(),
        Err(_) => String::from("-"),
    };
    log::info(
        "start",
        &[
            ("version", &env!("CARGO_PKG_VERSION")),
            ("job", &cfg.job_id),
            ("output_file", &cfg.output_file.display()),
            ("server", &server),
            ("grace_seconds", &cfg.grace.as_secs()),
        ],
    );
    if let Err(e) = &cfg.client {
        log::error("config", &[("error", e)]);
    }
    let signals = signals.map_err(|e| log::error("signals", &[("error", &e)])).ok();
    let mut watch = watch.map_err(|e| log::warn("watch", &[("error", &e), ("path", &cfg.output_file.display())])).ok();
    let sig = idle(signals.as_ref(), watch.as_mut(), &cfg);
    let got_signal = Instant::now();
    log::info("stopping", &[("signal", &sig), ("job", &cfg.job_id)]);
    drop(watch);
    finish(&cfg, got_signal + publish_budget(cfg.grace))
}

/// Waits for SIGTERM/SIGINT, checking the output file after writes. Returns the signal's name.
fn idle(signals: Option<&Signals>, mut watch: Option<&mut Watch>, cfg: &Config) -> &'static str {
    let mut check_at: Option<Instant> = None;
    loop {
        let timeout = match check_at {
            None => -1,
            Some(t) => t.saturating_duration_since(Instant::now()).as_millis().min(10_000) as i32,
        };
        let mut fds = [
            libc::pollfd { fd: signals.map_or(-1, |s| s.fd.as_raw_fd()), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: watch.as_deref().map_or(-1, Watch::fd), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: `fds` is a valid array of 2 pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log::error("poll", &[("error", &e)]);
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        if fds[0].revents != 0
            && let Some(s) = signals.and_then(|s| s.read())
        {
            return s;
        }
        if fds[1].revents != 0
            && let Some(w) = watch.as_deref_mut()
            && w.read_events(&cfg.output_file)
        {
            check_at = Some(Instant::now() + SETTLE);
        }
        if check_at.is_some_and(|t| Instant::now() >= t) {
            check_at = None;
            early_check(&cfg.output_file);
        }
    }
}

/// Checks the file after a write and logs what the server would say.
fn early_check(path: &Path) {
    match safe_file::read(path) {
        Ok(None) => {}
        Ok(Some(bytes)) => {
            report(&bytes, false);
        }
        Err(e) => log::error("output-unreadable", &[("final", &false), ("error", &e)]),
    }
}

/// Logs the result of the output file rules: counts, warnings, every error.
/// Never a value. Returns true when the file is empty (no outputs).
pub fn report(bytes: &[u8], last: bool) -> bool {
    match output::parse(bytes) {
        Ok(o) if o.empty_file => {
            log::info("no-outputs", &[("final", &last), ("reason", &"the output file is empty")]);
            true
        }
        Ok(o) => {
            for w in &o.warnings {
                log::warn("output-warning", &[("final", &last), ("rule", &w.rule), ("msg", w)]);
            }
            let keys: Vec<&str> = o.entries.iter().map(|e| e.key.as_str()).collect();
            log::info(
                "output-valid",
                &[
                    ("final", &last),
                    ("outputs", &o.entries.len()),
                    ("sensitive", &o.sensitive_count()),
                    ("keys", &keys.join(",")),
                ],
            );
            false
        }
        Err(rejected) => {
            for e in &rejected.errors {
                log::error("output-error", &[("final", &last), ("rule", &e.rule), ("msg", e)]);
            }
            log::error(
                "output-invalid",
                &[
                    ("final", &last),
                    ("errors", &rejected.errors.len()),
                    ("msg", &"the output file breaks the rules: nothing of it will be published"),
                ],
            );
            false
        }
    }
}

/// After SIGTERM: read the file for good and publish it. Returns the exit code.
fn finish(cfg: &Config, deadline: Instant) -> i32 {
    let submission = match safe_file::read(&cfg.output_file) {
        Ok(None) => {
            log::info("no-outputs", &[("final", &true), ("reason", &"no output file")]);
            return report_end(cfg, deadline);
        }
        Ok(Some(bytes)) => {
            if report(&bytes, true) {
                return report_end(cfg, deadline);
            }
            Submission::File(bytes)
        }
        Err(e) => {
            log::error("output-unreadable", &[("final", &true), ("error", &e)]);
            Submission::Unreadable(e.to_string())
        }
    };
    let client = match &cfg.client {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("{}: the agent is misconfigured: {e}", names::OUTPUTS_NOT_PUBLISHED);
            terminate(cfg, &reason);
            return 1;
        }
    };
    let publisher = Publisher { client, token_file: &cfg.token_file };
    match publisher.publish(&submission, deadline) {
        Outcome::Published(_) => 0,
        Outcome::Failed(reason) => {
            terminate(cfg, &format!("{}: {reason}", names::OUTPUTS_NOT_PUBLISHED));
            1
        }
    }
}

/// Longest a job with no outputs waits for the server to note its end.
const END_REPORT_BUDGET: Duration = Duration::from_secs(3);

/// No outputs: tell the server the job's pod ended (an empty submission), so
/// that what waits for this run (the next stage, gated pods) goes on at once
/// rather than when the Job controller marks the Job complete. Nothing is lost
/// if it cannot: the exit code is 0 either way.
fn report_end(cfg: &Config, deadline: Instant) -> i32 {
    let Ok(client) = &cfg.client else { return 0 };
    let publisher = Publisher { client, token_file: &cfg.token_file };
    if let Outcome::Failed(reason) = publisher.publish(&Submission::Nothing, deadline.min(Instant::now() + END_REPORT_BUDGET)) {
        log::warn(
            "end-not-reported",
            &[("error", &reason), ("msg", &"no outputs were lost; the run ends when its Job completes")],
        );
    }
    0
}

/// Writes the termination message (one line, at most 4096 bytes: the kubelet's limit).
fn terminate(cfg: &Config, reason: &str) {
    let mut msg = publish::one_line(reason, 4000);
    while msg.len() > 4096 {
        msg.pop();
    }
    if let Err(e) = std::fs::write(&cfg.termination_log, msg.as_bytes()) {
        log::warn("termination-log", &[("path", &cfg.termination_log.display()), ("error", &e)]);
    }
}

/// SIGTERM and SIGINT, blocked and read from a signalfd.
struct Signals {
    fd: OwnedFd,
}

extern "C" fn ignore_signal(_: libc::c_int) {}

impl Signals {
    fn block() -> io::Result<Signals> {
        // SAFETY: plain libc calls on local, initialised values.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            // A handler (never run while blocked) so that, as PID 1 of the
            // container, the signals are not discarded if ever unblocked.
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
            libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Signals { fd: OwnedFd::from_raw_fd(fd) })
        }
    }

    fn read(&self) -> Option<&'static str> {
        // SAFETY: reading one signalfd_siginfo into a properly sized buffer.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if n as usize != size {
            return None;
        }
        Some(match info.ssi_signo as i32 {
            libc::SIGTERM => "SIGTERM",
            libc::SIGINT => "SIGINT",
            _ => "signal",
        })
    }
}

/// An inotify watch on the output file's directory.
struct Watch {
    inotify: Inotify,
}

impl Watch {
    fn new(file: &Path) -> io::Result<Watch> {
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let inotify = Inotify::init()?;
        inotify.watches().add(dir, WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO | WatchMask::CREATE | WatchMask::ONLYDIR)?;
        Ok(Watch { inotify })
    }

    fn fd(&self) -> RawFd {
        self.inotify.as_raw_fd()
    }

    /// Drains the events; true when one calls for a check of `file`.
    fn read_events(&mut self, file: &Path) -> bool {
        let name = file.file_name();
        let mut check = false;
        let mut buf = [0u8; 4096];
        // Non-blocking: an error (WouldBlock) means the queue is drained.
        while let Ok(events) = self.inotify.read_events(&mut buf) {
            for ev in events {
                check |= ev.mask.contains(EventMask::Q_OVERFLOW)
                    || (ev.name.is_some() && ev.name == name && calls_for_check(ev.mask, file));
            }
        }
        check
    }
}

/// A write that ended (`IN_CLOSE_WRITE`), a rename into place (`IN_MOVED_TO`),
/// or a creation of something other than an empty regular file (an empty one
/// is still being written; a link or FIFO is reported at once).
fn calls_for_check(mask: EventMask, file: &Path) -> bool {
    mask.intersects(EventMask::CLOSE_WRITE | EventMask::MOVED_TO)
        || (mask.contains(EventMask::CREATE) && safe_file::is_regular_nonempty_or_special(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets() {
        let s = Duration::from_secs;
        assert_eq!(publish_budget(s(30)), s(27));
        assert_eq!(publish_budget(s(7)), s(4));
        assert_eq!(publish_budget(s(6)), s(3));
        assert_eq!(publish_budget(s(2)), s(1));
        assert_eq!(publish_budget(s(0)), s(1));
    }
}
