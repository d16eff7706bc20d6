//! The step cache of Acidofile builds (DESIGN §14, `acido-build(5)` STEP
//! CACHE).
//!
//! A step that changes the tree leaves its result in the store as an
//! ordinary image: the diff of the tree after the step against the tree
//! before it, depending by id on the image of the step before (the first
//! one on the `FROM` image). Its manifest marks it as a cache entry with
//! the label [`KEY_LABEL`], whose value is the step's key. The key chains:
//! each step's key hashes the previous key with what the step does (see
//! [`Key::next`]), so a key names one result of one sequence of steps on
//! one base, and two Acidofiles sharing a prefix share its entries.
//!
//! The built image itself is remembered too, when it is stored: a
//! *pointer* entry, an image with an empty rootfs whose one dependency is
//! the built image, keyed by the last step's key and the final manifest.
//!
//! An entry is only ever found through its record, which the store writes
//! after the blob and index are complete, so a build killed while storing
//! one leaves nothing a later build uses.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use acido_plumbing::id::ImageId;
use acido_plumbing::store::ImageRecord;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The label that marks a stored image as a cache entry; its value is
/// the entry's key in hex.
pub const KEY_LABEL: &str = "acido-cache-key";

/// The name of every cache entry (an AC identifier no real image uses).
pub const ENTRY_NAME: &str = "acido/step-cache";

/// The annotation of a cache entry that says which step made it.
pub const STEP_ANNOTATION: &str = "acido-step";

/// What every key hash starts with; a new cache format changes it, which
/// makes every old entry a miss (and garbage for `gc --cache`).
const DOMAIN: &[u8] = b"acido step cache 1";

/// Whether `record` is a cache entry (a step image or a pointer).
pub fn is_entry(record: &ImageRecord) -> bool {
    record.label(KEY_LABEL).is_some()
}

/// A step's cache key: SHA-256 over the previous key and the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    /// The key of `FROM IMAGE`: the base image's id.
    pub fn from_image(id: &ImageId) -> Key {
        Key::hash(None, &[("from", id.to_string().as_bytes())])
    }

    /// The key of `FROM scratch`.
    pub fn from_scratch() -> Key {
        Key::hash(None, &[("from", b"scratch")])
    }

    /// The key of a step after the one keyed `self`: `parts` are named
    /// byte strings (the instruction, source digests, the environment...).
    pub fn next(&self, parts: &[(&str, &[u8])]) -> Key {
        Key::hash(Some(self), parts)
    }

    fn hash(prev: Option<&Key>, parts: &[(&str, &[u8])]) -> Key {
        let mut h = Framed::new();
        h.bytes(DOMAIN);
        h.bytes(prev.map_or(&[][..], |k| &k.0[..]));
        for (name, value) in parts {
            h.bytes(name.as_bytes());
            h.bytes(value);
        }
        Key(h.finish())
    }

    /// The key in hex, as the label holds it.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A SHA-256 fed with length-prefixed fields, so no two different field
/// sequences hash the same bytes.
struct Framed(Sha256);

impl Framed {
    fn new() -> Self {
        Framed(Sha256::new())
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    fn number(&mut self, n: u64) {
        self.0.update(n.to_le_bytes());
    }

    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// The cache entries of a store, by key. When several entries have one
/// key (a step rerun with `--no-cache` that gave another result), the most
/// recently imported wins.
#[derive(Debug, Default)]
pub struct Entries(HashMap<String, (u128, ImageId)>);

impl Entries {
    /// The entries among `records`.
    pub fn of(records: &[ImageRecord]) -> Entries {
        let mut entries = Entries::default();
        for record in records {
            if let Some(key) = record.label(KEY_LABEL) {
                entries.insert(key.to_owned(), record.import_time_ns, record.id);
            }
        }
        entries
    }

    fn insert(&mut self, key: String, time: u128, id: ImageId) {
        let slot = self.0.entry(key).or_insert((time, id));
        if (time, id) > *slot {
            *slot = (time, id);
        }
    }

    /// The entry stored for `key`.
    pub fn get(&self, key: &Key) -> Option<ImageId> {
        self.0.get(&key.hex()).map(|&(_, id)| id)
    }
}

/// The manifest of a cache entry for `key`, made by `step`, depending on
/// `dependency` (name and id) when it has one.
pub fn entry_manifest(
    ac_version: &str,
    key: &Key,
    step: &str,
    dependency: Option<(&str, &ImageId)>,
) -> Value {
    let mut manifest = json!({
        "acKind": "ImageManifest",
        "acVersion": ac_version,
        "name": ENTRY_NAME,
        "labels": [{"name": KEY_LABEL, "value": key.hex()}],
        "annotations": [{"name": STEP_ANNOTATION, "value": step}],
    });
    if let (Some((name, id)), Value::Object(map)) = (dependency, &mut manifest) {
        map.insert(
            "dependencies".into(),
            json!([{"imageName": name, "imageID": id.to_string()}]),
        );
    }
    manifest
}

/// The digest of `COPY`/`ADD` sources for the key: for each source its
/// name as written, then every object under it (itself first, then its
/// contents in name order, symlinks not followed) with its path below the
/// source, type, permission bits, extended attributes, and its content
/// (regular files), link target (symlinks), device number (devices) or
/// earlier path (further hard links of one file). Not the times or the
/// owner: the step sets those itself.
pub fn digest_sources(sources: &[(&str, &Path)]) -> io::Result<[u8; 32]> {
    let mut h = Framed::new();
    h.number(sources.len() as u64);
    for (name, path) in sources {
        h.bytes(name.as_bytes());
        let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
        let walk = walkdir::WalkDir::new(path)
            .follow_links(false)
            .follow_root_links(false)
            .sort_by_file_name();
        for entry in walk {
            let entry = entry.map_err(|e| {
                e.into_io_error()
                    .unwrap_or_else(|| io::Error::other("file system loop"))
            })?;
            let rel = entry
                .path()
                .strip_prefix(path)
                .map(|p| p.as_os_str().as_bytes().to_vec())
                .unwrap_or_default();
            digest_object(&mut h, entry.path(), &rel, &mut links)?;
        }
    }
    Ok(h.finish())
}

fn digest_object(
    h: &mut Framed,
    path: &Path,
    rel: &[u8],
    links: &mut HashMap<(u64, u64), Vec<u8>>,
) -> io::Result<()> {
    let m = fs::symlink_metadata(path)?;
    let ft = m.file_type();
    h.bytes(rel);
    h.number(u64::from(m.mode() & 0o7777));
    if !ft.is_dir() && m.nlink() > 1 {
        if let Some(first) = links.get(&(m.dev(), m.ino())) {
            h.bytes(b"hardlink");
            h.bytes(first);
            return Ok(());
        }
        links.insert((m.dev(), m.ino()), rel.to_vec());
    }
    if ft.is_dir() {
        h.bytes(b"dir");
    } else if ft.is_file() {
        h.bytes(b"file");
        h.number(m.len());
        let mut file = File::open(path)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut content = Sha256::new();
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            content.update(&buf[..n]);
        }
        h.bytes(&content.finalize());
    } else if ft.is_symlink() {
        h.bytes(b"symlink");
        h.bytes(fs::read_link(path)?.as_os_str().as_bytes());
    } else if ft.is_fifo() {
        h.bytes(b"fifo");
    } else if ft.is_char_device() || ft.is_block_device() {
        h.bytes(if ft.is_char_device() {
            b"char"
        } else {
            b"block"
        });
        h.number(m.rdev());
    } else {
        // Sockets: copy refuses them, with its own message.
        h.bytes(b"socket");
    }
    if ft.is_dir() || ft.is_file() {
        let mut xattrs = Vec::new();
        if let Ok(names) = xattr::list(path) {
            for name in names {
                if let Ok(Some(value)) = xattr::get(path, &name) {
                    xattrs.push((name.as_bytes().to_vec(), value));
                }
            }
        }
        xattrs.sort();
        h.number(xattrs.len() as u64);
        for (name, value) in xattrs {
            h.bytes(&name);
            h.bytes(&value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn digest(dir: &Path) -> [u8; 32] {
        digest_sources(&[("src", dir)]).unwrap()
    }

    #[test]
    fn keys_chain_and_differ_by_every_part() {
        let base = Key::from_scratch();
        let a = base.next(&[("step", b"COPY a /a")]);
        assert_eq!(a, base.next(&[("step", b"COPY a /a")]));
        assert_ne!(a, base.next(&[("step", b"COPY a /b")]));
        assert_ne!(
            a,
            Key::from_image(&ImageId::from_digest([7; 64])).next(&[("step", b"COPY a /a")])
        );
        // Framing: moving bytes between parts changes the key.
        assert_ne!(base.next(&[("a", b"bc")]), base.next(&[("ab", b"c")]));
        assert_eq!(a.hex().len(), 64);
    }

    #[test]
    fn source_digest_ignores_times_and_sees_content_names_modes_links() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), "one").unwrap();
        std::os::unix::fs::symlink("f", src.join("l")).unwrap();
        let first = digest(&src);

        let touch = std::process::Command::new("touch")
            .args(["-h", "-d", "@1"])
            .arg(src.join("f"))
            .arg(src.join("l"))
            .arg(&src)
            .status()
            .unwrap();
        assert!(touch.success());
        assert_eq!(digest(&src), first, "times are not in the digest");

        fs::write(src.join("f"), "two").unwrap();
        let content = digest(&src);
        assert_ne!(content, first);

        fs::set_permissions(src.join("f"), fs::Permissions::from_mode(0o600)).unwrap();
        let mode = digest(&src);
        assert_ne!(mode, content);

        fs::remove_file(src.join("l")).unwrap();
        std::os::unix::fs::symlink("g", src.join("l")).unwrap();
        let target = digest(&src);
        assert_ne!(target, mode);

        fs::rename(src.join("f"), src.join("h")).unwrap();
        assert_ne!(digest(&src), target);
        assert!(digest_sources(&[("nope", &dir.path().join("nope"))]).is_err());
    }

    #[test]
    fn the_newest_entry_of_a_key_wins() {
        let key = Key::from_scratch();
        let record = |id: u8, t: u128| ImageRecord {
            format_version: 1,
            id: ImageId::from_digest([id; 64]),
            name: ENTRY_NAME.into(),
            labels: vec![acido_plumbing::store::RecordLabel {
                name: KEY_LABEL.into(),
                value: key.hex(),
            }],
            import_time_ns: t,
            size: 0,
        };
        let entries = Entries::of(&[record(1, 5), record(2, 9), record(3, 7)]);
        assert_eq!(entries.get(&key), Some(ImageId::from_digest([2; 64])));
        assert!(is_entry(&record(1, 1)));
        assert_eq!(entries.get(&key.next(&[])), None);
    }
}
