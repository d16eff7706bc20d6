//! Printing paths in plumbing output: as is when they are plain UTF-8, or
//! C-quoted like git's `core.quotePath` when they hold control characters,
//! quotes, backslashes or bytes that are not UTF-8 (DESIGN §7). With `-z`
//! output paths are written raw instead and need no quoting.

use std::borrow::Cow;

/// Whether `path` must be quoted to survive a line-oriented listing.
pub fn needs_quoting(path: &[u8]) -> bool {
    match std::str::from_utf8(path) {
        Ok(text) => text.chars().any(|c| c.is_control() || c == '"' || c == '\\'),
        Err(_) => true,
    }
}

/// The path as it appears in line-oriented output: unchanged when safe,
/// otherwise wrapped in `"` with C escapes (`\t`, `\n`, `\"`, `\\`, and
/// `\ooo` octal for every other control or non-UTF-8 byte).
pub fn quote_path(path: &[u8]) -> Cow<'_, str> {
    if !needs_quoting(path) {
        // needs_quoting returned false only for valid UTF-8.
        return String::from_utf8_lossy(path);
    }
    let mut out = String::with_capacity(path.len() + 2);
    out.push('"');
    let mut rest = path;
    while !rest.is_empty() {
        let (valid, invalid) = match std::str::from_utf8(rest) {
            Ok(text) => (text, &[][..]),
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                let bad_len = e.error_len().unwrap_or(bad.len());
                (
                    std::str::from_utf8(good).expect("valid_up_to is valid"),
                    &bad[..bad_len],
                )
            }
        };
        for c in valid.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for byte in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\{byte:03o}"));
                    }
                }
                c => out.push(c),
            }
        }
        for byte in invalid {
            out.push_str(&format!("\\{byte:03o}"));
        }
        rest = &rest[valid.len() + invalid.len()..];
    }
    out.push('"');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_unchanged() {
        assert_eq!(quote_path(b"etc/passwd"), "etc/passwd");
        assert_eq!(quote_path("été/ü".as_bytes()), "été/ü");
    }

    #[test]
    fn control_quote_and_invalid_bytes_are_escaped() {
        assert_eq!(quote_path(b"a\nb"), "\"a\\nb\"");
        assert_eq!(quote_path(b"a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote_path(b"x\xffy\x01"), "\"x\\377y\\001\"");
    }
}
