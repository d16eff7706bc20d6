use super::*;
use crate::archive;
use crate::archive::tar::tests::{header, push};
use crate::compression::Compression;
use crate::id::FastDigest;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;

/// A valid plain ACI named `name` holding one file with `content`.
fn aci(name: &str, content: &[u8]) -> Vec<u8> {
    let manifest = format!(r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"{name}"}}"#);
    let mut t = Vec::new();
    push(
        &mut t,
        header(b"manifest", b'0', manifest.len() as u64),
        manifest.as_bytes(),
    );
    push(&mut t, header(b"rootfs/", b'5', 0), b"");
    push(
        &mut t,
        header(b"rootfs/file", b'0', content.len() as u64),
        content,
    );
    t.extend_from_slice(&[0u8; 1024]);
    t
}

#[test]
fn derivable_files_are_readable_by_all_like_blobs() {
    let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store.blob_path(&ids[0])), 0o444);
    for path in [
        store.index_path(&ids[0]),
        store.record_path(&ids[0]),
        store.root().join("version"),
    ] {
        assert_eq!(mode(&path), 0o644, "{}", path.display());
    }
}

#[test]
fn the_hook_sees_each_import_step_with_the_state_it_names() {
    use std::sync::Mutex;
    let dir = tempfile::tempdir().unwrap();
    let plain = Store::at(dir.path().join("store"));
    /// A step with the temps, blob and record seen there.
    type Seen = (ImportStep, usize, bool, bool);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let id = archive::hash_stream(io::Cursor::new(aci("example.com/a", b"a")))
        .unwrap()
        .id;
    let log = Arc::clone(&seen);
    let observer = plain.clone();
    let store = plain.clone().with_hook(Arc::new(move |step| {
        // At each step: how many temps exist, whether the blob and the
        // record do.
        let temps = fs::read_dir(observer.tmp_dir()).unwrap().count();
        let blob = observer.blob_path(&id).exists();
        let record = observer.record_path(&id).exists();
        log.lock().unwrap().push((step, temps, blob, record));
    }));
    store
        .import(io::Cursor::new(aci("example.com/a", b"a")), "a")
        .unwrap();
    use ImportStep::*;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (AfterTempCreate, 1, false, false),
            (MidStream, 1, false, false),
            (BeforeLink, 1, false, false),
            (AfterLinkBeforeRecord, 0, true, false),
        ]
    );
    // A re-import links nothing.
    seen.lock().unwrap().clear();
    let again = store
        .import(io::Cursor::new(aci("example.com/a", b"a")), "a")
        .unwrap();
    assert!(!again.newly_stored);
    let steps: Vec<ImportStep> = seen.lock().unwrap().iter().map(|s| s.0).collect();
    assert_eq!(steps, [AfterTempCreate, MidStream, AfterLinkBeforeRecord]);
    // A rejected input stops before the link.
    seen.lock().unwrap().clear();
    assert!(store
        .import(io::Cursor::new(b"garbage".to_vec()), "bad")
        .is_err());
    let steps: Vec<ImportStep> = seen.lock().unwrap().iter().map(|s| s.0).collect();
    assert_eq!(steps, [AfterTempCreate]);
}

fn store_with(images: &[Vec<u8>]) -> (tempfile::TempDir, Store, Vec<ImageId>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::at(dir.path().join("store"));
    let ids = images
        .iter()
        .map(|bytes| {
            store
                .import(io::Cursor::new(bytes.clone()), "test")
                .unwrap()
                .record
                .id
        })
        .collect();
    (dir, store, ids)
}

fn flip_a_bit(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(path).unwrap();
    bytes[600] ^= 1;
    fs::write(path, bytes).unwrap();
}

fn replace_with_fifo(path: &Path) {
    fs::remove_file(path).unwrap();
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

#[test]
fn inventory_lists_a_missing_store_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let inv = Store::at(dir.path().join("nothing")).inventory().unwrap();
    assert!(inv.is_empty());
    assert!(!inv.has_version);
}

#[test]
fn inventory_finds_images_temps_and_strays() {
    let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
    let inv = store.inventory().unwrap();
    assert!(inv.has_version);
    assert_eq!(inv.blobs.len(), 1);
    assert_eq!(inv.blobs[0].id, ids[0]);
    assert_eq!(inv.blobs[0].file.kind, FileKind::Regular);
    assert_eq!(inv.indexes.len(), 1);
    assert_eq!(inv.records.len(), 1);
    assert!(inv.temps.is_empty(), "{:?}", inv.temps);
    assert!(inv.strays.is_empty(), "{:?}", inv.strays);

    // Strays of every shape; a misplaced blob (wrong fan dir) is one too.
    let root = store.root();
    fs::write(root.join("junk"), b"x").unwrap();
    fs::write(root.join("blobs/sha512/zz"), b"x").unwrap();
    let hex = ids[0].hex();
    let wrong_fan = if hex.starts_with("00") { "01" } else { "00" };
    fs::create_dir_all(root.join("index/sha512").join(wrong_fan)).unwrap();
    fs::write(root.join("index/sha512").join(wrong_fan).join(&hex), b"x").unwrap();
    fs::write(root.join("images/notanid.json"), b"{}").unwrap();
    fs::create_dir(root.join("tmp/somedir")).unwrap();
    fs::write(root.join("tmp/import-left"), b"partial").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("tmp/link")).unwrap();
    let inv = store.inventory().unwrap();
    let strays: Vec<PathBuf> = inv
        .strays
        .iter()
        .map(|s| s.path.strip_prefix(root).unwrap().to_owned())
        .collect();
    assert_eq!(
        strays,
        [
            PathBuf::from("blobs/sha512/zz"),
            PathBuf::from("images/notanid.json"),
            Path::new("index/sha512").join(wrong_fan).join(&hex),
            PathBuf::from("junk"),
            PathBuf::from("tmp/somedir"),
        ]
    );
    let temps: Vec<(&Path, FileKind)> = inv
        .temps
        .iter()
        .map(|t| (t.path.strip_prefix(root).unwrap(), t.kind))
        .collect();
    assert_eq!(
        temps,
        [
            (Path::new("tmp/import-left"), FileKind::Regular),
            (Path::new("tmp/link"), FileKind::Symlink)
        ]
    );
}

#[test]
fn verify_blob_finds_bit_flips_fifos_and_symlinks_without_opening_them() {
    let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a"), aci("example.com/b", b"b")]);
    let size = fs::metadata(store.blob_path(&ids[0])).unwrap().len();
    let recorded = EntryIndex::decode(&fs::read(store.index_path(&ids[0])).unwrap())
        .unwrap()
        .fast_digest
        .expect("import records the fast digest");
    assert_eq!(
        store.verify_blob(&ids[0]).unwrap(),
        BlobState::Intact {
            size,
            fast_digest: recorded
        }
    );
    flip_a_bit(&store.blob_path(&ids[0]));
    assert!(matches!(
        store.verify_blob(&ids[0]).unwrap(),
        BlobState::HashMismatch { found, .. } if found != ids[0]
    ));
    // A fifo would block a plain open forever; a symlink could lead out.
    replace_with_fifo(&store.blob_path(&ids[1]));
    assert_eq!(
        store.verify_blob(&ids[1]).unwrap(),
        BlobState::NotRegular {
            kind: FileKind::Fifo
        }
    );
    assert!(matches!(
        store.open(&ids[1]),
        Err(StoreError::NotRegular {
            kind: FileKind::Fifo,
            ..
        })
    ));
    fs::remove_file(store.blob_path(&ids[1])).unwrap();
    std::os::unix::fs::symlink("/dev/zero", store.blob_path(&ids[1])).unwrap();
    assert_eq!(
        store.verify_blob(&ids[1]).unwrap(),
        BlobState::NotRegular {
            kind: FileKind::Symlink
        }
    );
    fs::remove_file(store.blob_path(&ids[1])).unwrap();
    assert_eq!(store.verify_blob(&ids[1]).unwrap(), BlobState::Missing);
}

#[test]
fn index_problems_are_found_and_repaired() {
    let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
    let id = ids[0];
    let fresh = store.scan_image(&id).unwrap();
    let BlobState::Intact { fast_digest, .. } = store.verify_blob(&id).unwrap() else {
        panic!("intact blob");
    };
    assert_eq!(
        store.check_index(&fresh, fast_digest).unwrap(),
        IndexState::Current
    );
    let path = store.index_path(&id);

    fs::remove_file(&path).unwrap();
    assert_eq!(
        store.check_index(&fresh, fast_digest).unwrap(),
        IndexState::Missing
    );

    fs::write(&path, b"garbage").unwrap();
    assert!(matches!(
        store.check_index(&fresh, fast_digest).unwrap(),
        IndexState::Unreadable { .. }
    ));

    let mut other = fresh.index().clone();
    other.entries.pop();
    fs::write(&path, other.encode()).unwrap();
    assert_eq!(
        store.check_index(&fresh, fast_digest).unwrap(),
        IndexState::Stale
    );

    // Entries right, no digest (an index from before the fast digest).
    fs::write(&path, fresh.index().encode()).unwrap();
    assert_eq!(
        store.check_index(&fresh, fast_digest).unwrap(),
        IndexState::NoFastDigest
    );
    // Entries right, a digest that is not the blob's.
    let wrong = FastDigest::from_bytes([7; 32]);
    let mut lying = fresh.index().clone();
    lying.fast_digest = Some(wrong);
    fs::write(&path, lying.encode()).unwrap();
    assert_eq!(
        store.check_index(&fresh, fast_digest).unwrap(),
        IndexState::WrongFastDigest { recorded: wrong }
    );

    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    assert_eq!(
        store.check_index(&fresh, fast_digest).unwrap(),
        IndexState::NotRegular {
            kind: FileKind::Directory
        }
    );
    store.repair_index(&fresh, fast_digest).unwrap();
    assert_eq!(
        store.check_index(&fresh, fast_digest).unwrap(),
        IndexState::Current
    );
    // The directory was set aside, not deleted.
    assert!(store.quarantine_dir().join(id.hex()).is_dir());
}

#[test]
fn an_index_rebuilt_on_open_has_no_fast_digest() {
    // Rebuilt from a blob nobody re-hashed, a digest could vouch for
    // damaged bytes; renders then check SHA-512 instead.
    let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
    fs::remove_file(store.index_path(&ids[0])).unwrap();
    let image = store.open(&ids[0]).unwrap();
    assert_eq!(image.index().fast_digest, None);
    let saved = EntryIndex::decode(&fs::read(store.index_path(&ids[0])).unwrap()).unwrap();
    assert_eq!(saved.fast_digest, None);
}

#[test]
fn record_problems_are_found_and_repaired_keeping_the_import_time() {
    let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
    let id = ids[0];
    let original = store.record(&id).unwrap();
    let fresh = store.scan_image(&id).unwrap();
    assert_eq!(store.check_record(&fresh).unwrap(), RecordState::Consistent);

    let path = store.record_path(&id);
    let mut wrong = original.clone();
    wrong.name = "example.com/other".to_owned();
    fs::write(&path, serde_json::to_vec(&wrong).unwrap()).unwrap();
    assert_eq!(
        store.check_record(&fresh).unwrap(),
        RecordState::Differs { field: "name" }
    );
    wrong = original.clone();
    wrong.size += 1;
    fs::write(&path, serde_json::to_vec(&wrong).unwrap()).unwrap();
    assert_eq!(
        store.check_record(&fresh).unwrap(),
        RecordState::Differs { field: "size" }
    );
    let repaired = store.repair_record(&id).unwrap();
    assert_eq!(repaired, original);

    fs::write(&path, b"{").unwrap();
    assert!(matches!(
        store.check_record(&fresh).unwrap(),
        RecordState::Corrupt { .. }
    ));
    replace_with_fifo(&path);
    assert!(matches!(
        store.check_record(&fresh).unwrap(),
        RecordState::Corrupt { reason } if reason.contains("fifo")
    ));
    store.repair_record(&id).unwrap();
    assert_eq!(store.check_record(&fresh).unwrap(), RecordState::Consistent);

    fs::remove_file(&path).unwrap();
    assert_eq!(store.check_record(&fresh).unwrap(), RecordState::Missing);
}

#[test]
fn sweep_removes_unlocked_temps_only() {
    let (_dir, store, _) = store_with(&[aci("example.com/a", b"a")]);
    let leftover = store.tmp_dir().join("import-dead");
    fs::write(&leftover, b"half an image").unwrap();
    let (live, _lock) = create_locked_temp(&store.tmp_dir(), "import-").unwrap();

    assert!(!store.temp_in_use(&leftover).unwrap());
    assert!(store.temp_in_use(live.path()).unwrap());
    assert_eq!(
        store.sweep_temp(&leftover).unwrap(),
        TempSweep::Removed { bytes: 13 }
    );
    assert!(!leftover.exists());
    assert_eq!(store.sweep_temp(live.path()).unwrap(), TempSweep::InUse);
    assert!(live.path().exists());
    assert_eq!(store.sweep_temp(&leftover).unwrap(), TempSweep::Gone);

    let fifo = store.tmp_dir().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    assert!(!store.temp_in_use(&fifo).unwrap());
    assert_eq!(
        store.sweep_temp(&fifo).unwrap(),
        TempSweep::Removed { bytes: 0 }
    );
    let dir = store.tmp_dir().join("dir");
    fs::create_dir(&dir).unwrap();
    assert_eq!(store.sweep_temp(&dir).unwrap(), TempSweep::Directory);
    assert!(dir.is_dir());
}

#[test]
fn an_interrupted_import_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let store = Store::at(dir.path()).with_interrupt(Arc::clone(&flag));
    store.ensure_layout().unwrap();
    // Raised once the whole input was read: the commit check stops it.
    let input = aci("example.com/a", b"a");
    let raise = Arc::clone(&flag);
    let hook: ImportHook = Arc::new(move |step| {
        if step == ImportStep::MidStream {
            raise.store(true, Ordering::SeqCst);
        }
    });
    let err = store
        .clone()
        .with_hook(hook)
        .import(io::Cursor::new(input.clone()), "a.aci")
        .unwrap_err();
    assert!(err.to_string().contains("a.aci"), "{err}");
    // Raised before: the first read fails.
    let err = store.import(io::Cursor::new(input), "a.aci").unwrap_err();
    assert!(err.to_string().contains("interrupted"), "{err}");
    for sub in ["blobs/sha512", "index/sha512", "images", "tmp"] {
        let left: Vec<_> = walkdir::WalkDir::new(dir.path().join(sub))
            .min_depth(1)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| !e.file_type().is_dir())
            .collect();
        assert!(left.is_empty(), "{sub}: {left:?}");
    }
}

#[test]
fn a_temp_swept_before_its_lock_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::at(dir.path());
    store.ensure_layout().unwrap();
    // A sweeper struck between creation and lock: the name is gone.
    let temp = tempfile::NamedTempFile::new_in(store.tmp_dir()).unwrap();
    fs::remove_file(temp.path()).unwrap();
    let handle = temp.as_file().try_clone().unwrap();
    assert!(crate::temp::lock_if_still_named(handle, temp.path())
        .unwrap()
        .is_none());
    // Or the name now holds another file.
    let temp = tempfile::NamedTempFile::new_in(store.tmp_dir()).unwrap();
    fs::remove_file(temp.path()).unwrap();
    fs::write(temp.path(), b"someone else's").unwrap();
    let handle = temp.as_file().try_clone().unwrap();
    assert!(crate::temp::lock_if_still_named(handle, temp.path())
        .unwrap()
        .is_none());
    let _ = fs::remove_file(temp.path());
    // Untouched, the temp is locked and in use for a sweeper.
    let (temp, _lock) = create_locked_temp(&store.tmp_dir(), "import-").unwrap();
    assert!(store.temp_in_use(temp.path()).unwrap());
    assert_eq!(store.sweep_temp(temp.path()).unwrap(), TempSweep::InUse);
}

#[test]
fn quarantine_sets_damaged_images_aside_and_never_overwrites() {
    let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
    let id = ids[0];
    let blob = store.blob_path(&id);
    let moved = store.quarantine_image(&id).unwrap().unwrap();
    assert_eq!(moved, store.quarantine_dir().join(id.hex()));
    assert!(moved.is_file());
    assert!(!blob.exists());
    assert!(!store.index_path(&id).exists());
    assert!(!store.record_path(&id).exists());
    assert!(matches!(
        store.record(&id),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.quarantine_image(&id).unwrap(), None);

    // The same image imported and damaged again lands beside the first.
    store
        .import(io::Cursor::new(aci("example.com/a", b"a")), "again")
        .unwrap();
    let second = store.quarantine_image(&id).unwrap().unwrap();
    assert_eq!(
        second,
        store.quarantine_dir().join(format!("{}.1", id.hex()))
    );
    assert!(moved.is_file());
}

#[test]
fn orphans_are_removed_only_without_a_blob() {
    let (_dir, store, ids) = store_with(&[aci("example.com/a", b"a")]);
    let id = ids[0];
    assert_eq!(store.remove_orphan_index(&id).unwrap(), None);
    assert_eq!(store.remove_orphan_record(&id).unwrap(), None);
    assert!(store.index_path(&id).exists());
    let record_len = fs::metadata(store.record_path(&id)).unwrap().len();
    fs::remove_file(store.blob_path(&id)).unwrap();
    assert!(store.remove_orphan_index(&id).unwrap().is_some());
    assert_eq!(store.remove_orphan_record(&id).unwrap(), Some(record_len));
    assert!(!store.index_path(&id).exists());
    assert!(!store.record_path(&id).exists());
    assert_eq!(store.remove_orphan_record(&id).unwrap(), None);
}

#[test]
fn export_writes_the_blob_in_any_compression_and_refuses_damage() {
    let tar = aci("example.com/a", b"a");
    let (_dir, store, ids) = store_with(std::slice::from_ref(&tar));
    let id = ids[0];
    for compression in Compression::ALL {
        let mut out = Vec::new();
        let opts = ExportOptions {
            compression,
            level: None,
            xz_threads: 1,
        };
        let report = store.export(&id, &mut out, &opts).unwrap();
        assert_eq!(report.size, tar.len() as u64);
        assert_eq!(report.written, out.len() as u64);
        let hashed = archive::hash_stream(io::Cursor::new(out)).unwrap();
        assert_eq!(hashed.id, id, "{compression:?}");
        assert_eq!(hashed.compression, compression);
    }
    flip_a_bit(&store.blob_path(&id));
    let mut out = Vec::new();
    let err = store
        .export(&id, &mut out, &ExportOptions::default())
        .unwrap_err();
    assert!(matches!(err, StoreError::HashMismatch { id: e, .. } if e == id.to_string()));
    assert!(out.is_empty(), "nothing is written for a damaged blob");

    replace_with_fifo(&store.blob_path(&id));
    assert!(matches!(
        store.export(&id, &mut out, &ExportOptions::default()),
        Err(StoreError::NotRegular { .. })
    ));
}

#[test]
fn file_kinds_have_names() {
    assert_eq!(FileKind::Fifo.to_string(), "fifo");
    let dir = tempfile::tempdir().unwrap();
    let meta = fs::symlink_metadata(dir.path()).unwrap();
    assert_eq!(FileKind::of(&meta), FileKind::Directory);
}

#[test]
fn a_store_root_that_is_not_a_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afile");
    fs::write(&file, "x").unwrap();
    for root in [file.clone(), file.join("below")] {
        let store = Store::at(&root);
        let not_a_dir =
            |e: StoreError| matches!(e, StoreError::NotADirectory { path } if path == root);
        assert!(not_a_dir(store.records().unwrap_err()));
        assert!(not_a_dir(store.inventory().unwrap_err()));
        assert!(not_a_dir(store.ensure_layout().unwrap_err()));
        let input = std::io::Cursor::new(aci("example.com/a", b"a"));
        let err = store.import(input, "a.aci").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: the store path is not a directory", root.display())
        );
    }
    assert_eq!(fs::read(&file).unwrap(), b"x");
    // Missing and symlinked-to-directory roots are fine.
    assert!(Store::at(dir.path().join("new"))
        .records()
        .unwrap()
        .is_empty());
    std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).unwrap();
    assert!(Store::at(dir.path().join("link")).check_root().is_ok());
}

/// Every file below `sub` of the store (not directories).
fn files_below(store: &Store, sub: &str) -> Vec<PathBuf> {
    walkdir::WalkDir::new(store.root().join(sub))
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir())
        .map(|e| e.path().to_owned())
        .collect()
}

/// Writes `bytes` into a staged import in pieces of `piece` bytes and
/// commits it.
fn stage_bytes(store: &Store, bytes: &[u8], piece: usize) -> Result<ImportOutcome, StoreError> {
    let mut staging = store.stage("input")?;
    for chunk in bytes.chunks(piece.max(1)) {
        if staging.write_all(chunk).is_err() {
            break;
        }
    }
    staging.finish()?.commit()
}

/// The blob, index and record an import left, the record's import time
/// left out.
fn stored_files(store: &Store, id: &ImageId) -> (Vec<u8>, Vec<u8>, ImageRecord) {
    let mut record = store.record(id).unwrap();
    record.import_time_ns = 0;
    (
        fs::read(store.blob_path(id)).unwrap(),
        fs::read(store.index_path(id)).unwrap(),
        record,
    )
}

#[test]
fn a_staged_import_stores_what_a_file_import_stores() {
    let dir = tempfile::tempdir().unwrap();
    let by_file = Store::at(dir.path().join("file"));
    let by_stage = Store::at(dir.path().join("stage"));
    // Larger than two early-sync steps, so the staging's sync thread
    // runs while it is written.
    let content: Vec<u8> = (0..(40u32 << 20)).map(|i| (i % 253) as u8).collect();
    let input = aci("example.com/a", &content);
    let imported = by_file.import(io::Cursor::new(input.clone()), "input");
    let imported = imported.unwrap();
    // Small pieces (headers) and pieces larger than the write buffer.
    for piece in [1000, 5 << 20] {
        let staged = stage_bytes(&by_stage, &input, piece).unwrap();
        assert_eq!(staged.record.id, imported.record.id);
        assert_eq!(
            stored_files(&by_stage, &staged.record.id),
            stored_files(&by_file, &imported.record.id)
        );
    }
    // The index carries the fast digest of the blob's bytes.
    let index = EntryIndex::decode(&fs::read(by_stage.index_path(&imported.record.id)).unwrap());
    let blob = fs::read(by_stage.blob_path(&imported.record.id)).unwrap();
    let mut fast = crate::id::FastHasher::new();
    fast.update(&blob);
    assert_eq!(index.unwrap().fast_digest, Some(fast.finish()));
    assert!(files_below(&by_stage, "tmp").is_empty());
}

#[test]
fn a_dropped_staging_stores_nothing_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::at(dir.path());
    let input = aci("example.com/a", b"a");
    // Dropped mid-stream.
    let mut staging = store.stage("input").unwrap();
    staging.write_all(&input[..700]).unwrap();
    assert_eq!(files_below(&store, "tmp").len(), 1);
    drop(staging);
    // Dropped complete and checked, before the commit.
    let mut staging = store.stage("input").unwrap();
    staging.write_all(&input).unwrap();
    let staged = staging.finish().unwrap();
    let id = *staged.id();
    assert_eq!(files_below(&store, "tmp").len(), 1);
    drop(staged);
    assert!(!store.contains(&id));
    for sub in ["blobs/sha512", "index/sha512", "images", "tmp"] {
        assert!(files_below(&store, sub).is_empty(), "{sub}");
    }
}

#[test]
fn a_bad_tar_fails_a_staged_import_as_it_fails_an_import() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::at(dir.path());
    let good = aci("example.com/a", b"a");
    let mut escaping = Vec::new();
    push(&mut escaping, header(b"../x", b'0', 1), b"x");
    escaping.extend_from_slice(&[0u8; 1024]);
    let mut bad_manifest = good.clone();
    bad_manifest[512 + 1] = b'#';
    let truncated = good[..good.len() - 1500].to_vec();
    let small = Store::at(dir.path()).with_limits(Limits {
        max_decompressed_size: 1000,
        ..Limits::default()
    });
    for (store, input) in [
        (&store, escaping),
        (&store, bad_manifest),
        (&store, truncated),
        (&small, good),
    ] {
        let imported = store.import(io::Cursor::new(input.clone()), "input");
        let staged = stage_bytes(store, &input, 100);
        let (imported, staged) = (imported.unwrap_err(), staged.unwrap_err());
        assert_eq!(imported.to_string(), staged.to_string());
        assert_eq!(
            crate::limit_kind(&imported),
            crate::limit_kind(&staged),
            "{staged}"
        );
    }
    for sub in ["blobs/sha512", "index/sha512", "images", "tmp"] {
        assert!(files_below(&store, sub).is_empty(), "{sub}");
    }
}

#[test]
fn an_interrupted_staging_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let store = Store::at(dir.path()).with_interrupt(Arc::clone(&flag));
    let input = aci("example.com/a", b"a");
    let mut staging = store.stage("input").unwrap();
    staging.write_all(&input[..512]).unwrap();
    flag.store(true, Ordering::SeqCst);
    assert!(staging.write_all(&input[512..]).is_err());
    let err = staging.finish().unwrap_err();
    assert!(matches!(err, StoreError::Interrupted { .. }), "{err}");
    assert!(files_below(&store, "tmp").is_empty());
}

mod staged_matches_import {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any bytes (a valid ACI, mutated or cut) split anyhow give a
        /// staged import the outcome a file import gives: the same stored
        /// files, or the same error.
        #[test]
        fn any_bytes_any_split(
            content in proptest::collection::vec(any::<u8>(), 0..3000),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
            cut in proptest::option::of(any::<usize>()),
            piece in 1usize..2000,
        ) {
            let mut input = aci("example.com/p", &content);
            for (at, value) in flips {
                let at = at % input.len();
                input[at] = value;
            }
            if let Some(cut) = cut {
                input.truncate(cut % input.len());
            }
            let dir = tempfile::tempdir().unwrap();
            let by_file = Store::at(dir.path().join("file"));
            let by_stage = Store::at(dir.path().join("stage"));
            // A flipped first byte may look like a compression magic to
            // the file import; the staged one takes plain tar only.
            prop_assume!(matches!(archive::detect(&input), Ok(Compression::None)));
            let imported = by_file.import(io::Cursor::new(input.clone()), "input");
            let staged = stage_bytes(&by_stage, &input, piece);
            match (imported, staged) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(a.record.id, b.record.id);
                    prop_assert_eq!(
                        stored_files(&by_file, &a.record.id),
                        stored_files(&by_stage, &b.record.id)
                    );
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "import {:?} but staged {:?}", a, b),
            }
            prop_assert!(files_below(&by_stage, "tmp").is_empty());
        }
    }
}
