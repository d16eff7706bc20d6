//! A purpose-built registry for misbehaviour a real one cannot be made to
//! show (issue 11, "Bad input"): plain HTTP on 127.0.0.1 with a free port,
//! a thread per connection, one request per connection (`Connection:
//! close`). It serves one image (`/v2/test/img/manifests/t`, its config
//! and its layer) and misbehaves as its [`Fault`] says. Every request
//! line is logged. Dropping it stops the listener and wakes any stalled
//! connection.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How the server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// None: a well-behaved registry.
    None,
    /// The layer starts as a chunked 200, half of it arrives, then the
    /// connection drops without the last chunk: what a proxy passes on
    /// when the backend fails with a 500 mid-blob.
    FailMidBlob,
    /// The layer's GET answers 500.
    LayerStatus500,
    /// The layer announces its full Content-Length, sends half, and
    /// closes.
    Truncated,
    /// The layer announces its full Content-Length, sends half, and then
    /// says nothing (until dropped, or 60 s).
    Stall,
    /// The layer's blob URL redirects to another URL that redirects back.
    BlobRedirectLoop,
    /// The manifest's URL redirects to another URL that redirects back.
    ManifestRedirectLoop,
}

/// The served image's documents.
#[derive(Debug, Clone)]
pub struct ServedImage {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
}

pub fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

impl ServedImage {
    /// An image of the one layer `layer`, of `media` type, whose
    /// uncompressed tar is `tar` (for the diff id).
    pub fn new(layer: Vec<u8>, media: &str, tar: &[u8]) -> ServedImage {
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]}
        })
        .to_string()
        .into_bytes();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(&config),
                "size": config.len()
            },
            "layers": [{"mediaType": media, "digest": sha256(&layer), "size": layer.len()}]
        })
        .to_string()
        .into_bytes();
        ServedImage {
            manifest,
            config,
            layer,
        }
    }
}

pub struct HostileRegistry {
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl HostileRegistry {
    pub fn start(image: ServedImage, fault: Fault) -> HostileRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let image = Arc::new(image);
        let (l, s) = (Arc::clone(&log), Arc::clone(&stop));
        thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (l, s, image) = (Arc::clone(&l), Arc::clone(&s), Arc::clone(&image));
                thread::spawn(move || serve(stream, &image, fault, &l, &s));
            }
        });
        HostileRegistry { port, log, stop }
    }

    /// `docker://127.0.0.1:PORT/test/img:t`.
    pub fn reference(&self) -> String {
        format!("docker://127.0.0.1:{}/test/img:t", self.port)
    }

    /// The request lines seen so far (`GET /v2/...`).
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn serve(
    mut stream: TcpStream,
    image: &ServedImage,
    fault: Fault,
    log: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let line = line.trim_end().to_owned();
    // The headers are read and ignored: every answer is the same for
    // every client.
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    log.lock().unwrap().push(line.clone());
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let base = "/v2/test/img";
    let config_path = format!("{base}/blobs/{}", sha256(&image.config));
    let layer_path = format!("{base}/blobs/{}", sha256(&image.layer));
    let manifest_path = format!("{base}/manifests/t");
    let body = |b: &[u8]| {
        if method == "HEAD" {
            Vec::new()
        } else {
            b.to_vec()
        }
    };
    let half = image.layer.len() / 2;
    match path {
        "/v2/" => respond(&mut stream, "200 OK", &[], b"{}"),
        p if p == manifest_path && fault == Fault::ManifestRedirectLoop => respond(
            &mut stream,
            "302 Found",
            &[("Location", "/elsewhere/manifest".to_owned())],
            b"",
        ),
        "/elsewhere/manifest" => respond(
            &mut stream,
            "302 Found",
            &[("Location", manifest_path.clone())],
            b"",
        ),
        p if p == manifest_path => respond(
            &mut stream,
            "200 OK",
            &[(
                "Content-Type",
                "application/vnd.oci.image.manifest.v1+json".to_owned(),
            )],
            &body(&image.manifest),
        ),
        p if p == config_path => respond(&mut stream, "200 OK", &[], &body(&image.config)),
        p if p == layer_path => match fault {
            Fault::None | Fault::ManifestRedirectLoop => {
                respond(&mut stream, "200 OK", &[], &body(&image.layer))
            }
            Fault::LayerStatus500 => respond(
                &mut stream,
                "500 Internal Server Error",
                &[],
                b"backend exploded",
            ),
            Fault::BlobRedirectLoop => respond(
                &mut stream,
                "307 Temporary Redirect",
                &[("Location", "/elsewhere/blob".to_owned())],
                b"",
            ),
            Fault::FailMidBlob => {
                let head =
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(format!("{half:x}\r\n").as_bytes());
                let _ = stream.write_all(&image.layer[..half]);
                let _ = stream.write_all(b"\r\n");
                let _ = stream.flush();
            }
            Fault::Truncated | Fault::Stall => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    image.layer.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&image.layer[..half]);
                let _ = stream.flush();
                if fault == Fault::Stall {
                    let start = Instant::now();
                    while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60)
                    {
                        thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        },
        "/elsewhere/blob" => respond(
            &mut stream,
            "307 Temporary Redirect",
            &[("Location", layer_path.clone())],
            b"",
        ),
        _ => respond(&mut stream, "404 Not Found", &[], b""),
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
