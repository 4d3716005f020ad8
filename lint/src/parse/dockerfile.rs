//! A Dockerfile reader that follows Docker's (BuildKit's) parser: parser directives
//! (`# escape=`, `# syntax=`), continuation lines with the active escape character, comment and
//! empty lines inside a continuation dropped, here-documents (`<<EOF`, `<<-EOF`, quoted
//! delimiters, several per instruction), exec form (JSON arrays), `ONBUILD`, case-insensitive
//! instructions.
//!
//! Every byte of an instruction's logical text maps back to its offset in the file, so findings
//! point at the right line and column and `--fix` can edit the original bytes.

use std::ops::Range;

/// Text assembled from pieces of a file, each byte remembering its offset in the file.
#[derive(Debug, Clone, Default)]
pub struct Mapped {
    pub text: String,
    map: Vec<usize>,
    end: usize,
}

impl Mapped {
    fn push(&mut self, piece: &str, file_offset: usize) {
        self.text.push_str(piece);
        self.map.extend((0..piece.len()).map(|i| file_offset + i));
        self.end = file_offset + piece.len();
    }

    /// The file offset of byte `i` of the text (the end of the last piece for `i == len`).
    pub fn file_offset(&self, i: usize) -> usize {
        self.map.get(i).copied().unwrap_or(self.end)
    }

    /// A sub-range of the text as its own `Mapped`.
    pub fn slice(&self, range: Range<usize>) -> Mapped {
        Mapped {
            text: self.text[range.clone()].to_string(),
            map: self.map[range.clone()].to_vec(),
            end: self.file_offset(range.end),
        }
    }

    /// The file offset just past byte `i - 1` (for exclusive range ends).
    pub fn file_end(&self, i: usize) -> usize {
        if i == 0 {
            self.file_offset(0)
        } else {
            self.map.get(i - 1).map(|o| o + 1).unwrap_or(self.end)
        }
    }
}

/// The instructions Docker knows.
pub const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

#[derive(Debug, Clone)]
pub struct Instruction {
    /// Upper-case keyword (for `ONBUILD RUN`, `RUN` with `onbuild` set).
    pub keyword: String,
    pub onbuild: bool,
    /// Everything after the keyword (and after `--flags` for RUN), continuations joined. For RUN
    /// and COPY/ADD with here-documents, the bodies follow after a newline, as in the file, so a
    /// shell reader sees the script as `sh` would.
    pub args: Mapped,
    /// Whole instruction in the file: from its first line's start to past its last line
    /// (here-document terminators included).
    pub span: Range<usize>,
}

impl Instruction {
    /// `RUN ["a", "b"]`: the exec-form argv with each element's span in `args` (None for shell form).
    pub fn exec_form(&self) -> Option<Vec<(String, Range<usize>)>> {
        let text = self.args.text.trim_end();
        if !text.starts_with('[') {
            return None;
        }
        let parsed: Vec<String> = serde_json::from_str(text).ok()?;
        let mut spans = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() && spans.len() < parsed.len() {
            if bytes[i] == b'"' {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                spans.push(start..i);
            }
            i += 1;
        }
        Some(parsed.into_iter().zip(spans).collect())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Dockerfile {
    pub escape: char,
    pub syntax: Option<String>,
    pub instructions: Vec<Instruction>,
    pub errors: Vec<ParseError>,
}

struct Line {
    start: usize,
    /// End of content (before `\r\n` / `\n`).
    end: usize,
    /// Start of the next line.
    next: usize,
}

fn lines(src: &str) -> Vec<Line> {
    let mut out = Vec::new();
    // BuildKit strips a leading UTF-8 byte order mark (frontend/dockerfile/parser, `utf8bom`):
    // the first line starts after it, and offsets stay those of the file.
    let mut start = if src.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
    while start < src.len() {
        let nl = src[start..].find('\n').map(|i| start + i);
        let (end, next) = match nl {
            Some(nl) => (nl, nl + 1),
            None => (src.len(), src.len()),
        };
        let end = if end > start && src.as_bytes()[end - 1] == b'\r' { end - 1 } else { end };
        out.push(Line { start, end, next });
        start = next;
    }
    out
}

pub fn parse(src: &str) -> Dockerfile {
    let lines = lines(src);
    let mut df = Dockerfile { escape: '\\', ..Dockerfile::default() };
    let mut i = 0;

    // Parser directives: only at the very top, before any comment, blank line or instruction.
    while i < lines.len() {
        let text = &src[lines[i].start..lines[i].end];
        let Some((key, value)) = directive(text) else { break };
        match key.as_str() {
            "escape" => match value.as_str() {
                "\\" => df.escape = '\\',
                "`" => df.escape = '`',
                _ => df.errors.push(ParseError {
                    offset: lines[i].start,
                    message: format!("invalid escape directive `{value}`: must be ` or \\"),
                }),
            },
            "syntax" => df.syntax = Some(value),
            _ => {}
        }
        i += 1;
    }

    while i < lines.len() {
        let line = &lines[i];
        let text = &src[line.start..line.end];
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let first = i;
        let lead = text.len() - trimmed.len();
        let mut logical = Mapped::default();
        // Join continuation lines.
        loop {
            let line = &lines[i];
            let content_start = if i == first { line.start + lead } else { line.start };
            let content = &src[content_start..line.end];
            i += 1;
            match continuation(content, df.escape) {
                Some(kept) => {
                    logical.push(&content[..kept], content_start);
                    // Comment and empty lines inside a continuation are dropped.
                    while i < lines.len() {
                        let next = src[lines[i].start..lines[i].end].trim_start();
                        if next.is_empty() || next.starts_with('#') {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    if i >= lines.len() {
                        break;
                    }
                }
                None => {
                    logical.push(content, content_start);
                    break;
                }
            }
        }
        let mut end = lines[i - 1].next;

        let text = logical.text.clone();
        let keyword_len = text.find(char::is_whitespace).unwrap_or(text.len());
        let mut keyword = text[..keyword_len].to_ascii_uppercase();
        let keyword_offset = logical.file_offset(0);
        let mut rest_start = skip_ws(&text, keyword_len);
        let mut onbuild = false;
        if keyword == "ONBUILD" {
            let inner_len =
                text[rest_start..].find(char::is_whitespace).map(|n| rest_start + n).unwrap_or(text.len());
            keyword = text[rest_start..inner_len].to_ascii_uppercase();
            onbuild = true;
            rest_start = skip_ws(&text, inner_len);
            if keyword.is_empty() {
                df.errors.push(ParseError {
                    offset: keyword_offset,
                    message: "ONBUILD needs an instruction".into(),
                });
                continue;
            }
        }
        if !INSTRUCTIONS.contains(&keyword.as_str()) || keyword == "ONBUILD" {
            let shown: String = text.chars().take(40).collect();
            df.errors.push(ParseError {
                offset: keyword_offset,
                message: format!("unknown instruction `{}` in `{shown}`", &text[..keyword_len]),
            });
            continue;
        }
        if keyword == "RUN" {
            // RUN --mount=... --network=... flags come before the command.
            while text[rest_start..].starts_with("--") {
                let flag_end = text[rest_start..]
                    .find(char::is_whitespace)
                    .map(|n| rest_start + n)
                    .unwrap_or(text.len());
                rest_start = skip_ws(&text, flag_end);
            }
        }
        let mut args = logical.slice(rest_start..text.len());

        // Here-documents: bodies follow the instruction line in the file.
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            let docs = heredoc_markers(&args.text);
            if !docs.is_empty() {
                args.push("\n", lines[i - 1].end);
                let mut unterminated = None;
                for (delimiter, strip_tabs) in docs {
                    let body_start = i;
                    loop {
                        if i >= lines.len() {
                            unterminated = Some((delimiter.clone(), body_start));
                            break;
                        }
                        let body_line = &src[lines[i].start..lines[i].end];
                        let cmp = if strip_tabs { body_line.trim_start_matches('\t') } else { body_line };
                        let piece_end = lines[i].next;
                        args.push(&src[lines[i].start..piece_end], lines[i].start);
                        if !src[lines[i].start..piece_end].ends_with('\n') {
                            args.push("\n", piece_end);
                        }
                        i += 1;
                        if cmp == delimiter {
                            break;
                        }
                    }
                    if unterminated.is_some() {
                        break;
                    }
                }
                end = lines[i - 1].next;
                if let Some((delimiter, body_start)) = unterminated {
                    df.errors.push(ParseError {
                        offset: lines.get(body_start).map(|l| l.start).unwrap_or(keyword_offset),
                        message: format!("here-document `{delimiter}` is never terminated"),
                    });
                    continue;
                }
            }
        }

        df.instructions.push(Instruction { keyword, onbuild, args, span: lines[first].start..end });
    }
    df
}

fn skip_ws(text: &str, from: usize) -> usize {
    from + text[from..].len() - text[from..].trim_start().len()
}

/// `# key=value` at the top of a file.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (key, value) = rest.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) || key.contains(' ') {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.trim().to_string()))
}

/// If `line` ends with the escape character (then optional blanks), how much of it to keep.
fn continuation(line: &str, escape: char) -> Option<usize> {
    let trimmed = line.trim_end_matches([' ', '\t']);
    trimmed.strip_suffix(escape).map(str::len)
}

/// Here-document markers in an instruction line, outside quotes: `<<EOF`, `<<-EOF`, `<<"EOF"`.
fn heredoc_markers(text: &str) -> Vec<(String, bool)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'<' && text[i..].starts_with("<<") && !text[i..].starts_with("<<<") => {
                let mut j = i + 2;
                let strip = bytes.get(j) == Some(&b'-');
                if strip {
                    j += 1;
                }
                let q = bytes.get(j).copied().filter(|b| *b == b'"' || *b == b'\'');
                if q.is_some() {
                    j += 1;
                }
                let name_start = j;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                if j > name_start {
                    out.push((text[name_start..j].to_string(), strip));
                }
                if q.is_some() && bytes.get(j) == q.as_ref() {
                    j += 1;
                }
                i = j;
                continue;
            }
            None => {}
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_continuations_and_drops_comment_lines() {
        let src = "FROM x\nRUN a && \\\n# note\n\n    b\n";
        let df = parse(src);
        assert!(df.errors.is_empty(), "{:?}", df.errors);
        let run = &df.instructions[1];
        assert_eq!(run.args.text, "a &&     b");
        let b = run.args.text.find('b').unwrap();
        assert_eq!(&src[run.args.file_offset(b)..run.args.file_offset(b) + 1], "b");
        assert_eq!(run.span, 7..src.len());
    }

    #[test]
    fn backtick_escape_directive_changes_continuations() {
        let df = parse("# escape=`\nFROM x\nRUN a `\n  b \\\nRUN c\n");
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].args.text, "a   b \\");
        assert_eq!(df.instructions[2].keyword, "RUN");
    }

    #[test]
    fn directives_stop_at_the_first_other_line() {
        let df = parse("FROM x\n# escape=`\nRUN a `\n");
        assert_eq!(df.escape, '\\');
    }

    #[test]
    fn heredocs_are_read_after_the_line() {
        let src = "FROM x\nRUN <<EOF bash -c 'x' <<-'TWO'\ndnf update\nEOF\n\tcat\n\tTWO\nrun echo\n";
        let df = parse(src);
        assert!(df.errors.is_empty(), "{:?}", df.errors);
        assert_eq!(df.instructions.len(), 3);
        assert!(df.instructions[1].args.text.contains("dnf update\nEOF\n\tcat\n\tTWO\n"));
        assert_eq!(df.instructions[2].keyword, "RUN");
    }

    #[test]
    fn unknown_and_unterminated_are_errors_and_parsing_goes_on() {
        let df = parse("FROM x\nFOO bar\nRUN <<EOF\nnever\n");
        assert_eq!(df.errors.len(), 2, "{:?}", df.errors);
        assert!(df.errors[0].message.contains("unknown instruction `FOO`"));
        let df = parse("FROM x\nBOGUS\nRUN dnf update\n");
        assert_eq!(df.instructions.len(), 2);
    }

    #[test]
    fn onbuild_and_exec_form() {
        let df = parse(
            "FROM x\nonbuild run [\"dnf\", \"update\"]\nRUN --mount=type=cache,target=/c dnf install x\n",
        );
        let ob = &df.instructions[1];
        assert!(ob.onbuild);
        assert_eq!(ob.keyword, "RUN");
        let argv = ob.exec_form().unwrap();
        assert_eq!(argv[1].0, "update");
        assert_eq!(&ob.args.text[argv[1].1.clone()], "update");
        assert_eq!(df.instructions[2].args.text, "dnf install x");
    }
}
