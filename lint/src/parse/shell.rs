//! A small POSIX shell reader for linting: words with their byte spans, operators, redirections,
//! comments and here-documents, grouped into simple commands.
//!
//! It does not expand anything: a word's `value` is its text with quotes removed, and `$VAR`,
//! `${..}`, `$(..)` and backquotes stay inside the word as written. That is what the lints need
//! ("is this word the program `dnf`?", "where does this command start and end?").

use std::ops::Range;

/// A token and where it is in the source (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Word(Word),
    /// `&&`, `||`, `;`, `;;`, `|`, `|&`, `&`, `(`, `)`, or `\n`.
    Op(&'static str, Range<usize>),
    /// `>`, `2>&1`, `<`, `<<` ... with its target word (None when the operator carries it).
    Redirect(Range<usize>, Option<Word>),
    /// The body of a here-document (the lines between the operator's line and its delimiter).
    Heredoc(Heredoc),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Text with quoting removed (expansions kept as written).
    pub value: String,
    pub span: Range<usize>,
    /// Any part of it was quoted or escaped.
    pub quoted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub delimiter: String,
    pub body: Range<usize>,
    /// Index (in the token list) of the redirect that opened it.
    pub opener: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellError {
    pub offset: usize,
    pub message: String,
}

/// Reads `src` into tokens.
pub fn tokenize(src: &str) -> Result<Vec<Token>, ShellError> {
    Lexer { src, bytes: src.as_bytes(), pos: 0, tokens: Vec::new(), pending: Vec::new() }.run()
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    tokens: Vec<Token>,
    /// Here-documents whose bodies start after the next newline: (delimiter, strip tabs, opener).
    pending: Vec<(String, bool, usize)>,
}

impl Lexer<'_> {
    fn run(mut self) -> Result<Vec<Token>, ShellError> {
        while self.pos < self.bytes.len() {
            let c = self.bytes[self.pos];
            match c {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'\\' if self.peek(1) == Some(b'\n') => self.pos += 2,
                b'#' => {
                    while self.pos < self.bytes.len() && self.bytes[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                b'\n' => {
                    self.tokens.push(Token::Op("\n", self.pos..self.pos + 1));
                    self.pos += 1;
                    self.read_heredoc_bodies()?;
                }
                b'&' | b'|' | b';' | b'(' | b')' => self.operator(),
                b'<' | b'>' => self.redirect()?,
                b'0'..=b'9' if self.is_fd_redirect() => self.redirect()?,
                _ => {
                    let word = self.word()?;
                    self.tokens.push(Token::Word(word));
                }
            }
        }
        if let Some((delimiter, _, _)) = self.pending.first() {
            return Err(ShellError {
                offset: self.pos,
                message: format!("here-document `{delimiter}` has no body or terminator"),
            });
        }
        Ok(self.tokens)
    }

    fn peek(&self, n: usize) -> Option<u8> {
        self.bytes.get(self.pos + n).copied()
    }

    fn operator(&mut self) {
        let start = self.pos;
        // Bytes, not str: the byte after an operator may start a multi-byte character.
        let two = &self.bytes[start..(start + 2).min(self.bytes.len())];
        let op: &'static str = match two {
            b"&&" => "&&",
            b"||" => "||",
            b";;" => ";;",
            b"|&" => "|&",
            _ => match self.bytes[start] {
                b'&' => "&",
                b'|' => "|",
                b';' => ";",
                b'(' => "(",
                _ => ")",
            },
        };
        self.pos += op.len();
        self.tokens.push(Token::Op(op, start..self.pos));
    }

    fn is_fd_redirect(&self) -> bool {
        let mut i = self.pos;
        while i < self.bytes.len() && self.bytes[i].is_ascii_digit() {
            i += 1;
        }
        // Only at the start of a word: `2>` is a redirect, `a2>` is a word then a redirect.
        let at_word_start = self.pos == 0 || b" \t\n;&|()".contains(&self.bytes[self.pos - 1]);
        at_word_start && i < self.bytes.len() && (self.bytes[i] == b'>' || self.bytes[i] == b'<')
    }

    fn redirect(&mut self) -> Result<(), ShellError> {
        let start = self.pos;
        while self.bytes[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
        let rest = &self.src[self.pos..];
        let op_len = ["<<<", "<<-", "<<", ">>", ">&", "<&", "&>", ">|", "<>", "<", ">"]
            .iter()
            .find(|op| rest.starts_with(**op))
            .map(|op| op.len())
            .unwrap_or(1);
        let op = &self.src[self.pos..self.pos + op_len];
        self.pos += op_len;
        // `>&2`, `2>&1`: the target is part of the operator.
        if op.ends_with('&') {
            while self.pos < self.bytes.len()
                && (self.bytes[self.pos].is_ascii_digit() || self.bytes[self.pos] == b'-')
            {
                self.pos += 1;
            }
            if self.pos > start + op_len {
                self.tokens.push(Token::Redirect(start..self.pos, None));
                return Ok(());
            }
        }
        while self.pos < self.bytes.len() && matches!(self.bytes[self.pos], b' ' | b'\t') {
            self.pos += 1;
        }
        let target = if self.pos < self.bytes.len() && !b"\n;&|()<>".contains(&self.bytes[self.pos]) {
            Some(self.word()?)
        } else {
            None
        };
        if op == "<<" || op == "<<-" {
            let Some(target) = &target else {
                return Err(ShellError {
                    offset: start,
                    message: "here-document without a delimiter".into(),
                });
            };
            self.pending.push((target.value.clone(), op == "<<-", self.tokens.len()));
        }
        self.tokens.push(Token::Redirect(start..self.pos, target));
        Ok(())
    }

    fn read_heredoc_bodies(&mut self) -> Result<(), ShellError> {
        for (delimiter, strip_tabs, opener) in std::mem::take(&mut self.pending) {
            let body_start = self.pos;
            loop {
                if self.pos >= self.bytes.len() {
                    return Err(ShellError {
                        offset: body_start,
                        message: format!("here-document `{delimiter}` is not terminated"),
                    });
                }
                let line_end =
                    self.src[self.pos..].find('\n').map(|i| self.pos + i).unwrap_or(self.src.len());
                let line = self.src[self.pos..line_end].trim_end_matches('\r');
                let line = if strip_tabs { line.trim_start_matches('\t') } else { line };
                if line == delimiter {
                    self.tokens.push(Token::Heredoc(Heredoc {
                        delimiter,
                        body: body_start..self.pos,
                        opener,
                    }));
                    self.pos = (line_end + 1).min(self.src.len());
                    break;
                }
                self.pos = (line_end + 1).min(self.src.len());
            }
        }
        Ok(())
    }

    fn word(&mut self) -> Result<Word, ShellError> {
        let start = self.pos;
        let mut value = String::new();
        let mut quoted = false;
        while self.pos < self.bytes.len() {
            let c = self.bytes[self.pos];
            match c {
                b' ' | b'\t' | b'\r' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>' => break,
                b'\\' => {
                    quoted = true;
                    match self.peek(1) {
                        Some(b'\n') => self.pos += 2,
                        Some(_) => {
                            let ch = self.char_at(self.pos + 1);
                            value.push(ch);
                            self.pos += 1 + ch.len_utf8();
                        }
                        None => self.pos += 1,
                    }
                }
                b'\'' => {
                    quoted = true;
                    let end = self.src[self.pos + 1..].find('\'').ok_or_else(|| ShellError {
                        offset: self.pos,
                        message: "unterminated single quote".into(),
                    })?;
                    value.push_str(&self.src[self.pos + 1..self.pos + 1 + end]);
                    self.pos += end + 2;
                }
                b'"' => {
                    quoted = true;
                    let open = self.pos;
                    self.pos += 1;
                    loop {
                        match self.bytes.get(self.pos) {
                            None => {
                                return Err(ShellError {
                                    offset: open,
                                    message: "unterminated double quote".into(),
                                })
                            }
                            Some(b'"') => {
                                self.pos += 1;
                                break;
                            }
                            Some(b'\\')
                                if matches!(self.peek(1), Some(b'$' | b'`' | b'"' | b'\\' | b'\n')) =>
                            {
                                if self.peek(1) != Some(b'\n') {
                                    value.push(self.bytes[self.pos + 1] as char);
                                }
                                self.pos += 2;
                            }
                            Some(b'$') if matches!(self.peek(1), Some(b'(' | b'{')) => {
                                let end = self.expansion_end(self.pos)?;
                                value.push_str(&self.src[self.pos..end]);
                                self.pos = end;
                            }
                            Some(b'`') => {
                                let end = self.backquote_end(self.pos)?;
                                value.push_str(&self.src[self.pos..end]);
                                self.pos = end;
                            }
                            Some(_) => {
                                let ch = self.char_at(self.pos);
                                value.push(ch);
                                self.pos += ch.len_utf8();
                            }
                        }
                    }
                }
                b'$' if matches!(self.peek(1), Some(b'(' | b'{')) => {
                    let end = self.expansion_end(self.pos)?;
                    value.push_str(&self.src[self.pos..end]);
                    self.pos = end;
                }
                b'`' => {
                    let end = self.backquote_end(self.pos)?;
                    value.push_str(&self.src[self.pos..end]);
                    self.pos = end;
                }
                _ => {
                    let ch = self.char_at(self.pos);
                    value.push(ch);
                    self.pos += ch.len_utf8();
                }
            }
        }
        Ok(Word { value, span: start..self.pos, quoted })
    }

    fn char_at(&self, at: usize) -> char {
        self.src[at..].chars().next().unwrap_or('\0')
    }

    /// End (exclusive) of `$( ... )` or `${ ... }` starting at `at`, nesting and quotes aware.
    fn expansion_end(&self, at: usize) -> Result<usize, ShellError> {
        let (open, close) = if self.bytes[at + 1] == b'(' { (b'(', b')') } else { (b'{', b'}') };
        let mut depth = 0usize;
        let mut i = at + 1;
        while i < self.bytes.len() {
            match self.bytes[i] {
                b'\\' => i += 1,
                b'\'' if open == b'(' => {
                    i += self.src[i + 1..].find('\'').map(|e| e + 1).unwrap_or(self.bytes.len());
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Err(ShellError { offset: at, message: format!("unterminated `${}`", open as char) })
    }

    fn backquote_end(&self, at: usize) -> Result<usize, ShellError> {
        let mut i = at + 1;
        while i < self.bytes.len() {
            match self.bytes[i] {
                b'\\' => i += 1,
                b'`' => return Ok(i + 1),
                _ => {}
            }
            i += 1;
        }
        Err(ShellError { offset: at, message: "unterminated backquote".into() })
    }
}

/// One simple command: its words (assignments and the program included), redirections and the
/// operators around it.
#[derive(Debug, Clone)]
pub struct Command {
    pub words: Vec<Word>,
    pub redirects: Vec<(Range<usize>, Option<Word>)>,
    /// Indices into the token list of the heredoc redirects this command opened.
    pub heredocs: Vec<Heredoc>,
    /// From the first to the last token of the command (reserved words excluded).
    pub span: Range<usize>,
    /// The operator before it (None at the start of the script).
    pub before: Option<&'static str>,
    /// The operator after it (None at the end of the script).
    pub after: Option<&'static str>,
    /// Where the next command starts (for removing `cmd && ` up to it).
    pub next_start: Option<usize>,
    /// Where the previous command ended (for removing ` && cmd` from it).
    pub prev_end: Option<usize>,
    /// Preceded by a reserved word (`then`, `do`, `else`, `!`, `{` ...).
    pub after_keyword: bool,
    /// Followed directly by a closing reserved word (`fi`, `done`, `}`, `esac`).
    pub before_closer: bool,
}

const OPENERS: &[&str] = &["if", "then", "else", "elif", "do", "while", "until", "!", "{", "time"];
const CLOSERS: &[&str] = &["fi", "done", "}", "esac"];

impl Command {
    /// The words after the assignments: `A=1 sudo dnf -y update` → `sudo dnf -y update`.
    pub fn argv(&self) -> &[Word] {
        let skip = self.words.iter().take_while(|w| is_assignment(&w.value)).count();
        &self.words[skip..]
    }
}

/// `NAME=value` with a valid shell name.
pub fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

/// A command that begins at `span`.
fn start(
    span: Range<usize>,
    before: Option<&'static str>,
    prev_end: Option<usize>,
    after_keyword: bool,
) -> Command {
    Command {
        words: Vec::new(),
        redirects: Vec::new(),
        heredocs: Vec::new(),
        span,
        before,
        after: None,
        next_start: None,
        prev_end,
        after_keyword,
        before_closer: false,
    }
}

/// Groups tokens into simple commands, in source order.
pub fn commands(tokens: &[Token]) -> Vec<Command> {
    let mut out: Vec<Command> = Vec::new();
    let mut current: Option<Command> = None;
    let mut before: Option<&'static str> = None;
    let mut after_keyword = false;
    let mut prev_end: Option<usize> = None;

    let finish = |current: &mut Option<Command>, out: &mut Vec<Command>, op: Option<&'static str>| {
        if let Some(mut cmd) = current.take() {
            cmd.after = op;
            out.push(cmd);
        }
    };

    for token in tokens {
        match token {
            Token::Word(word) => {
                let reserved = current.is_none();
                if reserved && OPENERS.contains(&word.value.as_str()) && !word.quoted {
                    after_keyword = true;
                    continue;
                }
                if reserved && CLOSERS.contains(&word.value.as_str()) && !word.quoted {
                    if let Some(last) = out.last_mut() {
                        if last.after.is_some_and(|op| op == ";" || op == "\n")
                            && last.span.end <= word.span.start
                        {
                            last.before_closer = true;
                        }
                    }
                    after_keyword = false;
                    continue;
                }
                let cmd =
                    current.get_or_insert_with(|| start(word.span.clone(), before, prev_end, after_keyword));
                cmd.span.end = word.span.end;
                cmd.words.push(word.clone());
            }
            Token::Redirect(span, target) => {
                let cmd = current.get_or_insert_with(|| start(span.clone(), before, prev_end, after_keyword));
                cmd.span.end = span.end;
                cmd.redirects.push((span.clone(), target.clone()));
            }
            Token::Heredoc(doc) => {
                // Attach to the command that opened it (the last one with that redirect).
                if let Some(cmd) = current.as_mut() {
                    cmd.heredocs.push(doc.clone());
                } else if let Some(cmd) = out.last_mut() {
                    cmd.heredocs.push(doc.clone());
                }
            }
            Token::Op(op, span) => {
                if let Some(cmd) = current.as_ref() {
                    prev_end = Some(cmd.span.end);
                }
                finish(&mut current, &mut out, Some(op));
                before = Some(op);
                after_keyword = *op == "(";
                let _ = span;
            }
        }
    }
    finish(&mut current, &mut out, None);
    // Where each command's successor starts.
    for i in 0..out.len().saturating_sub(1) {
        out[i].next_start = Some(out[i + 1].span.start);
    }
    out
}

/// `/usr/bin/dnf` → `dnf`.
pub fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// Index of the program after `sudo`, `env A=B`, `command`, `exec`, `nice`, `nohup`, `time`.
pub fn program_index(argv: &[Word]) -> Option<usize> {
    let mut i = 0;
    while i < argv.len() {
        match basename(&argv[i].value) {
            "sudo" => {
                i += 1;
                while i < argv.len() && argv[i].value.starts_with('-') {
                    let takes_value = ["-u", "-g", "-p", "-C", "-U", "-r", "-t", "-D", "-h"]
                        .contains(&argv[i].value.as_str());
                    i += if takes_value { 2 } else { 1 };
                }
            }
            "env" => {
                i += 1;
                while i < argv.len() && (argv[i].value.starts_with('-') || is_assignment(&argv[i].value)) {
                    let takes_value = ["-u", "-C", "-S"].contains(&argv[i].value.as_str());
                    i += if takes_value { 2 } else { 1 };
                }
            }
            "command" | "exec" | "nice" | "nohup" | "time" => {
                i += 1;
                while i < argv.len() && argv[i].value.starts_with('-') {
                    i += 1;
                }
            }
            _ => return Some(i),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(src: &str) -> Vec<Vec<String>> {
        commands(&tokenize(src).unwrap())
            .iter()
            .map(|c| c.argv().iter().map(|w| w.value.clone()).collect())
            .collect()
    }

    #[test]
    fn splits_commands_on_operators_and_keywords() {
        assert_eq!(
            argv("a 'b c' && d\"e\" || f; if g; then h; fi | i"),
            vec![vec!["a", "b c"], vec!["de"], vec!["f"], vec!["g"], vec!["h"], vec!["i"]]
        );
    }

    #[test]
    fn comments_and_redirections_are_not_words() {
        assert_eq!(argv("dnf update -y > /dev/null 2>&1 # && dnf clean"), vec![vec!["dnf", "update", "-y"]]);
    }

    #[test]
    fn expansions_stay_in_their_word() {
        assert_eq!(
            argv("echo \"$(dnf update; x)\" ${A:-b c} `x y`"),
            vec![vec!["echo", "$(dnf update; x)", "${A:-b c}", "`x y`"]]
        );
    }

    #[test]
    fn heredoc_bodies_are_not_commands() {
        let tokens = tokenize("cat <<-EOF > f\n\tdnf update\n\tEOF\ndnf install x\n").unwrap();
        let cmds = commands(&tokens);
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].heredocs.len(), 1);
        assert_eq!(cmds[1].argv()[0].value, "dnf");
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        assert!(tokenize("echo 'abc").is_err());
        assert!(tokenize("echo \"abc").is_err());
    }
}
