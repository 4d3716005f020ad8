//! The one way a test runs the xtask binary: in a sandbox that touches nothing outside its temp
//! dirs. Each [`Sandbox`] has its own `E2E_STATE_DIR`, `HOME` and `PATH`; every `E2E_*` and
//! `KUBECONFIG` variable of the environment that runs the tests is removed, so a developer's run
//! context never leaks into a test and a test never writes to the checkout's `target/e2e`.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use testkit::FakeToolchain;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root (test/it/../..)")
}

/// A new fake toolchain (docker, kind, helm, kubectl).
pub fn fake() -> FakeToolchain {
    FakeToolchain::new(env!("CARGO_BIN_EXE_fake-tool")).expect("fake toolchain")
}

pub struct Sandbox {
    pub state: tempfile::TempDir,
    pub home: tempfile::TempDir,
    path: OsString,
}

impl Sandbox {
    /// The machine's PATH (real git, ssh, docker), a fresh state dir and HOME.
    pub fn new() -> Sandbox {
        Sandbox::with_path(std::env::var_os("PATH").unwrap_or_default())
    }

    /// The fake toolchain first on PATH.
    pub fn with_fake(fake: &FakeToolchain) -> Sandbox {
        Sandbox::with_path(fake.path_env())
    }

    pub fn with_path(path: impl Into<OsString>) -> Sandbox {
        let home = tempfile::tempdir().expect("temp HOME");
        // Commits made in a test need an identity; the global config is never written by xtask.
        std::fs::write(
            home.path().join(".gitconfig"),
            "[user]\n\tname = Someone\n\temail = someone@example.invalid\n",
        )
        .expect("writing the test's .gitconfig");
        Sandbox { state: tempfile::tempdir().expect("temp state dir"), home, path: path.into() }
    }

    /// `xtask ARGS` in this sandbox (stdin closed, cwd inherited unless set).
    pub fn xtask(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask-under-test"));
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("E2E_") || key_text == "KUBECONFIG" || key_text == "GIT_CONFIG_GLOBAL" {
                cmd.env_remove(&key);
            }
        }
        cmd.args(args)
            .env("PATH", &self.path)
            .env("E2E_STATE_DIR", self.state.path())
            .env("HOME", self.home.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `xtask ARGS` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.xtask(args).output().expect("running xtask")
    }

    /// Where run `id` keeps its state.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.state.path().join("runs").join(id)
    }
}

/// A copy of the tree `from` at `to` (test fixtures copied into a test's temp dir).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Every file under `dir` whose name ends in `.ext`, recursively.
pub fn files_ending(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `cmd` as another user: when the tests run as root (who may read and signal anything), wrapped
/// in `setpriv` as `nobody` with the same arguments, environment and directory; as it is otherwise.
///
/// That user must be able to reach the program: in a clone under a private directory (a 0700
/// home, `mktemp -d`) `target/debug/` is not theirs to enter, and the xtask could not even start
/// its reaper (`current_exe`). So the program is copied into `scratch` (a temp dir of the test's,
/// opened to everyone for that) and run from there.
pub fn as_another_user(cmd: Command, scratch: &Path) -> Command {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return cmd;
    }
    let program = Path::new(cmd.get_program());
    let program = match program.file_name() {
        Some(name) if program.is_absolute() => {
            let bin = scratch.join("bin");
            std::fs::create_dir_all(&bin).expect("creating the other user's bin dir");
            let copy = bin.join(name);
            // A copy still running (a reaper of a previous call) cannot be written over
            // (ETXTBSY): a new copy is renamed over it.
            let fresh = bin.join(format!(".{}.new", name.to_string_lossy()));
            std::fs::copy(program, &fresh).expect("copying the program for the other user");
            std::fs::rename(&fresh, &copy).expect("copying the program for the other user");
            for (path, mode) in [(scratch, 0o755), (bin.as_path(), 0o755), (copy.as_path(), 0o755)] {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .expect("opening the copy to the other user");
            }
            copy.into_os_string()
        }
        _ => cmd.get_program().to_os_string(),
    };
    let mut wrapped = Command::new("setpriv");
    wrapped.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(program).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped.stdin(Stdio::null());
    wrapped
}

/// stdout and stderr together, for assertion messages.
/// Writes `body` to `rel` under `dir`, making the directories on the way (a test's fixture).
pub fn write(dir: &Path, rel: &str, body: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("creating dirs");
    std::fs::write(&path, body).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}
