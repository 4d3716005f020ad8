//! The external tools the e2e layer needs, why, and how to get each one.

/// One external tool.
pub(crate) struct Tool {
    pub(crate) name: &'static str,
    /// What the e2e layer uses it for.
    pub(crate) purpose: &'static str,
    /// Arguments that print its version (stdout or stderr); empty when it has none.
    pub(crate) version_args: &'static [&'static str],
    pub(crate) install: &'static str,
}

pub(crate) const TOOLS: &[Tool] = &[
    Tool {
        name: "docker",
        purpose: "builds the images",
        version_args: &["version", "--format", "{{.Client.Version}}"],
        install: "install Docker Engine (Debian: `apt-get install docker.io`) and start the daemon",
    },
    Tool {
        name: "kind",
        purpose: "runs the Kubernetes cluster",
        version_args: &["version"],
        install: "install kind: `go install sigs.k8s.io/kind@latest` or a release binary from https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    },
    Tool {
        name: "kubectl",
        purpose: "talks to the cluster",
        version_args: &["version", "--client"],
        install: "install kubectl: https://kubernetes.io/docs/tasks/tools/",
    },
    Tool {
        name: "helm",
        purpose: "installs charts (Gitea, Prometheus, the system under test)",
        version_args: &["version", "--short"],
        install: "install helm: https://helm.sh/docs/intro/install/",
    },
    Tool {
        name: "git",
        purpose: "checks out each run's repository",
        version_args: &["--version"],
        install: "install git (Debian: `apt-get install git`)",
    },
    Tool {
        name: "ssh-keygen",
        purpose: "makes each run's deploy key",
        version_args: &[],
        install: "install the OpenSSH client (Debian: `apt-get install openssh-client`)",
    },
    Tool {
        name: "ssh-keyscan",
        purpose: "reads Gitea's SSH host key for known_hosts",
        version_args: &[],
        install: "install the OpenSSH client (Debian: `apt-get install openssh-client`)",
    },
];

/// How to get `program`, when it is one of ours.
pub(crate) fn install_hint(program: &str) -> Option<&'static str> {
    let name = program.rsplit('/').next().unwrap_or(program);
    TOOLS.iter().find(|t| t.name == name).map(|t| t.install)
}
