//! `EntryIndex::decode` on arbitrary bytes: the index is read from disk,
//! where it may be truncated or corrupt, so decoding must never panic or
//! reserve memory the bytes do not justify; and since decode rejects
//! anything encode would not write, encode∘decode is the identity.
//! Inputs that parse as a tar also give real entries, whose index must
//! decode back to them (decode∘encode is the identity too).
#![no_main]

use acido_plumbing::archive::{Limits, TarParser};
use acido_plumbing::index::{EntryIndex, MAGIC, OLDEST_VERSION, VERSION};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    match EntryIndex::decode(bytes) {
        Ok(index) => {
            // A version 1 index is re-encoded as version 2 without a
            // digest: the version changes and a 0 flag is inserted.
            let canonical = if bytes[8..12] == OLDEST_VERSION.to_le_bytes() {
                let mut v2 = bytes[..8].to_vec();
                v2.extend_from_slice(&VERSION.to_le_bytes());
                v2.push(0);
                v2.extend_from_slice(&bytes[12..]);
                v2
            } else {
                bytes.to_vec()
            };
            assert_eq!(
                index.encode(),
                canonical,
                "decode accepted a non-canonical index"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // Most random bytes stop at the magic; also try them behind a valid
    // header so the fuzzer spends its time in the entry decoder.
    let mut framed = MAGIC.to_vec();
    framed.extend_from_slice(&VERSION.to_le_bytes());
    framed.extend_from_slice(data);
    check(&framed);

    let limits = Limits {
        max_entries: 64,
        ..Limits::default()
    };
    let mut parser = TarParser::new(&limits);
    if parser.feed(data).is_err() {
        return;
    }
    if let Ok(parsed) = parser.finish() {
        let index = EntryIndex {
            entries: parsed.entries,
            fast_digest: None,
        };
        let bytes = index.encode();
        assert_eq!(EntryIndex::decode(&bytes), Ok(index), "index round trip");
    }
});
