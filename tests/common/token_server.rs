//! A purpose-built token server for docker-registry's token auth (the
//! distribution "token authentication specification"), plain HTTP on
//! 127.0.0.1 with a free port, one request per connection. It takes Basic
//! credentials for one user, grants only the `repository:<name>:<actions>`
//! scopes asked for (pull and push), and answers a JWT signed RS256 with
//! the given key through `openssl dgst -sign`, the signing certificate in
//! its `x5c` header (the registry checks it against its
//! `rootcertbundle`). Without the right credentials: 401. Every request is
//! recorded. Dropping it stops the listener.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the server signs with and whom it lets in.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The PEM private key (RSA) the tokens are signed with.
    pub key: PathBuf,
    /// The signing certificate, DER in standard base64 (the `x5c` entry).
    pub x5c: String,
    /// The `iss` claim (the registry's `issuer`).
    pub issuer: String,
    /// The one user and password let in.
    pub user: String,
    pub password: String,
}

/// One token request the server got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The `service` query parameter ("" when absent).
    pub service: String,
    /// The `scope` query parameters, percent-decoded, in order.
    pub scopes: Vec<String>,
    /// The user of the Basic credentials sent, if any.
    pub user: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The status answered.
    pub status: u16,
}

pub struct TokenServer {
    pub port: u16,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    /// The JSON field the token goes in: `token` or `access_token` (the
    /// spec allows either; OAuth2 servers send the latter).
    field: Arc<Mutex<&'static str>>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl TokenServer {
    pub fn start(config: TokenConfig) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token server");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let field = Arc::new(Mutex::new("token"));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (requests, field, stop) = (requests.clone(), field.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let field = *field.lock().unwrap();
                    if let Some(request) = serve(&mut stream, &config, field) {
                        requests.lock().unwrap().push(request);
                    }
                }
            })
        };
        TokenServer {
            port,
            requests,
            field,
            stop,
            handle: Some(handle),
        }
    }

    /// The realm URL the registry sends clients to.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Answers with the token in `field` from now on.
    pub fn reply_with(&self, field: &'static str) {
        *self.field.lock().unwrap() = field;
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

fn serve(stream: &mut TcpStream, config: &TokenConfig, field: &str) -> Option<TokenRequest> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.split(' ').nth(1)?.to_owned();
    let (mut authorization, mut user_agent) = (None, String::new());
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "authorization" => authorization = Some(value.trim().to_owned()),
            "user-agent" => user_agent = value.trim().to_owned(),
            _ => {}
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (mut service, mut scopes) = (String::new(), Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "service" => service = percent_decode(v),
            "scope" => scopes.push(percent_decode(v)),
            _ => {}
        }
    }
    let user = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(base64_decode)
        .and_then(|b| String::from_utf8(b).ok());
    let (user, password) = match user.as_deref().and_then(|u| u.split_once(':')) {
        Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
        None => (None, None),
    };
    let mut request = TokenRequest {
        service: service.clone(),
        scopes: scopes.clone(),
        user: user.clone(),
        user_agent,
        status: 401,
    };
    let admitted = path == "/token"
        && user.as_deref() == Some(config.user.as_str())
        && password.as_deref() == Some(config.password.as_str());
    if !admitted {
        respond(
            stream,
            "401 Unauthorized",
            r#"{"details":"bad credentials"}"#,
        );
        return Some(request);
    }
    // Only what was asked for, and of that only pull and push on
    // repositories: the registry refuses whatever the token lacks.
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let actions: Vec<&str> = actions
                .split(',')
                .filter(|a| matches!(*a, "pull" | "push"))
                .collect();
            (kind == "repository").then(
                || serde_json::json!({"type": "repository", "name": name, "actions": actions}),
            )
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [config.x5c]});
    let claims = serde_json::json!({
        "iss": config.issuer,
        "sub": config.user,
        "aud": service,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", request.scopes.join(" ")),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    );
    let Some(signature) = sign(&config.key, signing_input.as_bytes()) else {
        respond(stream, "500 Internal Server Error", "{}");
        request.status = 500;
        return Some(request);
    };
    let jwt = format!("{signing_input}.{}", base64url(&signature));
    let body = serde_json::json!({ field: jwt, "expires_in": 300 }).to_string();
    respond(stream, "200 OK", &body);
    request.status = 200;
    Some(request)
}

/// RS256: an RSASSA-PKCS1-v1_5 SHA-256 signature, as `openssl dgst -sign`
/// makes with an RSA key.
fn sign(key: &std::path::Path, input: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(input).ok()?;
    let mut out = Vec::new();
    child.stdout.take()?.read_to_end(&mut out).ok()?;
    child.wait().ok()?.success().then_some(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64url without padding (RFC 7515 §2), as JWTs are written.
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            let c = TABLE[(n >> (18 - 6 * i)) as usize & 63];
            out.push(match c {
                b'+' => '-',
                b'/' => '_',
                c => c as char,
            });
        }
    }
    out
}

/// Standard base64, padding allowed; `None` on anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_end_matches('=');
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = TABLE.iter().position(|t| *t == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
