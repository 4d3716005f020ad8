//! Every key of the e2e definition with its type, default and meaning: the source of
//! `docs/definition.md` (`cargo xtask docs`). A tidy test holds it to the decoder in
//! `definition.rs`: a key decoded there and missing here (or the reverse) fails.

/// One key of one table.
pub struct Key {
    pub name: &'static str,
    pub ty: &'static str,
    /// `required`, or the default as TOML.
    pub default: &'static str,
    pub doc: &'static str,
}

/// One table of the definition, as the decoder reads it.
pub struct TableDoc {
    /// `[cluster]`, `[[image]]`, `deploy.helm`, …
    pub name: &'static str,
    /// The decoder's struct (the tidy test matches it to `impl FromValue for <decoder>`).
    pub decoder: &'static str,
    pub doc: &'static str,
    pub keys: &'static [Key],
    pub example: &'static str,
}

const fn key(name: &'static str, ty: &'static str, default: &'static str, doc: &'static str) -> Key {
    Key { name, ty, default, doc }
}

const REQ: &str = "required";

pub const TABLES: &[TableDoc] = &[
    TableDoc {
        name: "(top level)",
        decoder: "File",
        doc: "The file: one cluster, then images, deploys, port-forwards, flows and the quickstart.",
        keys: &[
            key("cluster", "table", REQ, "the cluster: `[cluster]`"),
            key("image", "array of tables", "[]", "images to build: `[[image]]`"),
            key("deploy", "array of tables", "[]", "shared infra and workloads: `[[deploy]]`"),
            key("port-forward", "array of tables", "[]", "supervised forwards to shared infra: `[[port-forward]]`"),
            key("flow", "array of tables", "[]", "the e2e flows: `[[flow]]`"),
            key("quickstart", "table", "none", "the per-run install `cargo xtask quickstart` makes: `[quickstart]`"),
        ],
        example: "",
    },
    TableDoc {
        name: "[cluster]",
        decoder: "ClusterDef",
        doc: "The cluster every kubectl and helm call names (`--context kind-<name>`, or the existing one's).",
        keys: &[
            key("name", "string", REQ, "the kind cluster's name (created when absent, reused when there)"),
            key("provider", "string", "\"kind\"", "`kind`, or `existing` for a cluster this tool never creates"),
            key("context", "string", "none", "provider = \"existing\": the kube context to use"),
            key("registry", "string", "none", "provider = \"existing\": where images are pushed (`registry.example.com/team`)"),
            key("lease-duration", "duration", "\"30s\"", "provider = \"existing\": how long a run's Lease lasts without a heartbeat"),
            key("config", "path", "none", "kind config; a template: `${REPO_ROOT}` and environment variables are expanded"),
            key("wait", "duration", "\"120s\"", "`kind create cluster --wait`"),
            key("timeout", "duration", "\"300s\"", "the cluster task's timeout"),
        ],
        example: "[cluster]\nname = \"e2e\"\nconfig = \"hack/kind-config.yaml\"\n",
    },
    TableDoc {
        name: "[[image]]",
        decoder: "ImageDef",
        doc: "An image to build (all builds at once) and load into the kind node.",
        keys: &[
            key("name", "string", REQ, "a DNS label; `${IMAGE_<NAME>}` names its tag in templates"),
            key("tag", "string", REQ, "the image reference; `${DIGEST}` is the digest of its inputs"),
            key("dockerfile", "path", REQ, "the Dockerfile"),
            key("context", "path", "\".\"", "the build context (its .dockerignore is honoured by the digest)"),
            key("build-args", "table of strings", "{}", "`--build-arg`s"),
            key("prebuild", "array of commands", "[]", "commands run before the build (each an array of strings)"),
            key("prebuild-env", "table of strings", "{}", "environment of the prebuild commands"),
            key("env", "table of strings", "{}", "environment of the prebuild commands and `docker build`"),
            key("inputs", "array of globs", "[]", "what the prebuild reads besides the context (the digest covers them)"),
            key("load", "boolean", "true", "load it into the kind node"),
            key("timeout", "duration", "\"900s\"", "the build's timeout"),
            key("load-retries", "integer", "2", "retries of a failed load"),
        ],
        example: "[[image]]\nname = \"manager\"\ntag = \"manager:${DIGEST}\"\ndockerfile = \"Dockerfile\"\n",
    },
    TableDoc {
        name: "[[deploy]]",
        decoder: "DeployDef",
        doc: "One install: a helm chart, manifests, or a command, started when what it needs is up.",
        keys: &[
            key("name", "string", REQ, "the task is `deploy:<name>`"),
            key("namespace", "string", "none", "where it installs (created by helm; `--namespace` for manifests)"),
            key("helm", "table", "none", "a chart: `deploy.helm`"),
            key("manifests", "array of paths or URLs", "[]", "files, directories (as `kubectl apply -f DIR`) or http(s) URLs"),
            key("template", "boolean", "false", "expand `${IMAGE_<NAME>}` and friends in local manifests first"),
            key("wait", "array of tables", "[]", "`kubectl wait`s after it: `deploy.wait`"),
            key("images", "array of strings", "[]", "images whose loads it needs"),
            key("needs", "array of strings", "[]", "deploys it needs"),
            key("timeout", "duration", "\"600s\"", "the deploy's timeout"),
            key("retries", "integer", "2 for helm, else 0", "retries of a failed deploy"),
            key("command", "array of strings", "[]", "a command instead of helm or manifests"),
        ],
        example: "[[deploy]]\nname = \"crds\"\nmanifests = [\"config/crd/bases\"]\n",
    },
    TableDoc {
        name: "deploy.helm",
        decoder: "HelmDef",
        doc: "`helm upgrade --install` of a chart (a directory, or a repository's chart).",
        keys: &[
            key("chart", "string", REQ, "a path, or a chart name with `repo`"),
            key("release", "string", "the deploy's name", "the release name"),
            key("repo", "string", "none", "the chart repository URL"),
            key("version", "string", "none", "the chart version"),
            key("values", "array of paths", "[]", "values files (their keys are checked against the chart's)"),
            key("set", "table of strings", "{}", "`--set` values (`${GIT_SHA}` and environment variables expanded)"),
        ],
        example: "helm = { chart = \"charts/op\", set = { \"image.tag\" = \"${GIT_SHA}\" } }\n",
    },
    TableDoc {
        name: "deploy.wait",
        decoder: "WaitDef",
        doc: "A `kubectl wait` after a deploy.",
        keys: &[
            key("resource", "string", REQ, "`deployment/name`, …"),
            key("for", "string", REQ, "`condition=available`, …"),
            key("namespace", "string", "the deploy's", "where the resource is"),
            key("timeout", "duration", "\"300s\"", "how long to wait"),
        ],
        example: "wait = [{ resource = \"deployment/op\", for = \"condition=available\" }]\n",
    },
    TableDoc {
        name: "[[port-forward]]",
        decoder: "ForwardDef",
        doc: "A supervised `kubectl port-forward` to shared infra, health-checked in its own protocol.",
        keys: &[
            key("name", "string", REQ, "the forward's name"),
            key("namespace", "string", REQ, "the service's namespace"),
            key("target", "string", REQ, "`svc/name`"),
            key("local", "integer", REQ, "the local port"),
            key("remote", "integer", REQ, "the service port"),
            key("probe", "string", REQ, "an HTTP path answering 200, or `ssh` for the SSH banner"),
            key("env", "table of strings", "{}", "what it provides to runs (`${local}` expanded)"),
            key("ready-timeout", "duration", "\"300s\"", "how long the service may take to answer"),
            key("needs", "array of strings", "the deploys into its namespace (else all)", "deploys it forwards to: it starts when they are up"),
        ],
        example: "[[port-forward]]\nname = \"gitea\"\nnamespace = \"gitea-e2e\"\ntarget = \"svc/gitea-http\"\nlocal = 13000\nremote = 3000\nprobe = \"/api/v1/version\"\n",
    },
    TableDoc {
        name: "[[flow]]",
        decoder: "FlowDef",
        doc: "An e2e flow: steps run with the run's environment, each flow in its own run.",
        keys: &[
            key("name", "string", REQ, "`--flow` selects it"),
            key("steps", "array of commands", "[]", "commands (arrays of strings; `${E2E_*}`, the flow's env and `${GIT_SHA}` expanded)"),
            key("timeout", "duration", "\"1800s\"", "the flow's timeout"),
            key("gitea", "boolean", "true", "give the run its own Gitea repository, token, key and secrets"),
            key("env", "table of strings", "{}", "environment of its steps"),
            key("exclusive", "boolean", "false", "runs alone (it owns cluster-wide objects)"),
            key("needs", "array of strings", "[]: all of shared infra", "flows it runs after, and the deploys and port-forwards it waits for (naming none of those: all of shared infra)"),
            key("check", "array of tables", "[]", "checks after the steps: `check`"),
        ],
        example: "[[flow]]\nname = \"smoke\"\ngitea = false\nsteps = [[\"go\", \"test\", \"./test/e2e/...\"]]\n",
    },
    TableDoc {
        name: "[quickstart]",
        decoder: "QuickstartDef",
        doc: "The per-run install `cargo xtask quickstart --mode helm|manifest` makes and checks.",
        keys: &[
            key("chart", "path", "none", "the chart (helm mode; rendered for manifest mode)"),
            key("base", "path", "none", "a kustomize base for manifest mode (else the rendered chart)"),
            key("check", "array of tables", "[]", "checks after the install: `check`"),
            key("timeout", "duration", "\"300s\"", "the install's timeout, and each check's default deadline"),
            key("values", "table of strings", "{}", "`--set` values (typed by helm; `${E2E_*}` expanded)"),
            key("set-string", "table of strings", "{}", "`--set-string` values (`${E2E_*}` expanded)"),
            key("patches", "array of paths", "[]", "kustomize patches templated per run"),
            key("service-monitor", "string", "none", "a ServiceMonitor for this port name, labelled with the run"),
        ],
        example: "[quickstart]\nchart = \"charts/op\"\nset-string = { runId = \"${E2E_RUN_ID}\" }\n",
    },
    TableDoc {
        name: "check",
        decoder: "CheckDef",
        doc: "One check (`[[flow.check]]`, `[[quickstart.check]]`): exactly one kind key, with its options.",
        keys: &[
            key("rollout", "string", "-", "kind: a Deployment rolls out"),
            key("available", "string", "-", "kind: a Deployment is Available"),
            key("pods-ready", "string", "-", "kind: pods matching a selector are Ready"),
            key("crds", "array of strings", "-", "kind: CRDs are Established"),
            key("condition", "string", "-", "kind: `kind/name` has a condition (`type`, `status`, `reason`, `message`)"),
            key("type", "string", "none", "condition: its type"),
            key("status", "string", "none", "condition: its status"),
            key("reason", "string", "none", "condition: its reason"),
            key("message", "string", "none", "condition: a regex its message matches"),
            key("git-file", "string", "-", "kind: a file in the run's repository (`state`)"),
            key("state", "string", "none", "git-file: present, absent, contains, not-contains, changed"),
            key("text", "string", "none", "git-file: the text for contains / not-contains"),
            key("new-commit", "boolean", "none", "git-file: only after a new commit"),
            key("git-no-secret", "string", "-", "kind: a file holds none of the secret values"),
            key("secret-env", "string", "none", "git-no-secret: the variable holding the secret"),
            key("secret-values", "array of strings", "none", "git-no-secret: the secret values"),
            key("promql", "string", "-", "kind: a PromQL query scoped to the run (`expect`)"),
            key("expect", "string", "none", "promql: `> 0`, `== 3`, …"),
            key("apply", "path", "-", "kind: apply a manifest into the run's namespace"),
            key("exists", "string", "-", "kind: `kind/name` exists"),
            key("delete", "string", "-", "kind: delete `kind/name`"),
            key("namespace", "string", "the run's", "where the object is"),
            key("timeout", "duration", "the quickstart's", "this check's deadline"),
        ],
        example: "[[quickstart.check]]\nrollout = \"op-${E2E_RUN_ID}\"\n",
    },
];

/// `docs/definition.md`.
pub(crate) fn markdown() -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "# The e2e definition (`test/e2e/e2e.toml`)\n\n<!-- Generated by `cargo xtask docs` from engine/src/e2e/definition/schema.rs; do not edit. -->\n\nTOML 1.0 (what only TOML 1.1 allows is refused). Paths are relative to the repository root, or else to the definition's directory.\nDurations: `90s`, `5m`, `1h30m`. Unknown keys are refused, naming the file, the key and its line and column.\n",
    );
    for t in TABLES {
        let _ = write!(
            out,
            "\n## {}\n\n{}\n\n| key | type | default | what it is |\n|---|---|---|---|\n",
            t.name, t.doc
        );
        for k in t.keys {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                k.name,
                k.ty,
                if k.default == REQ { "**required**" } else { k.default },
                k.doc.replace('|', "\\|")
            );
        }
        if !t.example.is_empty() {
            let _ = write!(out, "\n```toml\n{}```\n", t.example);
        }
    }
    out
}
