//! Which files a lint reads: the gitignore-aware parallel walk, excludes, how paths are shown,
//! and the parallel read-and-lint loop both lints share.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use super::report::{Report, Skipped};
use crate::paths::normalize;

/// Where a file's text comes from: the work tree, or the blobs staged in git's index (what a
/// commit will hold, whatever the work tree says since).
pub(crate) enum Contents {
    Disk,
    Staged(std::collections::HashMap<PathBuf, String>),
}

impl Contents {
    /// The file's text; `Err(reason)` for binary or non-UTF-8 files (reported as skipped).
    pub(crate) fn read(&self, path: &Path) -> Result<std::result::Result<String, String>> {
        match self {
            Contents::Disk => read_text(path),
            Contents::Staged(blobs) => {
                let text = blobs
                    .get(path)
                    .with_context(|| format!("{}: not in the staged blobs", path.display()))?;
                Ok(if text.contains('\0') {
                    Err("binary file".into())
                } else if text.contains('\u{fffd}') {
                    Err("not UTF-8".into())
                } else {
                    Ok(text.clone())
                })
            }
        }
    }
}

/// Lints `files` in parallel on rayon's pool: each is read from `contents` (binary and
/// non-UTF-8 files are reported as skipped), handed to `lint` with its display path, counted,
/// and the reports merged.
pub(crate) fn scan_files(
    files: &[PathBuf],
    cwd: &Path,
    contents: &Contents,
    lint: impl Fn(&Path, String, String) -> Result<Report> + Sync,
) -> Result<Report> {
    use rayon::prelude::*;
    let results: Vec<Result<Report>> = files
        .par_iter()
        .map(|file| {
            let display = display_path(file, cwd);
            match contents.read(file)? {
                Ok(text) => {
                    let mut report = lint(file, display, text)?;
                    report.files_scanned = 1;
                    Ok(report)
                }
                Err(reason) => {
                    Ok(Report { skipped: vec![Skipped { path: display, reason }], ..Report::default() })
                }
            }
        })
        .collect();
    let mut report = Report::default();
    for r in results {
        report.merge(r?);
    }
    Ok(report)
}

/// Reads a file as text; `Err(reason)` for binary or non-UTF-8 files (reported as skipped).
pub(crate) fn read_text(path: &Path) -> Result<std::result::Result<String, String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Ok(Err("binary file".into()));
    }
    Ok(String::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to())))
}

/// Path as findings show it: relative to the current directory when under it.
pub(crate) fn display_path(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

/// Resolves the PATH arguments against the current directory; a missing path is a usage error.
pub(crate) fn resolve_paths(given: &[PathBuf], cwd: &Path) -> Result<Vec<PathBuf>> {
    given
        .iter()
        .map(|p| {
            let abs = if p.is_absolute() { p.clone() } else { cwd.join(p) };
            if !abs.exists() {
                bail!("{}: no such file or directory", p.display());
            }
            // A path that cannot be read is an error, never a pass that scanned nothing.
            let readable = if abs.is_dir() {
                std::fs::read_dir(&abs).map(|_| ())
            } else {
                std::fs::File::open(&abs).map(|_| ())
            };
            readable.with_context(|| format!("{}: cannot be read", p.display()))?;
            Ok(normalize(&abs))
        })
        .collect()
}

/// True when `path` matches an exclude (paths outside the matcher's root never do).
pub(crate) fn is_excluded(excluded: &ignore::gitignore::Gitignore, path: &Path, is_dir: bool) -> bool {
    !excluded.is_empty()
        && path.starts_with(excluded.path())
        && excluded.matched_path_or_any_parents(path, is_dir).is_ignore()
}

/// gitignore-style excludes, relative to `root`.
pub(crate) fn exclude_matcher(root: &Path, patterns: &[String]) -> Result<ignore::gitignore::Gitignore> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(root);
    for p in patterns {
        builder.add_line(None, p).with_context(|| format!("invalid exclude pattern `{p}`"))?;
    }
    builder.build().context("building the exclude patterns")
}

/// Every file under `roots` that `wanted` accepts, honouring .gitignore (also outside a git
/// repository) and `excluded`, walked in parallel. Files named directly are always included.
pub(crate) fn walk(
    roots: &[PathBuf],
    excluded: &ignore::gitignore::Gitignore,
    wanted: &(dyn Fn(&Path) -> bool + Sync),
) -> Vec<PathBuf> {
    walk_classify(roots, excluded, &|p| wanted(p).then_some(())).into_iter().map(|(p, ())| p).collect()
}

/// A walker thread's finds, handed over when the thread's visitor is dropped.
struct Batch<'a, T> {
    local: Vec<T>,
    found: &'a Mutex<Vec<T>>,
}

impl<T> Drop for Batch<'_, T> {
    fn drop(&mut self) {
        if let Ok(mut found) = self.found.lock() {
            found.append(&mut self.local);
        }
    }
}

/// Like [`walk`], keeping what `classify` says of each file (so it is asked once per file).
/// The order is unspecified: reports are sorted at the end.
pub(crate) fn walk_classify<T: Send>(
    roots: &[PathBuf],
    excluded: &ignore::gitignore::Gitignore,
    classify: &(dyn Fn(&Path) -> Option<T> + Sync),
) -> Vec<(PathBuf, T)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for root in roots {
        if root.is_file() {
            if let Some(t) = classify(root) {
                files.push((root.clone(), t));
            }
        } else {
            dirs.push(root.clone());
        }
    }
    if let Some((first, rest)) = dirs.split_first() {
        let mut builder = ignore::WalkBuilder::new(first);
        for dir in rest {
            builder.add(dir);
        }
        builder.hidden(false).require_git(false).git_global(false).filter_entry(|e| e.file_name() != ".git");
        builder.threads(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(8));
        let found = Mutex::new(Vec::new());
        let no_excludes = excluded.is_empty();
        builder.build_parallel().run(|| {
            let mut batch = Batch { local: Vec::new(), found: &found };
            Box::new(move |entry| {
                let Ok(entry) = entry else { return ignore::WalkState::Continue };
                let path = entry.path();
                let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
                if !no_excludes && is_excluded(excluded, path, is_dir) {
                    return if is_dir { ignore::WalkState::Skip } else { ignore::WalkState::Continue };
                }
                // Regular files only: a symlink (to a directory, as charts link `migrations`, or
                // to a file linted where it lives) is not followed, as rg does not follow it.
                if entry.file_type().is_some_and(|t| t.is_file()) {
                    if let Some(t) = classify(path) {
                        batch.local.push((entry.into_path(), t));
                    }
                }
                ignore::WalkState::Continue
            })
        });
        files.extend(found.into_inner().unwrap_or_default());
    }
    if roots.len() > 1 {
        let mut seen = std::collections::HashSet::new();
        files.retain(|(p, _)| seen.insert(p.clone()));
    }
    files
}
