//! Incremental setup: images tagged by the digest of their inputs, and a re-run that does only
//! what changed (and what depends on it), noticing what changed outside the tool.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::process::{Command, Output};

use testkit::{Call, FakeToolchain};

use crate::harness::{text, Sandbox};

struct World {
    dir: tempfile::TempDir,
    fake: FakeToolchain,
    sandbox: Sandbox,
    def: PathBuf,
    /// Journal lines seen by earlier runs.
    seen: std::cell::Cell<usize>,
}

impl World {
    /// Two images (`a` with a prebuild, `true`, declared to read `src-a/**`; `b`), and three helm
    /// deploys: one per
    /// image, taking its digest tag, and one using no image.
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("docker/a.Dockerfile", "FROM scratch\nCOPY . /\n");
        write("docker/b.Dockerfile", "FROM scratch\nCOPY . /\n");
        write("ctx-a/app.txt", "a v1\n");
        write("ctx-a/.dockerignore", "*.log\n");
        write("ctx-a/debug.log", "noise\n");
        write("ctx-b/app.txt", "b v1\n");
        write("src-a/main.txt", "source v1\n");
        let def = dir.path().join("e2e.toml");
        std::fs::write(
            &def,
            r#"[cluster]
name = "e2e"
wait = "30s"

[[image]]
name = "a"
tag = "a:${DIGEST}"
dockerfile = "docker/a.Dockerfile"
context = "ctx-a"
prebuild = [["true"]]
inputs = ["src-a/**"]

[[image]]
name = "b"
tag = "b:${DIGEST}"
dockerfile = "docker/b.Dockerfile"
context = "ctx-b"

[[deploy]]
name = "app-a"
namespace = "apps"
images = ["a"]
helm = { chart = "app", set = { "image.tag" = "${IMAGE_TAG_A}" } }

[[deploy]]
name = "app-b"
namespace = "apps"
images = ["b"]
helm = { chart = "app", set = { "image.repository" = "${IMAGE_B}" } }

[[deploy]]
name = "infra"
namespace = "infra"
helm = { chart = "infra" }
"#,
        )
        .unwrap();
        let fake = crate::harness::fake();
        let sandbox = Sandbox::with_fake(&fake);
        World { dir, fake, sandbox, def, seen: Default::default() }
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.dir.path().join(rel), text).unwrap();
    }

    fn setup(&self, extra: &[&str]) -> Output {
        let mut args = vec!["setup", "--definition", self.def.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = self.sandbox.run(&args);
        assert!(out.status.success(), "{}", text(&out));
        out
    }

    /// The calls since the last time this was asked.
    fn new_calls(&self) -> Vec<Call> {
        let calls = self.fake.journal().unwrap();
        let fresh = calls[self.seen.get()..].to_vec();
        self.seen.set(calls.len());
        fresh
    }

    fn fake_call(&self, tool: &str, args: &[&str]) {
        let out = Command::new(self.fake.bin_dir().join(tool)).args(args).output().unwrap();
        assert!(out.status.success(), "{tool} {args:?}: {}", text(&out));
        self.new_calls();
    }
}

/// The lines of calls that change something: builds, cluster creation, loads, installs.
fn work(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c.line())
        .filter(|l| {
            l.starts_with("docker build")
                || l.starts_with("kind create")
                || l.starts_with("kind load")
                || l.starts_with("helm upgrade")
        })
        .collect()
}

/// The tag `docker build -t` gave image `name`.
fn built_tag(calls: &[Call], name: &str) -> String {
    calls
        .iter()
        .find_map(|c| {
            let line = c.line();
            let rest = line.strip_prefix(&format!("docker build -t {name}:"))?;
            Some(format!("{name}:{}", rest.split_whitespace().next()?))
        })
        .unwrap_or_else(|| panic!("{name} was not built"))
}

fn is_digest_tag(tag: &str) -> bool {
    tag.rsplit_once(':').is_some_and(|(_, t)| t.len() == 12 && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn a_changed_input_rebuilds_only_its_image_and_what_uses_it_and_a_no_change_rerun_skips_everything() {
    let w = World::new();
    w.setup(&[]);
    let cold = w.new_calls();
    let tag_a = built_tag(&cold, "a");
    let tag_b = built_tag(&cold, "b");
    assert!(is_digest_tag(&tag_a) && is_digest_tag(&tag_b) && tag_a[2..] != tag_b[2..], "{tag_a} {tag_b}");
    let lines = work(&cold);
    assert_eq!(lines.iter().filter(|l| l.starts_with("helm upgrade")).count(), 3, "{lines:#?}");
    // The deploys name the built digests.
    assert!(
        lines.iter().any(|l| l.starts_with("helm upgrade --install app-a ")
            && l.contains(&format!("--set image.tag={}", &tag_a[2..]))),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains(&format!("--set image.repository={tag_b}"))), "{lines:#?}");

    // Nothing changed: every task is up to date, nothing is built, loaded or installed.
    let out = w.setup(&[]);
    let again = w.new_calls();
    assert_eq!(
        work(&again),
        Vec::<String>::new(),
        "{:#?}",
        again.iter().map(|c| c.line()).collect::<Vec<_>>()
    );
    let shown = text(&out);
    assert!(shown.contains("8 of 8 task(s) up to date"), "{shown}");
    // The drift checks that made that safe: the images' IDs, the releases.
    let looks: Vec<String> = again.iter().map(|c| c.line()).collect();
    assert!(
        looks.iter().any(|l| l.starts_with(&format!("docker image inspect --format {{{{.Id}}}} {tag_a}"))),
        "{looks:#?}"
    );
    assert!(looks.iter().any(|l| l.starts_with("helm status app-a --namespace apps")), "{looks:#?}");

    // A file .dockerignore leaves out is no input.
    w.write("ctx-a/debug.log", "more noise\n");
    w.setup(&[]);
    assert_eq!(work(&w.new_calls()), Vec::<String>::new());

    // A declared prebuild input changes: a's prebuild and build, its load, and app-a run again,
    // with the new digest; nothing else does.
    w.write("src-a/main.txt", "source v2\n");
    w.setup(&[]);
    let changed = w.new_calls();
    let new_a = built_tag(&changed, "a");
    assert_ne!(new_a, tag_a);
    let lines = work(&changed);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].starts_with(&format!("docker build -t {new_a} ")), "{lines:#?}");
    assert!(lines[1].starts_with(&format!("kind load docker-image {new_a} --name e2e")), "{lines:#?}");
    assert!(
        lines[2].starts_with("helm upgrade --install app-a ")
            && lines[2].contains(&format!("--set image.tag={}", &new_a[2..])),
        "the running pods get the new digest tag: {lines:#?}"
    );

    // A context file of b changes: b alone.
    w.write("ctx-b/app.txt", "b v2\n");
    w.setup(&[]);
    let lines = work(&w.new_calls());
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with("docker build -t b:") && lines[2].starts_with("helm upgrade --install app-b "),
        "{lines:#?}"
    );

    // --force runs everything again.
    w.setup(&["--force"]);
    let lines = work(&w.new_calls());
    assert_eq!(lines.iter().filter(|l| l.starts_with("docker build")).count(), 2, "{lines:#?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("helm upgrade")).count(), 3, "{lines:#?}");
}

#[test]
fn what_changed_outside_the_tool_is_noticed_a_deleted_release_and_a_recreated_cluster() {
    let w = World::new();
    w.setup(&[]);
    w.new_calls();

    // Someone uninstalls a release: the next run notices (helm status) and installs it again.
    w.fake_call("helm", &["uninstall", "app-b", "--namespace", "apps", "--kube-context", "kind-e2e"]);
    w.setup(&[]);
    let lines = work(&w.new_calls());
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].starts_with("helm upgrade --install app-b "), "{lines:#?}");

    // The cluster is deleted and made again: a new cluster (a new kube-system UID), so every
    // image is loaded and every deploy runs; the images, still in the engine, are not rebuilt.
    w.fake_call("kind", &["delete", "cluster", "--name", "e2e"]);
    w.setup(&[]);
    let lines = work(&w.new_calls());
    assert!(!lines.iter().any(|l| l.starts_with("docker build")), "{lines:#?}");
    assert!(lines[0].starts_with("kind create cluster --name e2e"), "{lines:#?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("kind load")).count(), 2, "{lines:#?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("helm upgrade")).count(), 3, "{lines:#?}");
}

#[test]
fn explain_says_for_each_task_whether_it_would_run_and_why_and_runs_nothing() {
    let w = World::new();
    // Before anything was set up: everything runs, the cluster does not exist.
    let out = w.sandbox.run(&["setup", "--explain", "--definition", w.def.to_str().unwrap()]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("no earlier build recorded") && shown.contains("cluster e2e does not exist: created"),
        "{shown}"
    );
    assert!(shown.contains("8 of 8 task(s) would run"), "{shown}");
    assert_eq!(work(&w.new_calls()), Vec::<String>::new(), "explain runs nothing");

    w.setup(&[]);
    w.new_calls();
    w.write("src-a/main.txt", "source v3\n");
    let out = w.sandbox.run(&["setup", "--explain", "--definition", w.def.to_str().unwrap()]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    let line = |id: &str| {
        shown
            .lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap_or_else(|| panic!("{id}: {shown}"))
            .to_string()
    };
    assert!(
        line("build:a").contains("runs") && line("build:a").contains("digest changed: input:src-a/main.txt"),
        "{shown}"
    );
    assert!(line("load:a").contains("after build:a, which runs"), "{shown}");
    assert!(line("deploy:app-a").contains("runs"), "{shown}");
    for fresh in ["build:b", "load:b", "deploy:app-b", "deploy:infra", "cluster"] {
        assert!(line(fresh).contains("up to date"), "{fresh}: {shown}");
    }
    assert!(shown.contains("3 of 8 task(s) would run"), "{shown}");
    assert_eq!(work(&w.new_calls()), Vec::<String>::new(), "explain runs nothing");
    // And the records are what the last real run left: a real run still rebuilds a.
    w.setup(&[]);
    assert_eq!(work(&w.new_calls()).len(), 3);
}

/// A context that sends only Go source at any depth (`*`, `!**.go`, `!go.mod`: patternmatcher reads
/// a leading `**` as "ends with"): editing `cmd/main.go` changes the image's digest, and a file
/// Docker does not send changes nothing.
#[test]
fn explain_after_editing_go_source_reincluded_by_a_leading_double_star_says_the_digest_changed() {
    let w = World::new();
    for (rel, text) in [
        ("ctx-a/.dockerignore", "*\n!**.go\n!go.mod\n"),
        ("ctx-a/go.mod", "module a\n"),
        ("ctx-a/main.go", "package main\n"),
        ("ctx-a/cmd/main.go", "package main // v1\n"),
        ("ctx-a/internal/x/y.go", "package x\n"),
    ] {
        let p = w.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    w.setup(&[]);
    w.new_calls();
    w.write("ctx-a/app.txt", "not sent: changes nothing\n");
    let explain = || {
        let out = w.sandbox.run(&["setup", "--explain", "--definition", w.def.to_str().unwrap()]);
        let shown = text(&out);
        assert!(out.status.success(), "{shown}");
        shown
            .lines()
            .find(|l| l.trim_start().starts_with("build:a"))
            .unwrap_or_else(|| panic!("{shown}"))
            .to_string()
    };
    assert!(explain().contains("up to date"), "{}", explain());
    w.write("ctx-a/cmd/main.go", "package main // v2\n");
    let line = explain();
    assert!(line.contains("runs") && line.contains("digest changed: context:cmd/main.go"), "{line}");
}

/// The digest covers what the build reads and nothing else: the Dockerfile, the context as
/// `.dockerignore` filters it (a `<Dockerfile>.dockerignore` first), build args.
#[test]
fn the_digest_follows_the_dockerfile_the_filtered_context_and_the_build_args() {
    let w = World::new();
    w.setup(&[]);
    let first = built_tag(&w.new_calls(), "a");
    // The Dockerfile's own ignore file wins over the context's: now app.txt is ignored too.
    w.write("docker/a.Dockerfile.dockerignore", "*.log\napp.txt\n");
    w.setup(&[]);
    let second = built_tag(&w.new_calls(), "a");
    assert_ne!(first, second);
    w.write("ctx-a/app.txt", "ignored now\n");
    w.setup(&[]);
    assert!(work(&w.new_calls()).is_empty());
    w.write("docker/a.Dockerfile", "FROM scratch\nCOPY . /app/\n");
    w.setup(&[]);
    assert_ne!(built_tag(&w.new_calls(), "a"), second);
}

/// `helm show values` (the check that a values file names only keys the chart has) runs only for
/// a deploy that will run: for a repository chart each call downloads the index and the chart,
/// so a no-change re-run must make none.
#[test]
fn a_no_change_rerun_asks_helm_nothing_about_the_chart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gitea-values.yaml"), "gitea:\n  admin:\n    username: e2e\n").unwrap();
    let def = dir.path().join("e2e.toml");
    std::fs::write(
        &def,
        r#"[cluster]
name = "e2e"

[[deploy]]
name = "gitea"
namespace = "gitea-e2e"
helm = { chart = "gitea", repo = "https://dl.gitea.com/charts/", version = "10.6.0", values = ["gitea-values.yaml"], set = { "gitea.config.database.DB_TYPE" = "sqlite3" } }
"#,
    )
    .unwrap();
    let fake = crate::harness::fake();
    let sandbox = Sandbox::with_fake(&fake);
    let setup = || {
        let out = sandbox
            .xtask(&["setup", "--definition", def.to_str().unwrap()])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        fake.journal().unwrap().iter().map(|c| c.line()).collect::<Vec<_>>()
    };
    let first = setup();
    let asked = |lines: &[String]| lines.iter().filter(|l| l.starts_with("helm show values")).count();
    assert_eq!(asked(&first), 1, "the first setup checks the values against the chart: {first:#?}");
    assert!(first.iter().any(|l| l.starts_with("helm upgrade --install gitea")), "{first:#?}");
    let second = setup();
    let new = &second[first.len()..];
    assert_eq!(asked(new), 0, "an up-to-date deploy fetched the chart anyway: {new:#?}");
    assert!(!new.iter().any(|l| l.starts_with("helm upgrade")), "{new:#?}");
}
