//! The shared infra every run uses: Gitea (repositories, tokens, keys per run), port-forwards,
//! Prometheus (metrics scoped to a run), and the lock that keeps two setups of it apart.

pub mod gitea;
pub mod metrics;
pub mod port_forward;
pub mod shared_lock;
