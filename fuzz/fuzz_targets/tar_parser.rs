//! The tar push parser on arbitrary bytes, fed whole and in arbitrary
//! chunks: it must never panic, must give the same answer however the
//! stream is cut, and every entry it accepts must satisfy the invariants
//! the store, the index and the renderer rely on (aci-format §1, §11).
#![no_main]

use acido_plumbing::archive::tar::Parsed;
use acido_plumbing::archive::{check_layout, clean_path, Limits, TarError, TarParser};
use acido_plumbing::entry::EntryKind;
use libfuzzer_sys::fuzz_target;

/// Small bounds, so the limit checks are reached by short inputs.
fn limits() -> Limits {
    Limits {
        max_decompressed_size: 1 << 20,
        max_entries: 16,
        max_path_len: 200,
        max_link_target_len: 200,
        max_extended_header_size: 2048,
        max_manifest_size: 1024,
        ..Limits::default()
    }
}

/// Chunk lengths from one control byte: 0 means one byte at a time,
/// otherwise a xorshift sequence of lengths in 1..=1100, which cuts
/// headers, PAX records and padding at every possible place.
fn chunk_sizes(control: u8, total: usize) -> Vec<usize> {
    if control == 0 {
        return vec![1; total];
    }
    let mut state = u32::from(control).wrapping_mul(0x9e37_79b9) | 1;
    let mut sizes = Vec::new();
    let mut covered = 0;
    while covered < total {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = 1 + (state % 1100) as usize;
        sizes.push(size);
        covered += size;
    }
    sizes
}

fn parse(tar: &[u8], limits: &Limits, sizes: &[usize]) -> Result<Parsed, TarError> {
    let mut parser = TarParser::new(limits);
    let mut rest = tar;
    for &size in sizes {
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        parser.feed(chunk)?;
        rest = tail;
    }
    parser.finish()
}

fuzz_target!(|data: &[u8]| {
    // The control byte is the last one, so a seed tar keeps its headers.
    let Some((&control, tar)) = data.split_last() else {
        return;
    };
    let limits = limits();
    let whole = parse(tar, &limits, &[tar.len()]);
    let chunked = parse(tar, &limits, &chunk_sizes(control, tar.len()));
    match (&whole, &chunked) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.entries, b.entries, "entries depend on the chunking");
            assert_eq!(a.manifest, b.manifest, "manifest depends on the chunking");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "error depends on the chunking"),
        _ => panic!("outcome depends on the chunking: {whole:?} vs {chunked:?}"),
    }
    if let Err(e) = &whole {
        // Messages quote hostile names; formatting must not panic either.
        let _ = e.to_string();
        return;
    }
    let Ok(parsed) = whole else { return };
    assert!(parsed.entries.len() <= limits.max_entries);
    let mut last_header = None;
    for entry in &parsed.entries {
        let path = entry.path.as_slice();
        assert_eq!(clean_path(path), path, "path not cleaned");
        assert!(!path.is_empty() && path != b".", "root entry kept");
        assert!(!path.starts_with(b"/"), "absolute path accepted");
        assert!(
            path != b".." && !path.starts_with(b"../"),
            "escape accepted"
        );
        assert!(!path.contains(&0), "NUL in path");
        assert_eq!(entry.header_offset % 512, 0);
        assert_eq!(entry.data_offset % 512, 0);
        assert!(entry.header_offset < entry.data_offset);
        assert!(
            last_header < Some(entry.header_offset),
            "offsets not increasing"
        );
        last_header = Some(entry.header_offset);
        let end = entry.data_offset.checked_add(entry.size);
        assert!(
            end.is_some_and(|end| end <= tar.len() as u64),
            "data past the end"
        );
        assert!(entry.mode <= 0o7777);
        if entry.kind != EntryKind::Regular {
            assert_eq!(entry.size, 0, "data on a header-only entry");
        }
        match entry.kind {
            EntryKind::HardLink => {
                let target = entry.link_target.as_deref().unwrap_or_default();
                assert_eq!(clean_path(target), target, "hard link target not cleaned");
                assert!(!target.starts_with(b"/") && !target.starts_with(b"../"));
                assert!(target != b".." && target != b".");
            }
            EntryKind::Symlink => assert!(entry.link_target.is_some()),
            _ => assert!(entry.link_target.is_none()),
        }
    }
    if let Some(manifest) = &parsed.manifest {
        assert!(manifest.len() as u64 <= limits.max_manifest_size);
        let first = parsed
            .entries
            .iter()
            .find(|e| e.path == b"manifest" && e.kind == EntryKind::Regular);
        let Some(first) = first else {
            panic!("manifest kept without a manifest entry");
        };
        let start = first.data_offset as usize;
        assert_eq!(&tar[start..start + manifest.len()], manifest.as_slice());
        assert_eq!(first.size, manifest.len() as u64);
    }
    if let Err(e) = check_layout(&parsed.entries) {
        let _ = e.to_string();
    }
});
