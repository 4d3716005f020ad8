//! Where things live: the repository root and the state under `target/e2e/`.
//!
//! State never goes to fixed `/tmp` names: everything a run writes is under
//! `target/e2e/runs/<run-id>/`, shared state beside it.

use std::path::{Path, PathBuf};

/// The repository the command works on: `E2E_REPO_ROOT` when set, else the nearest ancestor of
/// the current directory that holds `.git` (the invoking checkout: `cargo xtask` and an installed
/// `operator-e2e` alike run where the user is), else the current directory. Never a path compiled
/// in: as a git dependency the engine is built inside cargo's own checkout of this repository.
pub fn project_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        root_from(std::env::var_os("E2E_REPO_ROOT").filter(|d| !d.is_empty()).map(PathBuf::from), &cwd)
    })
    .clone()
}

/// [`project_root`]'s rule, apart from the process environment.
pub fn root_from(explicit: Option<PathBuf>, cwd: &Path) -> PathBuf {
    if let Some(dir) = explicit {
        return normalize(&cwd.join(dir));
    }
    cwd.ancestors().find(|a| a.join(".git").exists()).unwrap_or(cwd).to_path_buf()
}

/// `target/e2e/`, honouring `CARGO_TARGET_DIR`; `E2E_STATE_DIR` moves it elsewhere (tests give
/// each scenario its own).
pub(crate) fn state_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("E2E_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { project_root().join(p) })
        .unwrap_or_else(|| project_root().join("target"));
    target.join("e2e")
}

/// `target/e2e/port-forwards/`: pid and log of each supervised forward.
pub(crate) fn port_forwards_dir() -> PathBuf {
    state_root().join("port-forwards")
}

/// `target/e2e/logs/`: logs of commands that belong to no run (ci, doctor).
pub(crate) fn logs_dir() -> PathBuf {
    state_root().join("logs")
}

/// The repository a file belongs to: the nearest ancestor holding `.git`, else the file's own
/// directory. Paths inside config and definition files are relative to it.
pub(crate) fn repository_of(file: &Path) -> PathBuf {
    let abs = std::env::current_dir().map(|d| d.join(file)).unwrap_or_else(|_| file.to_path_buf());
    let dir = normalize(&abs).parent().map(Path::to_path_buf).unwrap_or_default();
    dir.ancestors().find(|a| a.join(".git").exists()).map(Path::to_path_buf).unwrap_or(dir)
}

/// `a/./b/../c` → `a/c`, without touching the file system.
pub(crate) use xtask_lint::walk::normalize;
