//! No panic on any input: a mutation fuzz of everything that parses user text (Dockerfiles,
//! shell, the hardcoded lint's languages, PromQL scoping, durations, versions, endpoints), with a
//! time budget per target so it runs in every `cargo test`. Inputs are grown from seeds that
//! reach deep into each parser, mutated with the bytes that matter to it and multi-byte
//! characters (a byte index inside one was the panic class found before).
// The seeds and pieces are the very things the lints look for.
// xtask-lint: allow-file(all)

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// xorshift64*: fast, deterministic per seed, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    const PIECES: &[&str] = &[
        "é",
        "€",
        "😀",
        "\u{0}",
        "\r",
        "\n",
        "\t",
        " ",
        "\\",
        "\\\n",
        "'",
        "\"",
        "`",
        "$",
        "${",
        "}",
        "{",
        "(",
        ")",
        "$(",
        "<<",
        "<<-",
        "EOF",
        "|",
        "||",
        "&&",
        ";",
        ";;",
        "|&",
        "&",
        ">",
        "2>",
        ">>",
        "<",
        "#",
        "=",
        ":",
        "/tmp/x",
        "localhost:8080",
        "127.0.0.1:99",
        "[::1]:1",
        "-n",
        "sut",
        "pkill",
        "git",
        "config",
        "--global",
        "kubectl",
        "delete",
        "--all",
        "-A",
        "dnf",
        "update",
        "install",
        "RUN ",
        "FROM a",
        "# escape=`",
        "ONBUILD ",
        "[\"a\"",
        "]",
        "- ",
        "key: ",
        "\t@",
        "up",
        "[5m]",
        "by (a)",
        "run_id",
        "\"x\"",
        "0",
        "9999999999",
        "18446744073709551615",
        "1e308",
        "ms",
        "s",
        "m",
        "h",
        "v1.2",
        ".",
    ];

    const SEEDS: &[&str] = &[
        "FROM fedora AS a\nRUN dnf update -y && dnf install -y x\nRUN <<EOF\ndnf update\nEOF\n",
        "# escape=`\nFROM x\nRUN dnf `\n update\nONBUILD RUN [\"dnf\", \"update\"]\n",
        "#!/bin/sh\nkubectl get pods -n sut > /tmp/out.json 2>&1 && pkill -f e2e; git config --global a b\ncat <<-X\n\tx\n\tX\n",
        "all:\n\t@kubectl delete ns --all\n\t-curl localhost:8080\n",
        "fn main() { let s = \"/tmp/x\"; let r = r#\"raw\"#; } // c\n",
        "a:\n  b: \"sut\"\n  c: [x, 'y']\n",
        "sum by (a) (rate(up{job=\"x\"}[5m])) / on() group_left foo",
        "1h30m500ms",
    ];

    fn mutate(rng: &mut Rng, input: &str) -> String {
        let mut s = input.to_string();
        for _ in 0..1 + rng.below(4) {
            let boundaries: Vec<usize> = (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect();
            let at = boundaries[rng.below(boundaries.len())];
            match rng.below(3) {
                0 => s.insert_str(at, PIECES[rng.below(PIECES.len())]),
                1 => {
                    let end = boundaries[rng.below(boundaries.len())].max(at);
                    s.replace_range(at..end, "");
                }
                _ => {
                    let other = SEEDS[rng.below(SEEDS.len())];
                    let cut = (0..=other.len())
                        .filter(|&i| other.is_char_boundary(i))
                        .nth(rng.below(other.len()))
                        .unwrap_or(0);
                    s.insert_str(at, &other[cut..]);
                }
            }
        }
        if s.len() > 4096 {
            let mut cut = 4096;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
        s
    }

    /// Runs `target` on mutated inputs for `budget`; returns how many ran.
    fn fuzz(name: &str, budget: Duration, target: impl Fn(&str)) -> u64 {
        fuzz_from(name, SEEDS, budget, target)
    }

    fn fuzz_from(name: &str, seeds: &[&str], budget: Duration, target: impl Fn(&str)) -> u64 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
        let mut corpus: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
        let start = Instant::now();
        let mut runs = 0u64;
        while start.elapsed() < budget {
            let parent = corpus[rng.below(corpus.len())].clone();
            let input = mutate(&mut rng, &parent);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)));
            assert!(result.is_ok(), "{name} panicked on {input:?}");
            runs += 1;
            if corpus.len() < 256 && rng.below(8) == 0 {
                corpus.push(input);
            }
        }
        eprintln!("fuzz {name}: {runs} inputs in {:.1}s", start.elapsed().as_secs_f64());
        runs
    }

    fn budget() -> Duration {
        let ms = std::env::var("XTASK_FUZZ_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
        Duration::from_millis(ms)
    }

    #[test]
    fn the_dockerfile_parser_and_policy_never_panic() {
        use crate::lint::dockerfiles::{lint_text, DockerfileConfig, TargetedPolicy, UpdatePolicy};
        let configs = [
            DockerfileConfig::default(),
            DockerfileConfig {
                dnf_update: UpdatePolicy::Require,
                dnf_update_targeted: TargetedPolicy::Forbid,
                ..Default::default()
            },
        ];
        let n = fuzz("dockerfile", budget(), |text| {
            let _ = crate::lint::parse::dockerfile::parse(text);
            for config in &configs {
                let _ = lint_text(text, "Dockerfile", config);
            }
        });
        assert!(n > 100, "the budget ran some inputs");
    }

    #[test]
    fn the_shell_reader_and_the_hardcoded_languages_never_panic() {
        let n = fuzz("shell", budget(), |text| {
            if let Ok(tokens) = crate::lint::parse::shell::tokenize(text) {
                let _ = crate::lint::parse::shell::commands(&tokens);
            }
            let _ = crate::lint::hardcoded::lint_every_language(text);
        });
        assert!(n > 100);
    }

    #[test]
    fn promql_scoping_durations_versions_and_endpoints_never_panic() {
        let matcher = crate::e2e::infra::metrics::Matcher::run("r1").unwrap();
        let n = fuzz("small parsers", budget(), |text| {
            let _ = crate::e2e::infra::metrics::scope(text, &matcher);
            let _ = crate::toml::parse(text);
            let _ = crate::duration::parse_duration(text);
            let _ = crate::tools::parse_version(text);
            let _ = crate::e2e::context::split_endpoint(text);
            let _ = crate::vars::expand_strict(text, &[("A".into(), "b".into())]);
            let _ = crate::e2e::setup::actions::top_level_keys(text);
        });
        assert!(n > 100);
    }

    /// JUnit merging and shard splitting from reports with huge counts and times, and shard texts
    /// with huge numbers: never a panic (an overflow was one), an abort or a long loop.
    #[test]
    fn junit_merging_and_shards_never_panic_on_huge_counts() {
        let seeds = [
            "<testsuite tests=\"18446744073709551615\" failures=\"1\" errors=\"x\" time=\"1e308\"/>",
            "<testsuites><testsuite name=\"a\" tests=\"9999999999\" time=\"NaN\"><testcase/></testsuite></testsuites>",
            "1/1000000000000",
            "18446744073709551615/18446744073709551615",
        ];
        let needs: Vec<Vec<String>> = vec![Vec::new(), vec!["a".into()], Vec::new()];
        let n = fuzz_from("junit and shards", &seeds, budget(), |text| {
            let reports = [("a".to_string(), text.to_string()), ("b".to_string(), text.to_string())];
            let _ = crate::e2e::flows::shards::merge(&reports);
            if let Ok(shard) = text.parse::<crate::e2e::flows::shards::Shard>() {
                let items: Vec<crate::e2e::flows::shards::Item<'_>> = ["a", "b", "c"]
                    .iter()
                    .zip(&needs)
                    .map(|(name, needs)| crate::e2e::flows::shards::Item { name, weight: u64::MAX, needs })
                    .collect();
                let _ = crate::e2e::flows::shards::select(&items, shard);
            }
        });
        assert!(n > 100);
    }

    /// The decoders of the e2e definition and the lint config, from this repository's own files
    /// mutated (most mutations still parse as TOML, so the decoding is what runs).
    #[test]
    fn config_decoding_never_panics() {
        let seeds = [include_str!("../../test/e2e/e2e.toml"), include_str!("../../hack/lint.toml")];
        let n = fuzz_from("config decoding", &seeds, budget(), |text| {
            let _ = crate::e2e::definition::decode(text);
            let _ = crate::toml::from_str::<crate::lint::config::Config>(text);
        });
        assert!(n > 100);
    }

    #[test]
    fn gitignore_files_and_patterns_never_panic() {
        use xtask_lint::gitignore::{wildmatch, Gitignore};
        let root = std::path::Path::new("/r");
        let n = fuzz("gitignore", budget(), |text| {
            let mut ignore = Gitignore::new(root);
            ignore.add_text(text.as_bytes());
            let _ = Gitignore::new(root).add_checked(text);
            // The text as a path too: its own patterns, at several depths.
            for path in [text, "a/b.c", "x"] {
                let _ = ignore.matched_path_or_any_parents(&root.join(path), false);
                let _ = ignore.matched_path_or_any_parents(&root.join(path), true);
                let _ = wildmatch(text.as_bytes(), path.as_bytes());
            }
        });
        assert!(n > 100);
    }
}
