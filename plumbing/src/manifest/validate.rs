//! `acido validate` for a manifest file: the reference's verdict for image
//! and pod manifests, plus, in strict mode, warnings for what the spec's
//! own rules forbid but the reference lets through.

use std::collections::HashSet;
use std::fmt;

use super::decode::{
    bool_into, fresh_slice, string_into, string_map_into, uint_into, Decoded, Fail, Frame, GoSlice,
};
use super::isolator::{decode_isolator, IsolatorValue, KNOWN_ISOLATORS};
use super::json::{go_quote, Node};
use super::{
    app, decode_annotations, decode_hash, decode_header, decode_identifier, decode_image_manifest,
    decode_kind_value, decode_labels, decode_name, decode_version, parse_document, AcKind, AcName,
    Document, ImageManifest, ManifestError, ManifestLimits,
};

/// Something the appc spec forbids that the reference implementation
/// accepts (or, for isolators, the other way round).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Where: a JSON path such as `labels[1].name` or `app.ports[0].name`.
    pub location: String,
    /// What the spec says about it.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// The outcome of validating one manifest file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestReport {
    /// The manifest's kind, once the first decode got that far.
    pub kind: Option<AcKind>,
    /// Why the manifest is invalid, or `None` when it is valid.
    pub error: Option<ManifestError>,
    /// Spec-level findings (strict mode only).
    pub warnings: Vec<Warning>,
}

impl ManifestReport {
    /// Whether the manifest is valid by the reference's rules.
    pub fn is_valid(&self) -> bool {
        self.error.is_none()
    }

    /// The line `actool --debug validate` prints after `<file>: `, e.g.
    /// `valid ImageManifest` or `invalid ImageManifest: user is required`.
    pub fn reference_line(&self) -> String {
        match (&self.error, self.kind) {
            (Some(e), _) => e.reference_line(),
            (None, Some(kind)) => format!("valid {kind}"),
            (None, None) => "valid".to_owned(),
        }
    }
}

/// Validates a manifest file the way `actool validate` does (aci-format
/// §4, §13): syntax and `{acKind, acVersion}` first, then the full decode
/// as an image or pod manifest. With `strict`, valid image manifests are
/// also checked against the spec's regexes and rules (aci-format §6.1,
/// §6.2, §3, §5, §7), each finding a [`Warning`].
pub fn validate_manifest(bytes: &[u8], strict: bool) -> ManifestReport {
    let mut report = ManifestReport {
        kind: None,
        error: None,
        warnings: Vec::new(),
    };
    let header = parse_document(bytes, &ManifestLimits::default())
        .and_then(|doc| decode_header(&doc).map(|h| (doc, h)));
    let (doc, kind) = match header {
        Ok((doc, (kind, _))) => (doc, kind),
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    report.kind = kind;
    match kind {
        // The reference panics("bad ACKind") here.
        None => report.error = Some(ManifestError::MissingKind),
        Some(AcKind::ImageManifest) => match decode_image_manifest(&doc) {
            Ok(manifest) => {
                if strict {
                    report.warnings = spec_warnings(&manifest);
                }
            }
            Err(e) => {
                if strict {
                    report.warnings = error_notes(&e);
                }
                report.error = Some(e);
            }
        },
        Some(AcKind::PodManifest) => {
            if let Err(e) = decode_pod_manifest(&doc) {
                report.error = Some(e);
            }
        }
    }
    report
}

fn warn(warnings: &mut Vec<Warning>, location: String, message: impl Into<String>) {
    warnings.push(Warning {
        location,
        message: message.into(),
    });
}

const IDENTIFIER_RULE: &str =
    "does not match the spec's AC identifier regex ^[a-z0-9]+([-._~/][a-z0-9]+)*$ (§6.1)";
const NAME_RULE: &str = "does not match the spec's AC name regex ^[a-z0-9]+([-][a-z0-9]+)*$ (§6.2)";

fn check_identifier(warnings: &mut Vec<Warning>, location: String, id: &super::AcIdentifier) {
    if !id.is_spec_valid() {
        warn(
            warnings,
            location,
            format!("{} {IDENTIFIER_RULE}", go_quote(id.as_str())),
        );
    }
}

fn check_name(warnings: &mut Vec<Warning>, location: String, name: &AcName) {
    if !name.is_spec_valid() {
        warn(
            warnings,
            location,
            format!("{} {NAME_RULE}", go_quote(name.as_str())),
        );
    }
}

/// What the spec forbids in a manifest the reference accepts.
fn spec_warnings(m: &ImageManifest) -> Vec<Warning> {
    let mut w = Vec::new();
    check_identifier(&mut w, "name".to_owned(), &m.name);
    for (i, label) in m.labels.iter().enumerate() {
        check_identifier(&mut w, format!("labels[{i}].name"), &label.name);
    }
    for (i, annotation) in m.annotations.iter().enumerate() {
        check_identifier(&mut w, format!("annotations[{i}].name"), &annotation.name);
    }
    for (i, dep) in m.dependencies.iter().enumerate() {
        check_identifier(
            &mut w,
            format!("dependencies[{i}].imageName"),
            &dep.image_name,
        );
        for (j, label) in dep.labels.iter().enumerate() {
            check_identifier(
                &mut w,
                format!("dependencies[{i}].labels[{j}].name"),
                &label.name,
            );
        }
        if let Some(id) = &dep.image_id {
            if !id.is_full() {
                warn(
                    &mut w,
                    format!("dependencies[{i}].imageID"),
                    format!(
                        "{} is not \"sha512-\" followed by 128 lower-case hex digits (§3)",
                        go_quote(id.as_str())
                    ),
                );
            }
        }
    }
    for (i, path) in m.path_whitelist.iter().enumerate() {
        let problem = if path.is_empty() {
            Some("is empty")
        } else if !path.starts_with('/') {
            Some("is not an absolute path")
        } else if path.split('/').any(|c| c == "..") {
            Some("contains \"..\"")
        } else {
            None
        };
        if let Some(problem) = problem {
            warn(
                &mut w,
                format!("pathWhitelist[{i}]"),
                format!(
                    "{} {problem}; the spec lists absolute paths (§5)",
                    go_quote(path)
                ),
            );
        }
    }
    if let Some(app) = &m.app {
        for (i, gid) in app.supplementary_gids.iter().enumerate() {
            if *gid < 0 {
                warn(
                    &mut w,
                    format!("app.supplementaryGIDs[{i}]"),
                    format!("{gid} is negative; the spec says unsigned (§7)"),
                );
            }
        }
        for (i, mount) in app.mount_points.iter().enumerate() {
            check_name(&mut w, format!("app.mountPoints[{i}].name"), &mount.name);
            if mount.path.is_empty() {
                warn(
                    &mut w,
                    format!("app.mountPoints[{i}].path"),
                    "is empty; a mount point needs a path (§7)",
                );
            }
        }
        for (i, port) in app.ports.iter().enumerate() {
            check_name(&mut w, format!("app.ports[{i}].name"), &port.name);
        }
        for (i, isolator) in app.isolators.iter().enumerate() {
            check_identifier(&mut w, format!("app.isolators[{i}].name"), &isolator.name);
        }
    }
    w
}

/// Notes on an error the spec would not raise.
fn error_notes(e: &ManifestError) -> Vec<Warning> {
    let mut w = Vec::new();
    if let ManifestError::Invalid { message, .. } = e {
        if message == "invalid isolator" {
            warn(
                &mut w,
                "app.isolators".to_owned(),
                format!(
                    "the spec allows any isolator name; the reference knows only {}",
                    KNOWN_ISOLATORS.join(", ")
                ),
            );
        }
    }
    w
}

fn decode_volume(node: &Node) -> Decoded<Option<AcName>> {
    let mut frame = Frame::new();
    let mut name = None;
    let mut kind = String::new();
    let mut source = String::new();
    let mut read_only = None;
    let mut recursive = None;
    let mut mode: Option<String> = None;
    let mut uid: Option<i64> = None;
    let mut gid: Option<i64> = None;
    let fields = [
        "name",
        "kind",
        "source",
        "readOnly",
        "recursive",
        "mode",
        "uid",
        "gid",
    ];
    frame.object(node, "volume", "types.volume", &fields, |f, i, v| {
        match i {
            0 => name = Some(f.custom(|| decode_name(v))?),
            1 => string_into(f, v, "string", &mut kind),
            2 => string_into(f, v, "string", &mut source),
            3 | 4 => {
                let slot = if i == 3 {
                    &mut read_only
                } else {
                    &mut recursive
                };
                if v.is_null() {
                    *slot = None;
                } else {
                    let mut b = slot.unwrap_or(false);
                    bool_into(f, v, "bool", &mut b);
                    *slot = Some(b);
                }
            }
            5 if v.is_null() => mode = None,
            5 => {
                let mut s = mode.take().unwrap_or_default();
                string_into(f, v, "string", &mut s);
                mode = Some(s);
            }
            _ => {
                let slot = if i == 6 { &mut uid } else { &mut gid };
                if v.is_null() {
                    *slot = None;
                } else {
                    let mut n = slot.unwrap_or(0);
                    super::decode::int_into(f, v, "int", &mut n);
                    *slot = Some(n);
                }
            }
        }
        Ok(())
    })?;
    frame.finish()?;
    let err = |m: &str| Err(Fail::invalid(m));
    if name.as_ref().is_none_or(AcName::is_empty) {
        return err("name must be set");
    }
    match kind.as_str() {
        // Empty volumes get default mode, uid and gid, so only the source
        // can be wrong.
        "empty" if !source.is_empty() => err("source for empty volume must be empty"),
        "empty" => Ok(name),
        "host" => {
            if source.is_empty() {
                err("source for host volume cannot be empty")
            } else if mode.is_some() {
                err("mode for host volume cannot be set")
            } else if uid.is_some() {
                err("uid for host volume cannot be set")
            } else if gid.is_some() {
                err("gid for host volume cannot be set")
            } else if !source.starts_with('/') {
                err("source for host volume must be absolute path")
            } else {
                Ok(name)
            }
        }
        _ => err("unrecognized volume kind: should be one of \"empty\", \"host\""),
    }
}

/// One pod app: its name, and everything else decoded for its checks.
fn decode_runtime_app(
    source: &[u8],
    f: &mut Frame,
    node: &Node,
    slot: &mut Option<AcName>,
) -> Decoded {
    let fields = [
        "name",
        "image",
        "app",
        "readOnlyRootFS",
        "mounts",
        "annotations",
    ];
    let mut app_state: Option<app::AppState> = None;
    f.object(
        node,
        "RuntimeApp",
        "schema.RuntimeApp",
        &fields,
        |f, i, v| {
            match i {
                0 => *slot = Some(f.custom(|| decode_name(v))?),
                1 => {
                    let image_fields = ["name", "id", "labels"];
                    f.object(
                        v,
                        "RuntimeImage",
                        "schema.RuntimeImage",
                        &image_fields,
                        |f, j, w| {
                            match j {
                                0 if w.is_null() => {}
                                0 => {
                                    f.custom(|| decode_identifier(w))?;
                                }
                                // A non-pointer Hash: even null goes through its
                                // unmarshaler, which rejects "".
                                1 => {
                                    f.custom(|| decode_hash(w))?;
                                }
                                _ => {
                                    f.custom(|| decode_labels(w))?;
                                }
                            }
                            Ok(())
                        },
                    )?;
                }
                2 if v.is_null() => app_state = None,
                2 => {
                    let state = app_state.take().unwrap_or_default();
                    app_state = Some(f.custom(|| app::decode_app(source, v, state))?);
                }
                3 => {
                    let mut b = false;
                    bool_into(f, v, "bool", &mut b);
                }
                4 => {
                    let mut mounts = GoSlice::<()>::nil();
                    mounts.decode(f, v, "[]schema.Mount", |f, item, _| {
                        let mount_fields = ["volume", "path", "appVolume"];
                        f.object(item, "Mount", "schema.Mount", &mount_fields, |f, k, x| {
                            match k {
                                0 => {
                                    f.custom(|| decode_name(x))?;
                                }
                                1 => {
                                    let mut s = String::new();
                                    string_into(f, x, "string", &mut s);
                                }
                                _ if x.is_null() => {}
                                _ => {
                                    f.custom(|| decode_volume(x))?;
                                }
                            }
                            Ok(())
                        })
                    })?;
                }
                _ => {
                    f.custom(|| decode_annotations(v))?;
                }
            }
            Ok(())
        },
    )
}

/// `PodManifest.UnmarshalJSON`: the reference's pod checks (aci-format
/// §13): apps with unique names, images, app objects, volumes, isolators,
/// annotations and exposed ports; then the kind and unique volume names.
fn decode_pod_manifest(doc: &Document) -> Result<(), ManifestError> {
    let pod = AcKind::PodManifest;
    let source = doc.source.as_slice();
    let mut frame = Frame::new();
    let mut kind = None;
    let mut volumes = GoSlice::<Option<AcName>>::nil();
    let mut failed_field = None;
    let fields = [
        "acVersion",
        "acKind",
        "apps",
        "volumes",
        "isolators",
        "annotations",
        "ports",
        "userAnnotations",
        "userLabels",
    ];
    let result = frame.object(
        &doc.root,
        "podManifest",
        "schema.podManifest",
        &fields,
        |f, i, v| {
            failed_field = Some(fields[i]);
            match i {
                0 => {
                    f.custom(|| decode_version(v))?;
                }
                1 => kind = f.custom(|| decode_kind_value(v))?,
                2 => {
                    f.custom(|| {
                        let names = fresh_slice(v, "schema.appList", |f, item, slot| {
                            decode_runtime_app(source, f, item, slot)
                        })?
                        .unwrap_or_default();
                        let mut seen: HashSet<&str> = HashSet::new();
                        for name in names.iter().map(|n| n.as_ref().map_or("", AcName::as_str)) {
                            if seen.contains(&name) {
                                return Err(Fail::invalid(format!(
                                    "duplicate apps of name {}",
                                    go_quote(name)
                                )));
                            }
                            seen.insert(name);
                        }
                        Ok(())
                    })?;
                }
                3 => volumes.decode(f, v, "[]types.Volume", |f, item, slot| {
                    *slot = f.custom(|| decode_volume(item))?;
                    Ok(())
                })?,
                4 => {
                    let mut isolators = GoSlice::<Option<IsolatorValue>>::nil();
                    isolators.decode(f, v, "[]types.Isolator", |f, item, slot| {
                        *slot = Some(f.custom(|| decode_isolator(source, item))?.parsed);
                        Ok(())
                    })?;
                }
                5 => {
                    f.custom(|| decode_annotations(v))?;
                }
                6 => {
                    let mut ports = GoSlice::<()>::nil();
                    ports.decode(f, v, "[]types.ExposedPort", |f, item, _| {
                        let port_fields = ["name", "hostPort", "hostIP", "podPort"];
                        f.object(
                            item,
                            "ExposedPort",
                            "types.ExposedPort",
                            &port_fields,
                            |f, k, x| {
                                match k {
                                    0 => {
                                        f.custom(|| decode_name(x))?;
                                    }
                                    1 => {
                                        let mut n = 0;
                                        uint_into(f, x, "uint", &mut n);
                                    }
                                    2 => check_host_ip(f, x)?,
                                    _ if x.is_null() => {}
                                    _ => {
                                        f.custom(|| app::decode_port(x))?;
                                    }
                                }
                                Ok(())
                            },
                        )
                    })?;
                }
                _ => {
                    let mut map = None;
                    let go_type = if i == 7 {
                        "types.UserAnnotations"
                    } else {
                        "types.UserLabels"
                    };
                    string_map_into(f, v, go_type, &mut map);
                }
            }
            Ok(())
        },
    );
    result.map_err(|fail| ManifestError::invalid(pod, failed_field, fail))?;
    frame
        .finish()
        .map_err(|fail| ManifestError::invalid(pod, None, fail))?;
    if kind != Some(pod) {
        return Err(ManifestError::Invalid {
            kind: pod,
            field: Some("acKind"),
            message: "missing or bad ACKind (must be \"PodManifest\")".to_owned(),
        });
    }
    let mut seen: HashSet<&str> = HashSet::new();
    let volumes = volumes.into_vec();
    for name in volumes
        .iter()
        .map(|n| n.as_ref().map_or("", AcName::as_str))
    {
        if seen.contains(&name) {
            return Err(ManifestError::Invalid {
                kind: pod,
                field: Some("volumes"),
                message: format!("duplicate volume name {}", go_quote(name)),
            });
        }
        seen.insert(name);
    }
    Ok(())
}

/// `net.IP`'s `UnmarshalText` via `encoding/json`: a string holding an
/// IPv4 or IPv6 address (an empty string means none).
fn check_host_ip(f: &mut Frame, node: &Node) -> Decoded {
    let text = match &node.kind {
        super::json::NodeKind::Null => return Ok(()),
        super::json::NodeKind::Str(s) => s,
        _ => {
            f.wrong_kind(node, "net.IP");
            return Ok(());
        }
    };
    if text.is_empty() || text.parse::<std::net::IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(Fail::invalid(format!("invalid IP address: {text}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_manifests_get_their_own_checks() {
        let ok = validate_manifest(
            br#"{"acKind":"PodManifest","acVersion":"0.8.11","apps":[]}"#,
            true,
        );
        assert_eq!(ok.reference_line(), "valid PodManifest");
        let dup = validate_manifest(
            br#"{"acKind":"PodManifest","acVersion":"0.8.11","apps":[
                {"name":"a","image":{"id":"sha512-aa"}},{"name":"a","image":{"id":"sha512-bb"}}]}"#,
            false,
        );
        assert_eq!(
            dup.reference_line(),
            "invalid PodManifest: duplicate apps of name \"a\""
        );
        let no_id = validate_manifest(
            br#"{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"a","image":{}}]}"#,
            false,
        );
        assert!(
            no_id.is_valid(),
            "a missing image id is the zero Hash, not decoded"
        );
        let null_id = validate_manifest(
            br#"{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"a","image":{"id":null}}]}"#,
            false,
        );
        assert_eq!(
            null_id.reference_line(),
            "invalid PodManifest: badly formatted hash string"
        );
        let volume = validate_manifest(
            br#"{"acKind":"PodManifest","acVersion":"0.8.11","volumes":[{"name":"v","kind":"host","source":"rel"}]}"#,
            false,
        );
        assert_eq!(
            volume.reference_line(),
            "invalid PodManifest: source for host volume must be absolute path"
        );
    }

    #[test]
    fn strict_mode_reports_what_the_spec_forbids() {
        let report = validate_manifest(
            br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com//app..x",
                "labels":[{"value":"no name"}],
                "dependencies":[{"imageName":"a","imageID":"sha512-XYZ"}],
                "pathWhitelist":["rel","/a/../b","","/ok"],
                "app":{"user":"0","group":"0","supplementaryGIDs":[-1],
                       "mountPoints":[{"name":"a--b","path":""}],"ports":[{"port":80}]}}"#,
            true,
        );
        assert!(report.is_valid());
        let locations: Vec<&str> = report
            .warnings
            .iter()
            .map(|w| w.location.as_str())
            .collect();
        assert_eq!(
            locations,
            [
                "name",
                "labels[0].name",
                "dependencies[0].imageID",
                "pathWhitelist[0]",
                "pathWhitelist[1]",
                "pathWhitelist[2]",
                "app.supplementaryGIDs[0]",
                "app.mountPoints[0].name",
                "app.mountPoints[0].path",
                "app.ports[0].name",
            ]
        );
        let lenient = validate_manifest(
            br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com//app..x"}"#,
            false,
        );
        assert!(lenient.warnings.is_empty());
    }

    #[test]
    fn unknown_isolators_are_noted_as_spec_valid() {
        let report = validate_manifest(
            br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a",
                "app":{"user":"0","group":"0","isolators":[{"name":"example.com/x","value":1}]}}"#,
            true,
        );
        assert_eq!(
            report.reference_line(),
            "invalid ImageManifest: invalid isolator"
        );
        assert_eq!(report.warnings.len(), 1);
        assert!(report.warnings[0].message.contains("any isolator name"));
    }

    #[test]
    fn missing_kind_is_a_clean_error() {
        let report = validate_manifest(br#"{"acVersion":"0.8.11","name":"a"}"#, false);
        assert_eq!(report.kind, None);
        assert!(matches!(report.error, Some(ManifestError::MissingKind)));
        assert!(report
            .error
            .as_ref()
            .is_some_and(ManifestError::reference_crashes));
    }
}
