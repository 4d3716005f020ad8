//! Errors that are the user's to fix in what they typed or wrote (a malformed run id, an unknown
//! flow, an invalid definition): exit status 2, as the lints' contract has it, never 1 (which says
//! the work itself failed).

use std::fmt;

/// A usage error: the message says what is wrong and the rule.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage error as an `anyhow::Error`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// Is there a usage error anywhere in `error`'s chain?
pub fn is_usage(error: &anyhow::Error) -> bool {
    error.chain().any(|e| e.is::<UsageError>())
}
