//! `fsck`: verify the whole store like `git fsck`: re-hash every blob,
//! check each has a matching index (with the blob's fast digest) and a
//! record consistent with its manifest, check every cached tree against
//! its seal and its images, and find orphans, leftover temps and unknown
//! files. With repair, rebuild what is derivable (indexes get the fast
//! digest an older acido did not record) and set the damaged aside.

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use acido_plumbing::id::ImageId;
use acido_plumbing::json_output::{Bytes, Document};
use acido_plumbing::render::{self, TreeState};
use acido_plumbing::store::{
    BlobState, FileKind, IndexState, OciLayerState, RecordState, Store, StoreError, TempSweep,
};

/// What is wrong. The names are the first column of `fsck`'s output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The store has content but no `version` file.
    MissingVersion,
    /// A blob no longer hashes to its id.
    HashMismatch,
    /// A blob path holds a symlink, fifo, directory or device.
    NotRegular,
    /// A blob hashes right but cannot be read or scanned as an ACI.
    Unreadable,
    /// A blob's manifest does not parse (so its record cannot be checked).
    BadManifest,
    /// An intact blob has no index.
    MissingIndex,
    /// An index is not a regular file, does not decode, or differs from
    /// the blob.
    BadIndex,
    /// An intact blob has no record.
    MissingRecord,
    /// A record is unreadable or disagrees with the blob's manifest.
    BadRecord,
    /// An index without a blob.
    OrphanIndex,
    /// A record without a blob.
    OrphanRecord,
    /// An unlocked file in `tmp/`: the leftover of an interrupted write.
    StaleTemp,
    /// A file the layout does not name.
    Stray,
    /// An index records a fast digest that is not its intact blob's.
    BadDigest,
    /// A cached tree changed since it was sealed, or its entry is damaged.
    BadTree,
    /// A cached tree holds an image that is no longer stored.
    OrphanTree,
    /// A layer cache entry whose blob is not what its record says, or
    /// whose record is missing or damaged.
    BadOciLayer,
    /// A layer cache entry holds an image that is no longer stored.
    OrphanOciLayer,
    /// A step layer changed since it was sealed, or its directory is
    /// damaged.
    BadLayer,
    /// A step layer whose cache entry is no longer stored.
    OrphanLayer,
}

impl ProblemKind {
    /// The name printed for it.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::MissingVersion => "missing-version",
            ProblemKind::HashMismatch => "hash-mismatch",
            ProblemKind::NotRegular => "not-regular",
            ProblemKind::Unreadable => "unreadable",
            ProblemKind::BadManifest => "bad-manifest",
            ProblemKind::MissingIndex => "missing-index",
            ProblemKind::BadIndex => "bad-index",
            ProblemKind::MissingRecord => "missing-record",
            ProblemKind::BadRecord => "bad-record",
            ProblemKind::OrphanIndex => "orphan-index",
            ProblemKind::OrphanRecord => "orphan-record",
            ProblemKind::StaleTemp => "stale-temp",
            ProblemKind::Stray => "stray",
            ProblemKind::BadDigest => "bad-digest",
            ProblemKind::BadTree => "bad-tree",
            ProblemKind::OrphanTree => "orphan-tree",
            ProblemKind::BadOciLayer => "bad-oci-layer",
            ProblemKind::OrphanOciLayer => "orphan-oci-layer",
            ProblemKind::BadLayer => "bad-layer",
            ProblemKind::OrphanLayer => "orphan-layer",
        }
    }
}

/// What a problem is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A stored image.
    Image(ImageId),
    /// A path relative to the store root.
    Path(PathBuf),
}

/// What `--repair` did about a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Fixed, with what was done.
    Done(String),
    /// Not derivable, or the attempt failed, with why.
    NotDone(String),
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// What it is about.
    pub subject: Subject,
    /// Details for people.
    pub detail: String,
    /// With repair: what was done.
    pub repair: Option<Repair>,
}

/// What `fsck` found (and with repair, did).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Blobs re-hashed.
    pub blobs_checked: usize,
    /// Intact blobs whose index has no fast digest (written before
    /// issue 12): not a problem, their renders check SHA-512 instead.
    /// Without repair they are only counted.
    pub without_fast_digest: usize,
    /// With repair: indexes given their blob's fast digest.
    pub fast_digests_added: usize,
    /// Cached trees checked against their seals.
    pub trees_checked: usize,
    /// Layer cache entries re-hashed.
    pub oci_layers_checked: usize,
    /// Step layers whose seal was checked.
    pub layers_checked: usize,
    /// Every problem, in the order found: store, blobs by id, orphans,
    /// temps, strays.
    pub problems: Vec<Problem>,
}

impl FsckReport {
    /// No problem found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Problems left as they were (all of them without repair).
    pub fn unrepaired(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| !matches!(p.repair, Some(Repair::Done(_))))
            .count()
    }
}

/// Collects problems and, with repair, fixes them as they are found.
struct Checker<'a> {
    store: &'a Store,
    repair: bool,
    report: FsckReport,
}

impl Checker<'_> {
    /// Records a problem; with repair, runs `fix`, whose `Ok` text says
    /// what was done (`None`: nothing can be done).
    /// Reports the files in the cache directory `dir` (`trees/`,
    /// `layers/`, `oci-layers/`) that its layout does not name; the repair
    /// moves each to `quarantine/`, as for a stray at the store's root.
    fn quarantine_strays(&mut self, strays: &[PathBuf], dir: &str) {
        let store = self.store;
        for stray in strays {
            let fix = || {
                let moved = store.quarantine_path(stray)?;
                Ok(format!("moved to {}", relative(store, &moved).display()))
            };
            self.problem(
                ProblemKind::Stray,
                Subject::Path(relative(store, stray)),
                format!("unexpected file in {dir}"),
                Some(&fix),
            );
        }
    }

    /// Reports the `.acido-render-*` temps of `trees/` or `layers/` that
    /// no live writer holds (`in_use`) as stale; the repair is `sweep`,
    /// which removes every such temp of the directory.
    fn render_temps(
        &mut self,
        temps: &[PathBuf],
        in_use: impl Fn(&Path) -> Result<bool, StoreError>,
        sweep: impl Fn(),
        detail: &str,
    ) {
        let store = self.store;
        for temp in temps {
            match in_use(temp) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    self.problem(
                        ProblemKind::StaleTemp,
                        Subject::Path(relative(store, temp)),
                        e.to_string(),
                        None,
                    );
                    continue;
                }
            }
            let repair = || -> Result<String, StoreError> {
                sweep();
                Ok(if fs_gone(temp) {
                    "removed"
                } else {
                    "left: could not be removed"
                }
                .to_owned())
            };
            self.problem(
                ProblemKind::StaleTemp,
                Subject::Path(relative(store, temp)),
                detail.to_owned(),
                Some(&repair),
            );
        }
    }

    fn problem(
        &mut self,
        kind: ProblemKind,
        subject: Subject,
        detail: String,
        fix: Option<&dyn Fn() -> Result<String, StoreError>>,
    ) {
        let repair = self.repair.then(|| match fix {
            Some(fix) => match fix() {
                Ok(done) => Repair::Done(done),
                Err(e) => Repair::NotDone(format!("repair failed: {e}")),
            },
            None => Repair::NotDone("not derivable; left as is".to_owned()),
        });
        self.report.problems.push(Problem {
            kind,
            subject,
            detail,
            repair,
        });
    }

    fn check_blob(&mut self, id: ImageId, kind: FileKind) {
        let store = self.store;
        let subject = || Subject::Image(id);
        let quarantine = || quarantine(store, &id);
        if kind != FileKind::Regular {
            let detail = format!("blob is a {kind}, not a regular file");
            self.problem(
                ProblemKind::NotRegular,
                subject(),
                detail,
                Some(&quarantine),
            );
            return;
        }
        self.report.blobs_checked += 1;
        let fast_digest = match store.verify_blob(&id) {
            Ok(BlobState::Intact { fast_digest, .. }) => fast_digest,
            // Removed since the listing (by rm): nothing to check.
            Ok(BlobState::Missing) => return,
            Ok(BlobState::NotRegular { kind }) => {
                let detail = format!("blob is a {kind}, not a regular file");
                self.problem(
                    ProblemKind::NotRegular,
                    subject(),
                    detail,
                    Some(&quarantine),
                );
                return;
            }
            Ok(BlobState::HashMismatch { found, .. }) => {
                let detail = format!("blob data hashes to {found}");
                self.problem(
                    ProblemKind::HashMismatch,
                    subject(),
                    detail,
                    Some(&quarantine),
                );
                return;
            }
            Err(e) => {
                self.problem(ProblemKind::Unreadable, subject(), e.to_string(), None);
                return;
            }
        };
        let fresh = match store.scan_image(&id) {
            Ok(fresh) => fresh,
            Err(e) => {
                self.problem(ProblemKind::Unreadable, subject(), e.to_string(), None);
                return;
            }
        };
        let rebuild_index = || {
            store.repair_index(&fresh, fast_digest)?;
            Ok("index rebuilt".to_owned())
        };
        let index_problem = match store.check_index(&fresh, fast_digest) {
            Ok(IndexState::Current) => None,
            Ok(IndexState::NoFastDigest) => {
                self.report.without_fast_digest += 1;
                if self.repair {
                    match store.repair_index(&fresh, fast_digest) {
                        Ok(()) => self.report.fast_digests_added += 1,
                        Err(e) => self.problem(
                            ProblemKind::BadIndex,
                            subject(),
                            format!("adding the fast digest: {e}"),
                            None,
                        ),
                    }
                }
                None
            }
            Ok(IndexState::WrongFastDigest { recorded }) => Some((
                ProblemKind::BadDigest,
                format!("index records {recorded}, the blob digests to {fast_digest}"),
            )),
            Ok(IndexState::Missing) => Some((ProblemKind::MissingIndex, "no index".to_owned())),
            Ok(IndexState::NotRegular { kind }) => Some((
                ProblemKind::BadIndex,
                format!("index is a {kind}, not a regular file"),
            )),
            Ok(IndexState::Unreadable { reason }) => {
                Some((ProblemKind::BadIndex, format!("index unreadable: {reason}")))
            }
            Ok(IndexState::Stale) => Some((
                ProblemKind::BadIndex,
                "index differs from the blob's entries".to_owned(),
            )),
            Err(e) => Some((ProblemKind::BadIndex, e.to_string())),
        };
        if let Some((kind, detail)) = index_problem {
            self.problem(kind, subject(), detail, Some(&rebuild_index));
        }
        let rebuild_record = || {
            store.repair_record(&id)?;
            Ok("record rebuilt from the manifest".to_owned())
        };
        let record_problem = match store.check_record(&fresh) {
            Ok(RecordState::Consistent) => None,
            Ok(RecordState::Missing) => Some((ProblemKind::MissingRecord, "no record".to_owned())),
            Ok(RecordState::Corrupt { reason }) => Some((
                ProblemKind::BadRecord,
                format!("record unreadable: {reason}"),
            )),
            Ok(RecordState::Differs { field }) => Some((
                ProblemKind::BadRecord,
                format!("record {field} differs from the blob"),
            )),
            Err(e @ StoreError::Manifest { .. }) => {
                self.problem(ProblemKind::BadManifest, subject(), e.to_string(), None);
                None
            }
            Err(e) => Some((ProblemKind::BadRecord, e.to_string())),
        };
        if let Some((kind, detail)) = record_problem {
            self.problem(kind, subject(), detail, Some(&rebuild_record));
        }
    }
}

/// Writes the report as `fsck --format json`, through the shared writer
/// (`json_output::Document`), one line:
///
/// ```text
/// {"formatVersion":1,"repair":false,"blobsChecked":3,"problems":[PROBLEM...],"unrepaired":0}
/// PROBLEM = {"kind":KIND,("image":"sha512-..."|"path":BYTES),"detail":"...",
///            "repair":null|{"done":true|false,"detail":"..."}}
/// ```
///
/// `repair` says whether `--repair` was given; `KIND` is the first column
/// of the text output (`hash-mismatch`, `stray`, ...); a problem names
/// either a stored `image` or a `path` relative to the store; its `repair`
/// is `null` without `--repair`, else what was done (`done`) or why not.
/// `unrepaired` counts the problems left as they were.
pub fn write_json(out: &mut dyn Write, report: &FsckReport, repair: bool) -> io::Result<()> {
    let mut doc = Document::begin(out)?;
    doc.field("repair", &repair)?;
    doc.field("blobsChecked", &report.blobs_checked)?;
    doc.list("problems", report.problems.iter().map(JsonProblem::from))?;
    doc.field("unrepaired", &report.unrepaired())?;
    doc.finish()?;
    Ok(())
}

#[derive(serde::Serialize)]
struct JsonProblem<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<Bytes<'a>>,
    detail: &'a str,
    repair: Option<JsonRepair<'a>>,
}

#[derive(serde::Serialize)]
struct JsonRepair<'a> {
    done: bool,
    detail: &'a str,
}

impl<'a> From<&'a Problem> for JsonProblem<'a> {
    fn from(p: &'a Problem) -> Self {
        let (image, path) = match &p.subject {
            Subject::Image(id) => (Some(id.to_string()), None),
            Subject::Path(path) => (None, Some(Bytes(path.as_os_str().as_bytes()))),
        };
        JsonProblem {
            kind: p.kind.name(),
            image,
            path,
            detail: &p.detail,
            repair: p.repair.as_ref().map(|r| match r {
                Repair::Done(what) => JsonRepair {
                    done: true,
                    detail: what,
                },
                Repair::NotDone(why) => JsonRepair {
                    done: false,
                    detail: why,
                },
            }),
        }
    }
}

/// Checks the store; with `repair`, fixes what it can as it goes: a
/// missing version file is written, damaged or non-regular blobs move to
/// `quarantine/` (their index and record are removed), indexes and records
/// are rebuilt from intact blobs, orphans are deleted, stale temps swept
/// and strays moved to `quarantine/`. A missing store is clean. Only an
/// unknown layout version or an unlistable directory fails the whole check.
pub fn fsck(store: &Store, repair: bool) -> Result<FsckReport, StoreError> {
    let inv = store.inventory()?;
    let mut checker = Checker {
        store,
        repair,
        report: FsckReport::default(),
    };
    if !inv.has_version && !inv.is_empty() {
        let fix = || {
            store.ensure_layout()?;
            Ok("version file written".to_owned())
        };
        checker.problem(
            ProblemKind::MissingVersion,
            Subject::Path(PathBuf::from("version")),
            "the store has content but no version file".to_owned(),
            Some(&fix),
        );
    }
    let mut blobs: Vec<_> = inv.blobs.iter().collect();
    blobs.sort_by_key(|b| b.id);
    for blob in blobs {
        checker.check_blob(blob.id, blob.file.kind);
    }
    let has_blob = |id| inv.blobs.iter().any(|b| b.id == id);
    for index in inv.indexes.iter().filter(|f| !has_blob(f.id)) {
        let fix = || {
            Ok(match store.remove_orphan_index(&index.id)? {
                Some(_) => "removed".to_owned(),
                None => "left: its blob is back".to_owned(),
            })
        };
        let path = relative(store, &index.file.path);
        checker.problem(
            ProblemKind::OrphanIndex,
            Subject::Path(path),
            format!("index of {} without a blob", index.id.abbrev(12)),
            Some(&fix),
        );
    }
    for record in inv.records.iter().filter(|f| !has_blob(f.id)) {
        let fix = || {
            Ok(match store.remove_orphan_record(&record.id)? {
                Some(_) => "removed".to_owned(),
                None => "left: its blob is back".to_owned(),
            })
        };
        let path = relative(store, &record.file.path);
        checker.problem(
            ProblemKind::OrphanRecord,
            Subject::Path(path),
            format!("record of {} without a blob", record.id.abbrev(12)),
            Some(&fix),
        );
    }
    for temp in &inv.temps {
        // A locked temp belongs to a live write: not a problem.
        match store.temp_in_use(&temp.path) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                let path = relative(store, &temp.path);
                checker.problem(
                    ProblemKind::StaleTemp,
                    Subject::Path(path),
                    e.to_string(),
                    None,
                );
                continue;
            }
        }
        if fs_gone(&temp.path) {
            continue;
        }
        let fix = || {
            Ok(match store.sweep_temp(&temp.path)? {
                TempSweep::Removed { .. } | TempSweep::Gone => "removed".to_owned(),
                TempSweep::InUse => "left: a process took it over".to_owned(),
                TempSweep::Directory => "left: a directory".to_owned(),
            })
        };
        let detail = if temp.kind == FileKind::Regular {
            format!("leftover of an interrupted write, {} bytes", temp.size)
        } else {
            format!("leftover {} in tmp/", temp.kind)
        };
        let path = relative(store, &temp.path);
        checker.problem(
            ProblemKind::StaleTemp,
            Subject::Path(path),
            detail,
            Some(&fix),
        );
    }
    for stray in &inv.strays {
        let fix = || {
            let moved = store.quarantine_path(&stray.path)?;
            Ok(format!("moved to {}", relative(store, &moved).display()))
        };
        let path = relative(store, &stray.path);
        checker.problem(
            ProblemKind::Stray,
            Subject::Path(path),
            format!("unexpected {} in the store", stray.kind),
            Some(&fix),
        );
    }
    checker.check_trees();
    checker.check_oci_layers();
    checker.check_layers();
    Ok(checker.report)
}

impl Checker<'_> {
    /// Checks the step layers like the tree cache: every complete layer's
    /// cache entry is stored and its seal holds; damaged layers, leftover
    /// temps and strays in `layers/` are reported. Layers are derivable
    /// (a build without one renders its entry), so repair removes them.
    fn check_layers(&mut self) {
        let store = self.store;
        let inv = match store.layer_inventory() {
            Ok(inv) => inv,
            Err(e) => {
                let path = relative(store, &store.layers_dir());
                self.problem(
                    ProblemKind::BadLayer,
                    Subject::Path(path),
                    e.to_string(),
                    None,
                );
                return;
            }
        };
        let remove = |path: &Path| -> Result<String, StoreError> {
            store.remove_layer_entry(path)?;
            Ok("removed".to_owned())
        };
        for layer in &inv.layers {
            let entry = layer.entry();
            let path = relative(store, entry);
            if !store.contains(layer.id()) {
                let detail = format!(
                    "step layer of {}, which is not stored",
                    layer.id().abbrev(12)
                );
                self.problem(
                    ProblemKind::OrphanLayer,
                    Subject::Path(path),
                    detail,
                    Some(&|| remove(entry)),
                );
                continue;
            }
            self.report.layers_checked += 1;
            let detail = match render::check_layer(layer) {
                Ok(TreeState::Intact) => continue,
                Ok(TreeState::Changed) => {
                    "step layer changed since it was stored (written through?)".to_owned()
                }
                Err(e) => e.to_string(),
            };
            self.problem(
                ProblemKind::BadLayer,
                Subject::Path(path),
                detail,
                Some(&|| remove(entry)),
            );
        }
        for entry in &inv.damaged {
            self.problem(
                ProblemKind::BadLayer,
                Subject::Path(relative(store, entry)),
                "step layer without a readable id file".to_owned(),
                Some(&|| remove(entry)),
            );
        }
        self.render_temps(
            &inv.temps,
            |temp| store.layer_temp_in_use(temp),
            || {
                store.sweep_layer_temps();
            },
            "leftover of a killed build's step layer or of a removal",
        );
        self.quarantine_strays(&inv.strays, "layers/");
    }

    /// Checks the tree cache: every complete entry's images are stored
    /// and its seal holds; damaged entries, leftover temps and strays in
    /// `trees/` are reported. Entries are derivable, so repair removes them.
    fn check_trees(&mut self) {
        let store = self.store;
        let inv = match store.tree_inventory() {
            Ok(inv) => inv,
            Err(e) => {
                let path = relative(store, &store.trees_dir());
                self.problem(
                    ProblemKind::BadTree,
                    Subject::Path(path),
                    e.to_string(),
                    None,
                );
                return;
            }
        };
        let remove = |path: &Path| -> Result<String, StoreError> {
            store.remove_tree_entry(path)?;
            Ok("removed".to_owned())
        };
        for info in &inv.trees {
            let entry = info.tree.entry();
            let path = relative(store, entry);
            let missing: Vec<_> = info
                .tree
                .key()
                .ids()
                .iter()
                .filter(|id| !store.contains(id))
                .collect();
            if let Some(id) = missing.first() {
                let detail = format!(
                    "cached tree of {} holds {}, which is not stored",
                    info.tree.key().ids()[0].abbrev(12),
                    id.abbrev(12)
                );
                self.problem(
                    ProblemKind::OrphanTree,
                    Subject::Path(path),
                    detail,
                    Some(&|| remove(entry)),
                );
                continue;
            }
            self.report.trees_checked += 1;
            match render::check_cached_tree(&info.tree) {
                Ok(TreeState::Intact) => {}
                Ok(TreeState::Changed) => {
                    let detail =
                        "cached tree changed since it was rendered (written through?)".to_owned();
                    self.problem(
                        ProblemKind::BadTree,
                        Subject::Path(path),
                        detail,
                        Some(&|| remove(entry)),
                    );
                }
                Err(e) => {
                    self.problem(
                        ProblemKind::BadTree,
                        Subject::Path(path),
                        e.to_string(),
                        Some(&|| remove(entry)),
                    );
                }
            }
        }
        for entry in &inv.damaged {
            let detail = "cached tree entry without a readable ids file".to_owned();
            self.problem(
                ProblemKind::BadTree,
                Subject::Path(relative(store, entry)),
                detail,
                Some(&|| remove(entry)),
            );
        }
        self.render_temps(
            &inv.temps,
            |temp| store.tree_temp_in_use(temp),
            || {
                store.sweep_tree_temps();
            },
            "leftover of an interrupted tree render or removal",
        );
        self.quarantine_strays(&inv.strays, "trees/");
    }
}

impl Checker<'_> {
    /// Checks the OCI layer cache: every entry's images are stored, its
    /// record reads and its blob hashes to it; strays in `oci-layers/` are
    /// reported. Entries are derivable, so repair removes the bad ones.
    fn check_oci_layers(&mut self) {
        let store = self.store;
        let inv = match store.oci_layer_inventory() {
            Ok(inv) => inv,
            Err(e) => {
                let path = relative(store, &store.oci_layers_dir());
                self.problem(
                    ProblemKind::BadOciLayer,
                    Subject::Path(path),
                    e.to_string(),
                    None,
                );
                return;
            }
        };
        for entry in &inv.entries {
            let path = relative(store, &store.oci_layer_path(&entry.name));
            let remove = || -> Result<String, StoreError> {
                store.remove_oci_layer(entry)?;
                Ok("removed".to_owned())
            };
            let missing = entry.key.as_ref().and_then(|key| {
                key.ids()
                    .into_iter()
                    .find(|id| !id.as_ref().is_some_and(|id| store.contains(id)))
            });
            if let Some(id) = missing {
                let detail = match id {
                    Some(id) => format!(
                        "layer cache entry holds {}, which is not stored",
                        id.abbrev(12)
                    ),
                    None => "layer cache entry names an image id that does not parse".to_owned(),
                };
                self.problem(
                    ProblemKind::OrphanOciLayer,
                    Subject::Path(path),
                    detail,
                    Some(&remove),
                );
                continue;
            }
            self.report.oci_layers_checked += 1;
            match store.check_oci_layer(entry) {
                Ok(OciLayerState::Ok) => {}
                Ok(OciLayerState::Bad(why)) => self.problem(
                    ProblemKind::BadOciLayer,
                    Subject::Path(path),
                    format!("layer cache entry unusable: {why}"),
                    Some(&remove),
                ),
                Err(e) => self.problem(
                    ProblemKind::BadOciLayer,
                    Subject::Path(path),
                    e.to_string(),
                    Some(&remove),
                ),
            }
        }
        self.quarantine_strays(&inv.strays, "oci-layers/");
    }
}

/// Moves a damaged image to `quarantine/`, saying where it went.
fn quarantine(store: &Store, id: &ImageId) -> Result<String, StoreError> {
    Ok(match store.quarantine_image(id)? {
        Some(path) => format!("moved to {}", relative(store, &path).display()),
        None => "already gone".to_owned(),
    })
}

/// `path` relative to the store root, as the output prints it.
fn relative(store: &Store, path: &Path) -> PathBuf {
    path.strip_prefix(store.root())
        .map(Path::to_owned)
        .unwrap_or_else(|_| path.to_owned())
}

/// Whether `path` vanished (its writer finished between listing and probe).
fn fs_gone(path: &Path) -> bool {
    matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}
