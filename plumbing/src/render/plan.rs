//! Planning the non-directory paths of a file map: which path of each
//! hard-link group gets the data and which become links to it, decided
//! in map order, so the writer may create them in any order on several
//! threads and still give the sequential result.

use std::collections::HashMap;
use std::io;

use crate::entry::EntryKind;
use crate::id::ImageId;

use super::deps::DependencyList;
use super::RenderError;

/// A hard-link group: the image and the index of the entry holding the
/// data and metadata (the end of the link chain).
type GroupKey = (ImageId, usize);

/// What to create for one non-directory path of the map.
#[derive(Debug, Clone, Copy)]
pub(super) enum Job<'m> {
    /// A file, symlink, fifo or device from this entry (for a hard-link
    /// group, the first path of the group, holding its data).
    Create {
        path: &'m [u8],
        element: usize,
        entry: usize,
    },
    /// A later path of a hard-link group: a link to the group's first.
    Link { path: &'m [u8], first: &'m [u8] },
}

/// Decides, in map order, which path of each hard-link group gets the
/// data and which become links to it, so the creating can run in any
/// order on several threads and still give the sequential result.
pub(super) struct Planner<'a> {
    list: &'a DependencyList,
    /// The first path of each hard-link group.
    groups: HashMap<GroupKey, &'a [u8]>,
    /// Per image, entry path → index, built when a hard link needs it.
    by_path: HashMap<ImageId, HashMap<&'a [u8], usize>>,
}

impl<'a> Planner<'a> {
    /// A planner for the paths of `list`'s map.
    pub(super) fn new(list: &'a DependencyList) -> Self {
        Planner {
            list,
            groups: HashMap::new(),
            by_path: HashMap::new(),
        }
    }

    /// The entry a hard link's chain ends in (its data and metadata), by
    /// index in the same image; `None` when the chain is broken.
    fn link_root(&mut self, element: usize, entry: usize) -> Option<usize> {
        let listed = &self.list.images[element];
        let entries = listed.image.image.entries();
        let by_path = self.by_path.entry(listed.id).or_insert_with(|| {
            entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.path.as_slice(), i))
                .collect()
        });
        let mut at = entry;
        // Each step moves to another entry; more steps than entries is a loop.
        for _ in 0..=entries.len() {
            let e = entries.get(at)?;
            if e.kind != EntryKind::HardLink {
                return (!e.kind.is_dir()).then_some(at);
            }
            at = *by_path.get(e.link_target.as_deref()?)?;
        }
        None
    }

    /// The job for the non-directory `path`, supplied by entry `entry` of
    /// element `element`.
    pub(super) fn plan(
        &mut self,
        path: &'a [u8],
        element: usize,
        entry: usize,
    ) -> Result<Job<'a>, RenderError> {
        let e = &self.list.images[element].image.image.entries()[entry];
        if e.kind != EntryKind::Regular && e.kind != EntryKind::HardLink {
            return Ok(Job::Create {
                path,
                element,
                entry,
            });
        }
        // Regular files join the group of their own entry; hard links the
        // group of the entry their chain ends in, whatever became of that
        // entry's path in the rendered tree (DESIGN §5: a link whose
        // target was filtered or overridden keeps its own image's content).
        let root = if e.kind == EntryKind::HardLink {
            self.link_root(element, entry)
                .ok_or_else(|| RenderError::Entry {
                    path: path.to_vec(),
                    op: "resolve the hard link",
                    source: io::Error::new(
                        io::ErrorKind::NotFound,
                        "target is not a file of the same image",
                    ),
                })?
        } else {
            entry
        };
        let key = (self.list.images[element].id, root);
        if let Some(&first) = self.groups.get(&key) {
            return Ok(Job::Link { path, first });
        }
        self.groups.insert(key, path);
        Ok(Job::Create {
            path,
            element,
            entry: root,
        })
    }
}
