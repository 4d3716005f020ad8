//! The lint engine of `cargo xtask lint`: which files are read (`walk`), how each kind is parsed
//! (`parse`), the rules beside their checkers (`dockerfiles`, `hardcoded`, listed by `rules`), and
//! the report they produce (`report`). The commands, config loading and output formats live in
//! the xtask (`engine/src/lint`).
//!
//! A crate of its own so that it alone is compiled optimised in the debug build `cargo xtask`
//! runs (see the workspace Cargo.toml): the lints scan whole repositories, while the rest of the
//! xtask is compiled cold on every fresh checkout and must stay cheap to build.

pub mod dockerfiles;
// The inner loops live in the `xtask-scan` crate (optimised); their modules keep their paths here.
pub use xtask_scan::{gitignore, literals};
pub mod hardcoded;
pub mod parse;
pub mod report;
pub mod rules;
pub mod value;
pub mod walk;
