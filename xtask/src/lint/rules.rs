//! The rule registry. Each rule is defined beside its checker (`dockerfiles::DNF_UPDATE`,
//! `hardcoded::FIXED_TMP_PATH`, ...) with its id, summary and help; this module only lists them,
//! so output formats, suppressions and the baseline know every rule without knowing any checker.

use serde::Serialize;

/// A rule: its id (the contract: JSON `rule`, `xtask-lint: allow(<id>)`, SARIF `ruleId`), what
/// it finds, and how to fix it (the config's `[help]` table can reword the help for a project).
#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Rule {
    pub(crate) id: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) help: &'static str,
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id)
    }
}

/// Every rule, in a stable order (SARIF's `ruleIndex` follows it).
pub(crate) fn all() -> impl Iterator<Item = &'static Rule> {
    super::dockerfiles::RULES.iter().copied().chain(super::hardcoded::RULES.iter().copied())
}

/// The rule with this id.
pub(crate) fn by_id(id: &str) -> Option<&'static Rule> {
    all().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_findable() {
        let ids: Vec<&str> = super::all().map(|r| r.id).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(ids.len(), unique.len(), "{ids:?}");
        assert_eq!(ids.len(), 8);
        for id in ids {
            assert_eq!(super::by_id(id).map(|r| r.id), Some(id));
        }
    }
}
