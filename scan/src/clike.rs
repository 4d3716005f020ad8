//! Go and Rust source read for what it holds: comments (blanked) and string literals (their
//! ranges). Every byte of every Go file in a lint's scope goes through it, so it lives in this
//! optimised crate; memchr jumps from one byte that can open something to the next.

/// Go (`go`) or Rust (`rust`) source with its comments blanked out (offsets kept), and the
/// content ranges of its string literals (raw strings and Go's backquoted ones included).
pub fn code_and_literals(text: &str, go: bool, rust: bool) -> (String, Vec<(usize, usize)>) {
    let b = text.as_bytes();
    let mut code = b.to_vec();
    let mut literals = Vec::new();
    let blank = |code: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut code[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    // Jump from one byte that can open a comment or a literal to the next (memchr: fast even in
    // the debug build); everything between is code.
    let next = |from: usize| -> usize {
        let rest = &b[from.min(b.len())..];
        let hit =
            if go { memchr::memchr3(b'/', b'"', b'`', rest) } else { memchr::memchr2(b'/', b'"', rest) };
        hit.map_or(b.len(), |n| from + n)
    };
    // A quote inside a character literal (`'"'`, `'\"'`, Go's `'`'`) opens nothing.
    let in_char = |i: usize| {
        (i >= 1 && b[i - 1] == b'\'' && b.get(i + 1) == Some(&b'\''))
            || (i >= 2 && b[i - 1] == b'\\' && b[i - 2] == b'\'' && b.get(i + 1) == Some(&b'\''))
    };
    let mut i = next(0);
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = memchr::memchr(b'\n', &b[i..]).map_or(b.len(), |n| i + n);
                blank(&mut code, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = memchr::memmem::find(&b[i + 2..], b"*/").map_or(b.len(), |n| i + 2 + n + 2);
                blank(&mut code, i, end);
                i = end;
            }
            b'"' if !in_char(i) => {
                // Rust raw strings: `r"..."`, `r#"..."#` (the `r` and hashes are just before).
                let hashes = b[..i].iter().rev().take_while(|c| **c == b'#').count();
                let raw = rust && i > hashes && b[i - hashes - 1] == b'r';
                let start = i + 1;
                if raw {
                    let mut closing = vec![b'"'];
                    closing.extend(std::iter::repeat_n(b'#', hashes));
                    let end = memchr::memmem::find(&b[start..], &closing).map_or(b.len(), |n| start + n);
                    literals.push((start, end));
                    i = end + closing.len();
                } else {
                    let mut j = start;
                    while j < b.len() && b[j] != b'"' {
                        if b[j] == b'\\' {
                            j += 1;
                        }
                        j += 1;
                    }
                    literals.push((start, j.min(b.len())));
                    i = j + 1;
                }
            }
            b'`' if go && !in_char(i) => {
                let end = memchr::memchr(b'`', &b[i + 1..]).map_or(b.len(), |n| i + 1 + n);
                literals.push((i + 1, end));
                i = end + 1;
            }
            _ => i += 1,
        }
        i = next(i);
    }
    // Literal ranges end on char boundaries (quotes are ASCII); a cut multi-byte character cannot
    // occur, and a malformed file only yields odd ranges, never a panic.
    let literals = literals
        .into_iter()
        .filter(|(s, e)| s <= e && text.is_char_boundary(*s) && text.is_char_boundary(*e))
        .collect();
    (String::from_utf8(code).unwrap_or_default(), literals)
}
