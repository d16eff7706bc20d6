//! The two Go standard-library parsers the reference runs on annotation
//! values (aci-format §5, §6.5): `time.Parse(time.RFC3339, s)` for
//! `created` and `url.Parse(s)` for `homepage` and `documentation`, with
//! Go 1.19's error texts. Only acceptance and the message matter; neither
//! parser builds a value.

use std::fmt::Write as _;

use super::json::{go_quote, go_quote_bytes};

const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// Go's `time` package quoting (its private `quote`): every byte outside
/// printable ASCII (0x20..0x7f, DEL included) is written as `\xNN`.
fn time_quote(s: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in s {
        if (0x20..0x80).contains(&b) {
            if b == b'"' || b == b'\\' {
                out.push('\\');
            }
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

fn cannot_parse(value: &str, rest: &[u8], elem: &str) -> String {
    format!(
        "parsing time {} as {}: cannot parse {} as {}",
        time_quote(value.as_bytes()),
        time_quote(RFC3339.as_bytes()),
        time_quote(rest),
        time_quote(elem.as_bytes())
    )
}

fn with_message(value: &str, message: &str) -> String {
    format!("parsing time {}{message}", time_quote(value.as_bytes()))
}

fn is_digit(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(u8::is_ascii_digit)
}

/// Go's `getnum`: one or two digits (`fixed` demands two).
fn getnum(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    if !is_digit(s, 0) {
        return None;
    }
    if !is_digit(s, 1) {
        if fixed {
            return None;
        }
        return Some((i64::from(s[0] - b'0'), &s[1..]));
    }
    Some((
        i64::from(s[0] - b'0') * 10 + i64::from(s[1] - b'0'),
        &s[2..],
    ))
}

/// Go's time-package `atoi`: optional sign, then only digits.
fn atoi(s: &[u8]) -> Option<i64> {
    let digits = match s.first() {
        Some(b'-' | b'+') => &s[1..],
        _ => s,
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        if n > 1 << 63 {
            return None;
        }
    }
    Some(n as i64)
}

fn days_in(month: i64, year: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `time.Parse(time.RFC3339, value)` as in Go 1.19: `Err` carries Go's
/// message (without the `bad Date: ` prefix the appc code adds).
pub(crate) fn parse_rfc3339(value: &str) -> Result<(), String> {
    let v = value.as_bytes();
    // Each step below is one chunk of the layout: a literal prefix that
    // must match, then a "std" element with its own parsing rule.
    let skip = |rest: &[u8], prefix: u8| -> Result<usize, String> {
        if rest.first() == Some(&prefix) {
            Ok(1)
        } else {
            Err(cannot_parse(value, rest, &char::from(prefix).to_string()))
        }
    };
    let fail = |rest: &[u8], elem: &str| cannot_parse(value, rest, elem);
    let range = |what: &str| with_message(value, &format!(": {what} out of range"));

    // 2006: four bytes, the first a digit, all parsed by atoi.
    if v.len() < 4 || !is_digit(v, 0) {
        return Err(fail(v, "2006"));
    }
    let year = atoi(&v[..4]).ok_or_else(|| fail(&v[4..], "2006"))?;
    let mut rest = &v[4..];

    rest = &rest[skip(rest, b'-')?..];
    let (month, r) = getnum(rest, true).ok_or_else(|| fail(rest, "01"))?;
    if !(1..=12).contains(&month) {
        return Err(range("month"));
    }
    rest = r;

    rest = &rest[skip(rest, b'-')?..];
    let (day, r) = getnum(rest, true).ok_or_else(|| fail(rest, "02"))?;
    rest = r;

    rest = &rest[skip(rest, b'T')?..];
    let (hour, r) = getnum(rest, false).ok_or_else(|| fail(rest, "15"))?;
    if hour >= 24 {
        return Err(range("hour"));
    }
    rest = r;

    rest = &rest[skip(rest, b':')?..];
    let (minute, r) = getnum(rest, true).ok_or_else(|| fail(rest, "04"))?;
    if minute >= 60 {
        return Err(range("minute"));
    }
    rest = r;

    rest = &rest[skip(rest, b':')?..];
    let (second, r) = getnum(rest, true).ok_or_else(|| fail(rest, "05"))?;
    if second >= 60 {
        return Err(range("second"));
    }
    rest = r;
    // A fractional second the layout does not mention is still accepted:
    // a '.' or ',' then digits.
    if rest.len() >= 2 && matches!(rest[0], b'.' | b',') && is_digit(rest, 1) {
        let mut n = 2;
        while is_digit(rest, n) {
            n += 1;
        }
        rest = &rest[n..];
    }

    // Z07:00: either 'Z', or sign, two hour bytes, ':', two minute bytes.
    if rest.first() == Some(&b'Z') {
        rest = &rest[1..];
    } else {
        if rest.len() < 6 || rest[3] != b':' {
            return Err(fail(rest, "Z07:00"));
        }
        let (sign, hh, mm) = (rest[0], &rest[1..3], &rest[4..6]);
        rest = &rest[6..];
        if atoi(hh).is_none() || atoi(mm).is_none() || !matches!(sign, b'+' | b'-') {
            return Err(fail(rest, "Z07:00"));
        }
    }

    if !rest.is_empty() {
        return Err(with_message(
            value,
            &format!(": extra text: {}", time_quote(rest)),
        ));
    }
    if day < 1 || day > days_in(month, year) {
        return Err(with_message(value, ": day out of range"));
    }
    Ok(())
}

/// Go's `url.Parse(raw)` reduced to what decides acceptance, returning the
/// lower-cased scheme or Go's `*url.Error` text.
pub(crate) fn parse_url_scheme(raw: &str) -> Result<String, String> {
    let url_error = |target: &str, why: &str| format!("parse {}: {why}", go_quote(target));
    let (without_fragment, fragment) = match raw.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (raw, None),
    };
    let scheme =
        parse_no_fragment(without_fragment).map_err(|why| url_error(without_fragment, &why))?;
    if let Some(fragment) = fragment {
        unescape(fragment, Mode::Fragment).map_err(|why| url_error(raw, &why))?;
    }
    Ok(scheme)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Path,
    Host,
    Zone,
    UserPassword,
    Fragment,
}

fn parse_no_fragment(raw: &str) -> Result<String, String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".to_owned());
    }
    if raw == "*" {
        return Ok(String::new());
    }
    let (scheme, mut rest) = get_scheme(raw)?;
    let scheme = scheme.to_ascii_lowercase();
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        rest = &rest[..rest.len() - 1];
    } else if let Some((before, _query)) = rest.split_once('?') {
        rest = before;
    }
    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // An opaque URL such as "mailto:x" is never checked further.
            return Ok(scheme);
        }
        let segment = rest.split('/').next().unwrap_or("");
        if segment.contains(':') {
            return Err("first path segment in URL cannot contain colon".to_owned());
        }
    }
    if (!scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let after = &rest[2..];
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        parse_authority(authority)?;
        rest = path;
    }
    unescape(rest, Mode::Path)?;
    Ok(scheme)
}

fn get_scheme(raw: &str) -> Result<(&str, &str), String> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' => {
                if i == 0 {
                    return Ok(("", raw));
                }
            }
            b':' => {
                if i == 0 {
                    return Err("missing protocol scheme".to_owned());
                }
                return Ok((&raw[..i], &raw[i + 1..]));
            }
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

fn parse_authority(authority: &str) -> Result<(), String> {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    parse_host(host)?;
    if let Some(userinfo) = userinfo {
        let valid = userinfo
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&c));
        if !valid {
            return Err("net/url: invalid userinfo".to_owned());
        }
        match userinfo.split_once(':') {
            None => unescape(userinfo, Mode::UserPassword)?,
            Some((user, password)) => {
                unescape(user, Mode::UserPassword)?;
                unescape(password, Mode::UserPassword)?;
            }
        }
    }
    Ok(())
}

fn valid_optional_port(port: &str) -> bool {
    port.is_empty() || (port.starts_with(':') && port[1..].bytes().all(|b| b.is_ascii_digit()))
}

fn parse_host(host: &str) -> Result<(), String> {
    if host.starts_with('[') {
        let Some(i) = host.rfind(']') else {
            return Err("missing ']' in host".to_owned());
        };
        let colon_port = &host[i + 1..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {} after host", go_quote(colon_port)));
        }
        if let Some(zone) = host[..i].find("%25") {
            unescape(&host[..zone], Mode::Host)?;
            unescape(&host[zone..i], Mode::Zone)?;
            unescape(&host[i..], Mode::Host)?;
            return Ok(());
        }
    } else if let Some(i) = host.rfind(':') {
        let colon_port = &host[i..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {} after host", go_quote(colon_port)));
        }
    }
    unescape(host, Mode::Host)
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Go's `shouldEscape` for the host and zone modes: which ASCII bytes may
/// not appear literally in a host name.
fn host_byte_forbidden(c: u8) -> bool {
    !(c.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"".contains(&c))
}

/// The error checks of Go's `url.unescape` (the decoded text is not needed).
fn unescape(s: &str, mode: Mode) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if i + 2 >= b.len() || !is_hex(b[i + 1]) || !is_hex(b[i + 2]) {
                    let end = (i + 3).min(b.len());
                    return Err(format!("invalid URL escape {}", go_quote_bytes(&b[i..end])));
                }
                let escape = &s[i..i + 3];
                let value = u8::from_str_radix(&escape[1..], 16).unwrap_or(0);
                if mode == Mode::Host && value < 0x80 && escape != "%25" {
                    return Err(format!("invalid URL escape {}", go_quote(escape)));
                }
                // Zones may escape anything a host could not hold, except
                // that a space is allowed (Go's special case).
                let zone_forbidden = value >= 0x80 || host_byte_forbidden(value);
                if mode == Mode::Zone && escape != "%25" && value != b' ' && zone_forbidden {
                    return Err(format!("invalid URL escape {}", go_quote(escape)));
                }
                i += 3;
            }
            c => {
                if matches!(mode, Mode::Host | Mode::Zone) && c < 0x80 && host_byte_forbidden(c) {
                    return Err(format!(
                        "invalid character {} in host name",
                        go_quote(&(c as char).to_string())
                    ));
                }
                i += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_accepts_what_go_accepts() {
        for ok in [
            "2014-10-27T19:32:27Z",
            "2014-10-27T19:32:27.67021798Z",
            "2014-10-27T19:32:27,5+01:00",
            "2014-10-27T9:32:27-07:30",
            "2016-02-29T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rfc3339_errors_read_like_go() {
        assert_eq!(
            parse_rfc3339("2014-10-27 19:32:27Z").unwrap_err(),
            r#"parsing time "2014-10-27 19:32:27Z" as "2006-01-02T15:04:05Z07:00": cannot parse " 19:32:27Z" as "T""#
        );
        assert_eq!(
            parse_rfc3339("2014-13-27T19:32:27Z").unwrap_err(),
            r#"parsing time "2014-13-27T19:32:27Z": month out of range"#
        );
        assert_eq!(
            parse_rfc3339("2014-02-30T19:32:27Z").unwrap_err(),
            r#"parsing time "2014-02-30T19:32:27Z": day out of range"#
        );
        assert_eq!(
            parse_rfc3339("2014-02-03T19:32:27+0100").unwrap_err(),
            r#"parsing time "2014-02-03T19:32:27+0100" as "2006-01-02T15:04:05Z07:00": cannot parse "+0100" as "Z07:00""#
        );
        assert_eq!(
            parse_rfc3339("2014-02-03T19:32:27Zjunk").unwrap_err(),
            r#"parsing time "2014-02-03T19:32:27Zjunk": extra text: "junk""#
        );
        assert_eq!(
            parse_rfc3339("").unwrap_err(),
            r#"parsing time "" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "2006""#
        );
    }

    #[test]
    fn url_checks_scheme_host_and_escapes() {
        assert_eq!(parse_url_scheme("HTTPS://").as_deref(), Ok("https"));
        assert_eq!(parse_url_scheme("ftp://x/").as_deref(), Ok("ftp"));
        assert_eq!(parse_url_scheme("example.com").as_deref(), Ok(""));
        assert_eq!(
            parse_url_scheme("http://a b/").unwrap_err(),
            r#"parse "http://a b/": invalid character " " in host name"#
        );
        assert_eq!(
            parse_url_scheme("http://a:x/").unwrap_err(),
            r#"parse "http://a:x/": invalid port ":x" after host"#
        );
        assert_eq!(
            parse_url_scheme("http://a/%zz").unwrap_err(),
            r#"parse "http://a/%zz": invalid URL escape "%zz""#
        );
        assert_eq!(
            parse_url_scheme(":x").unwrap_err(),
            r#"parse ":x": missing protocol scheme"#
        );
    }
}
