//! The trust store, laid out as rkt's `pkg/keystore` so users' habits and
//! files carry over (spec/appc-discovery.md §4.1):
//!
//! ```text
//! ROOT/trustedkeys/root.d/<fingerprint>             trusted for every name
//! ROOT/trustedkeys/prefix.d/<prefix>/<fingerprint>  trusted for <prefix> and below
//! ```
//!
//! `<fingerprint>` is the lowercase hex fingerprint of the key in the file;
//! `<prefix>` an AC identifier whose `/` are nested directories. An empty
//! file masks that fingerprint. Several roots are searched; the caller
//! passes them in precedence order (the user's config dir before
//! `/etc/acido`): this crate reads no environment.
//!
//! Unlike rkt, prefixes match whole `/` segments: a key for
//! `example.com/foo` does not cover `example.com/foobar` (§4.2's bug), and
//! one bad file is reported without disabling the other keys (rkt#427).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::manifest::AcIdentifier;

use super::key::{KeyError, PublicKey};

/// What a key is trusted for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every image name (`root.d`).
    Root,
    /// Names equal to this prefix or below it, segment by segment.
    Prefix(AcIdentifier),
}

impl Scope {
    /// Parses a `--prefix` value: an AC identifier, no URL scheme.
    pub fn prefix(text: &str) -> Result<Scope, KeystoreError> {
        if text.contains("://") {
            return Err(KeystoreError::PrefixScheme {
                prefix: text.to_owned(),
            });
        }
        let id: AcIdentifier =
            text.parse()
                .map_err(|e: crate::manifest::ValueError| KeystoreError::BadPrefix {
                    prefix: text.to_owned(),
                    reason: e.to_string(),
                })?;
        // The spec's strict grammar has no empty or `..` segments, so a
        // prefix is always a path below `prefix.d`.
        if !id.is_spec_valid() {
            return Err(KeystoreError::BadPrefix {
                prefix: text.to_owned(),
                reason: "separators must stand between letters or digits".to_owned(),
            });
        }
        Ok(Scope::Prefix(id))
    }

    /// The directory of this scope under a root.
    pub fn dir(&self, root: &Path) -> PathBuf {
        match self {
            Scope::Root => root.join("trustedkeys/root.d"),
            Scope::Prefix(p) => root.join("trustedkeys/prefix.d").join(p.as_str()),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Root => f.write_str("root"),
            Scope::Prefix(p) => write!(f, "prefix {p}"),
        }
    }
}

/// Errors of the trust store.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// A prefix given with `https://` or similar.
    #[error("prefix {prefix:?} must not contain a URL scheme: give the image name prefix, e.g. example.com/app")]
    PrefixScheme {
        /// The prefix as given.
        prefix: String,
    },
    /// A prefix that is not an AC identifier.
    #[error("prefix {prefix:?} is not an image name prefix: {reason}")]
    BadPrefix {
        /// The prefix as given.
        prefix: String,
        /// Why it is not an AC identifier.
        reason: String,
    },
    /// A fingerprint argument that is not 40 or 64 hex digits.
    #[error("{fingerprint:?} is not a key fingerprint (40 or 64 hex digits)")]
    BadFingerprint {
        /// The text given.
        fingerprint: String,
    },
    /// A store file whose name is not a lowercase hex fingerprint.
    #[error("{}: not named after a key fingerprint (40 or 64 lowercase hex digits); ignored", path.display())]
    StrayFile {
        /// The file.
        path: PathBuf,
    },
    /// A store file that does not hold a key.
    #[error("{}: {source}; ignored", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why the key could not be read.
        source: KeyError,
    },
    /// A store file holding another key than its name says.
    #[error("{}: holds key {found}, not the key its name says; ignored", path.display())]
    FingerprintMismatch {
        /// The file.
        path: PathBuf,
        /// The fingerprint of the key inside.
        found: String,
    },
    /// Removing a fingerprint found nowhere.
    #[error("no key with fingerprint {fingerprint} in {}", root.display())]
    NotFound {
        /// The fingerprint.
        fingerprint: String,
        /// The root searched.
        root: PathBuf,
    },
    /// A file system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether `name` is a lowercase hex fingerprint (v4: 40 digits, v6: 64).
pub fn is_fingerprint(name: &str) -> bool {
    (name.len() == 40 || name.len() == 64)
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Normalises a fingerprint given by a user: spaces dropped, lowercased.
pub fn parse_fingerprint(text: &str) -> Result<String, KeystoreError> {
    let fp: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if is_fingerprint(&fp) {
        Ok(fp)
    } else {
        Err(KeystoreError::BadFingerprint {
            fingerprint: text.to_owned(),
        })
    }
}

/// A key the keyring trusts, with where it came from.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The certificate.
    pub key: PublicKey,
    /// Its file.
    pub path: PathBuf,
    /// What it is trusted for.
    pub scope: Scope,
}

/// The keys trusted for one name, and the store files that could not be
/// used (reported, not fatal).
#[derive(Debug, Default)]
pub struct Keyring {
    /// Trusted keys by fingerprint.
    pub keys: BTreeMap<String, TrustedKey>,
    /// Files skipped: stray names, unreadable keys, mismatched names.
    pub problems: Vec<KeystoreError>,
}

/// The state of one file in the store.
#[derive(Debug)]
pub enum StoredKeyState {
    /// A usable key.
    Key(Box<PublicKey>),
    /// An empty file: the fingerprint is masked (distrusted) here.
    Masked,
    /// A file that cannot be used, and why.
    Bad(KeystoreError),
}

/// One file of the store, for `trust --list`.
#[derive(Debug)]
pub struct StoredKey {
    /// The root it is under.
    pub root: PathBuf,
    /// What it is trusted for.
    pub scope: Scope,
    /// The file name (the fingerprint, when well named).
    pub fingerprint: String,
    /// The file.
    pub path: PathBuf,
    /// What the file holds.
    pub state: StoredKeyState,
}

/// The trust store over several roots, first = highest precedence.
#[derive(Debug, Clone)]
pub struct Keystore {
    roots: Vec<PathBuf>,
}

impl Keystore {
    /// A store over `roots` in precedence order (user's before system's).
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Keystore { roots }
    }

    /// The roots, in precedence order.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The keys trusted for `name`: root keys, then the keys of each
    /// prefix level from the host down to `name` itself, lower-precedence
    /// roots before higher ones at each level, so an empty (mask) file in
    /// the user's root hides a system key and a deeper level can re-add
    /// one (§4.2).
    pub fn keyring(&self, name: &str) -> Result<Keyring, KeystoreError> {
        let mut ring = Keyring::default();
        let mut levels = vec![Scope::Root];
        let mut prefix = String::new();
        for segment in name.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(segment);
            // A name that is not an AC identifier has no prefix levels;
            // root keys still apply.
            if let Ok(Scope::Prefix(id)) = Scope::prefix(&prefix) {
                levels.push(Scope::Prefix(id));
            }
        }
        for scope in levels {
            for root in self.roots.iter().rev() {
                for (fingerprint, path) in key_files(&scope.dir(root), &mut ring.problems)? {
                    match read_key(&path, &fingerprint) {
                        Ok(None) => {
                            ring.keys.remove(&fingerprint);
                        }
                        Ok(Some(key)) => {
                            let scope = scope.clone();
                            ring.keys
                                .insert(fingerprint, TrustedKey { key, path, scope });
                        }
                        Err(problem) => ring.problems.push(problem),
                    }
                }
            }
        }
        Ok(ring)
    }

    /// Every file in every root: root keys first, then prefixes in order.
    pub fn list(&self) -> Result<Vec<StoredKey>, KeystoreError> {
        let mut out = Vec::new();
        for root in &self.roots {
            let mut scopes = vec![Scope::Root];
            prefix_dirs(&root.join("trustedkeys/prefix.d"), "", &mut scopes)?;
            for scope in scopes {
                let mut problems = Vec::new();
                for (fingerprint, path) in key_files(&scope.dir(root), &mut problems)? {
                    let state = match read_key(&path, &fingerprint) {
                        Ok(Some(key)) => StoredKeyState::Key(Box::new(key)),
                        Ok(None) => StoredKeyState::Masked,
                        Err(e) => StoredKeyState::Bad(e),
                    };
                    out.push(StoredKey {
                        root: root.clone(),
                        scope: scope.clone(),
                        fingerprint,
                        path,
                        state,
                    });
                }
                for problem in problems {
                    if let KeystoreError::StrayFile { path } = &problem {
                        out.push(StoredKey {
                            root: root.clone(),
                            scope: scope.clone(),
                            fingerprint: file_name(path),
                            path: path.clone(),
                            state: StoredKeyState::Bad(problem),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Stores `key` under `root` for `scope`, armoured, in a file named by its
/// fingerprint: written to a temp file beside it, synced, renamed into
/// place, so a reader never sees half a key. An existing file for the same
/// key is replaced (rkt does the same). Directories 0755, files 0644.
pub fn add(root: &Path, scope: &Scope, key: &PublicKey) -> Result<PathBuf, KeystoreError> {
    let dir = scope.dir(root);
    create_dirs(&dir)?;
    let armored = key.to_armored().map_err(|source| KeystoreError::BadKey {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(key.fingerprint());
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(&dir)
        .map_err(io_err(&dir))?;
    temp.write_all(&armored).map_err(io_err(temp.path()))?;
    temp.as_file().sync_all().map_err(io_err(&path))?;
    temp.persist(&path).map_err(|e| KeystoreError::Io {
        path: path.clone(),
        source: e.error,
    })?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(&dir))?;
    Ok(path)
}

/// Removes every file named `fingerprint` under `root` (root key, every
/// prefix, masks included); returns the files removed.
pub fn remove(root: &Path, fingerprint: &str) -> Result<Vec<PathBuf>, KeystoreError> {
    let fingerprint = parse_fingerprint(fingerprint)?;
    let mut scopes = vec![Scope::Root];
    prefix_dirs(&root.join("trustedkeys/prefix.d"), "", &mut scopes)?;
    let mut removed = Vec::new();
    for scope in scopes {
        let path = scope.dir(root).join(&fingerprint);
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
    }
    if removed.is_empty() {
        return Err(KeystoreError::NotFound {
            fingerprint,
            root: root.to_owned(),
        });
    }
    Ok(removed)
}

fn create_dirs(dir: &Path) -> Result<(), KeystoreError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io_err(dir))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The key files directly in `dir` (sorted by name), as (fingerprint,
/// path); a missing dir has none. Subdirectories are skipped (in
/// `prefix.d` they are deeper levels); temp files of an interrupted `add`
/// are skipped; other badly named files are reported in `problems`.
fn key_files(
    dir: &Path,
    problems: &mut Vec<KeystoreError>,
) -> Result<Vec<(String, PathBuf)>, KeystoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(io_err(&path))?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") {
            continue;
        }
        if is_fingerprint(&name) {
            files.push((name, path));
        } else {
            problems.push(KeystoreError::StrayFile { path });
        }
    }
    files.sort();
    Ok(files)
}

/// The prefixes that have a directory under `prefix_d`, depth first in
/// name order (every level, so `example.com` and `example.com/app`).
fn prefix_dirs(dir: &Path, prefix: &str, out: &mut Vec<Scope>) -> Result<(), KeystoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if entry.file_type().map_err(io_err(&entry.path()))?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    for name in names {
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        // A directory that is not a valid prefix cannot be matched by any
        // name; it is not listed either.
        if let Ok(scope) = Scope::prefix(&full) {
            out.push(scope);
        }
        prefix_dirs(&dir.join(&name), &full, out)?;
    }
    Ok(())
}

/// Reads a store file: `None` for an empty (mask) file, the key when it
/// parses and its fingerprint is the file's name.
fn read_key(path: &Path, fingerprint: &str) -> Result<Option<PublicKey>, KeystoreError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let key = PublicKey::parse_one(&bytes).map_err(|source| KeystoreError::BadKey {
        path: path.to_owned(),
        source,
    })?;
    if key.fingerprint() != fingerprint {
        return Err(KeystoreError::FingerprintMismatch {
            path: path.to_owned(),
            found: key.fingerprint(),
        });
    }
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ed25519 public key made by gpg 2.2.40:
    /// `gpg --quick-gen-key 'Test Key <test@example.com>' ed25519 sign never`
    /// then `gpg --armor --export test@example.com`.
    const KEY: &[u8] = include_bytes!("testdata/ed25519.asc");
    const FP: &str = "cb7894d35c98efb66a986dc3c7643d9891008227";

    fn key() -> PublicKey {
        PublicKey::parse_one(KEY).unwrap()
    }

    fn prefix(p: &str) -> Scope {
        Scope::prefix(p).unwrap()
    }

    fn trusted(store: &Keystore, name: &str) -> Vec<String> {
        store.keyring(name).unwrap().keys.into_keys().collect()
    }

    #[test]
    fn the_fixture_key_has_the_expected_fingerprint() {
        assert_eq!(key().fingerprint(), FP);
        assert_eq!(key().user_ids(), ["Test Key <test@example.com>"]);
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let dir = tempfile::tempdir().unwrap();
        let store = Keystore::new(vec![dir.path().to_owned()]);
        add(dir.path(), &prefix("example.com/foo"), &key()).unwrap();
        assert_eq!(trusted(&store, "example.com/foo"), [FP]);
        assert_eq!(trusted(&store, "example.com/foo/bar"), [FP]);
        assert!(trusted(&store, "example.com/foobar").is_empty());
        assert!(trusted(&store, "example.com/fo").is_empty());
        assert!(trusted(&store, "example.com").is_empty());
        assert!(trusted(&store, "other.com/foo").is_empty());
    }

    #[test]
    fn root_keys_cover_every_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Keystore::new(vec![dir.path().to_owned()]);
        let path = add(dir.path(), &Scope::Root, &key()).unwrap();
        assert_eq!(path, dir.path().join("trustedkeys/root.d").join(FP));
        assert_eq!(trusted(&store, "anything.org/x"), [FP]);
    }

    #[test]
    fn add_writes_an_armoured_file_named_by_fingerprint_and_remove_deletes_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = add(dir.path(), &prefix("example.com"), &key()).unwrap();
        assert_eq!(
            path,
            dir.path().join("trustedkeys/prefix.d/example.com").join(FP)
        );
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert!(fs::read(&path)
            .unwrap()
            .starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        // Adding again replaces the file; no temp files are left behind.
        add(dir.path(), &prefix("example.com"), &key()).unwrap();
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FP]);
        assert_eq!(
            remove(dir.path(), &FP.to_ascii_uppercase()).unwrap(),
            [path]
        );
        assert!(matches!(
            remove(dir.path(), FP),
            Err(KeystoreError::NotFound { .. })
        ));
    }

    #[test]
    fn a_user_mask_hides_a_system_key_at_its_level() {
        let user = tempfile::tempdir().unwrap();
        let system = tempfile::tempdir().unwrap();
        let store = Keystore::new(vec![user.path().to_owned(), system.path().to_owned()]);
        add(system.path(), &prefix("example.com"), &key()).unwrap();
        assert_eq!(trusted(&store, "example.com/app"), [FP]);
        let mask = prefix("example.com").dir(user.path());
        fs::create_dir_all(&mask).unwrap();
        fs::write(mask.join(FP), "").unwrap();
        assert!(trusted(&store, "example.com/app").is_empty());
        // A deeper level may trust it again.
        add(system.path(), &prefix("example.com/app"), &key()).unwrap();
        assert_eq!(trusted(&store, "example.com/app"), [FP]);
        let listed = store.list().unwrap();
        assert!(matches!(listed[0].state, StoredKeyState::Masked));
    }

    #[test]
    fn bad_files_are_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Keystore::new(vec![dir.path().to_owned()]);
        let root_d = Scope::Root.dir(dir.path());
        fs::create_dir_all(&root_d).unwrap();
        fs::write(root_d.join("README"), "notes").unwrap();
        fs::write(root_d.join("0".repeat(40)), KEY).unwrap();
        fs::write(root_d.join("1".repeat(40)), "garbage").unwrap();
        add(dir.path(), &prefix("example.com"), &key()).unwrap();
        let ring = store.keyring("example.com").unwrap();
        assert_eq!(ring.keys.into_keys().collect::<Vec<_>>(), [FP]);
        assert_eq!(ring.problems.len(), 3, "{:?}", ring.problems);
    }

    #[test]
    fn prefixes_are_names_not_urls_or_paths() {
        for bad in [
            "https://example.com",
            "example.com/../etc",
            "Example.com",
            "example.com//app",
            "",
            "/etc",
        ] {
            assert!(Scope::prefix(bad).is_err(), "{bad}");
        }
        assert!(Scope::prefix("example.com/app-1.0_x~y").is_ok());
    }

    #[test]
    fn fingerprints_are_normalised() {
        assert_eq!(
            parse_fingerprint("CB78 94D3 5C98 EFB6 6A98  6DC3 C764 3D98 9100 8227").unwrap(),
            FP
        );
        assert!(parse_fingerprint("cb7894").is_err());
    }
}
