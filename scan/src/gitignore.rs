//! gitignore matching as git does it: the pattern syntax of gitignore(5), matched by a port of
//! git's `wildmatch.c` (with `WM_PATHNAME`: `*` and `?` never match `/`, `**` spans directories),
//! and git's precedence (the last matching line of a file decides; a deeper file overrides a
//! shallower one). Used by the walk (`.gitignore`, `.ignore`, `.git/info/exclude`) and for the
//! config's `exclude` patterns.

use std::path::{Path, PathBuf};

/// One parsed gitignore line.
#[derive(Debug, Clone)]
struct Pattern {
    /// The glob (without `!`, the leading `/` and the trailing `/`).
    glob: Vec<u8>,
    /// `!pattern`: a match re-includes.
    negated: bool,
    /// `pattern/`: matches directories only.
    dir_only: bool,
    /// No `/` in the glob: matched against the basename at any depth.
    basename: bool,
    /// How the glob is matched (fast paths for the common shapes).
    shape: Shape,
    /// A glob's longest literal run: a subject without it cannot match (checked before wildmatch).
    required: Vec<u8>,
    /// For a path pattern without `**`: its number of `/`, which a matching path has too.
    slashes: Option<usize>,
}

#[derive(Debug, Clone)]
enum Shape {
    /// No glob characters: equality.
    Literal,
    /// `*` followed by a literal (`*.log`): a suffix test (basename patterns only).
    Suffix(Vec<u8>),
    /// Anything else: wildmatch.
    Glob,
}

/// The patterns of one file (or of a config's `exclude` list), relative to `dir`.
#[derive(Debug, Clone, Default)]
pub struct Gitignore {
    dir: PathBuf,
    patterns: Vec<Pattern>,
    /// The indices of the patterns whose match must end with byte `b`, at `by_last[b]` (a
    /// pattern ending in a literal byte can only match a subject ending in it), and of the others
    /// (ending in `*`, `?`, a class or an escape) in `any_last`: a path is tried against its
    /// last byte's patterns and those, not against every line of a 300-line `.gitignore`.
    by_last: Vec<Vec<usize>>,
    any_last: Vec<usize>,
}

/// What the last matching pattern said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    None,
    Ignore,
    Whitelist,
}

impl Match {
    pub fn is_ignore(self) -> bool {
        self == Match::Ignore
    }
}

/// A pattern that git would read but that cannot mean what its author meant; refused in config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatternError {}

impl Gitignore {
    /// An empty matcher rooted at `dir`.
    pub fn new(dir: &Path) -> Gitignore {
        Gitignore { dir: dir.to_path_buf(), ..Gitignore::default() }
    }

    fn push(&mut self, p: Pattern) {
        let i = self.patterns.len();
        let last = match p.glob.as_slice() {
            [.., b'*' | b'?' | b']' | b'\\'] | [] => None,
            [.., before, _] if *before == b'\\' => None,
            [.., last] => Some(*last),
        };
        match last {
            Some(b) => {
                if self.by_last.is_empty() {
                    self.by_last = vec![Vec::new(); 256];
                }
                self.by_last[usize::from(b)].push(i);
            }
            None => self.any_last.push(i),
        }
        self.patterns.push(p);
    }

    /// The directory patterns are relative to.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Adds every line of a gitignore file's text (comments and blank lines are skipped; lines
    /// git would not match anything with are kept: they match nothing, as in git).
    pub fn add_text(&mut self, text: &[u8]) {
        // git dir.c add_patterns_from_buffer: skip_utf8_bom first.
        let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        for line in text.split(|&b| b == b'\n') {
            if let Some(p) = parse_line(line) {
                self.push(p);
            }
        }
    }

    /// Adds one line, refusing what would silently match nothing or not what was meant: an
    /// unclosed `[`, a trailing `\`, and `{a,b}` (gitignore has no alternatives).
    pub fn add_checked(&mut self, line: &str) -> Result<(), PatternError> {
        let b = line.as_bytes();
        if b.contains(&b'{') || b.contains(&b'}') {
            return Err(PatternError(
                "gitignore patterns have no `{a,b}` alternatives (braces match themselves): write one pattern per alternative".into(),
            ));
        }
        if line.trim_end().ends_with('\\') && !line.trim_end().ends_with("\\\\") {
            return Err(PatternError("a pattern cannot end with `\\`".into()));
        }
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 1,
                b'[' => match class_end(b, i) {
                    Some(end) => i = end,
                    None => return Err(PatternError("unclosed `[` character class".into())),
                },
                _ => {}
            }
            i += 1;
        }
        if let Some(p) = parse_line(b) {
            self.push(p);
        }
        Ok(())
    }

    /// The decision of this file's patterns for `path` (absolute, or relative to the current
    /// directory like `dir`); `Match::None` for paths outside `dir`.
    pub fn matched(&self, path: &Path, is_dir: bool) -> Match {
        let Ok(rel) = path.strip_prefix(&self.dir) else { return Match::None };
        self.matched_rel(rel.as_os_str().as_encoded_bytes(), is_dir)
    }

    /// Like [`Gitignore::matched`], with the path relative to `dir` as bytes (`a/b/c`).
    pub fn matched_rel(&self, rel: &[u8], is_dir: bool) -> Match {
        if rel.is_empty() {
            return Match::None;
        }
        let base = rel.rsplit(|&b| b == b'/').next().unwrap_or(rel);
        let slashes = rel.iter().filter(|&&b| b == b'/').count();
        // The candidates, last line first: this byte's patterns merged with the others.
        let same: &[usize] = match (rel.last(), self.by_last.is_empty()) {
            (Some(&b), false) => &self.by_last[usize::from(b)],
            _ => &[],
        };
        let (mut same, mut any) = (same.iter().rev().peekable(), self.any_last.iter().rev().peekable());
        loop {
            let next = match (same.peek(), any.peek()) {
                (Some(x), Some(y)) if x < y => any.next(),
                (Some(_), _) => same.next(),
                (None, _) => any.next(),
            };
            let Some(&i) = next else { break };
            let p = &self.patterns[i];
            if p.dir_only && !is_dir {
                continue;
            }
            let subject = if p.basename { base } else { rel };
            let hit = match &p.shape {
                Shape::Literal => p.glob == subject,
                Shape::Suffix(s) => subject.ends_with(s) && (!s.is_empty() || !subject.is_empty()),
                Shape::Glob => {
                    p.slashes.is_none_or(|n| n == slashes)
                        && (p.required.is_empty() || contains(subject, &p.required))
                        && wildmatch(&p.glob, subject)
                }
            };
            if hit {
                return if p.negated { Match::Whitelist } else { Match::Ignore };
            }
        }
        Match::None
    }

    /// The decision for `path` or, when it has none, for the nearest of its parents under `dir`
    /// that has one (a file under an ignored directory is ignored).
    pub fn matched_path_or_any_parents(&self, path: &Path, is_dir: bool) -> Match {
        let Ok(rel) = path.strip_prefix(&self.dir) else { return Match::None };
        let rel = rel.as_os_str().as_encoded_bytes();
        let m = self.matched_rel(rel, is_dir);
        if m != Match::None {
            return m;
        }
        // Parents from the top: the first ignored one ignores everything below it.
        let mut end = 0;
        while let Some(i) = rel[end..].iter().position(|&b| b == b'/') {
            end += i;
            if self.matched_rel(&rel[..end], true) == Match::Ignore {
                return Match::Ignore;
            }
            end += 1;
        }
        Match::None
    }
}

/// gitignore(5): trailing spaces are dropped unless escaped; `#` starts a comment; `!` negates;
/// a trailing `/` means directories only; a `/` elsewhere anchors the pattern to the file's
/// directory (a leading one is dropped), otherwise it matches a basename at any depth.
fn parse_line(line: &[u8]) -> Option<Pattern> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut line = trim_trailing_spaces(line);
    if line.is_empty() || line[0] == b'#' {
        return None;
    }
    let negated = line[0] == b'!';
    if negated {
        line = &line[1..];
    }
    let mut dir_only = false;
    if let [rest @ .., b'/'] = line {
        dir_only = true;
        line = rest;
    }
    if line.is_empty() {
        return None;
    }
    let basename = !line.contains(&b'/');
    let glob = line.strip_prefix(b"/").unwrap_or(line).to_vec();
    let special = |b: &u8| matches!(b, b'*' | b'?' | b'[' | b'\\');
    let shape = if !glob.iter().any(special) {
        Shape::Literal
    } else if basename && glob[0] == b'*' && !glob[1..].iter().any(special) {
        Shape::Suffix(glob[1..].to_vec())
    } else {
        Shape::Glob
    };
    // The longest run of bytes that match only themselves (an escaped byte ends a run).
    let mut required: &[u8] = &[];
    let mut run_start = 0;
    let mut i = 0;
    while i <= glob.len() {
        let end_of_run = i == glob.len() || special(&glob[i]) || glob[i] == b'/';
        if end_of_run {
            if i - run_start > required.len() {
                required = &glob[run_start..i];
            }
            // Skip a class whole (its members are not literal), and an escape with its byte.
            if i < glob.len() && glob[i] == b'[' {
                i = class_end(&glob, i).unwrap_or(glob.len());
            } else if i < glob.len() && glob[i] == b'\\' {
                i += 1;
            }
            run_start = i + 1;
        }
        i += 1;
    }
    let required = required.to_vec();
    let has_globstar = glob.windows(2).any(|w| w == b"**");
    let slashes = (!basename && !has_globstar).then(|| glob.iter().filter(|&&b| b == b'/').count());
    Some(Pattern { glob, negated, dir_only, basename, shape, required, slashes })
}

/// git dir.c `trim_trailing_spaces` (git/git, v2.47): read from the left, a backslash takes the
/// next byte with it (so a line ending in three backslashes and a space keeps that space: an
/// escaped backslash, then an escaped space), any other byte ends a run of spaces, and a run of
/// spaces at the end is cut; a backslash at the very end leaves the line as it is.
fn trim_trailing_spaces(line: &[u8]) -> &[u8] {
    let mut last_space = None;
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b' ' => {
                if last_space.is_none() {
                    last_space = Some(i);
                }
            }
            b'\\' => {
                i += 1;
                if i >= line.len() {
                    return line;
                }
                last_space = None;
            }
            _ => last_space = None,
        }
        i += 1;
    }
    match last_space {
        Some(at) => &line[..at],
        None => line,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// The index of the `]` closing the class opened at `open`, as wildmatch reads it.
fn class_end(p: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if matches!(p.get(i), Some(b'!' | b'^')) {
        i += 1;
    }
    // A `]` first in the class is a member.
    if p.get(i) == Some(&b']') {
        i += 1;
    }
    while i < p.len() {
        match p[i] {
            b'\\' => i += 2,
            b'[' if p.get(i + 1) == Some(&b':') => {
                let close = p[i + 2..].windows(2).position(|w| w == b":]")?;
                i += 2 + close + 2;
            }
            b']' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wm {
    Match,
    NoMatch,
    AbortAll,
    AbortToStarStar,
}

/// git's `wildmatch(pattern, text, WM_PATHNAME)`.
pub fn wildmatch(pattern: &[u8], text: &[u8]) -> bool {
    dowild(pattern, text) == Wm::Match
}

/// A port of `dowild` from git's wildmatch.c (same structure, same abort codes, so the work stays
/// polynomial on patterns with many stars).
fn dowild(pat: &[u8], text: &[u8]) -> Wm {
    #[cfg(test)]
    tests::CALLS.with(|c| c.set(c.get() + 1));
    let (mut p, mut t) = (0usize, 0usize);
    while p < pat.len() {
        let mut p_ch = pat[p];
        let t_ch = text.get(t).copied();
        if t_ch.is_none() && p_ch != b'*' {
            return Wm::AbortAll;
        }
        let t_ch = t_ch.unwrap_or(0);
        match p_ch {
            b'?' => {
                if t_ch == b'/' {
                    return Wm::NoMatch;
                }
            }
            b'*' => {
                let match_slash;
                p += 1;
                if pat.get(p) == Some(&b'*') {
                    let prev = p.checked_sub(2);
                    while pat.get(p) == Some(&b'*') {
                        p += 1;
                    }
                    let at_start = prev.is_none_or(|i| pat[i] == b'/');
                    let mut rest = &pat[p..];
                    if at_start && (rest.is_empty() || rest[0] == b'/' || rest.starts_with(b"\\/")) {
                        // `**/**/` matches what one `**/` matches (zero or more directories,
                        // git wildmatch.c's `**/` case): the repeats are skipped, or each would
                        // multiply the tries (ten of them on a 28-deep tree took 23.8 s).
                        while rest.first() == Some(&b'/') {
                            let stars = pat[p + 1..].iter().take_while(|&&b| b == b'*').count();
                            if stars < 2 || pat.get(p + 1 + stars) != Some(&b'/') {
                                break;
                            }
                            p += 1 + stars;
                            rest = &pat[p..];
                        }
                        // `**/`: try matching nothing first (`a/**/b` matches `a/b`).
                        if rest.first() == Some(&b'/') && dowild(&pat[p + 1..], &text[t..]) == Wm::Match {
                            return Wm::Match;
                        }
                        match_slash = true;
                    } else {
                        match_slash = false;
                    }
                } else {
                    match_slash = false;
                }
                if p >= pat.len() {
                    // Trailing `**` matches everything; a trailing `*` only what has no `/`.
                    if !match_slash && text[t..].contains(&b'/') {
                        return Wm::NoMatch;
                    }
                    return Wm::Match;
                } else if !match_slash && pat[p] == b'/' {
                    // One `*` then `/`: the rest of this directory name.
                    match text[t..].iter().position(|&b| b == b'/') {
                        Some(i) => {
                            t += i + 1;
                            p += 1;
                            continue;
                        }
                        None => return Wm::NoMatch,
                    }
                }
                while let Some(&tc) = text.get(t) {
                    let mut tc = tc;
                    // A literal after the star: skip ahead to its next occurrence.
                    if !matches!(pat[p], b'*' | b'?' | b'[' | b'\\') {
                        let want = pat[p];
                        while t < text.len() && (match_slash || text[t] != b'/') && text[t] != want {
                            t += 1;
                        }
                        match text.get(t) {
                            Some(&c) if c == want => tc = c,
                            _ => return Wm::NoMatch,
                        }
                    }
                    let matched = dowild(&pat[p..], &text[t..]);
                    if matched != Wm::NoMatch {
                        if !match_slash || matched != Wm::AbortToStarStar {
                            return matched;
                        }
                    } else if !match_slash && tc == b'/' {
                        return Wm::AbortToStarStar;
                    }
                    t += 1;
                }
                return Wm::AbortAll;
            }
            b'[' => {
                p += 1;
                let Some(&first) = pat.get(p) else { return Wm::AbortAll };
                let negated = first == b'!' || first == b'^';
                if negated {
                    p += 1;
                }
                let mut prev: u8 = 0;
                let mut matched = false;
                let mut first_member = true;
                loop {
                    let Some(&c) = pat.get(p) else { return Wm::AbortAll };
                    if c == b']' && !first_member {
                        break;
                    }
                    first_member = false;
                    p_ch = c;
                    if c == b'\\' {
                        p += 1;
                        let Some(&e) = pat.get(p) else { return Wm::AbortAll };
                        p_ch = e;
                        if t_ch == e {
                            matched = true;
                        }
                    } else if c == b'-' && prev != 0 && pat.get(p + 1).is_some_and(|&n| n != b']') {
                        p += 1;
                        let mut hi = pat[p];
                        if hi == b'\\' {
                            p += 1;
                            let Some(&e) = pat.get(p) else { return Wm::AbortAll };
                            hi = e;
                        }
                        if t_ch <= hi && t_ch >= prev {
                            matched = true;
                        }
                        p_ch = 0;
                    } else if c == b'[' && pat.get(p + 1) == Some(&b':') {
                        let Some(len) = pat[p + 2..].iter().position(|&b| b == b']') else {
                            return Wm::AbortAll;
                        };
                        let name = &pat[p + 2..p + 2 + len];
                        let Some(name) = name.strip_suffix(b":") else {
                            // `[:` without `:]`: a literal `[`.
                            if t_ch == b'[' {
                                matched = true;
                            }
                            prev = b'[';
                            p += 1;
                            continue;
                        };
                        let hit = match name {
                            b"alnum" => t_ch.is_ascii_alphanumeric(),
                            b"alpha" => t_ch.is_ascii_alphabetic(),
                            b"blank" => t_ch == b' ' || t_ch == b'\t',
                            b"cntrl" => t_ch.is_ascii_control(),
                            b"digit" => t_ch.is_ascii_digit(),
                            b"graph" => t_ch.is_ascii_graphic(),
                            b"lower" => t_ch.is_ascii_lowercase(),
                            b"print" => t_ch.is_ascii_graphic() || t_ch == b' ',
                            b"punct" => t_ch.is_ascii_punctuation(),
                            b"space" => t_ch.is_ascii_whitespace(),
                            b"upper" => t_ch.is_ascii_uppercase(),
                            b"xdigit" => t_ch.is_ascii_hexdigit(),
                            _ => return Wm::AbortAll,
                        };
                        matched |= hit;
                        p += 2 + len;
                        p_ch = 0;
                    } else if t_ch == c {
                        matched = true;
                    }
                    prev = p_ch;
                    p += 1;
                }
                if matched == negated || t_ch == b'/' {
                    return Wm::NoMatch;
                }
            }
            b'\\' => {
                p += 1;
                match pat.get(p) {
                    Some(&c) if c == t_ch => {}
                    _ => return Wm::NoMatch,
                }
            }
            c => {
                if c != t_ch {
                    return Wm::NoMatch;
                }
            }
        }
        p += 1;
        t += 1;
    }
    if t < text.len() {
        Wm::NoMatch
    } else {
        Wm::Match
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// How many times `dowild` ran on this thread: the work a match takes, counted.
        pub(super) static CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    fn calls_for(f: impl FnOnce() -> bool) -> (bool, u64) {
        CALLS.with(|c| c.set(0));
        let r = f();
        (r, CALLS.with(|c| c.get()))
    }

    /// Consecutive `**/` cost what one does (issue 25.10: ten on a 28-deep tree took 23.8 s).
    #[test]
    fn consecutive_double_star_slashes_do_not_multiply_the_work() {
        let deep: Vec<u8> = (0..30).map(|_| "d").collect::<Vec<_>>().join("/").into_bytes();
        let pattern = "**/".repeat(10) + "b";
        let (hit, calls) = calls_for(|| wildmatch(pattern.as_bytes(), &deep));
        assert!(!hit);
        assert!(calls < 2_000, "{calls} dowild calls");
        let mut with_b = deep.clone();
        with_b.extend_from_slice(b"/b");
        assert!(wildmatch(pattern.as_bytes(), &with_b));
        // The same answers as one `**/`, across shapes.
        for (p, t) in [
            ("a/**/**/b", "a/b"),
            ("a/**/**/b", "a/x/y/b"),
            ("a/**/***/b", "a/x/b"),
            ("**/**/b", "b"),
            ("a/**/**/*.c", "a/x/y.c"),
            ("a/**/**", "a/x"),
            ("a/**/**/b", "ab"),
            ("a/**/**/b", "a/xb"),
        ] {
            let one = p.replace("/**/**/", "/**/").replace("**/**/", "**/").replace("/***/", "/**/");
            assert_eq!(
                wildmatch(p.as_bytes(), t.as_bytes()),
                wildmatch(one.as_bytes(), t.as_bytes()),
                "{p} {t}"
            );
        }
        let mut g = Gitignore::new(Path::new("/r"));
        g.add_text("**/**/**/**/**/**/**/**/**/**/b\n".as_bytes());
        let (m, calls) = calls_for(|| g.matched_rel(&deep, false).is_ignore());
        assert!(!m && calls < 2_000, "{calls}");
    }

    #[test]
    fn a_bom_is_stripped_and_trailing_spaces_follow_gits_dir_c() {
        let mut g = Gitignore::new(Path::new("/r"));
        g.add_text(b"\xEF\xBB\xBFsecret.txt\nother\n");
        assert!(g.matched_rel(b"secret.txt", false).is_ignore(), "the first line survives a BOM");
        assert!(g.matched_rel(b"other", false).is_ignore());
        for (line, name, ignored) in [
            ("a ", "a", true),
            ("a  \t", "a  \t", true),
            ("a\\ ", "a ", true),
            ("a\\\\ ", "a\\", true),
            ("a\\\\\\ ", "a\\ ", true),
            ("a\\\\\\ ", "a\\", false),
            ("a\\  ", "a ", true),
            ("a\\ \\ ", "a  ", true),
            ("a\\", "a\\", false),
        ] {
            let mut g = Gitignore::new(Path::new("/r"));
            g.add_text(line.as_bytes());
            assert_eq!(g.matched_rel(name.as_bytes(), false).is_ignore(), ignored, "{line:?} on {name:?}");
        }
    }

    /// The decision of every pattern tried from the last, by wildmatch alone: what the last-byte
    /// buckets and the literal and suffix shortcuts must decide too.
    fn matched_one_by_one(g: &Gitignore, rel: &[u8], is_dir: bool) -> Match {
        let base = rel.rsplit(|&b| b == b'/').next().unwrap_or(rel);
        for p in g.patterns.iter().rev() {
            if p.dir_only && !is_dir {
                continue;
            }
            let subject = if p.basename { base } else { rel };
            if wildmatch(&p.glob, subject) {
                return if p.negated { Match::Whitelist } else { Match::Ignore };
            }
        }
        Match::None
    }

    #[test]
    fn the_fast_paths_decide_as_the_last_matching_line_does() {
        // Every combination of a few lines (literal and not, negated, dir-only, anchored) over
        // paths that hit them: a pseudo-random walk, reproducible.
        let lines = [
            "a",
            "!a",
            "a/",
            "b",
            "/a",
            "x/a",
            "!x/a",
            "*.log",
            "!keep.log",
            "a*",
            "!b",
            "x/",
            "**/a",
            "x/*.log",
            "keep.log",
            "x/[ab]",
            "!?",
            "\\*",
            "a\\b",
            "*g",
            "!x/**",
            "[!k]*.log",
            "b\\ ",
        ];
        let paths: [&[u8]; 13] = [
            b"a",
            b"b",
            b"x/a",
            b"y/a",
            b"keep.log",
            b"x/keep.log",
            b"ab",
            b"x",
            b"x/b",
            b"*",
            b"b ",
            b"g",
            b"x/y/z.log",
        ];
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..4000 {
            let mut g = Gitignore::new(Path::new("/r"));
            let mut text = String::new();
            for _ in 0..(seed % 7) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                text.push_str(lines[seed as usize % lines.len()]);
                text.push('\n');
            }
            seed = seed.wrapping_add(1);
            g.add_text(text.as_bytes());
            for path in paths {
                for is_dir in [false, true] {
                    assert_eq!(
                        g.matched_rel(path, is_dir),
                        matched_one_by_one(&g, path, is_dir),
                        "{text:?} on {:?} (dir: {is_dir})",
                        String::from_utf8_lossy(path)
                    );
                }
            }
        }
    }

    fn ignored(lines: &str, path: &str, is_dir: bool) -> Match {
        let mut g = Gitignore::new(Path::new("/r"));
        g.add_text(lines.as_bytes());
        g.matched_path_or_any_parents(&Path::new("/r").join(path), is_dir)
    }

    // Cases from git's t/t3070-wildmatch.sh (the `wildmatch` column, WM_PATHNAME).
    #[test]
    fn wildmatch_agrees_with_gits_test_table() {
        let yes = [
            ("foo", "foo"),
            ("???", "foo"),
            ("*", "foo"),
            ("f*", "foo"),
            ("*f", "f"),
            ("*foo*", "foo"),
            ("*ob*a*r*", "foobar"),
            ("*ab", "aaaaaaabababab"),
            ("foo\\*", "foo*"),
            ("[ten]", "t"),
            ("**[!te]", "foo"),
            ("t[a-g]n", "ten"),
            ("t[!a-g]n", "ton"),
            ("t[^a-g]n", "ton"),
            ("a[]]b", "a]b"),
            ("a[]-]b", "a-b"),
            ("a[]a-]b", "aab"),
            ("]", "]"),
            ("**/foo", "foo"),
            ("**/foo", "XXX/foo"),
            ("**/foo", "bar/baz/foo"),
            ("*/foo", "bar/foo"),
            ("**/bar*", "foo/bar"),
            ("foo/**/bar", "foo/bar"),
            ("foo/**/bar", "foo/a/b/bar"),
            ("foo/**", "foo/a/b"),
            ("**", "a/b/c"),
            ("[[:digit:][:upper:][:space:]]", "1"),
            ("[[:xdigit:]]", "f"),
            ("-*-*-*-*-*-*-12-*-*-*-m-*-*-*", "-adobe-courier-bold-o-normal--12-120-75-75-m-70-iso8859-1"),
            (
                "XXX/*/*/*/*/*/*/12/*/*/*/m/*/*/*",
                "XXX/adobe/courier/bold/o/normal//12/120/75/75/m/70/iso8859/1",
            ),
        ];
        let no = [
            ("bar", "foo"),
            ("??", "foo"),
            ("foo\\*", "foobar"),
            ("*f", "foo"),
            ("[!ten]", "ten"),
            ("t[!a-g]n", "ten"),
            ("a[]]b", "ab"),
            ("**/foo", "foo/bar"),
            ("*/foo", "bar/baz/foo"),
            ("**/bar*", "foo/bar/baz"),
            ("foo?bar", "foo/bar"),
            ("foo[/]bar", "foo/bar"),
            ("f[^eiu][^eiu][^eiu][^eiu][^eiu]r", "foo/bar"),
            ("*", "foo/bar"),
            ("[", "["),
            ("a[", "a["),
            ("-*-*-*-*-*-*-12-*-*-*-m-*-*-*", "-adobe-courier-bold-o-normal--12-120-75-75-X-70-iso8859-1"),
            (
                "XXX/*/*/*/*/*/*/12/*/*/*/m/*/*/*",
                "XXX/adobe/courier/bold/o/normal//12/120/75/75/X/70/iso8859/1",
            ),
            (
                "*a*b*c*d*e*f*g*h*i*j*k*l*m*n*o*p*q*r*s*t*u*v*w*x*y*z*",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ),
        ];
        for (p, t) in yes {
            assert!(wildmatch(p.as_bytes(), t.as_bytes()), "{p} should match {t}");
        }
        for (p, t) in no {
            assert!(!wildmatch(p.as_bytes(), t.as_bytes()), "{p} should not match {t}");
        }
    }

    #[test]
    fn gitignore_lines_mean_what_gitignore_5_says() {
        // A name without a slash matches at any depth; a trailing slash only directories.
        assert_eq!(ignored("target\n", "a/target", false), Match::Ignore);
        assert_eq!(ignored("build/\n", "x/build", false), Match::None);
        assert_eq!(ignored("build/\n", "x/build/out.o", false), Match::Ignore);
        // A slash anchors to the file's directory.
        assert_eq!(ignored("/vendor\n", "vendor", true), Match::Ignore);
        assert_eq!(ignored("/vendor\n", "a/vendor", true), Match::None);
        assert_eq!(ignored("doc/*.txt\n", "doc/a.txt", false), Match::Ignore);
        assert_eq!(ignored("doc/*.txt\n", "doc/x/a.txt", false), Match::None);
        // Later lines win; `!` re-includes.
        assert_eq!(ignored("*.log\n!keep.log\n", "keep.log", false), Match::Whitelist);
        assert_eq!(ignored("!keep.log\n*.log\n", "keep.log", false), Match::Ignore);
        // Comments, escapes and trailing spaces.
        assert_eq!(ignored("# x\n\\#x\n", "#x", false), Match::Ignore);
        assert_eq!(ignored("a \n", "a", false), Match::Ignore);
        assert_eq!(ignored("a\\ \n", "a ", false), Match::Ignore);
        assert_eq!(ignored("\\!x\n", "!x", false), Match::Ignore);
        assert_eq!(ignored("*.log\r\n", "a.log", false), Match::Ignore);
        // Globs (checked for their literal run, then matched), anchored by their slashes.
        assert_eq!(ignored("*.final[0-9]*\n", "x/a.final3b", false), Match::Ignore);
        assert_eq!(ignored("*.final[0-9]*\n", "a.finalx", false), Match::None);
        assert_eq!(ignored("*.py[cod]\n", "m.pyc", false), Match::Ignore);
        assert_eq!(ignored("/*.md\n!/README.md\n", "NOTES.md", false), Match::Ignore);
        assert_eq!(ignored("/*.md\n!/README.md\n", "README.md", false), Match::Whitelist);
        assert_eq!(ignored("/*.md\n", "docs/a.md", false), Match::None);
        assert_eq!(ignored("a/*/c\n", "a/b/c", false), Match::Ignore);
        assert_eq!(ignored("a/**/c\n", "a/b/d/c", false), Match::Ignore);
        assert_eq!(ignored("a\\*b\n", "a*b", false), Match::Ignore);
    }

    #[test]
    fn config_patterns_that_cannot_mean_what_they_say_are_refused() {
        let mut g = Gitignore::new(Path::new("/r"));
        assert!(g.add_checked("a/{b").is_err());
        assert!(g.add_checked("*.{yaml,yml}").is_err());
        assert!(g.add_checked("a[bc").is_err());
        assert!(g.add_checked("a\\").is_err());
        assert!(g.add_checked("a[]]b").is_ok());
        assert!(g.add_checked("[[:digit:]]x").is_ok());
        assert!(g.add_checked("vendor/**").is_ok());
    }

    #[test]
    fn any_bytes_never_panic() {
        let inputs: [&[u8]; 9] = [b"[", b"[!", b"[a-", b"[[:", b"[[:x", b"\\", b"**/", b"[\\", b"a[b-\\"];
        for p in inputs {
            for t in [&b""[..], b"a", b"/", b"a/b", b"[", b"\\"] {
                let _ = wildmatch(p, t);
            }
            let _ = parse_line(p);
            let _ = Gitignore::new(Path::new("/")).add_checked(&String::from_utf8_lossy(p));
        }
    }
}
