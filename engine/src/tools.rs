//! The external tools the e2e layer needs, why, the oldest version that works, and how to get
//! each one. `doctor` shows them all; the e2e's preflight checks those a definition needs before
//! any work starts.

/// One external tool.
pub(crate) struct Tool {
    pub(crate) name: &'static str,
    /// What the e2e layer uses it for.
    pub(crate) purpose: &'static str,
    /// Arguments that print its version (stdout or stderr); empty when it has none.
    pub(crate) version_args: &'static [&'static str],
    pub(crate) install: &'static str,
    /// The oldest version that works, and why (with the upstream source).
    pub(crate) minimum: Option<Minimum>,
}

/// A minimum version: major.minor, and what needs it.
pub(crate) struct Minimum {
    pub(crate) major: u32,
    pub(crate) minor: u32,
    pub(crate) why: &'static str,
}

pub(crate) const TOOLS: &[Tool] = &[
    Tool {
        name: "docker",
        purpose: "builds the images",
        version_args: &["version", "--format", "{{.Client.Version}}"],
        install: "install Docker Engine (Debian: `apt-get install docker.io`) and start the daemon",
        minimum: None,
    },
    Tool {
        name: "kind",
        purpose: "runs the Kubernetes cluster",
        version_args: &["version"],
        install: "install kind: `go install sigs.k8s.io/kind@latest` or a release binary from https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
        minimum: None,
    },
    Tool {
        name: "kubectl",
        purpose: "talks to the cluster",
        version_args: &["version", "--client"],
        install: "install kubectl: https://kubernetes.io/docs/tasks/tools/",
        minimum: Some(Minimum {
            major: 1,
            minor: 25,
            // kustomize added `labels[].includeTemplates` in v4.5.5 (api/types/labels.go at
            // kustomize/v4.5.5; absent at v4.5.4); kubectl embeds kustomize v4.5.4 in 1.24 and
            // v4.5.7 in 1.25 (kustomize README, "kubectl integration"), and decodes a
            // kustomization strictly, so 1.24 refuses the quickstart's overlay.
            why: "the quickstart's manifest-mode overlay uses kustomize's labels[].includeTemplates, which kubectl embeds from 1.25 (kustomize v4.5.7); port-forward exits when its pod goes only from 1.23 (kubernetes/kubernetes#103526)",
        }),
    },
    Tool {
        name: "helm",
        purpose: "installs charts (Gitea, Prometheus, the system under test)",
        version_args: &["version", "--short"],
        install: "install helm: https://helm.sh/docs/intro/install/",
        minimum: Some(Minimum {
            major: 3,
            minor: 13,
            why: "`helm upgrade --labels` (release labels, by which runs are found) exists from helm 3.13.0 (cmd/helm/upgrade.go)",
        }),
    },
    Tool {
        name: "git",
        purpose: "checks out each run's repository",
        version_args: &["--version"],
        install: "install git (Debian: `apt-get install git`)",
        minimum: None,
    },
    Tool {
        name: "ssh-keygen",
        purpose: "makes each run's deploy key",
        version_args: &[],
        install: "install the OpenSSH client (Debian: `apt-get install openssh-client`)",
        minimum: None,
    },
    Tool {
        name: "ssh-keyscan",
        purpose: "reads Gitea's SSH host key for known_hosts",
        version_args: &[],
        install: "install the OpenSSH client (Debian: `apt-get install openssh-client`)",
        minimum: None,
    },
];

/// How to get `program`, when it is one of ours.
pub(crate) fn install_hint(program: &str) -> Option<&'static str> {
    let name = program.rsplit('/').next().unwrap_or(program);
    TOOLS.iter().find(|t| t.name == name).map(|t| t.install)
}

/// The tool named `name`.
pub(crate) fn tool(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

/// The first `vMAJOR.MINOR[.PATCH]` (or `MAJOR.MINOR`) in a tool's version output: `v3.17.0+g…`,
/// `Client Version: v1.32.0`, `GitVersion:"v1.22.0"`, `kind v0.27.0 go1.23`.
pub(crate) fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let bytes = text.as_bytes();
    for (i, _) in text.char_indices() {
        let rest = &text[i..];
        let digits_at = if rest.starts_with('v') { i + 1 } else { i };
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.') {
            continue;
        }
        let mut parts = text[digits_at..].split(|c: char| !c.is_ascii_digit()).take(3);
        let sep_ok = text[digits_at..].chars().find(|c| !c.is_ascii_digit()) == Some('.');
        let (Some(a), Some(b)) = (parts.next(), parts.next()) else { continue };
        if !sep_ok || a.is_empty() || b.is_empty() {
            continue;
        }
        let (Ok(major), Ok(minor)) = (a.parse(), b.parse()) else { continue };
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        return Some((major, minor, patch));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_are_read_from_every_tools_output() {
        assert_eq!(parse_version("v3.17.0+g301108e"), Some((3, 17, 0)));
        assert_eq!(parse_version("v3.12.3+g3a31588"), Some((3, 12, 3)));
        assert_eq!(parse_version("Client Version: v1.32.0\nKustomize Version: v5.5.0"), Some((1, 32, 0)));
        assert_eq!(
            parse_version("Client Version: version.Info{Major:\"1\", Minor:\"22\", GitVersion:\"v1.22.17\"}"),
            Some((1, 22, 17))
        );
        assert_eq!(parse_version("kind v0.27.0 go1.23.4 linux/amd64"), Some((0, 27, 0)));
        assert_eq!(parse_version("no version here"), None);
        assert_eq!(parse_version("é v"), None);
    }
}
