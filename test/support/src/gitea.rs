//! A Gitea test server: the API endpoints the e2e uses, with Gitea's own status codes (1.22-1.24,
//! `routers/api/v1`: 422 for an existing org, 409 for an existing repository, 400 for token
//! problems, Basic auth required for tokens, `sha1` returned once, token scopes),
//! repositories stored as real bare git repositories and served over a real `sshd` on a free
//! loopback port. Each deploy key may reach only its own repository (a forced command checks
//! it), so wrong credentials are really refused.
//!
//! It can fail the next N requests with 500, or be down (connections closed unanswered).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

pub const ADMIN_USER: &str = "giteaadmin";
pub const ADMIN_PASSWORD: &str = "admin-pw-for-tests-0451";

const SCOPES: &[&str] = &[
    "activitypub",
    "admin",
    "issue",
    "misc",
    "notification",
    "organization",
    "package",
    "repository",
    "user",
];

#[derive(Debug, Clone)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub sha1: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DeployKey {
    pub id: i64,
    pub repo: String,
    pub title: String,
    pub key: String,
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub struct Repo {
    pub id: i64,
    pub org: String,
    pub name: String,
    pub description: String,
}

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// "basic", "token" or "none".
    pub auth: &'static str,
}

#[derive(Default)]
struct State {
    next_id: i64,
    orgs: Vec<String>,
    repos: Vec<Repo>,
    tokens: Vec<Token>,
    keys: Vec<DeployKey>,
    log: Vec<Logged>,
}

struct Shared {
    state: Mutex<State>,
    fail_next: AtomicU32,
    down: AtomicBool,
    stop: AtomicBool,
    root: PathBuf,
    http_port: u16,
    ssh_port: u16,
}

/// A running server; stopped (sshd included) on drop.
pub struct GiteaServer {
    shared: Arc<Shared>,
    sshd: Option<Child>,
    _dir: tempfile::TempDir,
}

impl GiteaServer {
    /// Starts the API on a free loopback port, and sshd on another.
    pub fn start() -> Result<GiteaServer> {
        let dir = tempfile::Builder::new().prefix("gitea-test-").tempdir()?;
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("repos"))?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let http_port = listener.local_addr()?.port();
        let ssh_port = free_port()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { next_id: 1, ..State::default() }),
            fail_next: AtomicU32::new(0),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            root: root.clone(),
            http_port,
            ssh_port,
        });
        write_serve_script(&root)?;
        std::fs::write(root.join("authorized_keys"), "")?;
        let sshd = start_sshd(&root, ssh_port)?;
        let accept = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = accept.clone();
                std::thread::spawn(move || {
                    let _ = handle(&shared, stream);
                });
            }
        });
        Ok(GiteaServer { shared, sshd: Some(sshd), _dir: dir })
    }

    /// `http://127.0.0.1:PORT/api/v1`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1", self.shared.http_port)
    }

    /// `127.0.0.1:PORT` of the HTTP server.
    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.shared.http_port)
    }

    /// `127.0.0.1:PORT` of the SSH server.
    pub fn ssh_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.shared.ssh_port)
    }

    /// The environment `cargo xtask gitea` needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("E2E_GITEA_API_URL", self.api_url()),
            ("E2E_GITEA_ADMIN_USER", ADMIN_USER.into()),
            ("E2E_GITEA_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
            ("E2E_GITEA_SSH", self.ssh_endpoint()),
            ("E2E_GITEA_SSH_USER", ssh_user()),
            ("E2E_GITEA_SSH_CLUSTER_HOST", String::new()),
            ("E2E_GITEA_READY_TIMEOUT", "5".into()),
        ]
    }

    /// What a restarted Gitea pod with an emptyDir looks like: every org, repository, token and
    /// deploy key gone, and sshd back on the same port with new host keys.
    pub fn restart_with_empty_data(&mut self) -> Result<()> {
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
        if let Ok(mut state) = self.shared.state.lock() {
            state.orgs.clear();
            state.repos.clear();
            state.tokens.clear();
            state.keys.clear();
        }
        let root = &self.shared.root;
        let _ = std::fs::remove_dir_all(root.join("repos"));
        std::fs::create_dir_all(root.join("repos"))?;
        std::fs::write(root.join("authorized_keys"), "")?;
        for key in ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"] {
            let _ = std::fs::remove_file(root.join(key));
        }
        self.sshd = Some(start_sshd(root, self.shared.ssh_port)?);
        Ok(())
    }

    /// The next `n` requests answer 500.
    pub fn fail_next(&self, n: u32) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// While down, connections are closed without an answer.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    pub fn repos(&self) -> Vec<Repo> {
        self.shared.state.lock().map(|s| s.repos.clone()).unwrap_or_default()
    }
    pub fn tokens(&self) -> Vec<Token> {
        self.shared.state.lock().map(|s| s.tokens.clone()).unwrap_or_default()
    }
    pub fn deploy_keys(&self) -> Vec<DeployKey> {
        self.shared.state.lock().map(|s| s.keys.clone()).unwrap_or_default()
    }
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.state.lock().map(|s| s.log.clone()).unwrap_or_default()
    }
    /// The bare repository of `org/name` on disk.
    pub fn repo_path(&self, org: &str, name: &str) -> PathBuf {
        self.shared.root.join("repos").join(org).join(format!("{name}.git"))
    }
}

impl Drop for GiteaServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.shared.http_port));
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
    }
}

fn ssh_user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "root".into())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------------
// sshd.
// ---------------------------------------------------------------------------------------------

fn write_serve_script(root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Forced command for every deploy key: $1 the one repository it may reach, $2 rw|ro.
    let script = format!(
        r#"#!/bin/sh
set -f
cmd="$SSH_ORIGINAL_COMMAND"
verb="${{cmd%% *}}"
path="${{cmd#* }}"; path="${{path#\'}}"; path="${{path%\'}}"; path="${{path#/}}"
case "$verb" in git-upload-pack|git-receive-pack) ;; *) echo "only git is served here" >&2; exit 1;; esac
if [ "$path" != "$1" ]; then echo "access denied: this deploy key is not for $path" >&2; exit 1; fi
if [ "$verb" = git-receive-pack ] && [ "$2" = ro ]; then echo "access denied: read-only deploy key" >&2; exit 1; fi
exec "$verb" '{}'/repos/"$path"
"#,
        root.display()
    );
    let path = root.join("serve.sh");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn start_sshd(root: &Path, port: u16) -> Result<Child> {
    let sshd = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"].into_iter().map(PathBuf::from).find(|p| p.exists());
    let Some(sshd) = sshd else {
        bail!("the Gitea test server needs sshd (Debian: `apt-get install openssh-server`; .ci/run installs it)");
    };
    let host_key = root.join("ssh_host_ed25519_key");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&host_key)
        .stdin(Stdio::null())
        .status()
        .context("running ssh-keygen for the test sshd's host key")?;
    if !status.success() {
        bail!("ssh-keygen failed for the test sshd's host key");
    }
    // The privilege separation directory sshd insists on.
    let _ = std::fs::create_dir_all("/run/sshd");
    let config = root.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\nStrictModes no\n\
             UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin forced-commands-only\nAllowTcpForwarding no\nX11Forwarding no\nLogLevel ERROR\n",
            host_key.display(),
            root.join("sshd.pid").display(),
            root.join("authorized_keys").display()
        ),
    )?;
    let mut child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join("sshd.log"))?)
        .spawn()
        .context("starting the test sshd")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(root.join("sshd.log")).unwrap_or_default();
            bail!("the test sshd exited ({status}): {log}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the test sshd did not listen on port {port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

fn write_authorized_keys(shared: &Shared, state: &State) {
    let serve = shared.root.join("serve.sh");
    let mut lines = String::new();
    for k in &state.keys {
        let mode = if k.read_only { "ro" } else { "rw" };
        lines.push_str(&format!(
            "command=\"{} {}.git {mode}\",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty {}\n",
            serve.display(),
            k.repo,
            k.key
        ));
    }
    let tmp = shared.root.join("authorized_keys.tmp");
    if std::fs::write(&tmp, lines).is_ok() {
        let _ = std::fs::rename(&tmp, shared.root.join("authorized_keys"));
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP.
// ---------------------------------------------------------------------------------------------

struct Request {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request(stream: &mut TcpStream) -> Result<Request> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(Request { method, path, headers, body })
}

fn respond(stream: &mut TcpStream, status: u16, body: &Value) -> Result<()> {
    let text = if body.is_null() { String::new() } else { body.to_string() };
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        _ => "Internal Server Error",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()?;
    Ok(())
}

fn handle(shared: &Shared, mut stream: TcpStream) -> Result<()> {
    if shared.down.load(Ordering::SeqCst) {
        return Ok(()); // closed unanswered
    }
    let req = read_request(&mut stream)?;
    let auth = authenticate(shared, &req);
    let (status, body) = if shared.fail_next.load(Ordering::SeqCst) > 0 {
        shared.fail_next.fetch_sub(1, Ordering::SeqCst);
        (500, json!({ "message": "injected failure", "url": "" }))
    } else {
        route(shared, &req, &auth)
    };
    if let Ok(mut state) = shared.state.lock() {
        let kind = match auth {
            Auth::Basic => "basic",
            Auth::Token(_) => "token",
            Auth::None => "none",
            Auth::Bad => "bad",
        };
        state.log.push(Logged { method: req.method.clone(), path: req.path.clone(), status, auth: kind });
    }
    respond(&mut stream, status, &body)
}

enum Auth {
    None,
    Bad,
    Basic,
    Token(Vec<String>),
}

fn authenticate(shared: &Shared, req: &Request) -> Auth {
    let Some(header) = req.headers.get("authorization") else { return Auth::None };
    let (kind, value) = header.split_once(' ').unwrap_or((header.as_str(), ""));
    match kind.to_ascii_lowercase().as_str() {
        "basic" => {
            let decoded = crate::base64::decode(value).unwrap_or_default();
            if decoded == format!("{ADMIN_USER}:{ADMIN_PASSWORD}") {
                Auth::Basic
            } else {
                Auth::Bad
            }
        }
        "token" | "bearer" => {
            let state = match shared.state.lock() {
                Ok(s) => s,
                Err(_) => return Auth::Bad,
            };
            match state.tokens.iter().find(|t| t.sha1 == value) {
                Some(t) => Auth::Token(t.scopes.clone()),
                None => Auth::Bad,
            }
        }
        _ => Auth::Bad,
    }
}

fn msg(status: u16, message: &str) -> (u16, Value) {
    (status, json!({ "message": message, "url": "https://gitea.example/api/swagger" }))
}

/// Token scope check (Basic auth is not scope-checked). `write` implies `read`.
fn scope_ok(auth: &Auth, method: &str, category: &str) -> Result<(), (u16, Value)> {
    match auth {
        Auth::None => Err(msg(401, "token is required")),
        Auth::Bad => Err(msg(401, "user does not exist")),
        Auth::Basic => Ok(()),
        Auth::Token(scopes) => {
            let need_write = method != "GET";
            let ok = scopes.iter().any(|s| {
                s == "all"
                    || *s == format!("write:{category}")
                    || (!need_write && *s == format!("read:{category}"))
            });
            if ok {
                Ok(())
            } else {
                let level = if need_write { "write" } else { "read" };
                Err(msg(
                    403,
                    &format!("token does not have at least one of required scope(s): [{level}:{category}]"),
                ))
            }
        }
    }
}

fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn route(shared: &Shared, req: &Request, auth: &Auth) -> (u16, Value) {
    let path = req.path.split('?').next().unwrap_or("");
    let Some(rest) = path.strip_prefix("/api/v1") else { return msg(404, "not found") };
    let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let m = req.method.as_str();
    let Ok(mut state) = shared.state.lock() else { return msg(500, "poisoned") };
    let r = match (m, segs.as_slice()) {
        ("GET", ["version"]) => Ok((200, json!({ "version": "1.22.6-test" }))),
        // The signed-in user (`routers/api/v1/user/user.go` GetAuthenticatedUser).
        ("GET", ["user"]) => match auth {
            Auth::Basic => Ok((200, json!({ "login": ADMIN_USER, "is_admin": true }))),
            Auth::Token(_) => Ok((200, json!({ "login": ADMIN_USER }))),
            Auth::None => Err(msg(401, "token is required")),
            Auth::Bad => Err(msg(401, "user does not exist")),
        },
        ("POST", ["orgs"]) => create_org(&mut state, auth, &body),
        ("GET", ["orgs", org]) => scope_ok(auth, m, "organization").and_then(|_| {
            if state.orgs.iter().any(|o| o == org) {
                Ok((200, json!({ "id": 1, "username": org, "name": org })))
            } else {
                Err(msg(404, "org does not exist"))
            }
        }),
        ("POST", ["orgs", org, "repos"]) => create_repo(shared, &mut state, auth, org, &body),
        ("GET", ["repos", org, name]) => scope_ok(auth, m, "repository").and_then(|_| {
            find_repo(&state, org, name).map(|r| (200, repo_json(shared, &r))).ok_or_else(|| msg(404, "repo not found"))
        }),
        ("DELETE", ["repos", org, name]) => scope_ok(auth, m, "repository").and_then(|_| {
            let full = format!("{org}/{name}");
            if find_repo(&state, org, name).is_none() {
                return Err(msg(404, "repo not found"));
            }
            state.repos.retain(|r| format!("{}/{}", r.org, r.name) != full);
            state.keys.retain(|k| k.repo != full);
            let _ = std::fs::remove_dir_all(shared.root.join("repos").join(org).join(format!("{name}.git")));
            write_authorized_keys(shared, &state);
            Ok((204, Value::Null))
        }),
        ("GET", ["repos", org, name, "keys"]) => scope_ok(auth, m, "repository").and_then(|_| {
            let full = format!("{org}/{name}");
            find_repo(&state, org, name).ok_or_else(|| msg(404, "repo not found"))?;
            let keys: Vec<Value> = state.keys.iter().filter(|k| k.repo == full).map(key_json).collect();
            Ok((200, Value::Array(keys)))
        }),
        ("POST", ["repos", org, name, "keys"]) => add_key(shared, &mut state, auth, org, name, &body),
        ("DELETE", ["repos", org, name, "keys", id]) => scope_ok(auth, m, "repository").and_then(|_| {
            let full = format!("{org}/{name}");
            let id: i64 = id.parse().map_err(|_| msg(404, "not found"))?;
            match state.keys.iter().position(|k| k.id == id) {
                Some(i) if state.keys[i].repo == full => {
                    state.keys.remove(i);
                    write_authorized_keys(shared, &state);
                    Ok((204, Value::Null))
                }
                Some(_) => Err(msg(403, "You do not have access to this key")),
                None => Err(msg(404, "not found")),
            }
        }),
        (m @ ("GET" | "POST" | "PUT" | "DELETE"), ["repos", org, name, "contents", file @ ..]) => {
            contents(shared, &state, auth, m, (org, name, &file.join("/")), &body)
        }
        ("POST", ["users", user, "tokens"]) => create_token(&mut state, auth, user, &body),
        ("GET", ["users", user, "tokens"]) => basic_self(auth, user).map(|_| {
            let list: Vec<Value> = state
                .tokens
                .iter()
                .map(|t| json!({ "id": t.id, "name": t.name, "scopes": t.scopes, "token_last_eight": &t.sha1[t.sha1.len() - 8..] }))
                .collect();
            (200, Value::Array(list))
        }),
        ("DELETE", ["users", user, "tokens", token]) => basic_self(auth, user).and_then(|_| {
            let matches: Vec<usize> = state
                .tokens
                .iter()
                .enumerate()
                .filter(|(_, t)| match token.parse::<i64>() {
                    Ok(id) => t.id == id,
                    Err(_) => t.name == *token,
                })
                .map(|(i, _)| i)
                .collect();
            match matches.as_slice() {
                [] => Err(msg(404, "access token not found")),
                [i] => {
                    state.tokens.remove(*i);
                    Ok((204, Value::Null))
                }
                _ => Err(msg(422, &format!("multiple matches for token name '{token}'"))),
            }
        }),
        _ => Err(msg(404, "not found")),
    };
    match r {
        Ok(ok) => ok,
        Err(err) => err,
    }
}

/// Token endpoints: Basic auth only (a token is refused), for the user itself.
fn basic_self(auth: &Auth, user: &str) -> Result<(), (u16, Value)> {
    match auth {
        Auth::Basic if user == ADMIN_USER => Ok(()),
        Auth::Basic => Err(msg(403, "doer should be the site admin or the same user")),
        _ => Err(msg(401, "auth required")),
    }
}

fn create_org(state: &mut State, auth: &Auth, body: &Value) -> Result<(u16, Value), (u16, Value)> {
    scope_ok(auth, "POST", "organization")?;
    let name = body["username"].as_str().unwrap_or("");
    if name.is_empty() {
        return Err(msg(422, "UserName: Required"));
    }
    if !valid_name(name, 40) {
        return Err(msg(422, &format!("name is invalid [{name}]")));
    }
    if state.orgs.iter().any(|o| o.eq_ignore_ascii_case(name)) {
        return Err(msg(422, &format!("user already exists [name: {name}]")));
    }
    state.orgs.push(name.to_string());
    Ok((201, json!({ "id": state.orgs.len(), "username": name, "name": name })))
}

fn find_repo(state: &State, org: &str, name: &str) -> Option<Repo> {
    state.repos.iter().find(|r| r.org == org && r.name.eq_ignore_ascii_case(name)).cloned()
}

fn repo_json(shared: &Shared, r: &Repo) -> Value {
    json!({
        "id": r.id, "name": r.name, "full_name": format!("{}/{}", r.org, r.name), "description": r.description,
        "private": true, "default_branch": "main",
        "clone_url": format!("http://127.0.0.1:{}/{}/{}.git", shared.http_port, r.org, r.name),
        "ssh_url": format!("ssh://{}@127.0.0.1:{}/{}/{}.git", ssh_user(), shared.ssh_port, r.org, r.name),
    })
}

fn create_repo(
    shared: &Shared,
    state: &mut State,
    auth: &Auth,
    org: &str,
    body: &Value,
) -> Result<(u16, Value), (u16, Value)> {
    scope_ok(auth, "POST", "organization")?;
    if !state.orgs.iter().any(|o| o == org) {
        return Err(msg(404, "org does not exist"));
    }
    let name = body["name"].as_str().unwrap_or("");
    if name.is_empty() {
        return Err(msg(422, "Name: Required"));
    }
    if !valid_name(name, 100) {
        return Err(msg(422, &format!("name is invalid [{name}]")));
    }
    if find_repo(state, org, name).is_some() {
        return Err(msg(409, "The repository with the same name already exists."));
    }
    let branch = body["default_branch"].as_str().unwrap_or("main");
    let path = shared.root.join("repos").join(org).join(format!("{name}.git"));
    init_bare(&path, branch, body["auto_init"].as_bool().unwrap_or(false), name)
        .map_err(|e| msg(500, &e.to_string()))?;
    let repo = Repo {
        id: state.next_id,
        org: org.into(),
        name: name.into(),
        description: body["description"].as_str().unwrap_or("").into(),
    };
    state.next_id += 1;
    state.repos.push(repo.clone());
    Ok((201, repo_json(shared, &repo)))
}

/// Runs git on a bare repository (optionally with its own index file); stdout trimmed.
fn git_at(path: &Path, args: &[&str], stdin: Option<&str>, index: Option<&Path>) -> Result<String> {
    Ok(git_raw(path, args, stdin, index)?.trim_end_matches('\n').to_string())
}

/// Runs git on a bare repository; stdout as it is (a blob's exact content).
fn git_raw(path: &Path, args: &[&str], stdin: Option<&str>, index: Option<&Path>) -> Result<String> {
    let mut cmd = Command::new("git");
    cmd.arg("--git-dir").arg(path).args(args);
    if let Some(index) = index {
        cmd.env("GIT_INDEX_FILE", index);
    }
    let mut child = cmd
        .env("GIT_AUTHOR_NAME", "gitea")
        .env("GIT_AUTHOR_EMAIL", "gitea@test.invalid")
        .env("GIT_COMMITTER_NAME", "gitea")
        .env("GIT_COMMITTER_EMAIL", "gitea@test.invalid")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A real bare repository; with `auto_init`, one commit holding a README on `branch`.
fn init_bare(path: &Path, branch: &str, auto_init: bool, name: &str) -> Result<()> {
    std::fs::create_dir_all(path)?;
    let git = |args: &[&str], stdin: Option<&str>| git_at(path, args, stdin, None);
    git(&["init", "--quiet", "--bare", &format!("--initial-branch={branch}")], None)?;
    if auto_init {
        let blob = git(&["hash-object", "-w", "--stdin"], Some(&format!("# {name}\n")))?;
        let tree = git(&["mktree"], Some(&format!("100644 blob {blob}\tREADME.md\n")))?;
        let commit = git(&["commit-tree", &tree, "-m", "Initial commit"], None)?;
        git(&["update-ref", &format!("refs/heads/{branch}"), &commit], None)?;
    }
    Ok(())
}

/// The blob sha and content of `file` on `main`, if it exists.
fn read_file(repo: &Path, file: &str) -> Option<(String, String)> {
    let line = git_at(repo, &["ls-tree", "main", "--", file], None, None).ok()?;
    let sha = line.split_whitespace().nth(2)?.to_string();
    let content = git_raw(repo, &["cat-file", "blob", &sha], None, None).ok()?;
    Some((sha, content))
}

/// Commits `content` as `file` on `main` (a real commit: clones see it). Returns (blob, commit).
fn write_file(repo: &Path, file: &str, content: &str, message: &str) -> Result<(String, String)> {
    let index = repo.join(format!("index-{}", std::process::id()));
    let blob = git_at(repo, &["hash-object", "-w", "--stdin"], Some(content), None)?;
    git_at(repo, &["read-tree", "main"], None, Some(&index))?;
    git_at(
        repo,
        &["update-index", "--add", "--cacheinfo", &format!("100644,{blob},{file}")],
        None,
        Some(&index),
    )?;
    let tree = git_at(repo, &["write-tree"], None, Some(&index))?;
    let commit = git_at(repo, &["commit-tree", &tree, "-p", "main", "-m", message], None, None)?;
    git_at(repo, &["update-ref", "refs/heads/main", &commit], None, None)?;
    let _ = std::fs::remove_file(&index);
    Ok((blob, commit))
}

/// Commits the removal of `file` from `main`. Returns the commit.
fn remove_file(repo: &Path, file: &str, message: &str) -> Result<String> {
    let index = repo.join(format!("index-rm-{}", std::process::id()));
    git_at(repo, &["read-tree", "main"], None, Some(&index))?;
    // Mode 0 removes the entry (`git update-index --index-info`); a bare repository has no work
    // tree for `--force-remove`.
    let line = format!("0 {}\t{file}\n", "0".repeat(40));
    git_at(repo, &["update-index", "--index-info"], Some(&line), Some(&index))?;
    let tree = git_at(repo, &["write-tree"], None, Some(&index))?;
    let commit = git_at(repo, &["commit-tree", &tree, "-p", "main", "-m", message], None, None)?;
    git_at(repo, &["update-ref", "refs/heads/main", &commit], None, None)?;
    let _ = std::fs::remove_file(&index);
    Ok(commit)
}

fn contents_json(file: &str, sha: &str, content: &str) -> Value {
    json!({
        "name": file.rsplit('/').next().unwrap_or(file), "path": file, "sha": sha, "type": "file",
        "size": content.len(), "encoding": "base64", "content": crate::base64::encode(content.as_bytes()),
    })
}

/// `GET|POST|PUT /repos/{o}/{r}/contents/{path}` (Gitea: 422 when the file exists on create or
/// the sha does not match on update, 404 for a missing file or repository).
fn contents(
    shared: &Shared,
    state: &State,
    auth: &Auth,
    method: &str,
    (org, name, file): (&str, &str, &str),
    body: &Value,
) -> Result<(u16, Value), (u16, Value)> {
    scope_ok(auth, method, "repository")?;
    find_repo(state, org, name).ok_or_else(|| msg(404, "repo not found"))?;
    if file.is_empty() || file.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(msg(422, &format!("path is invalid [path: {file}]")));
    }
    let repo = shared.root.join("repos").join(org).join(format!("{name}.git"));
    let existing = read_file(&repo, file);
    if method == "GET" {
        return match existing {
            Some((sha, content)) => Ok((200, contents_json(file, &sha, &content))),
            None => Err(msg(404, &format!("object does not exist [id: , rel_path: {file}]"))),
        };
    }
    if method == "DELETE" {
        return delete_file(&repo, file, existing, body);
    }
    let encoded = body["content"].as_str().ok_or_else(|| msg(422, "Content: Required"))?;
    let content = crate::base64::decode(encoded).ok_or_else(|| msg(422, "content is not valid base64"))?;
    match (method, &existing) {
        ("POST", Some(_)) => return Err(msg(422, &format!("repository file already exists [path: {file}]"))),
        ("PUT", None) => return Err(msg(404, &format!("repository file does not exist [path: {file}]"))),
        ("PUT", Some((sha, _))) if body["sha"].as_str() != Some(sha.as_str()) => {
            return Err(msg(
                422,
                &format!(
                    "sha does not match [given: {}, expected: {sha}]",
                    body["sha"].as_str().unwrap_or("")
                ),
            ))
        }
        _ => {}
    }
    let message = body["message"].as_str().unwrap_or("update via API");
    let (blob, commit) = write_file(&repo, file, &content, message).map_err(|e| msg(500, &e.to_string()))?;
    let status = if method == "POST" { 201 } else { 200 };
    Ok((
        status,
        json!({ "content": contents_json(file, &blob, &content), "commit": { "sha": commit, "message": message } }),
    ))
}

/// `DELETE /repos/{o}/{r}/contents/{path}` (Gitea `routers/api/v1/repo/file.go` DeleteFile:
/// `sha` is required, 404 for a missing file, 422 when the sha does not match; 200 with
/// `content: null` and the commit).
fn delete_file(
    repo: &Path,
    file: &str,
    existing: Option<(String, String)>,
    body: &Value,
) -> Result<(u16, Value), (u16, Value)> {
    let given = body["sha"].as_str().ok_or_else(|| msg(422, "SHA: Required"))?;
    let Some((sha, _)) = existing else {
        return Err(msg(404, &format!("repository file does not exist [path: {file}]")));
    };
    if given != sha {
        return Err(msg(422, &format!("sha does not match [given: {given}, expected: {sha}]")));
    }
    let message = body["message"].as_str().unwrap_or("delete via API");
    let commit = remove_file(repo, file, message).map_err(|e| msg(500, &e.to_string()))?;
    Ok((200, json!({ "content": null, "commit": { "sha": commit, "message": message } })))
}

fn key_json(k: &DeployKey) -> Value {
    json!({ "id": k.id, "key_id": k.id, "key": k.key, "title": k.title, "read_only": k.read_only,
            "fingerprint": format!("SHA256:fake{}", k.id), "url": "", "created_at": "2026-01-01T00:00:00Z" })
}

fn add_key(
    shared: &Shared,
    state: &mut State,
    auth: &Auth,
    org: &str,
    name: &str,
    body: &Value,
) -> Result<(u16, Value), (u16, Value)> {
    scope_ok(auth, "POST", "repository")?;
    let repo = find_repo(state, org, name).ok_or_else(|| msg(404, "repo not found"))?;
    let full = format!("{}/{}", repo.org, repo.name);
    let title = body["title"].as_str().unwrap_or("");
    let key = body["key"].as_str().unwrap_or("").trim();
    if title.is_empty() {
        return Err(msg(422, "Title: Required"));
    }
    let fields: Vec<&str> = key.split_whitespace().collect();
    let allowed =
        ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];
    if key.lines().count() != 1 {
        return Err(msg(422, "Invalid key content: only a single line with a single key please"));
    }
    if fields.len() < 2 || crate::base64::decode(fields[1]).is_none() && fields[1].len() < 16 {
        return Err(msg(422, "Invalid key content: Unable to verify key content"));
    }
    if !allowed.contains(&fields[0]) {
        return Err(msg(422, &format!("Invalid key content: key type is not allowed: {}", fields[0])));
    }
    let body_of = |k: &str| k.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let key_body = body_of(key);
    if state.keys.iter().any(|k| k.repo == full && body_of(&k.key) == key_body) {
        return Err(msg(422, "This key has already been added to this repository"));
    }
    if state.keys.iter().any(|k| k.repo == full && k.title == title) {
        return Err(msg(422, "Key title has been used"));
    }
    let k = DeployKey {
        id: state.next_id,
        repo: full,
        title: title.into(),
        key: key_body,
        read_only: body["read_only"].as_bool().unwrap_or(true),
    };
    state.next_id += 1;
    state.keys.push(k.clone());
    write_authorized_keys(shared, state);
    Ok((201, key_json(&k)))
}

fn create_token(
    state: &mut State,
    auth: &Auth,
    user: &str,
    body: &Value,
) -> Result<(u16, Value), (u16, Value)> {
    basic_self(auth, user)?;
    let name = body["name"].as_str().unwrap_or("");
    if name.is_empty() {
        return Err(msg(422, "Name: Required"));
    }
    if state.tokens.iter().any(|t| t.name == name) {
        return Err(msg(400, "access token name has been used already"));
    }
    let scopes: Vec<String> = body["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect();
    if scopes.is_empty() {
        return Err(msg(400, "access token must have a scope"));
    }
    for s in &scopes {
        let valid = s == "all"
            || s == "public-only"
            || s.split_once(':')
                .is_some_and(|(level, cat)| (level == "read" || level == "write") && SCOPES.contains(&cat));
        if !valid {
            return Err(msg(
                400,
                &format!("invalid access token scope provided: invalid access token scope: {s}"),
            ));
        }
    }
    let mut bytes = [0u8; 20];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    let sha1: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let token = Token { id: state.next_id, name: name.into(), sha1: sha1.clone(), scopes: scopes.clone() };
    state.next_id += 1;
    state.tokens.push(token.clone());
    Ok((
        201,
        json!({ "id": token.id, "name": name, "sha1": sha1, "token_last_eight": &sha1[32..], "scopes": scopes }),
    ))
}
