//! Image references in the containers-image transport syntax that skopeo
//! and podman users know (oci-bridge §5, §6): `oci:DIR[:TAG]` for an OCI
//! image layout and `docker-archive:FILE[:NAME:TAG]` for a `docker save`
//! tarball.

use std::fmt;
use std::path::PathBuf;

use super::OciError;

/// Where an image is read from or written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// An OCI image layout directory, optionally one tag in it (the
    /// `org.opencontainers.image.ref.name` annotation of an `index.json`
    /// entry). Without a tag the index must hold exactly one image.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// The tag, if one was given.
        tag: Option<String>,
    },
    /// A `docker save` tarball, optionally one of its `RepoTags`
    /// (`name:tag`). Without one the tarball must hold exactly one image.
    DockerArchive {
        /// The tarball.
        file: PathBuf,
        /// The `RepoTags` entry to pick, if given.
        repo_tag: Option<String>,
    },
    /// An image in a registry (`docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`).
    Docker(super::registry::DockerReference),
}

impl Reference {
    /// Parses a reference. As skopeo does, the path ends at the first `:`
    /// after the transport, so a path cannot contain one.
    pub fn parse(text: &str) -> Result<Reference, OciError> {
        let bad = |problem: &str| OciError::BadReference {
            reference: text.to_owned(),
            problem: problem.to_owned(),
        };
        if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, tag) = match rest.split_once(':') {
                Some((dir, tag)) => (dir, Some(tag)),
                None => (rest, None),
            };
            if dir.is_empty() {
                return Err(bad("no layout directory given"));
            }
            if let Some(tag) = tag {
                check_tag(tag).map_err(|p| bad(&p))?;
            }
            return Ok(Reference::Layout {
                dir: PathBuf::from(dir),
                tag: tag.map(str::to_owned),
            });
        }
        if let Some(rest) = text.strip_prefix("docker-archive:") {
            let (file, repo_tag) = match rest.split_once(':') {
                Some((file, repo_tag)) => (file, Some(repo_tag)),
                None => (rest, None),
            };
            if file.is_empty() {
                return Err(bad("no archive file given"));
            }
            if repo_tag.is_some_and(str::is_empty) {
                return Err(bad("empty image name after the file"));
            }
            return Ok(Reference::DockerArchive {
                file: PathBuf::from(file),
                repo_tag: repo_tag.map(str::to_owned),
            });
        }
        if let Some(rest) = text.strip_prefix("docker://") {
            return super::registry::DockerReference::parse(rest)
                .map(Reference::Docker)
                .map_err(|p| bad(&p));
        }
        Err(bad(
            "unknown transport (supported: docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:TAG], docker-archive:FILE[:NAME:TAG])",
        ))
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Layout { dir, tag } => {
                write!(f, "oci:{}", dir.display())?;
                if let Some(tag) = tag {
                    write!(f, ":{tag}")?;
                }
                Ok(())
            }
            Reference::DockerArchive { file, repo_tag } => {
                write!(f, "docker-archive:{}", file.display())?;
                if let Some(tag) = repo_tag {
                    write!(f, ":{tag}")?;
                }
                Ok(())
            }
            Reference::Docker(r) => {
                write!(f, "docker://{}/{}", r.host, r.repository)?;
                if let Some(tag) = &r.tag {
                    write!(f, ":{tag}")?;
                }
                if let Some(digest) = &r.digest {
                    write!(f, "@{digest}")?;
                }
                Ok(())
            }
        }
    }
}

/// The layout tag grammar (image-spec `annotations.md`, oci-bridge §5):
/// `/`-separated components of alphanumerics joined by one of `-._:@+`
/// or by `--`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        if bytes.is_empty()
            || !bytes[0].is_ascii_alphanumeric()
            || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            if bytes[i..].starts_with(b"--") {
                i += 2;
            } else if b"-._:@+".contains(&bytes[i]) {
                i += 1;
            } else {
                return false;
            }
            if !bytes.get(i).is_some_and(u8::is_ascii_alphanumeric) {
                return false;
            }
        }
        true
    };
    if tag.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(format!("tag {tag:?} is not a valid image layout tag"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse_as_skopeo_splits_them() {
        assert_eq!(
            Reference::parse("oci:/tmp/l:v1.0").unwrap(),
            Reference::Layout {
                dir: "/tmp/l".into(),
                tag: Some("v1.0".into())
            }
        );
        assert_eq!(
            Reference::parse("oci:dir").unwrap(),
            Reference::Layout {
                dir: "dir".into(),
                tag: None
            }
        );
        assert_eq!(
            Reference::parse("docker-archive:a.tar:busybox:latest").unwrap(),
            Reference::DockerArchive {
                file: "a.tar".into(),
                repo_tag: Some("busybox:latest".into())
            }
        );
        assert!(Reference::parse("oci:").is_err());
        assert!(Reference::parse("oci:d:bad tag").is_err());
        assert!(Reference::parse("dir:/x").is_err());
        assert!(Reference::parse("docker://localhost:5000/a:b").is_ok());
        assert_eq!(
            Reference::parse("oci:/tmp/l:v1").unwrap().to_string(),
            "oci:/tmp/l:v1"
        );
    }

    #[test]
    fn the_tag_grammar_is_the_specs() {
        for good in ["latest", "v1.0", "a--b", "x/y:z", "1"] {
            assert!(check_tag(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "a..b", "a b", "a/", "a---b"] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }
}
