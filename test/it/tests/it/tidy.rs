//! Checks of the repository itself, run by `cargo test` (as rust-analyzer's tidy does).
// Tests drive the xtask binary from outside, as a user does; the exec-layer rule is for the engine.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{root, Sandbox};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    out.extend(crate::harness::files_ending(dir, "rs"));
}

/// `line` with the contents of its `"..."` literals removed (escapes honoured).
fn without_strings(line: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in line.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                out.push(c);
            }
        } else {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

/// Only engine/src/exec.rs may spawn processes (the lint crates in lint/ and scan/ spawn none).
#[test]
fn only_the_exec_layer_spawns_processes() {
    let mut files = Vec::new();
    rust_files(&root().join("engine/src"), &mut files);
    rust_files(&root().join("xtask/src"), &mut files);
    rust_files(&root().join("lint/src"), &mut files);
    rust_files(&root().join("scan/src"), &mut files);
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
            // Code only: string literals (test data that spells a command) and comments dropped.
            let code = without_strings(line);
            let code = code.split("//").next().unwrap_or("");
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
        "processes must be spawned through engine/src/exec.rs:\n{}",
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

/// The layer of each top-level module: foundations (0) ← engines (1) ← commands (2).
const LAYERS: &[(&str, u8)] = &[
    ("exec", 0),
    ("paths", 0),
    ("clock", 0),
    ("tools", 0),
    ("usage", 0),
    ("toml", 0),
    ("duration", 0),
    ("vars", 0),
    ("lint", 1),
    ("pipeline", 1),
    ("e2e", 2),
    ("ci", 2),
    ("docs", 2),
    ("doctor", 2),
    ("init", 2),
    ("bench", 2),
    ("fuzz", 2),
];

/// `engine/src/lint/parse/shell.rs` → `lint::parse::shell`; `lint/mod.rs` → `lint`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> =
        rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The paths a piece of code names after `crate::`, `super::` or `self::`, each as its segments
/// (group imports `a::{b, c::d}` expanded; `self` inside a group is the prefix itself).
fn paths_named(code: &str) -> Vec<(String, Vec<String>)> {
    fn ident(s: &[u8], mut i: usize) -> (String, usize) {
        let start = i;
        while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
            i += 1;
        }
        (String::from_utf8_lossy(&s[start..i]).into_owned(), i)
    }
    fn path(s: &[u8], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
        let mut segs = prefix;
        loop {
            while i < s.len() && s[i] == b' ' {
                i += 1;
            }
            if i < s.len() && s[i] == b'{' {
                i += 1;
                loop {
                    while i < s.len() && (s[i] == b' ' || s[i] == b'\n' || s[i] == b',') {
                        i += 1;
                    }
                    if i >= s.len() || s[i] == b'}' {
                        return i + 1;
                    }
                    i = path(s, i, segs.clone(), out);
                }
            }
            let (name, next) = ident(s, i);
            if name.is_empty() {
                out.push(segs);
                return next.max(i + 1);
            }
            i = next;
            if name != "self" {
                segs.push(name);
            }
            if s.get(i..i + 2) == Some(b"::".as_slice()) {
                i += 2;
            } else {
                out.push(segs);
                return i;
            }
        }
    }
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for anchor in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(anchor) {
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let mut paths = Vec::new();
            path(bytes, at + anchor.len(), Vec::new(), &mut paths);
            found.extend(paths.into_iter().map(|p| (anchor.trim_end_matches(':').to_string(), p)));
        }
    }
    found
}

/// The module (a file) a path names: the deepest existing module along it.
fn resolve(
    modules: &std::collections::BTreeSet<String>,
    from: &str,
    anchor: &str,
    segs: &[String],
) -> String {
    let mut at: Vec<String> = match anchor {
        "crate" => Vec::new(),
        "self" => from.split("::").filter(|s| !s.is_empty()).map(String::from).collect(),
        _ => {
            let mut parts: Vec<String> = from.split("::").map(String::from).collect();
            parts.pop();
            parts
        }
    };
    for seg in segs {
        let mut next = at.clone();
        next.push(seg.clone());
        if modules.contains(&next.join("::")) {
            at = next;
        } else {
            break;
        }
    }
    at.join("::")
}

/// Every module of the engine (a file; `mod.rs` is its folder) and the modules each one names
/// in its code (not in unit tests or comments), with `crate::`, `super::` and `self::` resolved.
fn engine_modules() -> (std::collections::BTreeSet<String>, Vec<(String, String)>) {
    let src = root().join("engine/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // The entry points (main.rs, lib.rs, and cli.rs, the dispatcher above every command) are
    // outside the layers.
    let entry = |f: &PathBuf| ["main.rs", "lib.rs", "cli.rs"].iter().any(|e| *f == src.join(e));
    let files: Vec<PathBuf> = files.into_iter().filter(|f| !entry(f)).collect();
    let modules: std::collections::BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut uses = Vec::new();
    for file in &files {
        let from = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        // Unit tests may reach anywhere; doc comments are prose.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for (anchor, segs) in paths_named(&code) {
            let to = resolve(&modules, &from, &anchor, &segs);
            if !to.is_empty() && to != from && modules.contains(&to) {
                uses.push((from.clone(), to));
            }
        }
    }
    (modules, uses)
}

/// The e2e sub-systems, each allowed to use only those before it (and itself).
const E2E_SUBSYSTEMS: &[&str] = &["context", "setup", "definition", "infra", "runs", "checks", "flows"];

/// Inside `e2e/`, arrows run one way between the sub-systems of [`E2E_SUBSYSTEMS`]: the run
/// context and the kubectl door at the bottom, the graph from build to verdict (`setup`, `e2e`)
/// on top; every file of `e2e/` is in one of them (`e2e/mod.rs` only declares them).
#[test]
fn e2e_subsystems_depend_one_way() {
    let (modules, uses) = engine_modules();
    let rank = |m: &str| {
        let mut parts = m.split("::");
        (parts.next() == Some("e2e"))
            .then(|| parts.next())
            .flatten()
            .map(|sub| E2E_SUBSYSTEMS.iter().position(|s| *s == sub))
    };
    let mut wrong = Vec::new();
    for m in &modules {
        if m != "e2e" && rank(m) == Some(None) {
            wrong.push(format!("{m}: not in a sub-system of E2E_SUBSYSTEMS (tidy.rs)"));
        }
    }
    let mut seen = 0;
    for (from, to) in &uses {
        if let (Some(Some(f)), Some(Some(t))) = (rank(from), rank(to)) {
            seen += 1;
            if t > f {
                wrong.push(format!(
                    "{from} uses {to}: e2e::{} is above e2e::{} (E2E_SUBSYSTEMS in tidy.rs)",
                    E2E_SUBSYSTEMS[t], E2E_SUBSYSTEMS[f]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "e2e sub-systems:\n{}", wrong.join("\n"));
    // The check sees real edges.
    assert!(uses.iter().any(|(f, t)| f == "e2e::flows::e2e" && t == "e2e::definition"), "{uses:?}");
    assert!(seen > 50, "{seen} arrows between e2e modules");
}

/// Foundations ← engines ← commands: lint and pipeline never reach into e2e (or any command) nor
/// into each other, foundations reach into nothing above them, commands other than e2e are used
/// by nobody, and no two modules (files) need each other, directly or around a loop.
#[test]
fn modules_depend_one_way_and_form_no_cycle() {
    use std::collections::{BTreeMap, BTreeSet};
    let (modules, uses) = engine_modules();
    let layer = |m: &str| {
        let top = m.split("::").next().unwrap_or("");
        LAYERS.iter().find(|(name, _)| *name == top).map(|(_, l)| *l)
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for m in &modules {
        if layer(m).is_none() {
            wrong.push(format!("{m}: a new top-level module: give it a layer in LAYERS (tidy.rs)"));
        }
    }
    for (from, to) in uses {
        let (Some(from_layer), to_layer) = (layer(&from), layer(&to).unwrap_or(u8::MAX)) else {
            continue;
        };
        let to_top = to.split("::").next().unwrap_or("");
        let from_top = from.split("::").next().unwrap_or("");
        if from_top != to_top {
            // Foundations may use each other (the cycle check still applies); engines are
            // independent of each other; commands may use e2e, nothing uses another command.
            let allowed = to_layer < from_layer
                || (to_layer == 0 && from_layer == 0)
                || (from_layer == 2 && to_top == "e2e");
            if !allowed {
                wrong.push(format!("{from} uses {to}: a lower layer must not use a higher one"));
            }
        }
        edges.entry(from).or_default().insert(to);
    }
    // A cycle: depth-first search for a back edge.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for next in edges.get(m).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let start = stack.iter().position(|s| s == next).unwrap_or(0);
                    cycles.push(format!("{} -> {next}", stack[start..].join(" -> ")));
                }
                Some(_) => {}
                None => visit(next, edges, state, stack, cycles),
            }
        }
        stack.pop();
        state.insert(m.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for m in &modules {
        if !state.contains_key(m.as_str()) {
            visit(m, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    wrong.extend(cycles.into_iter().map(|c| format!("module cycle: {c}")));
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    // The check sees real edges (it would pass vacuously if the parser found none).
    assert!(edges.get("lint::commands").is_some_and(|e| e.contains("lint::output")), "{edges:?}");
    assert!(edges.get("e2e::flows::e2e").is_some_and(|e| e.contains("pipeline")), "{edges:?}");
}

#[test]
fn the_layering_check_sees_group_imports_and_super_paths() {
    let paths = paths_named("use super::{a, b::{c, self}};\nlet x = crate::e2e::flows::e2e::run();");
    let shown: Vec<String> = paths.iter().map(|(a, p)| format!("{a}:{}", p.join("::"))).collect();
    assert_eq!(shown, ["crate:e2e::flows::e2e::run", "super:a", "super:b::c", "super:b"]);
}

/// Every flow of this repository labels what it runs with the run label, so diagnostics (which
/// select pods and logs by it) see its pods: the `full` flow's static manifest gets it by a patch.
#[test]
fn the_full_flows_pods_carry_the_run_label() {
    let text = std::fs::read_to_string(root().join("test/e2e/e2e.toml")).unwrap();
    let def: serde_json::Value = operator_e2e::toml::parse(&text).unwrap();
    let flows = def["flow"].as_array().unwrap();
    let full = flows.iter().find(|f| f["name"].as_str() == Some("full")).unwrap();
    let steps: Vec<Vec<String>> = full["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect())
        .collect();
    let patch = steps.iter().find(|s| s.get(1).map(String::as_str) == Some("patch")).expect("a patch step");
    let json = patch.last().unwrap().replace("${E2E_RUN_LABEL}", "l").replace("${E2E_RUN_ID}", "id1");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["spec"]["template"]["metadata"]["labels"]["l"], "id1");
    // After the apply, before the rollout is awaited.
    let at = |verb: &str| steps.iter().position(|s| s.get(1).map(String::as_str) == Some(verb)).unwrap();
    assert!(at("apply") < at("patch") && at("patch") < at("rollout"));
}

/// What a cold `cargo build -p xtask` compiles has no serde derive (serde_derive was ~3.5 s of
/// every fresh checkout's build): decode with `xtask_lint::value`, write with `json!`.
#[test]
fn no_serde_derives_in_the_xtask_build() {
    let mut files = Vec::new();
    for dir in ["xtask/src", "engine/src", "lint/src", "scan/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let derive = regex::Regex::new(r"derive\([^)]*\b(Serialize|Deserialize)\b").unwrap();
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if derive.is_match(&without_strings(line)) || line.contains("#[serde(") {
                offences.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    for manifest in ["xtask/Cargo.toml", "engine/Cargo.toml", "lint/Cargo.toml", "scan/Cargo.toml"] {
        let text = std::fs::read_to_string(root().join(manifest)).unwrap();
        for line in
            text.lines().filter(|l| l.trim_start().starts_with("serde ") || l.contains("serde_derive"))
        {
            offences.push(format!("{manifest}: {line}"));
        }
    }
    assert!(offences.is_empty(), "serde derives (use xtask_lint::value / json!):\n{}", offences.join("\n"));
}

/// This repository adopts the engine as an operator repository does: its `xtask/` is a manifest
/// with one dependency and a `main` of at most five lines.
#[test]
fn our_own_xtask_is_a_thin_adopter() {
    let main = std::fs::read_to_string(root().join("xtask/src/main.rs")).unwrap();
    assert!(main.lines().count() <= 5, "xtask/src/main.rs has grown past five lines:\n{main}");
    assert!(main.contains("operator_e2e::main()"), "xtask/src/main.rs must call the engine's entry:\n{main}");
    let files: Vec<_> =
        std::fs::read_dir(root().join("xtask/src")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(files, ["main.rs"], "xtask/src holds only main.rs (everything else is the engine's)");
    let manifest = std::fs::read_to_string(root().join("xtask/Cargo.toml")).unwrap();
    let deps: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap_or("")
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(deps.len(), 1, "xtask/Cargo.toml depends on the engine alone: {deps:?}");
    assert!(deps[0].starts_with("operator-e2e"), "{deps:?}");
}

/// The engine compiles without anything under `test/`: no path into it from its manifest or its
/// sources (an adopter's build must never need this repository's test support). Unit tests
/// (from a file's `#[cfg(test)]` on) are built only here and may read this repository's files.
#[test]
fn the_engine_build_reaches_nothing_under_test() {
    let mut offences = Vec::new();
    for manifest in ["engine/Cargo.toml", "lint/Cargo.toml", "scan/Cargo.toml"] {
        let text = std::fs::read_to_string(root().join(manifest)).unwrap();
        for line in text.lines().filter(|l| l.contains("path") && l.contains("test/")) {
            offences.push(format!("{manifest}: {line}"));
        }
    }
    let mut files = Vec::new();
    for dir in ["engine/src", "lint/src", "scan/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let reaches = regex::Regex::new(r#"(#\[path\s*=|include(_str|_bytes)?!\s*\()\s*"[^"]*test/"#).unwrap();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate().take_while(|(_, l)| l.trim() != "#[cfg(test)]") {
            if reaches.is_match(line) || line.contains("env!(\"CARGO_MANIFEST_DIR\")") {
                offences.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the engine reaches into test/ or its own checkout:\n{}",
        offences.join("\n")
    );
}

/// docs/cli.md and docs/definition.md are what `cargo xtask docs` writes from the code.
#[test]
fn the_generated_reference_is_up_to_date() {
    let out = crate::harness::Sandbox::new().run(&["docs", "--check"]);
    assert!(out.status.success(), "{}", crate::harness::text(&out));
}

/// The definition's reference (e2e::schema) names exactly the keys the decoder reads, table by
/// table: a key added to the decoder and not documented, or documented and not decoded, fails.
#[test]
fn the_definition_reference_names_every_key_the_decoder_reads() {
    use std::collections::{BTreeMap, BTreeSet};
    let source = std::fs::read_to_string(root().join("engine/src/e2e/definition/mod.rs")).unwrap();
    let key = regex::Regex::new(r#"\bt\.(?:req|opt|or|or_default)\(\s*"([a-z-]+)""#).unwrap();
    let mut decoded: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for block in source.split("\nimpl FromValue for ").skip(1) {
        let name = block.split_whitespace().next().unwrap_or("").to_string();
        let body = block.split("\n}\n").next().unwrap_or("");
        decoded.entry(name).or_default().extend(key.captures_iter(body).map(|c| c[1].to_string()));
    }
    let documented: BTreeMap<String, BTreeSet<String>> = operator_e2e::e2e::definition::schema::TABLES
        .iter()
        .map(|t| (t.decoder.to_string(), t.keys.iter().map(|k| k.name.to_string()).collect()))
        .collect();
    assert!(
        decoded.len() >= 9 && decoded.values().map(BTreeSet::len).sum::<usize>() > 60,
        "the check sees the decoder: {decoded:?}"
    );
    assert_eq!(
        documented, decoded,
        "engine/src/e2e/definition/schema.rs and the decoder in definition/mod.rs disagree"
    );
}
