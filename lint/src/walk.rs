//! Which files a lint reads: the gitignore-aware parallel walk, excludes, how paths are shown,
//! and the parallel read-and-lint loop both lints share.
//!
//! The ignore files read are each directory's `.gitignore` and `.ignore` and the repository's
//! `.git/info/exclude`. Not read, on purpose: git's per-user excludes (`core.excludesFile`,
//! by default `$XDG_CONFIG_HOME/git/ignore`), so that what a lint checks, and so its verdict,
//! is the same on every contributor's machine and in CI. A file only such a global file ignores
//! is linted (and can be excluded in the lint config's `exclude`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use super::report::{Report, Skipped};
use crate::gitignore::{Gitignore, Match};

/// Where a file's text comes from: the work tree, or the blobs staged in git's index (what a
/// commit will hold, whatever the work tree says since).
pub enum Contents {
    Disk,
    Staged(std::collections::HashMap<PathBuf, String>),
}

impl Contents {
    /// The file's text; `Err(reason)` for binary or non-UTF-8 files (reported as skipped).
    pub fn read(&self, path: &Path) -> Result<std::result::Result<String, String>> {
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
pub fn scan_files(
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
pub fn read_text(path: &Path) -> Result<std::result::Result<String, String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Ok(Err("binary file".into()));
    }
    Ok(String::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to())))
}

/// `a/./b/../c` → `a/c`, without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Path as findings show it: relative to the current directory when under it.
pub fn display_path(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

/// Resolves the PATH arguments against the current directory; a missing path is a usage error.
pub fn resolve_paths(given: &[PathBuf], cwd: &Path) -> Result<Vec<PathBuf>> {
    given
        .iter()
        .map(|p| {
            let abs = if p.is_absolute() { p.clone() } else { cwd.join(p) };
            if !abs.exists() {
                bail!("{}: no such file or directory", p.display());
            }
            // A FIFO, socket or device is never opened (opening a FIFO blocks until a writer
            // comes): [`take_special`] lists it as skipped.
            if is_special(&abs) {
                return Ok(normalize(&abs));
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

/// Neither a regular file nor a directory (after symlinks): a FIFO, a socket, a device.
pub fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Takes the named paths that are neither a regular file nor a directory out of `roots`, each
/// as a skipped entry: no lint reads them, and opening a FIFO would block.
pub fn take_special(roots: &mut Vec<PathBuf>, cwd: &Path) -> Vec<Skipped> {
    let mut skipped = Vec::new();
    roots.retain(|p| {
        if !is_special(p) {
            return true;
        }
        let kind = std::fs::metadata(p).map(|m| m.file_type()).ok();
        use std::os::unix::fs::FileTypeExt as _;
        let what = match kind {
            Some(k) if k.is_fifo() => "a FIFO",
            Some(k) if k.is_socket() => "a socket",
            Some(k) if k.is_char_device() || k.is_block_device() => "a device",
            _ => "not a regular file",
        };
        skipped.push(Skipped {
            path: display_path(p, cwd),
            reason: format!("{what}, not a regular file: never read"),
        });
        false
    });
    skipped
}

/// True when `path` matches an exclude (paths outside the matcher's root never do).
pub fn is_excluded(excluded: &Gitignore, path: &Path, is_dir: bool) -> bool {
    !excluded.is_empty() && excluded.matched_path_or_any_parents(path, is_dir).is_ignore()
}

/// gitignore-style excludes, relative to `root`; a pattern that cannot mean what it says (an
/// unclosed `[`, `{a,b}` alternatives gitignore does not have) is refused.
pub fn exclude_matcher(root: &Path, patterns: &[String]) -> Result<Gitignore> {
    let mut matcher = Gitignore::new(root);
    for p in patterns {
        matcher.add_checked(p).with_context(|| format!("invalid exclude pattern `{p}`"))?;
    }
    Ok(matcher)
}

/// Every file under `roots` that `wanted` accepts, honouring .gitignore (also outside a git
/// repository) and `excluded`, walked in parallel. Files named directly are always included.
pub fn walk(
    roots: &[PathBuf],
    excluded: &Gitignore,
    wanted: &(dyn Fn(&Path) -> bool + Sync),
) -> Vec<PathBuf> {
    walk_classify(roots, excluded, &|p| wanted(p).then_some(())).into_iter().map(|(p, ())| p).collect()
}

/// The ignore files in force in a directory, innermost first (a linked list shared by the
/// directories below it).
struct Ignores {
    matcher: Gitignore,
    parent: Option<std::sync::Arc<Ignores>>,
}

impl Ignores {
    /// The decision of the innermost file that has one (git's precedence: deeper files win).
    fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        let mut level = Some(self);
        while let Some(l) = level {
            match l.matcher.matched(path, is_dir) {
                Match::Ignore => return true,
                Match::Whitelist => return false,
                Match::None => level = l.parent.as_deref(),
            }
        }
        false
    }
}

/// `dir`'s own ignore files: `.gitignore`, then `.ignore` (later lines win, as rg ranks them).
fn dir_ignores(dir: &Path) -> Option<Gitignore> {
    let mut matcher = Gitignore::new(dir);
    for name in [".gitignore", ".ignore"] {
        if let Ok(text) = std::fs::read(dir.join(name)) {
            matcher.add_text(&text);
        }
    }
    (!matcher.is_empty()).then_some(matcher)
}

/// The ignore files that apply above `root`: those of its parent directories up to the git
/// repository's top, and that repository's `.git/info/exclude` (none outside a repository).
fn parent_ignores(root: &Path) -> Option<std::sync::Arc<Ignores>> {
    let top = root.ancestors().find(|d| d.join(".git").exists())?;
    let mut chain: Option<std::sync::Arc<Ignores>> = None;
    let mut exclude = Gitignore::new(top);
    if let Ok(text) = std::fs::read(top.join(".git/info/exclude")) {
        exclude.add_text(&text);
        chain = Some(std::sync::Arc::new(Ignores { matcher: exclude, parent: None }));
    }
    let mut parents: Vec<&Path> = root.ancestors().skip(1).take_while(|d| d.starts_with(top)).collect();
    parents.reverse();
    for dir in parents {
        if let Some(matcher) = dir_ignores(dir) {
            chain = Some(std::sync::Arc::new(Ignores { matcher, parent: chain }));
        }
    }
    chain
}

/// Like [`walk`], keeping what `classify` says of each file (so it is asked once per file).
/// The order is unspecified: reports are sorted at the end. Directories are read in parallel on
/// rayon's pool; symlinks are not followed (as rg does not), `.git` is never entered, hidden
/// files are walked.
pub fn walk_classify<T: Send>(
    roots: &[PathBuf],
    excluded: &Gitignore,
    classify: &(dyn Fn(&Path) -> Option<T> + Sync),
) -> Vec<(PathBuf, T)> {
    let found = Mutex::new(Vec::new());
    for root in roots {
        if root.is_file() {
            if let Some(t) = classify(root) {
                found.lock().unwrap_or_else(|e| e.into_inner()).push((root.clone(), t));
            }
        } else {
            let walker = Walker { excluded, classify, found: &found };
            walker.dir(root, parent_ignores(root));
        }
    }
    let mut files = found.into_inner().unwrap_or_else(|e| e.into_inner());
    if roots.len() > 1 {
        let mut seen = std::collections::HashSet::new();
        files.retain(|(p, _)| seen.insert(p.clone()));
    }
    files
}

struct Walker<'a, T> {
    excluded: &'a Gitignore,
    classify: &'a (dyn Fn(&Path) -> Option<T> + Sync),
    found: &'a Mutex<Vec<(PathBuf, T)>>,
}

impl<T: Send> Walker<'_, T> {
    fn dir(&self, dir: &Path, parent: Option<std::sync::Arc<Ignores>>) {
        let ignores = match dir_ignores(dir) {
            Some(matcher) => Some(std::sync::Arc::new(Ignores { matcher, parent })),
            None => parent,
        };
        // An unreadable directory below a root is passed over, as rg does (a root that cannot be
        // read is refused before the walk).
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut local = Vec::new();
        let mut subdirs = Vec::new();
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            if entry.file_name() == ".git" {
                continue;
            }
            let path = entry.path();
            let is_dir = kind.is_dir();
            if (!self.excluded.is_empty() && is_excluded(self.excluded, &path, is_dir))
                || ignores.as_ref().is_some_and(|i| i.ignored(&path, is_dir))
            {
                continue;
            }
            if is_dir {
                subdirs.push(path);
            } else if kind.is_file() {
                // Regular files only: a symlink (to a directory, as charts link `migrations`, or
                // to a file linted where it lives) is not followed, as rg does not follow it.
                if let Some(t) = (self.classify)(&path) {
                    local.push((path, t));
                }
            }
        }
        if !local.is_empty() {
            self.found.lock().unwrap_or_else(|e| e.into_inner()).append(&mut local);
        }
        use rayon::prelude::*;
        subdirs.into_par_iter().for_each(|d| self.dir(&d, ignores.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(root: &Path, from: &Path) -> Vec<String> {
        let mut found: Vec<String> = walk(&[from.to_path_buf()], &Gitignore::new(root), &|_| true)
            .iter()
            .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
            .collect();
        found.sort();
        found
    }

    #[test]
    fn the_walk_honours_gitignore_precedence_parents_and_info_exclude() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in [".git/info", "build", "sub", "real"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let files = [
            (".git/info/exclude", "secret.sh\n"),
            (".git/config", ""),
            (".gitignore", "*.log\nbuild/\n!keep.log\n"),
            ("sub/.gitignore", "!important.log\n"),
            ("a.log", ""),
            ("keep.log", ""),
            ("secret.sh", ""),
            ("run.sh", ""),
            ("build/x.sh", ""),
            ("sub/important.log", ""),
            ("sub/other.log", ""),
            ("real/f.sh", ""),
        ];
        for (path, text) in files {
            std::fs::write(root.join(path), text).unwrap();
        }
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        assert_eq!(
            names(root, root),
            [".gitignore", "keep.log", "real/f.sh", "run.sh", "sub/.gitignore", "sub/important.log"]
        );
        // Walked from a subdirectory, the parents' ignore files still apply.
        assert_eq!(names(root, &root.join("sub")), ["sub/.gitignore", "sub/important.log"]);
        // Excludes prune like ignore files.
        let excluded = exclude_matcher(root, &["real/".into(), "*.sh".into()]).unwrap();
        let found = walk(&[root.to_path_buf()], &excluded, &|_| true);
        assert!(
            found.iter().all(|p| !p.ends_with("run.sh") && !p.starts_with(root.join("real"))),
            "{found:?}"
        );
        assert!(exclude_matcher(root, &["a/{b".into()]).is_err());
    }
}
