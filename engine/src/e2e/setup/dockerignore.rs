//! `.dockerignore`, read exactly as Docker reads it: moby/patternmatcher v0.6.1
//! (`ignorefile/ignorefile.go` `ReadAll`, `patternmatcher.go` `New`, `Pattern.compile`,
//! `Pattern.match`, `MatchesOrParentMatches`), the matcher BuildKit and the classic builder share.
//!
//! What that means, each point read from that source:
//! - `ReadAll`: a UTF-8 BOM on the first line is dropped; a line starting with `#` is a comment
//!   (only at column 0); each line is trimmed (Go `strings.TrimSpace`), a leading `!` is taken off
//!   and the rest trimmed again, then `filepath.Clean`ed, and one leading `/` is dropped.
//! - `New`: the pattern is trimmed and cleaned once more (with its `!`: `!/.` becomes `!`, refused
//!   as `illegal exclusion pattern: "!"`), and checked with Go's `filepath.Match(p, ".")`, whose
//!   `syntax error in pattern` (`filepath.ErrBadPattern`) refuses `[x-]`, `[-x]`, `[a-b-c]`, `[]`,
//!   an unclosed `[`, and a trailing `\`.
//! - `compile` decides a match type while it translates to a Go regexp: a pattern with no
//!   wildcard is an exact comparison (so `^`, `$`, `.` in it are plain characters); one whose only
//!   wildcard is a trailing `**` is a prefix test; one that starts with `**` and has no other
//!   wildcard is a suffix test at any depth (`**.go` is "ends with `.go`", `**/x` also matches `x`);
//!   everything else is the Go regexp (`*` → `[^/]*`, `?` → `[^/]`, `**` → `(.*/)?`, a trailing
//!   `**` → `.*`, `\c` → `\c`, `.+()|{}$` escaped, `[`, `]` and `^` left to the regexp).
//! - The regexp is compiled when the pattern is first evaluated; a Go regexp syntax error there
//!   (`[z-a]`, `\y`) is `filepath.ErrBadPattern` from `match`, which fails the build. Here it fails
//!   when the same pattern is first evaluated, with the same message.
//! - `MatchesOrParentMatches`: patterns in order, an inclusion only evaluated while unmatched and
//!   an exclusion (`!`) only while matched; a pattern matches the path or any of its parent
//!   directories (`filepath.Dir`, split at `/`).
//!
//! Which Docker reads it so: the match types came with moby's `pkg/fileutils` commit 2d3e837
//! (2021-12-20, "Avoid compiling a regexp for simple patterns"; Docker 23.0 on), before which a
//! leading `**` was always the regexp `(.*/)?suffix`. The context is filtered by the client. The
//! walk here is BuildKit's: an excluded directory is entered when an exclusion could match below
//! it. The legacy builder's context tar (moby pkg/archive `TarWithOptions`) skips an excluded
//! directory unless an exclusion pattern starts with its path: with `*`, `!**.go`, `!go.mod` it
//! sends `go.mod` and `main.go` but not `cmd/main.go` (checked on this machine: docker CLI 28.2.2,
//! engine 20.10.24, legacy builder). The digest then covers a superset of what is sent: never a
//! stale image, at worst a rebuild that was not needed.
//!
//! Go's regexp syntax (regexp/syntax, Perl flags) differs from the `regex` crate's in what a class
//! may hold (`[[]` is a class of `[` in Go, a nested class in Rust; `&&`, `--`, `~~` are set
//! operations in Rust), in `\d`, `\s`, `\w`, `\b` (ASCII in Go, Unicode here) and in octal
//! escapes, so the Go regexp is parsed here and rewritten into the same language in Rust's syntax.

use anyhow::{bail, Result};

/// Go's `filepath.ErrBadPattern`, the words Docker's build fails with.
pub(crate) const BAD_PATTERN: &str = "syntax error in pattern";

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    /// Trailing `**`: the cleaned pattern without it is a prefix.
    Prefix,
    /// Leading `**`: what follows is a suffix.
    Suffix,
    Regexp(regex::Regex),
    /// A Go regexp that does not compile: `ErrBadPattern` when evaluated.
    Bad,
}

/// One pattern of a `.dockerignore`.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    exclusion: bool,
    cleaned: String,
    kind: Kind,
    /// The pattern's segments (`None`: one holding `**`, or one that cannot be compiled), for
    /// deciding whether a directory can hold a match.
    segments: Vec<Option<Box<Pattern>>>,
}

impl Pattern {
    /// patternmatcher `New` for one (already `ReadAll`-processed) line: `Ok(None)` for a blank one.
    pub(crate) fn new(line: &str) -> Result<Option<Pattern>> {
        let p = line.trim();
        if p.is_empty() {
            return Ok(None);
        }
        let mut p = clean(p);
        let exclusion = p.starts_with('!');
        if exclusion {
            if p.len() == 1 {
                bail!("illegal exclusion pattern: \"!\"");
            }
            p.remove(0);
        }
        if !go_match_syntax_ok(&p) {
            bail!("{BAD_PATTERN}");
        }
        let kind = compile(&p);
        let segments = p
            .split('/')
            .map(|seg| {
                if seg.contains("**") {
                    return None;
                }
                let kind = compile(seg);
                if matches!(kind, Kind::Bad) {
                    return None;
                }
                Some(Box::new(Pattern {
                    exclusion: false,
                    cleaned: seg.to_string(),
                    kind,
                    segments: Vec::new(),
                }))
            })
            .collect();
        Ok(Some(Pattern { exclusion, cleaned: p, kind, segments }))
    }

    /// patternmatcher `Pattern.match`.
    fn matches(&self, path: &str) -> Result<bool> {
        Ok(match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || (suffix.starts_with('/') && path == &suffix[1..])
            }
            Kind::Regexp(re) => re.is_match(path),
            Kind::Bad => bail!("{BAD_PATTERN}"),
        })
    }
}

/// The patterns of a `.dockerignore`, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// `ignorefile.ReadAll` then `patternmatcher.New`. An error names the line and the pattern.
    pub(crate) fn parse(text: &str) -> Result<DockerIgnore> {
        let mut patterns = Vec::new();
        // bufio.Scanner's ScanLines: lines end at \n, a \r before it is dropped.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (n, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let invert = pattern.starts_with('!');
            if invert {
                pattern = pattern[1..].trim();
            }
            let mut cleaned = String::new();
            if !pattern.is_empty() {
                cleaned = clean(pattern);
                if cleaned.len() > 1 && cleaned.starts_with('/') {
                    cleaned.remove(0);
                }
            }
            if invert {
                cleaned.insert(0, '!');
            }
            match Pattern::new(&cleaned) {
                Ok(Some(p)) => patterns.push(p),
                Ok(None) => {}
                Err(e) => bail!(
                    "line {}: {e} (pattern {:?}; Docker refuses this file, so the build would fail: \
                     fix the pattern as Go's filepath.Match syntax wants it)",
                    n + 1,
                    line.trim()
                ),
            }
        }
        Ok(DockerIgnore { patterns })
    }

    /// patternmatcher `MatchesOrParentMatches`: is `path` (slash-separated, relative to the
    /// context) excluded from the context?
    pub(crate) fn excludes(&self, path: &str) -> Result<bool> {
        let parent = go_dir(path);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut hit = p.matches(path).map_err(|e| anyhow::anyhow!("{e} (pattern {:?})", p.cleaned))?;
            if !hit && parent != "." {
                for i in 0..parent_dirs.len() {
                    // patternmatcher ignores the error here (`match, _ =`).
                    if p.matches(&parent_dirs[..=i].join("/")).unwrap_or(false) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        Ok(matched)
    }

    /// Whether an excluded directory can still hold a re-included file (an exclusion pattern
    /// could match something below it): if not, the walk skips it. Never says no wrongly: a
    /// segment with `**`, or one that cannot be compiled, may match anything.
    pub(crate) fn may_reinclude_below(&self, dir: &str) -> bool {
        let parts: Vec<&str> = dir.split('/').collect();
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            for (i, part) in parts.iter().enumerate() {
                match p.segments.get(i) {
                    None => return false,
                    Some(None) => return true,
                    Some(Some(seg)) if seg.matches(part).unwrap_or(true) => {}
                    Some(Some(_)) => return false,
                }
            }
            true
        })
    }
}

/// Go's `filepath.Dir` on a slash path: everything before the last `/`, cleaned (`.` if none).
fn go_dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean(&path[..=i]),
        None => ".".into(),
    }
}

/// Go's `filepath.Clean` on a slash path: no empty or `.` segments, `..` resolved.
pub(crate) fn clean(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Whether Go's `filepath.Match(pattern, ".")` returns no error (go1.22 `path/filepath/match.go`:
/// `scanChunk` splits at `*` outside a class, and `matchChunk` checks every chunk in full, even
/// after a mismatch). What it refuses: a trailing `\`, and in a class (`[`, optional `^`, one or
/// more `lo` or `lo-hi`, `]`) an item starting with `-` or `]`, a `\` at the end, or a class left
/// open (`getEsc`).
fn go_match_syntax_ok(pattern: &str) -> bool {
    let c: Vec<char> = pattern.chars().collect();
    // getEsc: one class character (maybe escaped); something must follow it.
    let get_esc = |i: &mut usize| -> bool {
        if *i >= c.len() || c[*i] == '-' || c[*i] == ']' {
            return false;
        }
        if c[*i] == '\\' {
            *i += 1;
            if *i >= c.len() {
                return false;
            }
        }
        *i += 1;
        *i < c.len()
    };
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '[' => {
                i += 1;
                if i < c.len() && c[i] == '^' {
                    i += 1;
                }
                let mut nrange = 0;
                loop {
                    if i < c.len() && c[i] == ']' && nrange > 0 {
                        i += 1;
                        break;
                    }
                    if !get_esc(&mut i) {
                        return false;
                    }
                    if c[i] == '-' {
                        i += 1;
                        if !get_esc(&mut i) {
                            return false;
                        }
                    }
                    nrange += 1;
                }
            }
            '\\' => {
                if i + 1 >= c.len() {
                    return false;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    true
}

fn should_escape(c: char) -> bool {
    ".+()|{}$".contains(c)
}

/// patternmatcher `Pattern.compile` (separator `/`): the match type, and for a regexp one the
/// Go regexp, rewritten for the `regex` crate.
fn compile(pattern: &str) -> Kind {
    let (detected, re) = go_compile(pattern);
    match detected {
        T::Exact => Kind::Exact,
        T::Prefix => Kind::Prefix,
        T::Suffix => Kind::Suffix,
        T::Regexp => match go_regexp_to_rust(&re).and_then(|r| regex::Regex::new(&r).ok()) {
            Some(r) => Kind::Regexp(r),
            None => Kind::Bad,
        },
    }
}

/// patternmatcher's match types.
#[derive(PartialEq, Debug, Clone, Copy)]
enum T {
    Exact,
    Prefix,
    Suffix,
    Regexp,
}

/// `Pattern.compile` itself: the match type and the Go regexp text (meaningful for `Regexp`).
fn go_compile(pattern: &str) -> (T, String) {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut detected = T::Exact;
    let mut pos = 0;
    let mut i = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        pos += 1;
        if ch == '*' {
            if chars.get(pos) == Some(&'*') {
                pos += 1;
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos >= chars.len() {
                    if detected == T::Exact {
                        detected = T::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = T::Regexp;
                    }
                } else {
                    re.push_str("(.*/)?");
                    detected = T::Regexp;
                }
                if i == 0 {
                    detected = T::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                detected = T::Regexp;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            detected = T::Regexp;
        } else if should_escape(ch) {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            if let Some(&next) = chars.get(pos) {
                pos += 1;
                re.push('\\');
                re.push(next);
                detected = T::Regexp;
            } else {
                re.push('\\');
            }
        } else if ch == '[' || ch == ']' {
            re.push(ch);
            detected = T::Regexp;
        } else {
            re.push(ch);
        }
        i += 1;
    }
    if detected == T::Regexp {
        re.push('$');
    }
    (detected, re)
}

/// A Go regexp (regexp/syntax with Perl flags, as `regexp.Compile` parses it) in the `regex`
/// crate's syntax, or `None` where Go refuses it. Only what a compiled pattern can hold is
/// handled in full: literals, `\` escapes, classes, `.`, `^`, `$`, groups and `*`/`?`.
fn go_regexp_to_rust(go: &str) -> Option<String> {
    let c: Vec<char> = go.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '\\' => {
                i += 1;
                let e = *c.get(i)?;
                match e {
                    'A' => out.push_str("\\A"),
                    'z' => out.push_str("\\z"),
                    'b' => out.push_str("(?-u:\\b)"),
                    'B' => out.push_str("(?-u:\\B)"),
                    'Q' => {
                        i += 1;
                        while i < c.len() {
                            if c[i] == '\\' && c.get(i + 1) == Some(&'E') {
                                i += 1;
                                break;
                            }
                            out.push_str(&hex(c[i]));
                            i += 1;
                        }
                    }
                    'd' | 'D' | 's' | 'S' | 'w' | 'W' => out.push_str(&format!("[{}]", perl_class(e))),
                    'p' | 'P' => {
                        let (class, next) = unicode_class(&c, i)?;
                        out.push_str(&class);
                        i = next - 1;
                    }
                    _ => {
                        let (ch, next) = escape(&c, i)?;
                        out.push_str(&hex(ch));
                        i = next - 1;
                    }
                }
                i += 1;
            }
            '[' => {
                let (class, next) = class(&c, i)?;
                out.push_str(&class);
                i = next;
            }
            '.' | '^' | '$' | '(' | ')' | '|' | '*' | '?' | '+' => {
                out.push(c[i]);
                i += 1;
            }
            other => {
                out.push_str(&hex(other));
                i += 1;
            }
        }
    }
    Some(out)
}

fn hex(c: char) -> String {
    format!("\\x{{{:X}}}", c as u32)
}

/// Go's Perl classes are ASCII (regexp/syntax perl_groups.go).
fn perl_class(e: char) -> &'static str {
    match e {
        'd' => "0-9",
        'D' => "^0-9",
        's' => "\\t\\n\\f\\r ",
        'S' => "^\\t\\n\\f\\r ",
        'w' => "0-9A-Za-z_",
        _ => "^0-9A-Za-z_",
    }
}

/// `\pL`, `\p{Greek}`, `\P{^L}` at `c[i]` (the `p`/`P`): the class and the index after it.
fn unicode_class(c: &[char], i: usize) -> Option<(String, usize)> {
    let negated = c[i] == 'P';
    let mut j = i + 1;
    let mut name = String::new();
    match c.get(j)? {
        '{' => {
            j += 1;
            while *c.get(j)? != '}' {
                name.push(c[j]);
                j += 1;
            }
            j += 1;
        }
        &ch => {
            name.push(ch);
            j += 1;
        }
    }
    let (negated, name) = match name.strip_prefix('^') {
        Some(n) => (!negated, n.to_string()),
        None => (negated, name),
    };
    if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
        return None;
    }
    Some((format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' }), j))
}

/// Go's `parseEscape` at `c[i]` (the character after `\`): the character and the index after it.
fn escape(c: &[char], i: usize) -> Option<(char, usize)> {
    let e = *c.get(i)?;
    let mut j = i + 1;
    let ch = match e {
        '1'..='7' if !matches!(c.get(j), Some('0'..='7')) => return None, // a backreference
        '0'..='7' => {
            let mut v = e.to_digit(8)?;
            for _ in 0..2 {
                match c.get(j).and_then(|d| d.to_digit(8)) {
                    Some(d) => {
                        v = v * 8 + d;
                        j += 1;
                    }
                    None => break,
                }
            }
            char::from_u32(v)?
        }
        'x' => {
            let digits: String;
            if c.get(j) == Some(&'{') {
                let start = j + 1;
                j = start;
                while *c.get(j)? != '}' {
                    j += 1;
                }
                digits = c[start..j].iter().collect();
                j += 1;
                if digits.is_empty() {
                    return None;
                }
            } else {
                digits = c.get(j..j + 2)?.iter().collect();
                j += 2;
            }
            if !digits.chars().all(|d| d.is_ascii_hexdigit()) {
                return None;
            }
            let v = u32::from_str_radix(&digits, 16).ok()?;
            if v > 0x10FFFF {
                return None;
            }
            char::from_u32(v)?
        }
        'a' => '\x07',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        p if p.is_ascii() && !p.is_ascii_alphanumeric() => p,
        _ => return None,
    };
    Some((ch, j))
}

/// Go's `parseClass` at `c[i]` (the `[`): the class in Rust's syntax and the index after it.
fn class(c: &[char], i: usize) -> Option<(String, usize)> {
    let mut j = i + 1;
    let mut out = String::from("[");
    if c.get(j) == Some(&'^') {
        out.push('^');
        j += 1;
    }
    let mut first = true;
    let mut items = 0;
    while *c.get(j)? != ']' || first {
        first = false;
        // [:alnum:] (POSIX, ASCII): the name runs to the next ":]" anywhere after.
        if c[j] == '[' && c.get(j + 1) == Some(&':') {
            let rest: String = c[j + 2..].iter().collect();
            if let Some(end) = rest.find(":]") {
                let name = &rest[..end];
                let known = [
                    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
                    "space", "upper", "word", "xdigit",
                ];
                if !known.contains(&name.strip_prefix('^').unwrap_or(name)) {
                    return None;
                }
                out.push_str(&format!("[:{name}:]"));
                j += 2 + name.chars().count() + 2;
                items += 1;
                continue;
            }
        }
        if c[j] == '\\' && matches!(c.get(j + 1), Some('p' | 'P')) {
            let (class, next) = unicode_class(c, j + 1)?;
            out.push_str(&class);
            j = next;
            items += 1;
            continue;
        }
        if c[j] == '\\' && matches!(c.get(j + 1), Some('d' | 'D' | 's' | 'S' | 'w' | 'W')) {
            out.push_str(&format!("[{}]", perl_class(c[j + 1])));
            j += 2;
            items += 1;
            continue;
        }
        let class_char = |j: usize| -> Option<(char, usize)> {
            match *c.get(j)? {
                '\\' => escape(c, j + 1),
                ch => Some((ch, j + 1)),
            }
        };
        let (lo, next) = class_char(j)?;
        j = next;
        let mut hi = lo;
        if c.get(j) == Some(&'-') && c.get(j + 1).is_some_and(|n| *n != ']') {
            let (h, next) = class_char(j + 1)?;
            if h < lo {
                return None;
            }
            hi = h;
            j = next;
        }
        out.push_str(&hex(lo));
        if hi != lo {
            out.push('-');
            out.push_str(&hex(hi));
        }
        items += 1;
    }
    debug_assert!(items > 0);
    out.push(']');
    Some((out, j + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap()
    }

    fn excluded(patterns: &str, path: &str) -> bool {
        ignore(patterns).excludes(path).unwrap()
    }

    /// Cases from moby/patternmatcher's tests (TestMatches), kept as they were.
    #[test]
    fn dockerignore_matches_as_patternmatcher_does() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "dir/file", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "file", true),
            ("**/file", "dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/dir/file", "dir/file", true),
            ("**/dir/file", "dir/dir/file", true),
            ("**/dir/file", "dir/file/other", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true),
            ("a\\*b", "a*b", true),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(excluded(pattern, path), *want, "{pattern:?} on {path:?}");
        }
        for (patterns, path, want) in [
            ("**\n!util/docker/web", "util/docker/web/foo", false),
            ("**\n!util/docker/web\nutil/docker/web/foo", "util/docker/web/foo", true),
            ("**\n!dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", false),
        ] {
            assert_eq!(excluded(patterns, path), want, "{patterns:?} on {path:?}");
        }
    }

    /// patternmatcher's TestCompile table: the match type and the Go regexp for each pattern.
    #[test]
    fn compile_gives_patternmatchers_match_types_and_regexps() {
        use T::*;
        for (pattern, kind, re) in [
            ("*", Regexp, r"^[^/]*$"),
            ("file*", Regexp, r"^file[^/]*$"),
            ("*file", Regexp, r"^[^/]*file$"),
            ("a*/b", Regexp, r"^a[^/]*/b$"),
            ("**", Suffix, ""),
            ("**/**", Regexp, r"^(.*/)?.*$"),
            ("dir/**", Prefix, ""),
            ("**/dir", Suffix, ""),
            ("**/dir2/*", Regexp, r"^(.*/)?dir2/[^/]*$"),
            ("**/dir2/**", Regexp, r"^(.*/)?dir2/.*$"),
            ("**file", Suffix, ""),
            ("**/file*txt", Regexp, r"^(.*/)?file[^/]*txt$"),
            ("**/**/*.txt", Regexp, r"^(.*/)?(.*/)?[^/]*\.txt$"),
            ("a[b-d]e", Regexp, r"^a[b-d]e$"),
            (".*", Regexp, r"^\.[^/]*$"),
            ("abc.def", Exact, ""),
            ("abc?def", Regexp, r"^abc[^/]def$"),
            ("**/foo/bar", Suffix, ""),
            ("a(b)c/def", Exact, ""),
            ("a.|)$(}+{bc", Exact, ""),
            ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", Exact, ""),
        ] {
            let (got, got_re) = go_compile(&clean(pattern));
            assert_eq!(got, kind, "{pattern}");
            if kind == Regexp {
                assert_eq!(got_re, re, "{pattern}");
            }
        }
    }

    /// patternmatcher's TestMatch table (Go's filepath.Match cases): matches, and the patterns
    /// refused with ErrBadPattern.
    #[test]
    fn go_filepath_match_cases_as_patternmatcher_reads_them() {
        let cases: &[(&str, &str, Option<bool>)] = &[
            ("abc", "abc", Some(true)),
            ("*", "abc", Some(true)),
            ("*c", "abc", Some(true)),
            ("a*", "a", Some(true)),
            ("a*", "abc", Some(true)),
            ("a*", "ab/c", Some(true)),
            ("a*/b", "abc/b", Some(true)),
            ("a*/b", "a/c/b", Some(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
            ("ab[c]", "abc", Some(true)),
            ("ab[b-d]", "abc", Some(true)),
            ("ab[e-g]", "abc", Some(false)),
            ("ab[^c]", "abc", Some(false)),
            ("ab[^b-d]", "abc", Some(false)),
            ("ab[^e-g]", "abc", Some(true)),
            ("a\\*b", "a*b", Some(true)),
            ("a\\*b", "ab", Some(false)),
            ("a?b", "a☺b", Some(true)),
            ("a[^a]b", "a☺b", Some(true)),
            ("a???b", "a☺b", Some(false)),
            ("a[^a][^a][^a]b", "a☺b", Some(false)),
            ("[a-ζ]*", "α", Some(true)),
            ("*[a-ζ]", "A", Some(false)),
            ("a?b", "a/b", Some(false)),
            ("a*b", "a/b", Some(false)),
            ("[\\]a]", "]", Some(true)),
            ("[\\-]", "-", Some(true)),
            ("[x\\-]", "x", Some(true)),
            ("[x\\-]", "-", Some(true)),
            ("[x\\-]", "z", Some(false)),
            ("[\\-x]", "x", Some(true)),
            ("[\\-x]", "-", Some(true)),
            ("[\\-x]", "a", Some(false)),
            ("[]a]", "]", None),
            ("[-]", "-", None),
            ("[x-]", "x", None),
            ("[-x]", "x", None),
            ("\\", "a", None),
            ("[a-b-c]", "a", None),
            ("[", "a", None),
            ("[^", "a", None),
            ("[^bc", "a", None),
            ("a[", "a", None),
            ("a[", "ab", None),
            ("*x", "xxx", Some(true)),
        ];
        for (pattern, path, want) in cases {
            match (DockerIgnore::parse(pattern), want) {
                (Ok(ig), Some(want)) => {
                    assert_eq!(ig.excludes(path).unwrap(), *want, "{pattern:?} on {path:?}")
                }
                (Err(e), None) => assert!(e.to_string().contains(BAD_PATTERN), "{pattern:?}: {e}"),
                (got, _) => panic!("{pattern:?} on {path:?}: {got:?}"),
            }
        }
        // The other tests of patternmatcher_test.go.
        assert!(excluded("*", "fileutils.go") && excluded("*.go", "fileutils.go"));
        assert!(excluded("!fileutils.go\n*.go", "fileutils.go"));
        for folder in ["docs", "docs/", "docs/*"] {
            assert!(!excluded(&format!("{folder}\n!docs/README.md"), "docs/README.md"), "{folder}");
        }
        assert!(!excluded("*.go\n!fileutils.go", "fileutils.go"));
        assert!(!excluded("", "any/path/there"));
        // A class range Go's regexp refuses passes filepath.Match, then fails every evaluation.
        let ig = ignore("[Local-Only]/\n");
        for _ in 0..2 {
            assert!(ig.excludes("x").unwrap_err().to_string().contains(BAD_PATTERN));
        }
    }

    /// One case (or a few) per behaviour of patternmatcher, written from its source.
    #[test]
    fn each_patternmatcher_behaviour() {
        let cases: &[(&str, &str, bool, &str)] = &[
            // compile: a leading `**` with no other wildcard is "ends with", at any depth.
            ("**.go", "main.go", true, "suffix at the top"),
            ("**.go", "cmd/main.go", true, "suffix below"),
            ("**.go", "internal/x/y.go", true, "suffix deep"),
            ("**.go", "go.mod", false, "suffix is not a name"),
            ("**.go", ".go", true, "the suffix itself"),
            ("**.log", "a/b.log/c", true, "a parent ending in it"),
            ("**file", "profile", true, "suffix inside a name"),
            ("**/x", "x", true, "**/x also matches x"),
            ("**/x", "ax", false, "**/x needs the slash"),
            // A leading `**` followed by another wildcard is a regexp: `(.*/)?` then the rest.
            ("**.g?", "a/b.go", false, "(.*/)? needs a slash before .g?"),
            ("**.g?", ".go", true, "(.*/)? may be empty"),
            ("**/*.md", "docs/a.md", true, "regexp **/"),
            // An inner `**` not before a slash is still `(.*/)?`.
            ("a**b", "ab", true, "inner ** empty"),
            ("a**b", "ax/b", true, "inner ** over a directory"),
            ("a**b", "axb", false, "inner ** needs a slash"),
            // A trailing `**` with nothing special before is a prefix test.
            ("abc**", "abcdef/x", true, "prefix"),
            ("abc**", "ab", false, "prefix too short"),
            ("a.c**", "abcd", false, "a prefix is literal: . is a dot"),
            ("a.c**", "a.cd", true, "prefix with a dot"),
            ("a?**", "ab/x/y", true, "a trailing ** after a wildcard is .*"),
            // No wildcard: an exact comparison, regexp characters are plain.
            ("a^b", "a^b", true, "^ is literal in an exact pattern"),
            ("a$b", "a$b", true, "$ is literal"),
            ("a.b", "axb", false, ". is literal"),
            ("x", "dir/x", false, "a name matches only at the top"),
            // `^` in a regexp pattern is the regexp's anchor: this pattern matches nothing.
            ("a^*", "a^b", false, "^ anchors inside a regexp"),
            // Classes are the regexp's, in Go's syntax.
            ("[[]x", "[x", true, "[[] is a class of ["),
            ("[a-c]*", "b/zz", true, "a class on a parent"),
            ("[^a]", "/", true, "a negated class matches a slash"),
            ("[^a]", "ab", false, "a negated class is one character"),
            ("[!a]", "!", true, "! does not negate in Go"),
            ("[[:digit:]]x", "7x", true, "POSIX class"),
            ("[a&&b]", "&", true, "&& is not an operator in Go"),
            ("\\d", "7", true, "\\d is the regexp's digit class"),
            ("\\d", "\u{0664}", false, "\\d is ASCII in Go"),
            ("\\*", "*", true, "an escaped star"),
            ("x\\b", "x", true, "\\b is the regexp's (ASCII) word boundary"),
            ("x\\b", "x/y", true, "... on the parent"),
            ("a\\x41", "aA", true, "a hex escape"),
            ("a\\.b", "a.b", true, "an escaped dot"),
            ("a\\.b", "axb", false, "an escaped dot is a dot"),
            ("*", "any/thing", true, "* on a parent matches below"),
            ("*", ".hidden", true, "* matches a leading dot"),
            ("?", "é", true, "? is one character, not one byte"),
            ("dir/sub", "dir/sub/deep/file", true, "a parent matches below"),
            ("dir/**", "dir", false, "prefix dir/ is not dir"),
            // Path cleaning of the pattern.
            ("./a/../b/", "b/c", true, "cleaned"),
            ("/docs", "docs/x", true, "leading slash dropped"),
            ("a//b", "a/b", true, "double slash cleaned"),
            ("  a  ", "a", true, "trimmed"),
        ];
        for (pattern, path, want, why) in cases {
            assert_eq!(excluded(pattern, path), *want, "{why}: {pattern:?} on {path:?}");
        }
    }

    #[test]
    fn docker_refuses_these_and_so_do_we_with_its_words() {
        for bad in ["[x-]", "[-x]", "[a-b-c]", "a\\", "[]", "[", "[a", "[]]x", "[^]", "[\\]", "x[a-"] {
            let e = DockerIgnore::parse(&format!("ok\n{bad}\n")).unwrap_err().to_string();
            assert!(e.contains(BAD_PATTERN) && e.contains("line 2"), "{bad:?}: {e}");
        }
        for bad in ["!/.", "!", "!/", " ! "] {
            let e = DockerIgnore::parse(bad).unwrap_err().to_string();
            assert!(e.contains("illegal exclusion pattern: \"!\""), "{bad:?}: {e}");
        }
        // Accepted by filepath.Match, refused by Go's regexp when the pattern is first evaluated.
        for lazy in ["[z-a]*", "\\y*", "*\\1"] {
            let ig = DockerIgnore::parse(lazy).unwrap_or_else(|e| panic!("{lazy:?}: {e}"));
            let e = ig.excludes("x").unwrap_err().to_string();
            assert!(e.contains(BAD_PATTERN), "{lazy:?}: {e}");
        }
        // ... and never evaluated, never an error: an exclusion with nothing excluded yet.
        assert!(!ignore("![z-a]*\n").excludes("x").unwrap());
        for good in ["[[]", "[a\\-]", "]", "a[\\]]", "[\\-x]", "[a-b]c"] {
            assert!(DockerIgnore::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn reading_the_file_as_ignorefile_read_all_does() {
        let ig = ignore("# build only the binary\n*\n!target/x86_64-unknown-linux-gnu/release/e2e-demo\n");
        assert!(ig.excludes("src/main.rs").unwrap());
        assert!(ig.excludes("target/debug/xtask").unwrap());
        assert!(!ig.excludes("target/x86_64-unknown-linux-gnu/release/e2e-demo").unwrap());
        assert!(ig.may_reinclude_below("target"));
        assert!(ig.may_reinclude_below("target/x86_64-unknown-linux-gnu"));
        assert!(!ig.may_reinclude_below("target/debug"), "the walk skips what cannot hold an exception");
        assert!(!ig.may_reinclude_below("src"));
        assert!(ignore("*\n!**.go\n").may_reinclude_below("internal/x"));
        let ig = ignore("/docs\n!docs/keep.md\n  \n#comment\n docs/keep.md \n");
        assert!(ig.excludes("docs/keep.md").unwrap(), "the last matching line wins");
        assert!(ig.excludes("docs/a.md").unwrap() && !ig.excludes("readme.md").unwrap());
        assert!(excluded("\u{feff}secret\n", "secret"), "a BOM is dropped");
        assert!(excluded(" #x\n", "#x"), "# starts a comment only in column 0");
        assert!(!excluded("#x\n", "#x"));
        assert!(excluded("a\r\nb\r\n", "a") && excluded("a\r\nb\r\n", "b"), "CRLF lines");
        assert!(!excluded("*\n! a/../b\n", "b"), "an exclusion is trimmed and cleaned");
    }

    /// The context `*`, `!**.go`, `!go.mod`: Docker sends the module and all Go source.
    #[test]
    fn go_source_at_any_depth_is_reincluded() {
        let ig = ignore("*\n!**.go\n!go.mod\n");
        for sent in ["go.mod", "main.go", "cmd/main.go", "internal/x/y.go"] {
            assert!(!ig.excludes(sent).unwrap(), "{sent}");
        }
        for kept in ["README.md", "cmd/notes.txt", "go.sum"] {
            assert!(ig.excludes(kept).unwrap(), "{kept}");
        }
        let ig = ignore("**.md\n");
        assert!(ig.excludes("docs/deep/a.md").unwrap() && ig.excludes("a.md").unwrap());
    }

    /// An independent model of patternmatcher's documented semantics (a backtracking matcher
    /// over tokens, no regexp), against the implementation on generated patterns and paths.
    #[test]
    fn agrees_with_an_independent_model_on_generated_cases() {
        #[derive(Clone, Copy, PartialEq, Debug)]
        enum Tok {
            Lit(char),
            Star,
            One,
            AnyDirs,
            AnyRest,
        }
        fn tokens(p: &str) -> Vec<Tok> {
            let c: Vec<char> = p.chars().collect();
            let mut out = Vec::new();
            let mut i = 0;
            while i < c.len() {
                if c[i] == '*' && c.get(i + 1) == Some(&'*') {
                    i += 2;
                    if c.get(i) == Some(&'/') {
                        i += 1;
                    }
                    out.push(if i >= c.len() { Tok::AnyRest } else { Tok::AnyDirs });
                    continue;
                }
                out.push(match c[i] {
                    '*' => Tok::Star,
                    '?' => Tok::One,
                    ch => Tok::Lit(ch),
                });
                i += 1;
            }
            out
        }
        fn bt(t: &[Tok], s: &[char]) -> bool {
            match t.first() {
                None => s.is_empty(),
                Some(Tok::Lit(ch)) => s.first() == Some(ch) && bt(&t[1..], &s[1..]),
                Some(Tok::One) => s.first().is_some_and(|c| *c != '/') && bt(&t[1..], &s[1..]),
                Some(Tok::Star) => {
                    (0..=s.len()).take_while(|&k| k == 0 || s[k - 1] != '/').any(|k| bt(&t[1..], &s[k..]))
                }
                Some(Tok::AnyRest) => !s.contains(&'\n'),
                Some(Tok::AnyDirs) => {
                    bt(&t[1..], s) || (1..=s.len()).any(|k| s[k - 1] == '/' && bt(&t[1..], &s[k..]))
                }
            }
        }
        fn model_one(p: &str, path: &str) -> bool {
            let t = tokens(p);
            let wild = |t: &Tok| !matches!(t, Tok::Lit(_));
            if !t.iter().any(wild) {
                return p == path;
            }
            if t[0] == Tok::AnyRest && t.len() == 1 {
                return true;
            }
            if matches!(t[0], Tok::AnyDirs | Tok::AnyRest) && !t[1..].iter().any(wild) {
                let suffix = &p[2..];
                return path.ends_with(suffix) || (suffix.starts_with('/') && path == &suffix[1..]);
            }
            if t.last() == Some(&Tok::AnyRest) && !t[..t.len() - 1].iter().any(wild) {
                return path.starts_with(&p[..p.len() - 2]);
            }
            let s: Vec<char> = path.chars().collect();
            bt(&t, &s)
        }
        fn model(patterns: &[(bool, String)], path: &str) -> bool {
            let parts: Vec<&str> = path.split('/').collect();
            let mut matched = false;
            for (exclusion, p) in patterns {
                if *exclusion != matched {
                    continue;
                }
                let hit = model_one(p, path) || (1..parts.len()).any(|i| model_one(p, &parts[..i].join("/")));
                if hit {
                    matched = !exclusion;
                }
            }
            matched
        }
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let pat_atoms = ["a", "b", ".", "/", "*", "**", "?", "**/", "ab"];
        let path_atoms = ["a", "b", ".a", "ab", "a.b", "b."];
        let mut compared = 0;
        for _ in 0..8_000 {
            let mut patterns = Vec::new();
            for _ in 0..1 + next(3) {
                let raw: String = (0..1 + next(5)).map(|_| pat_atoms[next(pat_atoms.len())]).collect();
                let cleaned = clean(&raw);
                let cleaned = if cleaned.len() > 1 && cleaned.starts_with('/') {
                    cleaned[1..].to_string()
                } else {
                    cleaned
                };
                patterns.push((next(3) == 0, cleaned));
            }
            let segs: Vec<&str> = (0..1 + next(4)).map(|_| path_atoms[next(path_atoms.len())]).collect();
            let path = segs.join("/");
            let text: String =
                patterns.iter().map(|(e, p)| format!("{}{p}\n", if *e { "!" } else { "" })).collect();
            let Ok(ig) = DockerIgnore::parse(&text) else { continue };
            // The model reads the cleaned patterns the file gives (an exclusion is cleaned once
            // more with its `!`, which changes nothing for these atoms).
            assert_eq!(ig.excludes(&path).unwrap(), model(&patterns, &path), "{text:?} on {path:?}");
            compared += 1;
        }
        assert!(compared > 6_000, "{compared}");
    }
}
