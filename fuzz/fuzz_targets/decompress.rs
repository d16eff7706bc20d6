//! Compression detection and capped decompression through the same entry
//! points the store uses (`archive::scan`, `archive::hash_stream`). A
//! decompression bomb must stop at the limit, quickly and in flat memory
//! (libFuzzer's `-timeout` and `-rss_limit_mb` catch the rest), and every
//! accepted stream must hash to the SHA-512 of an independent decode.
#![no_main]

use std::io::{self, Read};

use acido_plumbing::archive::detect::SNIFF_LEN;
use acido_plumbing::archive::{decoder, detect, hash_stream, scan, ArchiveError, Limits};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha512};

/// Largest decompressed stream the target accepts.
const CAP: u64 = 256 << 10;

fn id_of(bytes: &[u8]) -> String {
    let digest = Sha512::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha512-{hex}")
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_decompressed_size: CAP,
        max_entries: 16,
        max_path_len: 200,
        max_link_target_len: 200,
        max_extended_header_size: 2048,
        max_manifest_size: 1024,
        ..Limits::default()
    };
    let detected = detect(&data[..data.len().min(SNIFF_LEN)]);
    // An independent decode of at most CAP + 1 bytes: the expected stream.
    let expected = detected.as_ref().ok().map(|&compression| {
        let mut out = Vec::new();
        let result = decoder(compression, data)
            .take(CAP + 1)
            .read_to_end(&mut out);
        (result.is_ok(), out)
    });

    let mut copy = Vec::new();
    let scanned = scan(io::Cursor::new(data.to_vec()), &mut copy, &limits);
    assert!(copy.len() as u64 <= CAP, "scan copied past the limit");
    match &scanned {
        Ok(s) => {
            assert_eq!(
                Ok(s.compression),
                detected.as_ref().map(|c| *c).map_err(|_| ())
            );
            assert_eq!(s.size, copy.len() as u64);
            assert_eq!(s.id.to_string(), id_of(&copy));
            let Some((true, out)) = &expected else {
                panic!("scan accepted a stream the decoder rejects");
            };
            assert_eq!(out, &copy, "scan saw other bytes than the decoder");
        }
        Err(ArchiveError::TooLarge { max, .. }) => {
            assert_eq!(*max, CAP);
            let Some((_, out)) = &expected else {
                panic!("too large, but undetected");
            };
            assert!(out.len() as u64 > CAP, "too large, but the stream is short");
        }
        Err(e) => {
            let _ = e.to_string();
            if detected.is_err() {
                assert!(expected.is_none());
            }
        }
    }

    // hash_stream has no size limit, so only streams known to end under
    // the cap go through it.
    if let Some((true, out)) = &expected {
        if out.len() as u64 <= CAP {
            let hashed = hash_stream(io::Cursor::new(data.to_vec()));
            let Ok(hashed) = hashed else {
                panic!("hash_stream rejects a stream the decoder reads: {hashed:?}");
            };
            assert_eq!(hashed.size, out.len() as u64);
            assert_eq!(hashed.id.to_string(), id_of(out));
        }
    }
});
