//! The pipeline against the fake toolchain's journal, and the real Docker engine for the demo
//! images.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testkit::{Call, FakeToolchain, Rule};

use crate::harness::text;
use crate::harness::{root, Sandbox};

/// A definition in a temp dir: `images` (name, load), `deploys` (TOML lines).
fn definition(dir: &Path, images: &[(&str, bool)], deploys: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("docker")).unwrap();
    let mut text = String::from("[cluster]\nname = \"e2e\"\nwait = \"30s\"\n");
    for (name, load) in images {
        std::fs::write(dir.join(format!("docker/{name}.Dockerfile")), "FROM scratch\n").unwrap();
        text.push_str(&format!(
            "\n[[image]]\nname = \"{name}\"\ntag = \"{name}:t\"\ndockerfile = \"docker/{name}.Dockerfile\"\nload = {load}\n"
        ));
    }
    text.push_str(deploys);
    let path = dir.join("e2e.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `xtask setup --definition DEF EXTRA...` in `sandbox`.
fn setup_in(sandbox: &Sandbox, def: &Path, extra: &[&str]) -> Output {
    let def = def.to_str().expect("UTF-8 temp path");
    let mut args = vec!["setup", "--definition", def];
    args.extend_from_slice(extra);
    sandbox.run(&args)
}

/// The same in a sandbox of its own, for tests that read only the output.
fn setup(fake: &FakeToolchain, def: &Path, extra: &[&str]) -> Output {
    setup_in(&Sandbox::with_fake(fake), def, extra)
}

fn find<'a>(calls: &'a [Call], prefix: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.line().starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` in {calls:#?}"))
}

fn all<'a>(calls: &'a [Call], prefix: &str) -> Vec<&'a Call> {
    calls.iter().filter(|c| c.line().starts_with(prefix)).collect()
}

#[test]
fn tasks_start_as_soon_as_what_they_need_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let fake = crate::harness::fake();
    fake.rule(Rule::new("docker", "^build -t a:t").delay_ms(300)).unwrap();
    fake.rule(Rule::new("docker", "^build -t b:t").delay_ms(900)).unwrap();
    fake.rule(Rule::new("docker", "^build -t c:t").delay_ms(600)).unwrap();
    fake.rule(Rule::new("kind", "^load").delay_ms(500)).unwrap();
    fake.rule(Rule::new("helm", "^upgrade").delay_ms(200)).unwrap();
    std::fs::write(dir.path().join("app.yaml"), "kind: List\n").unwrap();
    let def = definition(
        dir.path(),
        &[("a", true), ("b", true), ("c", false)],
        "\n[[deploy]]\nname = \"gitea\"\nnamespace = \"gitea-e2e\"\nhelm = { chart = \"gitea\" }\n\
         \n[[deploy]]\nname = \"app\"\nmanifests = [\"app.yaml\"]\nimages = [\"a\"]\nneeds = [\"gitea\"]\n",
    );
    let sandbox = Sandbox::with_fake(&fake);
    let out = setup_in(&sandbox, &def, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let calls = fake.journal().unwrap();
    let builds = all(&calls, "docker build");
    assert_eq!(builds.len(), 3);
    for pair in [(0, 1), (0, 2), (1, 2)] {
        assert!(builds[pair.0].overlaps(builds[pair.1]), "builds overlap");
    }
    let create = find(&calls, "kind create cluster --name e2e");
    let last_build_end = builds.iter().map(|b| b.end_ns).max().unwrap();
    assert!(create.start_ns >= last_build_end, "the cluster comes after the last build");
    let loads = all(&calls, "kind load docker-image");
    assert_eq!(loads.len(), 2, "image c has load = false");
    for load in &loads {
        let image = &load.argv[2];
        let own = find(&calls, &format!("docker build -t {image}"));
        assert!(load.start_ns >= create.end_ns && load.start_ns >= own.end_ns);
    }
    // The helm deploy needs no image: it starts right after the cluster, before any load ends.
    let helm = find(&calls, "helm upgrade --install gitea");
    assert!(helm.start_ns >= create.end_ns);
    assert!(helm.start_ns < loads.iter().map(|l| l.end_ns).min().unwrap(), "helm waited for loads");
    // The manifests deploy waits for its image's load and for gitea.
    let apply = find(&calls, "kubectl apply");
    let load_a = loads.iter().find(|l| l.argv[2] == "a:t").unwrap();
    assert!(apply.start_ns >= load_a.end_ns && apply.start_ns >= helm.end_ns);

    // The timing report and the Gantt chart.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("critical path") && stdout.contains("build:b"), "{stdout}");
    let report_line = stdout.lines().find(|l| l.starts_with("timing report: ")).unwrap();
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report_line.trim_start_matches("timing report: ")).unwrap(),
    )
    .unwrap();
    let cp: Vec<&str> =
        report["critical_path"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(cp.first(), Some(&"build:b"), "the slowest build is on the critical path: {cp:?}");
    assert_eq!(report["tasks"].as_array().unwrap().len(), 8);
}

#[test]
fn four_equal_builds_all_start_before_any_ends_on_two_cores() {
    let dir = tempfile::tempdir().unwrap();
    let fake = crate::harness::fake();
    fake.rule(Rule::new("docker", "^build").delay_ms(700)).unwrap();
    let def = definition(dir.path(), &[("a", false), ("b", false), ("c", false), ("d", false)], "");
    let out = setup(&fake, &def, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let calls = fake.journal().unwrap();
    let builds = all(&calls, "docker build");
    assert_eq!(builds.len(), 4);
    let last_start = builds.iter().map(|b| b.start_ns).max().unwrap();
    let first_end = builds.iter().map(|b| b.end_ns).min().unwrap();
    assert!(last_start < first_end, "all four builds run at once (threads = graph width, not cores)");
}

#[test]
fn sequential_runs_one_task_at_a_time_and_dry_run_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = crate::harness::fake();
    fake.rule(Rule::new("docker", "^build").delay_ms(200)).unwrap();
    let def = definition(dir.path(), &[("a", true), ("b", true)], "");
    let plan = setup(&fake, &def, &["--dry-run"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert!(plan_text.contains("cluster                  after: build:a, build:b"), "{plan_text}");
    assert!(plan_text.contains("[dry-run] $ kind create cluster --name e2e"), "{plan_text}");
    assert!(fake.journal().unwrap().is_empty(), "dry-run ran something");

    let out = setup(&fake, &def, &["--sequential"]);
    assert!(out.status.success(), "{}", text(&out));
    // The graph's tasks one at a time; the preflight's probes (each tool's version, the engine's
    // info) are no task and run at once before the first.
    let probe = |c: &Call| {
        let line = c.line();
        line == format!("{} version", c.tool)
            || line.starts_with(&format!("{} version ", c.tool)) && !line.contains("Server")
            || line.starts_with("docker info --format {{.ServerVersion}}")
    };
    let calls: Vec<Call> = fake.journal().unwrap().into_iter().filter(|c| !probe(c)).collect();
    assert!(calls.iter().any(|c| c.line().starts_with("docker build")), "{calls:#?}");
    for (i, a) in calls.iter().enumerate() {
        for b in &calls[i + 1..] {
            assert!(!a.overlaps(b), "sequential mode overlapped {} and {}", a.line(), b.line());
        }
    }
}

#[test]
fn a_failing_build_stops_the_rest_and_no_cluster_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let fake = crate::harness::fake();
    fake.rule(
        Rule::new("docker", "^build -t broken:t")
            .delay_ms(200)
            .exit(1)
            .stderr("step 3/5: no space left on device\n"),
    )
    .unwrap();
    fake.rule(Rule::new("docker", "^build").delay_ms(20_000).sleep_children(1)).unwrap();
    let def = definition(dir.path(), &[("broken", true), ("slow", true), ("slower", true)], "");
    let start = Instant::now();
    let out = setup(&fake, &def, &[]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(took < Duration::from_secs(12), "the other builds were stopped, not waited for: {took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("build:broken") && err.contains("no space left on device"),
        "names the image and its log tail: {err}"
    );
    assert!(err.contains("2 stopped"), "{err}");
    let calls = fake.journal().unwrap();
    // (Preflight asks kind its version; nothing else of kind runs.)
    assert!(
        !calls.iter().any(|c| c.tool == "kind" && c.argv[0] != "version"),
        "no cluster after a failed build: {calls:#?}"
    );
    // The stopped builds' processes (and their children) are gone.
    for s in fake.started().unwrap() {
        assert!(testkit::group_members(s.pgid).is_empty(), "{s:?} left running");
    }
}

#[test]
fn a_hanging_step_is_killed_at_its_timeout_and_an_existing_cluster_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = crate::harness::fake();
    fake.with_cluster("e2e").unwrap();
    fake.rule(Rule::new("helm", "^upgrade").delay_ms(60_000)).unwrap();
    let def = definition(
        dir.path(),
        &[("a", true)],
        "\n[[deploy]]\nname = \"stuck\"\nnamespace = \"x\"\nhelm = { chart = \"x\" }\ntimeout = \"1s\"\n",
    );
    let start = Instant::now();
    let out = setup(&fake, &def, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(start.elapsed() < Duration::from_secs(15));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deploy:stuck") && err.contains("timed out"), "{err}");
    let calls = fake.journal().unwrap();
    assert!(calls.iter().any(|c| c.line() == "kind get clusters"));
    assert!(!calls.iter().any(|c| c.line().starts_with("kind create")), "the existing cluster is reused");
    assert!(calls.iter().any(|c| c.line().starts_with("kind load docker-image a:t --name e2e")));
}

#[test]
fn a_flaky_load_is_retried_and_the_containerd_store_falls_back_to_an_archive() {
    let dir = tempfile::tempdir().unwrap();
    let fake = crate::harness::fake();
    fake.rule(
        Rule::new("kind", "^load docker-image a:t").exit(1).stderr("ERROR: connection reset\n").times(1),
    )
    .unwrap();
    fake.rule(
        Rule::new("kind", "^load docker-image b:t")
            .exit(1)
            .stderr("ERROR: failed to load image: ctr: content digest sha256:abc: not found\n"),
    )
    .unwrap();
    let def = definition(dir.path(), &[("a", true), ("b", true)], "");
    let out = setup(&fake, &def, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let calls = fake.journal().unwrap();
    assert_eq!(all(&calls, "kind load docker-image a:t").len(), 2, "retried once");
    assert!(calls
        .iter()
        .any(|c| c.line().starts_with("docker image save --platform linux/amd64 -o")
            && c.line().ends_with("b:t")));
    assert!(calls.iter().any(|c| c.line().starts_with("kind load image-archive")));
}

#[test]
fn definition_errors_name_the_file_the_key_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let fake = crate::harness::fake();
    let def = definition(
        dir.path(),
        &[("a", true)],
        "\n[[deploy]]\nname = \"x\"\nnamespace = \"n\"\nhelm = { chart = \"c\" }\nneeds = [\"nope\"]\n",
    );
    let out = setup(&fake, &def, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("e2e.toml: deploy[0] (x).needs: unknown deploy \"nope\""), "{err}");
    std::fs::write(&def, "[cluster]\nname = \"e2e\"\n[[image]]\nname = \"a\"\ntag = \"a:t\"\ndockerfile = \"missing.Dockerfile\"\n").unwrap();
    let err = String::from_utf8_lossy(&setup(&fake, &def, &[]).stderr).to_string();
    assert!(err.contains("image[0] (a).dockerfile: missing.Dockerfile does not exist"), "{err}");
    assert!(fake.journal().unwrap().is_empty());
}

/// A decoding error names the line and column of the value it is about: an unknown `env` in
/// `[[deploy]]` at line 14, not the `env` of `[[image]]` at line 8 (positions were found by
/// searching the text for the key's name); a date where a string is wanted parses and is named
/// as a date; TOML 1.1 syntax is refused saying so.
#[test]
fn definition_decoding_errors_name_the_line_and_column_of_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let fake = crate::harness::fake();
    std::fs::create_dir_all(dir.path().join("docker")).unwrap();
    std::fs::write(dir.path().join("docker/a.Dockerfile"), "FROM scratch\n").unwrap();
    let def = dir.path().join("e2e.toml");
    let head = "[cluster]\nname = \"e2e\"\n\n[[image]]\nname = \"a\"\ntag = \"a:t\"\ndockerfile = \"docker/a.Dockerfile\"\nenv = { X = \"1\" }\n\n[[deploy]]\nname = \"x\"\nnamespace = \"n\"\nhelm = { chart = \"c\" }\n";
    let run = |tail: &str| {
        std::fs::write(&def, format!("{head}{tail}")).unwrap();
        let out = setup(&fake, &def, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run("  env = { X = \"1\" }\n");
    assert!(err.contains("e2e.toml: line 14, column 3: unknown field `env` in deploy[0]"), "{err}");
    let err = run("timeout = 1979-05-27T07:32:00Z\n");
    assert!(
        err.contains("e2e.toml: line 14, column 11: invalid type at deploy[0].timeout")
            && err.contains("found offset date-time 1979-05-27T07:32:00Z"),
        "{err}"
    );
    let err = run("wait = { resource = \"deployment/x\",\n  for = \"condition=Available\" }\n");
    assert!(
        err.contains("e2e.toml: line 14, column 36: a newline or a comment in an inline table is TOML 1.1"),
        "{err}"
    );
    assert!(fake.journal().unwrap().is_empty());
}

/// The real engine builds both demo images. With CI set, a missing engine is a failure.
#[test]
fn the_real_docker_engine_builds_both_demo_images_in_parallel() {
    let engine = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
    let up = engine.as_ref().is_ok_and(|o| o.status.success());
    if !up {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(
            !ci,
            "CI is set but the Docker engine does not answer `docker info`: this test must run for real"
        );
        eprintln!("skipped: no Docker engine (set CI to make this a failure)");
        return;
    }
    let fake =
        FakeToolchain::with_tools(env!("CARGO_BIN_EXE_fake-tool"), &["kind", "helm", "kubectl"]).unwrap();
    fake.real_docker_inspect(true).unwrap();
    let sandbox = Sandbox::with_fake(&fake);
    let out = setup_in(&sandbox, &root().join("test/e2e/e2e.toml"), &[]);
    assert!(out.status.success(), "{}", text(&out));
    // kind loaded what the real engine built (the fake checks with `docker image inspect`),
    // tagged by the digest of its inputs.
    let calls = fake.journal().unwrap();
    let loads = all(&calls, "kind load docker-image");
    assert_eq!(loads.len(), 2);
    for load in loads {
        let tag = &load.argv[2];
        assert!(tag.starts_with("e2e-demo") && tag.rsplit(':').next().unwrap().len() == 12, "{tag}");
        let inspect = Command::new("docker").args(["image", "inspect", tag]).output().unwrap();
        assert!(inspect.status.success(), "{tag} was not built");
    }
    // The demo's manifest was applied templated with the digest tag it was built with.
    let recorded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.state.path().join("incremental.json")).unwrap(),
    )
    .unwrap();
    let demo_tag = recorded["images"]["demo"]["tag"].as_str().unwrap().to_string();
    let applied = find(&calls, "kubectl apply --server-side --namespace demo-e2e -f ");
    let rendered = std::fs::read_to_string(&applied.argv[5]).unwrap();
    assert!(rendered.contains(&format!("image: \"{demo_tag}\"")), "{rendered}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report_line = stdout.lines().find(|l| l.starts_with("timing report: ")).unwrap();
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report_line.trim_start_matches("timing report: ")).unwrap(),
    )
    .unwrap();
    let task = |id: &str| report["tasks"].as_array().unwrap().iter().find(|t| t["id"] == id).unwrap().clone();
    let (a, b) = (task("build:demo"), task("build:demo-probe"));
    assert!(
        a["start_s"].as_f64() < b["end_s"].as_f64() && b["start_s"].as_f64() < a["end_s"].as_f64(),
        "builds overlapped"
    );
}

#[test]
fn preflight_refuses_old_helm_and_a_silent_docker_engine_before_any_build() {
    let fake = crate::harness::fake();
    let dir = tempfile::tempdir().unwrap();
    let def = definition(
        dir.path(),
        &[("a", true)],
        "\n[[deploy]]\nname = \"gitea\"\nnamespace = \"gitea-e2e\"\nhelm = { chart = \"gitea\" }\n",
    );
    // helm 3.12 has no `upgrade --labels` (helm cmd/helm/upgrade.go, added in 3.13.0).
    fake.rule(Rule::new("helm", "^version").stdout("v3.12.3+g3a31588\n")).unwrap();
    fake.rule(Rule::new("docker", "^info").exit(1).stderr(
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n",
    ))
    .unwrap();
    let started = Instant::now();
    let out = setup(&fake, &def, &[]);
    let err = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("helm 3.12.3 is older than 3.13") && err.contains("--labels"), "{err}");
    assert!(err.contains("the Docker engine does not answer") && err.contains("Cannot connect"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "seconds, not a build");
    let calls = fake.journal().unwrap();
    assert!(!calls.iter().any(|c| c.tool == "docker" && c.argv[0] == "build"), "no build ran");

    // kubectl 1.22 hangs when its pod goes instead of exiting: refused too.
    let fake = crate::harness::fake();
    fake.rule(
        Rule::new("kubectl", "^version")
            .stdout("Client Version: version.Info{Major:\"1\", Minor:\"22\", GitVersion:\"v1.22.17\"}\n"),
    )
    .unwrap();
    let out = setup(&fake, &def, &[]);
    assert!(text(&out).contains("kubectl 1.22.17 is older than 1.25"), "{}", text(&out));

    // kubectl 1.24 embeds kustomize v4.5.4, which has no labels[].includeTemplates (added in
    // v4.5.5) and refuses the quickstart's overlay: refused before any work, saying why.
    let fake = crate::harness::fake();
    fake.rule(
        Rule::new("kubectl", "^version").stdout("Client Version: v1.24.17\nKustomize Version: v4.5.4\n"),
    )
    .unwrap();
    let out = setup(&fake, &def, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("kubectl 1.24.17 is older than 1.25") && text(&out).contains("includeTemplates"),
        "{}",
        text(&out)
    );
}

#[test]
fn images_are_built_for_the_nodes_platform_and_load_falls_back_to_a_platform_archive() {
    let fake = crate::harness::fake();
    fake.platform("linux/arm64").unwrap();
    fake.containerd_store().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let def = definition(dir.path(), &[("a", true)], "");
    let edited = std::fs::read_to_string(&def)
        .unwrap()
        .replace("load = true\n", "load = true\nbuild-args = { TARGET = \"${NODE_RUST_TARGET}\" }\n");
    std::fs::write(&def, edited).unwrap();
    let out = setup(&fake, &def, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let calls = fake.journal().unwrap();
    let build = find(&calls, "docker build");
    assert!(
        build.line().contains("--platform linux/arm64")
            && build.line().contains("--build-arg TARGET=aarch64-unknown-linux-gnu"),
        "{}",
        build.line()
    );
    // kind load docker-image fails on the containerd store; an archive of every platform would
    // fail the same way, so the node's platform alone is saved.
    assert!(find(&calls, "kind load docker-image").exit != 0);
    let save = find(&calls, "docker image save");
    assert!(save.line().contains("--platform linux/arm64"), "{}", save.line());
    assert_eq!(find(&calls, "kind load image-archive").exit, 0);

    // An unknown variable is an error naming it, never an empty string.
    let edited = std::fs::read_to_string(&def).unwrap().replace("${NODE_RUST_TARGET}", "${NODE_ARCH}");
    std::fs::write(&def, edited).unwrap();
    let out = setup(&crate::harness::fake(), &def, &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("unknown variable ${NODE_ARCH}"), "{}", text(&out));
}

#[test]
fn preflight_refuses_a_containerd_store_engine_too_old_for_save_platform_before_any_build() {
    // Docker 27 offers the containerd image store but not `docker image save --platform` (API
    // 1.48, Docker 28): the load fallback would fail after every build. Refused at once, saying
    // both ways out.
    let fake = crate::harness::fake();
    fake.containerd_store().unwrap();
    fake.rule(Rule::new("docker", "^info").stdout("27.5.1 [[driver-type io.containerd.snapshotter.v1]]\n"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let def = definition(dir.path(), &[("a", true)], "");
    let out = setup(&fake, &def, &[]);
    let err = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Docker engine 27.5.1")
            && err.contains("docker image save --platform")
            && err.contains("Docker 28")
            && err.contains("containerd-snapshotter"),
        "{err}"
    );
    let calls = fake.journal().unwrap();
    assert!(!calls.iter().any(|c| c.tool == "docker" && c.argv[0] == "build"), "no build ran");

    // The same engine with the classic store loads with `kind load docker-image`: admitted; and
    // Docker 28 on the containerd store has the flag: admitted.
    for info in [
        "27.5.1 [[Backing Filesystem extfs] [Supports d_type true]]\n",
        "28.0.4 [[driver-type io.containerd.snapshotter.v1]]\n",
    ] {
        let fake = crate::harness::fake();
        fake.rule(Rule::new("docker", "^info").stdout(info)).unwrap();
        let out = setup(&fake, &def, &[]);
        assert!(out.status.success(), "{info}: {}", text(&out));
    }
}

#[test]
fn the_real_docker_engines_info_reads_as_preflight_asks_it() {
    // What preflight asks the engine, asked of the real one on this machine: it answers the
    // format (a version, then its driver status), and preflight admits it.
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}} {{.DriverStatus}}"])
        .output()
        .expect("the real docker client (the Docker engine is part of this machine)");
    assert!(out.status.success(), "docker info: {}", text(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    let (version, drivers) = line.trim().split_once(' ').expect("version, then the driver status");
    assert!(version.split('.').count() >= 2 && drivers.starts_with('['), "{line}");
}

#[test]
fn wait_is_honoured_on_every_kind_of_deploy_and_manifests_take_urls() {
    let fake = crate::harness::fake();
    let dir = tempfile::tempdir().unwrap();
    let def = definition(
        dir.path(),
        &[],
        "\n[[deploy]]\nname = \"gitea\"\nnamespace = \"gitea-e2e\"\nhelm = { chart = \"gitea\" }\n\
         wait = [{ resource = \"statefulset/gitea\", for = \"jsonpath={.status.readyReplicas}=1\", timeout = \"2m\" }]\n\
         \n[[deploy]]\nname = \"cert-manager\"\n\
         manifests = [\"https://github.com/cert-manager/cert-manager/releases/download/v1.16.2/cert-manager.yaml\"]\n\
         wait = [{ resource = \"deployment/cert-manager-webhook\", namespace = \"cert-manager\", for = \"condition=available\", timeout = \"3m\" }]\n\
         \n[[deploy]]\nname = \"custom\"\nnamespace = \"custom\"\ncommand = [\"kubectl\", \"get\", \"configmap\", \"custom-marker\"]\n\
         wait = [{ resource = \"deployment/custom\", for = \"condition=available\", timeout = \"1m\" }]\n",
    );
    let out = setup(&fake, &def, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let calls = fake.journal().unwrap();
    let lines: Vec<String> = calls.iter().map(|c| c.line()).collect();
    let at = |prefix: &str| {
        lines.iter().position(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix}: {lines:#?}"))
    };
    // The helm deploy's wait runs after its release, in its namespace, on the cluster's context.
    let helm_wait = at("kubectl wait --namespace gitea-e2e statefulset/gitea");
    assert!(at("helm upgrade --install gitea") < helm_wait);
    assert!(lines[helm_wait].ends_with("--timeout=120s --context kind-e2e"), "{}", lines[helm_wait]);
    // The command deploy's wait runs after its command.
    assert!(
        at("kubectl get configmap custom-marker") < at("kubectl wait --namespace custom deployment/custom")
    );
    // A manifest URL goes to kubectl as it is; without a deploy namespace there is no
    // `--namespace` (kubectl would refuse the release manifest's objects in kube-system), and the
    // wait names its own.
    assert!(
        at("kubectl apply --server-side -f https://github.com/cert-manager/")
            < at("kubectl wait --namespace cert-manager deployment/cert-manager-webhook")
    );
}

#[test]
fn a_prebuilt_image_handed_in_by_ci_replaces_the_build() {
    let fake = crate::harness::fake();
    fake.with_image("registry.ci/app@sha256:abc").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let def = definition(dir.path(), &[("a", true), ("b", true)], "");
    let sandbox = Sandbox::with_fake(&fake);
    let defs = def.to_str().unwrap();
    let out = sandbox
        .xtask(&["setup", "--definition", defs])
        .env("E2E_IMAGE_A", "registry.ci/app@sha256:abc")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let calls = fake.journal().unwrap();
    // `a` is not built: the prebuilt image is checked and tagged as a:t, which is what loads use.
    assert!(!calls.iter().any(|c| c.line().starts_with("docker build -t a:t")));
    assert!(find(&calls, "docker tag registry.ci/app@sha256:abc a:t").exit == 0);
    assert_eq!(find(&calls, "kind load docker-image a:t").exit, 0);
    // `b` is built as usual.
    find(&calls, "docker build -t b:t");
    // A prebuilt image that is not there is said plainly.
    let out =
        sandbox.xtask(&["setup", "--definition", defs]).env("E2E_IMAGE_B", "missing:1").output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("E2E_IMAGE_B=missing:1: no such image in the local Docker engine"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_kind_config_is_a_template_rendered_into_the_state_dir() {
    let fake = crate::harness::fake();
    let dir = tempfile::tempdir().unwrap();
    let def = definition(dir.path(), &[], "");
    std::fs::write(
        dir.path().join("kind.yaml"),
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraMounts:\n  - hostPath: ${REPO_ROOT}/charts\n    containerPath: /charts\n",
    )
    .unwrap();
    let edited =
        std::fs::read_to_string(&def).unwrap().replace("[cluster]\n", "[cluster]\nconfig = \"kind.yaml\"\n");
    std::fs::write(&def, edited).unwrap();
    let sandbox = Sandbox::with_fake(&fake);
    let out = setup_in(&sandbox, &def, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let calls = fake.journal().unwrap();
    let create = find(&calls, "kind create cluster");
    let config = create.argv.windows(2).find(|w| w[0] == "--config").map(|w| w[1].clone()).unwrap();
    assert!(
        config.starts_with(sandbox.state.path().to_str().unwrap()),
        "rendered into the state dir: {config}"
    );
    let rendered = std::fs::read_to_string(&config).unwrap();
    let root = dir.path().canonicalize().unwrap_or(dir.path().to_path_buf());
    assert!(rendered.contains("hostPath: ") && !rendered.contains("${REPO_ROOT}"), "{rendered}");
    assert!(
        rendered.contains(&format!("{}/charts", root.display()))
            || rendered.contains(&format!("{}/charts", dir.path().display())),
        "{rendered}"
    );
    // An unknown variable is an error naming it.
    std::fs::write(dir.path().join("kind.yaml"), "kind: Cluster\nname: ${NO_SUCH_VAR_XYZ}\n").unwrap();
    let out = setup(&crate::harness::fake(), &def, &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("unknown variable ${NO_SUCH_VAR_XYZ}"), "{}", text(&out));
}

#[test]
fn tags_build_args_and_set_values_take_the_git_sha_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "c"]);
    let sha = git(&["rev-parse", "--short=12", "HEAD"]);
    std::fs::create_dir_all(repo.join("docker")).unwrap();
    std::fs::write(repo.join("docker/a.Dockerfile"), "FROM scratch\n").unwrap();
    let write = |tag: &str| {
        let text = format!(
            "[cluster]\nname = \"e2e\"\n\n[[image]]\nname = \"a\"\ntag = \"{tag}\"\ndockerfile = \"docker/a.Dockerfile\"\n\
             build-args = {{ VERSION = \"${{GIT_SHA}}\", CHANNEL = \"${{RELEASE_CHANNEL}}\" }}\n\
             env = {{ DOCKER_BUILDKIT = \"1\", DOCKER_E2E_NOTE = \"${{RELEASE_CHANNEL}}-${{GIT_SHA}}\" }}\n\
             \n[[deploy]]\nname = \"app\"\nnamespace = \"app\"\nimages = [\"a\"]\n\
             helm = {{ chart = \"app\", set = {{ \"image.tag\" = \"${{GIT_SHA}}\", owner = \"${{RELEASE_CHANNEL}}\" }} }}\n"
        );
        std::fs::write(repo.join("e2e.toml"), text).unwrap();
        repo.join("e2e.toml")
    };
    let def = write("ghcr.io/acme/op-${RELEASE_CHANNEL}:${GIT_SHA}");
    let fake = crate::harness::fake();
    let sandbox = Sandbox::with_fake(&fake);
    let defs = def.to_str().unwrap();
    let out =
        sandbox.xtask(&["setup", "--definition", defs]).env("RELEASE_CHANNEL", "beta").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let calls = fake.journal().unwrap();
    let tag = format!("ghcr.io/acme/op-beta:{sha}");
    let build = find(&calls, &format!("docker build -t {tag} "));
    assert!(build.line().contains(&format!("--build-arg VERSION={sha}")), "{}", build.line());
    assert!(build.line().contains("--build-arg CHANNEL=beta"), "{}", build.line());
    // The image's env reaches its build, expanded.
    assert_eq!(build.env.get("DOCKER_BUILDKIT").map(String::as_str), Some("1"));
    assert_eq!(build.env.get("DOCKER_E2E_NOTE"), Some(&format!("beta-{sha}")));
    find(&calls, &format!("kind load docker-image {tag}"));
    let helm = find(&calls, "helm upgrade --install app app");
    assert!(helm.line().contains(&format!("--set image.tag={sha}")), "{}", helm.line());
    assert!(helm.line().contains("--set owner=beta"), "{}", helm.line());
    // A variable nobody set is an error naming the key, never an empty string.
    let out = sandbox.xtask(&["setup", "--definition", defs]).env_remove("RELEASE_CHANNEL").output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("image[0] (a).tag: unknown variable ${RELEASE_CHANNEL}"), "{}", text(&out));
    // ${GIT_SHA} outside a git checkout says so.
    std::fs::remove_dir_all(repo.join(".git")).unwrap();
    let out =
        sandbox.xtask(&["setup", "--definition", defs]).env("RELEASE_CHANNEL", "beta").output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("${GIT_SHA} is used"), "{}", text(&out));
}

#[test]
fn paths_resolve_from_the_repository_root_or_the_definitions_directory_and_errors_say_where() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    std::fs::create_dir_all(repo.join(".git")).unwrap(); // what marks the repository root
    std::fs::create_dir_all(repo.join("docker")).unwrap();
    std::fs::create_dir_all(repo.join("test/e2e/docker")).unwrap();
    std::fs::write(repo.join("docker/root.Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(repo.join("test/e2e/docker/local.Dockerfile"), "FROM scratch\n").unwrap();
    let def = repo.join("test/e2e/e2e.toml");
    let write = |local: &str| {
        std::fs::write(
            &def,
            format!(
                "[cluster]\nname = \"e2e\"\n\n[[image]]\nname = \"r\"\ntag = \"r:t\"\ndockerfile = \"docker/root.Dockerfile\"\n\
                 \n[[image]]\nname = \"l\"\ntag = \"l:t\"\ndockerfile = \"{local}\"\n"
            ),
        )
        .unwrap();
    };
    write("docker/local.Dockerfile");
    let fake = crate::harness::fake();
    let out = setup(&fake, &def, &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains(&format!("{}", repo.join("docker/root.Dockerfile").display())), "{said}");
    assert!(said.contains(&format!("{}", repo.join("test/e2e/docker/local.Dockerfile").display())), "{said}");
    write("docker/missing.Dockerfile");
    let out = setup(&fake, &def, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("image[1] (l).dockerfile: docker/missing.Dockerfile does not exist (looked in the repository root")
            && said.contains(&format!("and the definition's directory {}", repo.join("test/e2e").display())),
        "{said}"
    );
}

/// An existing cluster (a named kube context, a dev or CI cluster): never created, loaded with
/// kind or deleted; images are pushed to its registry and deploys name the registry image.
#[test]
fn an_existing_cluster_is_used_as_it_is_and_gets_its_images_from_the_registry() {
    let fake = crate::harness::fake();
    fake.with_context("shared-dev").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("docker")).unwrap();
    std::fs::create_dir_all(dir.path().join("ctx")).unwrap();
    std::fs::write(dir.path().join("docker/app.Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    std::fs::write(dir.path().join("ctx/main.txt"), "v1\n").unwrap();
    std::fs::write(dir.path().join("app.yaml"), "{\"kind\": \"List\", \"items\": []}\n").unwrap();
    let def = dir.path().join("e2e.toml");
    std::fs::write(
        &def,
        r#"[cluster]
name = "dev"
provider = "existing"
context = "shared-dev"
registry = "registry.example.test/e2e"

[[image]]
name = "app"
tag = "app:${DIGEST}"
dockerfile = "docker/app.Dockerfile"
context = "ctx"

[[deploy]]
name = "app"
namespace = "apps"
images = ["app"]
helm = { chart = "app", set = { "image" = "${IMAGE_APP}" } }

[[deploy]]
name = "raw"
namespace = "apps"
images = ["app"]
manifests = ["app.yaml"]
"#,
    )
    .unwrap();
    let sandbox = Sandbox::with_fake(&fake);
    let out = setup_in(&sandbox, &def, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let calls = fake.journal().unwrap();
    let lines: Vec<String> = calls.iter().map(|c| c.line()).collect();
    assert!(!lines.iter().any(|l| l.starts_with("kind ")), "kind is never called: {lines:#?}");
    let tag = find(&calls, "docker build -t app:").argv[2].clone();
    let remote = format!("registry.example.test/e2e/{tag}");
    assert!(lines.iter().any(|l| *l == format!("docker tag {tag} {remote}")), "{lines:#?}");
    assert!(lines.iter().any(|l| *l == format!("docker push {remote}")), "{lines:#?}");
    let helm = find(&calls, "helm upgrade --install app ");
    assert!(
        helm.line().contains(&format!("--set image={remote}")),
        "the deploy names the registry image: {}",
        helm.line()
    );
    // Every call that reaches the cluster names its context.
    for c in calls.iter().filter(|c| c.tool == "kubectl" || c.tool == "helm") {
        let flag = if c.tool == "helm" { "--kube-context" } else { "--context" };
        let named = c.argv.windows(2).any(|w| w[0] == flag && w[1] == "shared-dev");
        let local = c.argv.first().is_some_and(|a| a == "config" || a == "version");
        assert!(named || local, "{}", c.line());
    }
    // A second setup: nothing changed, nothing pushed or installed again.
    let before = calls.len();
    let out = setup_in(&sandbox, &def, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let again: Vec<String> = fake.journal().unwrap()[before..].iter().map(|c| c.line()).collect();
    assert!(
        !again.iter().any(|l| l.starts_with("docker push")
            || l.starts_with("helm upgrade")
            || l.starts_with("docker build")),
        "{again:#?}"
    );
    // The context must exist: a missing one is refused before anything runs.
    std::fs::write(&def, std::fs::read_to_string(&def).unwrap().replace("shared-dev", "gone-ctx")).unwrap();
    let out = setup_in(&sandbox, &def, &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("gone-ctx"), "{}", text(&out));
    // An existing cluster with images needs a registry; a kind cluster takes no context.
    let text_of = |body: &str| {
        std::fs::write(&def, body).unwrap();
        text(&setup_in(&sandbox, &def, &["--dry-run"]))
    };
    let said = text_of("[cluster]\nname = \"dev\"\nprovider = \"existing\"\ncontext = \"shared-dev\"\n[[image]]\nname = \"app\"\ntag = \"app:t\"\ndockerfile = \"docker/app.Dockerfile\"\n");
    assert!(said.contains("cluster.registry: an existing cluster cannot be loaded with kind"), "{said}");
    let said = text_of("[cluster]\nname = \"dev\"\ncontext = \"shared-dev\"\n");
    assert!(said.contains("cluster.context: belongs to provider = \"existing\""), "{said}");
    let said = text_of("[cluster]\nname = \"dev\"\nprovider = \"eks\"\n");
    assert!(said.contains("cluster.provider: \"eks\" is not one of kind, existing"), "{said}");
}

/// On an existing cluster, a manifest naming a built image by its local tag would be applied as it
/// is and fail to pull there (setup pushed `<registry>/<tag>`): refused, saying what to write.
#[test]
fn an_existing_cluster_manifest_naming_a_local_tag_is_refused_with_the_fix() {
    let fake = crate::harness::fake();
    fake.with_context("shared-dev").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("docker")).unwrap();
    std::fs::write(dir.path().join("docker/app.Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: \"app:dev\"\n",
    )
    .unwrap();
    let def = dir.path().join("e2e.toml");
    let body = r#"[cluster]
name = "dev"
provider = "existing"
context = "shared-dev"
registry = "registry.example.test/e2e"

[[image]]
name = "app"
tag = "app:dev"
dockerfile = "docker/app.Dockerfile"
context = "docker"

[[deploy]]
name = "raw"
namespace = "apps"
images = ["app"]
manifests = ["app.yaml"]
"#;
    std::fs::write(&def, body).unwrap();
    let sandbox = Sandbox::with_fake(&fake);
    let out = setup_in(&sandbox, &def, &[]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(
            "app.yaml names image app:dev, which setup pushed as registry.example.test/e2e/app:dev"
        ) && said.contains("${IMAGE_APP}")
            && said.contains("template = true"),
        "{said}"
    );
    let calls = fake.journal().unwrap();
    assert!(!calls.iter().any(|c| c.line().starts_with("kubectl apply")), "nothing applied");

    // Written as told, it applies the registry image.
    std::fs::write(
        dir.path().join("app.yaml"),
        std::fs::read_to_string(dir.path().join("app.yaml"))
            .unwrap()
            .replace("\"app:dev\"", "\"${IMAGE_APP}\""),
    )
    .unwrap();
    std::fs::write(
        &def,
        body.replace("manifests = [\"app.yaml\"]", "manifests = [\"app.yaml\"]\ntemplate = true"),
    )
    .unwrap();
    let out = setup_in(&sandbox, &def, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rendered = crate::harness::files_ending(sandbox.state.path(), "yaml");
    let rendered = rendered.iter().find(|p| p.to_string_lossy().ends_with("app.yaml"));
    let applied = std::fs::read_to_string(rendered.expect("the rendered manifest")).unwrap();
    assert!(applied.contains("image: \"registry.example.test/e2e/app:dev\""), "{applied}");
}

/// A dry run never cuts its plan short silently: a task that cannot be planned (here, a kind
/// config template naming an unset variable) is named with its error, the rest that can be
/// planned still is, and the exit status is 2.
#[test]
fn a_dry_run_names_every_task_it_cannot_plan_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kind.yaml"),
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraMounts:\n  - hostPath: ${HOST_PROJECT_PATH_UNSET_HERE}\n    containerPath: /src\n",
    )
    .unwrap();
    let def = definition(dir.path(), &[("app", true)], "");
    let text_def = std::fs::read_to_string(&def)
        .unwrap()
        .replace("wait = \"30s\"", "wait = \"30s\"\nconfig = \"kind.yaml\"");
    std::fs::write(&def, text_def).unwrap();
    let fake = crate::harness::fake();
    let out = setup(&fake, &def, &["--dry-run"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "a plan with a hole is no plan:\n{said}");
    assert!(said.contains("HOST_PROJECT_PATH_UNSET_HERE"), "the unset variable is named:\n{said}");
    assert!(said.contains("- cluster:"), "the task is named:\n{said}");
    assert!(said.contains("docker build"), "what can be planned still is:\n{said}");
    assert!(fake.journal().unwrap().is_empty(), "a dry run runs nothing");
}

/// A directory in `manifests` is applied as `kubectl apply -f DIR` reads it: its .json, .yaml and
/// .yml files in name order, not its subdirectories or other files; each is digested, so a
/// change to one redeploys.
#[test]
fn a_manifests_directory_is_applied_file_by_file_as_kubectl_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let bases = dir.path().join("config/crd/bases");
    std::fs::create_dir_all(bases.join("nested")).unwrap();
    for (name, body) in
        [("b.yaml", "kind: List\n"), ("a.json", "{\"kind\":\"List\"}\n"), ("c.yml", "kind: List\n")]
    {
        std::fs::write(bases.join(name), body).unwrap();
    }
    std::fs::write(bases.join("README.md"), "not a manifest\n").unwrap();
    std::fs::write(bases.join("nested/d.yaml"), "kind: List\n").unwrap();
    let def =
        definition(dir.path(), &[], "\n[[deploy]]\nname = \"crds\"\nmanifests = [\"config/crd/bases\"]\n");
    let fake = crate::harness::fake();
    let sandbox = Sandbox::with_fake(&fake);
    let out = setup_in(&sandbox, &def, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let applied: Vec<String> = all(&fake.journal().unwrap(), "kubectl apply")
        .iter()
        .filter_map(|c| c.argv.iter().position(|a| a == "-f").map(|i| c.argv[i + 1].clone()))
        .map(|f| Path::new(&f).file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(applied, ["a.json", "b.yaml", "c.yml"], "kubectl apply -f DIR's files, in order");
    // Unchanged: up to date. One file changed: the deploy runs again.
    let before = fake.journal().unwrap().len();
    let again = setup_in(&sandbox, &def, &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(
        all(&fake.journal().unwrap()[before..], "kubectl apply").len(),
        0,
        "nothing changed: nothing applied"
    );
    std::fs::write(bases.join("b.yaml"), "kind: List\nitems: []\n").unwrap();
    let before = fake.journal().unwrap().len();
    let changed = setup_in(&sandbox, &def, &[]);
    assert!(changed.status.success(), "{}", text(&changed));
    assert_eq!(all(&fake.journal().unwrap()[before..], "kubectl apply").len(), 3, "a changed file redeploys");
    // An empty directory is an error naming it.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let def = definition(dir.path(), &[], "\n[[deploy]]\nname = \"none\"\nmanifests = [\"empty\"]\n");
    let out = setup(&fake, &def, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("holds no .yaml, .yml or .json file"), "{}", text(&out));
}

#[test]
fn preflight_asks_every_tool_and_the_engine_at_once() {
    // A no-change re-run pays for the slowest probe, not their sum: with each probe slowed, they
    // all overlap in time (and the checks still pass).
    let fake = crate::harness::fake();
    for (tool, pattern) in
        [("kind", "^version"), ("kubectl", "^version"), ("helm", "^version"), ("docker", "^info")]
    {
        fake.rule(Rule::new(tool, pattern).delay_ms(600)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let def = definition(
        dir.path(),
        &[("a", true)],
        "\n[[deploy]]\nname = \"gitea\"\nnamespace = \"gitea-e2e\"\nhelm = { chart = \"gitea\" }\n",
    );
    let out = setup(&fake, &def, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let calls = fake.journal().unwrap();
    let probes: Vec<&Call> = calls
        .iter()
        .filter(|c| {
            (c.argv[0] == "version" && c.tool != "docker") || (c.tool == "docker" && c.argv[0] == "info")
        })
        .collect();
    let tools: std::collections::BTreeSet<&str> = probes.iter().map(|c| c.tool.as_str()).collect();
    assert_eq!(tools.len(), 4, "kind, kubectl, helm and the engine were asked: {probes:#?}");
    let first: Vec<&&Call> = tools.iter().filter_map(|t| probes.iter().find(|c| c.tool == *t)).collect();
    for a in &first {
        for b in &first {
            assert!(
                a.tool == b.tool || a.overlaps(b),
                "{} and {} were asked one after the other",
                a.tool,
                b.tool
            );
        }
    }
}
