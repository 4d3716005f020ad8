//! The demo workload: a tiny HTTP service the e2e pipeline builds into `FROM scratch` images and
//! deploys. `GET /healthz` answers `ok`; `GET /metrics` serves Prometheus text with the run id as
//! a label, so metric queries can be filtered by run.
//!
//! Usage: e2e-demo [--listen ADDR] [--run-id ID] [--role NAME]
//! Environment: DEMO_LISTEN (default 0.0.0.0:8080), E2E_RUN_ID (default "none"), DEMO_ROLE.

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
                 e2e_demo_uptime_seconds{{{labels}}} {:.3}\n",
                state.requests.load(Ordering::Relaxed),
                state.started.elapsed().as_secs_f64()
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
    let state = Arc::new(State { cfg, started: Instant::now(), requests: AtomicU64::new(0) });
    for stream in listener.incoming().flatten() {
        let state = state.clone();
        std::thread::spawn(move || {
            let _ = handle(&state, stream);
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
