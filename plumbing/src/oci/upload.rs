//! Pushing to an OCI distribution registry (`docker://HOST/REPO[:TAG]`,
//! oci-bridge §9) what [`super::push::push_to_layout`] wrote into a
//! layout, through the crate's one HTTP client and the registry auth of
//! [`super::registry`]. Blobs the registry has are skipped (`HEAD`); the
//! rest are streamed from the layout's files or the store's layer cache,
//! as one monolithic `PUT` each up to [`UploadOptions::chunk_size`], in
//! `PATCH` chunks above it, a few blobs at once.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageManifest;

use super::digest::{Sha256Digest, Sha256Hasher};
use super::push::LayerBlob;
use super::registry::{DockerReference, RegistryAuth};
use super::OciError;
use crate::http::{Body, Client, Method, Request, Response, Url};
use crate::limits::LimitKind;

/// What [`push_layout_to_registry`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Blobs (layers and config) sent to the registry.
    pub uploaded: usize,
    /// Blobs the registry already had (its `HEAD` answered 200).
    pub skipped: usize,
}

/// The default [`UploadOptions::chunk_size`]: 64 MiB. Below it a blob
/// goes in one request, which is what registries handle best; above it
/// chunks keep each request's body under the caps proxies in front of
/// registries often set, and what a failed request wastes.
pub const DEFAULT_CHUNK_SIZE: u64 = 64 << 20;

/// How blobs are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadOptions {
    /// Blobs larger than this go as `PATCH` chunks of this size (or the
    /// registry's `OCI-Chunk-Min-Length`, if larger), then a closing
    /// `PUT`; the others as one `PUT`. At least 1.
    pub chunk_size: u64,
}

impl Default for UploadOptions {
    fn default() -> UploadOptions {
        UploadOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// [`push_layout_to_registry_with`] with the default options.
pub fn push_layout_to_registry(
    destination: &str,
    layout: &Path,
    manifest_digest: &Sha256Digest,
    reference: &DockerReference,
    client: &Client,
    auth: &RegistryAuth,
) -> Result<UploadReport, OciError> {
    push_layout_to_registry_with(
        destination,
        layout,
        manifest_digest,
        Vec::new(),
        reference,
        client,
        auth,
        &UploadOptions::default(),
    )
}

/// Uploads the image `manifest_digest` names from the OCI image layout
/// `layout` (as [`super::push::push_to_layout`] wrote it) to the registry
/// `reference` names: for every layer and the config a `HEAD` to skip
/// what the registry has, else a `POST` to start an upload and a
/// monolithic `PUT` of the file to the `Location` it answers (which may be
/// relative) with `?digest=`, or for a blob over `options.chunk_size` a
/// `PATCH` per chunk with its `Content-Range`, each to the `Location` the
/// previous answer gave, and a closing `PUT` with `?digest=`; then the
/// manifest `PUT` by tag with its media type. `destination` names the
/// push in errors, each of which also says the step.
///
/// A blob of `layer_blobs` is read from its file rather than from the
/// layout (the store's layer cache, [`super::push::push_to_scratch_layout`]);
/// one from the cache is hashed as it is sent, and the upload fails
/// before its last byte leaves when it is not what its record says, so
/// the registry never receives a complete wrong blob.
#[allow(clippy::too_many_arguments)]
pub fn push_layout_to_registry_with(
    destination: &str,
    layout: &Path,
    manifest_digest: &Sha256Digest,
    layer_blobs: Vec<LayerBlob>,
    reference: &DockerReference,
    client: &Client,
    auth: &RegistryAuth,
    options: &UploadOptions,
) -> Result<UploadReport, OciError> {
    let failed = |step: String, problem: String| OciError::Invalid {
        image: destination.to_owned(),
        what: format!(
            "registry {}, repository {}: {step}",
            reference.host, reference.repository
        ),
        problem,
    };
    let scheme = if client.config().allow_http {
        "http"
    } else {
        "https"
    };
    let base = format!("{scheme}://{}/v2/{}/", reference.host, reference.repository);
    let url = |path: &str, step: &str| {
        crate::http::parse_url(&format!("{base}{path}"))
            .map_err(|e| failed(step.to_owned(), e.to_string()))
    };
    let blob_path = |digest: &Sha256Digest| layout.join("blobs/sha256").join(digest.hex());
    // A refusal with the registry's own explanation (its JSON `errors`,
    // e.g. DIGEST_INVALID when what arrived does not hash to the digest).
    let refusal = |step: String, response: Response| {
        let status = auth.explain(&response.status_error());
        let detail = response
            .read_to_vec(client.config().max_page_size, LimitKind::PageSize)
            .ok()
            .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
            .and_then(|doc| {
                let errors = doc.get("errors")?.as_array()?;
                let texts: Vec<String> = errors
                    .iter()
                    .map(|e| {
                        let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                        let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
                        // Escaped: the registry is untrusted, its text
                        // goes to a terminal.
                        format!("{}: {}", code.escape_debug(), message.escape_debug())
                    })
                    .collect();
                (!texts.is_empty()).then(|| texts.join("; "))
            });
        match detail {
            Some(detail) => failed(step, format!("{status} ({detail})")),
            None => failed(step, status),
        }
    };
    let send = |step: &str, request: Request<'_>| {
        client
            .send(request)
            .map_err(|e| failed(step.to_owned(), auth.explain(&e)))
    };

    let manifest_path = blob_path(manifest_digest);
    let manifest_bytes = std::fs::read(&manifest_path).map_err(|source| OciError::Io {
        path: manifest_path.clone(),
        source,
    })?;
    let manifest: ImageManifest =
        serde_json::from_slice(&manifest_bytes).map_err(|source| OciError::Json {
            image: destination.to_owned(),
            what: "manifest".to_owned(),
            source,
        })?;
    let mut blobs = Vec::with_capacity(manifest.layers().len() + 1);
    for (n, layer) in manifest.layers().iter().enumerate() {
        blobs.push((
            format!("layer {}", n + 1),
            layer.digest().as_ref().to_owned(),
        ));
    }
    blobs.push((
        "config".to_owned(),
        manifest.config().digest().as_ref().to_owned(),
    ));

    let mut external: HashMap<Sha256Digest, LayerBlob> =
        layer_blobs.into_iter().map(|b| (b.digest, b)).collect();
    let mut report = UploadReport::default();
    // Each blob once (two images that change nothing give the same empty
    // layer): a repeat is one the registry has by then.
    let mut jobs = Vec::with_capacity(blobs.len());
    let mut seen = std::collections::HashSet::new();
    for (what, digest) in blobs {
        let digest = Sha256Digest::parse(&digest).map_err(|p| failed(what.clone(), p))?;
        if seen.insert(digest) {
            let blob = external.remove(&digest);
            jobs.push((what, digest, blob));
        } else {
            report.skipped += 1;
        }
    }
    // The first half of a blob's upload: `HEAD`, then `POST`; `None` when
    // the registry has the blob, else where to send it and the smallest
    // chunk the registry wants.
    let start = |what: &str, digest: Sha256Digest| -> Result<Option<(Url, u64)>, OciError> {
        let step = |verb: &str| format!("{verb} {what} {digest}");
        let exists = send(
            &step("checking"),
            Request::new(
                Method::Head,
                url(&format!("blobs/{digest}"), &step("checking"))?,
            )
            .auth(auth),
        )?;
        match exists.status() {
            200 => return Ok(None),
            404 => {}
            _ => return Err(refusal(step("checking"), exists)),
        }
        let started = send(
            &step("starting the upload of"),
            Request::new(
                Method::Post,
                url("blobs/uploads/", &step("starting the upload of"))?,
            )
            .auth(auth),
        )?;
        if started.status() != 202 {
            return Err(refusal(step("starting the upload of"), started));
        }
        let location = next_location(&started).ok_or_else(|| {
            failed(
                step("starting the upload of"),
                "the registry answered without a valid Location".to_owned(),
            )
        })?;
        // The registry may ask for larger chunks than ours; a garbled
        // value is ignored (it is only a wish).
        let min_chunk = started
            .header("oci-chunk-min-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(Some((location, min_chunk)))
    };
    // The second half: the blob's bytes, to `location`.
    let finish = |what: &str,
                  digest: Sha256Digest,
                  blob: Option<LayerBlob>,
                  location: Url,
                  min_chunk: u64|
     -> Result<(), OciError> {
        let step = |verb: &str| format!("{verb} {what} {digest}");
        let (mut source, length): (Box<dyn Read + Send>, u64) = match blob {
            Some(mut blob) => {
                blob.file.rewind().map_err(|source| OciError::Io {
                    path: blob.path.clone(),
                    source,
                })?;
                let length = blob.size;
                if blob.cached {
                    (
                        Box::new(CheckedBlob {
                            inner: blob.file,
                            hasher: Sha256Hasher::new(),
                            size: length,
                            expected: digest,
                            path: blob.path,
                        }),
                        length,
                    )
                } else {
                    (Box::new(blob.file), length)
                }
            }
            None => {
                let path = blob_path(&digest);
                let file = File::open(&path).map_err(|source| OciError::Io {
                    path: path.clone(),
                    source,
                })?;
                let length = file
                    .metadata()
                    .map_err(|source| OciError::Io {
                        path: path.clone(),
                        source,
                    })?
                    .len();
                (Box::new(file), length)
            }
        };
        let chunk = options.chunk_size.max(min_chunk).max(1);
        let mut target = location;
        let body = if length > chunk {
            let mut sent = 0u64;
            let mut n = 0usize;
            while sent < length {
                n += 1;
                let size = chunk.min(length - sent);
                let end = sent + size - 1;
                let step = step(&format!("uploading chunk {n} (bytes {sent}-{end}) of"));
                let patch = send(
                    &step,
                    Request::new(Method::Patch, target.clone())
                        .header("Content-Type", "application/octet-stream")
                        .header("Content-Range", &format!("{sent}-{end}"))
                        .body(Body::Reader {
                            reader: Box::new(BufReader::with_capacity(
                                1 << 20,
                                (&mut source).take(size),
                            )),
                            length: Some(size),
                        })
                        .auth(auth),
                )?;
                if patch.status() != 202 {
                    return Err(refusal(step, patch));
                }
                // The registry says how much it holds: anything but all
                // we sent means a lost or reordered chunk.
                // (Some registries write it with a `bytes=` unit.)
                if let Some(range) = patch.header("range") {
                    let held = range.trim();
                    let held = held.strip_prefix("bytes=").unwrap_or(held);
                    if held != format!("0-{end}") {
                        return Err(failed(
                            step,
                            format!(
                                "the registry holds bytes {} after the chunk, not 0-{end}",
                                range.escape_debug()
                            ),
                        ));
                    }
                }
                target = next_location(&patch).ok_or_else(|| {
                    failed(
                        step.clone(),
                        "the registry answered without a valid Location".to_owned(),
                    )
                })?;
                sent += size;
            }
            // Everything is there: the closing PUT carries no data.
            Body::Empty
        } else {
            Body::Reader {
                reader: Box::new(BufReader::with_capacity(1 << 20, source)),
                length: Some(length),
            }
        };
        target
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let put = send(
            &step("uploading"),
            Request::new(Method::Put, target)
                .header("Content-Type", "application/octet-stream")
                .body(body)
                .auth(auth),
        )?;
        if put.status() != 201 {
            return Err(refusal(step("uploading"), put));
        }
        Ok(())
    };
    // The blobs in order, one at a time, until one is to be sent: its
    // `HEAD` and `POST` settle the registry's auth (a token for pull and
    // push), which the parallel requests after them share instead of
    // each asking the token server.
    let mut jobs = jobs.into_iter();
    let mut work = Vec::new();
    for (what, digest, blob) in jobs.by_ref() {
        if let Some((location, min_chunk)) = start(&what, digest)? {
            work.push((what, digest, blob, Some((location, min_chunk))));
            break;
        }
        report.skipped += 1;
    }
    work.extend(jobs.map(|(what, digest, blob)| (what, digest, blob, None)));
    // Whether the blob was sent (`false`: the registry had it).
    let upload = |(what, digest, blob, started): (
        String,
        Sha256Digest,
        Option<LayerBlob>,
        Option<(Url, u64)>,
    )|
     -> Result<bool, OciError> {
        let started = match started {
            Some(started) => started,
            None => match start(&what, digest)? {
                Some(started) => started,
                None => return Ok(false),
            },
        };
        finish(&what, digest, blob, started.0, started.1)?;
        Ok(true)
    };
    for sent in in_parallel(work, PARALLEL_UPLOADS, upload)? {
        if sent {
            report.uploaded += 1;
        } else {
            report.skipped += 1;
        }
    }

    let tag = reference.tag.as_deref().unwrap_or("latest");
    let step = format!("putting the manifest as tag {tag}");
    let media = manifest
        .media_type()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_owned());
    let put = send(
        &step,
        Request::new(Method::Put, url(&format!("manifests/{tag}"), &step)?)
            .header("Content-Type", &media)
            .body(Body::Bytes(manifest_bytes.into()))
            .auth(auth),
    )?;
    if put.status() != 201 {
        return Err(refusal(step, put));
    }
    // The registry names what it stored; it must be what was sent.
    if let Some(stored) = put.header("docker-content-digest") {
        if stored != manifest_digest.to_string() {
            return Err(OciError::DigestMismatch {
                image: destination.to_owned(),
                what: step,
                expected: manifest_digest.to_string(),
                found: stored.to_owned(),
            });
        }
    }
    Ok(report)
}

/// Blobs sent at once. The registry hashes and stores what it receives,
/// which is most of a push's time: blobs in parallel keep its cores busy,
/// as skopeo's parallel copies do.
const PARALLEL_UPLOADS: usize = 3;

/// Runs `job` over `jobs` on up to `threads` threads; the results in the
/// jobs' order, or the error of the first job (in that order) that
/// failed. Once one fails, no new job starts.
fn in_parallel<J: Send, T: Send, E: Send>(
    jobs: Vec<J>,
    threads: usize,
    job: impl Fn(J) -> Result<T, E> + Sync,
) -> Result<Vec<T>, E> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    let count = jobs.len();
    let queue = Mutex::new(jobs.into_iter().enumerate());
    let results: Mutex<Vec<Option<Result<T, E>>>> = Mutex::new((0..count).map(|_| None).collect());
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, count.max(1)) {
            scope.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                // A poisoned lock means a sibling panicked; the scope
                // re-raises that panic.
                let Some((n, next)) = queue.lock().ok().and_then(|mut q| q.next()) else {
                    return;
                };
                let result = job(next);
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                if let Ok(mut results) = results.lock() {
                    results[n] = Some(result);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    // Jobs not run (after a failure) are `None`; a failure comes first.
    let mut out = Vec::with_capacity(count);
    let mut missing = false;
    for result in results {
        match result {
            Some(Ok(value)) => out.push(value),
            Some(Err(e)) => return Err(e),
            None => missing = true,
        }
    }
    debug_assert!(!missing, "a job was not run although none failed");
    Ok(out)
}

/// The `Location` an upload step answered, resolved against the request's
/// URL (it may be relative, and keeps its query: registry 2.8 carries its
/// upload state there).
fn next_location(response: &Response) -> Option<Url> {
    response
        .header("location")
        .and_then(|loc| response.url().join(loc).ok())
}

/// A layer cache blob being sent: hashed as it is read, and failing
/// instead of yielding its last bytes when it is not `size` bytes hashing
/// to `expected`, so a damaged entry never reaches the registry whole.
struct CheckedBlob {
    inner: File,
    hasher: Sha256Hasher,
    size: u64,
    expected: Sha256Digest,
    path: PathBuf,
}

impl Read for CheckedBlob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size - self.hasher.len();
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        let damaged = |problem: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "layer cache entry {} {problem} (acido fsck --repair removes it)",
                    self.path.display()
                ),
            )
        };
        if n == 0 {
            return Err(damaged(format!(
                "ends after {} bytes, its record says {}",
                self.hasher.len(),
                self.size
            )));
        }
        self.hasher.update(&buf[..n]);
        if self.hasher.len() == self.size {
            let found = self.hasher.clone().finish();
            if found != self.expected {
                return Err(damaged(format!(
                    "hashes to {found}, not its recorded {}",
                    self.expected
                )));
            }
        }
        Ok(n)
    }
}
