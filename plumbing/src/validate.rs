//! `validate`: checking a manifest file, a layout directory or an ACI
//! against the spec, collecting every finding instead of stopping at the
//! first (aci-format §1, §4–8, §13 `validate`).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use serde::Serialize;

use crate::archive;
use crate::json_output::Bytes;
use crate::limits::Limits;
use crate::manifest;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The input is invalid.
    Error,
    /// Accepted by the reference, forbidden by the spec's grammar (`--strict`).
    Warning,
}

/// One problem found in an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, naming the field or entry.
    pub message: String,
}

/// The verdict on one input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationReport {
    /// What the input was recognised as (`ImageManifest`, `PodManifest`,
    /// `layout`, `ACI`), when it got that far.
    pub kind: Option<&'static str>,
    /// Every problem found, errors first.
    pub findings: Vec<Finding>,
}

impl ValidationReport {
    /// Whether there is no error (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.findings
            .iter()
            .all(|f| f.severity == Severity::Warning)
    }

    fn error(&mut self, message: impl Into<String>) {
        self.findings.push(Finding {
            severity: Severity::Error,
            message: message.into(),
        });
    }

    fn add_manifest(&mut self, bytes: &[u8], strict: bool, container: Option<&'static str>) {
        let report = manifest::validate_manifest(bytes, strict);
        if self.kind.is_none() {
            self.kind = container.or(report.kind.map(|k| k.as_str()));
        }
        if let Some(err) = report.error {
            let prefix = if container.is_some() {
                "manifest: "
            } else {
                ""
            };
            self.error(format!("{prefix}{}", err.reference_line()));
        }
        for warning in report.warnings {
            let prefix = if container.is_some() {
                "manifest: "
            } else {
                ""
            };
            self.findings.push(Finding {
                severity: Severity::Warning,
                message: format!("{prefix}{}: {}", warning.location, warning.message),
            });
        }
    }
}

impl Severity {
    /// The word printed for it: `error` or `warning`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One input's verdict as an item of `validate --format json`, written by
/// the shared writer (`json_output::Document`) into the `inputs` list:
///
/// ```text
/// {"path":BYTES,"kind":KIND|null,"valid":true|false,
///  "findings":[{"severity":"error"|"warning","message":"..."}...]}
/// KIND = "ImageManifest"|"PodManifest"|"layout"|"ACI"
/// ```
///
/// `path` is the operand as given; `kind` what the input was recognised
/// as, `null` when it could not be read that far; `valid` is false when a
/// finding is an error (warnings alone leave it true); `findings` in the
/// order of the text output, errors first.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    path: Bytes<'a>,
    kind: Option<&'static str>,
    valid: bool,
    findings: Vec<JsonFinding<'a>>,
}

#[derive(Debug, Serialize)]
struct JsonFinding<'a> {
    severity: &'static str,
    message: &'a str,
}

impl<'a> JsonReport<'a> {
    /// The item for `report`, the verdict on the input named `path`.
    pub fn new(path: &'a Path, report: &'a ValidationReport) -> Self {
        JsonReport {
            path: Bytes(path.as_os_str().as_encoded_bytes()),
            kind: report.kind,
            valid: report.is_valid(),
            findings: report
                .findings
                .iter()
                .map(|f| JsonFinding {
                    severity: f.severity.name(),
                    message: &f.message,
                })
                .collect(),
        }
    }
}

/// Validates the file or directory at `path`: a directory is a layout;
/// a file is an ACI when its first bytes are a known compression or tar
/// magic, and a manifest otherwise.
pub fn validate_path(path: &Path, strict: bool, limits: &Limits) -> ValidationReport {
    let mut report = ValidationReport::default();
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            report.error(format!("cannot read: {e}"));
            return report;
        }
    };
    if meta.is_dir() {
        validate_layout(path, strict, limits, &mut report);
        return report;
    }
    let mut head = Vec::with_capacity(512);
    let read = File::open(path).and_then(|f| f.take(512).read_to_end(&mut head));
    if let Err(e) = read {
        report.error(format!("cannot read: {e}"));
        return report;
    }
    if archive::detect(&head).is_ok() {
        report.kind = Some("ACI");
        validate_archive(path, strict, limits, &mut report);
    } else if looks_like_text(&head) {
        match read_capped(path, limits.max_manifest_size) {
            Ok(bytes) => report.add_manifest(&bytes, strict, None),
            Err(e) => report.error(e),
        }
    } else {
        // Not an archive and not text: let detection name what it saw.
        let why = archive::detect(&head)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "unknown file type".to_owned());
        report.error(why);
    }
    report
}

/// What the reference's content sniffing calls text: no NUL and no other
/// binary control bytes in the first block. An empty file is text, as there.
fn looks_like_text(head: &[u8]) -> bool {
    !head
        .iter()
        .any(|&b| b == 0 || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b)))
}

fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    let file = File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!("manifest is larger than the {cap}-byte limit"));
    }
    Ok(bytes)
}

fn validate_archive(path: &Path, strict: bool, limits: &Limits, report: &mut ValidationReport) {
    let input = match File::open(path) {
        Ok(file) => file,
        Err(e) => return report.error(format!("cannot read: {e}")),
    };
    match archive::scan(input, &mut io::sink(), limits) {
        Ok(scanned) => report.add_manifest(&scanned.manifest, strict, Some("ACI")),
        Err(e) => report.error(e.to_string()),
    }
}

fn validate_layout(dir: &Path, strict: bool, limits: &Limits, report: &mut ValidationReport) {
    report.kind = Some("layout");
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return report.error(format!("cannot read: {e}")),
    };
    let mut manifest_bytes = None;
    let mut has_rootfs = false;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => return report.error(format!("cannot read: {e}")),
        };
        let name = entry.file_name();
        let file_type = entry.file_type();
        match name.to_str() {
            Some("manifest") => {
                if !file_type.as_ref().is_ok_and(|t| t.is_file()) {
                    report.error("manifest is not a regular file");
                    continue;
                }
                match read_capped(&entry.path(), limits.max_manifest_size) {
                    Ok(bytes) => manifest_bytes = Some(bytes),
                    Err(e) => report.error(format!("manifest: {e}")),
                }
            }
            Some("rootfs") => {
                if file_type.as_ref().is_ok_and(|t| t.is_dir()) {
                    has_rootfs = true;
                } else {
                    report.error("rootfs is not a directory");
                    has_rootfs = true;
                }
            }
            _ => report.error(format!(
                "unrecognized file path in layout: {}",
                crate::quote::quote_path(name.as_encoded_bytes())
            )),
        }
    }
    if !has_rootfs {
        report.error("no rootfs found in layout");
    }
    match manifest_bytes {
        Some(bytes) => report.add_manifest(&bytes, strict, Some("layout")),
        None => report.error("no image manifest found in layout"),
    }
}
