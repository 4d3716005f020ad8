//! CI shards: which flows a shard runs, and JUnit reports of several shards joined into one.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// `K/N`: shard K (1-based) of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let (k, n) =
            text.split_once('/').ok_or_else(|| format!("{text:?}: write the shard as K/N, e.g. 1/2"))?;
        let parse =
            |s: &str| s.trim().parse::<usize>().map_err(|_| format!("{text:?}: {s:?} is not a number"));
        let (index, count) = (parse(k)?, parse(n)?);
        if count == 0 || index == 0 || index > count {
            return Err(format!("{text:?}: K must be between 1 and N (N >= 1)"));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One flow as the split sees it: its name, weight (its timeout, in seconds) and the flows it
/// needs.
pub struct Item<'a> {
    pub name: &'a str,
    pub weight: u64,
    pub needs: &'a [String],
}

/// The flows of shard `shard`: flows joined by `needs` stay together (a flow runs after what it
/// needs, so both must be on one shard); the groups go, heaviest first, to the least loaded shard
/// (ties to the lowest). The same flows give the same split on every machine, and the shards
/// together hold every flow exactly once.
pub fn select<'a>(items: &[Item<'a>], shard: Shard) -> Vec<&'a str> {
    // Groups: union-find over `needs`.
    let mut parent: Vec<usize> = (0..items.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, item) in items.iter().enumerate() {
        for need in item.needs {
            if let Some(j) = items.iter().position(|x| x.name == need) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut groups: Vec<(u64, String, Vec<usize>)> = Vec::new();
    for i in 0..items.len() {
        let r = root(&mut parent, i);
        let first = items[r].name.to_string();
        match groups.iter_mut().find(|g| g.1 == first) {
            Some(g) => {
                g.0 = g.0.saturating_add(items[i].weight);
                g.2.push(i);
            }
            None => groups.push((items[i].weight, first, vec![i])),
        }
    }
    // Heaviest first, then by name: independent of the definition's order of equal groups.
    groups.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    // Only the first `groups.len()` shards can get anything: the shards given a group so far
    // are always a prefix (every other shard is empty, and of equally loaded shards the lowest
    // wins), so `--shard 1/1000000000000` needs no trillion counters, nor a trillion comparisons
    // per group.
    let used = shard.count.min(groups.len());
    let mut load = vec![0u64; used];
    let mut mine = Vec::new();
    for (weight, _, members) in groups {
        let target = (0..used).min_by_key(|&s| (load[s], s)).unwrap_or(0);
        load[target] = load[target].saturating_add(weight);
        if target + 1 == shard.index {
            mine.extend(members);
        }
    }
    mine.sort_unstable();
    mine.into_iter().map(|i| items[i].name).collect()
}

/// Before any work: can the JUnit report be written at `path`? Its directory is made, the file
/// opened for writing (and removed again when it was not there). A report that cannot be written
/// is a usage error naming the path, said before the flows run, not after them.
pub(crate) fn check_writable(path: &std::path::Path) -> Result<()> {
    let refuse = |e: std::io::Error| {
        crate::usage::usage(format!(
            "--junit {}: the report cannot be written there ({e}); give a path in a writable directory",
            path.display()
        ))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(refuse)?;
    }
    let existed = path.exists();
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(path).map_err(refuse)?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Join JUnit XML reports (one per shard) into one.
///
/// Examples:
///   cargo xtask junit-merge --output target/e2e/junit.xml junit-1.xml junit-2.xml
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct MergeArgs {
    /// Where to write the merged report
    #[arg(long, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// The reports to join
    #[arg(required = true, value_name = "REPORT")]
    pub(crate) reports: Vec<PathBuf>,
}

impl MergeArgs {
    pub fn run(self) -> Result<i32> {
        let mut texts = Vec::new();
        for path in &self.reports {
            // A report that is not there (or not readable, or not JUnit) is the caller's to fix:
            // usage (exit 2), as every argument error is.
            let bytes = std::fs::read(path).map_err(|e| {
                crate::usage::usage(format!("junit-merge: cannot read {}: {e}", path.display()))
            })?;
            texts.push((path.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
        }
        let merged = merge(&texts).map_err(|e| crate::usage::usage(format!("junit-merge: {e:#}")))?;
        if let Some(dir) = self.output.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&self.output, &merged.xml)
            .with_context(|| format!("writing {}", self.output.display()))?;
        println!(
            "{}: {} test(s), {} failure(s), {} error(s) from {} report(s)",
            self.output.display(),
            merged.tests,
            merged.failures,
            merged.errors,
            self.reports.len()
        );
        Ok(0)
    }
}

#[derive(Debug)]
pub struct Merged {
    pub xml: String,
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
}

/// Every `<testsuite>` of every report, under one `<testsuites>` whose counts are their sums.
/// Any text is taken: a report without a test suite, a count or time that is not a number, and
/// sums beyond what the numbers hold are errors naming the report, never a panic, never a
/// silent 0 or `inf`.
pub fn merge(reports: &[(String, String)]) -> Result<Merged> {
    let (mut tests, mut failures, mut errors, mut time) = (0u64, 0u64, 0u64, 0f64);
    let mut suites = String::new();
    for (name, text) in reports {
        let found = suites_of(text);
        if found.is_empty() {
            bail!("{name}: no <testsuite> element: not a JUnit report");
        }
        for (i, suite) in found.into_iter().enumerate() {
            let open_end = suite.find('>').unwrap_or(suite.len());
            let open = &suite[..open_end];
            let at = |key: &str| format!("{name}: testsuite {} {key}", i + 1);
            for (key, sum) in [("tests", &mut tests), ("failures", &mut failures), ("errors", &mut errors)] {
                let Some(value) = attribute(open, key) else { continue };
                let n: u64 = value.trim().parse().map_err(|_| {
                    anyhow::anyhow!("{}={:?} is not a count (a whole number >= 0)", at(key), value)
                })?;
                *sum = sum.checked_add(n).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}={value}: the {key} of the reports add up to more than {}",
                        at(key),
                        u64::MAX
                    )
                })?;
            }
            if let Some(value) = attribute(open, "time") {
                let t: f64 =
                    value.trim().parse().ok().filter(|t: &f64| t.is_finite() && *t >= 0.0).ok_or_else(
                        || anyhow::anyhow!("{}={value:?} is not a time in seconds", at("time")),
                    )?;
                time += t;
                if !time.is_finite() {
                    bail!(
                        "{}={value}: the times of the reports add up to more than a number holds",
                        at("time")
                    );
                }
            }
            suites.push_str("  ");
            suites.push_str(suite.trim());
            suites.push('\n');
        }
    }
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">\n{suites}</testsuites>\n"
    );
    Ok(Merged { xml, tests, failures, errors })
}

/// The `<testsuite ...>...</testsuite>` (or self-closed) elements of a report, in order.
fn suites_of(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("<testsuite") {
        let tail = &rest[at..];
        // `<testsuites` is the wrapper, not a suite.
        if tail[10..].starts_with('s') {
            rest = &tail[11..];
            continue;
        }
        let Some(gt) = tail.find('>') else { break };
        let end = if tail[..gt].ends_with('/') {
            gt + 1
        } else {
            match tail.find("</testsuite>") {
                Some(close) => close + "</testsuite>".len(),
                None => break,
            }
        };
        out.push(&tail[..end]);
        rest = &tail[end..];
    }
    out
}

/// `name="value"` in an element's opening tag.
fn attribute<'a>(open: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = open.find(&key)? + key.len();
    let len = open[start..].find('"')?;
    Some(&open[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items<'a>(names: &'a [(&'a str, u64)], needs: &'a [Vec<String>]) -> Vec<Item<'a>> {
        names.iter().zip(needs).map(|((n, w), needs)| Item { name: n, weight: *w, needs }).collect()
    }

    #[test]
    fn shards_hold_every_flow_exactly_once_and_keep_needs_together() {
        let none = Vec::new;
        let needs = vec![none(), none(), vec!["full".to_string()], none(), none()];
        let flows = [
            ("full", 1800),
            ("quickstart-helm", 1200),
            ("after-full", 300),
            ("quickstart-manifest", 1200),
            ("x", 60),
        ];
        let list = items(&flows, &needs);
        for count in 1..=6 {
            let mut seen: Vec<&str> = Vec::new();
            for index in 1..=count {
                let mine = select(&list, Shard { index, count });
                if mine.contains(&"full") || mine.contains(&"after-full") {
                    assert!(mine.contains(&"full") && mine.contains(&"after-full"), "{mine:?}");
                }
                seen.extend(mine);
            }
            seen.sort_unstable();
            let mut all: Vec<&str> = flows.iter().map(|f| f.0).collect();
            all.sort_unstable();
            assert_eq!(seen, all, "{count} shards");
        }
        // Two shards balance by weight (greedy, heaviest first): the pair (2100 s) and the short
        // one on one shard, the two quickstarts (2400 s) on the other.
        assert_eq!(select(&list, Shard { index: 1, count: 2 }), ["full", "after-full", "x"]);
        assert_eq!(select(&list, Shard { index: 2, count: 2 }), ["quickstart-helm", "quickstart-manifest"]);
    }

    #[test]
    fn a_huge_shard_count_needs_no_memory_or_time_beyond_the_flows() {
        let needs = vec![Vec::new(), Vec::new()];
        let list = items(&[("a", 10), ("b", 5)], &needs);
        for count in [1_000_000_000, 1_000_000_000_000, usize::MAX] {
            assert_eq!(select(&list, Shard { index: 1, count }), ["a"]);
            assert_eq!(select(&list, Shard { index: 2, count }), ["b"]);
            assert!(select(&list, Shard { index: 3, count }).is_empty());
            assert!(select(&list, Shard { index: count, count }).is_empty());
        }
    }

    #[test]
    fn shard_text_is_checked() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/2", "3/2", "1/0", "1", "a/b", "/", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn merging_sums_the_suites_and_refuses_what_is_not_junit() {
        let a = "<?xml version=\"1.0\"?>\n<testsuites tests=\"2\">\n  <testsuite name=\"e2e shard 1/2\" tests=\"2\" failures=\"1\" errors=\"0\" time=\"1.5\">\n    <testcase name=\"full\"/>\n  </testsuite>\n</testsuites>\n";
        let b = "<testsuite name=\"e2e shard 2/2\" tests=\"1\" failures=\"0\" errors=\"1\" time=\"2\"><testcase name=\"qs\"/></testsuite>";
        let c = "<testsuite name=\"empty\" tests=\"0\"/>";
        let m = merge(&[("a".into(), a.into()), ("b".into(), b.into()), ("c".into(), c.into())]).unwrap();
        assert_eq!((m.tests, m.failures, m.errors), (3, 1, 1));
        assert!(m.xml.contains("time=\"3.500\"") && m.xml.matches("<testsuite ").count() == 3, "{}", m.xml);
        assert!(merge(&[("junk".into(), "hello".into())])
            .unwrap_err()
            .to_string()
            .contains("junk: no <testsuite>"));
        // Any text: no panic.
        // Counts and times that are no numbers, or whose sums overflow: errors naming them.
        let big = "<testsuite tests=\"18446744073709551615\"/>";
        let err = merge(&[("a".into(), big.into()), ("b".into(), big.into())]).unwrap_err().to_string();
        assert!(err.contains("b: testsuite 1 tests=18446744073709551615") && err.contains("add up"), "{err}");
        let huge = "<testsuite tests=\"1\" time=\"1e308\"/>";
        let err = merge(&[("a".into(), huge.into()), ("b".into(), huge.into())]).unwrap_err().to_string();
        assert!(err.contains("b: testsuite 1 time=1e308"), "{err}");
        for (attr, value) in
            [("failures", "x"), ("errors", "-1"), ("errors", ""), ("time", "NaN"), ("time", "inf")]
        {
            let text = format!("<testsuite tests=\"1\" {attr}=\"{value}\"/>");
            let err = merge(&[("r".into(), text)]).unwrap_err().to_string();
            assert!(err.contains(&format!("r: testsuite 1 {attr}=\"{value}\" is not")), "{err}");
        }
        for text in [
            "<testsuite",
            "<testsuite>",
            "<testsuites",
            "<testsuite tests=\"x\" time=\"NaN\">",
            "<testsuite/",
            "\u{e9}<testsuite\u{e9}",
        ] {
            let _ = merge(&[("t".into(), text.into())]);
        }
    }
}
