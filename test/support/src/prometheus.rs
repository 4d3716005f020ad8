//! A real Prometheus (Debian's `prometheus`) on a free loopback port, scraping given targets
//! every second; and the demo workload's binary, for targets. Both are stopped on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

pub struct PrometheusServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus scraping each `(address, run_id)` target, the run id as a target label.
    /// Does not wait for it to be ready.
    pub fn start(targets: &[(String, String)]) -> Result<PrometheusServer> {
        let binary =
            ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].into_iter().find(|p| Path::new(p).exists());
        let Some(binary) = binary else {
            bail!("these tests need Prometheus (Debian: `apt-get install prometheus`; .ci/run installs it)");
        };
        let dir = tempfile::Builder::new().prefix("prometheus-test-").tempdir()?;
        let mut config = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: demo\n    static_configs:\n");
        for (addr, run_id) in targets {
            config.push_str(&format!(
                "      - targets: [\"{addr}\"]\n        labels: {{ run_id: \"{run_id}\" }}\n"
            ));
        }
        std::fs::write(dir.path().join("prometheus.yml"), config)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log"))?)
            .spawn()
            .context("starting prometheus")?;
        Ok(PrometheusServer { child, port, _dir: dir })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo workload's binary, built (debug) if needed.
pub fn demo_binary() -> Result<PathBuf> {
    workspace_binary("e2e-demo")
}

/// The binary of a workspace package (named like the package), built (debug) if needed.
pub fn workspace_binary(package: &str) -> Result<PathBuf> {
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().and_then(Path::parent).context("workspace root")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", package])
        .current_dir(root)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("building {package}"))?;
    if !status.success() {
        bail!("cargo build -p {package} failed");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    Ok(target.join("debug").join(package))
}

/// A running demo process; killed on drop.
pub struct Demo {
    child: Child,
    pub addr: String,
}

impl Demo {
    pub fn start(binary: &Path, run_id: &str, role: &str, extra_env: &[(&str, &str)]) -> Result<Demo> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(binary);
        cmd.args(["--listen", &addr, "--run-id", run_id, "--role", role])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("starting e2e-demo")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            if std::time::Instant::now() > deadline {
                bail!("e2e-demo did not listen on {addr}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(Demo { child, addr })
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
