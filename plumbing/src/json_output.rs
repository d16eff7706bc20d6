//! The one writer of acido's machine-readable output (`--format json` of
//! `images`, `ls-tree`, `resolve`, `validate`, `fsck` and `diff-tree`).
//!
//! Every document is one JSON object on one line, ended by a newline:
//!
//! ```text
//! {"formatVersion":1,"<field>":<value>,...,"<list>":[<item>,...],...}
//! ```
//!
//! `formatVersion` comes first, always, so a program can check it before
//! reading on. The commands choose the fields; this module owns what they
//! share: the envelope and its version, how bytes that may not be UTF-8
//! (paths, link targets, xattrs) are written ([`Bytes`]), and how times
//! are written ([`Time`]). Lists are written item by item, so a listing of
//! a large image is never held twice in memory.
//!
//! The compatibility promise (written in each command's man page): within
//! one `formatVersion`, fields keep their names, types and meaning and
//! keep their order; new fields may appear. Anything else bumps the
//! version.

use std::io::{self, Write};

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// The `formatVersion` of every JSON document acido writes.
pub const FORMAT_VERSION: u32 = 1;

/// A JSON document being written: `{"formatVersion":1` is out, fields and
/// lists follow in the order they are added, [`Document::finish`] closes it.
pub struct Document<W: Write> {
    out: W,
}

impl<W: Write> Document<W> {
    /// Starts a document on `out` with its `formatVersion`.
    pub fn begin(mut out: W) -> io::Result<Self> {
        write!(out, "{{\"formatVersion\":{FORMAT_VERSION}")?;
        Ok(Document { out })
    }

    /// Adds `"key":value`.
    pub fn field(&mut self, key: &str, value: &impl Serialize) -> io::Result<()> {
        self.key(key)?;
        serde_json::to_writer(&mut self.out, value).map_err(io::Error::from)
    }

    /// Adds `"key":[...]` with every item of `items`, in order.
    pub fn list<T: Serialize>(
        &mut self,
        key: &str,
        items: impl IntoIterator<Item = T>,
    ) -> io::Result<()> {
        let mut list = self.begin_list(key)?;
        for item in items {
            list.item(&item)?;
        }
        list.end()
    }

    /// Opens `"key":[`: add items to the returned list, then end it, when
    /// the items are made one at a time by the caller.
    pub fn begin_list(&mut self, key: &str) -> io::Result<List<'_, W>> {
        self.key(key)?;
        self.out.write_all(b"[")?;
        Ok(List {
            out: &mut self.out,
            empty: true,
        })
    }

    /// Closes the document with `}` and a newline and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(b"}\n")?;
        Ok(self.out)
    }

    fn key(&mut self, key: &str) -> io::Result<()> {
        self.out.write_all(b",")?;
        serde_json::to_writer(&mut self.out, key).map_err(io::Error::from)?;
        self.out.write_all(b":")
    }
}

/// A list inside a [`Document`], open until [`List::end`]. It borrows the
/// document, so nothing else can be written into it meanwhile.
pub struct List<'a, W: Write> {
    out: &'a mut W,
    empty: bool,
}

impl<W: Write> List<'_, W> {
    /// Adds one item.
    pub fn item(&mut self, value: &impl Serialize) -> io::Result<()> {
        if !self.empty {
            self.out.write_all(b",")?;
        }
        self.empty = false;
        serde_json::to_writer(&mut *self.out, value).map_err(io::Error::from)
    }

    /// Closes the list with `]`.
    pub fn end(self) -> io::Result<()> {
        self.out.write_all(b"]")
    }
}

/// Bytes in JSON: a string when they are valid UTF-8, else
/// `{"bytes":[0-255,...]}`, so that nothing is lost or replaced (paths and
/// xattrs are bytes, DESIGN §7).
#[derive(Debug, Clone, Copy)]
pub struct Bytes<'a>(pub &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut st = s.serialize_struct("Bytes", 1)?;
                st.serialize_field("bytes", self.0)?;
                st.end()
            }
        }
    }
}

/// A time as `{"sec":S,"nsec":N}`: seconds since the epoch and the
/// nanoseconds past them, exact (no float rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Time {
    /// Seconds since the epoch (negative before 1970).
    pub sec: i64,
    /// Nanoseconds, 0 to 999 999 999.
    pub nsec: u32,
}

/// A device number as `{"major":M,"minor":N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Device {
    /// The major number.
    pub major: u32,
    /// The minor number.
    pub minor: u32,
}

/// An extended attribute as `{"name":BYTES,"value":BYTES}`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Xattr<'a> {
    /// Its name (`user.comment`).
    pub name: Bytes<'a>,
    /// Its value, bytes.
    pub value: Bytes<'a>,
}

/// Extended attributes (name, value) as [`Xattr`] objects, in the order given.
pub fn xattrs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<Xattr<'_>> {
    pairs
        .iter()
        .map(|(name, value)| Xattr {
            name: Bytes(name),
            value: Bytes(value),
        })
        .collect()
}

/// A mode's 12 permission and special bits as 4 octal digits (`"0755"`),
/// as people read modes and as `ls-tree` prints them.
pub fn octal_mode(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(build: impl FnOnce(&mut Document<&mut Vec<u8>>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        let mut doc = Document::begin(&mut out).unwrap();
        build(&mut doc).unwrap();
        doc.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn documents_start_with_their_version_and_keep_field_order() {
        let text = written(|doc| {
            doc.field("z", &1)?;
            doc.list("items", ["a", "b"])?;
            doc.list("none", Vec::<u8>::new())?;
            doc.field("a", &"last")
        });
        assert_eq!(
            text,
            "{\"formatVersion\":1,\"z\":1,\"items\":[\"a\",\"b\"],\"none\":[],\"a\":\"last\"}\n"
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["formatVersion"], FORMAT_VERSION);
    }

    #[test]
    fn lists_written_item_by_item_are_valid_json() {
        let text = written(|doc| {
            let mut list = doc.begin_list("n")?;
            for i in 0..3 {
                list.item(&i)?;
            }
            list.end()
        });
        assert_eq!(text, "{\"formatVersion\":1,\"n\":[0,1,2]}\n");
    }

    #[test]
    fn keys_and_strings_are_escaped() {
        let text = written(|doc| doc.field("a\"b", &"tab\there"));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["a\"b"], "tab\there");
    }

    #[test]
    fn bytes_are_text_or_numbers_never_replaced() {
        let text = serde_json::to_string(&[Bytes(b"etc/a b"), Bytes(b"p\xfe")]).unwrap();
        assert_eq!(text, r#"["etc/a b",{"bytes":[112,254]}]"#);
    }

    #[test]
    fn times_and_modes() {
        let t = Time {
            sec: -1,
            nsec: 999_999_999,
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"sec":-1,"nsec":999999999}"#
        );
        assert_eq!(octal_mode(0o100755), "0755");
        assert_eq!(octal_mode(0o4711), "4711");
    }

    proptest::proptest! {
        /// Any bytes come back exactly from what is written for them.
        #[test]
        fn bytes_round_trip(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48)) {
            let text = serde_json::to_string(&Bytes(&bytes)).unwrap();
            let back: Vec<u8> = match serde_json::from_str(&text).unwrap() {
                serde_json::Value::String(s) => s.into_bytes(),
                serde_json::Value::Object(o) => o["bytes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| u8::try_from(n.as_u64().unwrap()).unwrap())
                    .collect(),
                other => panic!("{other}"),
            };
            proptest::prop_assert_eq!(back, bytes);
        }
    }
}
