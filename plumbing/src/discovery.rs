//! appc meta discovery (spec/appc-discovery.md §1, appc `spec/discovery.md`):
//! from an image name and labels to the URLs of the ACI, its signature and
//! the keys that sign it.
//!
//! For each candidate prefix, the name itself first, then its parents
//! (`a/b/c`, `a/b`, `a`), `GET https://PREFIX?ac-discovery=1` and read the
//! page's `<meta name="ac-discovery" content="PREFIX TEMPLATE">` (and
//! `ac-discovery-pubkeys`) tags with an HTML tokenizer. The walk stops at
//! the first level that yields a usable tag; a level fails on a transport
//! error, any status other than 200, or no usable tag, and every failure is
//! kept for the error message (rkt#3753: say what was tried).
//!
//! Where the reference implementation is loose, acido is strict (the digest
//! calls these "acido:" lines):
//! - a tag's prefix must match the name by whole `/` segments
//!   (`example.com/fo` does not cover `example.com/foo`; appc/spec#592);
//! - templates are filled in one pass, must contain `{ext}`, and a label
//!   value holding `{` or `}` is refused, so a value cannot inject a
//!   variable; a template with an unknown variable is skipped (as the
//!   reference does);
//! - the resulting URLs, and key URLs, must be `https` (or `http` when the
//!   client allows it): `file:`, `hdfs:` or relative URLs are skipped;
//! - a bound hit while reading a page (its size, redirects, the timeout)
//!   ends the walk at once with that error instead of trying the parent:
//!   a server that hits a bound is misbehaving, and the error names the
//!   `--limit` to raise.

use std::fmt;

use html5gum::{DefaultEmitter, Token, Tokenizer};

use crate::http::{Client, HttpError, Url};
use crate::limits::limit_kind;
use crate::naming::AppRef;

/// Errors of discovery.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The name cannot be discovered (not an AC identifier, or a label
    /// value that would inject a template variable).
    #[error("cannot discover {name:?}: {reason}")]
    BadRequest {
        /// The name or app string.
        name: String,
        /// Why.
        reason: String,
    },
    /// Every level failed; each attempt says why.
    #[error("discovery failed for {name:?}: {}", list_attempts(.attempts))]
    Failed {
        /// The name discovered.
        name: String,
        /// What was tried, in order.
        attempts: Vec<Attempt>,
    },
    /// A bound was hit while reading a discovery page.
    #[error("discovery of {name:?}: {source}")]
    Limit {
        /// The name discovered.
        name: String,
        /// The HTTP error, carrying the bound.
        source: HttpError,
    },
}

fn list_attempts(attempts: &[Attempt]) -> String {
    if attempts.is_empty() {
        return "no level to try".to_owned();
    }
    attempts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One discovery page tried, and why it gave nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The URL requested.
    pub url: String,
    /// What went wrong.
    pub outcome: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.outcome)
    }
}

/// Which meta tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKind {
    /// `ac-discovery`: an ACI URL template.
    Images,
    /// `ac-discovery-pubkeys`: a key URL.
    Pubkeys,
}

/// One `ac-discovery` or `ac-discovery-pubkeys` tag, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaTag {
    /// Which tag.
    pub kind: MetaKind,
    /// The name prefix it is for.
    pub prefix: String,
    /// The URL template (images) or URL (keys).
    pub url: String,
}

/// Reads the discovery tags of an HTML page: every `<meta>` start tag
/// whose `name` is exactly `ac-discovery` or `ac-discovery-pubkeys`
/// (case-sensitively, as the reference), `content` trimmed and split at
/// its first ASCII space into prefix and URL; a tag without both is
/// dropped. Entities in attribute values are decoded by the tokenizer.
pub fn parse_meta(html: &[u8]) -> Vec<MetaTag> {
    let mut emitter = DefaultEmitter::default();
    // Text inside <script>, <style>, <title> and <textarea> is not markup,
    // as browsers and Go's tokenizer treat it.
    emitter.naively_switch_states(true);
    let mut tags = Vec::new();
    for token in Tokenizer::new_with_emitter(html, emitter).flatten() {
        let Token::StartTag(tag) = token else {
            continue;
        };
        if &**tag.name != b"meta" {
            continue;
        }
        let attr = |name: &[u8]| {
            tag.attributes
                .iter()
                .find(|(k, _)| ***k == *name)
                .map(|(_, v)| String::from_utf8_lossy(&v.value).into_owned())
        };
        let kind = match attr(b"name").as_deref() {
            Some("ac-discovery") => MetaKind::Images,
            Some("ac-discovery-pubkeys") => MetaKind::Pubkeys,
            _ => continue,
        };
        let Some(content) = attr(b"content") else {
            continue;
        };
        let Some((prefix, url)) = content.trim().split_once(' ') else {
            continue;
        };
        let url = url.trim();
        if prefix.is_empty() || url.is_empty() {
            continue;
        }
        tags.push(MetaTag {
            kind,
            prefix: prefix.to_owned(),
            url: url.to_owned(),
        });
    }
    tags
}

/// Whether `prefix` covers `name` by whole `/` segments.
pub fn prefix_matches(prefix: &str, name: &str) -> bool {
    name == prefix
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Fills `template` in one pass: `{name}`, `{ext}` and one `{LABEL}` per
/// label. `None` when the template lacks `{ext}` or names a variable that
/// has no value (the reference skips such templates).
pub fn render_template(
    template: &str,
    name: &str,
    labels: &[(String, String)],
    ext: &str,
) -> Option<String> {
    if !template.contains("{ext}") {
        return None;
    }
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let var = &after[..close];
        let value = match var {
            "name" => name,
            "ext" => ext,
            _ => labels
                .iter()
                .find(|(k, _)| k == var && k != "name")
                .map(|(_, v)| v.as_str())?,
        };
        out.push_str(value);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

/// Where an image and its signature are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEndpoint {
    /// The ACI (`{ext}` = `aci`).
    pub aci: Url,
    /// Its detached signature (`{ext}` = `aci.asc`).
    pub asc: Url,
}

/// What a walk found.
#[derive(Debug, Clone)]
pub struct Discovered<T> {
    /// The usable entries of the winning level, in document order.
    pub found: Vec<T>,
    /// The discovery page they came from.
    pub page: Url,
    /// The levels that failed before it.
    pub attempts: Vec<Attempt>,
}

/// Discovers the ACI and signature URLs of `app` (spec §1). The labels
/// used are `app`'s; a missing `version` is `latest` for discovery only
/// (the manifest check must not require it).
pub fn discover_images(
    client: &Client,
    app: &AppRef,
) -> Result<Discovered<ImageEndpoint>, DiscoveryError> {
    check_request(app)?;
    let mut labels = app.labels.clone();
    if !labels.iter().any(|(k, _)| k == "version") {
        labels.push(("version".to_owned(), "latest".to_owned()));
    }
    walk(client, &app.name, |tags, notes| {
        let mut found = Vec::new();
        for tag in tags.iter().filter(|t| t.kind == MetaKind::Images) {
            if !prefix_matches(&tag.prefix, &app.name) {
                notes.push(format!("tag for {:?} does not cover the name", tag.prefix));
                continue;
            }
            let (Some(aci), Some(asc)) = (
                render_template(&tag.url, &app.name, &labels, "aci"),
                render_template(&tag.url, &app.name, &labels, "aci.asc"),
            ) else {
                notes.push(format!(
                    "template {:?} lacks {{ext}} or a variable's value",
                    tag.url
                ));
                continue;
            };
            match (usable_url(client, &aci), usable_url(client, &asc)) {
                (Ok(aci), Ok(asc)) => found.push(ImageEndpoint { aci, asc }),
                (Err(why), _) | (_, Err(why)) => notes.push(why),
            }
        }
        found
    })
}

/// Discovers the key URLs published for `prefix` (its
/// `ac-discovery-pubkeys` tags), walking up from `prefix` like
/// [`discover_images`]: `acido trust --prefix example.com/app` without key
/// files. Only key URLs on the prefix's own host are used.
pub fn discover_keys(client: &Client, prefix: &str) -> Result<Discovered<Url>, DiscoveryError> {
    check_request(&AppRef {
        name: prefix.to_owned(),
        labels: Vec::new(),
    })?;
    let host = prefix.split('/').next().unwrap_or(prefix);
    walk(client, prefix, |tags, notes| {
        let mut found = Vec::new();
        for tag in tags.iter().filter(|t| t.kind == MetaKind::Pubkeys) {
            if !prefix_matches(&tag.prefix, prefix) {
                notes.push(format!("tag for {:?} does not cover the name", tag.prefix));
                continue;
            }
            // Keys are the root of trust: a page may only point to keys
            // on the prefix's own host, so one compromised page elsewhere
            // cannot vouch for another host's images.
            match usable_url(client, &tag.url) {
                Ok(url) if url.host_str() == Some(host) => found.push(url),
                Ok(url) => notes.push(format!("key URL {url} is on another host than {host}")),
                Err(why) => notes.push(why),
            }
        }
        found
    })
}

fn check_request(app: &AppRef) -> Result<(), DiscoveryError> {
    let bad = |reason: String| DiscoveryError::BadRequest {
        name: app.to_string(),
        reason,
    };
    let valid_name = app
        .name
        .parse::<crate::manifest::AcIdentifier>()
        .is_ok_and(|id| id.is_spec_valid());
    if !valid_name {
        return Err(bad(
            "the name is not an AC identifier (lowercase letters, digits, and -._~/ between them)"
                .to_owned(),
        ));
    }
    for (key, value) in &app.labels {
        if value.contains(['{', '}']) {
            return Err(bad(format!(
                "label {key}: a value must not contain {{ or }} (it would be read as a template variable)"
            )));
        }
    }
    Ok(())
}

/// A rendered URL that may be fetched: absolute, https or allowed http.
fn usable_url(client: &Client, text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    client.check_scheme(&url).map_err(|e| e.to_string())?;
    Ok(url)
}

/// The levels of `name`, longest first: `a/b/c`, `a/b`, `a`.
fn levels(name: &str) -> Vec<&str> {
    let mut out = vec![name];
    let mut rest = name;
    while let Some((parent, _)) = rest.rsplit_once('/') {
        out.push(parent);
        rest = parent;
    }
    out
}

/// Walks the levels of `name` until `pick` finds something on a page.
fn walk<T>(
    client: &Client,
    name: &str,
    mut pick: impl FnMut(&[MetaTag], &mut Vec<String>) -> Vec<T>,
) -> Result<Discovered<T>, DiscoveryError> {
    let mut attempts = Vec::new();
    let schemes: &[&str] = if client.config().allow_http {
        &["https", "http"]
    } else {
        &["https"]
    };
    for level in levels(name) {
        for scheme in schemes {
            let text = format!("{scheme}://{level}?ac-discovery=1");
            let url = match Url::parse(&text) {
                Ok(url) => url,
                Err(e) => {
                    attempts.push(Attempt {
                        url: text,
                        outcome: format!("not a URL: {e}"),
                    });
                    continue;
                }
            };
            let page = match client.get_page(&url) {
                Ok(page) => page,
                Err(e) if limit_kind(&e).is_some() => {
                    return Err(DiscoveryError::Limit {
                        name: name.to_owned(),
                        source: e,
                    })
                }
                Err(e) => {
                    attempts.push(Attempt {
                        url: url.to_string(),
                        outcome: describe(&e, &url),
                    });
                    continue;
                }
            };
            let tags = parse_meta(&page);
            let mut notes = Vec::new();
            let found = pick(&tags, &mut notes);
            if !found.is_empty() {
                return Ok(Discovered {
                    found,
                    page: url,
                    attempts,
                });
            }
            let outcome = if notes.is_empty() {
                "no matching discovery tag".to_owned()
            } else {
                format!("no usable discovery tag ({})", notes.join(", "))
            };
            attempts.push(Attempt {
                url: url.to_string(),
                outcome,
            });
        }
    }
    Err(DiscoveryError::Failed {
        name: name.to_owned(),
        attempts,
    })
}

/// An HTTP error of one page, without the page's URL that the attempt
/// already shows.
fn describe(err: &HttpError, page: &Url) -> String {
    match err {
        HttpError::Status { status, reason, .. } if reason.is_empty() => format!("HTTP {status}"),
        HttpError::Status { status, reason, .. } => format!("HTTP {status} {reason}"),
        HttpError::Transport { url, source } if *url == page.as_str() => source.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_tags_are_read_as_the_reference_reads_them() {
        let html = br#"<!DOCTYPE html><html><head>
            <meta name="ac-discovery" content="example.com https://example.com/{name}-{version}.{ext}">
            <meta NAME="ac-discovery-pubkeys" CONTENT="  example.com   https://example.com/pubkeys.gpg?a=1&amp;b=2 ">
            <meta name="AC-DISCOVERY" content="example.com https://wrong.example/{ext}">
            <meta name="ac-discovery" content="example.com	https://tab.example/{ext}">
            <meta name="ac-discovery" content=" https://no-prefix.example/{ext}">
            <script>var s = '<meta name="ac-discovery" content="example.com https://script.example/{ext}">';</script>
            <meta name="ac-discovery" content="example.com/fo https://fo.example/{ext}"/>
            </head></html>"#;
        let tags = parse_meta(html);
        let got: Vec<_> = tags
            .iter()
            .map(|t| (t.kind, t.prefix.as_str(), t.url.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    MetaKind::Images,
                    "example.com",
                    "https://example.com/{name}-{version}.{ext}"
                ),
                (
                    MetaKind::Pubkeys,
                    "example.com",
                    "https://example.com/pubkeys.gpg?a=1&b=2"
                ),
                (
                    MetaKind::Images,
                    "example.com/fo",
                    "https://fo.example/{ext}"
                ),
            ]
        );
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(prefix_matches("example.com", "example.com"));
        assert!(prefix_matches("example.com", "example.com/app"));
        assert!(prefix_matches("example.com/app", "example.com/app/x"));
        assert!(!prefix_matches("example.com/fo", "example.com/foo"));
        assert!(!prefix_matches("example.co", "example.com"));
    }

    #[test]
    fn templates_fill_in_one_pass_and_skip_unknown_variables() {
        let labels = vec![
            ("version".to_owned(), "1.0".to_owned()),
            ("os".to_owned(), "linux".to_owned()),
            ("arch".to_owned(), "amd64".to_owned()),
        ];
        let t = "https://example.com/{name}-{version}-{os}-{arch}.{ext}";
        assert_eq!(
            render_template(t, "example.com/app", &labels, "aci.asc").unwrap(),
            "https://example.com/example.com/app-1.0-linux-amd64.aci.asc"
        );
        assert_eq!(
            render_template("https://x/{name}.aci", "a", &labels, "aci"),
            None,
            "no {{ext}}"
        );
        assert_eq!(
            render_template("https://x/{name}-{channel}.{ext}", "a", &labels, "aci"),
            None,
            "unknown variable"
        );
        assert_eq!(
            render_template("https://x/{name.{ext}", "a", &labels, "aci"),
            None,
            "unbalanced"
        );
        // One pass: a value is never read as a template.
        let sneaky = vec![("version".to_owned(), "{ext}".to_owned())];
        assert_eq!(
            render_template("https://x/{version}.{ext}", "a", &sneaky, "aci").unwrap(),
            "https://x/{ext}.aci"
        );
    }

    #[test]
    fn levels_walk_up_to_the_host() {
        assert_eq!(
            levels("example.com/a/b"),
            ["example.com/a/b", "example.com/a", "example.com"]
        );
        assert_eq!(levels("example.com"), ["example.com"]);
    }
}
