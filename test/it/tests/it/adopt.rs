//! The adoption path, as an operator team walks it: `init` in a scratch repository shaped like
//! an operator's (a Dockerfile, a Makefile and a script with today's findings, a chart, a kind
//! config, a workflow), then, in that repository, the commands the README documents — with the
//! engine built there from this checkout, as a path dependency.
#![allow(clippy::disallowed_methods)]
// The scratch repository carries the legacy layer's findings on purpose: init's baseline must
// accept them and the hook must block a new one.
// xtask-lint: allow-file(hardcoded-namespace, fixed-tmp-path, broad-process-kill)

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::harness::{root, text, Sandbox};

use crate::harness::write;

fn git(dir: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env_remove("GIT_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("running git")
}

/// An operator repository as the legacy layer left it.
fn operator_repo(dir: &Path, home: &Path) {
    write(dir, "go.mod", "module example.com/op\n\ngo 1.22\n");
    write(dir, "cmd/main.go", "package main\n\nfunc main() {}\n");
    write(dir, "Dockerfile", "FROM scratch\nCOPY cmd/ /src/\n");
    write(dir, "Makefile", "test-e2e:\n\tkubectl apply -n sut -f config/\n");
    write(
        dir,
        "hack/run-e2e.sh",
        "#!/bin/bash\nset -e\nkubectl get pods -n sut > /tmp/pods.txt\npkill -f port-forward\n",
    );
    write(dir, "charts/op/Chart.yaml", "apiVersion: v2\nname: op\nversion: 0.1.0\n");
    write(dir, "charts/op/values.yaml", "image: op:dev\n");
    write(dir, "charts/op/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: op\n");
    write(
        dir,
        "test/e2e/kind/cluster-template.yaml",
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n",
    );
    write(
        dir,
        ".github/workflows/ci.yaml",
        "name: ci\non: [push]\njobs:\n  ci:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - run: cargo xtask ci\n",
    );
    assert!(git(dir, home, &["init", "-q"]).status.success());
    assert!(git(dir, home, &["add", "-A"]).status.success());
    assert!(git(dir, home, &["commit", "-qm", "the legacy layer"]).status.success());
}

/// Commands in the adopter: the sandbox's environment (fake toolchain first on PATH, its own
/// state dir and HOME), the adopter's own target dir, offline (the lock file is this
/// repository's, so every crate is in cargo's cache already), none of this test's cargo
/// variables (they would point the build at this workspace).
struct Adopter {
    sandbox: Sandbox,
    repo: PathBuf,
    target: PathBuf,
}

impl Adopter {
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let template = self.sandbox.xtask(&[]);
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if (k.starts_with("CARGO") && k != "CARGO_HOME") || k == "RUSTFLAGS" || k == "RUSTC_WRAPPER" {
                cmd.env_remove(&key);
            }
        }
        for (k, v) in template.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_NET_OFFLINE", "true")
            .current_dir(&self.repo)
            .stdin(Stdio::null());
        cmd
    }

    fn cargo(&self, args: &[&str]) -> Output {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        self.command(cargo).args(args).output().expect("running cargo")
    }
}

#[test]
fn an_operator_repository_adopts_the_engine_with_init_and_the_documented_commands_work() {
    let scratch = tempfile::tempdir().unwrap();
    let repo = scratch.path().join("op");
    let sandbox = Sandbox::new();
    operator_repo(&repo, sandbox.home.path());

    // init, run as a team would before they have a `cargo xtask`: the engine's own binary.
    let out = sandbox
        .xtask(&["init", "--dir", repo.to_str().unwrap(), "--engine-path", root().to_str().unwrap()])
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for file in [
        "xtask/Cargo.toml",
        "xtask/src/main.rs",
        ".cargo/config.toml",
        "Cargo.toml",
        "hack/lint.toml",
        "hack/lint-baseline.json",
        "hack/pre-commit",
        "test/e2e/e2e.toml",
    ] {
        assert!(repo.join(file).is_file(), "init wrote no {file}:\n{said}");
        assert!(said.contains(file), "init did not say it wrote {file}:\n{said}");
    }
    assert!(said.contains("Next:"), "{said}");
    let rust_lines: usize = ["xtask/src/main.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(repo.join(f)).unwrap().lines().count())
        .sum();
    assert!(rust_lines <= 20, "the adopter holds {rust_lines} lines of Rust");
    let definition = std::fs::read_to_string(repo.join("test/e2e/e2e.toml")).unwrap();
    for guessed in [
        "dockerfile = \"Dockerfile\"",
        "config = \"test/e2e/kind/cluster-template.yaml\"",
        "chart = \"charts/op\"",
        "name = \"smoke\"",
    ] {
        assert!(definition.contains(guessed), "the skeleton misses {guessed}:\n{definition}");
    }
    assert!(definition.matches("# guess").count() >= 3, "guesses are marked:\n{definition}");
    // A second init changes nothing and overwrites nothing.
    std::fs::write(repo.join("test/e2e/e2e.toml"), "# ours now\n").unwrap();
    let again = sandbox
        .xtask(&["init", "--dir", repo.to_str().unwrap(), "--engine-path", root().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(repo.join("test/e2e/e2e.toml")).unwrap(), "# ours now\n");
    assert!(text(&again).contains("kept: it exists and differs"), "{}", text(&again));
    std::fs::write(repo.join("test/e2e/e2e.toml"), &definition).unwrap();

    std::fs::copy(root().join("Cargo.lock"), repo.join("Cargo.lock")).unwrap();
    let fake = crate::harness::fake();
    let adopter = Adopter {
        sandbox: Sandbox::with_fake(&fake),
        repo: repo.clone(),
        target: scratch.path().join("target"),
    };
    // Home and git identity for the hook's commits.
    std::fs::copy(sandbox.home.path().join(".gitconfig"), adopter.sandbox.home.path().join(".gitconfig"))
        .unwrap();

    let help = adopter.cargo(&["xtask", "--help"]);
    assert!(help.status.success(), "cargo xtask --help in the adopter:\n{}", text(&help));
    assert!(String::from_utf8_lossy(&help.stdout).contains("e2e"), "{}", text(&help));
    assert!(
        String::from_utf8_lossy(&help.stderr).contains("Compiling operator-e2e"),
        "a cold start shows cargo's progress:\n{}",
        text(&help)
    );

    let lint = adopter.cargo(&["xtask", "lint"]);
    assert_eq!(lint.status.code(), Some(0), "today's findings are the baseline:\n{}", text(&lint));
    assert!(text(&lint).contains("accepted by the baseline"), "{}", text(&lint));

    // Adopting commits cleanly through the hook; a new violation is blocked by it.
    let home = adopter.sandbox.home.path();
    assert!(git(&repo, home, &["add", "-A"]).status.success());
    let adopted = adopter.command("git").args(["commit", "-qm", "adopt operator-e2e"]).output().unwrap();
    assert!(adopted.status.success(), "the adoption commit passes the hook:\n{}", text(&adopted));
    let script = repo.join("hack/run-e2e.sh");
    let mut body = std::fs::read_to_string(&script).unwrap();
    body.push_str("kubectl delete namespace sut\n");
    std::fs::write(&script, body).unwrap();
    assert!(git(&repo, home, &["add", "hack/run-e2e.sh"]).status.success());
    let blocked = adopter.command("git").args(["commit", "-qm", "a new fixed namespace"]).output().unwrap();
    assert!(!blocked.status.success(), "the hook lets a new finding in:\n{}", text(&blocked));
    assert!(text(&blocked).contains("hardcoded-namespace"), "{}", text(&blocked));
    assert!(git(&repo, home, &["checkout", "-q", "HEAD", "--", "hack/run-e2e.sh"]).status.success());

    let plan = adopter.cargo(&["xtask", "setup", "--dry-run"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert!(plan_text.contains("build:op") && plan_text.contains("docker build"), "{}", text(&plan));
    assert!(
        plan_text.contains(&repo.join("Dockerfile").display().to_string()),
        "the adopter's own files:\n{plan_text}"
    );

    let e2e = adopter.cargo(&["xtask", "e2e", "--parallel"]);
    assert!(e2e.status.success(), "e2e in the adopter, fake toolchain:\n{}", text(&e2e));
    assert!(text(&e2e).contains("smoke"), "{}", text(&e2e));
    assert!(
        fake.journal()
            .unwrap()
            .iter()
            .any(|c| c.tool == "kind" && c.argv.join(" ").contains("create cluster --name op-e2e")),
        "the adopter's cluster"
    );

    let ci = adopter.cargo(&["xtask", "ci"]);
    assert!(ci.status.success(), "cargo xtask ci in the adopter:\n{}", text(&ci));
    let summary = String::from_utf8_lossy(&ci.stdout);
    for gate in ["fmt", "clippy", "lint", "workflows", "test"] {
        assert!(summary.lines().any(|l| l.starts_with(gate) && l.ends_with("ok")), "gate {gate}:\n{summary}");
    }

    // The same commands without Rust in the repository: the engine's binary, installed.
    let install_root = scratch.path().join("installed");
    let install = adopter.cargo(&[
        "install",
        "--debug",
        "--locked",
        "--path",
        root().join("engine").to_str().unwrap(),
        "--root",
        install_root.to_str().unwrap(),
    ]);
    assert!(install.status.success(), "cargo install --path engine:\n{}", text(&install));
    let plan2 =
        adopter.command(install_root.join("bin/operator-e2e")).args(["setup", "--dry-run"]).output().unwrap();
    assert!(plan2.status.success(), "{}", text(&plan2));
    assert_eq!(
        String::from_utf8_lossy(&plan2.stdout),
        plan_text,
        "the installed binary plans the same setup"
    );
}
