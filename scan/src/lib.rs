//! The inner loops of the lints: finding the rules' literals in every byte of a repository
//! (`literals`), reading Go and Rust source for its strings and comments (`clike`), and matching
//! every path against its ignore files (`gitignore`).
//!
//! A crate of its own, compiled at opt-level 3 even in the debug build `cargo xtask` runs: these
//! loops are nearly all of a lint's time at opt-level 0 (where no iterator is inlined), and being
//! small they cost under a second to optimise, where optimising the whole lint engine cost ~8 s of
//! every fresh checkout's build.

pub mod clike;
pub mod gitignore;
pub mod literals;
