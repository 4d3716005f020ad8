//! The xtask binary end to end: doctor, Ctrl-C.
// Tests drive the xtask binary from outside, as a user does; the exec-layer rule is for the engine.
#![allow(clippy::disallowed_methods)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use testkit::{group_members, Rule};

use crate::harness::{fake, Sandbox};

#[test]
fn doctor_reports_everything_present_with_the_fake_toolchain() {
    let fake = fake();
    fake.with_cluster("e2e").unwrap();
    let sandbox = Sandbox::with_fake(&fake);
    let out = sandbox.xtask(&["doctor"]).env_remove("KIND_CLUSTER").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for tool in ["docker", "kind", "kubectl", "helm", "git", "ssh-keygen", "docker daemon"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{tool} ")))
            .unwrap_or_else(|| panic!("no row for {tool}: {stdout}"));
        assert!(row.contains(" ok "), "{row}");
    }
    assert!(stdout.contains("kind v0.27.0-fake"), "versions are shown: {stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("cluster e2e") && l.contains("exists")), "{stdout}");
    assert!(stdout.contains("port 13000") && stdout.contains("port 19090"), "{stdout}");
}

#[test]
fn doctor_with_an_empty_path_names_every_missing_tool_and_exits_1() {
    let out = Sandbox::with_path("").run(&["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for (tool, hint) in [
        ("docker", "Docker Engine"),
        ("kind", "install kind"),
        ("kubectl", "install kubectl"),
        ("helm", "install helm"),
        ("git", "install git"),
        ("ssh-keygen", "openssh-client"),
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{tool} ")))
            .unwrap_or_else(|| panic!("{tool}: {stdout}"));
        assert!(row.contains("MISSING") && row.contains(hint), "{row}");
    }
    assert!(stdout.contains("not ready: missing docker, kind, kubectl, helm, git, ssh-keygen"), "{stdout}");
}

#[test]
fn doctor_reports_a_foreign_listener_on_a_shared_port_without_touching_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let fake = fake();
    let out = Sandbox::with_fake(&fake).run(&["doctor", "--port", &port]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout.lines().find(|l| l.starts_with(&format!("port {port}"))).unwrap();
    assert!(row.contains("held by") && row.contains("not ours"), "{row}");
    assert!(row.contains(&std::process::id().to_string()), "names the holder's pid: {row}");
    // Still ours to use: the doctor did not close or kill it.
    assert!(listener.local_addr().is_ok());
}

#[test]
fn sigint_stops_the_running_childs_whole_group_and_exits_130() {
    let fake = fake();
    // `docker version` hangs 30 s with a `sleep` child in its process group.
    fake.rule(Rule::new("docker", "^version").delay_ms(30_000).sleep_children(1)).unwrap();
    let sandbox = Sandbox::with_fake(&fake);
    let mut child = sandbox.xtask(&["doctor"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let started = loop {
        if let Some(call) = fake
            .started()
            .unwrap()
            .into_iter()
            .find(|c| c.argv.first().map(String::as_str) == Some("version") && c.tool == "docker")
        {
            break call;
        }
        assert!(Instant::now() < deadline, "the fake docker never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Its sleep child is in the group too.
    // Deadlines here are ones only a hang exceeds on a loaded machine (the fake hangs 30 s).
    let wait_members = Instant::now() + Duration::from_secs(20);
    while group_members(started.pgid).len() < 2 && Instant::now() < wait_members {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        group_members(started.pgid).len() >= 2,
        "fake and its sleep child: {:?}",
        group_members(started.pgid)
    );
    assert_ne!(started.pgid, child.id() as i32, "the child runs in its own process group");

    let sent = Instant::now();
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    while !group_members(started.pgid).is_empty() {
        assert!(
            sent.elapsed() < Duration::from_secs(15),
            "group still alive: {:?}",
            group_members(started.pgid)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "xtask did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(130));
}

#[test]
fn ci_without_the_test_prerequisites_stops_before_compiling_and_names_them() {
    // A repository whose `[ci] requires` names programs no machine has: the test gate stops
    // before cargo compiles anything, naming each with its package (whatever this machine has).
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("hack")).unwrap();
    std::fs::write(
        repo.path().join("hack/lint.toml"),
        "[ci]\nrequires = { e2e-no-such-server = \"e2e-server-pkg\", e2e-no-such-client = \"e2e-client-pkg\", sh = \"dash\" }\n",
    )
    .unwrap();
    let sandbox = Sandbox::with_path(std::env::var_os("PATH").unwrap_or_default());
    let started = Instant::now();
    let out = sandbox
        .xtask(&["ci", "--gate", "test"])
        .env("E2E_REPO_ROOT", repo.path())
        .output()
        .expect("running xtask");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("need e2e-no-such-client, e2e-no-such-server on this machine")
            && stderr.contains("apt-get install e2e-client-pkg e2e-server-pkg`"),
        "{stderr}"
    );
    assert!(!stderr.contains("dash"), "sh is on PATH: {stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "no gate ran: {stderr}");
    assert!(!stderr.contains("::group::"), "{stderr}");
}

#[test]
fn doctor_with_an_existing_cluster_needs_no_kind_and_checks_the_context() {
    let fake =
        testkit::FakeToolchain::with_tools(env!("CARGO_BIN_EXE_fake-tool"), &["docker", "helm", "kubectl"])
            .unwrap();
    fake.with_context("shared-dev").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("e2e.toml");
    std::fs::write(&def, "[cluster]\nname = \"dev\"\nprovider = \"existing\"\ncontext = \"shared-dev\"\n")
        .unwrap();
    let sandbox = Sandbox::with_fake(&fake);
    let out = sandbox.run(&["doctor", "--definition", def.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let row = |name: &str| {
        stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {stdout}"))
    };
    assert!(row("kind ").contains("not needed"), "{stdout}");
    assert!(row("context shared-dev").contains(" ok "), "{stdout}");
    // A context the kubeconfig lacks is a missing piece.
    std::fs::write(&def, "[cluster]\nname = \"dev\"\nprovider = \"existing\"\ncontext = \"gone\"\n").unwrap();
    let out = sandbox.run(&["doctor", "--definition", def.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("not ready: missing context gone"), "{stdout}");
}

/// The doctor checks what the definition says: its cluster's name, its forwards' ports, and
/// only the tools it needs (helm is not needed by a definition that installs no chart).
#[test]
fn doctor_reads_the_definitions_cluster_ports_and_tools() {
    let fake =
        testkit::FakeToolchain::with_tools(env!("CARGO_BIN_EXE_fake-tool"), &["docker", "kind", "kubectl"])
            .unwrap();
    fake.with_cluster("gitops-reverser-test-e2e").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("e2e.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        &def,
        format!(
            "[cluster]\nname = \"gitops-reverser-test-e2e\"\n\n[[port-forward]]\nname = \"gitea\"\nnamespace = \"gitea-e2e\"\ntarget = \"svc/gitea-http\"\nlocal = {port}\nremote = 3000\nprobe = \"/api/v1/version\"\n\n[[flow]]\nname = \"smoke\"\ngitea = false\nsteps = [[\"true\"]]\n"
        ),
    )
    .unwrap();
    let out = Sandbox::with_path(fake.bin_dir())
        .xtask(&["doctor", "--definition", def.to_str().unwrap()])
        .env_remove("KIND_CLUSTER")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = |name: &str| {
        stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {stdout}"))
    };
    assert!(row("cluster gitops-reverser-test-e2e").contains("exists"), "{stdout}");
    assert!(row(&format!("port {port} (gitea)")).contains("free"), "{stdout}");
    assert!(!stdout.contains("port 13000"), "the definition's ports, not the defaults: {stdout}");
    assert!(row("helm ").contains("not needed by the definition"), "{stdout}");
    assert!(row("git ").contains("not needed"), "no flow uses Gitea: {stdout}");
    assert_eq!(out.status.code(), Some(0), "what it does not need is not missing:\n{stdout}");
}
