//! The e2e layer of a Kubernetes operator repository, as a `cargo xtask`.
//!
//! One flat module per task (`doctor`, `ci`, ...), plus the shared pieces: `exec` (the one door
//! to external processes), `paths` (where state lives), `tools` (what we need installed).
#![warn(rust_2018_idioms, unused_lifetimes)]

pub mod bench;
pub mod checks;
pub mod ci;
pub mod clock;
pub mod definition;
pub mod diagnostics;
pub mod dockerfile;
pub mod doctor;
pub mod e2e;
pub mod exec;
pub mod gitea;
pub mod lint;
pub mod lint_dockerfiles;
pub mod lint_hardcoded;
pub mod metrics;
pub mod paths;
pub mod pipeline;
pub mod port_forward;
pub mod quickstart;
pub mod run_context;
pub mod runs;
pub mod setup;
pub mod shell;
pub mod tools;
