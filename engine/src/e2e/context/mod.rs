//! The run context: the run id and everything named after it.
//!
//! This module is the one place names are made: namespaces, Gitea repository and token names,
//! Kubernetes secret names, state directories, the run label. Everything else asks it.
//!
//! Env contract: `E2E_RUN_ID`, `E2E_FLOW`, `E2E_TEST_NAMESPACE`, `E2E_CONTROLLER_NAMESPACE`,
//! `E2E_GITEA_API_URL`, `E2E_GITEA_SSH`, `E2E_PROMETHEUS_URL`, `E2E_ARTIFACTS_DIR`,
//! `E2E_RUN_LABEL`, and `E2E_CHECKOUT_DIR` (the run's Git checkout, for tests that poll it), plus
//! whatever the definition's port-forwards provide. Values are generated when absent and validated
//! when given, and exported to every child process. Service endpoints come from the environment,
//! else from the definition's `[[port-forward]] env`, else the defaults below; they name
//! 127.0.0.1, never `localhost`, which can resolve to `::1` first while kubectl listens on
//! 127.0.0.1 (and `ssh-keyscan` tries only the first address).

pub mod coordination;
pub mod kube;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::paths;
use crate::usage::usage;

/// The label every object of a run carries (key; the value is the run id).
pub(crate) const DEFAULT_LABEL_KEY: &str = "configbutler.ai/e2e-run-id";
pub(crate) const DEFAULT_GITEA_API_URL: &str = "http://127.0.0.1:13000/api/v1";
pub(crate) const DEFAULT_GITEA_SSH: &str = "127.0.0.1:13022";
pub(crate) const DEFAULT_PROMETHEUS_URL: &str = "http://127.0.0.1:19090";
/// The context of kind's cluster `e2e` when no definition names another.
pub(crate) const DEFAULT_KUBE_CONTEXT: &str = "kind-e2e";
/// The flows the e2e knows; the longest name bounds the run id's length.
pub(crate) const FLOWS: &[&str] = &["full", "quickstart-helm", "quickstart-manifest"];
/// `run-e2e-quickstart-manifest-` : the longest namespace prefix.
const LONGEST_PREFIX: &str = "run-e2e-quickstart-manifest-";
/// Kubernetes namespace names are DNS-1123 labels: at most 63 characters.
pub(crate) const MAX_RUN_ID: usize = 63 - LONGEST_PREFIX.len();
const GENERATED_LEN: usize = 10;

/// One run's identity and names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunContext {
    pub(crate) run_id: String,
    pub(crate) flow: String,
    pub(crate) test_namespace: String,
    pub(crate) controller_namespace: String,
    pub(crate) gitea_api_url: String,
    /// `host:port` of Gitea's SSH (the forward's local side).
    pub(crate) gitea_ssh: String,
    pub(crate) prometheus_url: String,
    pub(crate) artifacts_dir: PathBuf,
    pub(crate) label_key: String,
    /// Other variables the definition's forwards provide (`E2E_MYAPP_URL`, ...).
    pub(crate) services: BTreeMap<String, String>,
    /// The kube context every kubectl/helm call names (`kind-<cluster>`).
    pub(crate) kube_context: String,
    /// A kubeconfig holding only that context, for child processes (set once it is written).
    pub(crate) kubeconfig: Option<PathBuf>,
}

/// The rule a run id must follow, as error messages state it.
pub(crate) fn run_id_rule() -> String {
    format!(
        "a run id is a lowercase DNS-1123 label of 1 to {MAX_RUN_ID} characters: a-z, 0-9 and '-', starting and ending \
         with a letter or digit (so `{LONGEST_PREFIX}<id>` fits the 63-character namespace limit)"
    )
}

/// Checks a run id; the error states the rule.
pub(crate) fn validate_run_id(id: &str) -> Result<()> {
    let problem = if id.is_empty() {
        Some("it is empty".to_string())
    } else if id.len() > MAX_RUN_ID {
        Some(format!("it has {} characters", id.len()))
    } else if let Some(c) = id.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        Some(format!("it contains {c:?}"))
    } else if id.starts_with('-') || id.ends_with('-') {
        Some("it starts or ends with '-'".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(usage(format!("invalid run id {id:?}: {problem}; {}", run_id_rule()))),
        None => Ok(()),
    }
}

/// A label key as Kubernetes checks it (k8s.io/apimachinery pkg/util/validation/validation.go,
/// `IsQualifiedName`, which `ValidateLabelName` applies to every label key): an optional prefix,
/// a DNS-1123 subdomain (`IsDNS1123Subdomain`: at most 253 characters of lowercase alphanumerics,
/// '-' and '.', each dot-separated part starting and ending alphanumeric) and '/', then a name of
/// 1 to 63 characters matching `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`. Cleanup builds its
/// selector `<key>=<id>` from this key: a key ending in `!` would make it `key!=<id>`, which
/// selects everything *but* the run.
pub(crate) fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(
                "its prefix before '/' is empty; a qualified name's prefix is a DNS-1123 subdomain".into()
            );
        }
        if let Err(why) = dns1123_subdomain(prefix) {
            return Err(format!("its prefix {prefix:?} {why}"));
        }
    }
    if name.is_empty() {
        return Err("its name part is empty; a qualified name's name is 1 to 63 characters".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "its name part has {} characters; a qualified name's name has at most 63",
            name.len()
        ));
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let ok = name.starts_with(alnum)
        && name.ends_with(alnum)
        && name.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(format!(
            "its name part {name:?} is not a qualified name: alphanumerics, '-', '_' or '.', starting and ending \
             with an alphanumeric (with an optional DNS subdomain prefix and '/', e.g. example.com/MyName)"
        ));
    }
    Ok(())
}

/// A label value as Kubernetes checks it (`IsValidLabelValue` in the same file): empty, or at
/// most 63 characters matching `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
pub(crate) fn validate_label_value(value: &str) -> Result<(), String> {
    if value.len() > 63 {
        return Err(format!("it has {} characters; a label value has at most 63", value.len()));
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let ok = value.is_empty()
        || (value.starts_with(alnum)
            && value.ends_with(alnum)
            && value.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.')));
    if !ok {
        return Err("a label value is empty or alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric".into());
    }
    Ok(())
}

/// `IsDNS1123Subdomain`: at most 253 characters; dot-separated DNS-1123 labels (lowercase
/// alphanumerics and '-', starting and ending alphanumeric).
fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("has {} characters; a DNS-1123 subdomain has at most 253", s.len()));
    }
    let label_ok = |l: &str| {
        let an = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        !l.is_empty() && l.starts_with(an) && l.ends_with(an) && l.chars().all(|c| an(c) || c == '-')
    };
    if !s.split('.').all(label_ok) {
        return Err(
            "is not a DNS-1123 subdomain: lowercase alphanumerics, '-' and '.', each part starting and \
                    ending with an alphanumeric"
                .into(),
        );
    }
    Ok(())
}

pub(crate) fn validate_flow(flow: &str) -> Result<()> {
    let max = "quickstart-manifest".len();
    if flow.len() > max {
        return Err(usage(format!(
            "flow name {flow:?} has {} characters, at most {max}: a run's namespace is `run-e2e-<flow>-<run id>`, \
             which Kubernetes caps at 63 characters, and run ids get up to {MAX_RUN_ID}",
            flow.len()
        )));
    }
    let ok = !flow.is_empty()
        && flow.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !flow.starts_with('-')
        && !flow.ends_with('-');
    if !ok {
        return Err(usage(format!(
            "invalid flow {flow:?}: a flow name is a lowercase DNS-1123 label (a-z, 0-9, '-') of at most {max} characters"
        )));
    }
    Ok(())
}

fn validate_namespace(var: &str, ns: &str) -> Result<()> {
    let ok = !ns.is_empty()
        && ns.len() <= 63
        && ns.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if !ok {
        return Err(usage(format!(
            "invalid {var}={ns:?}: a namespace is a lowercase DNS-1123 label of at most 63 characters"
        )));
    }
    Ok(())
}

fn validate_url(var: &str, url: &str) -> Result<()> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !url.contains(char::is_whitespace) => {
            Ok(())
        }
        _ => Err(usage(format!("invalid {var}={url:?}: expected an http:// or https:// URL"))),
    }
}

/// A fresh run id: random lowercase base-36, unique across parallel CI jobs.
pub(crate) fn generate_run_id() -> String {
    let mut bytes = [0u8; 16];
    let random =
        std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    let mut n = u128::from_le_bytes(bytes);
    if random.is_err() {
        // No /dev/urandom: time and pid still differ between parallel jobs.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        n = t ^ (u128::from(std::process::id()) << 64);
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = String::new();
    for i in 0..GENERATED_LEN {
        // Start with a letter: ids read better and never look like numbers.
        let base = if i == 0 { 26 } else { 36 };
        id.push(ALPHABET[(n % base) as usize] as char);
        n /= base;
    }
    id
}

/// Where a run's values come from: flags first, then the environment, then generated defaults.
#[derive(Debug, Default, Clone)]
pub(crate) struct Request {
    pub(crate) run_id: Option<String>,
    pub(crate) flow: Option<String>,
    /// What the definition's port-forwards provide: defaults under the environment.
    pub(crate) services: BTreeMap<String, String>,
    /// The definition's cluster context: the default under `E2E_KUBE_CONTEXT`.
    pub(crate) kube_context: Option<String>,
}

impl Request {
    pub(crate) fn new(run_id: Option<String>, flow: Option<&str>) -> Request {
        Request { run_id, flow: flow.map(str::to_string), services: BTreeMap::new(), kube_context: None }
    }

    /// With the kube context of the definition's cluster.
    pub(crate) fn with_kube_context(mut self, context: String) -> Request {
        self.kube_context = Some(context);
        self
    }

    /// With the service endpoints the definition's forwards provide (`Definition::service_env`).
    pub(crate) fn with_services(mut self, services: BTreeMap<String, String>) -> Request {
        self.services = services;
        self
    }
}

impl RunContext {
    /// Builds the context from `request`, else the `E2E_*` variables of `sh`, else defaults.
    pub(crate) fn resolve(sh: &Shell, request: &Request) -> Result<RunContext> {
        let env = |k: &str| sh.var(k).ok().filter(|v| !v.is_empty());
        let run_id = match request.run_id.clone().or_else(|| env("E2E_RUN_ID")) {
            Some(id) => {
                validate_run_id(&id)?;
                id
            }
            None => generate_run_id(),
        };
        let flow = request.flow.clone().or_else(|| env("E2E_FLOW")).unwrap_or_else(|| "full".to_string());
        validate_flow(&flow)?;
        // A given run id with a different flag value wins over stale env namespaces.
        let from_env = request.run_id.is_none() || env("E2E_RUN_ID").as_deref() == Some(run_id.as_str());
        let test_namespace = match env("E2E_TEST_NAMESPACE").filter(|_| from_env) {
            Some(ns) => {
                validate_namespace("E2E_TEST_NAMESPACE", &ns)?;
                ns
            }
            None => test_namespace(&flow, &run_id),
        };
        let controller_namespace = match env("E2E_CONTROLLER_NAMESPACE").filter(|_| from_env) {
            Some(ns) => {
                validate_namespace("E2E_CONTROLLER_NAMESPACE", &ns)?;
                ns
            }
            None => controller_namespace(&flow, &run_id),
        };
        let service = |k: &str, default: &str| {
            env(k).or_else(|| request.services.get(k).cloned()).unwrap_or_else(|| default.to_string())
        };
        let gitea_api_url = service("E2E_GITEA_API_URL", DEFAULT_GITEA_API_URL);
        validate_url("E2E_GITEA_API_URL", &gitea_api_url)?;
        let gitea_ssh = service("E2E_GITEA_SSH", DEFAULT_GITEA_SSH);
        split_endpoint(&gitea_ssh).with_context(|| format!("invalid E2E_GITEA_SSH={gitea_ssh:?}"))?;
        let prometheus_url = service("E2E_PROMETHEUS_URL", DEFAULT_PROMETHEUS_URL);
        validate_url("E2E_PROMETHEUS_URL", &prometheus_url)?;
        let services: BTreeMap<String, String> = request
            .services
            .keys()
            .filter(|k| !matches!(k.as_str(), "E2E_GITEA_API_URL" | "E2E_GITEA_SSH" | "E2E_PROMETHEUS_URL"))
            .map(|k| (k.clone(), service(k, "")))
            .collect();
        let artifacts_dir = env("E2E_ARTIFACTS_DIR")
            .filter(|_| from_env)
            .map(PathBuf::from)
            .unwrap_or_else(|| run_dir(&run_id).join("artifacts"));
        let kube_context = env("E2E_KUBE_CONTEXT")
            .or_else(|| request.kube_context.clone())
            .unwrap_or_else(|| DEFAULT_KUBE_CONTEXT.to_string());
        if kube_context.contains(char::is_whitespace) {
            bail!("invalid E2E_KUBE_CONTEXT={kube_context:?}: a kube context name has no spaces");
        }
        let label_key = env("E2E_RUN_LABEL").unwrap_or_else(|| DEFAULT_LABEL_KEY.into());
        if let Err(why) = validate_label_key(&label_key) {
            return Err(usage(format!(
                "invalid E2E_RUN_LABEL={label_key:?}: a label key is a Kubernetes qualified name (like \
                 {DEFAULT_LABEL_KEY}), and {why}"
            )));
        }
        Ok(RunContext {
            run_id,
            flow,
            test_namespace,
            controller_namespace,
            gitea_api_url,
            gitea_ssh,
            prometheus_url,
            artifacts_dir,
            label_key,
            services,
            kube_context,
            kubeconfig: None,
        })
    }

    /// The variables every child process of this run gets.
    pub(crate) fn env(&self) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = [
            ("E2E_RUN_ID", self.run_id.clone()),
            ("E2E_FLOW", self.flow.clone()),
            ("E2E_TEST_NAMESPACE", self.test_namespace.clone()),
            ("E2E_CONTROLLER_NAMESPACE", self.controller_namespace.clone()),
            ("E2E_GITEA_API_URL", self.gitea_api_url.clone()),
            ("E2E_GITEA_SSH", self.gitea_ssh.clone()),
            ("E2E_PROMETHEUS_URL", self.prometheus_url.clone()),
            ("E2E_ARTIFACTS_DIR", self.artifacts_dir.display().to_string()),
            ("E2E_RUN_LABEL", self.label_key.clone()),
            ("E2E_CHECKOUT_DIR", self.checkout_dir().display().to_string()),
            ("E2E_KUBE_CONTEXT", self.kube_context.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(self.services.clone());
        if let Some(kubeconfig) = &self.kubeconfig {
            env.insert("KUBECONFIG".into(), kubeconfig.display().to_string());
        }
        env
    }

    /// `--context <ctx>` for every kubectl call.
    pub(crate) fn kubectl_args(&self) -> [String; 2] {
        crate::e2e::context::kube::kubectl_args(&self.kube_context)
    }

    /// `--kube-context <ctx>` for every helm call.
    pub(crate) fn helm_args(&self) -> [String; 2] {
        crate::e2e::context::kube::helm_args(&self.kube_context)
    }

    /// Gitea's SSH endpoint as (host, port).
    pub(crate) fn gitea_ssh_host_port(&self) -> Result<(String, String)> {
        split_endpoint(&self.gitea_ssh).with_context(|| format!("E2E_GITEA_SSH={:?}", self.gitea_ssh))
    }

    /// Exports the run's variables to every command built from `sh`.
    pub(crate) fn export(&self, sh: &Shell) {
        for (k, v) in self.env() {
            sh.set_var(k, v);
        }
    }

    /// `configbutler.ai/e2e-run-id=<id>`: the selector cleanup uses.
    pub(crate) fn selector(&self) -> String {
        format!("{}={}", self.label_key, self.run_id)
    }

    /// The run's labels, for every object it creates.
    pub(crate) fn labels(&self) -> serde_json::Value {
        serde_json::json!({ self.label_key.clone(): self.run_id, "app.kubernetes.io/managed-by": "xtask-e2e" })
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        run_dir(&self.run_id)
    }
    pub(crate) fn logs_dir(&self) -> PathBuf {
        self.state_dir().join("logs")
    }
    pub(crate) fn ssh_dir(&self) -> PathBuf {
        self.state_dir().join("ssh")
    }
    pub(crate) fn checkout_dir(&self) -> PathBuf {
        self.state_dir().join("checkout")
    }

    /// The run's Gitea repository (in the shared org).
    pub(crate) fn repo_name(&self) -> String {
        format!("e2e-{}-{}", self.flow, self.run_id)
    }
    /// The run's Gitea access token (its name; the value lives only in memory and the secret).
    pub(crate) fn token_name(&self) -> String {
        format!("e2e-{}-{}", self.flow, self.run_id)
    }
    /// The run's deploy key title.
    pub(crate) fn deploy_key_title(&self) -> String {
        format!("e2e-{}-{}", self.flow, self.run_id)
    }
    /// Secrets in the run's namespace (the namespace scopes them; the names stay readable).
    pub(crate) fn secret_http(&self) -> String {
        "git-creds".into()
    }
    pub(crate) fn secret_ssh(&self) -> String {
        "git-creds-ssh".into()
    }
    pub(crate) fn secret_invalid(&self) -> String {
        "git-creds-invalid".into()
    }
    /// A helm release or other cluster-unique name for this run: `<base>-<id>`.
    pub(crate) fn scoped_name(&self, base: &str) -> String {
        format!("{base}-{}", self.run_id)
    }
}

/// `host:port` (or `[v6]:port`) → (host, port). `localhost` becomes 127.0.0.1: glibc may resolve
/// it to `::1` first, where kubectl's forward may not listen, and `ssh-keyscan` tries only the
/// first address it resolves (while `ssh` falls back), so a scan of `localhost` can find nothing.
pub(crate) fn split_endpoint(endpoint: &str) -> Result<(String, String)> {
    let (host, port) = endpoint.rsplit_once(':').context("expected host:port")?;
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        bail!("expected host:port with a port from 1 to 65535");
    }
    let host = if host == "localhost" { "127.0.0.1" } else { host };
    Ok((host.to_string(), port.to_string()))
}

pub(crate) fn test_namespace(flow: &str, run_id: &str) -> String {
    format!("run-e2e-{flow}-{run_id}")
}

pub(crate) fn controller_namespace(flow: &str, run_id: &str) -> String {
    format!("ctl-e2e-{flow}-{run_id}")
}

/// `target/e2e/runs/<id>/`.
pub(crate) fn run_dir(run_id: &str) -> PathBuf {
    paths::state_root().join("runs").join(run_id)
}

/// Creates a directory with the given mode (the run's ssh dir is 0700).
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {} to its owner", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..200).map(|_| generate_run_id()).collect();
        assert_eq!(ids.len(), 200);
        for id in &ids {
            validate_run_id(id).unwrap();
        }
    }

    #[test]
    fn bad_ids_are_refused_with_the_rule() {
        let too_long = "a".repeat(MAX_RUN_ID + 1);
        for bad in ["", "Upper", "../x", "a_b", "-a", "a-", "a b", "a\"b", too_long.as_str()] {
            let err = validate_run_id(bad).expect_err(bad).to_string();
            assert!(err.contains("lowercase DNS-1123 label"), "{err}");
        }
        validate_run_id(&"a".repeat(MAX_RUN_ID)).unwrap();
        assert_eq!(test_namespace("quickstart-manifest", &"a".repeat(MAX_RUN_ID)).len(), 63);
        assert_eq!(controller_namespace("quickstart-manifest", &"a".repeat(MAX_RUN_ID)).len(), 63);
    }

    /// The cases of apimachinery's own validation_test.go (`TestIsQualifiedName`,
    /// `TestIsValidLabelValue`), and the negation that made cleanup select everything else.
    #[test]
    fn label_keys_and_values_follow_kubernetes_syntax() {
        let long_prefix = format!("{}.io/x", "a".repeat(251)); // 254 characters before '/'

        for good in [
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "1234",
            "simple/simple",
            "now-with-dashes/simple",
            "now-with-dashes/now-with-dashes",
            "now.with.dots/simple",
            "now-with.dashes-and.dots/simple",
            "1-num.2-num/3-num",
            "1234/5678",
            "1.2.3.4/5678",
            "Uppercase_Is_OK_123",
            "example.com/Uppercase_Is_OK_123",
            "requests.storage-foo",
            DEFAULT_LABEL_KEY,
        ] {
            assert_eq!(validate_label_key(good), Ok(()), "{good}");
        }
        let long_name = "a".repeat(64);
        for bad in [
            "nospecialchars%^=@",
            "cantendwithadash-",
            "-cantstartwithadash-",
            "only/one/slash",
            "Example.com/abc",
            "example_com/abc",
            "example.com/",
            "/simple",
            long_name.as_str(),
            long_prefix.as_str(),
            "configbutler.ai/e2e-run-id!",
            "",
        ] {
            assert!(validate_label_key(bad).is_err(), "{bad}");
        }
        for good in
            ["", "simple", "now-with-dashes", "1-starts-with-num", "end-with-num-1", "1234", "a.b_c-d"]
        {
            assert_eq!(validate_label_value(good), Ok(()), "{good}");
        }
        for bad in [
            "nospecialchars%^=@",
            "Tama-nui-te-rā.is.Māori.sun",
            "\\backslashes\\",
            "-starts",
            "ends-",
            &"a".repeat(64),
        ] {
            assert!(validate_label_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_name_ipv4_loopback_never_localhost() {
        assert_eq!(split_endpoint("localhost:13022").unwrap(), ("127.0.0.1".into(), "13022".into()));
        // xtask-lint: allow(fixed-local-port) (test data)
        assert_eq!(split_endpoint("[::1]:22").unwrap(), ("::1".into(), "22".into()));
        assert_eq!(split_endpoint("gitea:2222").unwrap(), ("gitea".into(), "2222".into()));
        for bad in ["", "nohost", ":22", "h:0", "h:99999", "h:x"] {
            assert!(split_endpoint(bad).is_err(), "{bad}");
        }
        assert!(DEFAULT_GITEA_API_URL.contains("127.0.0.1") && DEFAULT_GITEA_SSH.starts_with("127.0.0.1"));
    }
}
