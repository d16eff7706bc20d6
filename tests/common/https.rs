//! A small HTTPS server for the tests, on 127.0.0.1 with a certificate
//! from a test CA made by `openssl`: it answers for any host name in the
//! certificate (`example.com`, `*.example.com`, `other.example`,
//! `loop.example`), so acido reaches it with `--connect-to
//! HOST:443:127.0.0.1:PORT` and `SSL_CERT_FILE` pointing at the CA. Routes
//! are keyed by host and request target (`example.com/app?ac-discovery=1`);
//! every request is logged. The server stops when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The names the server certificate holds.
pub const HOSTS: [&str; 4] = [
    "example.com",
    "other.example",
    "loop.example",
    "www.example.com",
];

/// The test CA and the server's certificate, made once per test binary.
pub struct TestCa {
    _dir: tempfile::TempDir,
    /// The CA certificate (PEM): what `SSL_CERT_FILE` points at.
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CA, or `None` (with a loud skip) without `openssl`; under `CI` a
/// missing openssl fails the test instead.
pub fn test_ca() -> Option<&'static TestCa> {
    static CA: OnceLock<Option<TestCa>> = OnceLock::new();
    CA.get_or_init(|| {
        let present = Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !present {
            let ci = std::env::var("CI").is_ok_and(|v| v != "false" && v != "0");
            assert!(
                !ci,
                "openssl is not installed (apt-get install openssl); CI must run the HTTPS tests"
            );
            eprintln!("SKIPPED: openssl is not installed (apt-get install openssl)");
            return None;
        }
        Some(make_ca())
    })
    .as_ref()
}

fn make_ca() -> TestCa {
    // Under target/: the static holding it is never dropped.
    let dir = tempfile::Builder::new()
        .prefix("test-ca-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let d = dir.path();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut args = vec!["req", "-x509", "-nodes", "-days", "30"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=acido test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(d, &args);
    let mut args = vec!["req", "-nodes"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=example.com",
    ]);
    openssl(d, &args);
    let sans: Vec<String> = HOSTS.iter().map(|h| format!("DNS:{h}")).collect();
    std::fs::write(
        d.join("ext.cnf"),
        format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
            sans.join(",")
        ),
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
    TestCa {
        ca: d.join("ca.pem"),
        cert: d.join("server.pem"),
        key: d.join("server.key"),
        _dir: dir,
    }
}

/// What a route answers.
#[derive(Clone)]
pub enum Reply {
    /// 200 with this body.
    Body(Vec<u8>),
    /// This status, empty body.
    Status(u16),
    /// 302 to this location.
    Redirect(String),
}

/// The server.
pub struct HttpsServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
}

impl HttpsServer {
    pub fn start(ca: &TestCa) -> HttpsServer {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&ca.cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&ca.key).unwrap();
        // The one provider compiled in (ring, as ureq uses).
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes = Arc::new(Mutex::new(HashMap::new()));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (routes, hits, stop) = (routes.clone(), hits.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (config, routes, hits) = (config.clone(), routes.clone(), hits.clone());
                    thread::spawn(move || serve(stream, config, &routes, &hits));
                }
            })
        };
        HttpsServer {
            port,
            routes,
            hits,
            stop,
            accept: Some(accept),
        }
    }

    /// Answers `key` (`host/path?query`) with `reply`.
    pub fn route(&self, key: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(key.to_owned(), reply);
    }

    /// Serves a file's bytes at `key`.
    pub fn file(&self, key: &str, path: &Path) {
        self.route(key, Reply::Body(std::fs::read(path).unwrap()));
    }

    /// The requests so far (`host/path?query`), in order.
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }

    /// The `--connect-to` options that send every test host here.
    pub fn connect_args(&self) -> Vec<String> {
        HOSTS
            .iter()
            .flat_map(|h| {
                [
                    "--connect-to".to_owned(),
                    format!("{h}:443:127.0.0.1:{}", self.port),
                ]
            })
            .collect()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    routes: &Mutex<HashMap<String, Reply>>,
    hits: &Mutex<Vec<String>>,
) {
    let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(&mut tls);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let mut host = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("host") {
                host = v.trim().split(':').next().unwrap_or("").to_owned();
            }
        }
    }
    let key = format!("{host}{target}");
    hits.lock().unwrap().push(key.clone());
    let reply = routes.lock().unwrap().get(&key).cloned();
    let (status, extra, body) = match reply {
        Some(Reply::Body(body)) => ("200 OK".to_owned(), String::new(), body),
        Some(Reply::Status(code)) => (format!("{code} Status"), String::new(), Vec::new()),
        Some(Reply::Redirect(to)) => (
            "302 Found".to_owned(),
            format!("Location: {to}\r\n"),
            Vec::new(),
        ),
        None => (
            "404 Not Found".to_owned(),
            String::new(),
            b"not found".to_vec(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = tls.write_all(head.as_bytes());
    let _ = tls.write_all(&body);
    tls.conn.send_close_notify();
    let _ = tls.flush();
}
