//! Encoders for the documented plumbing output formats that are not owned
//! by one operation (`ls-tree`). Each writes to any `io::Write`.

use std::io::{self, Write};

use serde::Serialize;

use crate::entry::{Entry, EntryKind, Timestamp};
use crate::json_output::{self, Bytes, Device, Document, Time, Xattr};
use crate::quote::quote_path;

/// How entry listings are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListStyle {
    /// Print owner, size, mtime and link targets too.
    pub long: bool,
    /// NUL-terminated records with raw paths (`-z`).
    pub nul: bool,
}

/// `secs` or `secs.nnnnnnnnn` when the time has a fraction.
pub fn format_time(t: Timestamp) -> String {
    if t.nanos == 0 {
        t.secs.to_string()
    } else {
        format!("{}.{:09}", t.secs, t.nanos)
    }
}

/// Writes one record per entry (the `ls-tree` format):
///
/// ```text
/// <type> <mode>\t<path>
/// <type> <mode> <uid> <gid> <size> <mtime>\t<path>[ -> <target>]   (long)
/// ```
///
/// `type` is one letter (`f` file, `d` directory, `l` symlink, `h` hard
/// link, `c`/`b` devices, `p` fifo); `mode` four octal digits; `size` the
/// data size, or `major,minor` for devices; `mtime` seconds since the
/// epoch with `.nnnnnnnnn` when the entry has a fraction; `path` as in the
/// archive (`rootfs/etc/passwd`). In long form symlinks and hard links end
/// with ` -> <target>`. Paths and targets are C-quoted when needed. With
/// `nul`, every line ends in NUL instead of a newline, nothing is quoted, and
/// in long form a link's target follows as a NUL-terminated field of its own
/// instead of ` -> `.
pub fn write_entries(out: &mut dyn Write, entries: &[Entry], style: ListStyle) -> io::Result<()> {
    for entry in entries {
        write!(out, "{} {:04o}", entry.kind.code(), entry.mode)?;
        if style.long {
            let size = match entry.kind {
                EntryKind::CharDevice | EntryKind::BlockDevice => {
                    format!("{},{}", entry.dev_major, entry.dev_minor)
                }
                _ => entry.size.to_string(),
            };
            write!(
                out,
                " {} {} {} {}",
                entry.uid,
                entry.gid,
                size,
                format_time(entry.mtime)
            )?;
        }
        out.write_all(b"\t")?;
        let target = entry.link_target.as_deref().filter(|_| style.long);
        if style.nul {
            out.write_all(&entry.path)?;
            out.write_all(b"\0")?;
            if let Some(target) = target {
                out.write_all(target)?;
                out.write_all(b"\0")?;
            }
        } else {
            out.write_all(quote_path(&entry.path).as_bytes())?;
            if let Some(target) = target {
                write!(out, " -> {}", quote_path(target))?;
            }
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Writes the `ls-tree --format json` document, through the shared writer
/// ([`json_output::Document`]): one line, every entry in archive order,
/// with all its metadata whatever `--long` says.
///
/// ```text
/// {"formatVersion":1,"entries":[ENTRY...]}
/// ENTRY = {"path":BYTES,"type":TYPE,"mode":"0755","uid":0,"gid":0,"size":0,
///          "mtime":{"sec":1700000000,"nsec":0},
///          ["linkTarget":BYTES,] ["device":{"major":1,"minor":3},]
///          "xattrs":[{"name":BYTES,"value":BYTES}...]}
/// TYPE  = "regular"|"directory"|"symlink"|"hardlink"|"char"|"block"|"fifo"
/// BYTES = "text" when the bytes are valid UTF-8, else {"bytes":[0-255,...]}
/// ```
///
/// `path` is as in the archive (`rootfs/etc/passwd`); `size` the data size
/// (0 for all but regular files); `linkTarget` appears for symlinks and
/// hard links (a hard link's target is another entry's path) and `device`
/// for char and block devices; `xattrs` in archive order. Keys appear in
/// the order shown.
pub fn write_entries_json(out: &mut dyn Write, entries: &[Entry]) -> io::Result<()> {
    let mut doc = Document::begin(out)?;
    doc.list("entries", entries.iter().map(JsonEntry::from))?;
    doc.finish()?;
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonEntry<'a> {
    path: Bytes<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
    mode: String,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_target: Option<Bytes<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<Device>,
    xattrs: Vec<Xattr<'a>>,
}

impl<'a> From<&'a Entry> for JsonEntry<'a> {
    fn from(e: &'a Entry) -> Self {
        let is_device = matches!(e.kind, EntryKind::CharDevice | EntryKind::BlockDevice);
        JsonEntry {
            path: Bytes(&e.path),
            kind: e.kind.name(),
            mode: json_output::octal_mode(e.mode),
            uid: e.uid,
            gid: e.gid,
            size: e.size,
            mtime: Time {
                sec: e.mtime.secs,
                nsec: e.mtime.nanos,
            },
            link_target: e.link_target.as_deref().map(Bytes),
            device: is_device.then_some(Device {
                major: e.dev_major,
                minor: e.dev_minor,
            }),
            xattrs: json_output::xattrs(&e.xattrs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &[u8], kind: EntryKind, target: Option<&[u8]>) -> Entry {
        let entry = Entry::new(path, kind)
            .with_mode(0o755)
            .with_owner(1, 2)
            .with_mtime(10, 5)
            .with_size(3);
        match target {
            Some(target) => entry.with_link_target(target),
            None => entry,
        }
    }

    #[test]
    fn short_long_and_nul_forms() {
        let entries = [
            entry(b"rootfs/a\nb", EntryKind::Regular, None),
            entry(b"rootfs/l", EntryKind::Symlink, Some(b"/etc")),
        ];
        let mut out = Vec::new();
        write_entries(&mut out, &entries, ListStyle::default()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "f 0755\t\"rootfs/a\\nb\"\nl 0755\trootfs/l\n"
        );
        let mut out = Vec::new();
        let long = ListStyle {
            long: true,
            nul: false,
        };
        write_entries(&mut out, &entries[1..], long).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "l 0755 1 2 3 10.000000005\trootfs/l -> /etc\n"
        );
        let mut out = Vec::new();
        let nul = ListStyle {
            long: true,
            nul: true,
        };
        write_entries(&mut out, &entries, nul).unwrap();
        assert_eq!(
            out,
            b"f 0755 1 2 3 10.000000005\trootfs/a\nb\0l 0755 1 2 3 10.000000005\trootfs/l\0/etc\0"
        );
    }

    #[test]
    fn json_has_every_field_and_keeps_bytes() {
        let entries = [
            entry(b"rootfs/a\xfe", EntryKind::Regular, None).with_xattr("user.k", "v"),
            entry(b"rootfs/l", EntryKind::Symlink, Some(b"/etc")),
            Entry::new("rootfs/null", EntryKind::CharDevice)
                .with_mode(0o666)
                .with_device(1, 3),
        ];
        let mut out = Vec::new();
        write_entries_json(&mut out, &entries).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"formatVersion":1,"entries":["#,
                r#"{"path":{"bytes":[114,111,111,116,102,115,47,97,254]},"type":"regular","mode":"0755","uid":1,"gid":2,"size":3,"mtime":{"sec":10,"nsec":5},"xattrs":[{"name":"user.k","value":"v"}]},"#,
                r#"{"path":"rootfs/l","type":"symlink","mode":"0755","uid":1,"gid":2,"size":3,"mtime":{"sec":10,"nsec":5},"linkTarget":"/etc","xattrs":[]},"#,
                r#"{"path":"rootfs/null","type":"char","mode":"0666","uid":0,"gid":0,"size":0,"mtime":{"sec":0,"nsec":0},"device":{"major":1,"minor":3},"xattrs":[]}"#,
                "]}\n"
            )
        );
    }
}
