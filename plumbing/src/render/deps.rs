//! The dependency list: every image a render needs, in priority order,
//! built exactly as the reference's `createDepList` builds it
//! (aci-format §9.1), with the resolution rules of §8 and the cycle,
//! depth and size checks the reference lacks.

use std::collections::HashMap;
use std::sync::Arc;

use crate::id::ImageId;
use crate::image::OpenImage;
use crate::limits::{LimitExceeded, LimitKind};
use crate::manifest::{Dependency, ImageManifest};
use crate::naming::AppRef;
use crate::store::{ImageRecord, Store, StoreError};

use super::RenderError;

/// Deepest dependency chain accepted by default (the store's
/// [`crate::limits::Limits::max_dependency_depth`] decides): the top image
/// is level 0, so a chain may hold `MAX_DEPTH + 1` images. Real images nest a handful of levels;
/// the bound only stops hostile or broken manifests.
pub const MAX_DEPTH: usize = crate::limits::DEFAULT_DEPENDENCY_DEPTH;

/// Most elements the dependency list may hold by default (the store's
/// [`crate::limits::Limits::max_dependency_count`] decides). A diamond lists its shared
/// image once per path (aci-format §9.1), so a lattice of diamonds grows
/// exponentially; this bound turns that into an error instead of an
/// endless walk.
pub const MAX_IMAGES: usize = crate::limits::DEFAULT_DEPENDENCY_COUNT;

/// Where an image's bytes live, which decides how rendering reads and
/// verifies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A blob in the store: its content must still hash to its id.
    Store,
    /// An `.aci` file outside the store, decompressed and hashed on open,
    /// so its id is its content's hash by construction.
    Archive,
}

/// An image opened for a render, shared by every list element that names it.
#[derive(Debug)]
pub struct SharedImage {
    /// The opened image.
    pub image: OpenImage,
    /// Its parsed manifest.
    pub manifest: ImageManifest,
    /// Where it came from.
    pub source: ImageSource,
}

/// One element of the dependency list.
#[derive(Debug, Clone)]
pub struct ListedImage {
    /// The image.
    pub id: ImageId,
    /// Depth in the dependency graph: 0 for the top image.
    pub level: usize,
    /// Index (in the list) of the image that depends on this one; `None`
    /// for the top image.
    pub parent: Option<usize>,
    /// How the image was asked for: the top image's name, or a
    /// dependency as its manifest declares it
    /// (`example.com/base,version=1.0`). Used to name chains in errors.
    pub name: String,
    /// The opened image and its manifest.
    pub image: Arc<SharedImage>,
}

/// The images of one render in priority order: the first element that
/// supplies a path wins; the list reversed is the lay-down order.
#[derive(Debug, Clone)]
pub struct DependencyList {
    /// The elements, top image first.
    pub images: Vec<ListedImage>,
}

impl DependencyList {
    /// The element at `index` and its ancestors, top first, as names
    /// joined by ` -> ` (`example.com/app -> example.com/base,version=1.0`).
    pub fn chain(&self, index: usize) -> String {
        let mut names = Vec::new();
        let mut at = Some(index);
        while let Some(i) = at {
            let Some(element) = self.images.get(i) else {
                break;
            };
            names.push(element.name.as_str());
            at = element.parent;
        }
        names.reverse();
        names.join(" -> ")
    }

    /// Indexes of the ancestors of element `index`, nearest first.
    pub fn ancestors(&self, index: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = self.images.get(index).and_then(|e| e.parent);
        while let Some(i) = at {
            out.push(i);
            at = self.images.get(i).and_then(|e| e.parent);
        }
        out
    }

    /// Every distinct image of the list, in first-listed order.
    pub fn distinct(&self) -> Vec<(usize, &ListedImage)> {
        let mut seen = std::collections::HashSet::new();
        self.images
            .iter()
            .enumerate()
            .filter(|(_, e)| seen.insert(e.id))
            .collect()
    }
}

/// How a dependency is written in chains: `NAME[,LABEL=VALUE...]`, and the
/// id it asks for when it gives one.
fn dependency_name(dep: &Dependency) -> String {
    let mut name = dep.image_name.to_string();
    for label in dep.labels.iter() {
        name.push_str(&format!(",{}={}", label.name, label.value));
    }
    if let Some(id) = &dep.image_id {
        name.push_str(&format!(" ({})", id.as_str()));
    }
    name
}

/// Looks images up in the store, reading the records once per render.
struct Resolver<'a> {
    store: &'a Store,
    records: Option<Vec<ImageRecord>>,
    opened: HashMap<ImageId, Arc<SharedImage>>,
}

enum Lookup {
    Found(ImageId),
    Missing,
    Ambiguous(Vec<ImageId>),
}

impl Resolver<'_> {
    /// aci-format §8: an `imageID` is the only lookup when present (name
    /// and labels are not consulted); otherwise name and labels, every
    /// requested label matching, the newest import winning.
    fn lookup(&mut self, dep: &Dependency) -> Result<Lookup, StoreError> {
        if let Some(id) = &dep.image_id {
            // An id only the lenient reference parser accepts (not hex,
            // too long) can name no stored blob.
            let Some(prefix) = id.as_prefix() else {
                return Ok(Lookup::Missing);
            };
            let mut ids = self.store.ids_with_prefix(&prefix)?;
            return Ok(match ids.len() {
                0 => Lookup::Missing,
                1 => Lookup::Found(ids.remove(0)),
                _ => Lookup::Ambiguous(ids),
            });
        }
        if self.records.is_none() {
            self.records = Some(self.store.records()?);
        }
        let app = AppRef {
            name: dep.image_name.to_string(),
            labels: dep
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.clone()))
                .collect(),
        };
        let best = self
            .records
            .iter()
            .flatten()
            .filter(|r| app.matches(r))
            // Newest import wins; equal times fall back to the larger id,
            // as `naming::resolve_app` does, so the choice is stable.
            .max_by_key(|r| (r.import_time_ns, r.id));
        Ok(best.map_or(Lookup::Missing, |r| Lookup::Found(r.id)))
    }

    fn open(&mut self, id: ImageId, chain: &str) -> Result<Arc<SharedImage>, RenderError> {
        if let Some(shared) = self.opened.get(&id) {
            return Ok(Arc::clone(shared));
        }
        let image = self.store.open(&id).map_err(|source| match source {
            StoreError::NotFound { .. } => RenderError::NotInStore {
                chain: chain.to_owned(),
            },
            source => RenderError::Open {
                chain: chain.to_owned(),
                source: Box::new(source),
            },
        })?;
        let shared = Arc::new(share(self.store, image, ImageSource::Store, chain)?);
        self.opened.insert(id, Arc::clone(&shared));
        Ok(shared)
    }
}

fn share(
    store: &Store,
    image: OpenImage,
    source: ImageSource,
    chain: &str,
) -> Result<SharedImage, RenderError> {
    let limits = store.limits().manifest();
    let manifest =
        ImageManifest::from_slice_with(image.manifest_bytes(), &limits).map_err(|source| {
            RenderError::BadManifest {
                chain: chain.to_owned(),
                source: Box::new(source),
            }
        })?;
    Ok(SharedImage {
        image,
        manifest,
        source,
    })
}

/// Builds the dependency list of the stored image `top`.
pub fn dependency_list(store: &Store, top: ImageId) -> Result<DependencyList, RenderError> {
    let image = store.open(&top).map_err(|source| match source {
        StoreError::NotFound { id } => RenderError::NotInStore { chain: id },
        source => RenderError::Open {
            chain: top.to_string(),
            source: Box::new(source),
        },
    })?;
    dependency_list_for(store, image, ImageSource::Store)
}

/// Builds the dependency list of an already opened top image (a stored
/// image, or an `.aci` file whose dependencies come from `store`).
///
/// The list is built as the reference builds it (aci-format §9.1): each
/// element's dependencies are inserted right after it, so they end up in
/// reverse declaration order, and an image shared by several parents is
/// listed once per path. Every dependency is resolved and opened here, so
/// a missing image, an ambiguous id, a cycle (self-dependency included), a
/// chain deeper than the store's `max_dependency_depth`, a list longer than
/// its `max_dependency_count` (by default [`MAX_DEPTH`] and [`MAX_IMAGES`])
/// or an unreadable manifest is reported before anything is written.
pub fn dependency_list_for(
    store: &Store,
    top: OpenImage,
    source: ImageSource,
) -> Result<DependencyList, RenderError> {
    let top_id = top.id();
    let fallback_name = top_id.to_string();
    let shared = Arc::new(share(store, top, source, &fallback_name)?);
    let max_depth = store.limits().max_dependency_depth;
    let max_images = store.limits().max_dependency_count;
    let mut list = DependencyList {
        images: vec![ListedImage {
            id: top_id,
            level: 0,
            parent: None,
            name: shared.manifest.name.to_string(),
            image: shared,
        }],
    };
    let mut resolver = Resolver {
        store,
        records: None,
        opened: HashMap::new(),
    };
    let mut at = 0;
    while at < list.images.len() {
        let parent = list.images[at].clone();
        // Inserting each dependency right after its parent reverses the
        // declared order: A -> [B, C] lists A, C, B (aci-format §9.1).
        let mut insert_at = at + 1;
        for dep in &parent.image.manifest.dependencies {
            let element_name = dependency_name(dep);
            let chain = format!("{} -> {element_name}", list.chain(at));
            if parent.level + 1 > max_depth {
                return Err(RenderError::TooDeep {
                    chain,
                    max: max_depth,
                    exceeded: LimitExceeded::new(LimitKind::DependencyDepth),
                });
            }
            let id = match resolver.lookup(dep).map_err(|source| RenderError::Open {
                chain: chain.clone(),
                source: Box::new(source),
            })? {
                Lookup::Found(id) => id,
                Lookup::Missing => return Err(RenderError::NotInStore { chain }),
                Lookup::Ambiguous(candidates) => {
                    return Err(RenderError::Ambiguous { chain, candidates })
                }
            };
            // A cycle: the dependency is the parent itself or one of its
            // ancestors. The reference loops forever here (aci-format §8).
            let in_chain = std::iter::once(at)
                .chain(list.ancestors(at))
                .any(|i| list.images[i].id == id);
            if in_chain {
                return Err(RenderError::Cycle { chain });
            }
            if list.images.len() >= max_images {
                return Err(RenderError::TooMany {
                    chain,
                    max: max_images,
                    exceeded: LimitExceeded::new(LimitKind::DependencyCount),
                });
            }
            let image = resolver.open(id, &chain)?;
            list.images.insert(
                at + 1,
                ListedImage {
                    id,
                    level: parent.level + 1,
                    parent: Some(at),
                    name: element_name,
                    image,
                },
            );
            insert_at += 1;
        }
        // Elements after the inserted ones had their parent indexes
        // shifted; fix them up.
        let inserted = insert_at - (at + 1);
        if inserted > 0 {
            for element in &mut list.images[insert_at..] {
                if let Some(p) = element.parent.as_mut() {
                    if *p > at {
                        *p += inserted;
                    }
                }
            }
        }
        at += 1;
    }
    Ok(list)
}
