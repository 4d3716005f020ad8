//! The graph from build to verdict: the `setup` command (the graph without flows), the `e2e`
//! command (setup, then the flows, on one graph), their preflight, and shards (`junit-merge`).

pub mod e2e;
pub mod graph;
pub mod preflight;
pub mod setup;
pub mod shards;
