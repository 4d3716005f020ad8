//! The lint config file. Each checker owns the type of its own table (`[dockerfile]` in
//! `dockerfiles`, `[hardcoded]` in `hardcoded`); `[help]` rewords a rule's help for a project.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::value::{FromValue, Table};

use super::dockerfiles::DockerfileConfig;
use super::hardcoded::HardcodedConfig;
use super::report::Rule;
use super::rules;
use crate::paths;

#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub(crate) hardcoded: HardcodedConfig,
    pub(crate) dockerfile: DockerfileConfig,
    /// Rule id → the help shown under each of its findings, in this project's words.
    pub(crate) help: BTreeMap<String, String>,
    /// `baseline = "FILE"`: findings recorded there are accepted (the gate fails only on new
    /// ones), by `lint`, `lint --staged` (the hook) and the `ci` lint gate alike. Relative to the
    /// config's repository.
    pub(crate) baseline: Option<PathBuf>,
    /// `[ci]`: what `cargo xtask ci` runs in this repository.
    pub(crate) ci: CiConfig,
    /// Where the config was read from (excludes and scope are relative to its repository).
    pub(crate) root: PathBuf,
    /// The config file, when there is one.
    pub(crate) file: Option<PathBuf>,
}

impl FromValue for Config {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let config = Config {
            hardcoded: t.or_default("hardcoded")?,
            dockerfile: t.or_default("dockerfile")?,
            help: t.or_default("help")?,
            baseline: t.opt("baseline")?,
            ci: t.or_default("ci")?,
            root: PathBuf::new(),
            file: None,
        };
        t.done()?;
        Ok(config)
    }
}

/// `[ci]` of the project config: the gates `cargo xtask ci` runs and what its test gate needs on
/// the machine. Plain data: the `ci` command reads it.
#[derive(Debug, Clone, Default)]
pub(crate) struct CiConfig {
    /// The gates to run, in order (default: every gate).
    pub(crate) gates: Option<Vec<String>>,
    /// Program → the Debian package that provides it: checked before the test gate compiles
    /// anything (this repository's tests run a real sshd and Prometheus).
    pub(crate) requires: BTreeMap<String, String>,
}

impl FromValue for CiConfig {
    fn from_value(v: &Value, at: &str) -> Result<Self, String> {
        let mut t = Table::new(v, at)?;
        let ci = CiConfig { gates: t.opt("gates")?, requires: t.or_default("requires")? };
        t.done()?;
        Ok(ci)
    }
}

/// The project's own config.
pub(crate) fn project_config_path() -> PathBuf {
    paths::project_root().join("hack/lint.toml")
}

impl Config {
    /// `--config FILE`, else the project's `hack/lint.toml`, else the defaults.
    pub(crate) fn load(explicit: Option<&Path>) -> Result<Config> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => Some(project_config_path()).filter(|p| p.is_file()),
        };
        let Some(path) = path else {
            return Ok(Config { root: paths::project_root(), ..Config::default() });
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading lint config {}", path.display()))?;
        let mut config: Config = crate::toml::from_str(&text)
            .with_context(|| format!("invalid lint config {}", path.display()))?;
        config.root = paths::repository_of(&path);
        config.file = Some(path.clone());
        for f in &config.hardcoded.forbidden {
            let re = regex::Regex::new(&f.pattern).with_context(|| {
                format!(
                    "invalid lint config {}: [[hardcoded.forbidden]] pattern `{}`",
                    path.display(),
                    f.pattern
                )
            })?;
            // A pattern that matches nothing at all would match at every position of every file.
            if re.is_match("") {
                bail!(
                    "invalid lint config {}: [[hardcoded.forbidden]] pattern `{}` matches the empty string (every position of every file)",
                    path.display(),
                    f.pattern
                );
            }
        }
        for (table, patterns) in
            [("hardcoded", &config.hardcoded.exclude), ("dockerfile", &config.dockerfile.exclude)]
        {
            for p in patterns.iter() {
                super::walk::exclude_matcher(&config.root, std::slice::from_ref(p)).with_context(|| {
                    format!("invalid lint config {}: [{table}] exclude `{p}`", path.display())
                })?;
            }
        }
        if let Some(b) = &config.baseline {
            // The baseline quotes the findings' lines: it is never linted itself.
            let rel = b.display().to_string();
            let pattern = format!("/{}", rel.trim_start_matches("./"));
            config.hardcoded.exclude.push(pattern.clone());
            config.dockerfile.exclude.push(pattern);
            config.baseline = Some(config.root.join(b));
        }
        for id in config.help.keys() {
            if rules::by_id(id).is_none() {
                let known: Vec<&str> = rules::all().map(|r| r.id).collect();
                bail!(
                    "invalid lint config {}: [help] names no rule `{id}` (rules: {})",
                    path.display(),
                    known.join(", ")
                );
            }
        }
        Ok(config)
    }

    /// The config file as messages name it.
    pub(crate) fn path_shown(&self) -> String {
        self.file.as_ref().map_or_else(|| "the default config".into(), |f| f.display().to_string())
    }

    /// The help for `rule`: the config's wording, else the rule's own.
    pub(crate) fn help(&self, rule: &Rule) -> String {
        self.help.get(rule.id).cloned().unwrap_or_else(|| rule.help.to_string())
    }
}
