//! The fixture operator: small, but shaped like the operators this tool serves (a GitOps
//! operator such as gitops-reverser). It reconciles `GitMirror` objects
//! (`fixture.example.com/v1alpha1`, namespaced) in one namespace:
//!
//! - `spec.repository` (`org/repo` on Gitea), `spec.secretRef.name` (a basic-auth Secret whose
//!   `password` is a Gitea token), `spec.path` (a folder in the repository), `spec.selector`
//!   (a label selector, `key=value`).
//! - It checks the credentials against the repository and sets the `Ready` condition: `True`
//!   (reason `Connected`), or `False` with reason `ConnectionFailed` (the credentials are refused
//!   or Gitea cannot be reached), `RepositoryNotFound` or `SecretNotFound`, and a message saying
//!   what it saw.
//! - When ready, it mirrors the selected ConfigMaps and Secrets of its namespace into the
//!   repository as `<path>/<plural>/<name>.json`, one commit per change, and removes the file
//!   when the object goes. Secret values are encrypted (never in plaintext, never base64).
//!
//! It talks to the Kubernetes API through `kubectl` (the fake toolchain's object store in the
//! tests; in a cluster, an image with kubectl and a ServiceAccount token), and to Gitea through
//! its contents API.
//!
//! `FIXTURE_FAULT` makes it misbehave in one way, so that tests can show each check catches the
//! bug it is there for: `never-ready`, `wrong-reason`, `no-update`, `no-delete`,
//! `skip-secrets`, `plaintext-secrets`, `base64-secrets`.
// A workload under test, not part of the xtask: the exec-layer rule (every process through
// `exec::cmd`) is the xtask's; this program calls kubectl as a controller calls its API.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

#[path = "../../support/base64.rs"]
mod base64;

const GROUP: &str = "fixture.example.com";

struct Config {
    namespace: String,
    gitea_api: String,
    context: Option<String>,
    interval: Duration,
    fault: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: fixture-operator --namespace NS --gitea-api URL [--context CTX] [--interval-ms N]\n\
         (FIXTURE_FAULT=never-ready|wrong-reason|no-update|no-delete|skip-secrets|plaintext-secrets|base64-secrets to misbehave)"
    );
    std::process::exit(2)
}

fn config() -> Config {
    let mut args = std::env::args().skip(1);
    let mut namespace = None;
    let mut gitea_api = None;
    let mut context = None;
    let mut interval = Duration::from_millis(300);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--namespace" => namespace = Some(value()),
            "--gitea-api" => gitea_api = Some(value()),
            "--context" => context = Some(value()),
            "--interval-ms" => {
                interval = Duration::from_millis(value().parse().unwrap_or_else(|_| usage()));
            }
            _ => usage(),
        }
    }
    Config {
        namespace: namespace.unwrap_or_else(|| usage()),
        gitea_api: gitea_api.unwrap_or_else(|| usage()).trim_end_matches('/').to_string(),
        context,
        interval,
        fault: std::env::var("FIXTURE_FAULT").unwrap_or_default(),
    }
}

fn main() {
    let config = config();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut op = Operator { config, agent, written: BTreeMap::new() };
    loop {
        if let Err(e) = op.reconcile_all() {
            eprintln!("fixture-operator: {e}");
        }
        std::thread::sleep(op.config.interval);
    }
}

struct Operator {
    config: Config,
    agent: ureq::Agent,
    /// Files each mirror wrote (`namespace/name` → paths), so that a deleted object's file goes.
    written: BTreeMap<String, BTreeSet<String>>,
}

/// A Ready condition to report.
struct Ready {
    status: &'static str,
    reason: &'static str,
    message: String,
}

impl Operator {
    fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("kubectl");
        cmd.args(args).arg("--namespace").arg(&self.config.namespace);
        if let Some(context) = &self.config.context {
            cmd.arg("--context").arg(context);
        }
        let out =
            cmd.stdin(Stdio::null()).output().map_err(|e| format!("kubectl {}: {e}", args.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn get_json(&self, args: &[&str]) -> Result<Value, String> {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let text = self.kubectl(&all)?;
        serde_json::from_str(&text).map_err(|e| format!("kubectl {}: not JSON: {e}", args.join(" ")))
    }

    fn reconcile_all(&mut self) -> Result<(), String> {
        let mirrors = self.get_json(&["get", &format!("gitmirrors.{GROUP}")])?;
        for mirror in mirrors["items"].as_array().into_iter().flatten() {
            let name = mirror["metadata"]["name"].as_str().unwrap_or_default().to_string();
            if let Err(e) = self.reconcile(mirror) {
                eprintln!("fixture-operator: gitmirror {name}: {e}");
            }
        }
        Ok(())
    }

    fn reconcile(&mut self, mirror: &Value) -> Result<(), String> {
        let name = mirror["metadata"]["name"].as_str().unwrap_or_default();
        let spec = &mirror["spec"];
        let repo = spec["repository"].as_str().unwrap_or_default();
        let secret = spec["secretRef"]["name"].as_str().unwrap_or_default();
        let (ready, token) = self.connect(repo, secret);
        self.report(mirror, &ready)?;
        let Some(token) = token else { return Ok(()) };
        let key = format!("{}/{name}", self.config.namespace);
        let selector = spec["selector"].as_str().unwrap_or_default();
        let folder = spec["path"].as_str().unwrap_or("mirror").trim_matches('/');
        let mut desired = BTreeMap::new();
        let kinds: &[&str] =
            if self.config.fault == "skip-secrets" { &["configmaps"] } else { &["configmaps", "secrets"] };
        for plural in kinds {
            let mut args = vec!["get", plural];
            if !selector.is_empty() {
                args.extend(["--selector", selector]);
            }
            let list = self.get_json(&args)?;
            for object in list["items"].as_array().into_iter().flatten() {
                let object_name = object["metadata"]["name"].as_str().unwrap_or_default();
                let file = format!("{folder}/{plural}/{object_name}.json");
                desired.insert(file, self.render(object, mirror));
            }
        }
        let gitea = Gitea { api: &self.config.gitea_api, repo, token: &token, agent: &self.agent };
        for (file, content) in &desired {
            let current = gitea.read(file)?;
            match current {
                None => gitea.write(file, content, None)?,
                Some((sha, old)) if old != *content && self.config.fault != "no-update" => {
                    gitea.write(file, content, Some(&sha))?
                }
                Some(_) => {}
            }
        }
        let written = self.written.entry(key).or_default();
        if self.config.fault != "no-delete" {
            for gone in written.iter().filter(|f| !desired.contains_key(*f)) {
                if let Some((sha, _)) = gitea.read(gone)? {
                    gitea.delete(gone, &sha)?;
                }
            }
            written.retain(|f| desired.contains_key(f));
        }
        written.extend(desired.into_keys());
        Ok(())
    }

    /// Whether the credentials reach the repository; the token when they do.
    fn connect(&self, repo: &str, secret: &str) -> (Ready, Option<String>) {
        let fail = |reason, message: String| (Ready { status: "False", reason, message }, None);
        let secret_json = match self.get_json(&["get", "secret", secret]) {
            Ok(v) => v,
            Err(e) => return fail("SecretNotFound", format!("secret {secret:?}: {e}")),
        };
        let token = secret_json["data"]["password"].as_str().and_then(base64::decode).unwrap_or_default();
        let url = format!("{}/repos/{repo}", self.config.gitea_api);
        let response = self.agent.get(&url).header("Authorization", format!("token {token}")).call();
        let (status, body) = match response {
            Ok(mut r) => (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()),
            Err(e) => return fail("ConnectionFailed", format!("cannot reach {url}: {e}")),
        };
        let said = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_default();
        match status {
            200 => (
                Ready { status: "True", reason: "Connected", message: format!("mirroring into {repo}") },
                Some(token),
            ),
            401 | 403 => {
                let reason = if self.config.fault == "wrong-reason" { "Error" } else { "ConnectionFailed" };
                fail(reason, format!("authentication failed for {repo} (HTTP {status}: {said})"))
            }
            404 => fail("RepositoryNotFound", format!("repository {repo} not found (HTTP 404: {said})")),
            other => fail("ConnectionFailed", format!("GET {url}: HTTP {other}: {said}")),
        }
    }

    /// Sets the Ready condition when it changed (a status patch, as controllers write status).
    fn report(&self, mirror: &Value, ready: &Ready) -> Result<(), String> {
        if self.config.fault == "never-ready" {
            return Ok(());
        }
        let name = mirror["metadata"]["name"].as_str().unwrap_or_default();
        let current =
            mirror["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Ready");
        if current.is_some_and(|c| {
            c["status"] == ready.status
                && c["reason"] == ready.reason
                && c["message"] == ready.message.as_str()
        }) {
            return Ok(());
        }
        let patch = json!({ "status": {
            "observedGeneration": mirror["metadata"]["generation"],
            "conditions": [{
                "type": "Ready", "status": ready.status, "reason": ready.reason, "message": ready.message,
                "observedGeneration": mirror["metadata"]["generation"],
            }],
        }});
        self.kubectl(&[
            "patch",
            &format!("gitmirrors.{GROUP}"),
            name,
            "--subresource=status",
            "--type",
            "merge",
            "--patch",
            &patch.to_string(),
        ])
        .map(|_| ())
    }

    /// The file for one object: ConfigMaps as they are, Secrets with every value encrypted.
    fn render(&self, object: &Value, mirror: &Value) -> String {
        let meta = json!({
            "name": object["metadata"]["name"], "namespace": object["metadata"]["namespace"],
        });
        let kind = object["kind"].as_str().unwrap_or_default();
        let doc = if kind == "Secret" {
            let key = mirror["metadata"]["uid"].as_str().unwrap_or("fixture").as_bytes().to_vec();
            let data: serde_json::Map<String, Value> = object["data"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    let b64 = v.as_str().unwrap_or_default();
                    let plain = base64::decode(b64).unwrap_or_default();
                    let written = match self.config.fault.as_str() {
                        "plaintext-secrets" => plain,
                        "base64-secrets" => b64.to_string(),
                        _ => encrypt(&key, plain.as_bytes()),
                    };
                    (k.clone(), Value::String(written))
                })
                .collect();
            json!({ "apiVersion": "v1", "kind": "Secret", "metadata": meta, "encryptedData": data })
        } else {
            json!({ "apiVersion": "v1", "kind": kind, "metadata": meta, "data": object["data"] })
        };
        format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default())
    }
}

/// Not real cryptography (a fixture): a keyed stream XOR, hex-encoded, so the file holds neither
/// the value nor its base64.
fn encrypt(key: &[u8], plain: &[u8]) -> String {
    let mut state: u64 =
        key.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    let mut out = String::from("fixture-enc:v1:");
    for b in plain {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push_str(&format!("{:02x}", b ^ (state as u8)));
    }
    out
}

/// Gitea's contents API for one repository (`/repos/{repo}/contents/{path}`).
struct Gitea<'a> {
    api: &'a str,
    repo: &'a str,
    token: &'a str,
    agent: &'a ureq::Agent,
}

impl Gitea<'_> {
    fn url(&self, file: &str) -> String {
        format!("{}/repos/{}/contents/{file}", self.api, self.repo)
    }

    fn auth(&self) -> String {
        format!("token {}", self.token)
    }

    fn answer(
        &self,
        what: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Value), String> {
        let mut response = response.map_err(|e| format!("{what}: {e}"))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// The file's blob sha and content, if it exists.
    fn read(&self, file: &str) -> Result<Option<(String, String)>, String> {
        let what = format!("GET {}", self.url(file));
        let (status, body) =
            self.answer(&what, self.agent.get(&self.url(file)).header("Authorization", self.auth()).call())?;
        match status {
            200 => {
                let sha = body["sha"].as_str().unwrap_or_default().to_string();
                let content = body["content"].as_str().and_then(base64::decode).unwrap_or_default();
                Ok(Some((sha, content)))
            }
            404 => Ok(None),
            other => Err(format!("{what}: HTTP {other}: {body}")),
        }
    }

    /// Creates the file (no sha) or updates it (its current sha): one commit.
    fn write(&self, file: &str, content: &str, sha: Option<&str>) -> Result<(), String> {
        let mut body =
            json!({ "content": base64::encode(content.as_bytes()), "message": format!("mirror {file}") });
        let request = match sha {
            Some(sha) => {
                body["sha"] = json!(sha);
                self.agent.put(&self.url(file))
            }
            None => self.agent.post(&self.url(file)),
        };
        let what = format!("writing {file}");
        let response = request
            .header("Authorization", self.auth())
            .header("Content-Type", "application/json")
            .send(body.to_string());
        match self.answer(&what, response)? {
            (200 | 201, _) => Ok(()),
            (status, body) => Err(format!("{what}: HTTP {status}: {body}")),
        }
    }

    fn delete(&self, file: &str, sha: &str) -> Result<(), String> {
        let body = json!({ "sha": sha, "message": format!("unmirror {file}") });
        let what = format!("deleting {file}");
        let response = self
            .agent
            .delete(&self.url(file))
            .header("Authorization", self.auth())
            .header("Content-Type", "application/json")
            .force_send_body()
            .send(body.to_string());
        match self.answer(&what, response)? {
            (200 | 204, _) => Ok(()),
            (status, body) => Err(format!("{what}: HTTP {status}: {body}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for text in ["", "a", "ab", "abc", "fixture-secret-é"] {
            assert_eq!(base64::decode(&base64::encode(text.as_bytes())).as_deref(), Some(text));
        }
        assert_eq!(base64::encode(b"token"), "dG9rZW4=");
    }

    #[test]
    fn encryption_hides_the_value_and_its_base64() {
        let value = "fixture-secret-qs1";
        let sealed = encrypt(b"uid-1", value.as_bytes());
        assert!(
            !sealed.contains(value)
                && !sealed.contains(base64::encode(value.as_bytes()).trim_end_matches('='))
        );
        assert_ne!(sealed, encrypt(b"uid-2", value.as_bytes()), "the key matters");
    }
}
