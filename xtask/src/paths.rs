//! Where things live: the repository root and the state under `target/e2e/`.
//!
//! State never goes to fixed `/tmp` names: everything a run writes is under
//! `target/e2e/runs/<run-id>/`, shared state beside it.

use std::path::{Path, PathBuf};

/// The repository root (the directory holding the workspace `Cargo.toml`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
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
