//! A small JSON reader and writer that behave like Go's `encoding/json`,
//! because manifest verdicts and printed manifests must match the reference
//! `actool` byte for byte (aci-format §4, §5).
//!
//! The reader keeps what `serde_json` would lose: every member of an object
//! in order, duplicates included (Go decodes each occurrence), the source
//! span of every value (isolator values and resource quantities are handed
//! on raw), and it reports the first syntax error with Go's scanner wording.
//! The writer escapes strings as Go 1.19 does and indents like
//! `json.MarshalIndent`.

use std::fmt::Write as _;

/// Largest manifest accepted, far above any real one (they are a few KiB).
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;
/// Deepest nesting of arrays and objects accepted by default; real
/// manifests use 5.
pub const MAX_DEPTH: usize = crate::limits::DEFAULT_JSON_DEPTH;
/// The most a caller may raise the nesting bound to. The reader, the
/// decoder and `Drop` all recurse once per level, so the bound is what
/// keeps a hostile manifest from overflowing the stack: 512 levels fit in
/// a 2 MiB thread stack even unoptimised (a unit test checks it; 1024 do
/// not).
pub const MAX_DEPTH_CEILING: usize = 512;

/// Why a document is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Go's `*json.SyntaxError`: its message and the byte offset Go reports.
    Syntax { message: String, offset: usize },
    /// Nested deeper than the caller's bound.
    TooDeep,
}

/// One JSON value and where it sits in the source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: NodeKind,
    /// Byte range of the value in the source, without surrounding space.
    pub start: usize,
    pub end: usize,
}

/// The value itself. Numbers keep their literal text, strings are decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Null,
    Bool(bool),
    Number(String),
    Str(String),
    Array(Vec<Node>),
    /// Members in source order, duplicates kept.
    Object(Vec<(String, Node)>),
}

impl Node {
    /// The word Go's `UnmarshalTypeError` uses for this kind of value.
    pub fn go_kind(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "bool",
            NodeKind::Number(_) => "number",
            NodeKind::Str(_) => "string",
            NodeKind::Array(_) => "array",
            NodeKind::Object(_) => "object",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }
}

/// Parses a whole document: one value, optional white space around it,
/// arrays and objects nested at most `max_depth` deep (never more than
/// [`MAX_DEPTH_CEILING`]).
pub(crate) fn parse_bounded(src: &[u8], max_depth: usize) -> Result<Node, JsonError> {
    let mut p = Parser {
        src,
        pos: 0,
        max_depth: max_depth.min(MAX_DEPTH_CEILING),
    };
    p.skip_space();
    let node = p.value(0)?;
    p.skip_space();
    if p.pos < src.len() {
        return Err(p.error_at(p.pos, "after top-level value"));
    }
    Ok(node)
}

/// [`parse_bounded`] at the default bound, for tests of the decoders.
#[cfg(test)]
pub(crate) fn parse(src: &[u8]) -> Result<Node, JsonError> {
    parse_bounded(src, MAX_DEPTH)
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        // Go's scanner treats exactly these four bytes as white space.
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn eof(&self) -> JsonError {
        JsonError::Syntax {
            message: "unexpected end of JSON input".to_owned(),
            offset: self.src.len(),
        }
    }

    fn error_at(&self, at: usize, context: &str) -> JsonError {
        match self.src.get(at) {
            Some(&c) => JsonError::Syntax {
                message: format!("invalid character {} {context}", quote_char(c)),
                offset: at + 1,
            },
            None => self.eof(),
        }
    }

    /// The byte at `pos`, or the end-of-input error.
    fn need(&self) -> Result<u8, JsonError> {
        self.peek().ok_or_else(|| self.eof())
    }

    /// The byte at `pos` in the middle of a token. At the end of input Go's
    /// scanner feeds itself one space to finish the token, so a cut-off
    /// number or literal is reported as an invalid `' '` in `context`.
    fn need_in(&self, context: &str) -> Result<u8, JsonError> {
        self.peek().ok_or_else(|| JsonError::Syntax {
            message: format!("invalid character ' ' {context}"),
            offset: self.src.len() + 1,
        })
    }

    fn value(&mut self, depth: usize) -> Result<Node, JsonError> {
        let start = self.pos;
        let c = self.need()?;
        let kind = match c {
            b'{' => {
                if depth >= self.max_depth {
                    return Err(JsonError::TooDeep);
                }
                self.pos += 1;
                self.object(depth + 1)?
            }
            b'[' => {
                if depth >= self.max_depth {
                    return Err(JsonError::TooDeep);
                }
                self.pos += 1;
                self.array(depth + 1)?
            }
            b'"' => NodeKind::Str(self.string()?),
            b'-' | b'0'..=b'9' => NodeKind::Number(self.number()?),
            b't' => {
                self.literal("true")?;
                NodeKind::Bool(true)
            }
            b'f' => {
                self.literal("false")?;
                NodeKind::Bool(false)
            }
            b'n' => {
                self.literal("null")?;
                NodeKind::Null
            }
            _ => return Err(self.error_at(self.pos, "looking for beginning of value")),
        };
        Ok(Node {
            kind,
            start,
            end: self.pos,
        })
    }

    fn literal(&mut self, word: &'static str) -> Result<(), JsonError> {
        // The first byte already matched; Go names the next expected byte.
        for expected in word.bytes().skip(1) {
            self.pos += 1;
            let context = format!("in literal {word} (expecting '{}')", expected as char);
            if self.need_in(&context)? != expected {
                return Err(self.error_at(self.pos, &context));
            }
        }
        self.pos += 1;
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn number(&mut self) -> Result<String, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
            match self.need_in("in numeric literal")? {
                b'0'..=b'9' => {}
                _ => return Err(self.error_at(self.pos, "in numeric literal")),
            }
        }
        // A leading 0 stands alone; "01" ends the number after the 0 and the
        // 1 is then reported by whoever looks at the next byte, as in Go.
        if self.peek() == Some(b'0') {
            self.pos += 1;
        } else {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let context = "after decimal point in numeric literal";
            match self.need_in(context)? {
                b'0'..=b'9' => self.digits(),
                _ => return Err(self.error_at(self.pos, context)),
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            let context = "in exponent of numeric literal";
            match self.need_in(context)? {
                b'0'..=b'9' => self.digits(),
                _ => return Err(self.error_at(self.pos, context)),
            }
        }
        // Only ASCII digits, signs, dots and exponents were consumed.
        Ok(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned())
    }

    /// Reads a string starting at its opening quote and decodes it the way
    /// Go does: bad UTF-8 bytes and lone surrogates become U+FFFD.
    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let c = self.need()?;
            match c {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let e = self.need_in("in string escape code")?;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            self.pos += 1;
                            let unit = self.hex4()?;
                            self.push_utf16(unit, &mut out)?;
                            continue;
                        }
                        _ => return Err(self.error_at(self.pos, "in string escape code")),
                    }
                    self.pos += 1;
                }
                0..=0x1f => return Err(self.error_at(self.pos, "in string literal")),
                0x20..=0x7f => {
                    out.push(c as char);
                    self.pos += 1;
                }
                _ => {
                    let (ch, len) = decode_rune(&self.src[self.pos..]);
                    out.push(ch);
                    self.pos += len;
                }
            }
        }
    }

    /// Four hex digits of a `\u` escape; `pos` ends after them.
    fn hex4(&mut self) -> Result<u16, JsonError> {
        let mut unit = 0u16;
        for _ in 0..4 {
            let c = self.need_in("in \\u hexadecimal character escape")?;
            let digit = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(self.error_at(self.pos, "in \\u hexadecimal character escape")),
            };
            unit = unit * 16 + u16::from(digit);
            self.pos += 1;
        }
        Ok(unit)
    }

    /// Appends one `\u` unit, pairing a high surrogate with an immediately
    /// following `\u` low surrogate. A surrogate that does not pair becomes
    /// U+FFFD and the following escape is read on its own, as in Go.
    fn push_utf16(&mut self, unit: u16, out: &mut String) -> Result<(), JsonError> {
        if !(0xd800..0xe000).contains(&unit) {
            out.push(char::from_u32(u32::from(unit)).unwrap_or('\u{fffd}'));
            return Ok(());
        }
        if unit < 0xdc00 && self.src[self.pos..].starts_with(b"\\u") {
            // Peek at the next escape without committing to it: Go only
            // consumes it when it completes a valid pair.
            let save = self.pos;
            self.pos += 2;
            let low = self.hex4()?;
            if (0xdc00..0xe000).contains(&low) {
                let code = 0x10000 + ((u32::from(unit) - 0xd800) << 10) + (u32::from(low) - 0xdc00);
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                return Ok(());
            }
            self.pos = save;
        }
        out.push('\u{fffd}');
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<NodeKind, JsonError> {
        let mut items = Vec::new();
        self.skip_space();
        if self.need()? == b']' {
            self.pos += 1;
            return Ok(NodeKind::Array(items));
        }
        loop {
            self.skip_space();
            items.push(self.value(depth)?);
            self.skip_space();
            match self.need()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Ok(NodeKind::Array(items));
                }
                _ => return Err(self.error_at(self.pos, "after array element")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<NodeKind, JsonError> {
        let mut members = Vec::new();
        self.skip_space();
        if self.need()? == b'}' {
            self.pos += 1;
            return Ok(NodeKind::Object(members));
        }
        loop {
            self.skip_space();
            if self.need()? != b'"' {
                return Err(self.error_at(self.pos, "looking for beginning of object key string"));
            }
            let key = self.string()?;
            self.skip_space();
            if self.need()? != b':' {
                return Err(self.error_at(self.pos, "after object key"));
            }
            self.pos += 1;
            self.skip_space();
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_space();
            match self.need()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Ok(NodeKind::Object(members));
                }
                _ => return Err(self.error_at(self.pos, "after object key:value pair")),
            }
        }
    }
}

/// Decodes one UTF-8 character like Go's `utf8.DecodeRune`: an invalid or
/// truncated sequence yields U+FFFD and consumes a single byte.
fn decode_rune(bytes: &[u8]) -> (char, usize) {
    let want = match bytes.first() {
        Some(0xc2..=0xdf) => 2,
        Some(0xe0..=0xef) => 3,
        Some(0xf0..=0xf4) => 4,
        _ => return ('\u{fffd}', 1),
    };
    match bytes.get(..want).map(std::str::from_utf8) {
        Some(Ok(text)) => match text.chars().next() {
            Some(ch) => (ch, want),
            None => ('\u{fffd}', 1),
        },
        _ => ('\u{fffd}', 1),
    }
}

/// Go's scanner `quoteChar`: the offending byte read as a Latin-1 rune and
/// quoted with `strconv.Quote` rules between single quotes. A UTF-8 BOM's
/// first byte 0xEF therefore shows as `'ï'` (aci-format §4).
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        _ => {
            let quoted = go_quote(&char::from(c).to_string());
            format!("'{}'", &quoted[1..quoted.len() - 1])
        }
    }
}

/// Whether Go's `strconv.IsPrint` holds. Exact for ASCII and Latin-1; for
/// the rest it treats control, format and separator characters as not
/// printable, which covers what appears in manifests.
fn go_is_print(c: char) -> bool {
    match c {
        ' '..='~' => true,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{a0}' | '\u{ad}' => false,
        '\u{a1}'..='\u{ff}' => true,
        '\u{2000}'..='\u{200f}'
        | '\u{2028}'..='\u{202f}'
        | '\u{205f}'..='\u{206f}'
        | '\u{3000}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{1680}'
        | '\u{180e}'
        | '\u{61c}'
        | '\u{600}'..='\u{605}'
        | '\u{e0000}'..='\u{e007f}' => false,
        '\u{e000}'..='\u{f8ff}' | '\u{f0000}'..='\u{10ffff}' => false,
        _ => !c.is_control(),
    }
}

/// Go's `strconv.Quote` (what `%q` and `%#v` print for a string).
pub(crate) fn go_quote(s: &str) -> String {
    go_quote_bytes(s.as_bytes())
}

/// `strconv.Quote` of a Go string that may hold invalid UTF-8: each bad
/// byte is written as `\xNN`.
pub(crate) fn go_quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    let mut rest = bytes;
    while !rest.is_empty() {
        let (c, len) = match rest[0] {
            b @ 0..=0x7f => (char::from(b), 1),
            _ => decode_rune(rest),
        };
        if c == '\u{fffd}' && len == 1 {
            let _ = write!(out, "\\x{:02x}", rest[0]);
            rest = &rest[1..];
            continue;
        }
        rest = &rest[len..];
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if go_is_print(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Appends `s` as a JSON string the way Go 1.19's encoder writes it, with
/// HTML escaping on (`<`, `>`, `&` become `\u003c` …) and U+2028/U+2029
/// escaped (aci-format §5).
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `compact` with HTML escaping, as applied to a `json.RawMessage`
/// when it is marshalled: white space outside strings goes, string bytes
/// stay as written except `<`, `>`, `&`, U+2028 and U+2029.
///
/// `raw` must be valid JSON text (it comes from [`parse`]'s spans).
pub(crate) fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            match c {
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                _ => out.push(c),
            }
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else {
            match c {
                ' ' | '\t' | '\n' | '\r' => {}
                '"' => {
                    in_string = true;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
    }
    out
}

/// Go's `json.Indent(dst, src, "", indent)` over compact JSON text, as
/// `json.MarshalIndent` does after marshalling: a newline after every `{`,
/// `[` and `,`, `": "` after keys, and empty `{}`/`[]` left on one line.
pub(crate) fn indent(compact: &str, unit: &str) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    // Set after `{` or `[`: the newline is written lazily so that an
    // immediately closing bracket keeps the pair on one line.
    let mut need_indent = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(unit);
        }
    };
    for c in compact.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if need_indent && c != ']' && c != '}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                need_indent = true;
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '}' | ']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax(src: &str) -> String {
        match parse(src.as_bytes()) {
            Err(JsonError::Syntax { message, .. }) => message,
            other => panic!("expected a syntax error for {src:?}, got {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_use_go_scanner_wording() {
        assert_eq!(
            syntax("{\"a\":1,}"),
            "invalid character '}' looking for beginning of object key string"
        );
        assert_eq!(
            syntax("{} x"),
            "invalid character 'x' after top-level value"
        );
        assert_eq!(syntax(""), "unexpected end of JSON input");
        assert_eq!(syntax("{\"a\""), "unexpected end of JSON input");
        assert_eq!(
            syntax("1."),
            "invalid character ' ' after decimal point in numeric literal"
        );
        assert_eq!(
            syntax("[nul"),
            "invalid character ' ' in literal null (expecting 'l')"
        );
        assert_eq!(
            syntax("\u{feff}{}"),
            "invalid character 'ï' looking for beginning of value"
        );
        assert_eq!(
            syntax("{\"a\" 1}"),
            "invalid character '1' after object key"
        );
        assert_eq!(
            syntax("{\"a\":1 \"b\"}"),
            "invalid character '\"' after object key:value pair"
        );
        assert_eq!(syntax("[1 2]"), "invalid character '2' after array element");
        assert_eq!(
            syntax("[tru]"),
            "invalid character ']' in literal true (expecting 'e')"
        );
        assert_eq!(syntax("-x"), "invalid character 'x' in numeric literal");
        assert_eq!(
            syntax("1.x"),
            "invalid character 'x' after decimal point in numeric literal"
        );
        assert_eq!(
            syntax("1ex"),
            "invalid character 'x' in exponent of numeric literal"
        );
        assert_eq!(syntax("01"), "invalid character '1' after top-level value");
        assert_eq!(
            syntax("\"a\nb\""),
            "invalid character '\\n' in string literal"
        );
        assert_eq!(
            syntax("\"\\q\""),
            "invalid character 'q' in string escape code"
        );
        assert_eq!(
            syntax("\"\\u12x4\""),
            "invalid character 'x' in \\u hexadecimal character escape"
        );
        assert_eq!(
            syntax("{'a':1}"),
            "invalid character '\\'' looking for beginning of object key string"
        );
    }

    #[test]
    fn keeps_duplicates_order_and_spans() {
        let src = " {\"a\": [1, 2.5e3], \"a\" : null} ";
        let node = parse(src.as_bytes()).unwrap();
        assert_eq!((node.start, node.end), (1, src.len() - 1));
        let NodeKind::Object(members) = node.kind else {
            panic!("not an object")
        };
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].0, "a");
        assert_eq!(&src[members[0].1.start..members[0].1.end], "[1, 2.5e3]");
        assert!(members[1].1.is_null());
    }

    #[test]
    fn strings_decode_like_go() {
        let node = parse(b"\"\\u00e9\\ud83d\\ude00\\ud800x\\u0041\xff\"").unwrap();
        assert_eq!(node.kind, NodeKind::Str("é😀\u{fffd}xA\u{fffd}".to_owned()));
    }

    fn nested(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    #[test]
    fn depth_is_capped() {
        let deep = nested(MAX_DEPTH + 1);
        assert_eq!(parse(deep.as_bytes()), Err(JsonError::TooDeep));
        assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok());
    }

    #[test]
    fn depth_bound_is_the_callers() {
        assert_eq!(
            parse_bounded(nested(4).as_bytes(), 3),
            Err(JsonError::TooDeep)
        );
        assert!(parse_bounded(nested(3).as_bytes(), 3).is_ok());
        assert!(parse_bounded(nested(MAX_DEPTH + 1).as_bytes(), MAX_DEPTH + 1).is_ok());
        // A bound of 0 admits only scalars.
        assert!(parse_bounded(b"1", 0).is_ok());
        assert_eq!(parse_bounded(b"[]", 0), Err(JsonError::TooDeep));
    }

    #[test]
    fn depth_bound_never_passes_the_ceiling() {
        // Runs on a test thread (2 MiB stack): the ceiling must fit in it.
        let at = nested(MAX_DEPTH_CEILING);
        assert!(parse_bounded(at.as_bytes(), usize::MAX).is_ok());
        let over = nested(MAX_DEPTH_CEILING + 1);
        assert_eq!(
            parse_bounded(over.as_bytes(), usize::MAX),
            Err(JsonError::TooDeep)
        );
    }

    #[test]
    fn writer_escapes_like_go() {
        let mut out = String::new();
        write_string(&mut out, "a<b>&\"\\\n\u{1}\u{2028}é");
        assert_eq!(out, r#""a\u003cb\u003e\u0026\"\\\n\u0001\u2028é""#);
        assert_eq!(
            compact(" { \"a b\" : [ 1 , \"<\" ] } "),
            r#"{"a b":[1,"\u003c"]}"#
        );
        assert_eq!(go_quote("a\"b\u{0}é\u{a0}"), r#""a\"b\x00é\u00a0""#);
    }

    #[test]
    fn indent_matches_marshal_indent() {
        assert_eq!(
            indent(r#"{"a":[],"b":{},"c":[1,{"d":"x,y"}]}"#, "    "),
            "{\n    \"a\": [],\n    \"b\": {},\n    \"c\": [\n        1,\n        {\n            \"d\": \"x,y\"\n        }\n    ]\n}"
        );
    }
}
