//! The integration tests, one binary (it links once): each module drives the xtask binary from
//! outside, as a user does, through [`harness::Sandbox`], or calls the library with temp dirs.

mod harness;

mod adopt;
mod checks;
mod cli;
mod e2e;
mod exec;
mod gitea;
mod incremental;
mod kube_api;
mod lint;
mod metrics;
mod operator;
mod pipeline;
mod quickstart;
mod readme;
mod real_clients;
mod real_cluster;
mod reliability;
mod shared_cluster;
mod tidy;
