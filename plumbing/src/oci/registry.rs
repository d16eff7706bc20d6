//! Pulling from an OCI distribution registry (`docker://HOST/REPO[:TAG|@DIGEST]`,
//! oci-bridge §7) through the crate's one HTTP client ([`crate::http`]):
//! the manifest (every manifest and index type accepted), platform
//! selection, the config and the layers, each checked against its digest
//! and size as it streams. Authentication answers the registry's
//! challenges: anonymous, Basic (with credentials) and the Bearer token
//! flow.

use std::sync::{Arc, Mutex};

use oci_spec::image::{ImageIndex, ImageManifest};

use super::digest::{Sha256Digest, VerifyingReader};
use super::source::{
    choose_platform, layer_compression, Ctx, LayerBlob, Location, Opened, Platform, SourceImage,
};
use super::OciError;
use crate::http::{Auth, Client, HttpError, Request, Url};
use crate::limits::{LimitExceeded, LimitKind, Limits};

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
const MAX_INDEX_DEPTH: usize = 4;

/// A `docker://` reference, normalised as containers/image does: a first
/// component without `.` or `:` (and not `localhost`) is docker.io's, a
/// one-component docker.io name gets `library/`, the tag defaults to
/// `latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerReference {
    /// The registry host (and port); `registry-1.docker.io` for docker.io.
    pub host: String,
    /// The repository.
    pub repository: String,
    /// The tag, when the reference is not by digest.
    pub tag: Option<String>,
    /// The manifest digest, when given.
    pub digest: Option<Sha256Digest>,
}

impl DockerReference {
    /// The image's name as a pull names it: registry and repository,
    /// docker.io's registry spelled `docker.io`.
    pub fn name_hint(&self) -> String {
        match self.host.as_str() {
            "registry-1.docker.io" => format!("docker.io/{}", self.repository),
            host => format!("{host}/{}", self.repository),
        }
    }

    /// Parses what follows `docker://`.
    pub fn parse(text: &str) -> Result<DockerReference, String> {
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(Sha256Digest::parse(digest)?)),
            None => (text, None),
        };
        let (host, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path.to_owned())
            }
            _ => ("docker.io".to_owned(), rest.to_owned()),
        };
        // A tag is after the last `:` of the last component.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_owned(), Some(tag.to_owned())),
            _ => (path, None),
        };
        let valid_component = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if !repository.split('/').all(valid_component) {
            return Err(format!("repository {repository:?} is not a valid name"));
        }
        if let Some(tag) = &tag {
            let ok = tag.len() <= 128
                && tag
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err(format!("tag {tag:?} is not a valid tag"));
            }
        }
        let (host, repository) = if host == "docker.io" || host == "index.docker.io" {
            let repo = if repository.contains('/') {
                repository
            } else {
                format!("library/{repository}")
            };
            ("registry-1.docker.io".to_owned(), repo)
        } else {
            (host, repository)
        };
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            _ => tag,
        };
        Ok(DockerReference {
            host,
            repository,
            tag,
            digest,
        })
    }

    /// The tag or digest a manifest GET asks for.
    fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }
}

/// Credentials and the token the registry granted.
#[derive(Debug, Default)]
pub struct RegistryAuth {
    /// `user` and `password`, when given.
    pub credentials: Option<(String, String)>,
    /// Why no credentials could be had although some were configured (an
    /// auth file names a credential helper, ...): added to a 401's error.
    pub unusable: Option<String>,
    state: Mutex<AuthState>,
}

#[derive(Debug, Default, Clone)]
enum AuthState {
    #[default]
    None,
    Basic,
    Bearer(String),
}

impl RegistryAuth {
    /// Auth with optional credentials.
    pub fn new(credentials: Option<(String, String)>) -> RegistryAuth {
        RegistryAuth {
            credentials,
            unusable: None,
            state: Mutex::new(AuthState::None),
        }
    }

    /// The auth for `reference`: `credentials` when given (`--creds`
    /// beats files), else what `files` hold for its registry and
    /// repository ([`super::authfile::credentials_for`]).
    pub fn resolve(
        credentials: Option<(String, String)>,
        files: &[super::authfile::AuthFileCandidate],
        reference: &DockerReference,
    ) -> Result<RegistryAuth, OciError> {
        if credentials.is_some() {
            return Ok(RegistryAuth::new(credentials));
        }
        let found =
            super::authfile::credentials_for(files, &reference.host, &reference.repository)?;
        Ok(RegistryAuth::from_found(found))
    }

    /// Auth from what the auth files hold ([`super::authfile`]).
    pub fn from_found(found: super::authfile::FoundCredentials) -> RegistryAuth {
        RegistryAuth {
            unusable: found.unusable,
            ..RegistryAuth::new(found.credentials)
        }
    }

    /// `error` as the text an error message shows; a 401 says why no
    /// credentials were sent when the auth files named some acido cannot
    /// use.
    pub fn explain(&self, error: &HttpError) -> String {
        match (error, &self.unusable) {
            (HttpError::Status { status: 401, .. }, Some(why)) if self.credentials.is_none() => {
                format!("{error} (no credentials sent: {why})")
            }
            _ => error.to_string(),
        }
    }

    fn basic(&self) -> Option<String> {
        let (user, pass) = self.credentials.as_ref()?;
        Some(format!(
            "Basic {}",
            base64(format!("{user}:{pass}").as_bytes())
        ))
    }
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One `WWW-Authenticate` challenge: the scheme and its parameters, read
/// as RFC 7235 says (quoted values may hold commas).
fn parse_challenge(value: &str) -> (String, Vec<(String, String)>) {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(next) = chars.next() {
                            val.push(next);
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                val.push(*c);
                chars.next();
            }
        }
        params.push((key.trim().to_ascii_lowercase(), val.trim().to_owned()));
    }
    (scheme.to_ascii_lowercase(), params)
}

/// The token server's URL for a Bearer challenge: `realm` with its
/// `service` and one `scope` parameter per scope the challenge names. A
/// challenge lists several scopes space-separated in one parameter (a
/// cross-repository mount needs pull on the source too); the token
/// specification asks for each as its own `scope` query parameter, and
/// token servers that read one scope per parameter would grant none of a
/// joined string.
fn token_url(realm: &str, service: Option<&str>, scope: Option<&str>) -> Result<Url, HttpError> {
    let mut url = crate::http::parse_url(realm)?;
    let pairs: Vec<(&str, &str)> = service
        .map(|s| ("service", s))
        .into_iter()
        .chain(
            scope
                .unwrap_or_default()
                .split_whitespace()
                .map(|s| ("scope", s)),
        )
        .collect();
    // Not even a bare `?` when there is nothing to add.
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    Ok(url)
}

impl Auth for RegistryAuth {
    fn authorization(&self, _url: &Url) -> Option<String> {
        // The client asks per hop and never sends this across hosts on a
        // redirect (crate::http); the state is for this registry only.
        match &*self.state.lock().ok()? {
            AuthState::None => None,
            AuthState::Basic => self.basic(),
            AuthState::Bearer(token) => Some(format!("Bearer {token}")),
        }
    }

    fn challenge(
        &self,
        client: &Client,
        url: &Url,
        www_authenticate: &[String],
    ) -> Result<bool, HttpError> {
        for value in www_authenticate {
            let (scheme, params) = parse_challenge(value);
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            };
            match scheme.as_str() {
                "basic" if self.credentials.is_some() => {
                    if let Ok(mut state) = self.state.lock() {
                        *state = AuthState::Basic;
                    }
                    return Ok(true);
                }
                "bearer" => {
                    let Some(realm) = get("realm") else { continue };
                    let token_url =
                        token_url(&realm, get("service").as_deref(), get("scope").as_deref())?;
                    let mut request = Request::get(token_url);
                    let basic = self.basic();
                    if let Some(basic) = &basic {
                        request = request.header("Authorization", basic);
                    }
                    let response = client.send(request)?.error_for_status()?;
                    let body =
                        response.read_to_vec(client.config().max_page_size, LimitKind::PageSize)?;
                    let reply: serde_json::Value =
                        serde_json::from_slice(&body).map_err(|_| HttpError::Auth {
                            url: url.to_string(),
                            message: "the token server's reply is not JSON".to_owned(),
                        })?;
                    let token = reply
                        .get("token")
                        .or_else(|| reply.get("access_token"))
                        .and_then(|t| t.as_str())
                        .ok_or_else(|| HttpError::Auth {
                            url: url.to_string(),
                            message: "the token server gave no token".to_owned(),
                        })?;
                    if let Ok(mut state) = self.state.lock() {
                        *state = AuthState::Bearer(token.to_owned());
                    }
                    return Ok(true);
                }
                _ => {}
            }
        }
        Ok(false)
    }
}

/// The registry connection an image's layers are read through.
pub struct Remote {
    client: Client,
    auth: RegistryAuth,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Remote")
    }
}

impl Remote {
    /// Opens `url` (a blob) for streaming, at most `max` bytes.
    pub(super) fn open(&self, url: &Url, max: u64) -> Result<crate::http::BodyReader, HttpError> {
        let response = self
            .client
            .send(Request::get(url.clone()).auth(&self.auth))?
            .error_for_status()?;
        response.into_reader(max, LimitKind::BlobSize)
    }
}

/// Reads the image `reference` names from its registry.
pub fn open_remote(
    image: &str,
    reference: &DockerReference,
    client: Client,
    auth: RegistryAuth,
    platform: &Platform,
    limits: &Limits,
) -> Result<Opened, OciError> {
    let remote = Arc::new(Remote { client, auth });
    let scheme = if remote.client.config().allow_http {
        "http"
    } else {
        "https"
    };
    let base = format!("{scheme}://{}/v2/{}/", reference.host, reference.repository);
    let http_err = |source: HttpError| OciError::Invalid {
        image: image.to_owned(),
        what: "registry".to_owned(),
        problem: remote.auth.explain(&source),
    };
    // The document checks are those of a layout or archive source, so a
    // registry image is refused in the same words.
    let ctx = Ctx {
        image: image.to_owned(),
        limits,
    };
    let url = |path: &str| crate::http::parse_url(&format!("{base}{path}")).map_err(http_err);
    let fetch_doc = |path: &str,
                     what: &str,
                     expected: Option<Sha256Digest>|
     -> Result<(Vec<u8>, String, Sha256Digest), OciError> {
        let response = remote
            .client
            .send(
                Request::get(url(path)?)
                    .header("Accept", ACCEPT)
                    .auth(&remote.auth),
            )
            .map_err(http_err)?
            .error_for_status()
            .map_err(http_err)?;
        let media = response
            .header("content-type")
            .map(|t| t.split(';').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default();
        let bytes = response
            .read_to_vec(limits.max_oci_document_size, LimitKind::OciDocumentSize)
            .map_err(|source| match crate::limit_kind(&source) {
                Some(_) => OciError::LimitExceeded {
                    image: image.to_owned(),
                    what: what.to_owned(),
                    limit: LimitExceeded::new(LimitKind::OciDocumentSize),
                    value: limits.max_oci_document_size + 1,
                    max: limits.max_oci_document_size,
                },
                None => http_err(source),
            })?;
        let found = Sha256Digest::of(&bytes);
        if let Some(expected) = expected {
            if found != expected {
                return Err(OciError::DigestMismatch {
                    image: image.to_owned(),
                    what: what.to_owned(),
                    expected: expected.to_string(),
                    found: found.to_string(),
                });
            }
        }
        Ok((bytes, media, found))
    };

    let (mut bytes, mut media, mut digest) = fetch_doc(
        &format!("manifests/{}", reference.reference()),
        "manifest",
        reference.digest,
    )?;
    let mut depth = 0;
    loop {
        let doc: serde_json::Value = ctx.json("manifest", &bytes)?;
        // The body's own mediaType wins over a missing or generic header.
        if let Some(own) = doc.get("mediaType").and_then(|m| m.as_str()) {
            media = own.to_owned();
        } else if doc.get("manifests").is_some() {
            media = "application/vnd.oci.image.index.v1+json".to_owned();
        }
        match media.as_str() {
            "application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json" => {
                depth += 1;
                if depth > MAX_INDEX_DEPTH {
                    return Err(ctx.invalid("index", "indexes nested too deeply".to_owned()));
                }
                let index: ImageIndex = ctx.json("index", &bytes)?;
                let chosen = choose_platform(&ctx, index.manifests(), platform)?;
                let want = Sha256Digest::parse(chosen.digest().as_ref())
                    .map_err(|p| ctx.invalid("index", p))?;
                (bytes, media, digest) =
                    fetch_doc(&format!("manifests/{want}"), "manifest", Some(want))?;
            }
            _ => break,
        }
    }
    let manifest: ImageManifest = ctx.json("manifest", &bytes)?;
    if super::artifact::is_aci_artifact(&manifest) {
        return super::artifact::artifact_of(&ctx, &manifest, digest, |blob| {
            Ok(Location::Remote {
                remote: Arc::clone(&remote),
                url: url(&format!("blobs/{blob}"))?,
            })
        })
        .map(Opened::Artifact);
    }
    ctx.check_layer_count(manifest.layers().len())?;
    let config_d = manifest.config();
    let config_digest = ctx.digest_of("config", config_d)?;
    ctx.json_limit("config", config_d.size())?;
    let (config_bytes, _, _) = fetch_doc(
        &format!("blobs/{config_digest}"),
        "config",
        Some(config_digest),
    )?;
    // fetch_doc has checked the digest; this adds the size.
    ctx.check_bytes("config", config_d, &config_bytes)?;
    let (config, diff_ids) = ctx.config(&config_bytes, manifest.layers().len())?;
    let mut layers = Vec::new();
    for (n, (d, diff_id)) in manifest.layers().iter().zip(diff_ids).enumerate() {
        let what = format!("layer {}", n + 1);
        let compression = layer_compression(&ctx, &what, d.media_type().as_ref())?;
        if d.size() > limits.max_blob_size {
            return Err(OciError::LimitExceeded {
                image: image.to_owned(),
                what,
                limit: LimitExceeded::new(LimitKind::BlobSize),
                value: d.size(),
                max: limits.max_blob_size,
            });
        }
        let layer_digest =
            Sha256Digest::parse(d.digest().as_ref()).map_err(|p| ctx.invalid(&what, p))?;
        layers.push(LayerBlob {
            digest: Some(layer_digest),
            size: Some(d.size()),
            diff_id,
            compression,
            location: Location::Remote {
                remote: Arc::clone(&remote),
                url: url(&format!("blobs/{layer_digest}"))?,
            },
        });
    }
    let name = reference.name_hint();
    Ok(Opened::Image(Box::new(SourceImage {
        image: image.to_owned(),
        manifest_digest: Some(digest),
        annotations: manifest.annotations().clone().unwrap_or_default(),
        config_bytes,
        config_digest,
        config,
        layers,
        name_hint: (name, reference.tag.clone()),
    })))
}

/// A layer blob from the registry, checked as it streams.
pub(super) fn open_remote_layer(
    remote: &Remote,
    url: &Url,
    layer: &LayerBlob,
) -> Result<Box<dyn std::io::Read + Send>, HttpError> {
    let max = layer.size.unwrap_or(u64::MAX);
    let reader = remote.open(url, max)?;
    Ok(Box::new(VerifyingReader::new(
        reader,
        layer.digest,
        layer.size,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_as_containers_image_does() {
        let r = DockerReference::parse("alpine").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("registry-1.docker.io", "library/alpine", Some("latest"))
        );
        let r = DockerReference::parse("myreg/x").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str()),
            ("registry-1.docker.io", "myreg/x")
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = DockerReference::parse(&format!("localhost:5000/a/b@{d}")).unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "a/b", None)
        );
        assert_eq!(r.digest.unwrap().to_string(), d);
        let r = DockerReference::parse("127.0.0.1:5000/app:1.0").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "app", Some("1.0"))
        );
        assert!(DockerReference::parse("localhost/UPPER").is_err());
    }

    #[test]
    fn each_challenged_scope_is_its_own_query_parameter() {
        let url = token_url(
            "https://auth.example/token?x=1",
            Some("registry.example"),
            Some("repository:a/b:pull,push  repository:c:pull"),
        )
        .unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let expected: Vec<(String, String)> = [
            ("x", "1"),
            ("service", "registry.example"),
            ("scope", "repository:a/b:pull,push"),
            ("scope", "repository:c:pull"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(pairs, expected);
        let bare = token_url("https://auth.example/token", None, None).unwrap();
        assert_eq!(bare.query(), None);
    }

    #[test]
    fn challenges_keep_quoted_commas() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="insufficient_scope""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(
            params[2],
            ("scope".to_owned(), "repository:a/b:pull,push".to_owned())
        );
        assert_eq!(params[3].1, "insufficient_scope");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
