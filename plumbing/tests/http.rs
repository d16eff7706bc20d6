//! The HTTP client against a real server on loopback (plain HTTP, which
//! the client allows only when asked): redirects and their bounds, body
//! bounds, the auth hook across hosts, streamed uploads, host overrides
//! and the idle timeout. TLS is covered end to end by the CLI tests
//! (tests/fetch.rs) with a test CA.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use acido_plumbing::http::{
    parse_url, Auth, Body, Client, ConnectTo, HttpConfig, HttpError, Method, Request, Url,
};
use acido_plumbing::limits::{limit_kind, LimitKind, Limits};

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Seen) -> Vec<u8> + Send + Sync;

/// A one-request-per-connection HTTP/1.1 server on 127.0.0.1; it stops
/// when dropped (the accept loop ends at the next connection or exit).
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(handler: impl Fn(&Seen) -> Vec<u8> + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = Arc::clone(&seen);
        thread::spawn(move || {
            for stream in listener.incoming().take(64) {
                let Ok(stream) = stream else { break };
                let handler = Arc::clone(&handler);
                let log = Arc::clone(&log);
                thread::spawn(move || serve(stream, &*handler, &log));
            }
        });
        Server { port, seen }
    }

    fn url(&self, path: &str) -> Url {
        parse_url(&format!("http://127.0.0.1:{}{path}", self.port)).unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut seen = Seen {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = seen.header("content-length") {
        let mut body = vec![0; len.parse().unwrap()];
        reader.read_exact(&mut body).unwrap();
        seen.body = body;
    }
    log.lock().unwrap().push(seen.clone());
    let response = handler(&seen);
    let mut stream = stream;
    let _ = stream.write_all(&response);
}

fn respond(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn client_with(limits: &Limits, tweak: impl FnOnce(&mut HttpConfig)) -> Client {
    let mut config = HttpConfig::new(limits);
    config.allow_http = true;
    tweak(&mut config);
    Client::new(config).unwrap()
}

fn client() -> Client {
    client_with(&Limits::default(), |_| {})
}

/// `/hop/N` redirects to `/hop/N-1`; `/hop/0` answers.
fn hops() -> Server {
    Server::start(|seen| {
        let n: u32 = seen
            .path
            .strip_prefix("/hop/")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if n == 0 {
            respond("200 OK", &[], b"arrived")
        } else {
            let next = format!("/hop/{}", n - 1);
            respond("302 Found", &[("Location", &next)], b"")
        }
    })
}

#[test]
fn redirects_are_followed_up_to_the_bound() {
    let server = hops();
    let response = client().get(&server.url("/hop/10")).unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.url().path(), "/hop/0");
    assert_eq!(
        response.read_to_vec(100, LimitKind::PageSize).unwrap(),
        b"arrived"
    );

    let err = client().get(&server.url("/hop/11")).unwrap_err();
    assert!(
        matches!(err, HttpError::TooManyRedirects { max: 10, .. }),
        "{err}"
    );
    assert_eq!(limit_kind(&err), Some(LimitKind::Redirects));
    assert!(err.to_string().contains("more than 10 redirects"), "{err}");

    let raised = Limits {
        max_redirects: 11,
        ..Limits::default()
    };
    let response = client_with(&raised, |_| {})
        .get(&server.url("/hop/11"))
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn a_redirect_loop_is_refused_at_once() {
    let server = Server::start(|seen| {
        let next = if seen.path == "/a" { "/b" } else { "/a" };
        respond("301 Moved Permanently", &[("Location", next)], b"")
    });
    let err = client().get(&server.url("/a")).unwrap_err();
    assert!(matches!(err, HttpError::RedirectLoop { .. }), "{err}");
    assert_eq!(server.seen().len(), 2, "stopped when /a came round again");
    assert!(err.to_string().starts_with("redirect loop: "), "{err}");
}

#[test]
fn plain_http_and_redirects_to_it_need_permission() {
    let server = hops();
    let https_only = client_with(&Limits::default(), |c| c.allow_http = false);
    let err = https_only.get(&server.url("/hop/0")).unwrap_err();
    assert!(matches!(err, HttpError::PlainHttp { .. }), "{err}");
    assert!(server.seen().is_empty(), "nothing was sent");
}

#[test]
fn bodies_over_their_bound_are_errors_naming_it() {
    let server = Server::start(|seen| match seen.path.as_str() {
        "/declared" => respond("200 OK", &[], &[b'x'; 2000]),
        _ => {
            // No length: the bound is found while reading.
            let mut out = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
            out.extend_from_slice(&[b'y'; 2000]);
            out
        }
    });
    for path in ["/declared", "/streamed"] {
        let response = client().get(&server.url(path)).unwrap();
        let err = response.read_to_vec(1000, LimitKind::PageSize).unwrap_err();
        assert!(
            matches!(err, HttpError::BodyTooLarge { max: 1000, .. }),
            "{path}: {err}"
        );
        assert_eq!(limit_kind(&err), Some(LimitKind::PageSize), "{path}");
    }
    // Exactly at the bound is fine.
    let response = client().get(&server.url("/streamed")).unwrap();
    assert_eq!(
        response
            .read_to_vec(2000, LimitKind::PageSize)
            .unwrap()
            .len(),
        2000
    );
}

/// Answers a 401 challenge with a token for one origin only.
struct TokenAuth {
    origin: String,
    token: RefCell<Option<String>>,
    challenges: RefCell<Vec<String>>,
}

impl Auth for TokenAuth {
    fn authorization(&self, url: &Url) -> Option<String> {
        let origin = url.origin().ascii_serialization();
        (origin == self.origin)
            .then(|| self.token.borrow().clone())
            .flatten()
    }

    fn challenge(
        &self,
        _client: &Client,
        _url: &Url,
        www_authenticate: &[String],
    ) -> Result<bool, HttpError> {
        self.challenges
            .borrow_mut()
            .extend(www_authenticate.iter().cloned());
        *self.token.borrow_mut() = Some("Bearer t0k3n".to_owned());
        Ok(true)
    }
}

#[test]
fn the_auth_hook_answers_a_challenge_and_credentials_stay_with_their_host() {
    let blobs = Server::start(|_| respond("200 OK", &[], b"blob"));
    let blob_url = blobs.url("/blob").to_string();
    let registry = Server::start(move |seen| match seen.header("authorization") {
        None => respond(
            "401 Unauthorized",
            &[("WWW-Authenticate", "Bearer realm=\"r\",service=\"s\"")],
            b"",
        ),
        Some(_) => respond("307 Temporary Redirect", &[("Location", &blob_url)], b""),
    });
    let auth = TokenAuth {
        origin: registry.url("/").origin().ascii_serialization(),
        token: RefCell::new(None),
        challenges: RefCell::new(Vec::new()),
    };
    let client = client();
    let response = client
        .send(Request::get(registry.url("/v2/x/blobs/1")).auth(&auth))
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.read_to_vec(100, LimitKind::PageSize).unwrap(),
        b"blob"
    );
    assert_eq!(
        auth.challenges.borrow().as_slice(),
        ["Bearer realm=\"r\",service=\"s\""]
    );
    let seen = registry.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].header("authorization"), Some("Bearer t0k3n"));
    let blob_seen = blobs.seen();
    assert_eq!(blob_seen.len(), 1);
    assert_eq!(
        blob_seen[0].header("authorization"),
        None,
        "the token did not follow the redirect to another host"
    );
}

#[test]
fn request_bodies_stream_with_their_length() {
    let server = Server::start(|seen| {
        let status = if seen.method == "PUT" {
            "201 Created"
        } else {
            "400 Bad Request"
        };
        respond(status, &[("Location", "/done")], b"")
    });
    let data = vec![7u8; 300_000];
    let response = client()
        .send(
            Request::new(Method::Put, server.url("/upload"))
                .header("Content-Type", "application/octet-stream")
                .body(Body::Reader {
                    reader: Box::new(&data[..]),
                    length: Some(data.len() as u64),
                }),
        )
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.header("location"), Some("/done"));
    let seen = server.seen();
    assert_eq!(seen[0].header("content-length"), Some("300000"));
    assert_eq!(seen[0].body, data);
    // A non-2xx is a response; error_for_status makes it an error that
    // names the URL and status.
    let response = client()
        .send(Request::new(Method::Post, server.url("/upload")))
        .unwrap();
    let err = response.error_for_status().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: HTTP 400 Bad Request", server.url("/upload"))
    );
}

#[test]
fn host_overrides_send_a_name_to_another_address() {
    let server = Server::start(|seen| {
        let host = seen.header("host").unwrap_or("").to_owned();
        respond("200 OK", &[], host.as_bytes())
    });
    let port = server.port;
    let client = client_with(&Limits::default(), |c| {
        c.connect_to =
            vec![
                ConnectTo::parse_connect_to(&format!("example.invalid:80:127.0.0.1:{port}"))
                    .unwrap(),
            ];
    });
    let response = client
        .get(&parse_url("http://example.invalid/x").unwrap())
        .unwrap();
    assert_eq!(
        response.read_to_vec(100, LimitKind::PageSize).unwrap(),
        b"example.invalid",
        "the Host header keeps the name"
    );
}

#[test]
fn a_silent_server_times_out_naming_the_bound() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, reads, never answers; lives until the test ends.
    let holder = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_secs(4));
        drop(stream);
    });
    let limits = Limits {
        http_timeout_secs: 1,
        ..Limits::default()
    };
    let client = client_with(&limits, |_| {});
    let started = std::time::Instant::now();
    let err = client
        .get(&parse_url(&format!("http://127.0.0.1:{port}/")).unwrap())
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "{err}");
    assert!(matches!(err, HttpError::TimedOut { secs: 1, .. }), "{err}");
    assert_eq!(limit_kind(&err), Some(LimitKind::HttpTimeout));
    holder.join().unwrap();
}
