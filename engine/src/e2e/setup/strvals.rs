//! helm's `--set` grammar, as `helm` reads it (helm `pkg/strvals/parser.go`, v3.17.2): a set line
//! is `key=value[,key=value…]`; a value ends at an unescaped `,` (`val`: `runesUntil(',')`), a
//! value that starts with `{` is a list `{a,b}` ending at `}` (`valList`), and a backslash takes the
//! next rune literally wherever it stands (`runesUntil`: `case r == '\\'`). So a variable's value
//! substituted into a `--set` must have those four runes escaped, or a `,` in it splits the line
//! (`key "b" has no value`) and a leading `{` makes it a list. What the definition writes itself
//! stays helm's grammar (a `{a,b}` list is still a list); only what a variable brings in is escaped.

/// `value` with every rune helm's `--set` parser treats specially (`\`, `,`, `{`, `}`) escaped by
/// a backslash: it reads back as exactly `value`.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '{' | '}') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The variables for expanding a `--set` value: each value escaped for helm's grammar.
pub(crate) fn escaped_vars(vars: &[(String, String)]) -> Vec<(String, String)> {
    vars.iter().map(|(k, v)| (k.clone(), escape(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// helm's `runesUntil` over a value, as the parser reads one (up to an unescaped `,`).
    fn helm_reads(text: &str) -> (String, &str) {
        let mut out = String::new();
        let mut chars = text.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                ',' => return (out, &text[i + 1..]),
                '\\' => out.extend(chars.next().map(|(_, n)| n)),
                _ => out.push(c),
            }
        }
        (out, "")
    }

    #[test]
    fn an_escaped_value_reads_back_whole() {
        for v in ["a,b", "x\\,y", "{a,b}", "plain", "", "trailing\\", "ünï,cødé"] {
            let escaped = escape(v);
            let (read, rest) = helm_reads(&escaped);
            assert_eq!((read.as_str(), rest), (v, ""), "{v:?} escaped as {escaped:?}");
        }
        assert_eq!(escape("a,b"), "a\\,b");
        assert!(!escape("{a}").starts_with('{'), "a leading brace would make a list");
    }
}
