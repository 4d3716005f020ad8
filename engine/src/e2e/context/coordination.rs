//! Coordination when the cluster is shared (`provider = "existing"`): several machines' e2e runs
//! meet there, so who sets shared infra up, and which runs are alive, is kept in the cluster as
//! `coordination.k8s.io/v1` Leases, not in local files (which stay the fast path on kind).
//!
//! A Lease is taken by creating it; one that exists is taken over only when it is free (no
//! holder) or expired (`renewTime + leaseDurationSeconds` passed), by a `kubectl replace` that
//! carries the `resourceVersion` it read, so two takers cannot both win (the API server answers
//! the second with a conflict). The holder renews it while it works and frees it at the end.
//! Holder identity: `<host>/<pid>/<run id>`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use xshell::{cmd, Shell};

use crate::{clock, exec};

/// Where a shared cluster's coordination objects live.
pub(crate) const NAMESPACE: &str = "default";
/// The Lease that guards shared-infra setup.
pub(crate) const SHARED_LEASE: &str = "e2e-shared-infra";
/// The label that marks a run's Lease, with its run id.
pub(crate) const RUN_LABEL: &str = "configbutler.ai/e2e-run-id";

/// A Lease to take, in one cluster.
#[derive(Debug, Clone)]
pub(crate) struct LeaseSpec {
    pub(crate) context: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) holder: String,
    pub(crate) duration: Duration,
    /// Labels and annotations the Lease carries (a run's flow, status, namespaces).
    pub(crate) labels: serde_json::Map<String, Value>,
    pub(crate) annotations: serde_json::Map<String, Value>,
    pub(crate) log: PathBuf,
}

/// Takes the shared-infra Lease of the shared cluster `context` (waits up to an hour for another
/// machine's setup).
pub(crate) fn take_shared_infra(
    sh: &Shell,
    context: &str,
    run_id: &str,
    duration: Duration,
    log: PathBuf,
) -> Result<HeldLease> {
    let spec = LeaseSpec {
        context: context.to_string(),
        namespace: NAMESPACE.into(),
        name: SHARED_LEASE.into(),
        holder: holder_identity(run_id),
        duration,
        labels: Default::default(),
        annotations: Default::default(),
        log,
    };
    acquire(sh, spec, Duration::from_secs(3600))
        .with_context(|| format!("taking the shared-infra Lease of {context}"))
}

/// `<host>/<pid>/<run id>`.
pub(crate) fn holder_identity(run_id: &str) -> String {
    format!("{}/{}/{run_id}", hostname(), std::process::id())
}

/// This machine's name (runs and Leases say where their owner lives).
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is a valid writable buffer of the given length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// RFC 3339 with microseconds, as Lease times are written (`metav1.MicroTime`).
fn micro_time(unix: u64) -> String {
    let text = clock::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(unix));
    text.replace('Z', ".000000Z")
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2026-12-03T06:53:40.000000Z`); `None` for
/// anything else.
pub(crate) fn parse_time(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(10) != Some(&b'T') || !text.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { text.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// What a Lease says: holder, and until when it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) holder: String,
    pub(crate) renewed: u64,
    pub(crate) duration: u64,
}

impl Held {
    pub(crate) fn of(lease: &Value) -> Held {
        let spec = &lease["spec"];
        Held {
            holder: spec["holderIdentity"].as_str().unwrap_or_default().to_string(),
            renewed: spec["renewTime"].as_str().and_then(parse_time).unwrap_or(0),
            duration: spec["leaseDurationSeconds"].as_u64().unwrap_or(0),
        }
    }

    pub(crate) fn expired(&self, now: u64) -> bool {
        self.holder.is_empty() || now > self.renewed.saturating_add(self.duration)
    }
}

fn kubectl(
    sh: &Shell,
    spec: &LeaseSpec,
    verb: &str,
    stdin: Option<String>,
) -> Result<exec::Output, exec::ExecError> {
    let (ns, name, ctx) = (&spec.namespace, &spec.name, &spec.context);
    let c = match verb {
        "get" => cmd!(sh, "kubectl get lease {name} --namespace {ns} --output json --context {ctx}"),
        "create" => cmd!(sh, "kubectl create --namespace {ns} -f - --context {ctx}"),
        "replace" => cmd!(sh, "kubectl replace --namespace {ns} -f - --context {ctx}"),
        _ => cmd!(sh, "kubectl delete lease {name} --namespace {ns} --ignore-not-found --context {ctx}"),
    };
    let mut call = exec::cmd(c).log(&spec.log).timeout(Duration::from_secs(30)).allow_failure();
    if let Some(text) = stdin {
        call = call.stdin(text);
    }
    call.run()
}

fn lease_json(spec: &LeaseSpec, holder: &str, now: u64, acquired: u64, base: Option<&Value>) -> Value {
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": spec.name, "namespace": spec.namespace,
            "labels": spec.labels, "annotations": spec.annotations,
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": spec.duration.as_secs(),
            "acquireTime": micro_time(acquired),
            "renewTime": micro_time(now),
        },
    });
    if let Some(rv) = base.and_then(|b| b["metadata"]["resourceVersion"].as_str()) {
        lease["metadata"]["resourceVersion"] = rv.into();
    }
    lease
}

/// A Lease this process holds, renewed in the background; freed on drop.
pub(crate) struct HeldLease {
    spec: LeaseSpec,
    stop: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

/// Takes the Lease, waiting while someone else holds it (saying who, once), up to `wait`.
pub(crate) fn acquire(sh: &Shell, spec: LeaseSpec, wait: Duration) -> Result<HeldLease> {
    let start = Instant::now();
    let mut said = false;
    loop {
        let now = clock::unix_now();
        let created =
            kubectl(sh, &spec, "create", Some(lease_json(&spec, &spec.holder, now, now, None).to_string()))?;
        if created.success() {
            return Ok(start_renewing(spec));
        }
        if !created.stderr.contains("AlreadyExists") && !created.stderr.contains("already exists") {
            bail!(
                "taking Lease {}/{} in {}: {}",
                spec.namespace,
                spec.name,
                spec.context,
                created.stderr.trim()
            );
        }
        let got = kubectl(sh, &spec, "get", None)?;
        if got.success() {
            let current: Value = serde_json::from_str(&got.stdout).unwrap_or(Value::Null);
            let held = Held::of(&current);
            if held.expired(now) || held.holder == spec.holder {
                // Free or expired: take it over, guarded by the resourceVersion just read.
                let taken = lease_json(&spec, &spec.holder, now, now, Some(&current));
                if kubectl(sh, &spec, "replace", Some(taken.to_string()))?.success() {
                    return Ok(start_renewing(spec));
                }
                continue; // someone else took it first: look again
            }
            if !said {
                println!(
                    "waiting for Lease {}/{}: held by {} (renewed {}s ago, expires after {}s without renewal)",
                    spec.namespace,
                    spec.name,
                    held.holder,
                    now.saturating_sub(held.renewed),
                    held.duration
                );
                said = true;
            }
        }
        if start.elapsed() >= wait || exec::cancelled() {
            bail!("Lease {}/{} was not free within {}s", spec.namespace, spec.name, wait.as_secs());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn start_renewing(spec: LeaseSpec) -> HeldLease {
    let stop = Arc::new(AtomicBool::new(false));
    let every = (spec.duration / 3).max(Duration::from_millis(200));
    let renewer = {
        let (spec, stop) = (spec.clone(), stop.clone());
        std::thread::spawn(move || {
            let Ok(sh) = Shell::new() else { return };
            let mut last = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() < every {
                    continue;
                }
                last = Instant::now();
                if let Err(e) = renew(&sh, &spec) {
                    // Lost (taken over after it expired) or unreachable: said in its log.
                    use std::io::Write;
                    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&spec.log) {
                        let _ = writeln!(f, "=== renewing Lease {}: {e:#}", spec.name);
                    }
                }
            }
        })
    };
    HeldLease { spec, stop, renewer: Some(renewer) }
}

/// One renewal: still ours, a new renewTime (and the spec's current annotations).
fn renew(sh: &Shell, spec: &LeaseSpec) -> Result<()> {
    let got = kubectl(sh, spec, "get", None)?;
    let current: Value = serde_json::from_str(&got.stdout).context("reading the Lease")?;
    let held = Held::of(&current);
    if held.holder != spec.holder {
        bail!("Lease {} is now held by {}", spec.name, held.holder);
    }
    let acquired = current["spec"]["acquireTime"].as_str().and_then(parse_time).unwrap_or(held.renewed);
    let renewed = lease_json(spec, &spec.holder, clock::unix_now(), acquired, Some(&current));
    let out = kubectl(sh, spec, "replace", Some(renewed.to_string()))?;
    if !out.success() {
        bail!("renewing Lease {}: {}", spec.name, out.stderr.trim());
    }
    Ok(())
}

impl HeldLease {
    /// Frees the Lease now (also done on drop): `delete` when it is a run's, holder emptied
    /// otherwise, so the next taker need not wait for it to expire.
    pub(crate) fn release(mut self, delete: bool) {
        self.finish(delete);
    }

    fn finish(&mut self, delete: bool) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        } else {
            return;
        }
        let Ok(sh) = Shell::new() else { return };
        let Ok(got) = kubectl(&sh, &self.spec, "get", None) else { return };
        let current: Value = serde_json::from_str(&got.stdout).unwrap_or(Value::Null);
        if Held::of(&current).holder != self.spec.holder {
            return; // not ours any more
        }
        if delete {
            let _ = kubectl(&sh, &self.spec, "delete", None);
        } else {
            let freed = lease_json(&self.spec, "", clock::unix_now(), clock::unix_now(), Some(&current));
            let _ = kubectl(&sh, &self.spec, "replace", Some(freed.to_string()));
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// The runs recorded in a shared cluster: their Leases.
pub(crate) fn run_leases(sh: &Shell, context: &str, log: &Path) -> Result<Vec<Value>> {
    let ns = NAMESPACE;
    let out = exec::cmd(cmd!(
        sh,
        "kubectl get leases --namespace {ns} --selector {RUN_LABEL} --output json --context {context}"
    ))
    .log(log)
    .timeout(Duration::from_secs(60))
    .run()
    .with_context(|| format!("listing the runs recorded in {context}"))?;
    let list: Value = serde_json::from_str(&out.stdout).context("reading the run Leases")?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_times_round_trip_and_junk_is_none() {
        for unix in [0u64, 951_782_400, 1_795_327_261, 1_796_000_000] {
            assert_eq!(parse_time(&micro_time(unix)), Some(unix));
        }
        assert_eq!(parse_time("2026-12-03T06:53:40Z"), Some(1_796_280_820));
        for junk in [
            "",
            "2026-12-03",
            "2026-13-03T00:00:00Z",
            "2026-12-03T24:00:00Z",
            "xxxx-xx-xxTxx:xx:xxZ",
            "2026-12-03T06:53:40+01:00",
            "\u{e9}\u{e9}\u{e9}\u{e9}-12-03T06:53:40Z",
        ] {
            assert_eq!(parse_time(junk), None, "{junk:?}");
        }
        let held = Held { holder: "a/1/x".into(), renewed: 100, duration: 30 };
        assert!(!held.expired(130) && held.expired(131));
        assert!(Held { holder: String::new(), renewed: 100, duration: 30 }.expired(100));
    }
}
