//! The e2e: what the definition (`test/e2e/e2e.toml`) says, the run context every run carries,
//! shared infra set up on the pipeline engine, and the flows that run on it.
//!
//! Subcommands and their modules: `setup` → [`setup`], `e2e` → [`flows`], `runs`/`cleanup` →
//! [`runs`], `run-context` → [`run_context_cmd`], `gitea` → [`gitea`], `port-forward` →
//! [`port_forward`], `quickstart` → [`quickstart`], `metrics` → [`metrics`], `check` → [`check_cmd`].

pub mod actions;
pub mod check_cmd;
pub mod check_steps;
pub mod checks;
pub mod coordination;
pub mod definition;
pub mod diagnostics;
pub mod dockerignore;
pub mod flows;
pub mod gitea;
pub mod graph;
pub mod incremental;
pub mod kube;
pub mod metrics;
pub mod port_forward;
pub mod post_render;
pub mod preflight;
pub mod quickstart;
pub mod run_context;
pub mod run_context_cmd;
pub mod runs;
pub mod schema;
pub mod setup;
pub mod shards;
pub mod shared_lock;
pub mod strvals;
