//! The shared appc value types (aci-format §6): AC identifiers and names,
//! the manifest kind, SemVer as coreos/go-semver 0.3.0 parses it, labels
//! with the os/arch table, annotations, and dependency image ids.
//!
//! Each type parses with the checks the reference code applies, which are
//! weaker than the spec's regular expressions in places; `is_spec_valid`
//! methods apply the spec's own rule for strict validation.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use super::gocheck;
use super::json::go_quote;
use crate::id::{IdPrefix, FULL_HEX_LEN};

/// Why a value is not a valid appc value.
///
/// Display messages name the input; [`ValueError::reference_message`] gives
/// the exact text of the reference implementation for the same problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// An empty AC identifier.
    #[error("AC identifier is empty")]
    EmptyIdentifier,
    /// A character outside `[a-z0-9-._~/]` in an AC identifier.
    #[error("AC identifier {input:?} has a character outside a-z, 0-9 and \"-._~/\"")]
    IdentifierChars {
        /// The rejected identifier.
        input: String,
    },
    /// An AC identifier starting or ending with one of `-._~/`.
    #[error("AC identifier {input:?} starts or ends with a separator")]
    IdentifierEdges {
        /// The rejected identifier.
        input: String,
    },
    /// An empty AC name.
    #[error("AC name is empty")]
    EmptyName,
    /// A character outside `[a-z0-9-]` in an AC name.
    #[error("AC name {input:?} has a character outside a-z, 0-9 and \"-\"")]
    NameChars {
        /// The rejected name.
        input: String,
    },
    /// An AC name starting or ending with `-`.
    #[error("AC name {input:?} starts or ends with \"-\"")]
    NameEdges {
        /// The rejected name.
        input: String,
    },
    /// An empty `acKind`.
    #[error("acKind is empty")]
    EmptyKind,
    /// An `acKind` other than `ImageManifest` or `PodManifest`.
    #[error("acKind {input:?} is neither \"ImageManifest\" nor \"PodManifest\"")]
    BadKind {
        /// The rejected kind.
        input: String,
    },
    /// A version go-semver cannot parse.
    #[error("version {input:?} is not a semantic version")]
    BadSemVer {
        /// The rejected version.
        input: String,
    },
    /// The version `0.0.0`.
    #[error("version {input:?} is zero")]
    ZeroSemVer {
        /// The rejected version.
        input: String,
    },
    /// A hash that is not `type-value`.
    #[error("image id {input:?} is not of the form \"sha512-<value>\"")]
    HashFormat {
        /// The rejected hash.
        input: String,
    },
    /// A hash with an empty type before the `-`.
    #[error("image id {input:?} has an empty hash type")]
    HashEmptyType {
        /// The rejected hash.
        input: String,
    },
    /// A hash type other than `sha512`.
    #[error("image id {input:?} has hash type {kind:?}, only \"sha512\" is known")]
    HashType {
        /// The rejected hash.
        input: String,
        /// Its hash type.
        kind: String,
    },
    /// A hash with an empty value after the `-`.
    #[error("image id {input:?} has an empty hash value")]
    HashEmptyValue {
        /// The rejected hash.
        input: String,
    },
    /// A label called `name`, which the spec reserves.
    #[error("label name \"name\" is reserved")]
    LabelCalledName,
    /// Two labels with one name.
    #[error("label {name:?} is given twice")]
    DuplicateLabel {
        /// The repeated name.
        name: String,
    },
    /// An `os` label outside the os/arch table.
    #[error("os label {os:?} is not one of darwin, freebsd, linux")]
    BadOs {
        /// The rejected os.
        os: String,
    },
    /// An `arch` label not listed for the `os` label.
    #[error("arch label {arch:?} is not valid for os {os:?}")]
    BadArch {
        /// The os label.
        os: String,
        /// The rejected arch.
        arch: String,
    },
    /// Two annotations with one name.
    #[error("annotation {name:?} is given twice")]
    DuplicateAnnotation {
        /// The repeated name.
        name: String,
    },
    /// A `created` annotation that is not an RFC 3339 time.
    #[error("annotation \"created\" is not an RFC 3339 time: {reason}")]
    BadDate {
        /// Go's `time.Parse` error.
        reason: String,
    },
    /// A `homepage` or `documentation` annotation Go's URL parser rejects.
    #[error("annotation value is not a URL: {reason}")]
    BadUrl {
        /// Go's `url.Parse` error.
        reason: String,
    },
    /// A `homepage` or `documentation` URL whose scheme is not http(s).
    #[error("annotation URL {input:?} does not use http or https")]
    UrlScheme {
        /// The rejected URL.
        input: String,
    },
}

impl ValueError {
    /// The message appc v0.8.11 gives for this problem.
    pub fn reference_message(&self) -> String {
        match self {
            ValueError::EmptyIdentifier => "ACIdentifier cannot be empty".to_owned(),
            ValueError::IdentifierChars { .. } => {
                "ACIdentifier must contain only lower case alphanumeric characters plus \"-._~/\""
                    .to_owned()
            }
            ValueError::IdentifierEdges { .. } => {
                "ACIdentifier must start and end with only lower case alphanumeric characters"
                    .to_owned()
            }
            ValueError::EmptyName => "ACName cannot be empty".to_owned(),
            ValueError::NameChars { .. } => {
                "ACName must contain only lower case alphanumeric characters plus \"-\"".to_owned()
            }
            ValueError::NameEdges { .. } => {
                "ACName must start and end with only lower case alphanumeric characters".to_owned()
            }
            ValueError::EmptyKind => "ACKind must be set".to_owned(),
            ValueError::BadKind { input } => format!("bad ACKind: {input}"),
            ValueError::BadSemVer { .. } => "SemVer is bad".to_owned(),
            ValueError::ZeroSemVer { .. } => "SemVer cannot be zero".to_owned(),
            ValueError::HashFormat { .. } => "badly formatted hash string".to_owned(),
            ValueError::HashEmptyType { .. } => "unexpected empty hash type".to_owned(),
            ValueError::HashType { kind, .. } => format!("unrecognized hash type: {kind}"),
            ValueError::HashEmptyValue { .. } => "unexpected empty hash value".to_owned(),
            ValueError::LabelCalledName => "invalid label name: \"name\"".to_owned(),
            ValueError::DuplicateLabel { name } => {
                format!("duplicate labels of name {}", go_quote(name))
            }
            ValueError::BadOs { os } => format!(
                "bad os {} (must be one of: [{}])",
                go_quote(os),
                os_names_sorted().join(" ")
            ),
            ValueError::BadArch { os, arch } => format!(
                "bad arch {} for {os} (must be one of: [{}])",
                go_quote(arch),
                Os::from_str(os)
                    .map(|o| o.arches().join(" "))
                    .unwrap_or_default()
            ),
            ValueError::DuplicateAnnotation { name } => {
                format!("duplicate annotations of name {}", go_quote(name))
            }
            ValueError::BadDate { reason } => format!("bad Date: {reason}"),
            ValueError::BadUrl { reason } => format!("bad URL: {reason}"),
            ValueError::UrlScheme { .. } => "bad URL scheme, must be http/https".to_owned(),
        }
    }
}

fn check_charset_and_edges(s: &str, allowed_sep: &[u8]) -> Result<(), bool> {
    let ok_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || allowed_sep.contains(&b);
    if !s.bytes().all(ok_char) {
        return Err(false);
    }
    let is_sep = |b: Option<u8>| b.is_some_and(|b| allowed_sep.contains(&b));
    if is_sep(s.bytes().next()) || is_sep(s.bytes().last()) {
        return Err(true);
    }
    Ok(())
}

/// Whether `s` matches `^[a-z0-9]+([<seps>][a-z0-9]+)*$`.
fn matches_spec_regex(s: &str, seps: &[u8]) -> bool {
    let mut prev_sep = true;
    for b in s.bytes() {
        if seps.contains(&b) {
            if prev_sep {
                return false;
            }
            prev_sep = true;
        } else if b.is_ascii_lowercase() || b.is_ascii_digit() {
            prev_sep = false;
        } else {
            return false;
        }
    }
    !prev_sep
}

const IDENTIFIER_SEPARATORS: &[u8] = b"-._~/";

/// An AC Identifier (aci-format §6.1): image, label, annotation, isolator
/// and dependency names.
///
/// Parsing applies the reference's checks (only `[a-z0-9-._~/]`, no
/// separator at either end), so `example.com//app..x` is accepted;
/// [`AcIdentifier::is_spec_valid`] applies the spec's stricter regex.
///
/// A decoded manifest may hold the *empty* identifier where the JSON left a
/// label's or annotation's `name` out: the reference accepts that and so
/// does the decoder. [`FromStr`] never produces it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AcIdentifier(String);

impl AcIdentifier {
    /// The identifier's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the empty identifier of an omitted name.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the identifier matches the spec's `^[a-z0-9]+([-._~/][a-z0-9]+)*$`.
    pub fn is_spec_valid(&self) -> bool {
        matches_spec_regex(&self.0, IDENTIFIER_SEPARATORS)
    }

    pub(crate) fn empty() -> Self {
        AcIdentifier(String::new())
    }
}

impl FromStr for AcIdentifier {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ValueError::EmptyIdentifier);
        }
        match check_charset_and_edges(s, IDENTIFIER_SEPARATORS) {
            Ok(()) => Ok(AcIdentifier(s.to_owned())),
            Err(false) => Err(ValueError::IdentifierChars {
                input: s.to_owned(),
            }),
            Err(true) => Err(ValueError::IdentifierEdges {
                input: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for AcIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An AC Name (aci-format §6.2): mount point and port names.
///
/// Parsing applies the reference's checks (`[a-z0-9-]`, no `-` at either
/// end), so `a--b` is accepted; [`AcName::is_spec_valid`] applies the spec
/// regex. As with [`AcIdentifier`], a decoded mount point or port whose
/// `name` key was left out holds the empty name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AcName(String);

impl AcName {
    /// The name's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the empty name of an omitted `name` key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the name matches the spec's `^[a-z0-9]+([-][a-z0-9]+)*$`.
    pub fn is_spec_valid(&self) -> bool {
        matches_spec_regex(&self.0, b"-")
    }

    pub(crate) fn empty() -> Self {
        AcName(String::new())
    }
}

impl FromStr for AcName {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ValueError::EmptyName);
        }
        match check_charset_and_edges(s, b"-") {
            Ok(()) => Ok(AcName(s.to_owned())),
            Err(false) => Err(ValueError::NameChars {
                input: s.to_owned(),
            }),
            Err(true) => Err(ValueError::NameEdges {
                input: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for AcName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `acKind` of a manifest (aci-format §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AcKind {
    /// `ImageManifest`: the manifest inside an ACI.
    ImageManifest,
    /// `PodManifest`: a runtime's pod description.
    PodManifest,
}

impl AcKind {
    /// The kind as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AcKind::ImageManifest => "ImageManifest",
            AcKind::PodManifest => "PodManifest",
        }
    }
}

impl FromStr for AcKind {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ImageManifest" => Ok(AcKind::ImageManifest),
            "PodManifest" => Ok(AcKind::PodManifest),
            "" => Err(ValueError::EmptyKind),
            _ => Err(ValueError::BadKind {
                input: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for AcKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A semantic version as coreos/go-semver 0.3.0 parses it (aci-format §6.4):
/// `+metadata` is split off at the first `+`, then `-prerelease` at the
/// first `-`, the rest must be three dot-separated decimal integers (leading
/// zeros allowed), and pre-release and metadata must be dot-separated runs
/// of `[0-9A-Za-z-]` when not empty. Displays from the parsed numbers, so
/// `01.02.003` prints as `1.2.3` like the reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SemVer {
    /// Major version.
    pub major: i64,
    /// Minor version.
    pub minor: i64,
    /// Patch version.
    pub patch: i64,
    /// Pre-release part after `-`, possibly empty.
    pub pre_release: String,
    /// Build metadata after `+`, possibly empty.
    pub metadata: String,
}

impl SemVer {
    /// Whether this is `0.0.0` with neither pre-release nor metadata, the
    /// value the reference rejects as "zero".
    pub fn is_zero(&self) -> bool {
        self.major == 0
            && self.minor == 0
            && self.patch == 0
            && self.pre_release.is_empty()
            && self.metadata.is_empty()
    }
}

fn valid_semver_identifier(id: &str) -> bool {
    id.is_empty()
        || id.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, decimal digits only.
fn go_parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl FromStr for SemVer {
    type Err = ValueError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = || ValueError::BadSemVer {
            input: input.to_owned(),
        };
        let (rest, metadata) = input.split_once('+').unwrap_or((input, ""));
        let (core, pre_release) = rest.split_once('-').unwrap_or((rest, ""));
        let parts: Vec<&str> = core.splitn(3, '.').collect();
        if parts.len() != 3
            || !valid_semver_identifier(pre_release)
            || !valid_semver_identifier(metadata)
        {
            return Err(bad());
        }
        let num = |s: &str| go_parse_int(s).ok_or_else(bad);
        let version = SemVer {
            major: num(parts[0])?,
            minor: num(parts[1])?,
            patch: num(parts[2])?,
            pre_release: pre_release.to_owned(),
            metadata: metadata.to_owned(),
        };
        if version.is_zero() {
            return Err(ValueError::ZeroSemVer {
                input: input.to_owned(),
            });
        }
        Ok(version)
    }
}

impl fmt::Display for SemVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre_release.is_empty() {
            write!(f, "-{}", self.pre_release)?;
        }
        if !self.metadata.is_empty() {
            write!(f, "+{}", self.metadata)?;
        }
        Ok(())
    }
}

/// The operating systems of the reference's `ValidOSArch` table, in the
/// order it prints them (aci-format §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Os {
    /// `linux`
    Linux,
    /// `freebsd`
    Freebsd,
    /// `darwin`
    Darwin,
}

impl Os {
    /// Every os, in table order.
    pub const ALL: [Os; 3] = [Os::Linux, Os::Freebsd, Os::Darwin];

    /// The os label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::Freebsd => "freebsd",
            Os::Darwin => "darwin",
        }
    }

    /// The arch label values valid with this os, in the reference's order.
    /// Note that `darwin/amd64` is not valid: darwin uses `x86_64`.
    pub fn arches(self) -> &'static [&'static str] {
        match self {
            Os::Linux => &[
                "amd64",
                "i386",
                "aarch64",
                "aarch64_be",
                "armv6l",
                "armv7l",
                "armv7b",
                "ppc64",
                "ppc64le",
                "s390x",
            ],
            Os::Freebsd => &["amd64", "i386", "arm"],
            Os::Darwin => &["x86_64", "i386"],
        }
    }
}

impl FromStr for Os {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Os::ALL
            .into_iter()
            .find(|os| os.as_str() == s)
            .ok_or_else(|| ValueError::BadOs { os: s.to_owned() })
    }
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn os_names_sorted() -> Vec<&'static str> {
    let mut names: Vec<&str> = Os::ALL.iter().map(|o| o.as_str()).collect();
    names.sort_unstable();
    names
}

/// One label: an AC identifier name and any string value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Label {
    /// The label name.
    pub name: AcIdentifier,
    /// The label value.
    pub value: String,
}

/// An ordered list of labels, checked as the reference checks them
/// (aci-format §6.3): no label called `name`, no repeated names, an `os`
/// from the table, and an `arch` valid for that `os` when both are given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Checks and wraps a list of labels, keeping its order.
    pub fn new(labels: Vec<Label>) -> Result<Self, ValueError> {
        check_labels(&labels)?;
        Ok(Labels(labels))
    }

    pub(crate) fn unchecked(labels: Vec<Label>) -> Self {
        Labels(labels)
    }

    /// The value of the label called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|l| l.name.as_str() == name)
            .map(|l| l.value.as_str())
    }

    /// The labels in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// How many labels there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

pub(crate) fn check_labels(labels: &[Label]) -> Result<(), ValueError> {
    let mut seen: HashSet<&str> = HashSet::new();
    for label in labels {
        let name = label.name.as_str();
        if name == "name" {
            return Err(ValueError::LabelCalledName);
        }
        if seen.contains(&name) {
            return Err(ValueError::DuplicateLabel {
                name: name.to_owned(),
            });
        }
        seen.insert(name);
    }
    // Duplicates were refused above, so get() finds the only value.
    let find = |n: &str| {
        labels
            .iter()
            .find(|l| l.name.as_str() == n)
            .map(|l| l.value.as_str())
    };
    if let Some(os) = find("os") {
        let os_kind = Os::from_str(os)?;
        if let Some(arch) = find("arch") {
            if !os_kind.arches().contains(&arch) {
                return Err(ValueError::BadArch {
                    os: os.to_owned(),
                    arch: arch.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// One annotation: an AC identifier name and any string value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Annotation {
    /// The annotation name.
    pub name: AcIdentifier,
    /// The annotation value.
    pub value: String,
}

/// An ordered list of annotations, checked as the reference checks them
/// (aci-format §5): unique names, `created` an RFC 3339 time, `homepage`
/// and `documentation` URLs with an http or https scheme.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Annotations(Vec<Annotation>);

impl Annotations {
    /// Checks and wraps a list of annotations, keeping its order.
    pub fn new(annotations: Vec<Annotation>) -> Result<Self, ValueError> {
        check_annotations(&annotations)?;
        Ok(Annotations(annotations))
    }

    pub(crate) fn unchecked(annotations: Vec<Annotation>) -> Self {
        Annotations(annotations)
    }

    /// The value of the annotation called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|a| a.name.as_str() == name)
            .map(|a| a.value.as_str())
    }

    /// The annotations in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Annotation> {
        self.0.iter()
    }

    /// How many annotations there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Annotations {
    type Item = &'a Annotation;
    type IntoIter = std::slice::Iter<'a, Annotation>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

fn check_url(value: &str) -> Result<(), ValueError> {
    let scheme =
        gocheck::parse_url_scheme(value).map_err(|reason| ValueError::BadUrl { reason })?;
    if scheme == "http" || scheme == "https" {
        Ok(())
    } else {
        Err(ValueError::UrlScheme {
            input: value.to_owned(),
        })
    }
}

pub(crate) fn check_annotations(annotations: &[Annotation]) -> Result<(), ValueError> {
    let mut seen: HashSet<&str> = HashSet::new();
    for annotation in annotations {
        let name = annotation.name.as_str();
        if seen.contains(&name) {
            return Err(ValueError::DuplicateAnnotation {
                name: name.to_owned(),
            });
        }
        seen.insert(name);
    }
    let find = |n: &str| {
        annotations
            .iter()
            .find(|a| a.name.as_str() == n)
            .map(|a| a.value.as_str())
    };
    if let Some(created) = find("created") {
        gocheck::parse_rfc3339(created).map_err(|reason| ValueError::BadDate { reason })?;
    }
    if let Some(homepage) = find("homepage") {
        check_url(homepage)?;
    }
    if let Some(documentation) = find("documentation") {
        check_url(documentation)?;
    }
    Ok(())
}

/// A dependency's `imageID` as the reference's `types.Hash` accepts it
/// (aci-format §3): `sha512-` and a non-empty value that is *not* checked
/// for hex or length, so `sha512-NOT_HEX` is kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageIdRef(String);

impl ImageIdRef {
    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `sha512-`.
    pub fn value(&self) -> &str {
        &self.0["sha512-".len()..]
    }

    /// The id as a store prefix, when the value is lower-case hex of a
    /// usable length (2 to 128 digits); `None` for ids only the lenient
    /// reference accepts.
    pub fn as_prefix(&self) -> Option<IdPrefix> {
        if self.value().len() > FULL_HEX_LEN {
            return None;
        }
        self.0.parse().ok()
    }

    /// Whether the value is the spec's full form: 128 lower-case hex digits.
    pub fn is_full(&self) -> bool {
        self.as_prefix().is_some_and(|p| p.is_full())
    }
}

impl FromStr for ImageIdRef {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('-').collect();
        let [kind, value] = parts[..] else {
            return Err(ValueError::HashFormat {
                input: s.to_owned(),
            });
        };
        match kind {
            "sha512" => {}
            "" => {
                return Err(ValueError::HashEmptyType {
                    input: s.to_owned(),
                })
            }
            _ => {
                return Err(ValueError::HashType {
                    input: s.to_owned(),
                    kind: kind.to_owned(),
                })
            }
        }
        if value.is_empty() {
            return Err(ValueError::HashEmptyValue {
                input: s.to_owned(),
            });
        }
        Ok(ImageIdRef(s.to_owned()))
    }
}

impl fmt::Display for ImageIdRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<crate::id::ImageId> for ImageIdRef {
    fn from(id: crate::id::ImageId) -> Self {
        ImageIdRef(id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(s: &str) -> Result<AcIdentifier, String> {
        s.parse::<AcIdentifier>().map_err(|e| e.reference_message())
    }

    #[test]
    fn ac_identifier_follows_the_go_checks() {
        // aci-format §15 case 5.
        for ok in [
            "a_b",
            "a~b",
            "0",
            "example.com/app",
            "example.com//app..x",
            "a-.b",
        ] {
            assert!(ident(ok).is_ok(), "{ok}");
        }
        let chars =
            "ACIdentifier must contain only lower case alphanumeric characters plus \"-._~/\"";
        let edges = "ACIdentifier must start and end with only lower case alphanumeric characters";
        assert_eq!(ident("Example.com").unwrap_err(), chars);
        assert_eq!(ident("a b").unwrap_err(), chars);
        assert_eq!(ident("é").unwrap_err(), chars);
        assert_eq!(ident("_a").unwrap_err(), edges);
        assert_eq!(ident("a/").unwrap_err(), edges);
        assert_eq!(ident("").unwrap_err(), "ACIdentifier cannot be empty");
        // Characters are checked before edges, as in Go.
        assert_eq!(ident("-A").unwrap_err(), chars);
    }

    #[test]
    fn ac_identifier_spec_regex_is_stricter() {
        assert!(ident("example.com/app").unwrap().is_spec_valid());
        assert!(!ident("example.com//app..x").unwrap().is_spec_valid());
        assert!(!ident("a-.b").unwrap().is_spec_valid());
    }

    #[test]
    fn ac_name_follows_the_go_checks() {
        // aci-format §15 case 6.
        assert!("9".parse::<AcName>().is_ok());
        let double = "a--b".parse::<AcName>().unwrap();
        assert!(!double.is_spec_valid());
        assert_eq!(
            "a.b".parse::<AcName>().unwrap_err().reference_message(),
            "ACName must contain only lower case alphanumeric characters plus \"-\""
        );
        assert_eq!(
            "-a".parse::<AcName>().unwrap_err().reference_message(),
            "ACName must start and end with only lower case alphanumeric characters"
        );
        assert_eq!("".parse::<AcName>().unwrap_err(), ValueError::EmptyName);
    }

    #[test]
    fn semver_matches_the_go_semver_table() {
        // aci-format §6.4.
        for (ok, shown) in [
            ("1.0.0", "1.0.0"),
            ("01.02.003", "1.2.3"),
            ("1.0.0-", "1.0.0"),
            ("1.0.0-alpha.01", "1.0.0-alpha.01"),
            ("1.2.3-x-y", "1.2.3-x-y"),
            ("1.0.0-rc.1+build.5", "1.0.0-rc.1+build.5"),
            ("0.0.0-alpha", "0.0.0-alpha"),
            ("0.0.0+meta", "0.0.0+meta"),
            ("99.0.0", "99.0.0"),
        ] {
            assert_eq!(
                ok.parse::<SemVer>().map(|v| v.to_string()),
                Ok(shown.to_owned()),
                "{ok}"
            );
        }
        for bad in [
            "v1.0.0",
            "1.0",
            "1.0.0.0",
            "-1.0.0",
            "+1.0.0",
            " 1.0.0",
            "1.0.0 ",
            "1.0.0-al_pha",
            "1.0.0+b+c",
            "",
            "1..0",
            "1.0.0-a..b",
            "99999999999999999999.0.0",
        ] {
            assert_eq!(
                bad.parse::<SemVer>().map_err(|e| e.reference_message()),
                Err("SemVer is bad".to_owned()),
                "{bad}"
            );
        }
        assert_eq!(
            "0.0.0".parse::<SemVer>().unwrap_err().reference_message(),
            "SemVer cannot be zero"
        );
        assert_eq!(
            "00.0.0-".parse::<SemVer>().unwrap_err().reference_message(),
            "SemVer cannot be zero"
        );
    }

    fn labels(pairs: &[(&str, &str)]) -> Result<Labels, String> {
        let list = pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.parse().unwrap(),
                value: (*v).to_owned(),
            })
            .collect();
        Labels::new(list).map_err(|e| e.reference_message())
    }

    #[test]
    fn labels_check_os_and_arch() {
        // aci-format §15 cases 7 and 8.
        for os in Os::ALL {
            for arch in os.arches() {
                assert!(labels(&[("os", os.as_str()), ("arch", arch)]).is_ok());
            }
        }
        assert!(labels(&[("arch", "anything-goes")]).is_ok());
        assert_eq!(
            labels(&[("os", "windows")]).unwrap_err(),
            "bad os \"windows\" (must be one of: [darwin freebsd linux])"
        );
        assert_eq!(
            labels(&[("os", "darwin"), ("arch", "amd64")]).unwrap_err(),
            "bad arch \"amd64\" for darwin (must be one of: [x86_64 i386])"
        );
        assert_eq!(
            labels(&[("arch", "x86_64"), ("os", "linux")]).unwrap_err(),
            "bad arch \"x86_64\" for linux (must be one of: [amd64 i386 aarch64 aarch64_be armv6l armv7l armv7b ppc64 ppc64le s390x])"
        );
        assert_eq!(
            labels(&[("name", "x")]).unwrap_err(),
            "invalid label name: \"name\""
        );
        assert_eq!(
            labels(&[("version", "1"), ("version", "2")]).unwrap_err(),
            "duplicate labels of name \"version\""
        );
        let ok = labels(&[("version", "1.0"), ("os", "linux")]).unwrap();
        assert_eq!(ok.get("os"), Some("linux"));
        assert_eq!(ok.get("arch"), None);
        assert_eq!(
            ok.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["version", "os"]
        );
    }

    #[test]
    fn annotations_check_dates_and_urls() {
        // aci-format §15 case 9.
        let make = |pairs: &[(&str, &str)]| {
            Annotations::new(
                pairs
                    .iter()
                    .map(|(n, v)| Annotation {
                        name: n.parse().unwrap(),
                        value: (*v).to_owned(),
                    })
                    .collect(),
            )
            .map_err(|e| e.reference_message())
        };
        assert!(make(&[("homepage", "HTTPS://")]).is_ok());
        assert_eq!(
            make(&[("homepage", "ftp://example.com")]).unwrap_err(),
            "bad URL scheme, must be http/https"
        );
        assert_eq!(
            make(&[("authors", "a"), ("authors", "b")]).unwrap_err(),
            "duplicate annotations of name \"authors\""
        );
        assert!(make(&[("created", "2014-10-27 19:32:27Z")])
            .unwrap_err()
            .starts_with("bad Date: parsing time"));
    }

    #[test]
    fn image_id_refs_are_lenient_like_types_hash() {
        // aci-format §15 case 13.
        let hash = |s: &str| s.parse::<ImageIdRef>().map_err(|e| e.reference_message());
        assert_eq!(
            hash("sha256-abcd").unwrap_err(),
            "unrecognized hash type: sha256"
        );
        assert_eq!(
            hash("sha512-a-b").unwrap_err(),
            "badly formatted hash string"
        );
        assert_eq!(hash("sha512-").unwrap_err(), "unexpected empty hash value");
        assert_eq!(hash("-abc").unwrap_err(), "unexpected empty hash type");
        assert_eq!(hash("abc").unwrap_err(), "badly formatted hash string");
        let odd = hash("sha512-XYZ").unwrap();
        assert_eq!(odd.as_prefix(), None);
        let short = hash("sha512-0123abcd").unwrap();
        assert_eq!(
            short.as_prefix().map(|p| p.hex().to_owned()),
            Some("0123abcd".to_owned())
        );
        assert!(!short.is_full());
        let full = format!("sha512-{}", "ab".repeat(64));
        assert!(hash(&full).unwrap().is_full());
        assert_eq!(hash(&format!("{full}0")).unwrap().as_prefix(), None);
    }
}
