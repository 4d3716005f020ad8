//! Parsers for what the lints read: Dockerfiles as BuildKit reads them, and shell command lines.
//! They take any text and never panic; positions are byte offsets into the original text.

pub mod dockerfile;
pub mod shell;
