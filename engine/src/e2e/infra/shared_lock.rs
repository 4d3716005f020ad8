//! `target/e2e/shared.lock`: whoever ensures shared infra on this machine (`setup`, and `e2e`
//! before its flows) holds it, so two invocations never race on `kind create cluster` or a
//! helm release.
//!
//! The lock is `flock(2)` on the file: the kernel releases it when the holder's descriptor is
//! closed, so a holder that dies (even by SIGKILL) never leaves it held. What it cannot tell is
//! *who* holds it, so the holder writes that into the file (pid, host, since, what it runs) and a
//! waiter says so. A waiter stops at Ctrl-C and at a deadline (`E2E_LOCK_TIMEOUT`, default
//! [`DEFAULT_TIMEOUT`]): a hung holder is reported, never waited for forever.

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::{clock, exec, paths};

/// How long a waiter waits for the holder by default: longer than a cold setup (builds, a kind
/// cluster, charts), far shorter than forever.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The variable that overrides [`DEFAULT_TIMEOUT`] (`90s`, `10m`, `1h`).
pub(crate) const TIMEOUT_VAR: &str = "E2E_LOCK_TIMEOUT";

/// Held while it lives; released when dropped (the descriptor closes).
pub(crate) struct SharedLock {
    _file: File,
}

fn lock_path() -> PathBuf {
    paths::state_root().join("shared.lock")
}

/// How long to wait, from `E2E_LOCK_TIMEOUT` (a usage error when it is no duration).
fn timeout() -> Result<Duration> {
    match std::env::var(TIMEOUT_VAR) {
        Ok(text) if !text.trim().is_empty() => crate::duration::parse_timeout(text.trim()).map_err(|e| {
            crate::usage::usage(format!("{TIMEOUT_VAR}: {e} (a duration such as 90s, 10m, 1h)"))
        }),
        _ => Ok(DEFAULT_TIMEOUT),
    }
}

impl SharedLock {
    /// Takes the lock for `what` (`setup`, `e2e`), waiting for the holder while it holds it.
    pub(crate) fn acquire(what: &str) -> Result<SharedLock> {
        let path = lock_path();
        let timeout = timeout()?;
        std::fs::create_dir_all(paths::state_root())
            .with_context(|| format!("creating {}", paths::state_root().display()))?;
        // Not truncated on open: the holder's note is what a waiter reads.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let started = Instant::now();
        let mut said = false;
        loop {
            // SAFETY: flock on a descriptor we own; released when the file is closed.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                bail!("cannot lock {}: {err}", path.display());
            }
            if !said {
                eprintln!(
                    "waiting for {} to finish setting up shared infra (up to {}s, {TIMEOUT_VAR}; Ctrl-C stops waiting): {}",
                    holder(&path),
                    timeout.as_secs(),
                    path.display()
                );
                said = true;
            }
            if exec::cancelled() {
                bail!("interrupted while waiting for {} held by {}", path.display(), holder(&path));
            }
            if started.elapsed() >= timeout {
                bail!(
                    "{} is still held by {} after {}s of waiting; if that process hangs, stop it (it releases the lock as it ends), or wait longer with {TIMEOUT_VAR}=1h",
                    path.display(),
                    holder(&path),
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Ours: say who holds it for whoever waits next.
        let note = format!(
            "pid={}\nhost={}\nsince={}\ncommand={what}\n",
            std::process::id(),
            crate::e2e::context::coordination::hostname(),
            clock::unix_now()
        );
        let written =
            file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(note.as_bytes()));
        written.with_context(|| format!("writing the holder into {}", path.display()))?;
        Ok(SharedLock { _file: file })
    }
}

/// Who holds the lock, from the holder's note: `pid 123 on host h since <time> (e2e)`.
fn holder(path: &std::path::Path) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let Some(pid) = field("pid") else {
        return "another process (it wrote no note of who it is)".into();
    };
    let mut out = format!("pid {}", exec::printable(pid));
    if let Some(host) = field("host") {
        out.push_str(&format!(" on host {}", exec::printable(host)));
    }
    if let Some(since) = field("since").and_then(|s| s.parse::<u64>().ok()) {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(since);
        out.push_str(&format!(
            " since {} ({}s ago)",
            clock::rfc3339(at),
            clock::unix_now().saturating_sub(since)
        ));
    }
    if let Some(command) = field("command") {
        out.push_str(&format!(" ({})", exec::printable(command)));
    }
    out
}
