//! Fixed port-forwards to shared infra (Gitea on 13000/13022, Prometheus on 19090), supervised.
//!
//! `kubectl port-forward` exits (kubectl >= 1.23, kubernetes/kubernetes#103526) or hangs (<= 1.22,
//! kubernetes/kubernetes#67059) when its pod goes, and a `svc/` forward resolves one pod at start
//! and never again (reconnect was asked for in #59816 and never merged). So each forward is
//! run by a small supervisor that outlives the xtask process: it probes the forward (HTTP path or
//! TCP connect) and restarts kubectl, which resolves the service's pod again, with backoff. Its
//! pid and log live in target/e2e/port-forwards/. A port held by something that is not ours is
//! reported, never killed; `stop` ends only what we started.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use xshell::{cmd, Shell};

use crate::e2e::definition::{self, Forward, Probe};
use crate::exec::{self, CancelToken};
use crate::paths;

pub(crate) fn pid_file(port: u16) -> PathBuf {
    paths::port_forwards_dir().join(format!("{port}.pid"))
}

pub(crate) fn log_file(port: u16) -> PathBuf {
    paths::port_forwards_dir().join(format!("{port}.log"))
}

/// Who holds a local port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Holder {
    Free,
    /// Our supervisor (its pid).
    Ours(u32),
    /// Someone else: pid and command name when we can see them.
    Foreign(Option<(u32, String)>),
}

/// The pid of our live supervisor for `port`: the process the pid file names, *if* it still has
/// the start time the file recorded. A pid is reused; a pid with its start time names one process
/// since boot ([`exec::start_ticks`]). Nothing else counts: no command line is matched (any
/// process, another checkout's supervisor among them, may say `port-forward supervise`), and a
/// pid file without a start time (an older xtask's) names nothing we may signal.
pub(crate) fn our_supervisor(port: u16) -> Option<u32> {
    let text = std::fs::read_to_string(pid_file(port)).ok()?;
    let (pid, ticks) = parse_pid_file(&text)?;
    (exec::start_ticks(pid) == Some(ticks)).then_some(pid)
}

/// `<pid> <start ticks>` (one line), as [`write_pid_file`] writes it.
fn parse_pid_file(text: &str) -> Option<(u32, u64)> {
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse::<u32>().ok().filter(|p| *p > 1)?;
    let ticks = words.next()?.parse::<u64>().ok()?;
    words.next().is_none().then_some((pid, ticks))
}

/// Records `pid` as the supervisor of `port`, with its start time (nothing when it is gone).
fn write_pid_file(port: u16, pid: u32) -> Result<()> {
    let Some(ticks) = exec::start_ticks(pid) else { return Ok(()) };
    std::fs::create_dir_all(paths::port_forwards_dir())
        .with_context(|| format!("creating {}", paths::port_forwards_dir().display()))?;
    let path = pid_file(port);
    std::fs::write(&path, format!("{pid} {ticks}\n")).with_context(|| format!("writing {}", path.display()))
}

pub(crate) fn holder(port: u16) -> Holder {
    if let Some(pid) = our_supervisor(port) {
        return Holder::Ours(pid);
    }
    if TcpListener::bind(("127.0.0.1", port)).is_ok() {
        return Holder::Free;
    }
    Holder::Foreign(listener_owner(port))
}

/// Who listens on `port` (Linux: /proc/net/tcp* inode, then the /proc/<pid>/fd holding it).
pub(crate) fn listener_owner(port: u16) -> Option<(u32, String)> {
    let port_hex = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9 && fields[1].ends_with(&port_hex) && fields[3] == "0A" {
                inodes.push(format!("socket:[{}]", fields[9]));
            }
        }
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                    let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                    return Some((pid, name.trim().to_string()));
                }
            }
        }
    }
    None
}

/// Is the service behind the forward answering, in its own protocol? A TCP connect would only
/// reach kubectl's listener, which accepts even when the pod port behind it is dead (a headless
/// Service forwards to the *service* port on the pod, kubectl `pkg/util/service_port.go`).
pub(crate) fn healthy(f: &Forward) -> bool {
    match &f.probe {
        Probe::Http(path) => {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(3)))
                .build()
                .into();
            agent
                .get(format!("http://127.0.0.1:{}{path}", f.local))
                .call()
                .map(|r| r.status().as_u16() == 200)
                .unwrap_or(false)
        }
        Probe::Ssh => matches!(ssh_probe(f.local), SshProbe::Banner),
    }
}

/// How long an accepted connection may stay silent before it is not an SSH server.
const SSH_SILENCE: Duration = Duration::from_secs(10);

/// What an SSH probe of a forward saw.
pub(crate) enum SshProbe {
    /// The identification line (`SSH-2.0-...`) came.
    Banner,
    /// Refused, or accepted and closed: kubectl's listener with no pod port behind it yet
    /// (it closes the connection on `error forwarding port`), or something else that is no SSH.
    NotYet,
    /// Accepted and then silent for [`SSH_SILENCE`]: a server sends its identification line as
    /// soon as the connection is made (RFC 4253 section 4.2: "When the connection has been
    /// established, both sides MUST send an identification string"), so what sits behind the
    /// forward is not an SSH server: a mis-forward, not a slow pod.
    Silent,
}

/// Connects to `port` and reads what comes first: the SSH identification line, or not.
pub(crate) fn ssh_probe(port: u16) -> SshProbe {
    use std::io::Read;
    let Ok(mut stream) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))
    else {
        return SshProbe::NotYet;
    };
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.contains(&b'\n') && got.len() < 1024 {
        let left = SSH_SILENCE.saturating_sub(started.elapsed());
        if left.is_zero()
            || exec::cancelled()
            || stream.set_read_timeout(Some(left.min(Duration::from_millis(500)))).is_err()
        {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => return SshProbe::NotYet,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return SshProbe::NotYet,
        }
    }
    let text = String::from_utf8_lossy(&got);
    // Servers may send other lines before the identification line.
    match text.lines().find(|l| l.starts_with("SSH-")) {
        Some(_) => SshProbe::Banner,
        None if got.is_empty() && started.elapsed() >= SSH_SILENCE => SshProbe::Silent,
        None => SshProbe::NotYet,
    }
}

fn describe_foreign(f: &Forward, who: &Option<(u32, String)>) -> String {
    let who = match who {
        Some((pid, name)) => format!("pid {pid} ({name})"),
        None => "another user's process".into(),
    };
    format!(
        "port {} (forward {}) is held by {who}, not by us: it is left alone; stop it, or give the forward another local port in the e2e definition",
        f.local, f.name
    )
}

/// Makes every forward healthy: a healthy one of ours is reused, a free port gets a new
/// supervisor, a foreign holder is an error (and is left alone).
pub(crate) fn ensure(forwards: &[Forward]) -> Result<()> {
    let mut started = Vec::new();
    for f in forwards {
        match holder(f.local) {
            Holder::Ours(_) => {}
            Holder::Free => {
                start_supervisor(f)?;
                started.push(f.name.clone());
            }
            Holder::Foreign(who) => bail!(describe_foreign(f, &who)),
        }
    }
    let start = Instant::now();
    for f in forwards {
        let deadline = f.ready_timeout;
        loop {
            if let Probe::Ssh = f.probe {
                match ssh_probe(f.local) {
                    SshProbe::Banner => break,
                    SshProbe::NotYet => {}
                    SshProbe::Silent => bail!(
                        "port-forward {} (127.0.0.1:{} -> {} {}:{}) reaches no SSH server: the connection was accepted and then nothing came for {}s, where an SSH server sends its `SSH-2.0-…` line at once (RFC 4253 section 4.2). Check `remote`: a headless Service forwards to that port on the pod itself, not to its targetPort (kubectl pkg/util/service_port.go)",
                        f.name,
                        f.local,
                        f.namespace,
                        f.target,
                        f.remote,
                        SSH_SILENCE.as_secs()
                    ),
                }
            } else if healthy(f) {
                break;
            }
            if exec::cancelled() {
                bail!("interrupted while waiting for port-forward {}", f.name);
            }
            if start.elapsed() > deadline {
                let tail = std::fs::read_to_string(log_file(f.local)).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(8).collect();
                bail!(
                    "port-forward {} (127.0.0.1:{} -> {} {}:{}) did not pass its probe ({}) within {:.0}s; last log lines:\n{}",
                    f.name,
                    f.local,
                    f.namespace,
                    f.target,
                    f.remote,
                    f.probe.spelled(),
                    deadline.as_secs_f64(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

fn start_supervisor(f: &Forward) -> Result<()> {
    let sh = Shell::new()?;
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    let (name, ns, target, local, remote) =
        (&f.name, &f.namespace, &f.target, f.local.to_string(), f.remote.to_string());
    let probe = format!("--probe={}", f.probe.spelled());
    let context = &f.context;
    let pid = exec::cmd(cmd!(
        sh,
        "{xtask} port-forward supervise --name {name} --context {context} --namespace {ns} --target {target} --local {local} --remote {remote} {probe}"
    ))
    .log(log_file(f.local))
    .spawn_detached()
    .with_context(|| format!("starting the supervisor of port-forward {name}"))?;
    // The supervisor writes its own pid file too; write it now so a racing `ensure` sees it.
    write_pid_file(f.local, pid)
}

/// Ends our supervisor on `port` (and its kubectl). Never touches anything else.
pub(crate) fn stop(port: u16) -> Result<bool> {
    let Some(pid) = our_supervisor(port) else {
        let _ = std::fs::remove_file(pid_file(port));
        return Ok(false);
    };
    let ticks = exec::start_ticks(pid);
    // SAFETY: signalling a pid whose start time is the one our pid file recorded.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    // Gone, or its pid now names another process (a different start time).
    let ours = || exec::pid_alive(pid as i32) && exec::start_ticks(pid) == ticks;
    let start = Instant::now();
    while ours() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if ours() {
        bail!("the supervisor of port {port} (pid {pid}) did not stop within 10 s");
    }
    let _ = std::fs::remove_file(pid_file(port));
    Ok(true)
}

/// The supervisor's loop: keep `kubectl port-forward` running and healthy until SIGTERM.
fn supervise(f: &Forward) -> Result<i32> {
    let me = std::process::id();
    write_pid_file(f.local, me)?;
    let mut backoff = Duration::from_millis(200);
    let mut generation = 0u32;
    while !exec::cancelled() {
        generation += 1;
        let token = CancelToken::new();
        let forward = f.clone();
        let child_token = token.clone();
        let child = std::thread::spawn(move || -> Result<exec::Output, exec::ExecError> {
            let sh = Shell::new().map_err(|e| {
                exec::ExecError::new(
                    "kubectl port-forward".into(),
                    exec::Failure::Spawn(e.to_string()),
                    String::new(),
                    None,
                    Duration::ZERO,
                )
            })?;
            let (ns, target) = (&forward.namespace, &forward.target);
            let ports = format!("{}:{}", forward.local, forward.remote);
            let context = &forward.context;
            // kubectl's own lines ("Forwarding from", "error forwarding port ...") go to the log.
            exec::cmd(cmd!(sh, "kubectl port-forward --context {context} --address 127.0.0.1 --namespace {ns} {target} {ports}"))
                .log(log_file(forward.local))
                .cancel_token(&child_token)
                .run()
        });
        let started = Instant::now();
        let mut failures = 0u32;
        let mut healthy_since: Option<Instant> = None;
        loop {
            std::thread::sleep(Duration::from_millis(250));
            if child.is_finished() {
                println!("=== kubectl port-forward exited (generation {generation}); restarting");
                break;
            }
            if exec::cancelled() {
                token.cancel();
                break;
            }
            if healthy(f) {
                failures = 0;
                healthy_since.get_or_insert_with(Instant::now);
            } else {
                failures += 1;
                // Give a fresh kubectl a few seconds to bind, then 3 failed probes in a row restart it.
                if failures >= 3 && started.elapsed() > Duration::from_secs(3) {
                    println!(
                        "=== probe ({}) failed {failures} times; restarting kubectl (generation {generation})",
                        f.probe.spelled()
                    );
                    token.cancel();
                    break;
                }
            }
        }
        let _ = child.join();
        if exec::cancelled() {
            break;
        }
        if healthy_since.is_some_and(|t| t.elapsed() > Duration::from_secs(30)) {
            backoff = Duration::from_millis(200);
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    if std::fs::read_to_string(pid_file(f.local))
        .ok()
        .and_then(|t| parse_pid_file(&t))
        .is_some_and(|(p, _)| p == me)
    {
        let _ = std::fs::remove_file(pid_file(f.local));
    }
    println!("=== supervisor stopped");
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// `cargo xtask port-forward`.
// ---------------------------------------------------------------------------------------------

/// Show, start or stop the supervised port-forwards to shared infra.
///
/// The forwards come from the [[port-forward]] entries of the e2e definition (Gitea on
/// localhost:13000 and :13022, Prometheus on :19090 by default). `ensure` reuses a healthy forward
/// of ours, starts a supervisor on a free port, and reports (never kills) a foreign holder. `stop`
/// ends only the supervisors we started.
///
/// Examples:
///   cargo xtask port-forward status
///   cargo xtask port-forward ensure
///   cargo xtask port-forward stop
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// The e2e definition [default: test/e2e/e2e.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) definition: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Each forward: port, who holds it, health
    Status,
    /// Make every forward healthy (reuse, start, or report a foreign holder)
    Ensure,
    /// Stop the supervisors we started
    Stop,
    /// Run one supervisor in the foreground (what `ensure` starts in the background)
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        name: String,
        #[arg(long)]
        context: String,
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        target: String,
        #[arg(long)]
        local: u16,
        #[arg(long)]
        remote: u16,
        #[arg(long)]
        probe: String,
    },
}

impl Args {
    pub fn run(self) -> Result<i32> {
        if let Command::Supervise { name, context, namespace, target, local, remote, probe } = self.command {
            let probe = Probe::parse(&probe).ok_or_else(|| anyhow!("--probe: an HTTP path or `ssh`"))?;
            let ready_timeout = Duration::ZERO;
            return supervise(&Forward {
                name,
                namespace,
                target,
                local,
                remote,
                probe,
                env: Vec::new(),
                ready_timeout,
                context,
                after: Vec::new(),
            });
        }
        let path = self.definition.unwrap_or_else(definition::default_path);
        let forwards = definition::load(&path)?.forwards;
        if forwards.is_empty() {
            return Err(anyhow!("{} defines no [[port-forward]]", path.display()));
        }
        match self.command {
            Command::Status => {
                let targets: Vec<String> =
                    forwards.iter().map(|f| format!("{}/{}:{}", f.namespace, f.target, f.remote)).collect();
                let tw = targets.iter().map(String::len).max().unwrap_or(6).max(6);
                println!("{:<12} {:>6}  {:<tw$} {:<9} HOLDER", "FORWARD", "LOCAL", "TARGET", "HEALTH");
                for (f, target) in forwards.iter().zip(&targets) {
                    let who = match holder(f.local) {
                        Holder::Free => "free".to_string(),
                        Holder::Ours(pid) => format!("our supervisor (pid {pid})"),
                        Holder::Foreign(Some((pid, name))) => format!("NOT OURS: pid {pid} ({name})"),
                        Holder::Foreign(None) => "NOT OURS".into(),
                    };
                    let health = if healthy(f) { "healthy" } else { "down" };
                    println!("{:<12} {:>6}  {target:<tw$} {health:<9} {who}", f.name, f.local);
                }
                Ok(0)
            }
            Command::Ensure => {
                ensure(&forwards)?;
                for f in &forwards {
                    println!("{}: localhost:{} healthy", f.name, f.local);
                }
                Ok(0)
            }
            Command::Stop => {
                for f in &forwards {
                    if stop(f.local)? {
                        println!("{}: stopped our supervisor on {}", f.name, f.local);
                    }
                }
                Ok(0)
            }
            Command::Supervise { .. } => Ok(0),
        }
    }
}
