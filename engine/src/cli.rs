//! The command line: parses it and dispatches to the subsystems. [`main`] is the one entry
//! point, called by an adopter's three-line `xtask/src/main.rs` and by the `operator-e2e` binary.

use std::process::ExitCode;

use crate::e2e::checks::{check as check_cmd, quickstart};
use crate::e2e::flows::{e2e as flows, setup, shards};
use crate::e2e::infra::{gitea, metrics, port_forward};
use crate::e2e::runs::{self, run_context as run_context_cmd};
use crate::e2e::setup::post_render;
use crate::lint::commands::{DockerfilesArgs, HardcodedArgs, LintArgs};
use crate::{bench, ci, docs, doctor, exec, init, paths, usage};
use clap::{Parser, Subcommand};

/// The e2e layer of this operator repository: images, the kind cluster, shared infra, isolated
/// parallel test flows, and the gates that keep them honest.
///
/// State lives under target/e2e/ (never fixed /tmp names). Every external command goes through
/// one place that logs it, times it out and stops it on Ctrl-C.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Each subcommand's help (first line: its purpose in `--help`) is the doc comment of its Args,
// which lives in the module named here: one hop from a subcommand to its code.
#[derive(Subcommand, Debug)]
enum Command {
    Init(init::Args),
    Doctor(doctor::Args),
    Setup(setup::Args),
    E2e(flows::Args),
    Runs(runs::RunsArgs),
    Cleanup(runs::CleanupArgs),
    RunContext(run_context_cmd::Args),
    Gitea(gitea::Args),
    PortForward(port_forward::Args),
    Quickstart(quickstart::Args),
    Metrics(metrics::Args),
    Check(check_cmd::Args),
    Lint(LintArgs),
    LintDockerfiles(DockerfilesArgs),
    LintHardcoded(HardcodedArgs),
    JunitMerge(shards::MergeArgs),
    Ci(ci::Args),
    Bench(bench::Args),
    #[command(hide = true)]
    Docs(docs::Args),
    /// The reaper of a running xtask (started by it; not for users)
    #[command(name = "__reap", hide = true)]
    Reap,
    /// helm's post-renderer for a run's release (started by helm; not for users)
    #[command(name = "__post-render", hide = true)]
    PostRender(post_render::Args),
}

impl Command {
    /// Exit status for an error: the lints' contract says 2 for usage or I/O errors.
    fn error_code(&self) -> i32 {
        match self {
            Command::Lint(_) | Command::LintDockerfiles(_) | Command::LintHardcoded(_) => 2,
            _ => 1,
        }
    }
}

/// Runs the command line of this process (`std::env::args`) and returns its exit status.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     operator_e2e::main()
/// }
/// ```
pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    if let Command::Reap = cli.command {
        return ExitCode::from(exec::reap_main() as u8);
    }
    let error_code = cli.command.error_code();
    let code = match run(cli) {
        Ok(code) => code,
        Err(error) => {
            if exec::cancelled() {
                eprintln!("interrupted: {error:#}");
                130
            } else {
                eprintln!("error: {error:#}");
                if usage::is_usage(&error) {
                    2
                } else {
                    error_code
                }
            }
        }
    };
    // Whatever a step daemonised out of its process group ends with us.
    exec::end_orphans();
    ExitCode::from(if exec::cancelled() { 130 } else { code as u8 })
}

/// `cargo xtask ... | head`: a closed stdout ends us quietly (exit 141, as for SIGPIPE), after
/// stopping whatever commands run, instead of a panic with a backtrace.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            exec::cancel();
            std::process::exit(141);
        }
        default(info);
    }));
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    exec::install_signal_handlers()?;
    if let Ok(me) = std::env::current_exe() {
        exec::start_reaper(&me)?;
    }
    let sh = xshell::Shell::new()?;
    sh.change_dir(paths::project_root());
    match cli.command {
        Command::Init(args) => args.run(&sh),
        Command::Doctor(args) => args.run(&sh),
        Command::Setup(args) => args.run(&sh),
        Command::E2e(args) => args.run(&sh),
        Command::Runs(args) => args.run(&sh),
        Command::Cleanup(args) => args.run(&sh),
        Command::RunContext(args) => args.run(&sh),
        Command::Gitea(args) => args.run(&sh),
        Command::PortForward(args) => args.run(),
        Command::Quickstart(args) => args.run(&sh),
        Command::Metrics(args) => args.run(&sh),
        Command::Check(args) => args.run(&sh),
        Command::Lint(args) => {
            exec::exit_on_interrupt();
            args.run(&sh)
        }
        Command::LintDockerfiles(args) => {
            exec::exit_on_interrupt();
            args.run()
        }
        Command::LintHardcoded(args) => {
            exec::exit_on_interrupt();
            args.run()
        }
        Command::JunitMerge(args) => args.run(),
        Command::Ci(args) => args.run(&sh),
        Command::PostRender(args) => args.run(&sh),
        Command::Bench(args) => args.run(&sh),
        Command::Docs(args) => args.run(<Cli as clap::CommandFactory>::command()),
        Command::Reap => Ok(exec::reap_main()),
    }
}
