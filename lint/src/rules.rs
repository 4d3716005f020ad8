//! The rule registry. Each rule is defined beside its checker (`dockerfiles::DNF_UPDATE`,
//! `hardcoded::FIXED_TMP_PATH`, ...) with its id, summary and help; this module only lists them,
//! for the config (`[help]` ids) and the SARIF rule table.

use super::report::Rule;
use super::{dockerfiles, hardcoded};

/// Every rule, in a stable order (SARIF's `ruleIndex` follows it).
pub fn all() -> impl Iterator<Item = &'static Rule> {
    dockerfiles::RULES.iter().copied().chain(hardcoded::RULES.iter().copied())
}

/// The rule with this id.
pub fn by_id(id: &str) -> Option<&'static Rule> {
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
