//! `cargo xtask doctor`: is this machine ready to run the e2e?

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use xshell::{cmd, Shell};

use crate::{exec, paths, tools};

/// Check the tools, the Docker daemon, the kind cluster and the shared ports.
///
/// Prints one row per check. Exits 1 when a required tool is missing or the Docker daemon does
/// not answer, naming how to get each missing piece.
///
/// Examples:
///   cargo xtask doctor
///   cargo xtask doctor --cluster my-e2e --port 13000 --port 19090
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// kind cluster to look for [default: $KIND_CLUSTER, else "e2e"]
    #[arg(long)]
    pub cluster: Option<String>,
    /// Shared-infra localhost port to check (repeatable) [default: 13000 19090]
    #[arg(long = "port")]
    pub ports: Vec<u16>,
}

#[derive(Debug, PartialEq, Eq)]
enum Status {
    Ok,
    Missing,
    Info,
}

struct Row {
    check: String,
    status: Status,
    detail: String,
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        let mut rows = Vec::new();
        for tool in tools::TOOLS {
            rows.push(check_tool(sh, tool));
        }
        if have("docker", &rows) {
            rows.push(check_docker_daemon(sh));
        }

        let cluster = self
            .cluster
            .or_else(|| sh.var("KIND_CLUSTER").ok().filter(|c| !c.is_empty()))
            .unwrap_or_else(|| "e2e".to_string());
        rows.push(if have("kind", &rows) {
            check_cluster(sh, &cluster)
        } else {
            Row {
                check: format!("cluster {cluster}"),
                status: Status::Info,
                detail: "unknown: kind is missing".into(),
            }
        });

        let ports = if self.ports.is_empty() { vec![13000, 19090] } else { self.ports };
        for port in ports {
            rows.push(check_port(port));
        }

        let width = rows.iter().map(|r| r.check.len()).max().unwrap_or(5).max(5);
        println!("{:width$}  {:7}  DETAIL", "CHECK", "STATUS");
        for row in &rows {
            let status = match row.status {
                Status::Ok => "ok",
                Status::Missing => "MISSING",
                Status::Info => "info",
            };
            println!("{:width$}  {status:7}  {}", row.check, row.detail);
        }
        let missing: Vec<&str> =
            rows.iter().filter(|r| r.status == Status::Missing).map(|r| r.check.as_str()).collect();
        if missing.is_empty() {
            println!("\nready: everything the e2e needs is here");
            Ok(0)
        } else {
            println!("\nnot ready: missing {}", missing.join(", "));
            Ok(1)
        }
    }
}

fn check_tool(sh: &Shell, tool: &tools::Tool) -> Row {
    let check = tool.name.to_string();
    let Some(path) = exec::which(sh, tool.name) else {
        return Row { check, status: Status::Missing, detail: format!("not on PATH; {}", tool.install) };
    };
    if tool.version_args.is_empty() {
        return Row { check, status: Status::Ok, detail: path.display().to_string() };
    }
    let program = path.as_os_str();
    let args = tool.version_args;
    let result = exec::cmd(cmd!(sh, "{program} {args...}"))
        .timeout(Duration::from_secs(15))
        .log(paths::logs_dir().join("doctor.log"))
        .run();
    match result {
        Ok(out) => {
            let text = if out.stdout.trim().is_empty() { out.stderr } else { out.stdout };
            let version = text.lines().next().unwrap_or("").trim().to_string();
            Row { check, status: Status::Ok, detail: format!("{version} ({})", path.display()) }
        }
        Err(e) if e.is_cancelled() => Row { check, status: Status::Info, detail: "interrupted".into() },
        Err(e) => Row {
            check,
            status: Status::Missing,
            detail: format!(
                "found at {} but `{}` failed: {}",
                path.display(),
                args.join(" "),
                first_line(&e.to_string())
            ),
        },
    }
}

fn check_docker_daemon(sh: &Shell) -> Row {
    let check = "docker daemon".to_string();
    let format = "{{.ServerVersion}}";
    let result = exec::cmd(cmd!(sh, "docker info --format {format}"))
        .timeout(Duration::from_secs(20))
        .log(paths::logs_dir().join("doctor.log"))
        .run();
    match result {
        Ok(out) => Row { check, status: Status::Ok, detail: format!("server {}", out.stdout.trim()) },
        Err(e) => Row {
            check,
            status: Status::Missing,
            detail: format!(
                "not reachable: {}; start it (`systemctl start docker`) or check DOCKER_HOST and your access to the socket",
                last_line(&e.stderr_tail).unwrap_or("no answer")
            ),
        },
    }
}

fn check_cluster(sh: &Shell, cluster: &str) -> Row {
    let check = format!("cluster {cluster}");
    let result = exec::cmd(cmd!(sh, "kind get clusters"))
        .timeout(Duration::from_secs(20))
        .log(paths::logs_dir().join("doctor.log"))
        .run();
    match result {
        Ok(out) if out.stdout.lines().any(|l| l.trim() == cluster) => {
            Row { check, status: Status::Ok, detail: "exists (the e2e reuses it)".into() }
        }
        Ok(_) => {
            Row { check, status: Status::Info, detail: "absent (`cargo xtask setup` creates it)".into() }
        }
        Err(e) => {
            Row { check, status: Status::Info, detail: format!("unknown: {}", first_line(&e.to_string())) }
        }
    }
}

fn check_port(port: u16) -> Row {
    let check = format!("port {port}");
    if TcpListener::bind(("127.0.0.1", port)).is_ok() {
        return Row { check, status: Status::Info, detail: "free".into() };
    }
    if let Some(pid) = our_forward_pid(port) {
        return Row { check, status: Status::Ok, detail: format!("our port-forward (pid {pid})") };
    }
    let holder = match listener_owner(port) {
        Some((pid, name)) => format!("pid {pid} ({name})"),
        None => "another user's process".into(),
    };
    Row {
        check,
        status: Status::Info,
        detail: format!(
            "held by {holder}, not ours: the e2e will not touch it; stop it or configure another port"
        ),
    }
}

/// The pid recorded for our supervised forward on `port`, if that process is alive.
fn our_forward_pid(port: u16) -> Option<i32> {
    let pid_file: PathBuf = paths::port_forwards_dir().join(format!("{port}.pid"));
    let pid: i32 = std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    exec::pid_alive(pid).then_some(pid)
}

/// Who listens on `port` (Linux: /proc/net/tcp* inode, then the /proc/<pid>/fd holding it).
fn listener_owner(port: u16) -> Option<(u32, String)> {
    let port_hex = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9 && fields[1].ends_with(&port_hex) && fields[3] == "0A" {
                inodes.push(format!("socket:[{}]", fields[9]));
            }
        }
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                    let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                    return Some((pid, name.trim().to_string()));
                }
            }
        }
    }
    None
}

fn have(name: &str, rows: &[Row]) -> bool {
    rows.iter().any(|r| r.check == name && r.status == Status::Ok)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().rev().find(|l| !l.trim().is_empty())
}
