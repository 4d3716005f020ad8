//! `cargo xtask doctor`: is this machine ready to run the e2e?

use std::time::Duration;

use anyhow::Result;
use xshell::{cmd, Shell};

use crate::e2e::infra::port_forward;
use crate::{exec, paths, tools};

/// Check the tools, the Docker daemon, the kind cluster and the shared ports.
///
/// Prints one row per check. Exits 1 when a required tool is missing or the Docker daemon does
/// not answer, naming how to get each missing piece.
///
/// Examples:
///   cargo xtask doctor
///   cargo xtask doctor --cluster my-e2e --port 13000 --port 19090
///   cargo xtask doctor --definition test/operator/e2e.toml
///
/// It reads the e2e definition (test/e2e/e2e.toml when it exists): the tools its images, deploys
/// and flows need (the others are listed, not required), its cluster's name, and the local ports
/// of its port-forwards. With a definition whose cluster is `existing` (a shared cluster's kube
/// context), kind is not needed and the context is checked instead of a kind cluster.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// kind cluster to look for [default: $KIND_CLUSTER, else the definition's, else "e2e"]
    #[arg(long)]
    pub(crate) cluster: Option<String>,
    /// The e2e definition, for what it needs [default: test/e2e/e2e.toml, when it exists]
    #[arg(long, value_name = "FILE")]
    pub(crate) definition: Option<std::path::PathBuf>,
    /// Shared-infra localhost port to check (repeatable) [default: the definition's forwards,
    /// else 13000 19090]
    #[arg(long = "port")]
    pub(crate) ports: Vec<u16>,
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
        let path = self.definition.clone().unwrap_or_else(crate::e2e::definition::default_path);
        let def = if self.definition.is_some() || path.exists() {
            Some(crate::e2e::definition::load(&path)?)
        } else {
            None
        };
        let existing = def.as_ref().and_then(|d| d.existing.clone());
        let needed = def.as_ref().map(crate::e2e::flows::preflight::needed);
        let mut rows = Vec::new();
        for tool in tools::TOOLS {
            if existing.is_some() && tool.name == "kind" {
                rows.push(Row {
                    check: tool.name.into(),
                    status: Status::Info,
                    detail: "not needed: the definition's cluster is an existing one".into(),
                });
                continue;
            }
            let mut row = check_tool(sh, tool);
            if needed.as_ref().is_some_and(|n| !n.contains(&tool.name)) && row.status == Status::Missing {
                row.status = Status::Info;
                row.detail = format!("not needed by the definition ({})", row.detail);
            }
            rows.push(row);
        }
        if have("docker", &rows) {
            rows.push(check_docker_daemon(sh));
        }

        let cluster = self
            .cluster
            .or_else(|| sh.var("KIND_CLUSTER").ok().filter(|c| !c.is_empty()))
            .or_else(|| def.as_ref().map(|d| d.cluster.clone()))
            .unwrap_or_else(|| "e2e".to_string());
        rows.push(if let Some(context) = &existing {
            check_context(sh, context)
        } else if have("kind", &rows) {
            check_cluster(sh, &cluster)
        } else {
            Row {
                check: format!("cluster {cluster}"),
                status: Status::Info,
                detail: "unknown: kind is missing".into(),
            }
        });

        let ports: Vec<(u16, Option<String>)> = if !self.ports.is_empty() {
            self.ports.iter().map(|p| (*p, None)).collect()
        } else if let Some(d) = def.as_ref().filter(|d| !d.forwards.is_empty()) {
            d.forwards.iter().map(|f| (f.local, Some(f.name.clone()))).collect()
        } else {
            vec![(13000, None), (19090, None)]
        };
        for (port, forward) in ports {
            let mut row = check_port(port);
            if let Some(name) = forward {
                row.check = format!("port {port} ({name})");
            }
            rows.push(row);
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
        return Row {
            check,
            status: Status::Missing,
            detail: format!("not on PATH (it {}); {}", tool.purpose, tool.install),
        };
    };
    match crate::e2e::flows::preflight::check_tool(sh, tool, &path, &paths::logs_dir().join("doctor.log")) {
        Ok(version) if tool.version_args.is_empty() => Row { check, status: Status::Ok, detail: version },
        Ok(version) => Row { check, status: Status::Ok, detail: format!("{version} ({})", path.display()) },
        Err(_) if exec::cancelled() => Row { check, status: Status::Info, detail: "interrupted".into() },
        Err(problem) => {
            Row { check, status: Status::Missing, detail: format!("{problem} ({})", path.display()) }
        }
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

/// An existing cluster: its context must be in the kubeconfig (it is never created here).
fn check_context(sh: &Shell, context: &str) -> Row {
    let check = format!("context {context}");
    let result = exec::cmd(cmd!(sh, "kubectl config get-contexts --output name"))
        .timeout(Duration::from_secs(20))
        .log(paths::logs_dir().join("doctor.log"))
        .run();
    match result {
        Ok(out) if out.stdout.lines().any(|l| l.trim() == context) => {
            Row { check, status: Status::Ok, detail: "in the kubeconfig (an existing cluster)".into() }
        }
        Ok(_) => Row {
            check,
            status: Status::Missing,
            detail: "not in the kubeconfig: the definition's existing cluster cannot be reached".into(),
        },
        Err(e) => Row { check, status: Status::Missing, detail: first_line(&e.to_string()).to_string() },
    }
}

fn check_port(port: u16) -> Row {
    let check = format!("port {port}");
    match port_forward::holder(port) {
        port_forward::Holder::Free => Row { check, status: Status::Info, detail: "free".into() },
        port_forward::Holder::Ours(pid) => {
            Row { check, status: Status::Ok, detail: format!("our port-forward supervisor (pid {pid})") }
        }
        port_forward::Holder::Foreign(who) => {
            let holder = match who {
                Some((pid, name)) => format!("pid {pid} ({name})"),
                None => "another user's process".into(),
            };
            Row {
                check,
                status: Status::Info,
                detail: format!("held by {holder}, not ours: the e2e will not touch it; stop it or configure another port"),
            }
        }
    }
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
