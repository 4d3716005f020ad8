//! Setup actions: what each step of the setup graph does (build, cluster, load, deploy) and how
//! it knows it is already done (the records and digests of `incremental`, the Docker build
//! context of `dockerignore`).

pub mod actions;
pub mod dockerignore;
pub mod incremental;
pub mod post_render;
pub mod strvals;
