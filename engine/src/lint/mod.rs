//! The lint engine: which files are read (`walk`), how each kind is parsed (`parse`), the rules
//! beside their checkers (`dockerfiles`, `hardcoded`, listed by `rules`), and one driver for
//! every lint command: config, baseline, output (`report`, `output`, `config`).
//!
//! The output contract: `--format json` prints `{files_scanned, findings: [{rule, path, line,
//! column, severity, message}], parse_errors: [{path, line, message}], skipped}`; paths are
//! relative to the current directory. Exit status: 0 clean, 1 findings (or a file we could not
//! understand), 2 usage or I/O error. Nothing here knows the e2e: what a project must not
//! hardcode comes from its config.

pub mod commands;
pub mod config;
pub mod output;

// The engine is its own crate (`lint/`), compiled optimised; its modules keep their paths here.
pub use xtask_lint::{dockerfiles, hardcoded, parse, report, rules, value, walk};
