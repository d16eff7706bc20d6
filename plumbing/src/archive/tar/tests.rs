use super::header::parse_numeric;
use super::pax::pax_time;
use super::*;
use proptest::prelude::*;

/// A ustar header block with a correct checksum.
pub(crate) fn header(name: &[u8], typeflag: u8, size: u64) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name);
    b[100..107].copy_from_slice(b"0000644");
    b[108..115].copy_from_slice(b"0001750");
    b[116..123].copy_from_slice(b"0000144");
    b[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    b[136..147].copy_from_slice(b"13727410000");
    b[156] = typeflag;
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    fix_checksum(&mut b);
    b
}

pub(crate) fn fix_checksum(b: &mut [u8; BLOCK]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

/// Appends an entry (header plus padded data) to `out`.
pub(crate) fn push(out: &mut Vec<u8>, block: [u8; BLOCK], data: &[u8]) {
    out.extend_from_slice(&block);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(BLOCK), 0);
}

pub(crate) fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = key.len() + value.len() + 3;
    // The length counts its own digits.
    let mut len = body_len + 1;
    while len.to_string().len() + body_len != len {
        len += 1;
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

/// A minimal valid image: manifest, rootfs, rootfs/etc, rootfs/etc/hello.
pub(crate) fn minimal() -> Vec<u8> {
    let mut t = Vec::new();
    push(&mut t, header(b"manifest", b'0', 2), b"{}");
    push(&mut t, header(b"rootfs/", b'5', 0), b"");
    push(&mut t, header(b"rootfs/etc/", b'5', 0), b"");
    push(&mut t, header(b"rootfs/etc/hello", b'0', 6), b"hello\n");
    t.extend_from_slice(&[0u8; 1024]);
    t
}

fn parse(bytes: &[u8]) -> Result<Parsed, TarError> {
    let limits = Limits::default();
    let mut p = TarParser::new(&limits);
    p.feed(bytes)?;
    p.finish()
}

#[test]
fn parses_offsets_and_metadata_in_any_chunking() {
    let t = minimal();
    let whole = parse(&t).unwrap();
    assert_eq!(whole.manifest.as_deref(), Some(&b"{}"[..]));
    let paths: Vec<&[u8]> = whole.entries.iter().map(|e| e.path.as_slice()).collect();
    assert_eq!(
        paths,
        [
            &b"manifest"[..],
            b"rootfs",
            b"rootfs/etc",
            b"rootfs/etc/hello"
        ]
    );
    let hello = &whole.entries[3];
    assert_eq!(
        (hello.header_offset, hello.data_offset, hello.size),
        (2048, 2560, 6)
    );
    assert_eq!(&t[hello.data_offset as usize..][..6], b"hello\n");
    assert_eq!((hello.mode, hello.uid, hello.gid), (0o644, 1000, 100));
    assert_eq!(
        hello.mtime,
        Timestamp {
            secs: 1_600_000_000,
            nanos: 0
        }
    );
    assert!(whole.entries[1].kind.is_dir());

    for step in [1, 7, 511, 512, 513] {
        let limits = Limits::default();
        let mut p = TarParser::new(&limits);
        for chunk in t.chunks(step) {
            p.feed(chunk).unwrap();
        }
        let parsed = p.finish().unwrap();
        assert_eq!(parsed.entries, whole.entries, "step {step}");
        assert_eq!(parsed.manifest, whole.manifest);
    }
}

#[test]
fn reads_pax_records() {
    let long = format!("rootfs/{}", "d/".repeat(80) + "file");
    let mut pax = Vec::new();
    pax.extend(pax_record("path", long.as_bytes()));
    pax.extend(pax_record("mtime", b"1600000000.123456789"));
    pax.extend(pax_record("atime", b"-1.25"));
    pax.extend(pax_record("uid", b"4294967296"));
    pax.extend(pax_record("size", b"3"));
    pax.extend(pax_record("SCHILY.xattr.user.k", b"v\0w"));
    pax.extend(pax_record("SCHILY.xattr.security.capability", b"\x01"));
    pax.extend(pax_record("comment", b"ignored"));
    let mut t = Vec::new();
    let global = pax_record("comment", b"global");
    push(
        &mut t,
        header(b"pax_global_header", b'g', global.len() as u64),
        &global,
    );
    push(
        &mut t,
        header(b"PaxHeaders/x", b'x', pax.len() as u64),
        &pax,
    );
    push(&mut t, header(b"short", b'0', 99), b"abc");
    let parsed = parse(&t).unwrap();
    let e = &parsed.entries[0];
    assert_eq!(e.path, long.as_bytes());
    assert_eq!(e.header_offset, 1024, "the pax header, not the global one");
    assert_eq!(
        e.data_offset,
        1024 + 512 + 512 * (pax.len() as u64).div_ceil(512) + 512
    );
    assert_eq!(e.size, 3);
    assert_eq!(e.uid, 1 << 32);
    assert_eq!(
        e.mtime,
        Timestamp {
            secs: 1_600_000_000,
            nanos: 123_456_789
        }
    );
    assert_eq!(
        e.atime,
        Some(Timestamp {
            secs: -2,
            nanos: 750_000_000
        })
    );
    assert_eq!(
        e.xattrs,
        vec![
            (b"user.k".to_vec(), b"v\0w".to_vec()),
            (b"security.capability".to_vec(), b"\x01".to_vec())
        ]
    );
}

#[test]
fn reads_gnu_long_names_and_links() {
    let name = format!("rootfs/{}", "n".repeat(150));
    let target = format!("rootfs/{}", "t".repeat(150));
    let mut t = Vec::new();
    push(&mut t, header(b"rootfs/t", b'0', 0), b"");
    let mut long = header(b"././@LongLink", b'L', name.len() as u64 + 1);
    long[257..265].copy_from_slice(b"ustar  \0");
    fix_checksum(&mut long);
    push(&mut t, long, format!("{name}\0").as_bytes());
    push(
        &mut t,
        header(b"././@LongLink", b'K', target.len() as u64),
        target.as_bytes(),
    );
    let mut link = header(b"truncated", b'1', 0);
    link[257..265].copy_from_slice(b"ustar  \0");
    link[345..356].copy_from_slice(b"13727410001");
    fix_checksum(&mut link);
    push(&mut t, link, b"");
    let parsed = parse(&t).unwrap();
    let e = &parsed.entries[1];
    assert_eq!(e.path, name.as_bytes());
    assert_eq!(e.kind, EntryKind::HardLink);
    assert_eq!(e.link_target.as_deref(), Some(target.as_bytes()));
    assert_eq!(e.header_offset, 512);
    assert_eq!(
        e.atime,
        Some(Timestamp {
            secs: 1_600_000_001,
            nanos: 0
        })
    );
}

#[test]
fn ustar_prefix_old_typeflag_devices_and_base256() {
    let mut t = Vec::new();
    let mut dir = header(b"dir/", 0, 0);
    dir[345..351].copy_from_slice(b"rootfs");
    fix_checksum(&mut dir);
    push(&mut t, dir, b"");
    push(&mut t, header(b"rootfs/file", 0, 0), b"");
    let mut dev = header(b"rootfs/null", b'3', 0);
    dev[329..336].copy_from_slice(b"0000001");
    dev[337..344].copy_from_slice(b"0000003");
    // Base-256 uid and a negative base-256 mtime.
    dev[108..116].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0x01, 0x00]);
    dev[136..148].copy_from_slice(&[0xff; 12]);
    fix_checksum(&mut dev);
    push(&mut t, dev, b"");
    let parsed = parse(&t).unwrap();
    assert_eq!(parsed.entries[0].path, b"rootfs/dir");
    assert_eq!(parsed.entries[0].kind, EntryKind::Directory);
    assert_eq!(parsed.entries[1].kind, EntryKind::Regular);
    let dev = &parsed.entries[2];
    assert_eq!(
        (dev.kind, dev.dev_major, dev.dev_minor),
        (EntryKind::CharDevice, 1, 3)
    );
    assert_eq!(dev.uid, 256);
    assert_eq!(dev.mtime.secs, -1);
}

#[test]
fn header_only_types_have_no_data() {
    // Go's reader ignores the size of a directory: the next header follows.
    let mut t = Vec::new();
    push(&mut t, header(b"rootfs", b'5', 1024), b"");
    push(&mut t, header(b"rootfs/a", b'0', 1), b"x");
    let parsed = parse(&t).unwrap();
    assert_eq!(parsed.entries.len(), 2);
    assert_eq!(parsed.entries[0].size, 0);
}

#[test]
fn rejects_bad_headers_with_the_entry_named() {
    let mut bad_sum = header(b"rootfs/a", b'0', 0);
    bad_sum[0] = b'x';
    assert!(matches!(
        parse(&bad_sum),
        Err(TarError::BadChecksum { offset: 0, .. })
    ));

    let err = parse(&header(b"rootfs/c", b'7', 0)).unwrap_err();
    assert_eq!(err.to_string(), "rootfs/c: unsupported tar entry type '7'");
    assert!(matches!(
        parse(&header(b"rootfs/s", b'S', 0)),
        Err(TarError::UnsupportedType { typeflag: b'S', .. })
    ));
    assert!(matches!(
        parse(&header(b"/rootfs/x", b'0', 0)),
        Err(TarError::AbsolutePath { .. })
    ));
    assert!(matches!(
        parse(&header(b"rootfs/../../x", b'0', 0)),
        Err(TarError::EscapesRoot { .. })
    ));
    assert!(matches!(
        parse(&header(b"", b'0', 0)),
        Err(TarError::EmptyName { .. })
    ));

    let mut link = header(b"rootfs/l", b'1', 0);
    link[157..167].copy_from_slice(b"/etc/passw");
    fix_checksum(&mut link);
    assert!(matches!(parse(&link), Err(TarError::BadLinkTarget { .. })));

    let mut bad_size = header(b"rootfs/a", b'0', 0);
    bad_size[124..135].copy_from_slice(b"0000000009x");
    fix_checksum(&mut bad_size);
    assert!(matches!(
        parse(&bad_size),
        Err(TarError::BadNumber { field: "size", .. })
    ));

    let mut pax_bad = Vec::new();
    push(&mut pax_bad, header(b"x", b'x', 9), b"99 path=a");
    assert!(matches!(parse(&pax_bad), Err(TarError::BadPax { .. })));
    let mut sparse = Vec::new();
    let rec = pax_record("GNU.sparse.major", b"1");
    push(&mut sparse, header(b"x", b'x', rec.len() as u64), &rec);
    push(&mut sparse, header(b"rootfs/s", b'0', 0), b"");
    assert!(matches!(parse(&sparse), Err(TarError::BadPax { .. })));
}

#[test]
fn end_of_archive_rules() {
    let t = minimal();
    // Missing end marker, or only one zero block: complete, like Go.
    assert!(parse(&t[..t.len() - 1024]).is_ok());
    assert!(parse(&t[..t.len() - 512]).is_ok());
    // Anything after the marker is not parsed.
    let mut trailing = t.clone();
    trailing.extend_from_slice(b"garbage after the end");
    assert_eq!(parse(&trailing).unwrap().entries.len(), 4);
    // A zero block then a non-zero block is corrupt.
    let mut odd = t[..t.len() - 1024].to_vec();
    odd.extend_from_slice(&[0u8; 512]);
    odd.extend_from_slice(&header(b"rootfs/z", b'0', 0));
    assert!(matches!(parse(&odd), Err(TarError::BadEndMarker { .. })));
    // Cut inside data, inside a header, after a dangling pax header.
    let err = parse(&t[..2560 + 3]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rootfs/etc/hello: archive ends early (inside entry data)"
    );
    assert!(matches!(parse(&t[..100]), Err(TarError::Truncated { .. })));
    let mut dangling = Vec::new();
    let rec = pax_record("path", b"rootfs/p");
    push(&mut dangling, header(b"x", b'x', rec.len() as u64), &rec);
    assert!(matches!(
        parse(&dangling),
        Err(TarError::DanglingExtendedHeader { .. })
    ));
}

#[test]
fn limits_are_enforced_and_named() {
    let t = minimal();
    let check = |limits: Limits, what: &str| {
        let mut p = TarParser::new(&limits);
        let err = p
            .feed(&t)
            .and_then(|()| p.finish().map(|_| ()))
            .unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    };
    check(
        Limits {
            max_entries: 3,
            ..Limits::default()
        },
        "rootfs/etc/hello: maximum number of entries exceeded",
    );
    check(
        Limits {
            max_manifest_size: 1,
            ..Limits::default()
        },
        "manifest: maximum manifest size exceeded (2 > 1)",
    );
    check(
        Limits {
            max_path_len: 10,
            ..Limits::default()
        },
        "header at offset 1536: maximum path length exceeded (11 > 10)",
    );

    let mut pax = Vec::new();
    let rec = pax_record("path", &[b'a'; 2000]);
    push(&mut pax, header(b"x", b'x', rec.len() as u64), &rec);
    let limits = Limits {
        max_extended_header_size: 1000,
        ..Limits::default()
    };
    let mut p = TarParser::new(&limits);
    assert!(matches!(p.feed(&pax), Err(TarError::LimitExceeded { .. })));
}

#[test]
fn numeric_fields() {
    assert_eq!(parse_numeric(b"  0755 \0"), Ok(0o755));
    assert_eq!(parse_numeric(b"\0\0\0"), Ok(0));
    assert_eq!(parse_numeric(b"12 3"), Err(()));
    assert_eq!(parse_numeric(b"8"), Err(()));
    assert_eq!(parse_numeric(&[0x80, 0, 0, 1, 0]), Ok(256));
    assert_eq!(parse_numeric(&[0xff, 0xff, 0xff, 0xfe]), Ok(-2));
    assert_eq!(parse_numeric(&[0x80, 0xff, 0, 0, 0, 0, 0, 0, 0]), Err(()));
    assert_eq!(parse_numeric(b"777777777777777777777777"), Err(()));
    assert_eq!(pax_time(b"5"), Ok(Timestamp { secs: 5, nanos: 0 }));
    assert_eq!(
        pax_time(b"5.1234567891"),
        Ok(Timestamp {
            secs: 5,
            nanos: 123_456_789
        })
    );
    assert_eq!(pax_time(b"-3"), Ok(Timestamp { secs: -3, nanos: 0 }));
    assert!(pax_time(b"x").is_err());
    assert!(pax_time(b"1.2.3").is_err());
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn mutated_archives_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut t = minimal();
        for (at, value) in flips {
            let len = t.len();
            t[at % len] = value;
            // Keep many mutations past the checksum so deeper code runs.
            if at % 3 == 0 {
                let start = (at % len) / BLOCK * BLOCK;
                if let Ok(block) = <&mut [u8; BLOCK]>::try_from(&mut t[start..start + BLOCK]) {
                    fix_checksum(block);
                }
            }
        }
        let len = t.len();
        t.truncate(len - cut % 600);
        let _ = parse(&t);
    }
}
