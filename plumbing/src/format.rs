//! Encoders for the documented plumbing output formats that are not owned
//! by one operation (`ls-tree`). Each writes to any `io::Write`.

use std::io::{self, Write};

use crate::entry::{Entry, EntryKind, Timestamp};
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
}
