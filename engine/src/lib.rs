//! The e2e layer of a Kubernetes operator repository, as a `cargo xtask`.
//!
//! Three layers, dependencies pointing one way (ARCHITECTURE.md at the repository root):
//! - foundations: [`exec`] (the one door to external processes), [`paths`] (where state lives),
//!   [`clock`], [`tools`] (what must be installed), [`usage`] (errors that exit 2), [`toml`]
//!   (the config files' reader), [`duration`] and [`vars`] (durations and `${NAME}` as users write them);
//! - engines: [`lint`] (file classification, parsers, rules, reports) and [`pipeline`] (a
//!   dependency graph of jobs on a dedicated thread pool), neither of which knows the e2e;
//! - commands: [`e2e`] (definition, run context, shared infra, flows, Gitea, metrics, checks),
//!   [`ci`], [`doctor`], [`bench`].

pub mod bench;
mod cli;
pub use cli::main;
pub mod ci;
pub mod clock;
pub mod docs;
pub mod doctor;
pub mod duration;
pub mod e2e;
pub mod exec;
#[cfg(test)]
mod fuzz;
pub mod init;
pub mod lint;
pub mod paths;
pub mod pipeline;
pub mod toml;
pub mod tools;
pub mod usage;
pub mod vars;
