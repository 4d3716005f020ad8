//! Graph facts the engine and the reports need: validity, a topological order, the width (how
//! many tasks can ever run at once) and the critical path. Only ids and dependencies matter.

use std::collections::{BTreeMap, VecDeque};

use std::time::Duration;

use anyhow::{bail, Result};

/// One node of the graph; `A` is what the job function needs to do its work.
#[derive(Debug, Clone)]
pub(crate) struct Task<A> {
    pub(crate) id: String,
    pub(crate) deps: Vec<String>,
    pub(crate) action: A,
    pub(crate) timeout: Duration,
    /// Extra attempts after a failure (image loads and chart fetches flake).
    pub(crate) retries: u32,
    /// Runs alone: it starts when nothing else runs, and nothing starts while it runs (a flow
    /// that owns cluster-wide objects).
    pub(crate) exclusive: bool,
}

impl<A> Task<A> {
    pub(crate) fn new(id: &str, deps: Vec<String>, action: A, timeout: Duration) -> Task<A> {
        Task { id: id.to_string(), deps, action, timeout, retries: 0, exclusive: false }
    }

    /// Log file name: `build:demo` → `build-demo.log`.
    pub(crate) fn log_name(&self) -> String {
        format!("{}.log", self.id.replace([':', '/'], "-"))
    }
}

/// Checks the graph: unique ids, known dependencies, no cycle. Returns a topological order.
pub(crate) fn validate<A>(tasks: &[Task<A>]) -> Result<Vec<usize>> {
    let index = index_of(tasks)?;
    for t in tasks {
        for d in &t.deps {
            if !index.contains_key(d.as_str()) {
                bail!("task `{}` depends on `{d}`, which is not a task", t.id);
            }
        }
    }
    let mut indegree: Vec<usize> = tasks.iter().map(|t| t.deps.len()).collect();
    let dependents = dependents(tasks, &index);
    let mut queue: VecDeque<usize> = (0..tasks.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::new();
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                queue.push_back(d);
            }
        }
    }
    if order.len() != tasks.len() {
        let stuck: Vec<&str> =
            (0..tasks.len()).filter(|i| indegree[*i] > 0).map(|i| tasks[i].id.as_str()).collect();
        bail!("the tasks form a dependency cycle among: {}", stuck.join(", "));
    }
    Ok(order)
}

pub(super) fn index_of<A>(tasks: &[Task<A>]) -> Result<BTreeMap<&str, usize>> {
    let mut index = BTreeMap::new();
    for (i, t) in tasks.iter().enumerate() {
        if index.insert(t.id.as_str(), i).is_some() {
            bail!("two tasks are named `{}`", t.id);
        }
    }
    Ok(index)
}

/// For each task, the tasks that depend on it directly.
pub(super) fn dependents<A>(tasks: &[Task<A>], index: &BTreeMap<&str, usize>) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); tasks.len()];
    for (i, t) in tasks.iter().enumerate() {
        for d in &t.deps {
            if let Some(&j) = index.get(d.as_str()) {
                out[j].push(i);
            }
        }
    }
    out
}

/// The graph's width: the largest set of tasks none of which depends on another (Dilworth:
/// tasks minus a maximum matching of the reachability relation). That many threads let every
/// task start the moment it is ready.
pub(crate) fn width<A>(tasks: &[Task<A>]) -> usize {
    let Ok(index) = index_of(tasks) else { return tasks.len().max(1) };
    let n = tasks.len();
    let deps: Vec<Vec<usize>> = tasks
        .iter()
        .map(|t| t.deps.iter().filter_map(|d| index.get(d.as_str()).copied()).collect())
        .collect();
    // reach[a][b]: b (transitively) depends on a.
    let mut reach = vec![vec![false; n]; n];
    for b in 0..n {
        let mut stack = deps[b].clone();
        while let Some(a) = stack.pop() {
            if !reach[a][b] {
                reach[a][b] = true;
                stack.extend(deps[a].iter().copied());
            }
        }
    }
    let mut matched: Vec<Option<usize>> = vec![None; n];
    fn augment(a: usize, reach: &[Vec<bool>], seen: &mut [bool], matched: &mut [Option<usize>]) -> bool {
        for b in 0..reach.len() {
            if reach[a][b] && !seen[b] {
                seen[b] = true;
                if matched[b].is_none_or(|m| augment(m, reach, seen, matched)) {
                    matched[b] = Some(a);
                    return true;
                }
            }
        }
        false
    }
    let matching = (0..n).filter(|&a| augment(a, &reach, &mut vec![false; n], &mut matched)).count();
    (n - matching).max(1)
}

/// The longest chain of dependencies by the given durations: (tasks, total seconds).
pub(crate) fn critical_path<A>(tasks: &[Task<A>], durations: &[f64]) -> (Vec<String>, f64) {
    let Ok(order) = validate(tasks) else { return (Vec::new(), 0.0) };
    let Ok(index) = index_of(tasks) else { return (Vec::new(), 0.0) };
    let mut finish = vec![0.0f64; tasks.len()];
    let mut via: Vec<Option<usize>> = vec![None; tasks.len()];
    for &i in &order {
        let mut best = (0.0, None);
        for d in &tasks[i].deps {
            if let Some(&j) = index.get(d.as_str()) {
                if finish[j] > best.0 {
                    best = (finish[j], Some(j));
                }
            }
        }
        finish[i] = best.0 + durations.get(i).copied().unwrap_or(0.0);
        via[i] = best.1;
    }
    let Some(end) = (0..tasks.len()).max_by(|&a, &b| finish[a].total_cmp(&finish[b])) else {
        return (Vec::new(), 0.0);
    };
    let mut path = vec![tasks[end].id.clone()];
    let mut at = end;
    while let Some(prev) = via[at] {
        path.push(tasks[prev].id.clone());
        at = prev;
    }
    path.reverse();
    (path, finish[end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, deps: &[&str]) -> Task<()> {
        Task::new(id, deps.iter().map(|d| d.to_string()).collect(), (), Duration::from_secs(5))
    }

    #[test]
    fn width_is_the_largest_antichain() {
        let four_builds = ["b1", "b2", "b3", "b4"].map(|b| task(b, &[]));
        assert_eq!(width(&four_builds), 4);
        let mut g = four_builds.to_vec();
        g.push(task("cluster", &["b1", "b2", "b3", "b4"]));
        g.extend(["b1", "b2"].map(|b| task(&format!("load-{b}"), &["cluster", b])));
        g.push(task("gitea", &["cluster"]));
        assert_eq!(width(&g), 4);
        assert_eq!(width(&[task("a", &[]), task("b", &["a"]), task("c", &["b"])]), 1);
    }

    #[test]
    fn cycles_and_unknown_deps_are_refused() {
        assert!(validate(&[task("a", &["b"]), task("b", &["a"])]).unwrap_err().to_string().contains("cycle"));
        assert!(validate(&[task("a", &["nope"])]).unwrap_err().to_string().contains("`nope`"));
        assert!(validate(&[task("a", &[]), task("a", &[])]).unwrap_err().to_string().contains("two tasks"));
    }

    #[test]
    fn critical_path_follows_the_longest_chain() {
        let g = [
            task("build", &[]),
            task("cluster", &["build"]),
            task("tekton", &["cluster"]),
            task("db", &["cluster"]),
        ];
        let (path, total) = critical_path(&g, &[2.0, 1.0, 5.0, 2.5]);
        assert_eq!(path, vec!["build", "cluster", "tekton"]);
        assert_eq!(total, 8.0);
    }
}
