//! `cargo xtask`: parses the command line and dispatches. Everything else lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::{ci, doctor, exec, paths};

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

// Each subcommand's help (first line: its purpose in `--help`) is the doc comment of its Args.
#[derive(Subcommand, Debug)]
enum Command {
    Doctor(doctor::Args),
    Ci(ci::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(error) => {
            if exec::cancelled() {
                eprintln!("interrupted: {error:#}");
                130
            } else {
                eprintln!("error: {error:#}");
                1
            }
        }
    };
    ExitCode::from(if exec::cancelled() { 130 } else { code as u8 })
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    exec::install_signal_handlers()?;
    let sh = xshell::Shell::new()?;
    sh.change_dir(paths::project_root());
    match cli.command {
        Command::Doctor(args) => args.run(&sh),
        Command::Ci(args) => args.run(&sh),
    }
}
