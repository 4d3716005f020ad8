//! `${NAME}` in what a user writes (tags, manifests, commands, checks): expanded from the
//! environment and a run's variables, strictly — an unknown name is an error, never "".

use anyhow::{anyhow, Result};

/// The process environment as text; a variable whose name or value is not UTF-8 is left out
/// (`std::env::vars` would panic on it).
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

/// `${NAME}` replaced by its value from `vars` (the last entry of a name wins, so callers append
/// overrides); an unknown `${NAME}` is an error, never an empty string. `$${` stays a literal `${`.
pub fn expand_strict(text: &str, vars: &[(String, String)]) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        // `$${` is a literal `${` (a shell's own variable in a `sh -c` step).
        if at > 0 && rest.as_bytes()[at - 1] == b'$' {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        // Only for an error: a long text (a manifest) is shown by the line that holds the variable.
        let at_abs = text.len() - rest.len() + at;
        let shown = || {
            if text.len() <= 120 {
                format!("{text:?}")
            } else {
                let line_no = text[..at_abs].matches('\n').count() + 1;
                let line = text.lines().nth(line_no - 1).unwrap_or("");
                format!("line {line_no} {:?}", line.trim())
            }
        };
        let end = after.find('}').ok_or_else(|| anyhow!("unclosed `${{` in {}", shown()))?;
        let name = &after[..end];
        let value = vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v).ok_or_else(|| {
            let known: Vec<&str> = vars
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| {
                    k.starts_with("E2E_") || k.starts_with("NODE_") || k.starts_with("IMAGE_") || vars.len() <= 12
                })
                .collect();
            let hint = if name.starts_with("IMAGE_") {
                "; an image's reference is known once `cargo xtask setup` has built it (or after the deploys that need it)"
            } else {
                ""
            };
            anyhow!(
                "unknown variable ${{{name}}} in {} (known here: {}, and the environment's){hint}",
                shown(),
                known.join(", ")
            )
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
