//! The stored images' dependency edges, read once.
//!
//! `rm` asks which images depend on the ones to remove (and follows step
//! cache entries up the chains); `gc --cache` asks which cache entries the
//! other images need (and follows them down). Both used to re-open every
//! manifest and re-read every record once per question and per chain level;
//! this reads each manifest once and resolves each dependency once, so both
//! walks are plain graph searches.

use std::collections::HashMap;

use acido_plumbing::id::ImageId;
use acido_plumbing::manifest::{Dependency, ImageManifest};
use acido_plumbing::naming::{self, AppRef};
use acido_plumbing::store::{ImageRecord, Store, StoreError};

/// Every stored image with the stored images its dependencies stand for.
#[derive(Debug)]
pub struct DependencyGraph {
    records: Vec<ImageRecord>,
    /// Per record (same index): the records its dependencies resolve to.
    dependencies: Vec<Vec<usize>>,
    /// Images whose manifest could not be read: what they depend on is
    /// unknown, so callers decide whether that blocks them.
    unreadable: Vec<(ImageId, StoreError)>,
}

impl DependencyGraph {
    /// Reads every record and manifest of `store` once.
    ///
    /// A dependency with an `imageID` stands for the stored images that id
    /// prefix matches (then name and labels are ignored, aci-format §8);
    /// one without stands for the image its name and labels resolve to now
    /// (the most recently imported match, as rendering picks).
    pub fn read(store: &Store) -> Result<Self, StoreError> {
        let records = store.records()?;
        let position: HashMap<ImageId, usize> =
            records.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        let mut dependencies = Vec::with_capacity(records.len());
        let mut unreadable = Vec::new();
        for record in &records {
            let manifest = store.open(&record.id).and_then(|image| {
                ImageManifest::from_slice(image.manifest_bytes()).map_err(|source| {
                    StoreError::Manifest {
                        input: record.id.to_string(),
                        source,
                    }
                })
            });
            let mut found = Vec::new();
            match manifest {
                Ok(manifest) => {
                    for dep in &manifest.dependencies {
                        for id in stands_for(&records, dep) {
                            if let Some(&at) = position.get(&id) {
                                if !found.contains(&at) {
                                    found.push(at);
                                }
                            }
                        }
                    }
                }
                Err(e) => unreadable.push((record.id, e)),
            }
            dependencies.push(found);
        }
        Ok(DependencyGraph {
            records,
            dependencies,
            unreadable,
        })
    }

    /// All stored images' records, in the store's order.
    pub fn records(&self) -> &[ImageRecord] {
        &self.records
    }

    /// The record of `id`, when stored.
    pub fn record(&self, id: &ImageId) -> Option<&ImageRecord> {
        self.records.iter().find(|r| r.id == *id)
    }

    /// The images whose manifest could not be read, with why.
    pub fn unreadable(&self) -> &[(ImageId, StoreError)] {
        &self.unreadable
    }

    /// Takes out why `id`'s manifest could not be read, when it could not.
    pub fn take_unreadable(&mut self, id: &ImageId) -> Option<StoreError> {
        let at = self.unreadable.iter().position(|(u, _)| u == id)?;
        Some(self.unreadable.remove(at).1)
    }

    /// The stored images that depend directly on `id`, in store order.
    pub fn dependents_of(&self, id: &ImageId) -> Vec<&ImageRecord> {
        let Some(target) = self.records.iter().position(|r| r.id == *id) else {
            return Vec::new();
        };
        self.dependencies
            .iter()
            .enumerate()
            .filter(|(_, deps)| deps.contains(&target))
            .map(|(i, _)| &self.records[i])
            .collect()
    }

    /// The stored images `id` depends on directly.
    pub fn dependencies_of(&self, id: &ImageId) -> Vec<&ImageRecord> {
        match self.records.iter().position(|r| r.id == *id) {
            Some(at) => self.dependencies[at]
                .iter()
                .map(|&i| &self.records[i])
                .collect(),
            None => Vec::new(),
        }
    }
}

/// The ids among `records` that `dep` stands for.
fn stands_for(records: &[ImageRecord], dep: &Dependency) -> Vec<ImageId> {
    if let Some(image_id) = &dep.image_id {
        // An id only the lenient reference accepts names no stored image.
        return match image_id.as_prefix() {
            Some(prefix) => records
                .iter()
                .filter(|r| r.id.matches(&prefix))
                .map(|r| r.id)
                .collect(),
            None => Vec::new(),
        };
    }
    let app = AppRef {
        name: dep.image_name.as_str().to_owned(),
        labels: dep
            .labels
            .iter()
            .map(|l| (l.name.as_str().to_owned(), l.value.clone()))
            .collect(),
    };
    naming::resolve_app_among(records, &app)
        .map(|r| vec![r.id])
        .unwrap_or_default()
}
