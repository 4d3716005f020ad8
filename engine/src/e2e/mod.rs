//! The e2e: what the definition (`test/e2e/e2e.toml`) says, the run context every run carries,
//! shared infra set up on the pipeline engine, and the flows that run on it.
//!
//! Sub-systems, each using only those listed before it (the tidy test
//! `e2e_subsystems_depend_one_way` holds them to it):
//! - [`context`]: the run context (the run id and every name made from it), the kubectl door, a
//!   shared cluster's Leases;
//! - [`setup`]: the setup actions (build, cluster, load, deploy) and their freshness records;
//! - [`definition`]: the definition file, its schema, and the setup graph it compiles to;
//! - [`infra`]: Gitea, port-forwards, Prometheus, the shared-infra lock;
//! - [`runs`]: runs on disk, their cleanup and diagnostics (`runs`, `cleanup`, `run-context`);
//! - [`checks`]: the check runner, `check`, `quickstart`;
//! - [`flows`]: `setup` and `e2e`, one graph from build to verdict, and shards (`junit-merge`).
//!
//! A command's file is named after it (`flows/e2e.rs` is `cargo xtask e2e`).

pub mod checks;
pub mod context;
pub mod definition;
pub mod flows;
pub mod infra;
pub mod runs;
pub mod setup;
