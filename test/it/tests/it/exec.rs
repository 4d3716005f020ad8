//! The exec layer: timeouts, process groups, secrets, dry-run, error text.

use std::time::{Duration, Instant};

use operator_e2e::exec::{self, Failure};
use testkit::{group_members, FakeToolchain, Rule};
use xshell::{cmd, Shell};

fn fake() -> FakeToolchain {
    FakeToolchain::new(env!("CARGO_BIN_EXE_fake-tool")).expect("fake toolchain")
}

#[test]
fn a_child_ignoring_sigterm_is_killed_with_its_group_at_the_timeout() {
    let sh = Shell::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let pidfile_s = pidfile.display().to_string();
    // The shell and its background child both ignore SIGTERM; only SIGKILL of the group ends them.
    let script = format!("trap '' TERM; sleep 60 & echo $$ $! > {pidfile_s}; wait");
    let start = Instant::now();
    let err = exec::cmd(cmd!(sh, "sh -c {script}"))
        .timeout(Duration::from_millis(500))
        .grace(Duration::from_millis(300))
        .run()
        .expect_err("must time out");
    let elapsed = start.elapsed();

    assert!(matches!(err.failure, Failure::Timeout(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("timed out") && text.contains("sh -c"), "{text}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    let pids = std::fs::read_to_string(&pidfile).unwrap();
    let leader: i32 = pids.split_whitespace().next().unwrap().parse().unwrap();
    // A deadline only a hang exceeds (the group's `sleep 60` would outlive it).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !group_members(leader).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(group_members(leader).is_empty(), "group {leader} still has {:?}", group_members(leader));
}

#[test]
fn a_failing_command_reports_status_and_stderr_tail() {
    let sh = Shell::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls/fail.log");
    let script = "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25; do echo line-$i >&2; done; echo out; exit 7";
    let err = exec::cmd(cmd!(sh, "sh -c {script}")).log(&log).run().expect_err("must fail");
    assert_eq!(err.failure, Failure::Exit(7));
    let text = err.to_string();
    assert!(text.contains("exit status 7"), "{text}");
    assert!(text.contains("line-25") && text.contains("line-6\n"), "{text}");
    assert!(!text.contains("line-5\n"), "only the last 20 lines: {text}");
    assert!(text.contains(&log.display().to_string()), "names the log: {text}");

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("$ sh -c"), "{logged}");
    assert!(logged.contains("line-1\n") && logged.contains("out\n"), "{logged}");
    assert!(logged.contains("=== exit 7 after"), "{logged}");
}

#[test]
fn allow_failure_returns_the_output() {
    let sh = Shell::new().unwrap();
    let out = exec::cmd(cmd!(sh, "sh -c 'echo hi; exit 3'")).allow_failure().run().unwrap();
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout, "hi\n");
}

#[test]
fn stdin_is_fed_to_the_command() {
    let sh = Shell::new().unwrap();
    let out = exec::cmd(cmd!(sh, "cat")).stdin("manifest: yes\n").run().unwrap();
    assert_eq!(out.stdout, "manifest: yes\n");
}

#[test]
fn a_missing_program_is_named_with_how_to_get_it() {
    let sh = Shell::new().unwrap();
    sh.set_var("PATH", "/nonexistent");
    let err = exec::cmd(cmd!(sh, "kind get clusters")).run().expect_err("kind is not there");
    assert_eq!(err.failure, Failure::NotFound("kind".into()));
    let text = err.to_string();
    assert!(text.contains("`kind` was not found on PATH") && text.contains("install kind"), "{text}");
}

#[test]
fn secrets_appear_in_no_log_error_or_dry_run_output() {
    let secret = "s3cr3t-token-ff01a9";
    let sh = Shell::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("secret.log");
    // As an argument, as an env value, echoed on stdout and stderr, then a failure.
    let err = exec::cmd(cmd!(sh, "sh -c 'echo token=$TOKEN; echo \"$0\" >&2; exit 4' {secret}"))
        .env_secret("TOKEN", secret)
        .log(&log)
        .run()
        .expect_err("exit 4");
    let text = err.to_string();
    assert!(text.contains("***"), "redacted, not dropped: {text}");
    assert!(!text.contains(secret), "error leaks the secret: {text}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("token=***"), "{logged}");
    assert!(!logged.contains(secret), "log leaks the secret: {logged}");

    let call = exec::cmd(cmd!(sh, "git clone https://user:{secret}@example.invalid/repo")).secret(secret);
    assert!(!call.display().contains(secret));
    let out = call.dry_run(true).log(&log).run().unwrap();
    assert!(out.stdout.is_empty());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains(secret) && logged.contains("user:***@"), "{logged}");
}

#[test]
fn dry_run_records_and_runs_nothing() {
    let fake = fake();
    let sh = Shell::new().unwrap();
    sh.set_var("PATH", fake.path_env());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("plan.log");
    exec::cmd(cmd!(sh, "kind create cluster --name x")).dry_run(true).log(&log).run().unwrap();
    assert!(fake.journal().unwrap().is_empty(), "dry-run must not run the command");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("$ kind create cluster --name x") && logged.contains("dry-run"), "{logged}");
}

#[test]
fn parallel_fake_calls_overlap_in_the_journal_and_sequential_ones_do_not() {
    let fake = fake();
    fake.rule(Rule::new("docker", "^build").delay_ms(400)).unwrap();
    let path = fake.path_env();
    std::thread::scope(|s| {
        for tag in ["a:1", "b:1"] {
            let path = path.clone();
            s.spawn(move || {
                let sh = Shell::new().unwrap();
                sh.set_var("PATH", path);
                exec::cmd(cmd!(sh, "docker build -t {tag} .")).run().unwrap();
            });
        }
    });
    let sh = Shell::new().unwrap();
    sh.set_var("PATH", &path);
    sh.set_var("E2E_RUN_ID", "r1");
    exec::cmd(cmd!(sh, "kind create cluster --name e2e")).run().unwrap();
    exec::cmd(cmd!(sh, "kind load docker-image a:1 --name e2e")).run().unwrap();

    let calls = fake.journal().unwrap();
    assert_eq!(calls.len(), 4, "{calls:#?}");
    let builds: Vec<_> = calls.iter().filter(|c| c.argv[0] == "build").collect();
    assert_eq!(builds.len(), 2);
    assert!(builds[0].overlaps(builds[1]), "parallel builds must overlap: {builds:#?}");
    let create = calls.iter().find(|c| c.line() == "kind create cluster --name e2e").unwrap();
    let load = calls.iter().find(|c| c.argv[0] == "load").unwrap();
    assert!(!create.overlaps(load) && create.end_ns <= load.start_ns);
    assert!(builds.iter().all(|b| b.end_ns <= create.start_ns));
    assert_eq!(load.env.get("E2E_RUN_ID").map(String::as_str), Some("r1"), "E2E_* env is journaled");
}

#[test]
fn the_fake_world_keeps_clusters_and_images() {
    let fake = fake();
    let sh = Shell::new().unwrap();
    sh.set_var("PATH", fake.path_env());
    let clusters = exec::cmd(cmd!(sh, "kind get clusters")).run().unwrap();
    assert_eq!(clusters.stdout, "");
    exec::cmd(cmd!(sh, "kind create cluster --name one")).run().unwrap();
    assert_eq!(exec::cmd(cmd!(sh, "kind get clusters")).run().unwrap().stdout, "one\n");
    let again = exec::cmd(cmd!(sh, "kind create cluster --name one")).run().expect_err("exists");
    assert!(again.to_string().contains("already exist"), "{again}");

    let err =
        exec::cmd(cmd!(sh, "kind load docker-image never-built:1 --name one")).run().expect_err("not built");
    assert!(err.to_string().contains("not present locally"), "{err}");
    exec::cmd(cmd!(sh, "docker build --tag=built:1 .")).run().unwrap();
    exec::cmd(cmd!(sh, "kind load docker-image built:1 --name one")).run().unwrap();

    let manifest = r#"{"kind":"Secret"}"#;
    exec::cmd(cmd!(sh, "kubectl apply -f -")).stdin(manifest).run().unwrap();
    let calls = fake.journal().unwrap();
    let apply = calls.iter().find(|c| c.tool == "kubectl").unwrap();
    assert_eq!(apply.stdin.as_deref(), Some(manifest));
}

#[test]
fn a_scenario_rule_can_fail_a_step_a_limited_number_of_times() {
    let fake = fake();
    fake.rule(Rule::new("kind", "^load").exit(1).stderr("ERROR: flaky\n").times(1)).unwrap();
    fake.with_cluster("c").unwrap();
    let sh = Shell::new().unwrap();
    sh.set_var("PATH", fake.path_env());
    exec::cmd(cmd!(sh, "docker build -t i:1 .")).run().unwrap();
    let first = exec::cmd(cmd!(sh, "kind load docker-image i:1 --name c")).run().expect_err("first fails");
    assert!(first.to_string().contains("ERROR: flaky"), "{first}");
    exec::cmd(cmd!(sh, "kind load docker-image i:1 --name c")).run().expect("second passes");
}

/// Step output was buffered whole: 100 MB of stdout took the xtask to 200-300 MB of memory and
/// wrote a 100 MB log. The head and the tail are kept, in the log and in what the call returns,
/// and the cut between them is said.
#[test]
fn a_flood_of_output_keeps_its_head_and_tail_and_says_how_much_was_cut() {
    let sh = Shell::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("flood.log");
    // 40 MB: 40,000 lines of 999 digits, numbered so the first and last can be told apart.
    let script = "i=0; line=$(printf '%0990d' 0); while [ $i -lt 40000 ]; do printf '%08d %s\\n' $i \"$line\"; i=$((i+1)); done";
    let out = exec::cmd(cmd!(sh, "sh -c {script}")).log(&log).run().unwrap();
    let (head, tail) = (exec::OUTPUT_HEAD, exec::OUTPUT_TAIL);
    assert!(out.stdout.len() <= head + tail + 200, "{} bytes kept", out.stdout.len());
    assert!(out.stdout.starts_with("00000000 000"), "the head is kept");
    assert!(out.stdout.trim_end().lines().last().unwrap().starts_with("00039999 "), "the tail is kept");
    let note = out.stdout.lines().find(|l| l.contains("cut here")).expect("the cut is said");
    let cut: u64 = note.trim_start_matches("=== ").split(' ').next().unwrap().parse().unwrap();
    let kept_lines = out.stdout.lines().filter(|l| !l.contains("cut here")).count() as u64;
    assert_eq!(cut, (40_000 - kept_lines) * 1000, "{note}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.len() as u64 <= (head + tail) as u64 + 4096, "a {} byte log", logged.len());
    assert!(logged.contains(note) && logged.contains("\n00000000 ") && logged.contains("\n00039999 "));
}
