//! Naming an image, like `git rev-parse` (DESIGN §3): a full id or unique
//! id prefix, an app string `NAME[:VERSION][,LABEL=VALUE...]`, or for
//! read-only commands a path to an `.aci` file.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::id::{IdError, IdPrefix, ImageId, SCHEME};
use crate::store::{ImageRecord, Store, StoreError};

/// Why an image name could not be parsed or resolved.
#[derive(Debug, thiserror::Error)]
pub enum NamingError {
    /// The name starts like an id but is not a valid id prefix.
    #[error(transparent)]
    BadId(#[from] IdError),
    /// The app string is malformed.
    #[error("{input:?}: bad image name: {reason}")]
    BadAppString {
        /// The rejected string.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No stored image matches.
    #[error("{name}: no such image in the store")]
    NotFound {
        /// The name as given.
        name: String,
    },
    /// An id prefix matches several images.
    #[error("{prefix}: ambiguous image id prefix, candidates:{}", list_ids(.candidates))]
    Ambiguous {
        /// The prefix as given.
        prefix: String,
        /// Every matching id.
        candidates: Vec<ImageId>,
    },
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list_ids(ids: &[ImageId]) -> String {
    ids.iter().map(|id| format!(" {id}")).collect()
}

/// An app string: an image name with labels that must all match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRef {
    /// The image name (`name` of the manifest).
    pub name: String,
    /// Labels the image must carry with exactly these values, in the order given.
    pub labels: Vec<(String, String)>,
}

impl AppRef {
    /// Parses `NAME[:VERSION][,LABEL=VALUE...]` as appc discovery does
    /// (aci-format §12): a `:` may appear once, before the first comma, and
    /// stands for the `version` label.
    pub fn parse(input: &str) -> Result<Self, NamingError> {
        let bad = |reason| NamingError::BadAppString {
            input: input.to_owned(),
            reason,
        };
        let mut parts = input.split(',');
        let head = parts.next().unwrap_or_default();
        let (name, version) = match head.split_once(':') {
            Some((name, version)) => (name, Some(version)),
            None => (head, None),
        };
        if name.is_empty() {
            return Err(bad("the name is empty"));
        }
        let mut labels = Vec::new();
        if let Some(version) = version {
            if version.is_empty() || version.contains(':') {
                return Err(bad("a version follows a single ':' and may not be empty"));
            }
            labels.push(("version".to_owned(), version.to_owned()));
        }
        for part in parts {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad("labels are written LABEL=VALUE after a comma"))?;
            if key.is_empty() {
                return Err(bad("a label name is empty"));
            }
            if labels.iter().any(|(k, _)| k == key) {
                return Err(bad("a label is given twice"));
            }
            labels.push((key.to_owned(), value.to_owned()));
        }
        Ok(AppRef {
            name: name.to_owned(),
            labels,
        })
    }

    /// Whether a stored image matches: same name, and every requested label
    /// present with the same value (extra labels on the image are fine).
    pub fn matches(&self, record: &ImageRecord) -> bool {
        record.name == self.name
            && self
                .labels
                .iter()
                .all(|(k, v)| record.label(k) == Some(v.as_str()))
    }
}

impl fmt::Display for AppRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (k, v) in &self.labels {
            write!(f, ",{k}={v}")?;
        }
        Ok(())
    }
}

/// How the user named an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// An id or id prefix.
    Id(IdPrefix),
    /// A name with labels.
    App(AppRef),
    /// An `.aci` file outside the store (read-only commands only).
    File(PathBuf),
}

impl ImageRef {
    /// Reads a name as the user gave it. With `files_allowed`, anything
    /// containing `/` or ending in `.aci` that exists on disk is a file.
    pub fn parse(input: &str, files_allowed: bool) -> Result<Self, NamingError> {
        if files_allowed && (input.contains('/') || input.ends_with(".aci")) {
            let path = Path::new(input);
            if path.exists() {
                return Ok(ImageRef::File(path.to_owned()));
            }
        }
        if input.starts_with(SCHEME) {
            return Ok(ImageRef::Id(input.parse()?));
        }
        Ok(ImageRef::App(AppRef::parse(input)?))
    }
}

/// An image name resolved against a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The chosen image.
    pub id: ImageId,
    /// How many stored images matched an app string (1 for ids). When more
    /// than one matched, the most recently imported was chosen.
    pub matches: usize,
}

/// One name and the image it stands for, as an item of
/// `resolve --format json`, written by the shared writer
/// (`json_output::Document`) into the `images` list:
///
/// ```text
/// {"name":"example.com/app:1.0","id":"sha512-<128 hex>","matches":1}
/// ```
///
/// `name` is the operand as given, `id` always in full, `matches` how many
/// stored images the name matched (the most recently imported was chosen
/// when more than one did; 1 for ids and prefixes).
#[derive(Debug, Serialize)]
pub struct JsonResolved<'a> {
    name: &'a str,
    id: String,
    matches: usize,
}

impl<'a> JsonResolved<'a> {
    /// The item for `name`, resolved to `resolved`.
    pub fn new(name: &'a str, resolved: &Resolved) -> Self {
        JsonResolved {
            name,
            id: resolved.id.to_string(),
            matches: resolved.matches,
        }
    }
}

/// Resolves an id prefix: exactly one stored blob must match.
pub fn resolve_id(store: &Store, prefix: &IdPrefix) -> Result<ImageId, NamingError> {
    let mut ids = store.ids_with_prefix(prefix)?;
    match ids.len() {
        0 => Err(NamingError::NotFound {
            name: prefix.to_string(),
        }),
        1 => Ok(ids.remove(0)),
        _ => Err(NamingError::Ambiguous {
            prefix: prefix.to_string(),
            candidates: ids,
        }),
    }
}

/// Resolves an app string: among matching images the most recently
/// imported wins (rkt's rule, aci-format §8); equal times fall back to the
/// larger id so the choice is stable.
pub fn resolve_app(store: &Store, app: &AppRef) -> Result<Resolved, NamingError> {
    resolve_app_among(&store.records()?, app).ok_or_else(|| NamingError::NotFound {
        name: app.to_string(),
    })
}

/// [`resolve_app`] against records already read, for callers resolving
/// many app strings against one reading of the store (`None`: no match).
pub fn resolve_app_among(records: &[ImageRecord], app: &AppRef) -> Option<Resolved> {
    let matching = records.iter().filter(|r| app.matches(r));
    let count = matching.clone().count();
    matching
        .max_by_key(|r| (r.import_time_ns, r.id))
        .map(|best| Resolved {
            id: best.id,
            matches: count,
        })
}

/// Resolves an id or app reference against the store. Files are not
/// store images: the caller opens them (see [`crate::image::OpenImage::open_archive`]).
pub fn resolve(store: &Store, image: &ImageRef) -> Result<Resolved, NamingError> {
    match image {
        ImageRef::Id(prefix) => Ok(Resolved {
            id: resolve_id(store, prefix)?,
            matches: 1,
        }),
        ImageRef::App(app) => resolve_app(store, app),
        ImageRef::File(path) => Err(NamingError::NotFound {
            name: path.display().to_string(),
        }),
    }
}

/// [`resolve`] with app strings resolved against `records`, a reading of
/// the store's records the caller already has (ids still against the
/// store): one reading serves a command that also needs the records for
/// something else.
pub fn resolve_among(
    store: &Store,
    records: &[ImageRecord],
    image: &ImageRef,
) -> Result<Resolved, NamingError> {
    match image {
        ImageRef::App(app) => {
            resolve_app_among(records, app).ok_or_else(|| NamingError::NotFound {
                name: app.to_string(),
            })
        }
        other => resolve(store, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_strings_parse_like_discovery() {
        let app = AppRef::parse("example.com/app:1.0,os=linux").unwrap();
        assert_eq!(app.name, "example.com/app");
        assert_eq!(
            app.labels,
            vec![
                ("version".to_owned(), "1.0".to_owned()),
                ("os".to_owned(), "linux".to_owned())
            ]
        );
        assert_eq!(app.to_string(), "example.com/app,version=1.0,os=linux");
        assert!(AppRef::parse("").is_err());
        assert!(AppRef::parse("a:").is_err());
        assert!(AppRef::parse("a,os").is_err());
        assert!(AppRef::parse("a,os=x,os=y").is_err());
        assert!(AppRef::parse("a:1,b:2").is_err());
    }

    #[test]
    fn ids_and_files_are_told_apart() {
        assert!(matches!(
            ImageRef::parse("sha512-ab", false),
            Ok(ImageRef::Id(_))
        ));
        assert!(matches!(
            ImageRef::parse("sha512-a", false),
            Err(NamingError::BadId(_))
        ));
        // A path that does not exist is read as an app string.
        assert!(matches!(
            ImageRef::parse("no/such/file.aci", true),
            Ok(ImageRef::App(_))
        ));
        assert!(matches!(ImageRef::parse("/", true), Ok(ImageRef::File(_))));
        assert!(matches!(ImageRef::parse("/", false), Ok(ImageRef::App(_))));
    }
}
