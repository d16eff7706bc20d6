//! Manifest decoding, validation and re-serialization on arbitrary bytes.
//! Never a panic (the reference panics on some manifests; acido must
//! not), `from_slice` and `validate_manifest` agree, and a manifest that
//! decodes re-decodes from its own JSON to an equal value (aci-format §5).
#![no_main]

use acido_plumbing::manifest::{validate_manifest, AcKind, ImageManifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = ImageManifest::from_slice(data);
    let lenient = validate_manifest(data, false);
    let strict = validate_manifest(data, true);
    assert_eq!(
        lenient.error, strict.error,
        "strictness changed the verdict"
    );
    assert_eq!(lenient.kind, strict.kind);
    let _ = strict.reference_line();
    for warning in &strict.warnings {
        let _ = warning.to_string();
    }
    let image_verdict = lenient.is_valid() && lenient.kind == Some(AcKind::ImageManifest);
    assert_eq!(
        decoded.is_ok(),
        image_verdict,
        "from_slice and validate_manifest disagree: {decoded:?} vs {lenient:?}"
    );
    let manifest = match decoded {
        Ok(m) => m,
        Err(e) => {
            let _ = (e.to_string(), e.reference_line(), e.stage());
            return;
        }
    };
    let json = manifest.to_json();
    let again = ImageManifest::from_slice(json.as_bytes());
    let Ok(again) = again else {
        panic!("to_json output does not decode: {again:?}\n{json}");
    };
    assert_eq!(
        again, manifest,
        "to_json round trip changed the manifest\n{json}"
    );
    assert_eq!(again.to_json(), json, "to_json is not stable");
    let pretty = manifest.to_json_pretty();
    let from_pretty = ImageManifest::from_slice(pretty.as_bytes());
    assert_eq!(
        from_pretty.as_ref().ok(),
        Some(&manifest),
        "pretty form differs\n{pretty}"
    );
    assert!(validate_manifest(json.as_bytes(), false).is_valid());
});
