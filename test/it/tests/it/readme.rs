//! The README's promises, run as written: its minimal definition, unchanged, set up and run on
//! the fake toolchain in a repository shaped like the one it describes.
#![allow(clippy::disallowed_methods)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::harness::{fake, root, text, Sandbox};

/// The first ```toml block of README.md.
fn readme_definition() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("```toml\n").expect("README.md has a ```toml block") + "```toml\n".len();
    let len = readme[start..].find("```").expect("the block ends");
    readme[start..start + len].to_string()
}

use crate::harness::write;

#[test]
fn the_readmes_minimal_definition_sets_up_and_runs_its_flow() {
    let scratch = tempfile::tempdir().unwrap();
    let repo = scratch.path().join("my-operator");
    write(&repo, "Dockerfile", "FROM scratch\nCOPY cmd/ /src/\n");
    write(&repo, "cmd/main.go", "package main\n\nfunc main() {}\n");
    write(&repo, "charts/my-operator/Chart.yaml", "apiVersion: v2\nname: my-operator\nversion: 0.1.0\n");
    write(&repo, "charts/my-operator/values.yaml", "image:\n  repository: x\n  tag: y\n");
    write(&repo, "test/e2e/e2e.toml", &readme_definition());
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=x", "-c", "user.email=x@example.invalid"])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "an operator"]);

    let fake = fake();
    // The suite the flow runs: a `go` that records what it was given.
    let seen = scratch.path().join("go-saw.txt");
    let go = fake.bin_dir().join("go");
    std::fs::write(
        &go,
        format!(
            "#!/bin/sh\nprintf 'args=%s\\nns=%s\\nimg=%s\\nkubeconfig=%s\\n' \"$*\" \"$E2E_TEST_NAMESPACE\" \"$IMG\" \"$KUBECONFIG\" > '{}'\n",
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&go, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sandbox = Sandbox::with_fake(&fake);
    let run =
        |args: &[&str]| sandbox.xtask(args).env("E2E_REPO_ROOT", &repo).current_dir(&repo).output().unwrap();

    let plan = run(&["setup", "--dry-run"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    for task in ["build:my-operator", "load:my-operator", "deploy:my-operator", "cluster"] {
        assert!(plan_text.contains(task), "the plan misses {task}:\n{plan_text}");
    }

    let e2e = run(&["e2e", "--parallel"]);
    assert!(e2e.status.success(), "{}", text(&e2e));
    let journal = fake.journal().unwrap();
    let build = journal
        .iter()
        .find(|c| c.tool == "docker" && c.argv.first().is_some_and(|a| a == "build"))
        .expect("the image was built");
    let tag = build.argv.windows(2).find(|w| w[0] == "-t").map(|w| w[1].clone()).expect("a -t tag");
    let digest = tag.strip_prefix("my-operator:").expect("tagged my-operator:<digest>");
    assert_eq!(digest.len(), 12, "{tag}");
    assert!(
        journal
            .iter()
            .any(|c| c.tool == "kind" && c.argv.join(" ").contains("create cluster --name my-operator-e2e")),
        "the README's cluster"
    );
    let helm = journal
        .iter()
        .find(|c| c.tool == "helm" && c.argv.iter().any(|a| a == "upgrade"))
        .expect("the chart was installed");
    let helm_line = helm.argv.join(" ");
    assert!(
        helm_line.contains(&format!("image.tag={digest}")),
        "the chart runs the built image: {helm_line}"
    );
    assert!(
        journal.iter().any(|c| c.tool == "kubectl"
            && c.argv.join(" ").contains("wait --namespace my-operator-system deployment/my-operator")),
        "the deploy's wait"
    );
    let saw = std::fs::read_to_string(&seen).expect("the flow ran the suite");
    assert!(saw.contains("args=test ./test/e2e/... -v\n"), "{saw}");
    assert!(saw.contains("ns=run-e2e-suite-"), "the run's namespace: {saw}");
    assert!(saw.contains(&format!("img={tag}\n")), "the flow's env names the image: {saw}");
    assert!(!saw.contains("kubeconfig=\n"), "a kubeconfig of this cluster only: {saw}");
}
