//! `extract`: render an image with all its dependencies into a directory,
//! reporting the bytes written and what could not be restored.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use acido_plumbing::entry::EntryKind;
use acido_plumbing::id::ImageId;
use acido_plumbing::image::{ImageError, OpenImage};
use acido_plumbing::naming::{self, ImageRef, NamingError};
use acido_plumbing::render::{
    self, DependencyList, FileMap, ImageSource, RenderError, RenderOptions, RenderReport, Supplier,
};
use acido_plumbing::store::Store;

use crate::progress::Progress;

/// Why an extraction failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The image name could not be resolved.
    #[error(transparent)]
    Naming(#[from] NamingError),
    /// An `.aci` file could not be read.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Resolving dependencies or writing the tree failed.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// What an extraction did.
#[derive(Debug, Clone)]
pub struct ExtractReport {
    /// The top image.
    pub id: ImageId,
    /// How many stored images matched the name (the newest import was
    /// taken when more than one did).
    pub matches: usize,
    /// What the render wrote and could not restore.
    pub render: RenderReport,
}

/// Writes `map` into `dir` as `extract` and `startbuild` do: a note when
/// `image` matched several stored images, a progress bar over the data
/// bytes, blob verification on.
pub(crate) fn render_with_progress(
    image: &str,
    list: &DependencyList,
    map: &FileMap,
    matches: usize,
    dir: &Path,
    progress: &Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<RenderReport, RenderError> {
    if matches > 1 {
        progress.note(&format!(
            "{image}: {matches} images match, using the most recently imported {}",
            list.images[0].id
        ));
    }
    progress.begin(image, Some(data_bytes(list, map)));
    let sink = Arc::clone(progress);
    let opts = RenderOptions {
        verify: true,
        progress: Some(Arc::new(move |n| sink.advance(n))),
        ..RenderOptions::default()
    };
    let result = render::render_list(list, map, dir, &opts, interrupt);
    progress.end();
    result
}

/// Total data bytes a map will write, for the progress bar.
pub fn data_bytes(list: &DependencyList, map: &FileMap) -> u64 {
    map.paths
        .values()
        .filter_map(|s| match *s {
            Supplier::Entry {
                element,
                entry,
                kind: EntryKind::Regular,
            } => list.images.get(element)?.image.image.entries().get(entry),
            _ => None,
        })
        .map(|e| e.size)
        .sum()
}

/// Renders `image` (an id, id prefix, app string or `.aci` file; its
/// dependencies come from `store`) into `dir`, which must not exist or be
/// empty. `scratch` holds the decompressed copy of an `.aci` file.
pub fn extract(
    store: &Store,
    image: &str,
    dir: &Path,
    scratch: &Path,
    progress: Arc<dyn Progress>,
    interrupt: &AtomicBool,
) -> Result<ExtractReport, ExtractError> {
    let (list, matches) = match ImageRef::parse(image, true)? {
        ImageRef::File(path) => {
            let opened = OpenImage::open_archive(&path, scratch, store.limits())?;
            (
                render::dependency_list_for(store, opened, ImageSource::Archive)?,
                1,
            )
        }
        name => {
            let resolved = naming::resolve(store, &name)?;
            (
                render::dependency_list(store, resolved.id)?,
                resolved.matches,
            )
        }
    };
    let map = render::file_map(&list)?;
    let id = list.images[0].id;
    let result = render_with_progress(image, &list, &map, matches, dir, &progress, interrupt);
    Ok(ExtractReport {
        id,
        matches,
        render: result?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;
    use acido_plumbing::compression::Compression;
    use acido_plumbing::pack::{pack_layout, PackOptions};
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Count(AtomicU64);
    impl Progress for Count {
        fn advance(&self, bytes: u64) {
            self.0.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    #[test]
    fn extract_reports_progress_and_leaves_no_target_on_error() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        std::fs::create_dir_all(layout.join("rootfs/etc")).unwrap();
        std::fs::write(
            layout.join("manifest"),
            r#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"ex.com/a"}"#,
        )
        .unwrap();
        std::fs::write(layout.join("rootfs/etc/hello"), "hello\n").unwrap();
        let mut tar = Vec::new();
        let opts = PackOptions {
            compression: Compression::None,
            xz_threads: 1,
            level: None,
            ..PackOptions::default()
        };
        pack_layout(&layout, &mut tar, &opts).unwrap();
        let store = Store::at(tmp.path().join("store"));
        store.import(std::io::Cursor::new(tar), "a").unwrap();
        let count = Arc::new(Count(AtomicU64::new(0)));
        let out = tmp.path().join("out");
        let report = extract(
            &store,
            "ex.com/a",
            &out,
            tmp.path(),
            count.clone(),
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(report.matches, 1);
        assert_eq!(
            std::fs::read(out.join("rootfs/etc/hello")).unwrap(),
            b"hello\n"
        );
        assert_eq!(count.0.load(Ordering::Relaxed), report.render.bytes);
        let err = extract(
            &store,
            "ex.com/missing",
            &tmp.path().join("out2"),
            tmp.path(),
            Arc::new(NoProgress),
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ex.com/missing: no such image in the store"
        );
        assert!(!tmp.path().join("out2").exists());
    }
}
