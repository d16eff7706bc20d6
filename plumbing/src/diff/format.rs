//! The documented output formats of `diff-tree` (DESIGN §4, §7). These are
//! plumbing contracts: scripts parse them, so they change only with a new
//! `formatVersion` (JSON) or not at all (the line formats).
//!
//! Every encoder writes the whole change list to a `&mut dyn Write` and
//! returns the first write error. An empty change list writes nothing in
//! the line formats.

use std::io::{self, Write};

use serde::Serialize;

use super::{Change, FileMeta, Status};
use crate::entry::EntryKind;
use crate::json_output::{self, Bytes, Device, Document, Time, Xattr};
use crate::quote::quote_path;

/// Writes the default and `--name-status` format.
///
/// Without `-z` (`nul == false`), one line per change:
///
/// ```text
/// <S>\t<path>\n
/// ```
///
/// where `<S>` is `A` (added), `M` (modified), `D` (deleted) or `T` (type
/// changed), and `<path>` is relative to the compared roots (`.` for the
/// roots themselves), C-quoted like git's `core.quotePath` when it holds
/// control characters, `"`, `\` or bytes that are not UTF-8.
///
/// With `-z` (`nul == true`), the path is written raw and each field ends
/// with a NUL byte instead:
///
/// ```text
/// <S>\0<path>\0
/// ```
pub fn write_name_status(out: &mut dyn Write, changes: &[Change], nul: bool) -> io::Result<()> {
    for change in changes {
        let code = change.status.code();
        if nul {
            write!(out, "{code}\0")?;
            out.write_all(&change.path)?;
            out.write_all(b"\0")?;
        } else {
            writeln!(out, "{code}\t{}", quote_path(&change.path))?;
        }
    }
    Ok(())
}

/// Writes the `--name-only` format: the path of each change, C-quoted and
/// ending in a newline, or with `-z` raw and ending in NUL (the form
/// `pack-aci --paths-from` reads).
pub fn write_name_only(out: &mut dyn Write, changes: &[Change], nul: bool) -> io::Result<()> {
    for change in changes {
        if nul {
            out.write_all(&change.path)?;
            out.write_all(b"\0")?;
        } else {
            writeln!(out, "{}", quote_path(&change.path))?;
        }
    }
    Ok(())
}

/// Writes the `--stat` format: one line per change, then a summary line.
///
/// ```text
///  <path> | <what>\n
///  N paths changed, A added, M modified, D deleted, T type changed\n
/// ```
///
/// Each line starts with one space. `<path>` is always C-quoted as in
/// [`write_name_status`] (`-z` does not apply to `--stat`). `<what>` is, for
/// a modified path, the attribute names that differ separated by `,`
/// without spaces, in this order: `content`, `mode`, `uid`, `gid`, `mtime`,
/// `link-target`, `xattrs`, `hard-links`, `device`, `size`; for the other
/// statuses it is `added`, `deleted` or `type changed`. The summary always
/// uses these plural words, whatever the counts, so it parses with one
/// pattern; it is written even when nothing changed
/// (` 0 paths changed, 0 added, 0 modified, 0 deleted, 0 type changed`).
pub fn write_stat(out: &mut dyn Write, changes: &[Change]) -> io::Result<()> {
    let (mut added, mut modified, mut deleted, mut type_changed) = (0u64, 0u64, 0u64, 0u64);
    for change in changes {
        let what = match change.status {
            Status::Added => {
                added += 1;
                "added".to_owned()
            }
            Status::Deleted => {
                deleted += 1;
                "deleted".to_owned()
            }
            Status::TypeChanged => {
                type_changed += 1;
                "type changed".to_owned()
            }
            Status::Modified => {
                modified += 1;
                let names: Vec<&str> = change.attrs.iter().map(|a| a.name()).collect();
                names.join(",")
            }
        };
        writeln!(out, " {} | {what}", quote_path(&change.path))?;
    }
    writeln!(
        out,
        " {} paths changed, {added} added, {modified} modified, {deleted} deleted, {type_changed} type changed",
        changes.len()
    )
}

/// Writes the JSON format (`--format json`): one compact JSON object and a
/// newline, through the shared writer ([`json_output::Document`]).
///
/// ```text
/// {"formatVersion":1,"changes":[CHANGE...]}
/// CHANGE = {"path":BYTES,"status":"A"|"M"|"D"|"T","attrs":[NAME...],"a":META|null,"b":META|null}
/// META   = {"type":TYPE,"mode":"0755","uid":0,"gid":0,
///           "mtime":{"sec":1700000000,"nsec":0},"size":0,
///           ["linkTarget":BYTES,] ["device":{"major":1,"minor":3},]
///           "xattrs":[{"name":BYTES,"value":BYTES}...],"hardLinks":[BYTES...]}
/// TYPE   = "regular"|"directory"|"symlink"|"char"|"block"|"fifo"
/// BYTES  = "text" when the bytes are valid UTF-8, else {"bytes":[0-255,...]}
/// ```
///
/// `attrs` holds the attribute names of [`write_stat`] for a modified path
/// and is empty otherwise. `a` is `null` for an added path and `b` for a
/// deleted one. `mode` is the 12 permission and special bits as a 4-digit
/// octal string. `size` is 0 for everything but regular files. `linkTarget`
/// appears only for symlinks and `device` only for char and block devices.
/// `xattrs` are sorted by name (`system.*` never listed) and `hardLinks`
/// lists the other paths of the same tree that share the file's inode,
/// sorted. Keys appear in the order shown.
pub fn write_json(out: &mut dyn Write, changes: &[Change]) -> io::Result<()> {
    let mut doc = Document::begin(out)?;
    doc.list("changes", changes.iter().map(JsonChange::from))?;
    doc.finish()?;
    Ok(())
}

#[derive(Serialize)]
struct JsonChange<'a> {
    path: Bytes<'a>,
    status: String,
    attrs: Vec<&'static str>,
    a: Option<JsonMeta<'a>>,
    b: Option<JsonMeta<'a>>,
}

impl<'a> From<&'a Change> for JsonChange<'a> {
    fn from(c: &'a Change) -> Self {
        JsonChange {
            path: Bytes(&c.path),
            status: c.status.code().to_string(),
            attrs: c.attrs.iter().map(|a| a.name()).collect(),
            a: c.a.as_ref().map(JsonMeta::from),
            b: c.b.as_ref().map(JsonMeta::from),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonMeta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    mode: String,
    uid: u64,
    gid: u64,
    mtime: Time,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_target: Option<Bytes<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<Device>,
    xattrs: Vec<Xattr<'a>>,
    hard_links: Vec<Bytes<'a>>,
}

impl<'a> From<&'a FileMeta> for JsonMeta<'a> {
    fn from(m: &'a FileMeta) -> Self {
        let is_device = matches!(m.kind, EntryKind::CharDevice | EntryKind::BlockDevice);
        JsonMeta {
            // FileMeta never holds HardLink (a link is a file with its inode's
            // other paths in `hardLinks`).
            kind: m.kind.name(),
            mode: json_output::octal_mode(m.mode),
            uid: m.uid,
            gid: m.gid,
            mtime: Time {
                sec: m.mtime.secs,
                nsec: m.mtime.nanos,
            },
            size: m.size,
            link_target: m.link_target.as_deref().map(Bytes),
            device: is_device.then_some(Device {
                major: m.dev_major,
                minor: m.dev_minor,
            }),
            xattrs: json_output::xattrs(&m.xattrs),
            hard_links: m.hard_links.iter().map(|p| Bytes(p)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::Attr;
    use crate::entry::Timestamp;

    fn meta(kind: EntryKind) -> FileMeta {
        FileMeta {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Timestamp { secs: 7, nanos: 9 },
            size: 0,
            link_target: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
            dev: 0,
            ino: 0,
            nlink: 1,
            ctime: Timestamp::default(),
            hard_links: Vec::new(),
        }
    }

    fn sample() -> Vec<Change> {
        let f = meta(EntryKind::Regular);
        vec![
            Change {
                path: b"etc/a b".to_vec(),
                status: Status::Modified,
                attrs: vec![Attr::Mode, Attr::Mtime],
                a: Some(f.clone()),
                b: Some(FileMeta {
                    mode: 0o755,
                    ..f.clone()
                }),
            },
            Change {
                path: b"new\nline".to_vec(),
                status: Status::Added,
                attrs: vec![],
                a: None,
                b: Some(f.clone()),
            },
            Change {
                path: b"old".to_vec(),
                status: Status::Deleted,
                attrs: vec![],
                a: Some(f.clone()),
                b: None,
            },
            Change {
                path: b"x".to_vec(),
                status: Status::TypeChanged,
                attrs: vec![],
                a: Some(f),
                b: Some(meta(EntryKind::Fifo)),
            },
        ]
    }

    fn render(f: impl Fn(&mut dyn Write) -> io::Result<()>) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        out
    }

    #[test]
    fn name_status_quotes_unless_z() {
        let c = sample();
        assert_eq!(
            render(|o| write_name_status(o, &c, false)),
            b"M\tetc/a b\nA\t\"new\\nline\"\nD\told\nT\tx\n"
        );
        assert_eq!(
            render(|o| write_name_status(o, &c, true)),
            b"M\0etc/a b\0A\0new\nline\0D\0old\0T\0x\0"
        );
        assert_eq!(render(|o| write_name_status(o, &[], false)), b"");
    }

    #[test]
    fn stat_lists_attrs_and_summary() {
        let c = sample();
        let got = String::from_utf8(render(|o| write_stat(o, &c))).unwrap();
        assert_eq!(
            got,
            " etc/a b | mode,mtime\n \"new\\nline\" | added\n old | deleted\n x | type changed\n \
             4 paths changed, 1 added, 1 modified, 1 deleted, 1 type changed\n"
        );
        let empty = String::from_utf8(render(|o| write_stat(o, &[]))).unwrap();
        assert_eq!(
            empty,
            " 0 paths changed, 0 added, 0 modified, 0 deleted, 0 type changed\n"
        );
    }

    #[test]
    fn json_has_version_metadata_and_byte_paths() {
        let mut m = meta(EntryKind::Symlink);
        m.mode = 0o777;
        m.link_target = Some(b"t\xff".to_vec());
        m.xattrs = vec![(b"user.k".to_vec(), vec![0xc3])];
        m.hard_links = vec![b"h".to_vec()];
        let mut dev = meta(EntryKind::CharDevice);
        dev.dev_major = 1;
        dev.dev_minor = 3;
        let c = vec![Change {
            path: b"p\xfe".to_vec(),
            status: Status::TypeChanged,
            attrs: vec![],
            a: Some(m),
            b: Some(dev),
        }];
        let got = String::from_utf8(render(|o| write_json(o, &c))).unwrap();
        assert_eq!(
            got,
            concat!(
                r#"{"formatVersion":1,"changes":[{"path":{"bytes":[112,254]},"status":"T","attrs":[],"#,
                r#""a":{"type":"symlink","mode":"0777","uid":0,"gid":0,"mtime":{"sec":7,"nsec":9},"size":0,"#,
                r#""linkTarget":{"bytes":[116,255]},"xattrs":[{"name":"user.k","value":{"bytes":[195]}}],"hardLinks":["h"]},"#,
                r#""b":{"type":"char","mode":"0644","uid":0,"gid":0,"mtime":{"sec":7,"nsec":9},"size":0,"#,
                r#""device":{"major":1,"minor":3},"xattrs":[],"hardLinks":[]}}]}"#,
                "\n"
            )
        );
    }

    #[test]
    fn json_of_sample_is_stable() {
        let c = sample();
        let got = String::from_utf8(render(|o| write_json(o, &c[..2]))).unwrap();
        let f = r#"{"type":"regular","mode":"0644","uid":0,"gid":0,"mtime":{"sec":7,"nsec":9},"size":0,"xattrs":[],"hardLinks":[]}"#;
        let f755 = f.replace("0644", "0755");
        assert_eq!(
            got,
            format!(
                "{{\"formatVersion\":1,\"changes\":[\
                 {{\"path\":\"etc/a b\",\"status\":\"M\",\"attrs\":[\"mode\",\"mtime\"],\"a\":{f},\"b\":{f755}}},\
                 {{\"path\":\"new\\nline\",\"status\":\"A\",\"attrs\":[],\"a\":null,\"b\":{f}}}]}}\n"
            )
        );
    }
}
