//! `cargo xtask run-context`: a run's context for shells and test runners (the context itself is
//! `run_context`, which knows no definition; this command reads one for the service endpoints).

use std::path::PathBuf;

use anyhow::Result;
use xshell::Shell;

use crate::e2e::context::{Request, RunContext};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Env,
    Json,
}

/// Print a run context for shells and test runners.
///
/// Values come from the flags, else the E2E_* environment (validated), else are generated. A bad
/// run id is refused with the rule before anything else happens.
///
/// Examples:
///   eval "$(cargo xtask run-context --flow full --format env)"
///   cargo xtask run-context --run-id pr1234-a --flow quickstart-helm --format json
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Flow the run belongs to (full, quickstart-helm, quickstart-manifest)
    #[arg(long)]
    pub(crate) flow: Option<String>,
    /// Use this run id instead of $E2E_RUN_ID or a generated one
    #[arg(long)]
    pub(crate) run_id: Option<String>,
    /// `env`: `export K='v'` lines for eval; `json`: one object
    #[arg(long, value_enum, default_value = "env")]
    pub(crate) format: Format,
    /// The e2e definition whose port-forwards give the service endpoints [default: test/e2e/e2e.toml]
    #[arg(long, value_name = "FILE")]
    pub(crate) definition: Option<PathBuf>,
}

impl Args {
    pub fn run(self, sh: &Shell) -> Result<i32> {
        let mut request = Request::new(self.run_id, self.flow.as_deref());
        // The definition's forwards say where the services are (a missing definition: defaults).
        let path = self.definition.clone().unwrap_or_else(crate::e2e::definition::default_path);
        if self.definition.is_some() || path.is_file() {
            let def = crate::e2e::definition::load(&path)?;
            request = def.request(request.run_id, request.flow.as_deref());
        }
        let ctx = RunContext::resolve(sh, &request)?;
        match self.format {
            Format::Env => {
                for (k, v) in ctx.env() {
                    println!("export {k}={}", crate::exec::quote(&v));
                }
            }
            Format::Json => {
                let mut map = serde_json::Map::new();
                for (k, v) in ctx.env() {
                    map.insert(k, v.into());
                }
                map.insert("labels".into(), ctx.labels());
                map.insert("state_dir".into(), ctx.state_dir().display().to_string().into());
                map.insert("gitea_repo".into(), ctx.repo_name().into());
                println!("{}", serde_json::to_string_pretty(&map)?);
            }
        }
        Ok(0)
    }
}
