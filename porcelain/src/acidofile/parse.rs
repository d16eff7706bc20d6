//! The Acidofile grammar (documented in `acido-build(5)`): one instruction
//! per logical line, a keyword (any case) and its arguments. Lines whose
//! first non-blank character is `#` are comments, also inside a
//! continuation; a line ending in `\` continues on the next one.
//!
//! Arguments are words split at blanks, with `"..."` (backslash escapes
//! `\"` and `\\` inside) and `'...'` (literal) quoting and `\` escaping
//! one character outside quotes. `RUN`, `EXEC`, `COPY` and `ADD` also take
//! a JSON array of strings (the exec form).

use std::path::{Path, PathBuf};

use crate::copy::{parse_mode, parse_owner};

/// Where a build starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// A stored image, named as on the command line.
    Image(String),
    /// Nothing: an image with no dependency.
    Scratch,
}

/// A `COPY` or `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    /// `--chown=UID[:GID]`.
    pub chown: Option<(u32, u32)>,
    /// `--chmod=MODE`.
    pub chmod: Option<u32>,
    /// Host paths, relative to the Acidofile's directory.
    pub sources: Vec<String>,
    /// The destination in the rootfs (relative: from the `WORKDIR`).
    pub dest: String,
}

/// A `PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortStep {
    /// The port's AC name.
    pub name: String,
    /// The protocol (`tcp`, `udp`, ...).
    pub protocol: String,
    /// The first port number.
    pub port: u64,
    /// How many ports from it.
    pub count: u64,
    /// Whether the app expects the port as an activated socket.
    pub socket_activated: bool,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `FROM IMAGE` or `FROM scratch`.
    From(Base),
    /// `NAME AC-IDENTIFIER`: the image's name.
    Name(String),
    /// `LABEL NAME=VALUE...`.
    Label(Vec<(String, String)>),
    /// `COPY [--chown=U:G] [--chmod=MODE] SRC... DEST`.
    Copy(CopyStep),
    /// `ADD [--chown=U:G] [--chmod=MODE] SRC... DEST`: `COPY` that unpacks tar archives.
    Add(CopyStep),
    /// `RUN CMD` (shell form: `/bin/sh -c CMD`) or `RUN ["ARG", ...]`.
    Run(Vec<String>),
    /// `ENV NAME=VALUE...` or `ENV NAME VALUE`.
    Env(Vec<(String, String)>),
    /// `WORKDIR PATH`.
    Workdir(String),
    /// `USER USER[:GROUP]`.
    User {
        /// The user (name or number).
        user: String,
        /// The group (name or number).
        group: String,
    },
    /// `EXEC CMD` or `EXEC ["ARG", ...]`: the app's command.
    Exec(Vec<String>),
    /// `ANNOTATION NAME=VALUE...`.
    Annotation(Vec<(String, String)>),
    /// `ISOLATOR NAME JSON`.
    Isolator {
        /// The isolator's name.
        name: String,
        /// Its value, JSON.
        value: serde_json::Value,
    },
    /// `PORT NAME PORT[-END][/PROTOCOL] [socketActivated]`.
    Port(PortStep),
    /// `MOUNT NAME PATH [readOnly]`.
    Mount {
        /// The mount point's AC name.
        name: String,
        /// The path inside the rootfs.
        path: String,
        /// Whether it is mounted read-only.
        read_only: bool,
    },
}

impl Step {
    /// The instruction's keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Step::From(_) => "FROM",
            Step::Name(_) => "NAME",
            Step::Label(_) => "LABEL",
            Step::Copy(_) => "COPY",
            Step::Add(_) => "ADD",
            Step::Run(_) => "RUN",
            Step::Env(_) => "ENV",
            Step::Workdir(_) => "WORKDIR",
            Step::User { .. } => "USER",
            Step::Exec(_) => "EXEC",
            Step::Annotation(_) => "ANNOTATION",
            Step::Isolator { .. } => "ISOLATOR",
            Step::Port(_) => "PORT",
            Step::Mount { .. } => "MOUNT",
        }
    }
}

/// An instruction and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The line it starts on (1-based).
    pub line: usize,
    /// The instruction as written, continuations joined (for messages).
    pub text: String,
    /// What it says.
    pub step: Step,
}

/// Why an Acidofile could not be parsed; each names the file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The file is not UTF-8 text.
    #[error("{}: not UTF-8 text", file.display())]
    NotText {
        /// The file.
        file: PathBuf,
    },
    /// The file holds no instruction.
    #[error("{}: no instructions (the first must be FROM)", file.display())]
    Empty {
        /// The file.
        file: PathBuf,
    },
    /// A keyword acido does not know.
    #[error("{}:{line}: unknown instruction {word:?}", file.display())]
    UnknownInstruction {
        /// The file.
        file: PathBuf,
        /// The line.
        line: usize,
        /// The word found.
        word: String,
    },
    /// Something before `FROM`.
    #[error("{}:{line}: {keyword} before FROM: the first instruction must be FROM", file.display())]
    NoFrom {
        /// The file.
        file: PathBuf,
        /// The line.
        line: usize,
        /// The instruction found first.
        keyword: &'static str,
    },
    /// A second `FROM`.
    #[error("{}:{line}: a second FROM: an Acidofile builds one image", file.display())]
    SecondFrom {
        /// The file.
        file: PathBuf,
        /// The line.
        line: usize,
    },
    /// An instruction's arguments are wrong.
    #[error("{}:{line}: {keyword}: {problem}", file.display())]
    BadArguments {
        /// The file.
        file: PathBuf,
        /// The line.
        line: usize,
        /// The instruction.
        keyword: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// Parses the text of an Acidofile; `file` names it in errors. The first
/// instruction is checked to be the only `FROM`.
pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<Instruction>, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotText {
        file: file.to_owned(),
    })?;
    let mut out = Vec::new();
    for (line, joined) in logical_lines(text) {
        let (word, rest) = split_word(&joined);
        let bad = |keyword: &'static str, problem: String| ParseError::BadArguments {
            file: file.to_owned(),
            line,
            keyword,
            problem,
        };
        let step = parse_step(word, rest.trim(), &bad).ok_or_else(|| {
            ParseError::UnknownInstruction {
                file: file.to_owned(),
                line,
                word: word.to_owned(),
            }
        })??;
        match (&step, out.is_empty()) {
            (Step::From(_), false) => {
                return Err(ParseError::SecondFrom {
                    file: file.to_owned(),
                    line,
                })
            }
            (Step::From(_), true) => {}
            (other, true) => {
                return Err(ParseError::NoFrom {
                    file: file.to_owned(),
                    line,
                    keyword: other.keyword(),
                })
            }
            _ => {}
        }
        out.push(Instruction {
            line,
            text: joined.trim().to_owned(),
            step,
        });
    }
    if out.is_empty() {
        return Err(ParseError::Empty {
            file: file.to_owned(),
        });
    }
    Ok(out)
}

/// The logical lines: (first line number, text with continuations joined),
/// comments and blank lines left out.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_none()) {
            continue;
        }
        let body = raw.trim_end();
        let (body, continues) = match body.strip_suffix('\\') {
            Some(head) => (head, true),
            None => (body, false),
        };
        // Joined as Dockerfile joins them: the `\` and the line break go,
        // nothing is added, the next line's indentation stays.
        let (start, mut joined) = current.take().unwrap_or((index + 1, String::new()));
        joined.push_str(body);
        if continues {
            current = Some((start, joined));
        } else if !joined.trim().is_empty() {
            lines.push((start, joined));
        }
    }
    if let Some((start, joined)) = current {
        if !joined.trim().is_empty() {
            lines.push((start, joined));
        }
    }
    lines
}

fn split_word(line: &str) -> (&str, &str) {
    let line = line.trim_start();
    match line.find(char::is_whitespace) {
        Some(at) => (&line[..at], &line[at..]),
        None => (line, ""),
    }
}

type Bad<'a> = dyn Fn(&'static str, String) -> ParseError + 'a;

/// `None` for an unknown keyword.
fn parse_step(word: &str, rest: &str, bad: &Bad<'_>) -> Option<Result<Step, ParseError>> {
    let keyword = word.to_ascii_uppercase();
    let step = match keyword.as_str() {
        "FROM" => one_word("FROM", rest, bad).map(|image| {
            Step::From(if image == "scratch" {
                Base::Scratch
            } else {
                Base::Image(image)
            })
        }),
        "NAME" => one_word("NAME", rest, bad).map(Step::Name),
        "LABEL" => pairs("LABEL", rest, bad).map(Step::Label),
        "ANNOTATION" => pairs("ANNOTATION", rest, bad).map(Step::Annotation),
        "ENV" => env(rest, bad).map(Step::Env),
        "COPY" => copy_step("COPY", rest, bad).map(Step::Copy),
        "ADD" => copy_step("ADD", rest, bad).map(Step::Add),
        "RUN" => command("RUN", rest, bad).map(Step::Run),
        "EXEC" => command("EXEC", rest, bad).map(Step::Exec),
        "WORKDIR" => one_word("WORKDIR", rest, bad).map(Step::Workdir),
        "USER" => one_word("USER", rest, bad).map(|spec| match spec.split_once(':') {
            Some((user, group)) => Step::User {
                user: user.to_owned(),
                group: group.to_owned(),
            },
            // appc needs a group; a user alone runs with group 0, as
            // docker2aci converts `USER name`.
            None => Step::User {
                user: spec,
                group: "0".to_owned(),
            },
        }),
        "ISOLATOR" => isolator(rest, bad),
        "PORT" => port(rest, bad).map(Step::Port),
        "MOUNT" => mount(rest, bad),
        _ => return None,
    };
    Some(step)
}

/// Splits arguments into words (see the module docs).
fn words(rest: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    out.push(w);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        None => return Err("unterminated double quote".to_owned()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => w.push(e),
                            Some(other) => {
                                w.push('\\');
                                w.push(other);
                            }
                            None => return Err("unterminated double quote".to_owned()),
                        },
                        Some(other) => w.push(other),
                    }
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        None => return Err("unterminated single quote".to_owned()),
                        Some('\'') => break,
                        Some(other) => w.push(other),
                    }
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(String::new);
                if let Some(next) = chars.next() {
                    w.push(next);
                }
            }
            other => word.get_or_insert_with(String::new).push(other),
        }
    }
    if let Some(w) = word {
        out.push(w);
    }
    Ok(out)
}

fn one_word(keyword: &'static str, rest: &str, bad: &Bad<'_>) -> Result<String, ParseError> {
    let mut list = words(rest).map_err(|p| bad(keyword, p))?;
    match list.len() {
        1 => Ok(list.remove(0)),
        0 => Err(bad(keyword, "expected one argument, found none".to_owned())),
        n => Err(bad(keyword, format!("expected one argument, found {n}"))),
    }
}

fn pairs(
    keyword: &'static str,
    rest: &str,
    bad: &Bad<'_>,
) -> Result<Vec<(String, String)>, ParseError> {
    let list = words(rest).map_err(|p| bad(keyword, p))?;
    if list.is_empty() {
        return Err(bad(
            keyword,
            "expected NAME=VALUE, found nothing".to_owned(),
        ));
    }
    list.into_iter()
        .map(|w| match w.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
            _ => Err(bad(keyword, format!("expected NAME=VALUE, found {w:?}"))),
        })
        .collect()
}

/// `ENV NAME=VALUE...`, or the older `ENV NAME VALUE...` (the rest of the
/// line is the value).
fn env(rest: &str, bad: &Bad<'_>) -> Result<Vec<(String, String)>, ParseError> {
    let list = words(rest).map_err(|p| bad("ENV", p))?;
    match list.first() {
        Some(first) if !first.contains('=') => {
            let (name, value) = split_word(rest.trim());
            let value = words(value).map_err(|p| bad("ENV", p))?.join(" ");
            Ok(vec![(name.to_owned(), value)])
        }
        _ => pairs("ENV", rest, bad),
    }
}

/// A JSON array of strings, when `rest` is one.
fn json_array(
    keyword: &'static str,
    rest: &str,
    bad: &Bad<'_>,
) -> Option<Result<Vec<String>, ParseError>> {
    if !rest.starts_with('[') {
        return None;
    }
    Some(serde_json::from_str::<Vec<String>>(rest).map_err(|e| {
        bad(
            keyword,
            format!("exec form is not a JSON array of strings: {e}"),
        )
    }))
}

fn command(keyword: &'static str, rest: &str, bad: &Bad<'_>) -> Result<Vec<String>, ParseError> {
    let argv = match json_array(keyword, rest, bad) {
        Some(argv) => argv?,
        None if rest.is_empty() => Vec::new(),
        // The shell form: the text as written, for /bin/sh to parse.
        None => vec!["/bin/sh".to_owned(), "-c".to_owned(), rest.to_owned()],
    };
    if argv.is_empty() {
        return Err(bad(keyword, "expected a command, found none".to_owned()));
    }
    Ok(argv)
}

fn copy_step(keyword: &'static str, rest: &str, bad: &Bad<'_>) -> Result<CopyStep, ParseError> {
    let mut step = CopyStep {
        chown: None,
        chmod: None,
        sources: Vec::new(),
        dest: String::new(),
    };
    let mut rest = rest;
    // Flags first, as Dockerfile writes them.
    while let Some(flag) = rest.strip_prefix("--") {
        let (flag, after) = split_word(flag);
        rest = after.trim_start();
        match flag.split_once('=') {
            Some(("chown", value)) => {
                step.chown = Some(parse_owner(value).map_err(|e| bad(keyword, e.to_string()))?)
            }
            Some(("chmod", value)) => {
                step.chmod = Some(parse_mode(value).map_err(|e| bad(keyword, e.to_string()))?)
            }
            _ => return Err(bad(keyword, format!("unknown option --{flag}"))),
        }
    }
    let mut list = match json_array(keyword, rest, bad) {
        Some(list) => list?,
        None => words(rest).map_err(|p| bad(keyword, p))?,
    };
    if list.len() < 2 {
        return Err(bad(keyword, "expected SRC... DEST".to_owned()));
    }
    step.dest = list.pop().unwrap_or_default();
    step.sources = list;
    Ok(step)
}

fn isolator(rest: &str, bad: &Bad<'_>) -> Result<Step, ParseError> {
    let (name, value) = split_word(rest);
    let value = value.trim();
    if name.is_empty() || value.is_empty() {
        return Err(bad("ISOLATOR", "expected NAME JSON-VALUE".to_owned()));
    }
    let value = serde_json::from_str(value)
        .map_err(|e| bad("ISOLATOR", format!("value is not JSON: {e}")))?;
    Ok(Step::Isolator {
        name: name.to_owned(),
        value,
    })
}

fn port(rest: &str, bad: &Bad<'_>) -> Result<PortStep, ParseError> {
    let list = words(rest).map_err(|p| bad("PORT", p))?;
    let usage = || {
        bad(
            "PORT",
            "expected NAME PORT[-END][/PROTOCOL] [socketActivated]".to_owned(),
        )
    };
    let (name, spec, flag) = match list.as_slice() {
        [name, spec] => (name, spec, false),
        [name, spec, flag] if flag == "socketActivated" => (name, spec, true),
        _ => return Err(usage()),
    };
    let (range, protocol) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let number = |s: &str| s.parse::<u64>().map_err(|_| usage());
    let (port, count) = match range.split_once('-') {
        Some((first, last)) => {
            let (first, last) = (number(first)?, number(last)?);
            if last < first {
                return Err(bad("PORT", format!("range {range} ends before it starts")));
            }
            (first, last - first + 1)
        }
        None => (number(range)?, 1),
    };
    Ok(PortStep {
        name: name.clone(),
        protocol: protocol.to_owned(),
        port,
        count,
        socket_activated: flag,
    })
}

fn mount(rest: &str, bad: &Bad<'_>) -> Result<Step, ParseError> {
    let list = words(rest).map_err(|p| bad("MOUNT", p))?;
    let (name, path, read_only) = match list.as_slice() {
        [name, path] => (name, path, false),
        [name, path, flag] if flag == "readOnly" => (name, path, true),
        _ => return Err(bad("MOUNT", "expected NAME PATH [readOnly]".to_owned())),
    };
    Ok(Step::Mount {
        name: name.clone(),
        path: path.clone(),
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(text: &str) -> Vec<Step> {
        parse(Path::new("Acidofile"), text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|i| i.step)
            .collect()
    }

    fn error(text: &str) -> String {
        parse(Path::new("Acidofile"), text.as_bytes())
            .unwrap_err()
            .to_string()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn every_instruction_parses() {
        let text = r#"
# a comment
from example.com/base:1.0
NAME example.com/app
LABEL version=1.1 "os=linux"
COPY --chown=1:2 --chmod=0640 a "b c" /dest/
ADD ["x.tar.gz", "/opt"]
RUN echo "hi" > /x && \
    # comments inside a continuation are dropped
    rm /bin/vi
RUN ["/bin/true", "arg"]
ENV A=1 B="two words"
ENV LEGACY some value
WORKDIR /srv
USER daemon
USER 1000:1000
EXEC ["/bin/app", "--serve"]
EXEC exec app
ANNOTATION authors=me
ISOLATOR resource/memory {"limit": "1G"}
PORT http 80
PORT dns 53/udp socketActivated
PORT range 8000-8009/tcp
MOUNT data /var/data readOnly
"#;
        let got = steps(text);
        assert_eq!(
            got,
            vec![
                Step::From(Base::Image("example.com/base:1.0".into())),
                Step::Name("example.com/app".into()),
                Step::Label(vec![
                    ("version".into(), "1.1".into()),
                    ("os".into(), "linux".into())
                ]),
                Step::Copy(CopyStep {
                    chown: Some((1, 2)),
                    chmod: Some(0o640),
                    sources: s(&["a", "b c"]),
                    dest: "/dest/".into()
                }),
                Step::Add(CopyStep {
                    chown: None,
                    chmod: None,
                    sources: s(&["x.tar.gz"]),
                    dest: "/opt".into()
                }),
                Step::Run(s(&["/bin/sh", "-c", "echo \"hi\" > /x &&     rm /bin/vi"])),
                Step::Run(s(&["/bin/true", "arg"])),
                Step::Env(vec![
                    ("A".into(), "1".into()),
                    ("B".into(), "two words".into())
                ]),
                Step::Env(vec![("LEGACY".into(), "some value".into())]),
                Step::Workdir("/srv".into()),
                Step::User {
                    user: "daemon".into(),
                    group: "0".into()
                },
                Step::User {
                    user: "1000".into(),
                    group: "1000".into()
                },
                Step::Exec(s(&["/bin/app", "--serve"])),
                Step::Exec(s(&["/bin/sh", "-c", "exec app"])),
                Step::Annotation(vec![("authors".into(), "me".into())]),
                Step::Isolator {
                    name: "resource/memory".into(),
                    value: serde_json::json!({"limit": "1G"})
                },
                Step::Port(PortStep {
                    name: "http".into(),
                    protocol: "tcp".into(),
                    port: 80,
                    count: 1,
                    socket_activated: false
                }),
                Step::Port(PortStep {
                    name: "dns".into(),
                    protocol: "udp".into(),
                    port: 53,
                    count: 1,
                    socket_activated: true
                }),
                Step::Port(PortStep {
                    name: "range".into(),
                    protocol: "tcp".into(),
                    port: 8000,
                    count: 10,
                    socket_activated: false
                }),
                Step::Mount {
                    name: "data".into(),
                    path: "/var/data".into(),
                    read_only: true
                },
            ]
        );
        assert_eq!(steps("FROM scratch"), vec![Step::From(Base::Scratch)]);
    }

    #[test]
    fn lines_are_those_the_instructions_start_on() {
        let parsed = parse(Path::new("f"), b"\n# c\nFROM a\n\nRUN x \\\n  y\nRUN z\n").unwrap();
        let lines: Vec<usize> = parsed.iter().map(|i| i.line).collect();
        assert_eq!(lines, [3, 5, 7]);
        assert_eq!(parsed[1].text, "RUN x   y");
    }

    #[test]
    fn errors_name_the_file_line_and_instruction() {
        assert_eq!(
            error("FROM a\nFROB x\n"),
            "Acidofile:2: unknown instruction \"FROB\""
        );
        assert_eq!(
            error("# only\nRUN x\n"),
            "Acidofile:2: RUN before FROM: the first instruction must be FROM"
        );
        assert_eq!(
            error("\n# c\n"),
            "Acidofile: no instructions (the first must be FROM)"
        );
        assert_eq!(
            error("FROM a\nFROM b\n"),
            "Acidofile:2: a second FROM: an Acidofile builds one image"
        );
        assert_eq!(
            error("FROM a\nLABEL version\n"),
            "Acidofile:2: LABEL: expected NAME=VALUE, found \"version\""
        );
        assert_eq!(
            error("FROM a\nCOPY only\n"),
            "Acidofile:2: COPY: expected SRC... DEST"
        );
        assert_eq!(
            error("FROM a\nCOPY --own=1 a b\n"),
            "Acidofile:2: COPY: unknown option --own=1"
        );
        assert!(error("FROM a\nRUN [\"x\", 1]\n")
            .starts_with("Acidofile:2: RUN: exec form is not a JSON array of strings"));
        assert_eq!(
            error("FROM a b\n"),
            "Acidofile:1: FROM: expected one argument, found 2"
        );
        assert_eq!(
            error("FROM a\nENV A=\"x\n"),
            "Acidofile:2: ENV: unterminated double quote"
        );
        assert_eq!(
            error("FROM a\nPORT http 90-80\n"),
            "Acidofile:2: PORT: range 90-80 ends before it starts"
        );
        assert_eq!(
            error("FROM a\nRUN\n"),
            "Acidofile:2: RUN: expected a command, found none"
        );
        assert_eq!(
            parse(Path::new("f"), b"FROM \xff").unwrap_err().to_string(),
            "f: not UTF-8 text"
        );
    }
}
