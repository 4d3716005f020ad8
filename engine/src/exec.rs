//! The one door to the outside world.
//!
//! Every docker / kind / helm / kubectl / git / ssh-keygen call goes through [`Call`]. Commands
//! are built at the call site with `xshell::cmd!` (safe interpolation, no shell) and handed to
//! [`cmd`]; this module then:
//!
//! - spawns the child in its own process group, so a timeout or Ctrl-C stops the whole tree;
//! - records the call (command line with secrets redacted, start, duration, exit status) and
//!   streams its output, redacted, to the log file the caller names;
//! - kills the group at the call's timeout (SIGTERM, then SIGKILL after a grace period);
//! - obeys the process-wide cancellation that SIGINT / SIGTERM trigger ([`install_signal_handlers`]);
//! - in dry-run mode prints the command instead of running it;
//! - on failure returns an [`ExecError`] naming the command, the exit status and the last lines
//!   of stderr (xshell alone drops stderr).
//!
//! Nothing else in the xtask spawns processes: clippy's `disallowed-methods` (see `clippy.toml`)
//! and the tidy test enforce it. Keeping all spawning here also means an xshell upgrade touches
//! one file.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::clock;

/// How long a process group gets between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);
/// How many stderr lines an error shows.
const STDERR_TAIL_LINES: usize = 20;

// ---------------------------------------------------------------------------------------------
// Process-wide state: cancellation, running process groups, secrets.
// ---------------------------------------------------------------------------------------------

static CANCELLED: AtomicBool = AtomicBool::new(false);
/// Set by a command with nothing to clean up (the lints): an interrupt ends the process at once.
static EXIT_ON_INTERRUPT: AtomicBool = AtomicBool::new(false);
/// When the process was first interrupted: cleanup after it gets [`AFTER_INTERRUPT`], no more.
static CANCELLED_AT: Mutex<Option<Instant>> = Mutex::new(None);
/// How long cleanup calls (diagnostics, deletes) may still run after Ctrl-C, all together: the
/// process exits within this plus the kill grace, whatever hangs.
pub const AFTER_INTERRUPT: Duration = Duration::from_secs(3);
/// The grace between SIGTERM and SIGKILL once the process is interrupted.
const INTERRUPTED_GRACE: Duration = Duration::from_millis(700);
static CANCEL_SIGNAL: AtomicI32 = AtomicI32::new(0);
static RUNNING_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Installs the SIGINT / SIGTERM handler: the first signal cancels every running call (their
/// process groups get SIGTERM, then SIGKILL after the grace period) and makes new calls refuse
/// to start, except cleanup calls ([`Call::cleanup`]). A second signal kills every group at once.
pub fn install_signal_handlers() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| anyhow::anyhow!("cannot install the SIGINT/SIGTERM handler: {e}"))?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                // The signal is recorded before the flag is read, and `exit_on_interrupt` sets
                // the flag before it reads the signal: one of the two sees the other, so a signal
                // that comes while a lint is starting is not lost (it was noted for a cleanup and
                // the lint ran to its end).
                CANCEL_SIGNAL.store(signal, Ordering::SeqCst);
                if EXIT_ON_INTERRUPT.load(Ordering::SeqCst) {
                    exit_interrupted();
                }
                let first = !CANCELLED.swap(true, Ordering::SeqCst);
                mark_cancelled_at();
                if first {
                    eprintln!("\ninterrupted: stopping running commands, then cleaning up (Ctrl-C again to kill at once)");
                    signal_groups(libc::SIGTERM);
                } else {
                    signal_groups(libc::SIGKILL);
                }
            }
        })
        .map_err(|e| anyhow::anyhow!("cannot start the signal thread: {e}"))?;
    Ok(())
}

/// For a command that leaves nothing to clean up (a lint reads files in this process): Ctrl-C
/// or SIGTERM ends it at once with exit status 130, instead of being noted for a cleanup that
/// a lint's loops never look for.
pub fn exit_on_interrupt() {
    EXIT_ON_INTERRUPT.store(true, Ordering::SeqCst);
    if CANCEL_SIGNAL.load(Ordering::SeqCst) != 0 {
        exit_interrupted();
    }
}

/// Ends a command that has nothing to clean up, once (the signal thread and the command's own
/// thread may both get here).
fn exit_interrupted() {
    static EXITING: AtomicBool = AtomicBool::new(false);
    if EXITING.swap(true, Ordering::SeqCst) {
        // The other one is exiting the process: wait for it.
        loop {
            thread::park();
        }
    }
    // Only the lint's own child calls (git) can be running: stop them, and go.
    signal_groups(libc::SIGKILL);
    eprintln!("\ninterrupted");
    std::process::exit(130);
}

/// Cancels everything, as Ctrl-C does. Used by the pipeline when a task fails.
pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
    mark_cancelled_at();
    signal_groups(libc::SIGTERM);
}

fn mark_cancelled_at() {
    if let Ok(mut at) = CANCELLED_AT.lock() {
        at.get_or_insert_with(Instant::now);
    }
}

/// After an interrupt: has the cleanup time ([`AFTER_INTERRUPT`]) run out?
fn cleanup_time_spent() -> bool {
    cancelled()
        && CANCELLED_AT.lock().ok().and_then(|at| *at).is_some_and(|at| at.elapsed() >= AFTER_INTERRUPT)
}

/// A cancellation scoped to one group of calls (a pipeline): setting it stops the calls that
/// carry it, as Ctrl-C stops all of them.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Set, or the whole process was interrupted.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst) || cancelled()
    }
}

/// True once SIGINT/SIGTERM arrived or [`cancel`] was called.
pub fn cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

fn signal_groups(signal: i32) {
    let groups = RUNNING_GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for pgid in groups {
        kill_group(pgid, signal);
    }
}

fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: killpg has no memory-safety preconditions; a stale pgid yields ESRCH.
        unsafe {
            libc::killpg(pgid, signal);
        }
    }
}

/// Marks `value` as secret for the rest of the process: it is replaced by `***` in every
/// recorded command line, log line, error and dry-run output.
pub fn register_secret(value: &str) {
    if value.is_empty() {
        return;
    }
    if let Ok(mut secrets) = SECRETS.lock() {
        if !secrets.iter().any(|s| s == value) {
            secrets.push(value.to_string());
            // Longest first, so a secret that contains another is redacted whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }
}

/// Replaces every registered secret in `text` by `***`.
pub fn redact(text: &str) -> String {
    let secrets = SECRETS.lock().map(|s| s.clone()).unwrap_or_default();
    let mut out = text.to_string();
    for secret in &secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// A call.
// ---------------------------------------------------------------------------------------------

/// Variables that hold credentials of the shared infra: no child process gets them (git, ssh,
/// kubectl, a flow's Go tests have no use for Gitea's admin password) unless its call passes one
/// on purpose with [`Call::env_secret`].
pub const SECRET_ENV: &[&str] = &["E2E_GITEA_ADMIN_PASSWORD"];

/// Starts describing a call. `cmd` comes from `xshell::cmd!`, whose Shell supplies the working
/// directory and the environment overlay (the run's `E2E_*` variables, a test's `PATH`).
pub fn cmd(cmd: xshell::Cmd<'_>) -> Call {
    let mut command = Command::from(cmd);
    for key in SECRET_ENV {
        command.env_remove(key);
    }
    Call {
        command,
        log: None,
        timeout: None,
        grace: DEFAULT_GRACE,
        stdin: None,
        echo: false,
        allow_failure: false,
        cleanup: false,
        dry_run: false,
        token: None,
        withhold_stdout: false,
    }
}

/// A command about to run, and how. Build with [`cmd`], finish with [`Call::run`].
pub struct Call {
    command: Command,
    log: Option<PathBuf>,
    timeout: Option<Duration>,
    grace: Duration,
    stdin: Option<Vec<u8>>,
    echo: bool,
    allow_failure: bool,
    cleanup: bool,
    dry_run: bool,
    token: Option<CancelToken>,
    withhold_stdout: bool,
}

/// What a finished call produced. `stdout` is the raw, unredacted output for the caller to
/// parse; the log file holds the redacted copy.
#[derive(Debug, Default, Clone)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl Call {
    /// Appends the call record and the command's output to this file (created with its parent
    /// directories).
    pub fn log(mut self, path: impl Into<PathBuf>) -> Call {
        self.log = Some(path.into());
        self
    }

    /// Keeps stdout out of the log and the echo (it holds credentials: a kubeconfig); the caller
    /// still gets it.
    pub fn withhold_stdout(mut self) -> Call {
        self.withhold_stdout = true;
        self
    }

    /// Kills the process group when the command runs longer than this.
    pub fn timeout(mut self, timeout: Duration) -> Call {
        self.timeout = Some(timeout);
        self
    }

    /// Time between SIGTERM and SIGKILL when the call is stopped (default 3 s).
    pub fn grace(mut self, grace: Duration) -> Call {
        self.grace = grace;
        self
    }

    /// Feeds these bytes on stdin (otherwise stdin is /dev/null). Stdin is never logged.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Call {
        self.stdin = Some(bytes.into());
        self
    }

    /// Marks a value used in this call (an argument, an env value, something the command will
    /// print) as secret; see [`register_secret`].
    pub fn secret(self, value: &str) -> Call {
        register_secret(value);
        self
    }

    /// Sets an environment variable whose value is secret (a token for git's env config, say):
    /// it reaches the child but no log, error or dry-run output.
    pub fn env_secret(mut self, key: &str, value: &str) -> Call {
        register_secret(value);
        self.command.env(key, value);
        self
    }

    /// Also copies the command's output to our stderr as it arrives (for `cargo xtask ci`).
    pub fn echo(mut self, yes: bool) -> Call {
        self.echo = yes;
        self
    }

    /// A non-zero exit is returned as `Ok(Output)` for the caller to inspect.
    pub fn allow_failure(mut self) -> Call {
        self.allow_failure = true;
        self
    }

    /// A cleanup call still runs after cancellation (it keeps its own timeout).
    pub fn cleanup(mut self) -> Call {
        self.cleanup = true;
        self
    }

    /// Stops the call when `token` is cancelled (and refuses to start it after).
    pub fn cancel_token(mut self, token: &CancelToken) -> Call {
        self.token = Some(token.clone());
        self
    }

    /// Prints the command instead of running it.
    pub fn dry_run(mut self, yes: bool) -> Call {
        self.dry_run = yes;
        self
    }

    /// The command line as it is recorded: env assignments the call sets (except PATH and the
    /// run context's `E2E_*`, which every call of a run shares), the
    /// program and its arguments, each shell-quoted when needed, secrets redacted.
    pub fn display(&self) -> String {
        let mut parts = Vec::new();
        for (key, value) in self.command.get_envs() {
            let (Some(key), Some(value)) = (key.to_str(), value) else { continue };
            if key == "PATH" || key.starts_with("E2E_") {
                continue;
            }
            parts.push(format!("{key}={}", quote(&value.to_string_lossy())));
        }
        parts.push(quote(&self.command.get_program().to_string_lossy()));
        for arg in self.command.get_args() {
            parts.push(quote(&arg.to_string_lossy()));
        }
        redact(&parts.join(" "))
    }

    fn program(&self) -> String {
        self.command.get_program().to_string_lossy().into_owned()
    }

    /// Starts the command detached: its own process group, output appended to the log, not
    /// stopped by Ctrl-C or by this process exiting (supervisors). Returns its pid.
    pub fn spawn_detached(mut self) -> Result<u32, ExecError> {
        let cmdline = self.display();
        let log_path = self.log.clone();
        let fail = |failure: Failure| {
            ExecError::new(cmdline.clone(), failure, String::new(), log_path.clone(), Duration::ZERO)
        };
        let Some(log) = self.log.clone() else {
            return Err(fail(Failure::Spawn("a detached command needs a log file".into())));
        };
        if let Some(parent) = log.parent() {
            fs::create_dir_all(parent).map_err(|e| fail(Failure::Log(log.clone(), e.to_string())))?;
        }
        let open = || OpenOptions::new().create(true).append(true).open(&log);
        let (out, err) = match (open(), open()) {
            (Ok(out), Ok(err)) => (out, err),
            (Err(e), _) | (_, Err(e)) => return Err(fail(Failure::Log(log.clone(), e.to_string()))),
        };
        if let Ok(mut f) = open() {
            let _ = writeln!(f, "=== {} $ {cmdline} (detached)", clock::rfc3339(SystemTime::now()));
        }
        if self.dry_run {
            println!("[dry-run] $ {cmdline} &");
            return Ok(0);
        }
        let program = self.program();
        self.command.process_group(0).stdin(Stdio::null()).stdout(out).stderr(err);
        let child = spawn_known(&mut self.command, true).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                fail(Failure::NotFound(program.clone()))
            } else {
                fail(Failure::Spawn(e.to_string()))
            }
        })?;
        let pid = child.id();
        // Reap it if it exits while we still run; it outlives us otherwise.
        thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        Ok(pid)
    }

    /// Runs the call to its end (or its timeout, or cancellation).
    pub fn run(mut self) -> Result<Output, ExecError> {
        let cmdline = self.display();
        let program = self.program();
        let log = match &self.log {
            Some(path) => Some(LogSink::open(path).map_err(|e| {
                ExecError::new(
                    cmdline.clone(),
                    Failure::Log(path.clone(), e.to_string()),
                    String::new(),
                    self.log.clone(),
                    Duration::ZERO,
                )
            })?),
            None => None,
        };
        let started_wall = SystemTime::now();
        if let Some(log) = &log {
            log.line(&format!("=== {} $ {cmdline}", clock::rfc3339(started_wall)));
        }

        if self.dry_run {
            println!("[dry-run] $ {cmdline}");
            if let Some(log) = &log {
                log.line("=== dry-run: not executed");
            }
            return Ok(Output { code: Some(0), ..Output::default() });
        }

        let error = |failure: Failure, stderr_tail: String, duration: Duration| {
            ExecError::new(cmdline.clone(), failure, stderr_tail, self.log.clone(), duration)
        };

        // Cleanup calls outlive a cancellation, but only for the time left after the interrupt:
        // a hanging `kubectl logs` in the diagnostics never holds the exit.
        let stop_requested = {
            let token = self.token.clone();
            let cleanup = self.cleanup;
            move || {
                if cleanup {
                    cleanup_time_spent()
                } else {
                    cancelled() || token.as_ref().is_some_and(CancelToken::is_cancelled)
                }
            }
        };
        if cancelled() {
            self.grace = self.grace.min(INTERRUPTED_GRACE);
        }
        if stop_requested() {
            return Err(error(Failure::Cancelled, String::new(), Duration::ZERO));
        }

        self.command
            .process_group(0)
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let start = Instant::now();
        let mut child = match spawn_known(&mut self.command, false) {
            Ok(child) => child,
            Err(e) => {
                let failure = if e.kind() == io::ErrorKind::NotFound {
                    Failure::NotFound(program.clone())
                } else {
                    Failure::Spawn(e.to_string())
                };
                if let Some(log) = &log {
                    log.line(&format!("=== could not start: {e}"));
                }
                return Err(error(failure, String::new(), Duration::ZERO));
            }
        };
        let pgid = child.id() as i32;
        let group = GroupGuard::register(pgid);
        if stop_requested() {
            kill_group(pgid, libc::SIGTERM);
        }

        if self.withhold_stdout {
            if let Some(log) = &log {
                log.line("=== stdout withheld from this log (it holds credentials)");
            }
        }
        let readers = Readers::start(&mut child, log.clone(), self.echo, self.withhold_stdout);
        if let (Some(bytes), Some(mut stdin)) = (self.stdin.take(), child.stdin.take()) {
            // A command that exits without reading its input is not our error: ignore EPIPE.
            thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }

        let (status, stop_reason) = wait(&mut child, pgid, self.timeout, self.grace, &stop_requested);
        // Whatever the leader left behind in its group (a backgrounded grandchild) goes too:
        // nothing is left running.
        kill_group(pgid, if stop_reason.is_some() { libc::SIGKILL } else { libc::SIGTERM });
        drop(group);
        let duration = start.elapsed();
        let (stdout, stderr) = readers.finish();

        let code = status.as_ref().ok().and_then(|s| s.code());
        let summary = match (&stop_reason, &status) {
            (Some(StopReason::Timeout), _) => format!("killed at timeout after {}", secs(duration)),
            (Some(StopReason::Cancelled), _) => format!("cancelled after {}", secs(duration)),
            (None, Ok(status)) => match status.code() {
                Some(code) => format!("exit {code} after {}", secs(duration)),
                None => format!("killed by signal {} after {}", status.signal().unwrap_or(0), secs(duration)),
            },
            (None, Err(e)) => format!("wait failed: {e}"),
        };
        if let Some(log) = &log {
            log.line(&format!("=== {summary}"));
        }

        let tail = tail_lines(&redact(&stderr), STDERR_TAIL_LINES);
        match (stop_reason, status) {
            (Some(StopReason::Timeout), _) => {
                Err(error(Failure::Timeout(self.timeout.unwrap_or_default()), tail, duration))
            }
            (Some(StopReason::Cancelled), _) => Err(error(Failure::Cancelled, tail, duration)),
            (None, Err(e)) => Err(error(Failure::Spawn(e.to_string()), tail, duration)),
            (None, Ok(status)) => {
                let output = Output { code, stdout, stderr, duration };
                if status.success() || self.allow_failure {
                    Ok(output)
                } else if let Some(code) = status.code() {
                    Err(error(Failure::Exit(code), tail, duration))
                } else {
                    Err(error(Failure::Signal(status.signal().unwrap_or(0)), tail, duration))
                }
            }
        }
    }
}

enum StopReason {
    Timeout,
    Cancelled,
}

fn wait(
    child: &mut Child,
    pgid: i32,
    timeout: Option<Duration>,
    grace: Duration,
    stop_requested: &dyn Fn() -> bool,
) -> (io::Result<std::process::ExitStatus>, Option<StopReason>) {
    let start = Instant::now();
    let mut stop: Option<(StopReason, Instant)> = None;
    let mut killed = false;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Ok(status), stop.map(|(r, _)| r)),
            Ok(None) => {}
            Err(e) => return (Err(e), stop.map(|(r, _)| r)),
        }
        let now = Instant::now();
        if stop.is_none() {
            let reason = if timeout.is_some_and(|t| now.duration_since(start) >= t) {
                Some(StopReason::Timeout)
            } else if stop_requested() {
                Some(StopReason::Cancelled)
            } else {
                None
            };
            if let Some(reason) = reason {
                kill_group(pgid, libc::SIGTERM);
                stop = Some((reason, now));
            }
        }
        // Interrupted meanwhile: the rest of the grace is short.
        let grace = if cancelled() { grace.min(INTERRUPTED_GRACE) } else { grace };
        if let Some((_, since)) = &stop {
            if !killed && now.duration_since(*since) >= grace {
                kill_group(pgid, libc::SIGKILL);
                killed = true;
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Keeps a running group in the process-wide list that Ctrl-C signals.
struct GroupGuard(i32);

impl GroupGuard {
    fn register(pgid: i32) -> GroupGuard {
        if let Ok(mut groups) = RUNNING_GROUPS.lock() {
            groups.push(pgid);
        }
        reaper_say(&format!("+{pgid}"));
        GroupGuard(pgid)
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Ok(mut groups) = RUNNING_GROUPS.lock() {
            groups.retain(|&g| g != self.0);
        }
        reaper_say(&format!("-{}", self.0));
    }
}

// ---------------------------------------------------------------------------------------------
// The reaper: nothing outlives a SIGKILLed xtask.
// ---------------------------------------------------------------------------------------------

/// The write end of the reaper's stdin, once [`start_reaper`] ran.
static REAPER: Mutex<Option<std::process::ChildStdin>> = Mutex::new(None);

/// Starts the reaper: a small process (this binary, `port-forward`-style hidden subcommand
/// `__reap`) that reads `+pgid` / `-pgid` lines on its stdin. When its stdin reaches EOF, which
/// the kernel causes whenever this process ends (even by SIGKILL, which no handler sees), it
/// kills every group still registered. `PR_SET_PDEATHSIG` alone would not do: it follows the
/// spawning *thread* (pool threads end before the process does) and reaches only the direct
/// child, not the `sleep` a shell step started in its group.
pub fn start_reaper(program: &Path) -> anyhow::Result<()> {
    let mut command = Command::new(program);
    // It kills process groups; it has no use for a credential (what `cmd` removes from every
    // call, the reaper is not started through it).
    for key in SECRET_ENV {
        command.env_remove(key);
    }
    command
        .arg("__reap")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own group: Ctrl-C in the terminal does not end it before it has done its job.
        .process_group(0);
    let child = spawn_known(&mut command, true)
        .map_err(|e| anyhow::anyhow!("cannot start the reaper ({}): {e}", program.display()))?;
    if let Ok(mut reaper) = REAPER.lock() {
        *reaper = child.stdin;
    }
    start_orphan_sweeper();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Orphans: what a step daemonised (`setsid sleep &`) is still ours.
// ---------------------------------------------------------------------------------------------

/// The processes this process spawned to outlive it (supervisors) or to watch it (the reaper):
/// they and what they run are never ours to end. The lock is held across spawning and recording,
/// so the sweeper never takes such a child for a descendant to end.
static DETACHED: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Descendants seen (pid, start ticks): ended when we end, by us or, after a SIGKILL, the reaper.
static DESCENDANTS: Mutex<Vec<(u32, u64)>> = Mutex::new(Vec::new());

fn spawn_known(command: &mut Command, detached: bool) -> io::Result<Child> {
    let mut known = DETACHED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let child = command.spawn()?;
    if detached {
        known.push(child.id());
    }
    Ok(child)
}

/// Process groups end with their leader's call, but a step that daemonises (`setsid`, a double
/// fork) leaves its group and session: nothing the group kill reaches. So this process is made a
/// child subreaper: "a subreaper fulfills the role of init(1) for its descendant processes. When
/// a process becomes orphaned (i.e., its immediate parent terminates), then that process will be
/// reparented to the nearest still living ancestor subreaper" (prctl(2), PR_SET_CHILD_SUBREAPER,
/// Linux man-pages 6.16): a daemonised step stays in our tree. A thread walks the tree every
/// 200 ms and tells the reaper of every descendant (pid and start time), so it ends them if we
/// are SIGKILLed; [`end_orphans`] ends them when we end otherwise. Not covered: a descendant
/// started and escaped within the last 200 ms before a SIGKILL, and supervisors (detached on
/// purpose, with what they run).
fn start_orphan_sweeper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and has no memory effects.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return;
    }
    let _ = thread::Builder::new().name("descendants".into()).spawn(|| loop {
        note_descendants();
        thread::sleep(Duration::from_millis(200));
    });
}

/// Records (and tells the reaper of) every process below us, outside the detached subtrees.
fn note_descendants() {
    let me = std::process::id();
    let detached = DETACHED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Ok(entries) = fs::read_dir("/proc") else { return };
    let mut children: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut stack: Vec<u32> = children.get(&me).cloned().unwrap_or_default();
    let mut seen = DESCENDANTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    while let Some(pid) = stack.pop() {
        if detached.contains(&pid) {
            continue;
        }
        if let Some(below) = children.get(&pid) {
            stack.extend(below);
        }
        let Some(ticks) = start_ticks(pid) else { continue };
        if !seen.contains(&(pid, ticks)) {
            seen.push((pid, ticks));
            reaper_say(&format!("*{pid} {ticks}"));
        }
    }
    // Keep the list to what still runs.
    seen.retain(|&(pid, ticks)| start_ticks(pid) == Some(ticks));
}

/// Field 4 (ppid) of `/proc/<pid>/stat` (proc_pid_stat(5)).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Ends (TERM, then KILL) every orphan of our tree still running: called as the command ends,
/// however it ends (not by SIGKILL: then the reaper does it).
pub fn end_orphans() {
    note_descendants();
    let all = DESCENDANTS.lock().map(|a| a.clone()).unwrap_or_default();
    end_pids(&all);
}

/// TERM, a short grace, KILL, of each (pid, start ticks) that is still that process.
fn end_pids(pids: &[(u32, u64)]) {
    let live = |&(pid, ticks): &(u32, u64)| start_ticks(pid) == Some(ticks) && !zombie(pid);
    let signal = |sig: i32| {
        for p in pids.iter().filter(|p| live(p)) {
            // SAFETY: kill has no memory-safety preconditions; the pid's start time was checked.
            unsafe {
                libc::kill(p.0 as i32, sig);
            }
        }
    };
    if !pids.iter().any(live) {
        return;
    }
    signal(libc::SIGTERM);
    let start = Instant::now();
    while pids.iter().any(live) && start.elapsed() < Duration::from_millis(300) {
        reap_zombies(pids);
        thread::sleep(Duration::from_millis(10));
    }
    signal(libc::SIGKILL);
    reap_zombies(pids);
}

/// A zombie (state `Z`): dead, waiting to be reaped.
fn zombie(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/stat")).ok().is_some_and(|stat| {
        stat.iter().rposition(|b| *b == b')').and_then(|c| stat.get(c + 2)).is_some_and(|s| *s == b'Z')
    })
}

/// Collects the exit of adopted orphans (our children now; no `Child` waits for them). Only pids
/// we just ended and whose start time we recorded: a call's own child is waited for by its call.
fn reap_zombies(pids: &[(u32, u64)]) {
    for &(pid, _) in pids {
        let mut status = 0;
        // SAFETY: waitpid on a pid that is our child by adoption; WNOHANG never blocks.
        unsafe {
            libc::waitpid(pid as i32, &mut status, libc::WNOHANG);
        }
    }
}

fn reaper_say(line: &str) {
    if let Ok(mut reaper) = REAPER.lock() {
        if let Some(stdin) = reaper.as_mut() {
            let _ = writeln!(stdin, "{line}");
        }
    }
}

/// The reaper's loop (`xtask __reap`): track the groups, kill what is left at EOF.
pub fn reap_main() -> i32 {
    let mut groups: Vec<i32> = Vec::new();
    let mut orphans: Vec<(u32, u64)> = Vec::new();
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix('*') {
            // An orphan of the xtask's tree: `*<pid> <start ticks>`.
            let mut words = rest.split_whitespace().map(str::parse::<u64>);
            if let (Some(Ok(pid)), Some(Ok(ticks))) = (words.next(), words.next()) {
                if let Ok(pid) = u32::try_from(pid) {
                    orphans.push((pid, ticks));
                }
            }
            continue;
        }
        match (line.get(..1), line.get(1..).and_then(|p| p.trim().parse::<i32>().ok())) {
            (Some("+"), Some(pgid)) => groups.push(pgid),
            (Some("-"), Some(pgid)) => groups.retain(|&g| g != pgid),
            _ => {}
        }
    }
    // What the groups' members started outside their group (`setsid … &` in a step that still
    // runs): found through the process tree before the groups go, ended after them.
    orphans.extend(descendants_of_groups(&groups));
    for &pgid in &groups {
        kill_group(pgid, libc::SIGTERM);
    }
    if !groups.is_empty() {
        thread::sleep(Duration::from_millis(300));
        for &pgid in &groups {
            kill_group(pgid, libc::SIGKILL);
        }
    }
    end_pids(&orphans);
    0
}

/// Every process below a member of `groups` that is not in one of them (pid, start ticks).
fn descendants_of_groups(groups: &[i32]) -> Vec<(u32, u64)> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    let mut children: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    let mut members = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Some((ppid, pgid)) = parent_and_group(pid) else { continue };
        children.entry(ppid).or_default().push(pid);
        if groups.contains(&pgid) {
            members.push(pid);
        }
    }
    let mut out = Vec::new();
    let mut stack: Vec<u32> =
        members.iter().flat_map(|m| children.get(m).cloned().unwrap_or_default()).collect();
    while let Some(pid) = stack.pop() {
        if let Some(below) = children.get(&pid) {
            stack.extend(below);
        }
        let in_group = parent_and_group(pid).is_some_and(|(_, g)| groups.contains(&g));
        if let (false, Some(ticks)) = (in_group, start_ticks(pid)) {
            out.push((pid, ticks));
        }
    }
    out
}

/// Fields 4 and 5 (ppid, pgrp) of `/proc/<pid>/stat` (proc_pid_stat(5)).
fn parent_and_group(pid: u32) -> Option<(u32, i32)> {
    let stat = fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    let mut words = rest.split_whitespace().skip(1);
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

// ---------------------------------------------------------------------------------------------
// Output plumbing.
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct LogSink(Arc<Mutex<File>>);

impl LogSink {
    fn open(path: &Path) -> io::Result<LogSink> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(LogSink(Arc::new(Mutex::new(file))))
    }

    fn line(&self, text: &str) {
        if let Ok(mut file) = self.0.lock() {
            let _ = writeln!(file, "{text}");
        }
    }
}

struct Readers {
    done: mpsc::Receiver<(bool, Vec<u8>)>,
    count: usize,
}

impl Readers {
    fn start(child: &mut Child, log: Option<LogSink>, echo: bool, withhold_stdout: bool) -> Readers {
        let (tx, rx) = mpsc::channel();
        let mut count = 0;
        if let Some(out) = child.stdout.take() {
            count += 1;
            let (out_log, out_echo) = if withhold_stdout { (None, false) } else { (log.clone(), echo) };
            spawn_reader(out, true, out_log, out_echo, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            count += 1;
            spawn_reader(err, false, log, echo, tx);
        }
        Readers { done: rx, count }
    }

    /// Collects both streams. A pipe still held open by an escaped grandchild is abandoned
    /// after a short wait instead of hanging the caller.
    fn finish(self) -> (String, String) {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        for _ in 0..self.count {
            match self.done.recv_timeout(Duration::from_secs(2)) {
                Ok((true, bytes)) => stdout = bytes,
                Ok((false, bytes)) => stderr = bytes,
                Err(_) => break,
            }
        }
        (String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
    }
}

/// How much of a stream is kept from its start, and how much from its end, in the log and in
/// what a call returns; what lies between is cut, and the cut is said (its size, where). A step
/// printing 100 MB costs neither 100 MB of memory nor a 100 MB log.
pub const OUTPUT_HEAD: usize = 8 << 20;
/// See [`OUTPUT_HEAD`].
pub const OUTPUT_TAIL: usize = 8 << 20;
/// The longest line read at once: a stream without newlines is read in pieces of this.
const LINE_MAX: u64 = 64 << 10;

fn spawn_reader(
    stream: impl Read + Send + 'static,
    is_stdout: bool,
    log: Option<LogSink>,
    echo: bool,
    done: mpsc::Sender<(bool, Vec<u8>)>,
) {
    thread::spawn(move || {
        let mut head = Vec::new();
        // The last lines past the head, at most OUTPUT_TAIL bytes; what falls out is cut.
        let mut tail: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
        let (mut tail_bytes, mut cut_bytes, mut cut_lines) = (0usize, 0u64, 0u64);
        let mut reader = BufReader::new(stream);
        let log_line = |line: &[u8]| {
            if log.is_some() || echo {
                let text = redact(String::from_utf8_lossy(line).trim_end_matches(['\n', '\r']));
                if let Some(log) = &log {
                    log.line(&text);
                }
                if echo {
                    eprintln!("{text}");
                }
            }
        };
        loop {
            let mut line = Vec::new();
            match reader.by_ref().take(LINE_MAX).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if tail.is_empty() && head.len() + line.len() <= OUTPUT_HEAD {
                if log.is_some() || echo {
                    log_line(&line);
                }
                head.extend_from_slice(&line);
                continue;
            }
            if echo {
                // The terminal sees everything as it comes; only the log and memory are capped.
                let text = redact(String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']));
                eprintln!("{text}");
            }
            tail_bytes += line.len();
            tail.push_back(line);
            while tail_bytes > OUTPUT_TAIL {
                let Some(old) = tail.pop_front() else { break };
                tail_bytes -= old.len();
                cut_bytes += old.len() as u64;
                cut_lines += 1;
            }
        }
        let mut all = head;
        if cut_bytes > 0 {
            let note = format!(
                "=== {cut_bytes} bytes ({cut_lines} lines) of {} cut here: the first {} MiB and the last {} MiB are kept ===",
                if is_stdout { "stdout" } else { "stderr" },
                OUTPUT_HEAD >> 20,
                OUTPUT_TAIL >> 20
            );
            if let Some(log) = &log {
                log.line(&note);
            }
            all.extend_from_slice(note.as_bytes());
            all.push(b'\n');
        }
        for line in tail {
            if let Some(log) = &log {
                log.line(&redact(String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r'])));
            }
            all.extend_from_slice(&line);
        }
        let _ = done.send((is_stdout, all));
    });
}

// ---------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Exit(i32),
    Signal(i32),
    Timeout(Duration),
    Cancelled,
    NotFound(String),
    Spawn(String),
    Log(PathBuf, String),
}

/// A failed call: the command, what went wrong and the tail of its stderr, secrets redacted.
/// (Boxed: errors are rare, results are everywhere.)
#[derive(Debug, Clone)]
pub struct ExecError(Box<ExecErrorData>);

#[derive(Debug, Clone)]
pub struct ExecErrorData {
    pub cmdline: String,
    pub failure: Failure,
    pub stderr_tail: String,
    pub log: Option<PathBuf>,
    pub duration: Duration,
}

impl std::ops::Deref for ExecError {
    type Target = ExecErrorData;
    fn deref(&self) -> &ExecErrorData {
        &self.0
    }
}

impl ExecError {
    pub fn new(
        cmdline: String,
        failure: Failure,
        stderr_tail: String,
        log: Option<PathBuf>,
        duration: Duration,
    ) -> ExecError {
        ExecError(Box::new(ExecErrorData { cmdline, failure, stderr_tail, log, duration }))
    }

    pub fn is_cancelled(&self) -> bool {
        self.failure == Failure::Cancelled
    }
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmd = &self.cmdline;
        match &self.failure {
            Failure::Exit(code) => {
                write!(f, "`{cmd}` failed with exit status {code} after {}", secs(self.duration))?
            }
            Failure::Signal(sig) => write!(f, "`{cmd}` was killed by signal {sig}")?,
            Failure::Timeout(t) => {
                write!(f, "`{cmd}` timed out after {} and was killed with its process group", secs(*t))?
            }
            Failure::Cancelled => write!(f, "`{cmd}` was cancelled (interrupted)")?,
            Failure::NotFound(program) => {
                write!(f, "cannot run `{cmd}`: `{program}` was not found on PATH")?;
                if let Some(hint) = crate::tools::install_hint(program) {
                    write!(f, "; {hint}")?;
                }
                write!(f, " (`cargo xtask doctor` checks every tool)")?;
            }
            Failure::Spawn(e) => write!(f, "cannot run `{cmd}`: {e}")?,
            Failure::Log(path, e) => write!(f, "cannot open log file {} for `{cmd}`: {e}", path.display())?,
        }
        if !self.stderr_tail.trim().is_empty() {
            write!(f, "\n--- last lines of stderr ---\n{}", printable(self.stderr_tail.trim_end()))?;
        }
        if let Some(log) = &self.log {
            write!(f, "\n(full output: {})", log.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for ExecError {}

// ---------------------------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------------------------

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `text` safe to print on a terminal: control characters other than newline and tab (a tool's
/// colour codes, a stray carriage return, a bell) are shown escaped (`\u{1b}`), never obeyed.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Quotes a word for display the way a POSIX shell would need it.
pub fn quote(word: &str) -> String {
    let plain =
        !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,^".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Finds `program` on the `PATH` the given shell would use (its overlay, else the process's).
pub fn which(sh: &xshell::Shell, program: &str) -> Option<PathBuf> {
    let path = sh.var_os("PATH")?;
    which_in(program, &path)
}

fn which_in(program: &str, path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path).map(|dir| dir.join(program)).find(|candidate| {
        fs::metadata(candidate).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    })
}

/// True when a process with this pid exists, ours or another user's: `kill(pid, 0)` fails with
/// EPERM for a live process we may not signal (kill(2)), and only ESRCH means there is none.
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// When process `pid` started, in clock ticks after boot: field 22 (`starttime`) of
/// `/proc/<pid>/stat`, read after the last `)` because field 2, the command name in parentheses,
/// may itself hold spaces and parentheses (Linux man-pages 6.16, `proc_pid_stat(5)`: "(2) comm
/// %s The filename of the executable, in parentheses", "(22) starttime %llu The time the process
/// started after system boot ... expressed in clock ticks").
/// With the pid it names one process for the life of the machine: a pid is reused, a (pid,
/// start time) pair is not. None when there is no such process or the file cannot be read.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    // After the name: field 3 (state) is the first word, so field 22 is the 20th.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_shows_words_a_shell_would_split() {
        assert_eq!(quote("docker"), "docker");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn redaction_replaces_longest_secret_first() {
        register_secret("tok-abc");
        register_secret("tok-abc-def-ghi");
        assert_eq!(redact("x tok-abc-def-ghi y tok-abc"), "x *** y ***");
    }

    #[test]
    fn start_ticks_name_this_process_and_none_for_no_process() {
        let me = start_ticks(std::process::id()).expect("our own start time");
        assert_eq!(start_ticks(std::process::id()), Some(me));
        assert!(start_ticks(u32::MAX).is_none());
    }

    #[test]
    fn stderr_tail_keeps_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
    }
}
