//! Run-aware Gitea setup (replaces setup-gitea.sh): for one run, its own repository, access
//! token, deploy key, Kubernetes secrets and checkout. Other runs and users are never touched;
//! the user's global git config is never written; the token lives only in memory and in the
//! run's Kubernetes secret.
//!
//! Status codes are Gitea's (1.22-1.24, `routers/api/v1`): org creation answers 422 when the
//! name is taken (no 409, `org/org.go`), repository creation 409 (`repo/repo.go`), token creation
//! needs Basic auth and returns the value (`sha1`) only once (`user/app.go`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use xshell::{cmd, Shell};

use crate::e2e::context::{self as run_context, Request, RunContext};
use crate::e2e::definition;
use crate::exec;

// ---------------------------------------------------------------------------------------------
// The client.
// ---------------------------------------------------------------------------------------------

/// How a request authenticates.
#[derive(Clone, Copy)]
pub(crate) enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Token(&'a str),
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    /// Gitea's error message (`{"message": ...}`), else the body.
    pub(crate) fn message(&self) -> String {
        match self.json()["message"].as_str() {
            Some(m) => m.to_string(),
            None => self.body.chars().take(300).collect(),
        }
    }
}

/// A Gitea API client (`.../api/v1`) on ureq, over plain HTTP.
pub(crate) struct Client {
    api: String,
    agent: ureq::Agent,
    /// How many times a 5xx or a connection failure is retried.
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
}

impl Client {
    pub(crate) fn new(api: &str) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        Client {
            api: api.trim_end_matches('/').to_string(),
            agent: config.into(),
            retries: 4,
            backoff: Duration::from_millis(250),
        }
    }

    pub(crate) fn api_url(&self) -> &str {
        &self.api
    }

    /// One request, retried with bounded backoff on 5xx and connection errors.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<&Value>,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            let result = self.once(method, path, auth, body);
            let retry = match &result {
                Ok(r) => r.status >= 500,
                Err(_) => true,
            };
            if !retry || attempt >= self.retries || exec::cancelled() {
                return result.map_err(|e| anyhow!(exec::redact(&format!("Gitea {method} {path}: {e:#}"))));
            }
            std::thread::sleep(self.backoff * 2u32.pow(attempt));
            attempt += 1;
        }
    }

    fn once(&self, method: &str, path: &str, auth: Auth<'_>, body: Option<&Value>) -> Result<Response> {
        let url = format!("{}{path}", self.api);
        let header = match auth {
            Auth::None => None,
            Auth::Basic(user, password) => {
                Some(format!("Basic {}", base64(format!("{user}:{password}").as_bytes())))
            }
            Auth::Token(token) => Some(format!("token {token}")),
        };
        let response = match method {
            "GET" | "DELETE" => {
                let mut req = if method == "GET" { self.agent.get(&url) } else { self.agent.delete(&url) };
                if let Some(h) = &header {
                    req = req.header("Authorization", h);
                }
                req.header("Accept", "application/json").call()
            }
            _ => {
                let mut req = if method == "POST" { self.agent.post(&url) } else { self.agent.patch(&url) };
                if let Some(h) = &header {
                    req = req.header("Authorization", h);
                }
                let payload = body.map(Value::to_string).unwrap_or_else(|| "{}".into());
                req.header("Content-Type", "application/json")
                    .header("Accept", "application/json")
                    .send(payload)
            }
        };
        let mut response = response.map_err(|e| anyhow!("{e}"))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Ok(Response { status, body })
    }

    /// Fails with method, path, status and Gitea's message unless the status is expected.
    pub(crate) fn expect(
        &self,
        method: &str,
        path: &str,
        response: Response,
        ok: &[u16],
    ) -> Result<Response> {
        if ok.contains(&response.status) {
            return Ok(response);
        }
        bail!(exec::redact(&format!(
            "Gitea {method} {path} answered {}: {} (expected {})",
            response.status,
            response.message(),
            ok.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")
        )))
    }

    /// Waits for `GET /version` with backoff up to `deadline`; the error lists what was tried.
    pub(crate) fn wait_ready(&self, deadline: Duration) -> Result<String> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(100);
        let mut tries = Vec::new();
        loop {
            match self.once("GET", "/version", Auth::None, None) {
                Ok(r) if r.status == 200 => {
                    return Ok(r.json()["version"].as_str().unwrap_or("?").to_string())
                }
                Ok(r) => tries.push(format!("{} after {:.1}s", r.status, start.elapsed().as_secs_f64())),
                Err(e) => tries.push(format!("{e} after {:.1}s", start.elapsed().as_secs_f64())),
            }
            if start.elapsed() + delay > deadline || exec::cancelled() {
                let shown: Vec<&String> = tries.iter().rev().take(3).collect();
                bail!(
                    "Gitea API at {}/version not ready within {:.0}s ({} tries; last: {}); is the port-forward up? (`cargo xtask doctor`)",
                    self.api,
                    deadline.as_secs_f64(),
                    tries.len(),
                    shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; ")
                );
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

/// Standard base64 (for the Basic auth header).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Where Gitea is and who administers it.
// ---------------------------------------------------------------------------------------------

/// The shared Gitea's admin account and names (its endpoints are in the run context).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) admin_user: String,
    pub(crate) admin_password: String,
    pub(crate) org: String,
    /// User in SSH clone URLs.
    pub(crate) ssh_user: String,
    /// Host name the cluster uses for Gitea's SSH (`known_hosts` in the secret); empty: as scanned.
    pub(crate) ssh_cluster_host: String,
    /// How long to wait for the API.
    pub(crate) ready_timeout: Duration,
}

impl Settings {
    /// From the environment: `E2E_GITEA_ADMIN_USER`, `E2E_GITEA_ADMIN_PASSWORD` (never a flag:
    /// flags show in process lists), `E2E_GITEA_ORG`, `E2E_GITEA_SSH_USER`,
    /// `E2E_GITEA_SSH_CLUSTER_HOST`, with the shared infra's defaults.
    pub(crate) fn from_env(sh: &Shell) -> Settings {
        let env =
            |k: &str, d: &str| sh.var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| d.to_string());
        let settings = Settings {
            admin_user: env("E2E_GITEA_ADMIN_USER", "giteaadmin"),
            admin_password: env("E2E_GITEA_ADMIN_PASSWORD", "e2e-gitea-admin"),
            org: env("E2E_GITEA_ORG", "testorg"),
            ssh_user: env("E2E_GITEA_SSH_USER", "git"),
            ssh_cluster_host: env("E2E_GITEA_SSH_CLUSTER_HOST", "gitea-ssh.gitea-e2e.svc.cluster.local"),
            ready_timeout: Duration::from_secs(env("E2E_GITEA_READY_TIMEOUT", "60").parse().unwrap_or(60)),
        };
        exec::register_secret(&settings.admin_password);
        settings
    }
}

/// What setup records in the run's state dir, so teardown finds exactly what was made.
#[derive(Debug, Clone, Default)]
pub(crate) struct Record {
    pub(crate) run_id: String,
    pub(crate) flow: String,
    pub(crate) org: String,
    pub(crate) repo: String,
    pub(crate) token_name: String,
    pub(crate) deploy_key_id: Option<i64>,
    pub(crate) namespace: String,
    pub(crate) clone_url_ssh: String,
    pub(crate) clone_url_http: String,
}

fn record_path(ctx_state: &Path) -> PathBuf {
    ctx_state.join("gitea.json")
}

impl crate::lint::value::FromValue for Record {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = crate::lint::value::Table::new(v, at)?;
        Ok(Record {
            run_id: t.req("run_id")?,
            flow: t.req("flow")?,
            org: t.req("org")?,
            repo: t.req("repo")?,
            token_name: t.req("token_name")?,
            deploy_key_id: t.opt("deploy_key_id")?,
            namespace: t.req("namespace")?,
            clone_url_ssh: t.req("clone_url_ssh")?,
            clone_url_http: t.req("clone_url_http")?,
        })
    }
}

impl crate::lint::value::ToValue for Record {
    fn to_value(&self) -> Value {
        json!({
            "run_id": self.run_id, "flow": self.flow, "org": self.org, "repo": self.repo,
            "token_name": self.token_name, "deploy_key_id": self.deploy_key_id,
            "namespace": self.namespace, "clone_url_ssh": self.clone_url_ssh,
            "clone_url_http": self.clone_url_http,
        })
    }
}

impl Record {
    /// What setup recorded in the run's state dir `state`, if it did (unreadable counts as not).
    pub(crate) fn read(state: &Path) -> Option<Record> {
        std::fs::read_to_string(record_path(state)).ok().and_then(|t| crate::lint::value::from_json(&t).ok())
    }

    /// The run's repository as `org/repo`.
    pub(crate) fn full_name(&self) -> String {
        format!("{}/{}", self.org, self.repo)
    }
}

// ---------------------------------------------------------------------------------------------
// Setup.
// ---------------------------------------------------------------------------------------------

/// Sets up Gitea for one run. Idempotent: twice gives the same result.
/// Gitea takes the admin's credentials (`GET /user`), or the error says which were tried, where
/// they came from and what to do: a bare `401: user does not exist` from the first write said
/// none of it.
fn check_admin(sh: &Shell, client: &Client, settings: &Settings) -> Result<()> {
    let admin = Auth::Basic(&settings.admin_user, &settings.admin_password);
    let r = client.request("GET", "/user", admin, None)?;
    if r.status == 401 || r.status == 403 {
        let given = |k: &str| sh.var(k).ok().is_some_and(|v| !v.is_empty());
        let whence = match (given("E2E_GITEA_ADMIN_USER"), given("E2E_GITEA_ADMIN_PASSWORD")) {
            (true, true) => "both from the environment",
            (true, false) => "E2E_GITEA_ADMIN_PASSWORD is not set, so the shared infra's default password was tried",
            (false, true) => "E2E_GITEA_ADMIN_USER is not set, so the shared infra's default user was tried",
            (false, false) => "neither E2E_GITEA_ADMIN_USER nor E2E_GITEA_ADMIN_PASSWORD is set, so the shared infra's defaults were tried",
        };
        bail!(
            "Gitea at {} refuses its admin {:?} ({}: {}; {whence}): set E2E_GITEA_ADMIN_USER / E2E_GITEA_ADMIN_PASSWORD to the chart's admin \
             (hack/gitea-values.yaml), or set shared infra up anew (`kind delete cluster --name <cluster>`, then `cargo xtask setup`)",
            client.api_url(),
            settings.admin_user,
            r.status,
            r.message()
        );
    }
    client.expect("GET", "/user", r, &[200])?;
    Ok(())
}

pub(crate) fn setup(sh: &Shell, ctx: &RunContext, settings: &Settings) -> Result<Record> {
    let client = Client::new(&ctx.gitea_api_url);
    let log = ctx.logs_dir().join("gitea.log");
    let version = client.wait_ready(settings.ready_timeout)?;
    log_line(&log, &format!("Gitea {version} at {}", client.api_url()));
    check_admin(sh, &client, settings)?;
    let steps = Steps { sh, ctx, settings, client, log };

    steps.ensure_org()?;
    let (token_name, token) = steps.issue_token()?;
    let auth = Auth::Token(&token);
    let (repo, clone_url_http) = steps.ensure_repo(auth)?;
    let key = steps.ensure_key_pair()?;
    let deploy_key_id = steps.register_deploy_key(auth, &repo, &key)?;
    let known_hosts = steps.scan_host_keys()?;
    steps.apply_secrets(&token, &key, &known_hosts)?;
    let clone_url_ssh = steps.prepare_checkout(&repo, &key, &known_hosts.file)?;

    let record = Record {
        run_id: ctx.run_id.clone(),
        flow: ctx.flow.clone(),
        org: settings.org.clone(),
        repo,
        token_name,
        deploy_key_id,
        namespace: ctx.test_namespace.clone(),
        clone_url_ssh,
        clone_url_http,
    };
    std::fs::write(
        record_path(&ctx.state_dir()),
        serde_json::to_string_pretty(&crate::lint::value::ToValue::to_value(&record))?,
    )
    .context("writing the run's gitea.json")?;
    Ok(record)
}

/// What every step of a run's Gitea setup works with.
struct Steps<'a> {
    sh: &'a Shell,
    ctx: &'a RunContext,
    settings: &'a Settings,
    client: Client,
    log: PathBuf,
}

/// The run's host keys: as scanned (for the local checkout) and as the cluster reaches Gitea.
struct KnownHosts {
    file: PathBuf,
    cluster: String,
}

impl Steps<'_> {
    fn admin(&self) -> Auth<'_> {
        Auth::Basic(&self.settings.admin_user, &self.settings.admin_password)
    }

    /// Step 1: The shared org: 201, or 422 because it exists (then confirm it does).
    fn ensure_org(&self) -> Result<()> {
        let (client, org) = (&self.client, &self.settings.org);
        let body = json!({ "username": org, "visibility": "private" });
        let r = client.request("POST", "/orgs", self.admin(), Some(&body))?;
        if r.status == 422 {
            let path = format!("/orgs/{org}");
            let got = client.request("GET", &path, self.admin(), None)?;
            client
                .expect("GET", &path, got, &[200])
                .with_context(|| format!("org {org} could not be created: 422"))?;
        } else {
            client.expect("POST", "/orgs", r, &[201])?;
        }
        Ok(())
    }

    /// Step 2: The run's token (Basic auth, as Gitea requires): (name, value). Its value is returned
    /// once: when the name exists from an earlier setup of this run, replace it.
    fn issue_token(&self) -> Result<(String, String)> {
        let client = &self.client;
        let token_name = self.ctx.token_name();
        let tokens_path = format!("/users/{}/tokens", self.settings.admin_user);
        let token_body = json!({ "name": token_name, "scopes": ["write:organization", "write:repository"] });
        let mut r = client.request("POST", &tokens_path, self.admin(), Some(&token_body))?;
        if r.status == 400 && r.message().contains("has been used already") {
            let path = format!("{tokens_path}/{token_name}");
            let del = client.request("DELETE", &path, self.admin(), None)?;
            client.expect("DELETE", &path, del, &[204])?;
            r = client.request("POST", &tokens_path, self.admin(), Some(&token_body))?;
        }
        let r = client.expect("POST", &tokens_path, r, &[201])?;
        let token = r.json()["sha1"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("Gitea returned no token value"))?;
        exec::register_secret(&token);
        Ok((token_name, token))
    }

    /// Step 3: The run's repository: (name, HTTP clone URL). 409 means it exists; reuse it only if it
    /// is this run's.
    fn ensure_repo(&self, auth: Auth<'_>) -> Result<(String, String)> {
        let (client, ctx, org) = (&self.client, self.ctx, &self.settings.org);
        let repo = ctx.repo_name();
        let description = format!("e2e run {} ({})", ctx.run_id, ctx.flow);
        let repos_path = format!("/orgs/{org}/repos");
        let body = json!({ "name": repo, "description": description, "private": true, "auto_init": true, "default_branch": "main" });
        let r = client.request("POST", &repos_path, auth, Some(&body))?;
        let repo_json = if r.status == 409 {
            let path = format!("/repos/{org}/{repo}");
            let got = client.expect("GET", &path, client.request("GET", &path, auth, None)?, &[200])?.json();
            if got["description"].as_str() != Some(description.as_str()) {
                bail!("Gitea repository {org}/{repo} exists but is not run {}'s (description {:?}); not touching it", ctx.run_id, got["description"]);
            }
            got
        } else {
            client.expect("POST", &repos_path, r, &[201])?.json()
        };
        let clone_url_http = repo_json["clone_url"].as_str().unwrap_or_default().to_string();
        Ok((repo, clone_url_http))
    }

    /// Step 4a: The run's ed25519 key pair in its private ssh dir (kept when it exists).
    fn ensure_key_pair(&self) -> Result<PathBuf> {
        let (sh, ctx) = (self.sh, self.ctx);
        let ssh_dir = ctx.ssh_dir();
        run_context::create_private_dir(&ssh_dir)?;
        let key = ssh_dir.join("id_ed25519");
        if !key.exists() {
            let comment = ctx.deploy_key_title();
            exec::cmd(cmd!(sh, "ssh-keygen -q -t ed25519 -N '' -C {comment} -f {key}"))
                .log(&self.log)
                .timeout(Duration::from_secs(30))
                .run()
                .context("generating the run's SSH key")?;
        }
        set_mode(&key, 0o600)?;
        Ok(key)
    }

    /// Step 4b: The public key as a write deploy key on this repository only; an older key under
    /// this run's title is replaced. Returns the key's id.
    fn register_deploy_key(&self, auth: Auth<'_>, repo: &str, key: &Path) -> Result<Option<i64>> {
        let (client, org) = (&self.client, &self.settings.org);
        let public =
            std::fs::read_to_string(key.with_extension("pub")).context("reading the run's public key")?;
        let public = public.trim().to_string();
        let keys_path = format!("/repos/{org}/{repo}/keys");
        let title = self.ctx.deploy_key_title();
        let existing =
            client.expect("GET", &keys_path, client.request("GET", &keys_path, auth, None)?, &[200])?.json();
        let mut deploy_key_id = None;
        for k in existing.as_array().into_iter().flatten() {
            if k["title"].as_str() == Some(title.as_str()) {
                if same_key(k["key"].as_str().unwrap_or(""), &public) {
                    deploy_key_id = k["id"].as_i64();
                } else if let Some(id) = k["id"].as_i64() {
                    let path = format!("{keys_path}/{id}");
                    client.expect(
                        "DELETE",
                        &path,
                        client.request("DELETE", &path, auth, None)?,
                        &[204, 404],
                    )?;
                }
            }
        }
        if deploy_key_id.is_none() {
            let body = json!({ "title": title, "key": public, "read_only": false });
            let r = client.expect(
                "POST",
                &keys_path,
                client.request("POST", &keys_path, auth, Some(&body))?,
                &[201],
            )?;
            deploy_key_id = r.json()["id"].as_i64();
        }
        Ok(deploy_key_id)
    }

    /// Step 5: known_hosts from a real scan: never a made-up host key. A scan through a port-forward
    /// sometimes gets the banner but no key: retried with bounded backoff.
    fn scan_host_keys(&self) -> Result<KnownHosts> {
        let settings = self.settings;
        let scanned = keyscan(self.sh, self.ctx, &self.log)?;
        let local = scanned.join("\n") + "\n";
        let file = self.ctx.ssh_dir().join("known_hosts");
        std::fs::write(&file, &local).context("writing the run's known_hosts")?;
        let cluster = if settings.ssh_cluster_host.is_empty() {
            local
        } else {
            scanned
                .iter()
                .map(|l| {
                    let rest = l.split_once(' ').map(|(_, r)| r).unwrap_or("");
                    format!("{} {rest}", settings.ssh_cluster_host)
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        };
        Ok(KnownHosts { file, cluster })
    }

    /// Step 6: The run's secrets, applied as JSON on stdin (no temp files; values in no log).
    fn apply_secrets(&self, token: &str, key: &Path, known_hosts: &KnownHosts) -> Result<()> {
        let (sh, ctx) = (self.sh, self.ctx);
        let private_key = std::fs::read_to_string(key).context("reading the run's private key")?;
        let invalid = format!("invalid-{}", run_context::generate_run_id());
        let manifest = secrets_manifest(
            ctx,
            &self.settings.admin_user,
            token,
            &private_key,
            &known_hosts.cluster,
            &invalid,
        );
        exec::cmd(
            cmd!(sh, "kubectl apply --server-side --force-conflicts --field-manager=xtask-e2e -f -")
                .args(ctx.kubectl_args()),
        )
        .stdin(manifest.to_string())
        .log(&self.log)
        .timeout(Duration::from_secs(60))
        .run()
        .with_context(|| format!("applying the run's secrets in namespace {}", ctx.test_namespace))?;
        Ok(())
    }

    /// Step 7: A checkout whose credentials are scoped to this repository: the run's key through a
    /// repo-local core.sshCommand. Nothing global is written; the token is not used here.
    /// Returns the SSH clone URL.
    fn prepare_checkout(&self, repo: &str, key: &Path, known_hosts: &Path) -> Result<String> {
        let (sh, settings, log) = (self.sh, self.settings, &self.log);
        let (host, port) = self.ctx.gitea_ssh_host_port()?;
        let org = &settings.org;
        let clone_url_ssh = format!("ssh://{}@{}:{port}/{org}/{repo}.git", settings.ssh_user, bracket(&host));
        let ssh_command = ssh_command(key, known_hosts);
        let checkout = self.ctx.checkout_dir();
        if !checkout.join(".git").exists() {
            if checkout.exists() {
                std::fs::remove_dir_all(&checkout)
                    .with_context(|| format!("clearing {}", checkout.display()))?;
            }
            exec::cmd(cmd!(sh, "git clone --quiet {clone_url_ssh} {checkout}"))
                .env_secret("GIT_SSH_COMMAND", &ssh_command)
                .log(log)
                .timeout(Duration::from_secs(120))
                .run()
                .context("cloning the run's repository")?;
        }
        let _d = sh.push_dir(&checkout);
        let title = self.ctx.deploy_key_title();
        exec::cmd(cmd!(sh, "git config --local core.sshCommand {ssh_command}")).log(log).run()?;
        let email = format!("{title}@e2e.invalid");
        exec::cmd(cmd!(sh, "git config --local user.name {title}")).log(log).run()?;
        exec::cmd(cmd!(sh, "git config --local user.email {email}")).log(log).run()?;
        Ok(clone_url_ssh)
    }
}

/// Gitea's SSH host keys, as `known_hosts` lines, from a real scan. A scan through a
/// port-forward sometimes gets the banner but no key: retried with bounded backoff.
fn keyscan(sh: &Shell, ctx: &RunContext, log: &Path) -> Result<Vec<String>> {
    let (host, port) = ctx.gitea_ssh_host_port()?;
    let mut attempt = 0;
    let (scan, scanned) = loop {
        attempt += 1;
        let scan = exec::cmd(cmd!(sh, "ssh-keyscan -T 10 -p {port} {host}"))
            .log(log)
            .timeout(Duration::from_secs(30))
            .allow_failure()
            .run()?;
        let keys: Vec<String> = scan
            .stdout
            .lines()
            .filter(|l| !l.starts_with('#') && l.split_whitespace().count() >= 3)
            .map(String::from)
            .collect();
        if !keys.is_empty() || attempt >= 5 || exec::cancelled() {
            break (scan, keys);
        }
        std::thread::sleep(Duration::from_millis(300 * 2u64.pow(attempt - 1)));
    };
    if scanned.is_empty() {
        bail!(
            "ssh-keyscan of Gitea's SSH endpoint {host}:{port} returned no host key after {attempt} tries ({}); is the SSH port-forward up? (E2E_GITEA_SSH)",
            scan.stderr.lines().last().unwrap_or("no output").trim()
        );
    }
    Ok(scanned)
}

/// What reused shared Gitea looks like now.
pub(crate) struct SharedGitea {
    /// Its SSH host keys (type and key, sorted): they change when the pod restarts.
    pub(crate) host_keys: String,
    /// The org had to be made again.
    pub(crate) org_recreated: bool,
}

/// Checks shared Gitea before runs rely on it. Its data is an emptyDir (chart values
/// `persistence.enabled: false`), so a restarted pod has lost the org, every token, repository
/// and deploy key, and has new SSH host keys: the admin login is checked, the org made again
/// when it is gone, and the host keys returned for comparison with the recorded ones.
pub(crate) fn check_shared(
    sh: &Shell,
    ctx: &RunContext,
    settings: &Settings,
    log: &Path,
) -> Result<SharedGitea> {
    let client = Client::new(&ctx.gitea_api_url);
    let admin = Auth::Basic(&settings.admin_user, &settings.admin_password);
    client.wait_ready(settings.ready_timeout)?;
    check_admin(sh, &client, settings)?;
    let org = &settings.org;
    let path = format!("/orgs/{org}");
    let org_recreated = client.request("GET", &path, admin, None)?.status == 404;
    if org_recreated {
        let body = json!({ "username": org, "visibility": "private" });
        let r = client.request("POST", "/orgs", admin, Some(&body))?;
        client.expect("POST", "/orgs", r, &[201, 422])?;
    }
    let mut keys: Vec<String> = keyscan(sh, ctx, log)?
        .iter()
        .map(|l| l.split_whitespace().skip(1).take(2).collect::<Vec<_>>().join(" "))
        .collect();
    keys.sort();
    Ok(SharedGitea { host_keys: keys.join("\n"), org_recreated })
}

fn same_key(a: &str, b: &str) -> bool {
    let body = |k: &str| k.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    body(a) == body(b)
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `ssh` with only the run's key and the run's known_hosts, strict host checking.
fn ssh_command(key: &Path, known_hosts: &Path) -> String {
    format!(
        "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes",
        exec::quote(&key.display().to_string()),
        exec::quote(&known_hosts.display().to_string())
    )
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode {mode:o} on {}", path.display()))
}

fn log_line(path: &Path, line: &str) {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "=== {line}");
    }
}

/// The run's namespace and secrets, labeled with the run id.
pub(crate) fn secrets_manifest(
    ctx: &RunContext,
    user: &str,
    token: &str,
    private_key: &str,
    known_hosts: &str,
    invalid: &str,
) -> Value {
    let labels = ctx.labels();
    let ns = &ctx.test_namespace;
    let secret = |name: String, kind: &str, data: Value| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": name, "namespace": ns, "labels": labels },
            "type": kind, "stringData": data,
        })
    };
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            { "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": ns, "labels": labels } },
            secret(ctx.secret_http(), "kubernetes.io/basic-auth", json!({ "username": user, "password": token })),
            secret(ctx.secret_ssh(), "kubernetes.io/ssh-auth", json!({ "ssh-privatekey": private_key, "known_hosts": known_hosts })),
            secret(ctx.secret_invalid(), "kubernetes.io/basic-auth", json!({ "username": user, "password": invalid })),
        ],
    })
}

// ---------------------------------------------------------------------------------------------
// Teardown.
// ---------------------------------------------------------------------------------------------

/// Removes exactly what setup made for the run; what is already gone is fine.
pub(crate) fn teardown(
    sh: &Shell,
    run_id: &str,
    flow: Option<&str>,
    settings: &Settings,
    kube_context: &str,
) -> Result<()> {
    run_context::validate_run_id(run_id)?;
    let state = run_context::run_dir(run_id);
    let recorded = Record::read(&state);
    let flows: Vec<String> = match (&recorded, flow) {
        (Some(r), _) => vec![r.flow.clone()],
        (None, Some(f)) => vec![f.to_string()],
        (None, None) => run_context::FLOWS.iter().map(|f| f.to_string()).collect(),
    };
    let mut errors = Vec::new();
    for flow in flows {
        let ctx = RunContext::resolve(
            sh,
            &Request::new(Some(run_id.to_string()), Some(&flow)).with_kube_context(kube_context.to_string()),
        )?;
        let ctx = RunContext {
            test_namespace: recorded
                .as_ref()
                .map(|r| r.namespace.clone())
                .unwrap_or(ctx.test_namespace.clone()),
            ..ctx
        };
        if let Err(e) = teardown_flow(sh, &ctx, settings, recorded.as_ref()) {
            errors.push(format!("{e:#}"));
        }
    }
    if !errors.is_empty() {
        bail!("Gitea teardown of run {run_id} incomplete:\n- {}", errors.join("\n- "));
    }
    // Local state last: the checkout and the key files.
    for dir in [state.join("checkout"), state.join("ssh")] {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    let _ = std::fs::remove_file(record_path(&state));
    Ok(())
}

fn teardown_flow(sh: &Shell, ctx: &RunContext, settings: &Settings, recorded: Option<&Record>) -> Result<()> {
    let client = Client::new(&ctx.gitea_api_url);
    let admin = Auth::Basic(&settings.admin_user, &settings.admin_password);
    let org = recorded.map(|r| r.org.clone()).unwrap_or_else(|| settings.org.clone());
    let repo = recorded.map(|r| r.repo.clone()).unwrap_or_else(|| ctx.repo_name());
    client.wait_ready(settings.ready_timeout)?;

    // The deploy key (only this run's title), then the repository.
    let keys_path = format!("/repos/{org}/{repo}/keys");
    let r = client.request("GET", &keys_path, admin, None)?;
    if r.status == 200 {
        for k in r.json().as_array().into_iter().flatten() {
            if k["title"].as_str() == Some(ctx.deploy_key_title().as_str()) {
                if let Some(id) = k["id"].as_i64() {
                    let path = format!("{keys_path}/{id}");
                    client.expect(
                        "DELETE",
                        &path,
                        client.request("DELETE", &path, admin, None)?,
                        &[204, 404],
                    )?;
                }
            }
        }
    } else {
        client.expect("GET", &keys_path, r, &[200, 404])?;
    }
    let repo_path = format!("/repos/{org}/{repo}");
    client.expect("DELETE", &repo_path, client.request("DELETE", &repo_path, admin, None)?, &[204, 404])?;

    let token_name = recorded.map(|r| r.token_name.clone()).unwrap_or_else(|| ctx.token_name());
    let token_path = format!("/users/{}/tokens/{token_name}", settings.admin_user);
    client.expect("DELETE", &token_path, client.request("DELETE", &token_path, admin, None)?, &[204, 404])?;

    // The run's secrets, by the run label, in the run's namespace only, never a helm release's
    // storage: `helm upgrade --labels` puts the run label on it too, with `owner=helm` (helm
    // pkg/storage/driver/secrets.go `newSecretsObject`); deleted, helm forgets the release and
    // never uninstalls its cluster-scoped objects. The release goes with `helm uninstall`.
    let ns = &ctx.test_namespace;
    let selector = format!("{},owner!=helm", ctx.selector());
    exec::cmd(
        cmd!(sh, "kubectl delete secret --namespace {ns} --selector {selector} --ignore-not-found")
            .args(ctx.kubectl_args()),
    )
    .cleanup()
    .log(ctx.logs_dir().join("gitea.log"))
    .timeout(Duration::from_secs(60))
    .run()
    .with_context(|| format!("deleting the run's secrets in {ns}"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `cargo xtask gitea setup|teardown`.
// ---------------------------------------------------------------------------------------------

/// Give one run its own Gitea repository, token, deploy key, secrets and checkout (or remove them).
///
/// Gitea is reached at $E2E_GITEA_API_URL (default http://localhost:13000/api/v1) as
/// $E2E_GITEA_ADMIN_USER with $E2E_GITEA_ADMIN_PASSWORD; the org is $E2E_GITEA_ORG (testorg); SSH is
/// scanned at $E2E_GITEA_SSH (host:port). Nothing of another run or user is touched, the global
/// git config is never written, and the token lives only in memory and the run's secret.
///
/// Examples:
///   cargo xtask gitea setup --run-id pr1234-a --flow full
///   cargo xtask gitea teardown --run-id pr1234-a
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Create the run's repository, token, deploy key, secrets and checkout (idempotent)
    Setup {
        /// The run (default: $E2E_RUN_ID)
        #[arg(long)]
        run_id: Option<String>,
        /// The flow (default: $E2E_FLOW, else full)
        #[arg(long)]
        flow: Option<String>,
    },
    /// Remove what setup made for the run; what is already gone is fine
    Teardown {
        #[arg(long)]
        run_id: String,
        /// Only needed when the run's state dir is gone
        #[arg(long)]
        flow: Option<String>,
    },
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        let settings = Settings::from_env(sh);
        match self.command {
            Command::Setup { run_id, flow } => {
                if run_id.is_none() && sh.var("E2E_RUN_ID").is_err() {
                    bail!("gitea setup needs a run: pass --run-id or set E2E_RUN_ID (`cargo xtask run-context`)");
                }
                let request = Request::new(run_id, flow.as_deref())
                    .with_kube_context(definition::default_kube_context());
                let ctx = RunContext::resolve(sh, &request)?;
                crate::e2e::context::kube::require_context(
                    sh,
                    &ctx.kube_context,
                    &ctx.logs_dir().join("gitea.log"),
                )?;
                ctx.export(sh);
                let record = setup(sh, &ctx, &settings)?;
                println!("run {}: repository {}/{} ready", ctx.run_id, record.org, record.repo);
                println!(
                    "  secrets   {}/{{{},{},{}}}",
                    ctx.test_namespace,
                    ctx.secret_http(),
                    ctx.secret_ssh(),
                    ctx.secret_invalid()
                );
                println!("  checkout  {}", ctx.checkout_dir().display());
                Ok(0)
            }
            Command::Teardown { run_id, flow } => {
                teardown(sh, &run_id, flow.as_deref(), &settings, &definition::default_kube_context())?;
                println!(
                    "run {run_id}: Gitea repository, token, deploy key, secrets and local state removed"
                );
                Ok(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (input, want) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }
}
