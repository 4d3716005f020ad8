//! Checks of the repository itself, run by `cargo test` (as rust-analyzer's tidy does).
// Tests drive the xtask binary from outside, as a user does; the exec-layer rule is for xtask/src.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{root, Sandbox};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Only xtask/src/exec.rs may spawn processes.
#[test]
fn only_the_exec_layer_spawns_processes() {
    let mut files = Vec::new();
    rust_files(&root().join("xtask/src"), &mut files);
    assert!(files.len() > 3);
    let forbidden = [
        "process::Command",
        "Command::new(",
        "Stdio::",
        "libc::fork",
        "libc::exec",
        "posix_spawn",
        "disallowed_methods",
        "disallowed_types",
    ];
    // xshell's own runners bypass logging, timeouts and cancellation: a `cmd!(...)` must be handed
    // to the exec layer, never run directly. (clippy's disallowed-methods checks the same by type.)
    let direct_run =
        regex::Regex::new(r#"cmd!\(\s*sh\s*,\s*"[^"]*"\s*\)\s*\.\s*(run|read|read_stderr|output)\s*\("#)
            .unwrap();
    let mut offences = Vec::new();
    for file in files {
        if file.ends_with("exec.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for pattern in forbidden {
                if code.contains(pattern) {
                    offences.push(format!("{}:{}: `{pattern}`: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
        for m in direct_run.find_iter(&text) {
            let line = text[..m.start()].lines().count();
            offences.push(format!(
                "{}:{line}: xshell runner called directly: {}",
                file.display(),
                m.as_str()
            ));
        }
    }
    assert!(
        offences.is_empty(),
        "processes must be spawned through xtask/src/exec.rs:\n{}",
        offences.join("\n")
    );

    // The check itself works: a direct runner is caught, the exec layer's call is not.
    assert!(direct_run.is_match(r#"cmd!(sh, "kind get clusters").read()"#));
    assert!(!direct_run.is_match(r#"exec::cmd(cmd!(sh, "kind get clusters")).run()"#));

    let clippy = std::fs::read_to_string(root().join("clippy.toml")).unwrap();
    for method in
        ["std::process::Command::new", "xshell::Cmd::run", "xshell::Cmd::read", "xshell::Cmd::output"]
    {
        assert!(clippy.contains(method), "clippy.toml must disallow {method}");
    }
}

/// Every Makefile target is one line calling an existing `cargo xtask` subcommand.
#[test]
fn makefile_targets_call_existing_subcommands() {
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let mut target: Option<String> = None;
    let mut recipes: Vec<(String, String)> = Vec::new();
    for line in makefile.lines() {
        if let Some(recipe) = line.strip_prefix('\t') {
            let name = target.clone().unwrap_or_default();
            assert!(
                !recipes.iter().any(|(t, _)| t == &name),
                "target `{name}` has more than one recipe line"
            );
            recipes.push((name, recipe.trim().to_string()));
        } else if let Some((name, _)) = line.split_once(':') {
            if !name.starts_with('.')
                && !name.contains('=')
                && !name.trim().is_empty()
                && !line.starts_with('#')
            {
                target = Some(name.trim().to_string());
            }
        }
    }
    assert!(recipes.len() >= 3, "{recipes:?}");
    for (name, recipe) in recipes {
        let words: Vec<&str> = recipe.split_whitespace().collect();
        assert!(
            words.len() >= 2 && words[0..2] == ["cargo", "xtask"],
            "target `{name}` must call `cargo xtask`: {recipe}"
        );
        let sub: Vec<&str> =
            words[2..].iter().take_while(|w| !w.starts_with('-') && !w.starts_with('$')).copied().collect();
        let status = Sandbox::new().xtask(&[]).args(&sub).arg("--help").output().unwrap();
        assert!(
            status.status.success(),
            "target `{name}` calls `cargo xtask {}`, which does not exist",
            sub.join(" ")
        );
    }
}

/// `cargo xtask --help` lists every subcommand with a purpose; each has examples.
#[test]
fn help_teaches_every_subcommand() {
    let out = Sandbox::new().run(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 2, "{help}");
    for command in commands {
        let line = help.lines().find(|l| l.trim_start().starts_with(command)).unwrap();
        assert!(line.split_whitespace().count() > 2, "`{command}` needs a one-line purpose: {line}");
        let out = Sandbox::new().run(&[command, "--help"]);
        let sub_help = String::from_utf8_lossy(&out.stdout);
        assert!(
            sub_help.contains("Examples:") && sub_help.contains("cargo xtask"),
            "`{command} --help` needs examples:\n{sub_help}"
        );
    }
}

#[test]
fn formatting() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out =
        Command::new(cargo).args(["fmt", "--all", "--", "--check"]).current_dir(root()).output().unwrap();
    assert!(out.status.success(), "run `cargo fmt --all`:\n{}", String::from_utf8_lossy(&out.stdout));
}
