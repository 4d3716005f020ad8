//! What a run may touch, and what it must not lose: cleanup selects only what is the run's, by a
//! label and a record that are checked before anything is deleted; a record stays until every
//! piece of its run is gone.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Stdio};

use testkit::FakeToolchain;

use crate::harness::{text, Sandbox};

const LABEL: &str = "configbutler.ai/e2e-run-id";

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn hostname() -> String {
    String::from_utf8_lossy(&Command::new("hostname").output().unwrap().stdout).trim().to_string()
}

/// A pid that no process has now (a child that has exited and been waited for).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    c.wait().unwrap();
    c.id()
}

/// The fake toolchain with kind's `e2e` cluster, and a sandbox on it whose commands run in a temp
/// dir (no definition there: `cleanup` works on local state alone).
struct Local {
    fake: FakeToolchain,
    sandbox: Sandbox,
    cwd: tempfile::TempDir,
}

impl Local {
    fn new() -> Local {
        let fake = crate::harness::fake();
        fake.with_cluster("e2e").unwrap();
        let sandbox = Sandbox::with_fake(&fake);
        Local { fake, sandbox, cwd: tempfile::tempdir().unwrap() }
    }

    fn xtask(&self, args: &[&str]) -> Command {
        let mut cmd = self.sandbox.xtask(args);
        cmd.current_dir(self.cwd.path()).env("E2E_REPO_ROOT", self.cwd.path());
        cmd
    }

    /// Writes `runs/<dir>/run.json` with `fields` over a stale record of run `dir` (dead owner,
    /// heartbeat 3 h ago).
    fn record(&self, dir: &str, fields: serde_json::Value) {
        let run = self.sandbox.run_dir(dir);
        std::fs::create_dir_all(run.join("logs")).unwrap();
        let mut record = serde_json::json!({
            "run_id": dir, "flow": "full", "namespace": format!("run-e2e-full-{dir}"),
            "controller_namespace": format!("ctl-e2e-full-{dir}"), "label": LABEL, "pid": dead_pid(),
            "host": hostname(), "started": now() - 4 * 3600, "heartbeat": now() - 3 * 3600,
            "status": "running", "kept": false, "gitea": false,
        });
        for (k, v) in fields.as_object().unwrap() {
            record[k] = v.clone();
        }
        std::fs::write(run.join("run.json"), record.to_string()).unwrap();
    }

    fn deletes(&self) -> Vec<String> {
        self.fake.journal().unwrap().iter().filter(|c| c.argv[0] == "delete").map(|c| c.line()).collect()
    }
}

/// A label key ending in `!` made the cleanup selector `key!=<id>`: every namespace, ClusterRole
/// and webhook configuration *except* the run's. Label keys are checked with Kubernetes' own
/// syntax wherever they come from: the environment, a run record.
#[test]
fn a_label_key_that_is_not_a_kubernetes_qualified_name_is_refused_wherever_it_comes_from() {
    let l = Local::new();
    for bad in ["configbutler.ai/e2e-run-id!", "a/b/c", "-x", "x-", "Configbutler.AI/x", "/x", "x/"] {
        let out = l.xtask(&["run-context", "--run-id", "abc"]).env("E2E_RUN_LABEL", bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        assert!(
            text(&out).contains("E2E_RUN_LABEL") && text(&out).contains("qualified name"),
            "{}",
            text(&out)
        );
    }
    // Kubernetes' own examples of valid keys pass.
    for good in ["app.kubernetes.io/name", "run_id", "x", "e2e.example.com/Run.ID-1"] {
        let out = l.xtask(&["run-context", "--run-id", "abc"]).env("E2E_RUN_LABEL", good).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{good}: {}", text(&out));
    }
    // In a record: never used to select anything, by `--stale` or by `--run-id`.
    l.record("neg1", serde_json::json!({ "label": format!("{LABEL}!") }));
    let out = l.xtask(&["cleanup", "--stale"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("neg1") && text(&out).contains("qualified name"), "{}", text(&out));
    let out = l.xtask(&["cleanup", "--run-id", "neg1"]).output().unwrap();
    for line in l.deletes() {
        assert!(!line.contains('!'), "a negated selector: {line} ({})", text(&out));
        assert!(line.contains(&format!("--selector {LABEL}=neg1")), "{line}");
    }
}

/// `runs/alias1/run.json` saying `run_id: liveone` (dead pid) made `cleanup --stale` delete the
/// live run `liveone`'s namespaces and state. A record whose run id is not its directory's is
/// refused, and nothing is deleted for it.
#[test]
fn a_record_naming_another_run_than_its_directory_is_refused_and_never_reaped() {
    let l = Local::new();
    l.record("liveone", serde_json::json!({ "pid": std::process::id(), "started": now() }));
    l.record("alias1", serde_json::json!({ "run_id": "liveone" }));
    let out = l.xtask(&["cleanup", "--stale"]).output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("alias1") && said.contains("liveone") && said.contains("0 stale run(s) reaped"),
        "{said}"
    );
    assert!(l.deletes().is_empty(), "deleted: {:?}", l.deletes());
    assert!(l.sandbox.run_dir("liveone").join("run.json").exists());
    let listed = text(&l.xtask(&["runs"]).output().unwrap());
    assert!(listed.contains("alias1") && listed.contains("liveone"), "{listed}");
}

/// A cleanup whose `kubectl delete` fails used to delete the run's record anyway: the next
/// `cleanup --stale` reaped "0 stale run(s)" and the namespace was orphaned with nothing left to
/// find it. The record stays, saying what is left, and the next cleanup finishes the job.
#[test]
fn a_failed_cleanup_keeps_the_record_says_what_is_left_and_the_next_one_finishes() {
    let l = Local::new();
    l.fake
        .rule(
            testkit::Rule::new("kubectl", "^delete namespace --selector")
                .exit(1)
                .stderr("error: the server is currently unable to handle the request\n")
                .times(2),
        )
        .unwrap();
    l.record("orphan1", serde_json::json!({}));
    let out = l.xtask(&["cleanup", "--stale"]).output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("orphan1") && said.contains("incomplete") && said.contains("namespaces"), "{said}");
    let record = l.sandbox.run_dir("orphan1").join("run.json");
    assert!(record.exists(), "the record is gone: {said}");
    let listed = text(&l.xtask(&["runs"]).output().unwrap());
    assert!(
        listed.contains("cleanup-incomplete") && listed.contains("left by its cleanup: namespaces"),
        "{listed}"
    );
    // By run id: still failing, still kept.
    let out = l.xtask(&["cleanup", "--run-id", "orphan1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(record.exists());
    // The API is back: the next `cleanup --stale` removes the namespaces, then the record.
    let out = l.xtask(&["cleanup", "--stale"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("1 stale run(s) reaped"), "{}", text(&out));
    assert!(!l.sandbox.run_dir("orphan1").exists());
    let deletes = l.deletes();
    assert_eq!(
        deletes.iter().filter(|d| d.contains("delete namespace --selector")).count(),
        3,
        "{deletes:?}"
    );
}

/// The start time of `pid` in clock ticks after boot (proc_pid_stat(5) field 22).
fn start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// A process of this test that says `port-forward supervise` in its argv (as another checkout's
/// supervisor does) in its own process group, reaped by a thread the moment it dies.
struct Decoy {
    pid: u32,
    exited: std::sync::mpsc::Receiver<()>,
}

impl Decoy {
    fn start() -> Decoy {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("sh")
            .args(["-c", "while :; do sleep 1; done", "port-forward", "supervise"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let (tx, exited) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = child.wait();
            let _ = tx.send(());
        });
        Decoy { pid, exited }
    }

    fn alive(&self) -> bool {
        matches!(self.exited.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty))
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        // SAFETY: the decoy's own process group, which this test started.
        unsafe { libc::killpg(self.pid as i32, libc::SIGKILL) };
    }
}

/// `port-forward stop` signalled any process whose argv held `port-forward` and `supervise` and
/// whose pid a pid file named: a stale pid file whose pid now belongs to another checkout's
/// supervisor (or anything saying so) got it killed. A supervisor is ours only when the pid file
/// names its pid *and* its start time.
#[test]
fn port_forward_stop_signals_only_the_process_its_pid_file_and_start_time_name() {
    let l = Local::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let def = l.cwd.path().join("e2e.toml");
    std::fs::write(
        &def,
        format!(
            "[cluster]\nname = \"e2e\"\n\n[[port-forward]]\nname = \"gitea\"\nnamespace = \"gitea-e2e\"\ntarget = \"svc/gitea-http\"\nlocal = {port}\nremote = 3000\nprobe = \"/api/v1/version\"\n\n[[flow]]\nname = \"smoke\"\ngitea = false\nsteps = [[\"true\"]]\n"
        ),
    )
    .unwrap();
    let pid_file = l.sandbox.state.path().join(format!("port-forwards/{port}.pid"));
    std::fs::create_dir_all(pid_file.parent().unwrap()).unwrap();
    let decoy = Decoy::start();
    let stop = || {
        let out = l.xtask(&["port-forward", "stop", "--definition", def.to_str().unwrap()]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        text(&out)
    };
    // A pid file as an older xtask wrote it (the pid alone), and one with another start time: the
    // pid names a process that is not the one recorded. Left alone, and the stale file removed.
    for recorded in [format!("{}\n", decoy.pid), format!("{} {}\n", decoy.pid, start_ticks(decoy.pid) + 1)] {
        std::fs::write(&pid_file, &recorded).unwrap();
        let said = stop();
        assert!(!said.contains("stopped"), "{recorded:?}: {said}");
        assert!(decoy.alive(), "{recorded:?} got pid {} killed: {said}", decoy.pid);
        assert!(!pid_file.exists(), "{recorded:?}: the stale pid file stays");
    }
    // The pid and the start time it had: that process is what the file recorded, and it is stopped.
    std::fs::write(&pid_file, format!("{} {}\n", decoy.pid, start_ticks(decoy.pid))).unwrap();
    let said = stop();
    assert!(said.contains(&format!("stopped our supervisor on {port}")), "{said}");
    decoy.exited.recv_timeout(std::time::Duration::from_secs(60)).expect("the recorded process was stopped");
}

/// Flows whose `needs` form a cycle were found only when the flows' graph ran: after preflight,
/// `kind create cluster` and the kubeconfig, with exit 1. A definition error: exit 2, naming the
/// cycle, before anything runs.
#[test]
fn a_needs_cycle_among_flows_is_a_definition_error_before_anything_runs() {
    let l = Local::new();
    let def = l.cwd.path().join("e2e.toml");
    let flow = |name: &str, needs: &str| {
        format!("\n[[flow]]\nname = \"{name}\"\ngitea = false\nneeds = [{needs}]\nsteps = [[\"true\"]]\n")
    };
    std::fs::write(
        &def,
        format!(
            "[cluster]\nname = \"e2e\"\n{}{}{}{}",
            flow("full", ""),
            flow("alpha", "\"full\", \"gamma\""),
            flow("beta", "\"alpha\""),
            flow("gamma", "\"beta\"")
        ),
    )
    .unwrap();
    for args in [vec!["e2e"], vec!["e2e", "--parallel"], vec!["setup"]] {
        let mut args = args.clone();
        args.extend(["--definition", def.to_str().unwrap()]);
        let out = l.xtask(&args).output().unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
        assert!(
            said.contains("e2e.toml: flow needs form a cycle: alpha needs gamma needs beta needs alpha"),
            "{args:?}: {said}"
        );
        let calls = l.fake.journal().unwrap();
        assert!(calls.is_empty(), "{args:?} ran {:?}", calls.iter().map(|c| c.line()).collect::<Vec<_>>());
    }
}

/// `check` with no run id generated one: it checked a run nobody made and left a
/// `runs/<random>/` behind each time. It refuses (exit 2), saying how to give one.
#[test]
fn check_without_a_run_id_is_refused_and_leaves_no_run_behind() {
    let l = Local::new();
    for env in [None, Some("")] {
        let mut cmd = l.xtask(&["check", "exists", "configmap/x", "--timeout", "1s"]);
        if let Some(v) = env {
            cmd.env("E2E_RUN_ID", v);
        }
        let out = cmd.output().unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {said}");
        assert!(said.contains("--run-id") && said.contains("E2E_RUN_ID"), "{said}");
        assert!(!l.sandbox.state.path().join("runs").exists(), "a run was made up: {said}");
        assert!(l.fake.journal().unwrap().is_empty(), "{env:?}: it checked something");
    }
    // Given, it checks that run.
    let out = l
        .xtask(&["check", "exists", "configmap/x", "--timeout", "1s", "--run-id", "given1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("run given1"), "{}", text(&out));
}

/// A fake toolchain with no cluster yet, and a definition of just a kind cluster and one flow in
/// a temp dir; `kind create cluster` takes `create_ms`.
fn cluster_only(create_ms: u64) -> (FakeToolchain, Sandbox, tempfile::TempDir, std::path::PathBuf) {
    let fake = crate::harness::fake();
    fake.rule(testkit::Rule::new("kind", "^create cluster").delay_ms(create_ms)).unwrap();
    let sandbox = Sandbox::with_fake(&fake);
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("e2e.toml");
    std::fs::write(
        &def,
        "[cluster]\nname = \"e2e\"\n\n[[flow]]\nname = \"full\"\ngitea = false\nsteps = [[\"true\"]]\n",
    )
    .unwrap();
    (fake, sandbox, dir, def)
}

fn in_dir(sandbox: &Sandbox, dir: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = sandbox.xtask(args);
    cmd.current_dir(dir).env("E2E_REPO_ROOT", dir).env("CI", "true");
    cmd
}

/// `setup` took no lock: two concurrent `setup`s both ran `kind create cluster` and one failed
/// (five: four failed; `setup` beside `e2e` failed). It takes the lock `e2e` takes, so the
/// others wait and then find the cluster made.
#[test]
fn concurrent_setups_and_e2e_take_the_shared_lock_and_make_one_cluster() {
    let (fake, sandbox, dir, def) = cluster_only(1500);
    let def = def.to_str().unwrap();
    let mut children = Vec::new();
    for args in [["setup", "--definition", def], ["setup", "--definition", def], ["e2e", "--definition", def]]
    {
        let child = in_dir(&sandbox, dir.path(), &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
        children.push((args, child.unwrap()));
    }
    for (args, child) in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    }
    let creates: Vec<_> =
        fake.journal().unwrap().into_iter().filter(|c| c.line().starts_with("kind create cluster")).collect();
    assert_eq!(creates.len(), 1, "{:?}", creates.iter().map(|c| c.line()).collect::<Vec<_>>());
}

/// Waiting for `shared.lock` had no deadline and ignored Ctrl-C, and nothing said who held it. A
/// waiter names the holder (pid, host, since, command), stops at its deadline and at SIGINT.
#[test]
fn a_waiter_for_the_shared_lock_names_the_holder_and_stops_at_its_deadline_and_at_ctrl_c() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    // The holder: a setup stuck in `kind create cluster` for far longer than the test.
    let (fake, sandbox, dir, def) = cluster_only(600_000);
    let def = def.to_str().unwrap();
    let mut holder = in_dir(&sandbox, dir.path(), &["setup", "--definition", def])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !fake.started().unwrap().iter().any(|s| s.argv.starts_with(&["create".to_string()])) {
        assert!(Instant::now() < deadline, "the holder never reached kind create cluster");
        assert!(holder.try_wait().unwrap().is_none(), "the holder ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    let who = format!("pid {} on host {}", holder.id(), hostname());
    // A deadline: the waiter gives up, naming the holder and what to do.
    let out = in_dir(&sandbox, dir.path(), &["e2e", "--definition", def])
        .env("E2E_LOCK_TIMEOUT", "1s")
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("still held by") && said.contains(&who) && said.contains("(setup)"), "{said}");
    assert!(said.contains(" since ") && said.contains("E2E_LOCK_TIMEOUT"), "{said}");
    let bad = in_dir(&sandbox, dir.path(), &["setup", "--definition", def])
        .env("E2E_LOCK_TIMEOUT", "soon")
        .output();
    assert_eq!(bad.unwrap().status.code(), Some(2), "a timeout that is no duration is a usage error");
    // Ctrl-C: the waiter (no deadline of its own) stops waiting at once, exit 130.
    let mut waiter = in_dir(&sandbox, dir.path(), &["setup", "--definition", def])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(waiter.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.starts_with("waiting for ") && first.contains(&who), "{first}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(waiter.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = waiter.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{first}{rest}");
    assert!(rest.contains("interrupted while waiting"), "{rest}");
    // SAFETY: signalling our own child; its cleanup ends the delayed `kind` in its group.
    unsafe { libc::kill(holder.id() as i32, libc::SIGINT) };
    assert_eq!(holder.wait().unwrap().code(), Some(130));
    let creates =
        fake.started().unwrap().into_iter().filter(|s| s.argv.starts_with(&["create".to_string()])).count();
    assert_eq!(creates, 1, "only the holder created a cluster");
}

/// A corrupt `incremental.json` was discarded without a word: everything rebuilt and nobody knew
/// why. It is still ignored (running everything again is always safe), but said, and kept beside.
#[test]
fn corrupt_incremental_records_are_reported_and_kept_aside_and_setup_runs_everything() {
    let (_fake, sandbox, dir, def) = cluster_only(0);
    let def = def.to_str().unwrap();
    let records = sandbox.state.path().join("incremental.json");
    let setup = || in_dir(&sandbox, dir.path(), &["setup", "--definition", def]).output().unwrap();
    let out = setup();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("warning"), "{}", text(&out));
    for garbage in [&b"{\"clusters\": [tru"[..], b"{\"images\": 3}", b"\xff\xfe{}"] {
        std::fs::write(&records, garbage).unwrap();
        let out = setup();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(
            err.contains(&format!("warning: the incremental records {}", records.display()))
                && err.contains("every setup task runs again"),
            "{err}"
        );
        let aside = sandbox.state.path().join("incremental.json.corrupt");
        assert_eq!(std::fs::read(&aside).unwrap(), garbage, "{err}");
        let fresh: serde_json::Value = serde_json::from_slice(&std::fs::read(&records).unwrap()).unwrap();
        assert!(fresh["clusters"].is_object() || fresh["clusters"].is_array(), "{fresh}");
    }
}

/// `junit-merge` panicked on counts whose sum overflows (exit 101), wrote `time="inf"` for two
/// `1e308`, counted `failures="x"` as 0, and exited 1 for a missing input. Each is a usage error
/// (exit 2) naming the report and the attribute, and no merged report is written.
#[test]
fn junit_merge_refuses_counts_and_times_it_cannot_sum_and_missing_reports() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let output = dir.path().join("merged.xml");
    let merge = |reports: &[String]| {
        let mut args = vec!["junit-merge".to_string(), "--output".into(), output.to_str().unwrap().into()];
        args.extend(reports.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sandbox.run(&args)
    };
    let max = write("max.xml", "<testsuite tests=\"18446744073709551615\"/>");
    let far = write("far.xml", "<testsuite tests=\"1\" time=\"1e308\"/>");
    let x = write("x.xml", "<testsuite tests=\"1\" failures=\"x\"/>");
    let missing = dir.path().join("nope.xml").to_str().unwrap().to_string();
    for (reports, says) in [
        (vec![max.clone(), max.clone()], "tests=18446744073709551615: the tests of the reports add up"),
        (vec![far.clone(), far.clone()], "time=1e308: the times of the reports add up"),
        (vec![x.clone()], "failures=\"x\" is not a count"),
        (vec![far.clone(), missing.clone()], "cannot read"),
    ] {
        let out = merge(&reports);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{reports:?}: {said}");
        assert!(said.contains(says) && said.contains(reports.last().unwrap().as_str()), "{said}");
        assert!(!output.exists(), "{reports:?} wrote a report");
    }
    let one = write("one.xml", "<testsuite tests=\"2\" failures=\"1\" time=\"1.25\"/>");
    let out = merge(&[one.clone(), one]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let merged = std::fs::read_to_string(&output).unwrap();
    assert!(merged.contains("tests=\"4\" failures=\"2\" errors=\"0\" time=\"2.500\""), "{merged}");
}

/// `--shard 1/1000000000000` aborted allocating a counter per shard (and `1/1000000000` spent 70 s
/// of CPU deaf to SIGINT): the split needs counters only for the shards that get a flow.
#[test]
fn a_huge_shard_count_is_a_shard_with_nothing_to_do_not_an_abort() {
    let (fake, sandbox, dir, def) = cluster_only(0);
    let junit = dir.path().join("junit.xml");
    let out = in_dir(
        &sandbox,
        dir.path(),
        &[
            "e2e",
            "--definition",
            def.to_str().unwrap(),
            "--shard",
            "1000000000000/1000000000000",
            "--junit",
            junit.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("shard 1000000000000/1000000000000: 0 of 1 flow(s): none"), "{said}");
    assert!(std::fs::read_to_string(&junit).unwrap().contains("<testsuite"), "{said}");
    assert!(fake.journal().unwrap().is_empty(), "a shard with nothing to do runs nothing");
}

/// The pids whose parent is `parent` and whose argv holds `word`.
fn children_with(parent: u32, word: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let ppid: Option<u32> = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        let argv = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if ppid == Some(parent) && argv.split(|b| *b == 0).any(|a| a == word.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// The reaper (the process that kills what a SIGKILLed xtask leaves) inherited
/// `E2E_GITEA_ADMIN_PASSWORD`; only the calls that need the password get it.
#[test]
fn the_reaper_does_not_inherit_the_gitea_admin_password() {
    use std::time::{Duration, Instant};
    let (fake, sandbox, dir, def) = cluster_only(600_000);
    let secret = format!("admin-pw-{}", std::process::id());
    let mut xtask = in_dir(&sandbox, dir.path(), &["setup", "--definition", def.to_str().unwrap()])
        .env("E2E_GITEA_ADMIN_PASSWORD", &secret)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !fake.started().unwrap().iter().any(|s| s.argv.starts_with(&["create".to_string()])) {
        assert!(Instant::now() < deadline, "setup never reached kind create cluster");
        std::thread::sleep(Duration::from_millis(50));
    }
    let reapers = children_with(xtask.id(), "__reap");
    assert_eq!(reapers.len(), 1, "one reaper");
    let environ = std::fs::read(format!("/proc/{}/environ", reapers[0])).unwrap();
    let has = |text: &str| environ.windows(text.len()).any(|w| w == text.as_bytes());
    assert!(has("E2E_STATE_DIR="), "the environment was read");
    assert!(!has("E2E_GITEA_ADMIN_PASSWORD") && !has(&secret), "the reaper has the admin password");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(xtask.id() as i32, libc::SIGINT) };
    assert_eq!(xtask.wait().unwrap().code(), Some(130));
}

/// In a clone under a private directory (a 0700 home), the tests that run the xtask as another
/// user failed with `cannot start the reaper (…/target/debug/xtask): Permission denied`: that
/// user cannot reach `target/debug/`. The harness runs a copy that user can reach.
#[test]
fn another_user_runs_the_xtask_even_when_the_build_sits_in_a_private_directory() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let built = private.path().join("xtask-under-test");
    std::fs::copy(env!("CARGO_BIN_EXE_xtask-under-test"), &built).unwrap();
    let base = sandbox.xtask(&["run-context", "--run-id", "other1"]);
    let mut cmd = Command::new(&built);
    cmd.args(base.get_args());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let scratch = tempfile::tempdir().unwrap();
    cmd.current_dir(scratch.path()).env("E2E_REPO_ROOT", scratch.path()).env("E2E_STATE_DIR", scratch.path());
    let out = crate::harness::as_another_user(cmd, scratch.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("E2E_RUN_ID=other1"), "{}", text(&out));
}

/// Smaller wrong answers: `metrics query` with a hand-written `run_id` (or a bad run id) exited
/// 1 where `check` exits 2; `bench --scale 0` said "must be between 0 and 60" of the 0 it
/// refused; a PromQL comment's quote hid the next line's selector from the run scoping.
#[test]
fn metrics_and_bench_mistakes_are_usage_errors_that_say_the_rule_and_comments_hide_no_selector() {
    let sandbox = Sandbox::new();
    // Nothing listens here (a port that was free a moment ago): the query must be refused
    // before anything is asked.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = format!("http://127.0.0.1:{free}/");
    for (args, says) in [
        (&["metrics", "query", "up{run_id=\"other\"}", "--run-id", "abc12"][..], "already matches `run_id`"),
        (&["metrics", "query", "up", "--run-id", "Not_A_Run"][..], "Not_A_Run"),
        (&["bench", "pipeline", "--scale", "0"][..], "--scale 0: give more than 0 and at most 60"),
        (&["bench", "e2e", "--scale", "61"][..], "--scale 61: give more than 0 and at most 60"),
    ] {
        let out = sandbox.xtask(args).env("E2E_PROMETHEUS_URL", &nowhere).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    let out = sandbox
        .xtask(&[
            "metrics",
            "query",
            "count(x) # \"\n + count(y) # \"",
            "--run-id",
            "abc12",
            "--show",
            "--timeout",
            "1s",
        ])
        .env("E2E_PROMETHEUS_URL", &nowhere)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("count(y{run_id=\"abc12\"})"), "{}", text(&out));
}

/// `cleanup --run-id <unknown>` asked an unreachable Gitea about three guessed repositories (27 s
/// of retries) and exited 1. A run with no record here is cleaned by its label in the cluster,
/// and Gitea is left alone, said so.
#[test]
fn cleanup_of_a_run_with_no_record_cleans_by_label_and_leaves_gitea_alone_saying_so() {
    let l = Local::new();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = l
        .xtask(&["cleanup", "--run-id", "unknown1"])
        .env("E2E_GITEA_API_URL", format!("http://127.0.0.1:{free}/api/v1"))
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("run unknown1: no record of it here") && said.contains("Gitea is left alone"),
        "{said}"
    );
    let deletes = l.deletes();
    assert!(
        deletes.iter().any(|d| d.contains(&format!("delete namespace --selector {LABEL}=unknown1"))),
        "{deletes:?}"
    );
    assert!(!l.sandbox.run_dir("unknown1").exists(), "{said}");
}

/// `e2e --junit /proc/nope/x.xml` ran every flow, then failed without naming the path. The
/// report's place is checked first: exit 2 naming it, nothing run.
#[test]
fn an_unwritable_junit_path_is_refused_before_anything_runs() {
    let (fake, sandbox, dir, def) = cluster_only(0);
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    for junit in ["/proc/nope/x.xml".to_string(), blocker.join("x.xml").display().to_string()] {
        let out =
            in_dir(&sandbox, dir.path(), &["e2e", "--definition", def.to_str().unwrap(), "--junit", &junit])
                .output()
                .unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{said}");
        assert!(said.contains(&format!("--junit {junit}: the report cannot be written there")), "{said}");
        assert!(fake.journal().unwrap().is_empty(), "it ran something: {said}");
    }
    // A writable one is left as it was found until the report is written.
    let fine = dir.path().join("reports/junit.xml");
    let out = in_dir(
        &sandbox,
        dir.path(),
        &["e2e", "--definition", def.to_str().unwrap(), "--junit", fine.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(std::fs::read_to_string(&fine).unwrap().contains("<testsuite"));
}

/// A symlink to a directory, or a dangling one, in a build context failed setup with only `git
/// hash-object … fatal: Unable to hash (null)`. Docker sends the link itself, so the digest takes
/// the link's target text: setup passes, and re-pointing a link changes the image's digest.
#[test]
fn symlinks_in_a_build_context_enter_the_digest_as_links_as_docker_sends_them() {
    let fake = crate::harness::fake();
    let sandbox = Sandbox::with_fake(&fake);
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("sub")).unwrap();
    std::fs::write(ctx.join("sub/app.txt"), "v1\n").unwrap();
    std::fs::write(dir.path().join("app.Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    std::os::unix::fs::symlink("sub", ctx.join("to-dir")).unwrap();
    std::os::unix::fs::symlink("nowhere/at-all", ctx.join("dangling")).unwrap();
    std::os::unix::fs::symlink("sub/app.txt", ctx.join("to-file")).unwrap();
    let def = dir.path().join("e2e.toml");
    std::fs::write(
        &def,
        "[cluster]\nname = \"e2e\"\n\n[[image]]\nname = \"app\"\ntag = \"app:${DIGEST}\"\ndockerfile = \"app.Dockerfile\"\ncontext = \"ctx\"\n\n[[flow]]\nname = \"full\"\ngitea = false\nsteps = [[\"true\"]]\n",
    )
    .unwrap();
    let setup = || {
        let out =
            in_dir(&sandbox, dir.path(), &["setup", "--definition", def.to_str().unwrap()]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let records: serde_json::Value =
            serde_json::from_slice(&std::fs::read(sandbox.state.path().join("incremental.json")).unwrap())
                .unwrap();
        records["images"]["app"].clone()
    };
    let first = setup();
    let inputs = &first["inputs"];
    assert_eq!(inputs["context:to-dir"], "symlink sub", "{first}");
    assert_eq!(inputs["context:dangling"], "symlink nowhere/at-all", "{first}");
    assert_eq!(inputs["context:to-file"], "symlink sub/app.txt", "{first}");
    assert_eq!(inputs["context:sub/app.txt"].as_str().map(str::len), Some(40), "a git blob hash: {first}");
    // Re-pointed: another digest.
    std::fs::remove_file(ctx.join("dangling")).unwrap();
    std::os::unix::fs::symlink("elsewhere", ctx.join("dangling")).unwrap();
    let second = setup();
    assert_ne!(first["digest"], second["digest"], "{second}");
}

/// Pids whose command line holds `marker` (not this test process).
fn running_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let argv = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        if pid != std::process::id() && !zombie && String::from_utf8_lossy(&argv).contains(marker) {
            out.push(pid);
        }
    }
    out
}

/// A step that daemonises (`setsid … &`: its own session and process group) survived the run,
/// Ctrl-C and a SIGKILL of the xtask: the reaper works by process group. The xtask is a child
/// subreaper, so such orphans become its children, and it (or, after SIGKILL, the reaper) ends them.
#[test]
fn a_step_that_daemonises_does_not_outlive_the_run_its_ctrl_c_or_its_sigkill() {
    use std::time::{Duration, Instant};
    let marker = format!("daemon-marker-{}", std::process::id());
    let (_fake, sandbox, dir, def) = cluster_only(0);
    let steps = |tail: &str| {
        format!(
            "[cluster]\nname = \"e2e\"\n\n[[flow]]\nname = \"full\"\ngitea = false\nsteps = [[\"sh\", \"-c\", \"setsid sh -c 'sleep 300 # {marker}' >/dev/null 2>&1 < /dev/null & {tail}\"]]\n"
        )
    };
    let gone = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !running_with(&marker).is_empty() {
            assert!(Instant::now() < deadline, "{what}: left running: {:?}", running_with(&marker));
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let started = || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while running_with(&marker).is_empty() {
            assert!(Instant::now() < deadline, "the daemon never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let e2e = || in_dir(&sandbox, dir.path(), &["e2e", "--definition", def.to_str().unwrap()]);
    // The step ends at once; its daemon must not outlive the run.
    std::fs::write(&def, steps("exit 0")).unwrap();
    let out = e2e().output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    gone("after the run");
    // Ctrl-C and SIGKILL while the step still runs.
    std::fs::write(&def, steps("sleep 300")).unwrap();
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let mut child = e2e().stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        started();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().unwrap();
        gone(if signal == libc::SIGINT { "after Ctrl-C" } else { "after SIGKILL" });
    }
}
