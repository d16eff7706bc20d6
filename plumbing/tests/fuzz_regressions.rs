//! Every input a fuzz target (`fuzz/`) ever crashed on, replayed as a
//! regular test with the same property the target checks.
//!
//! Inputs live in `tests/fixtures/fuzz/`, named `<target>-<what>.<ext>`;
//! the prefix picks the check, so a new crash input only needs copying
//! there under its target's name.

use std::fs;
use std::path::PathBuf;

use acido_plumbing::archive::{clean_path, Limits, TarParser};
use acido_plumbing::index::EntryIndex;
use acido_plumbing::manifest::{validate_manifest, AcKind, ImageManifest};

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fuzz");
    let mut inputs: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    inputs.sort();
    inputs
}

/// The `manifest` target's property: the verdicts agree, and an accepted
/// manifest decodes from its own JSON (compact and pretty) to itself.
fn check_manifest(name: &str, bytes: &[u8]) {
    let decoded = ImageManifest::from_slice(bytes);
    let report = validate_manifest(bytes, true);
    assert_eq!(
        decoded.is_ok(),
        report.is_valid() && report.kind == Some(AcKind::ImageManifest),
        "{name}: from_slice and validate_manifest disagree"
    );
    let Ok(manifest) = decoded else { return };
    let json = manifest.to_json();
    assert_eq!(
        ImageManifest::from_slice(json.as_bytes()).as_ref(),
        Ok(&manifest),
        "{name}: to_json does not round-trip:\n{json}"
    );
    let pretty = manifest.to_json_pretty();
    assert_eq!(
        ImageManifest::from_slice(pretty.as_bytes()).as_ref(),
        Ok(&manifest),
        "{name}: to_json_pretty does not round-trip"
    );
}

/// The `tar_parser` target's property, for byte-at-a-time chunking.
fn check_tar(name: &str, bytes: &[u8]) {
    let limits = Limits::default();
    let whole = {
        let mut p = TarParser::new(&limits);
        p.feed(bytes).and_then(|()| p.finish())
    };
    let bytewise = {
        let mut p = TarParser::new(&limits);
        bytes
            .chunks(1)
            .try_for_each(|b| p.feed(b))
            .and_then(|()| p.finish())
    };
    match (whole, bytewise) {
        (Ok(a), Ok(b)) => assert_eq!((a.entries, a.manifest), (b.entries, b.manifest), "{name}"),
        (Err(a), Err(b)) => assert_eq!(a, b, "{name}"),
        (a, b) => panic!("{name}: chunking changes the outcome: {a:?} vs {b:?}"),
    }
}

/// The `clean_path` target's core properties.
fn check_clean_path(name: &str, bytes: &[u8]) {
    let out = clean_path(bytes);
    assert_eq!(clean_path(&out), out, "{name}: not idempotent");
    assert_eq!(
        out.first() == Some(&b'/'),
        bytes.first() == Some(&b'/'),
        "{name}"
    );
}

/// The `index_decode` target's property.
fn check_index(name: &str, bytes: &[u8]) {
    if let Ok(index) = EntryIndex::decode(bytes) {
        // A version 1 index comes back as version 2 with a 0 digest flag.
        let canonical = if bytes[8..12] == 1u32.to_le_bytes() {
            let mut v2 = bytes[..8].to_vec();
            v2.extend_from_slice(&2u32.to_le_bytes());
            v2.push(0);
            v2.extend_from_slice(&bytes[12..]);
            v2
        } else {
            bytes.to_vec()
        };
        assert_eq!(
            index.encode(),
            canonical,
            "{name}: non-canonical index accepted"
        );
    }
}

#[test]
fn every_saved_crash_input_now_passes() {
    let inputs = fixtures();
    assert!(!inputs.is_empty(), "no fuzz regression inputs found");
    for (name, bytes) in &inputs {
        match name.split('-').next() {
            Some("manifest") => check_manifest(name, bytes),
            Some("tar_parser") => check_tar(name, bytes),
            Some("clean_path") => check_clean_path(name, bytes),
            Some("index_decode") => check_index(name, bytes),
            _ => panic!("{name}: no fuzz target of that name"),
        }
    }
}

#[test]
fn nameless_annotation_round_trips() {
    // The first crash the `manifest` target found: an annotation whose
    // `name` key is misspelt decodes with an empty name, which the writer
    // used to emit as `"name":""` and the decoder then rejected.
    let bytes = fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/fuzz/manifest-nameless-annotation.json"),
    )
    .unwrap();
    let manifest = ImageManifest::from_slice(&bytes).unwrap();
    assert_eq!(manifest.annotations.len(), 1);
    assert!(!manifest.to_json().contains(r#""name":"""#));
    check_manifest("manifest-nameless-annotation.json", &bytes);
}
