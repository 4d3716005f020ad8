//! The demo workload: a tiny HTTP service the e2e pipeline builds into `FROM scratch` images and
//! deploys. `GET /healthz` answers `ok`; `GET /metrics` serves Prometheus text with the run id as
//! a label, so metric queries can be filtered by run.
//!
//! Given the run's Git credentials and repository (DEMO_GITEA_API, DEMO_GIT_REPO, DEMO_GIT_TOKEN:
//! the secret the Gitea setup made), it also writes a status file into the repository every
//! DEMO_WRITE_INTERVAL_MS through Gitea's contents API, and counts the writes in
//! `e2e_demo_git_writes_total`, labelled with its run id.
//!
//! Usage: e2e-demo [--listen ADDR] [--run-id ID] [--role NAME]
//! Environment: DEMO_LISTEN (default 0.0.0.0:8080), E2E_RUN_ID (default "none"), DEMO_ROLE,
//! DEMO_GITEA_API, DEMO_GIT_REPO (org/repo), DEMO_GIT_TOKEN, DEMO_STATUS_FILE (default
//! e2e-status.txt), DEMO_WRITE_INTERVAL_MS (default 2000).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

struct Config {
    listen: String,
    run_id: String,
    role: String,
}

fn config() -> Result<Config, String> {
    let mut cfg = Config {
        listen: std::env::var("DEMO_LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".into()),
        run_id: std::env::var("E2E_RUN_ID").unwrap_or_else(|_| "none".into()),
        role: std::env::var("DEMO_ROLE").unwrap_or_else(|_| "service".into()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => cfg.listen = value()?,
            "--run-id" => cfg.run_id = value()?,
            "--role" => cfg.role = value()?,
            "-h" | "--help" => {
                println!("usage: e2e-demo [--listen ADDR] [--run-id ID] [--role NAME]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(cfg)
}

/// A Prometheus label value: `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct State {
    cfg: Config,
    started: Instant,
    requests: AtomicU64,
    git_writes: AtomicU64,
    git_errors: AtomicU64,
}

fn handle(state: &State, mut stream: TcpStream) -> std::io::Result<()> {
    let mut line = String::new();
    let mut reader = BufReader::new(stream.try_clone()?);
    reader.read_line(&mut line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    state.requests.fetch_add(1, Ordering::Relaxed);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, content_type, body) = match path {
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        "/metrics" => {
            let labels =
                format!("run_id=\"{}\",role=\"{}\"", label(&state.cfg.run_id), label(&state.cfg.role));
            let body = format!(
                "# HELP e2e_demo_up The demo workload is running.\n# TYPE e2e_demo_up gauge\ne2e_demo_up{{{labels}}} 1\n\
                 # HELP e2e_demo_requests_total HTTP requests served.\n# TYPE e2e_demo_requests_total counter\n\
                 e2e_demo_requests_total{{{labels}}} {}\n\
                 # HELP e2e_demo_uptime_seconds Seconds since start.\n# TYPE e2e_demo_uptime_seconds gauge\n\
                 e2e_demo_uptime_seconds{{{labels}}} {:.3}\n\
                 # HELP e2e_demo_git_writes_total Status file writes into the run's repository.\n\
                 # TYPE e2e_demo_git_writes_total counter\ne2e_demo_git_writes_total{{{labels}}} {}\n\
                 # HELP e2e_demo_git_write_errors_total Failed status file writes.\n\
                 # TYPE e2e_demo_git_write_errors_total counter\ne2e_demo_git_write_errors_total{{{labels}}} {}\n",
                state.requests.load(Ordering::Relaxed),
                state.started.elapsed().as_secs_f64(),
                state.git_writes.load(Ordering::Relaxed),
                state.git_errors.load(Ordering::Relaxed),
            );
            ("200 OK", "text/plain; version=0.0.4", body)
        }
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn main() {
    let cfg = match config() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("e2e-demo: {e}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(&cfg.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("e2e-demo: cannot listen on {}: {e}", cfg.listen);
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    println!("e2e-demo {} listening on {addr} for run {}", cfg.role, cfg.run_id);
    let state = Arc::new(State {
        cfg,
        started: Instant::now(),
        requests: AtomicU64::new(0),
        git_writes: AtomicU64::new(0),
        git_errors: AtomicU64::new(0),
    });
    if let Some(writer) = Writer::from_env(&state.cfg.run_id) {
        let state = state.clone();
        std::thread::spawn(move || writer.run(&state));
    }
    for stream in listener.incoming().flatten() {
        let state = state.clone();
        std::thread::spawn(move || {
            let _ = handle(&state, stream);
        });
    }
}

/// Writes the status file into the run's repository through Gitea's contents API.
struct Writer {
    api: String,
    repo: String,
    token: String,
    file: String,
    interval: std::time::Duration,
    run_id: String,
}

impl Writer {
    fn from_env(run_id: &str) -> Option<Writer> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Some(Writer {
            api: var("DEMO_GITEA_API")?.trim_end_matches('/').to_string(),
            repo: var("DEMO_GIT_REPO")?,
            token: var("DEMO_GIT_TOKEN")?,
            file: var("DEMO_STATUS_FILE").unwrap_or_else(|| "e2e-status.txt".into()),
            interval: std::time::Duration::from_millis(
                var("DEMO_WRITE_INTERVAL_MS").and_then(|v| v.parse().ok()).unwrap_or(2000),
            ),
            run_id: run_id.to_string(),
        })
    }

    fn run(&self, state: &State) {
        let mut n = 0u64;
        loop {
            n += 1;
            match self.write(n) {
                Ok(()) => {
                    state.git_writes.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    state.git_errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("e2e-demo: status write {n} failed: {e}");
                }
            }
            std::thread::sleep(self.interval);
        }
    }

    fn write(&self, n: u64) -> Result<(), String> {
        let url = format!("{}/repos/{}/contents/{}", self.api, self.repo, self.file);
        let auth = format!("token {}", self.token);
        let content = base64(format!("run {} write {n}\n", self.run_id).as_bytes());
        let (status, body) = http("GET", &url, &auth, None)?;
        let message = format!("e2e-demo: status {n} of run {}", self.run_id);
        let (status, body) = match status {
            200 => {
                let sha = json_string(&body, "sha").ok_or("no sha in the contents answer")?;
                let payload = format!(r#"{{"content":"{content}","sha":"{sha}","message":"{message}"}}"#);
                http("PUT", &url, &auth, Some(&payload))?
            }
            404 => {
                let payload = format!(r#"{{"content":"{content}","message":"{message}"}}"#);
                http("POST", &url, &auth, Some(&payload))?
            }
            other => return Err(format!("GET {url}: {other}: {body}")),
        };
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("writing {}: {status}: {body}", self.file))
        }
    }
}

/// The first `"key":"value"` string in a JSON text (enough for Gitea's `sha`).
fn json_string(body: &str, key: &str) -> Option<String> {
    let at = body.find(&format!("\"{key}\""))?;
    let rest = body[at + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
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

/// A minimal HTTP/1.1 client over plain TCP (std only): one request, `Connection: close`.
fn http(method: &str, url: &str, auth: &str, body: Option<&str>) -> Result<(u16, String), String> {
    use std::io::Read;
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// is supported"))?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut stream = TcpStream::connect(host).map_err(|e| format!("{method} {url}: {e}"))?;
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("{method} {url}: {e}"))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| format!("{method} {url}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, payload) =
        text.split_once("\r\n\r\n").ok_or_else(|| format!("{method} {url}: malformed answer"))?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    Ok((status, if chunked { dechunk(payload) } else { payload.to_string() }))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_and_chunks() {
        assert_eq!(super::json_string(r#"{"name":"f","sha" : "abc1"}"#, "sha").as_deref(), Some("abc1"));
        assert_eq!(super::dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
