//! `rm`, `gc` and `fsck` with the rendered-tree cache (issue 12, item 2):
//! trees are made with the plumbing that `startbuild --overlay` uses, then
//! the porcelain commands are run on the store.

use std::fs;
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use acido_plumbing::compression::Compression;
use acido_plumbing::id::ImageId;
use acido_plumbing::pack::{pack_layout, PackOptions};
use acido_plumbing::render::{self, RenderOptions};
use acido_plumbing::store::{CachedTree, Store};
use acido_porcelain::fsck::{self, ProblemKind, Repair};
use acido_porcelain::gc::{self, Garbage};
use acido_porcelain::rm::{self, RmError};

fn import(store: &Store, dir: &Path, name: &str, deps: &str, file: &str) -> ImageId {
    let layout = dir.join(name.replace('/', "_"));
    fs::create_dir_all(layout.join("rootfs/etc")).unwrap();
    fs::write(
        layout.join("manifest"),
        format!(r#"{{"acKind":"ImageManifest","acVersion":"0.8.11","name":"{name}"{deps}}}"#),
    )
    .unwrap();
    fs::write(layout.join("rootfs/etc").join(file), format!("{file}\n")).unwrap();
    let mut tar = Vec::new();
    let opts = PackOptions {
        compression: Compression::None,
        xz_threads: 1,
        level: None,
        ..PackOptions::default()
    };
    pack_layout(&layout, &mut tar, &opts).unwrap();
    store.import(Cursor::new(tar), name).unwrap().record.id
}

/// A store with a base and an app on it, and the app's cached tree.
fn setup(dir: &Path, user: Option<&Path>) -> (Store, ImageId, ImageId, CachedTree) {
    let store = Store::at(dir.join("store"));
    let base = import(&store, dir, "ex.com/base", "", "base");
    let app = import(
        &store,
        dir,
        "ex.com/app",
        r#","dependencies":[{"imageName":"ex.com/base"}]"#,
        "app",
    );
    let list = render::dependency_list(&store, app).unwrap();
    let map = render::file_map(&list).unwrap();
    let tree = render::ensure_cached_tree(
        &store,
        &list,
        &map,
        user,
        &RenderOptions::default(),
        &AtomicBool::new(false),
    )
    .unwrap()
    .tree;
    (store, base, app, tree)
}

#[test]
fn gc_removes_unused_trees_and_keeps_used_ones() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("build");
    fs::create_dir(&user).unwrap();
    let (store, _, _, tree) = setup(dir.path(), Some(&user));
    let report = gc::gc(&store).unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(report.trees_in_use, 1);
    assert!(tree.rootfs().join("etc/app").is_file());
    // The build tree is gone (ended without releasing): the tree is unused.
    fs::remove_dir(&user).unwrap();
    let report = gc::gc(&store).unwrap();
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert_eq!(report.removed[0].kind, Garbage::Tree);
    assert_eq!(
        report.removed[0].path,
        Path::new("trees").join(tree.key().name())
    );
    // Its files: the rendered data, manifest, ids and seal.
    assert!(report.removed[0].bytes > ("app\n".len() + "base\n".len()) as u64);
    assert!(!tree.entry().exists());
    assert!(fs::read_dir(store.trees_dir()).unwrap().next().is_none());
}

#[test]
fn rm_removes_the_trees_of_an_image_and_refuses_while_one_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("build");
    fs::create_dir(&user).unwrap();
    let (store, _, app, tree) = setup(dir.path(), Some(&user));
    let err = rm::rm(&store, &[app.to_string()], false).unwrap_err();
    assert!(
        matches!(&err, RmError::TreeInUse { image, .. } if *image == app),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("end that build first, or use --force"),
        "{err}"
    );
    assert!(tree.entry().exists() && store.contains(&app));
    assert!(store.release_cached_tree(tree.key(), &user).unwrap());
    rm::rm(&store, &[app.to_string()], false).unwrap();
    assert!(!tree.entry().exists());
    assert!(store.tree_inventory().unwrap().trees.is_empty());
}

#[test]
fn fsck_checks_tree_seals_and_images_and_repair_removes_bad_trees() {
    let dir = tempfile::tempdir().unwrap();
    let (store, base, _, tree) = setup(dir.path(), None);
    let clean = fsck::fsck(&store, false).unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!(clean.trees_checked, 1);
    // Written through: the seal breaks.
    let app = tree.rootfs().join("etc/app");
    fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let found = fsck::fsck(&store, false).unwrap();
    assert_eq!(found.problems.len(), 1, "{found:?}");
    assert_eq!(found.problems[0].kind, ProblemKind::BadTree);
    let repaired = fsck::fsck(&store, true).unwrap();
    assert!(matches!(repaired.problems[0].repair, Some(Repair::Done(_))));
    assert!(!tree.entry().exists());
    assert!(fsck::fsck(&store, false).unwrap().is_clean());
    // A tree whose image left the store some other way is an orphan.
    let (store, _, _, tree) = {
        let dir2 = dir.path().join("again");
        fs::create_dir(&dir2).unwrap();
        setup(&dir2, None)
    };
    let _ = base;
    let base2 = tree.key().ids()[1];
    fs::remove_file(store.blob_path(&base2)).unwrap();
    let found = fsck::fsck(&store, false).unwrap();
    assert!(
        found
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::OrphanTree),
        "{found:?}"
    );
    fsck::fsck(&store, true).unwrap();
    assert!(!tree.entry().exists());
    // A killed tree render's leftover is a stale temp, swept by repair.
    let leftover = store.trees_dir().join(".acido-render-dead01");
    fs::create_dir(&leftover).unwrap();
    let found = fsck::fsck(&store, false).unwrap();
    assert!(
        found
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::StaleTemp),
        "{found:?}"
    );
    fsck::fsck(&store, true).unwrap();
    assert!(!leftover.exists());
}
