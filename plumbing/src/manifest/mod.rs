//! The appc image manifest: its model, decoding with the reference's
//! verdicts, validation and re-serialization (aci-format §4–8).
//!
//! Decoding reproduces what `actool validate` (appc v0.8.11, Go 1.19
//! `encoding/json`) accepts and rejects, message for message, because
//! "valid" must mean the same thing to acido and to every appc tool that
//! reads its images. Where the reference crashes (a missing `acKind`, a
//! known isolator without a value) acido returns a clean error instead.
//! The spec's stricter rules are reported as warnings by
//! [`validate_manifest`] in strict mode.
//!
//! Module map:
//! - `json`: a Go-compatible JSON reader (duplicate keys, spans, scanner
//!   error texts) and writer (escaping, `MarshalIndent` layout);
//! - `decode`: the Go decoder rules (case-insensitive keys, `null`, saved
//!   type errors, field names in messages);
//! - [`types`]: AC identifiers and names, SemVer, labels, annotations,
//!   image id references;
//! - [`app`]: the `app` object; [`isolator`]: isolators;
//! - `validate`: [`validate_manifest`] for `acido validate`, including
//!   PodManifest files.

pub mod app;
mod decode;
mod gocheck;
pub mod isolator;
mod json;
pub mod types;
mod validate;

use std::fmt::Write as _;

pub use crate::limits::ManifestLimits;
use crate::limits::{LimitExceeded, LimitKind};
pub use app::{
    App, AppError, EnvironmentVariable, EventHandler, EventHandlerName, MountPoint, Port,
};
pub use isolator::{Isolator, IsolatorError, IsolatorValue, RawJson, Resource};
pub use json::{MAX_DEPTH, MAX_DEPTH_CEILING, MAX_MANIFEST_BYTES};
pub use types::{
    AcIdentifier, AcKind, AcName, Annotation, Annotations, ImageIdRef, Label, Labels, Os, SemVer,
    ValueError,
};
pub use validate::{validate_manifest, ManifestReport, Warning};

use decode::{fresh_slice, fresh_string, string_into, uint_into, Decoded, Fail, Frame, GoSlice};
use json::{JsonError, Node};

/// Which of the reference's two decoding steps an error belongs to
/// (aci-format §4). `actool validate` prefixes the first with
/// `error unmarshaling manifest:` and stops; the second with
/// `invalid ImageManifest:` (or `invalid PodManifest:`) and goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorStage {
    /// The syntax check and the `{acKind, acVersion}` decode.
    Unmarshal,
    /// The full decode of the manifest.
    Invalid,
}

/// Why a manifest was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The manifest exceeds [`MAX_MANIFEST_BYTES`].
    #[error("manifest is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The manifest's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Arrays and objects nest deeper than [`ManifestLimits::max_json_depth`]
    /// ([`MAX_DEPTH`] by default).
    #[error(
        "manifest: maximum JSON depth exceeded (arrays and objects nest more than {limit} deep)"
    )]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Names the bound for callers ([`crate::limits::limit_kind`]).
        #[source]
        exceeded: LimitExceeded,
    },
    /// `pathWhitelist` lists more paths than
    /// [`ManifestLimits::max_whitelist_len`].
    #[error("manifest: maximum whitelist length exceeded ({count} > {limit})")]
    WhitelistTooLong {
        /// How many paths the whitelist lists.
        count: usize,
        /// The limit.
        limit: usize,
        /// Names the bound for callers ([`crate::limits::limit_kind`]).
        #[source]
        exceeded: LimitExceeded,
    },
    /// The manifest is not JSON.
    #[error("manifest is not valid JSON: line {line}, column {column}: {message}")]
    Syntax {
        /// Go's error text, e.g. `invalid character 'x' after top-level value`.
        message: String,
        /// Go's byte offset of the error.
        offset: usize,
        /// 1-based line of the offending byte.
        line: usize,
        /// 1-based column of the offending byte.
        column: usize,
    },
    /// `acKind` or `acVersion` is unacceptable, caught by the first decode.
    #[error("manifest header (acKind, acVersion): {message}")]
    Header {
        /// The reference's message.
        message: String,
    },
    /// There is no `acKind`; the reference's `actool validate` panics here.
    #[error("manifest has no acKind")]
    MissingKind,
    /// A pod manifest was given where an image manifest is needed.
    #[error("manifest acKind is {found}, not ImageManifest")]
    WrongKind {
        /// The kind found.
        found: AcKind,
    },
    /// The full decode rejected the manifest.
    #[error("invalid {kind}: {}", with_field(*field, message))]
    Invalid {
        /// `ImageManifest` or `PodManifest`.
        kind: AcKind,
        /// The top-level field the problem is in, when known.
        field: Option<&'static str>,
        /// The reference's message.
        message: String,
    },
    /// A known isolator has no `value`; the reference panics here.
    #[error("invalid {kind}: app: isolator {name:?} has no value")]
    IsolatorWithoutValue {
        /// `ImageManifest` or `PodManifest`.
        kind: AcKind,
        /// The isolator's name.
        name: String,
    },
}

fn with_field(field: Option<&str>, message: &str) -> String {
    match field {
        Some(field) => format!("{field}: {message}"),
        None => message.to_owned(),
    }
}

impl ManifestError {
    /// [`ManifestError::TooDeep`] for the bound `limit`.
    pub fn too_deep(limit: usize) -> Self {
        ManifestError::TooDeep {
            limit,
            exceeded: LimitExceeded::new(LimitKind::JsonDepth),
        }
    }

    /// [`ManifestError::WhitelistTooLong`]: `count` paths, more than `limit`.
    pub fn whitelist_too_long(count: usize, limit: usize) -> Self {
        ManifestError::WhitelistTooLong {
            count,
            limit,
            exceeded: LimitExceeded::new(LimitKind::WhitelistLength),
        }
    }

    /// Which decoding step failed, as the reference would report it.
    pub fn stage(&self) -> ErrorStage {
        match self {
            ManifestError::TooLarge { .. }
            | ManifestError::TooDeep { .. }
            | ManifestError::Syntax { .. }
            | ManifestError::Header { .. } => ErrorStage::Unmarshal,
            _ => ErrorStage::Invalid,
        }
    }

    /// Whether the reference `actool` crashes (Go panic, exit 2) on this
    /// manifest instead of reporting an error.
    pub fn reference_crashes(&self) -> bool {
        matches!(
            self,
            ManifestError::MissingKind | ManifestError::IsolatorWithoutValue { .. }
        )
    }

    /// The reference's error text, without the `error unmarshaling
    /// manifest:`/`invalid ImageManifest:` prefix. For the limits acido
    /// adds and the reference's crashes, acido's own wording is used.
    pub fn reference_message(&self) -> String {
        match self {
            ManifestError::Syntax { message, .. }
            | ManifestError::Header { message }
            | ManifestError::Invalid { message, .. } => message.clone(),
            ManifestError::MissingKind | ManifestError::WrongKind { .. } => {
                "missing or bad ACKind (must be \"ImageManifest\")".to_owned()
            }
            ManifestError::IsolatorWithoutValue { name, .. } => {
                format!("isolator {} has no value", json::go_quote(name))
            }
            other => other.to_string(),
        }
    }

    /// The line `actool validate` prints after `<file>: `, e.g.
    /// `invalid ImageManifest: user is required`.
    pub fn reference_line(&self) -> String {
        let prefix = match self {
            _ if self.stage() == ErrorStage::Unmarshal => "error unmarshaling manifest".to_owned(),
            ManifestError::Invalid { kind, .. }
            | ManifestError::IsolatorWithoutValue { kind, .. } => {
                format!("invalid {kind}")
            }
            _ => "invalid ImageManifest".to_owned(),
        };
        format!("{prefix}: {}", self.reference_message())
    }

    fn invalid(kind: AcKind, field: Option<&'static str>, fail: Fail) -> Self {
        match fail {
            Fail::IsolatorWithoutValue { name } => {
                ManifestError::IsolatorWithoutValue { kind, name }
            }
            other => ManifestError::Invalid {
                kind,
                field,
                message: other.message(),
            },
        }
    }
}

/// A dependency of an image (aci-format §8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// The dependency's name.
    pub image_name: AcIdentifier,
    /// Its image id, which takes precedence over name and labels.
    pub image_id: Option<ImageIdRef>,
    /// Labels the dependency must carry (with the same values).
    pub labels: Labels,
    /// Its size in bytes; ignored by every tool (a 0 is read as absent).
    pub size: Option<u64>,
}

/// An appc image manifest (aci-format §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageManifest {
    /// Always [`AcKind::ImageManifest`] for a decoded manifest.
    pub ac_kind: AcKind,
    /// The appc version the manifest follows.
    pub ac_version: SemVer,
    /// The image name.
    pub name: AcIdentifier,
    /// Labels, in order.
    pub labels: Labels,
    /// What to run, if anything.
    pub app: Option<App>,
    /// Annotations, in order.
    pub annotations: Annotations,
    /// Dependencies, in order (later ones override earlier ones).
    pub dependencies: Vec<Dependency>,
    /// The only paths kept from the rendered dependencies, when not empty.
    pub path_whitelist: Vec<String>,
}

pub(crate) fn decode_identifier(node: &Node) -> Decoded<AcIdentifier> {
    let text = fresh_string(node)?;
    text.parse()
        .map_err(|e: ValueError| Fail::invalid(e.reference_message()))
}

pub(crate) fn decode_name(node: &Node) -> Decoded<AcName> {
    let text = fresh_string(node)?;
    text.parse()
        .map_err(|e: ValueError| Fail::invalid(e.reference_message()))
}

fn decode_kind_value(node: &Node) -> Decoded<Option<AcKind>> {
    let text = fresh_string(node)?;
    text.parse()
        .map(Some)
        .map_err(|e: ValueError| Fail::invalid(e.reference_message()))
}

fn decode_version(node: &Node) -> Decoded<SemVer> {
    let text = fresh_string(node)?;
    text.parse()
        .map_err(|e: ValueError| Fail::invalid(e.reference_message()))
}

/// A `{name, value}` list element (labels and annotations).
fn name_value(
    frame: &mut Frame,
    node: &Node,
    strukt: &'static str,
    go_type: &'static str,
    slot: &mut (Option<AcIdentifier>, String),
) -> Decoded {
    frame.object(node, strukt, go_type, &["name", "value"], |f, i, v| {
        if i == 0 {
            slot.0 = Some(f.custom(|| decode_identifier(v))?);
        } else {
            string_into(f, v, "string", &mut slot.1);
        }
        Ok(())
    })
}

/// `Labels.UnmarshalJSON`: a fresh list, then the label checks.
pub(crate) fn decode_labels(node: &Node) -> Decoded<Labels> {
    let list = fresh_slice(node, "types.labelsSlice", |f, item, slot| {
        name_value(f, item, "Label", "types.Label", slot)
    })?
    .unwrap_or_default();
    let labels: Vec<Label> = list
        .into_iter()
        .map(|(name, value)| Label {
            name: name.unwrap_or_else(AcIdentifier::empty),
            value,
        })
        .collect();
    types::check_labels(&labels).map_err(|e| Fail::invalid(e.reference_message()))?;
    Ok(Labels::unchecked(labels))
}

/// `Annotations.UnmarshalJSON`: a fresh list, then the annotation checks.
pub(crate) fn decode_annotations(node: &Node) -> Decoded<Annotations> {
    let list = fresh_slice(node, "types.annotations", |f, item, slot| {
        name_value(f, item, "Annotation", "types.Annotation", slot)
    })?
    .unwrap_or_default();
    let annotations: Vec<Annotation> = list
        .into_iter()
        .map(|(name, value)| Annotation {
            name: name.unwrap_or_else(AcIdentifier::empty),
            value,
        })
        .collect();
    types::check_annotations(&annotations).map_err(|e| Fail::invalid(e.reference_message()))?;
    Ok(Annotations::unchecked(annotations))
}

fn decode_hash(node: &Node) -> Decoded<ImageIdRef> {
    let text = fresh_string(node)?;
    text.parse()
        .map_err(|e: ValueError| Fail::invalid(e.reference_message()))
}

/// `Dependency.UnmarshalJSON`.
fn decode_dependency(node: &Node) -> Decoded<Dependency> {
    let mut frame = Frame::new();
    let mut image_name = AcIdentifier::empty();
    let mut image_id = None;
    let mut labels = Labels::default();
    let mut size = 0u64;
    let fields = ["imageName", "imageID", "labels", "size"];
    frame.object(
        node,
        "dependency",
        "types.dependency",
        &fields,
        |f, i, v| {
            match i {
                0 => image_name = f.custom(|| decode_identifier(v))?,
                1 if v.is_null() => image_id = None,
                1 => image_id = Some(f.custom(|| decode_hash(v))?),
                2 => labels = f.custom(|| decode_labels(v))?,
                _ => uint_into(f, v, "uint", &mut size),
            }
            Ok(())
        },
    )?;
    frame.finish()?;
    if image_name.is_empty() {
        return Err(Fail::invalid("imageName cannot be empty"));
    }
    Ok(Dependency {
        image_name,
        image_id,
        labels,
        size: (size != 0).then_some(size),
    })
}

/// The parsed JSON of a manifest with its source bytes.
pub(crate) struct Document {
    source: Vec<u8>,
    root: Node,
}

/// Size check and syntax check: the part of `json.Unmarshal` that runs
/// before any decoding.
pub(crate) fn parse_document(
    bytes: &[u8],
    limits: &ManifestLimits,
) -> Result<Document, ManifestError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            size: bytes.len(),
            limit: MAX_MANIFEST_BYTES,
        });
    }
    let max_depth = limits.max_json_depth.min(MAX_DEPTH_CEILING);
    let root = json::parse_bounded(bytes, max_depth).map_err(|e| match e {
        JsonError::TooDeep => ManifestError::too_deep(max_depth),
        JsonError::Syntax { message, offset } => {
            let before = &bytes[..offset.saturating_sub(1).min(bytes.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            ManifestError::Syntax {
                message,
                offset,
                line,
                column: before.len() - line_start + 1,
            }
        }
    })?;
    Ok(Document {
        source: bytes.to_vec(),
        root,
    })
}

/// The first decode `actool validate` runs: only `acKind` and `acVersion`.
pub(crate) fn decode_header(
    doc: &Document,
) -> Result<(Option<AcKind>, Option<SemVer>), ManifestError> {
    let mut frame = Frame::new();
    let mut kind = None;
    let mut version = None;
    let header = |fail: Fail| ManifestError::Header {
        message: fail.message(),
    };
    frame
        .object(
            &doc.root,
            "kind",
            "schema.kind",
            &["acVersion", "acKind"],
            |f, i, v| {
                if i == 0 {
                    version = Some(f.custom(|| decode_version(v))?);
                } else {
                    kind = f.custom(|| decode_kind_value(v))?;
                }
                Ok(())
            },
        )
        .map_err(header)?;
    frame.finish().map_err(header)?;
    Ok((kind, version))
}

const MANIFEST_FIELDS: [&str; 8] = [
    "acKind",
    "acVersion",
    "name",
    "labels",
    "app",
    "annotations",
    "dependencies",
    "pathWhitelist",
];

/// `ImageManifest.UnmarshalJSON`: the full decode, then the top-level
/// checks (kind, acVersion, name) in the reference's order.
pub(crate) fn decode_image_manifest(doc: &Document) -> Result<ImageManifest, ManifestError> {
    let mut frame = Frame::new();
    let mut kind = None;
    let mut version: Option<SemVer> = None;
    let mut name = AcIdentifier::empty();
    let mut labels = Labels::default();
    let mut app: Option<app::AppState> = None;
    let mut annotations = Annotations::default();
    let mut dependencies = GoSlice::<Option<Dependency>>::nil();
    let mut path_whitelist = GoSlice::<String>::nil();
    let mut failed_field = None;
    let source = doc.source.as_slice();
    let result = frame.object(
        &doc.root,
        "imageManifest",
        "schema.imageManifest",
        &MANIFEST_FIELDS,
        |f, i, v| {
            failed_field = Some(MANIFEST_FIELDS[i]);
            match i {
                0 => kind = f.custom(|| decode_kind_value(v))?,
                1 => version = Some(f.custom(|| decode_version(v))?),
                2 => name = f.custom(|| decode_identifier(v))?,
                3 => labels = f.custom(|| decode_labels(v))?,
                4 if v.is_null() => app = None,
                4 => {
                    let state = app.take().unwrap_or_default();
                    app = Some(f.custom(|| app::decode_app(source, v, state))?);
                }
                5 => annotations = f.custom(|| decode_annotations(v))?,
                6 => dependencies.decode(f, v, "types.Dependencies", |f, item, slot| {
                    *slot = Some(f.custom(|| decode_dependency(item))?);
                    Ok(())
                })?,
                _ => path_whitelist.decode(f, v, "[]string", |f, item, slot| {
                    string_into(f, item, "string", slot);
                    Ok(())
                })?,
            }
            Ok(())
        },
    );
    let image = AcKind::ImageManifest;
    result.map_err(|fail| ManifestError::invalid(image, failed_field, fail))?;
    // A saved type error names its own field; the one that failed last is
    // not necessarily it, so leave the field out.
    frame
        .finish()
        .map_err(|fail| ManifestError::invalid(image, None, fail))?;
    match kind {
        Some(AcKind::ImageManifest) => {}
        Some(found) => return Err(ManifestError::WrongKind { found }),
        None => return Err(ManifestError::MissingKind),
    }
    let Some(ac_version) = version else {
        return Err(ManifestError::Invalid {
            kind: image,
            field: Some("acVersion"),
            message: "acVersion must be set".to_owned(),
        });
    };
    if name.is_empty() {
        return Err(ManifestError::Invalid {
            kind: image,
            field: Some("name"),
            message: "name must be set".to_owned(),
        });
    }
    Ok(ImageManifest {
        ac_kind: image,
        ac_version,
        name,
        labels,
        app: app.map(|state| state.to_app()),
        annotations,
        dependencies: dependencies.into_vec().into_iter().flatten().collect(),
        path_whitelist: path_whitelist.into_vec(),
    })
}

impl ImageManifest {
    /// A manifest with just a name, at the appc version acido writes.
    pub fn new(name: AcIdentifier) -> Self {
        ImageManifest {
            ac_kind: AcKind::ImageManifest,
            ac_version: SemVer {
                major: 0,
                minor: 8,
                patch: 11,
                pre_release: String::new(),
                metadata: String::new(),
            },
            name,
            labels: Labels::default(),
            app: None,
            annotations: Annotations::default(),
            dependencies: Vec::new(),
            path_whitelist: Vec::new(),
        }
    }

    /// Decodes and validates a manifest with the reference's verdict.
    ///
    /// Like the reference library (`ImageManifest.UnmarshalJSON`), a
    /// missing or different `acKind` is reported after the full decode;
    /// syntax errors and a bad `acKind`/`acVersion` are reported first,
    /// as [`ErrorStage::Unmarshal`] errors, as `actool validate` does.
    pub fn from_slice(bytes: &[u8]) -> Result<ImageManifest, ManifestError> {
        ImageManifest::from_slice_with(bytes, &ManifestLimits::default())
    }

    /// [`ImageManifest::from_slice`] with bounds other than the defaults.
    /// The whitelist bound is checked after a successful decode, so a
    /// manifest that is also invalid reports the reference's verdict.
    pub fn from_slice_with(
        bytes: &[u8],
        limits: &ManifestLimits,
    ) -> Result<ImageManifest, ManifestError> {
        let doc = parse_document(bytes, limits)?;
        decode_header(&doc)?;
        let manifest = decode_image_manifest(&doc)?;
        if manifest.path_whitelist.len() > limits.max_whitelist_len {
            return Err(ManifestError::whitelist_too_long(
                manifest.path_whitelist.len(),
                limits.max_whitelist_len,
            ));
        }
        Ok(manifest)
    }

    /// The value of the label called `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name)
    }

    /// The manifest as compact JSON, in the reference's field order and
    /// normalisation (aci-format §5), for writing new manifests.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// The manifest as `actool cat-manifest --pretty-print` prints it:
    /// the compact form re-indented by four spaces (no trailing newline).
    pub fn to_json_pretty(&self) -> String {
        json::indent(&self.to_json(), "    ")
    }

    fn write(&self, out: &mut String) {
        let mut w = ObjectWriter::new(out);
        w.string("acKind", self.ac_kind.as_str());
        w.string("acVersion", &self.ac_version.to_string());
        w.string("name", self.name.as_str());
        if !self.labels.is_empty() {
            w.key("labels");
            write_name_values(
                w.out,
                self.labels
                    .iter()
                    .map(|l| (l.name.as_str(), l.value.as_str())),
            );
        }
        if let Some(app) = &self.app {
            w.key("app");
            write_app(w.out, app);
        }
        if !self.annotations.is_empty() {
            w.key("annotations");
            write_name_values(
                w.out,
                self.annotations
                    .iter()
                    .map(|a| (a.name.as_str(), a.value.as_str())),
            );
        }
        if !self.dependencies.is_empty() {
            w.key("dependencies");
            write_list(w.out, &self.dependencies, |out, dep| {
                let mut d = ObjectWriter::new(out);
                d.string("imageName", dep.image_name.as_str());
                if let Some(id) = &dep.image_id {
                    d.string("imageID", id.as_str());
                }
                if !dep.labels.is_empty() {
                    d.key("labels");
                    write_name_values(
                        d.out,
                        dep.labels
                            .iter()
                            .map(|l| (l.name.as_str(), l.value.as_str())),
                    );
                }
                if let Some(size) = dep.size.filter(|s| *s != 0) {
                    d.raw("size", &size.to_string());
                }
                d.end();
            });
        }
        if !self.path_whitelist.is_empty() {
            w.key("pathWhitelist");
            write_list(w.out, &self.path_whitelist, |out, p| {
                json::write_string(out, p)
            });
        }
        w.end();
    }
}

/// Writes one JSON object member by member, in call order.
struct ObjectWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> ObjectWriter<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        ObjectWriter { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        json::write_string(self.out, key);
        self.out.push(':');
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        json::write_string(self.out, value);
    }

    /// A `name` field. A label, annotation, mount point or port without a
    /// `name` key decodes to an empty name and is valid (the reference only
    /// checks names it is given), but `"name":""` is rejected; leaving the
    /// key out is the only JSON that decodes back to the same value. (The
    /// reference itself refuses to marshal such a manifest.)
    fn name(&mut self, name: &str) {
        if !name.is_empty() {
            self.string("name", name);
        }
    }

    fn raw(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push_str(value);
    }

    fn end(self) {
        self.out.push('}');
    }
}

fn write_list<T>(out: &mut String, items: &[T], mut each: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(out, item);
    }
    out.push(']');
}

fn write_name_values<'a>(out: &mut String, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    let pairs: Vec<_> = pairs.collect();
    write_list(out, &pairs, |out, (name, value)| {
        let mut w = ObjectWriter::new(out);
        w.name(name);
        w.string("value", value);
        w.end();
    });
}

fn write_exec(out: &mut String, exec: &Option<Vec<String>>) {
    match exec {
        None => out.push_str("null"),
        Some(args) => write_list(out, args, |out, a| json::write_string(out, a)),
    }
}

fn write_string_map(out: &mut String, map: &std::collections::BTreeMap<String, String>) {
    // BTreeMap iterates in byte order of the keys, as Go sorts map keys.
    let mut w = ObjectWriter::new(out);
    for (k, v) in map {
        w.string(k, v);
    }
    w.end();
}

fn write_app(out: &mut String, app: &App) {
    let mut w = ObjectWriter::new(out);
    w.key("exec");
    write_exec(w.out, &app.exec);
    if !app.event_handlers.is_empty() {
        w.key("eventHandlers");
        write_list(w.out, &app.event_handlers, |out, h| {
            let mut e = ObjectWriter::new(out);
            e.string("name", h.name.as_str());
            e.key("exec");
            write_exec(e.out, &h.exec);
            e.end();
        });
    }
    w.string("user", &app.user);
    w.string("group", &app.group);
    if !app.supplementary_gids.is_empty() {
        let mut gids = String::new();
        write_list(&mut gids, &app.supplementary_gids, |out, g| {
            let _ = write!(out, "{g}");
        });
        w.raw("supplementaryGIDs", &gids);
    }
    if !app.working_directory.is_empty() {
        w.string("workingDirectory", &app.working_directory);
    }
    if !app.environment.is_empty() {
        w.key("environment");
        write_name_values(
            w.out,
            app.environment
                .iter()
                .map(|e| (e.name.as_str(), e.value.as_str())),
        );
    }
    if !app.mount_points.is_empty() {
        w.key("mountPoints");
        write_list(w.out, &app.mount_points, |out, m| {
            let mut o = ObjectWriter::new(out);
            o.name(m.name.as_str());
            o.string("path", &m.path);
            if m.read_only {
                o.raw("readOnly", "true");
            }
            o.end();
        });
    }
    if !app.ports.is_empty() {
        w.key("ports");
        write_list(w.out, &app.ports, |out, p| {
            let mut o = ObjectWriter::new(out);
            o.name(p.name.as_str());
            o.string("protocol", &p.protocol);
            o.raw("port", &p.port.to_string());
            o.raw("count", &p.count.to_string());
            o.raw(
                "socketActivated",
                if p.socket_activated { "true" } else { "false" },
            );
            o.end();
        });
    }
    if !app.isolators.is_empty() {
        w.key("isolators");
        write_list(w.out, &app.isolators, |out, i| {
            let mut o = ObjectWriter::new(out);
            o.string("name", i.name.as_str());
            o.raw("value", i.value.as_ref().map_or("null", RawJson::as_str));
            o.end();
        });
    }
    if !app.user_annotations.is_empty() {
        w.key("userAnnotations");
        write_string_map(w.out, &app.user_annotations);
    }
    if !app.user_labels.is_empty() {
        w.key("userLabels");
        write_string_map(w.out, &app.user_labels);
    }
    w.end();
}

#[cfg(test)]
mod tests;
