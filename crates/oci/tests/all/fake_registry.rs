//! A minimal in-process OCI registry (read side only) for offline pull
//! tests: manifests and blobs from maps, optional basic auth, request
//! counting, and deliberately wrong content.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wasmlet_oci::{Artifact, Digest, Reference};

#[derive(Default)]
struct State {
    /// (repository, tag or digest) -> (media type, body)
    manifests: HashMap<(String, String), (String, Vec<u8>)>,
    /// digest -> body (not checked: tests may serve wrong bytes)
    blobs: HashMap<String, Vec<u8>>,
    /// "user:password" required when set
    basic_auth: Option<String>,
    /// request path -> count
    hits: HashMap<String, usize>,
}

#[derive(Clone)]
pub(crate) struct FakeRegistry {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _task: Arc<tokio::task::JoinHandle<()>>,
}

impl FakeRegistry {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Self { addr, state, _task: Arc::new(task) }
    }

    /// `host:port`, as used in references and insecure registry lists.
    pub(crate) fn host(&self) -> String {
        self.addr.to_string()
    }

    pub(crate) fn reference(&self, repo_tag: &str) -> Reference {
        format!("{}/{repo_tag}", self.host()).parse().unwrap()
    }

    pub(crate) fn require_basic_auth(&self, user: &str, password: &str) {
        self.state.lock().unwrap().basic_auth = Some(format!("{user}:{password}"));
    }

    pub(crate) fn blob(&self, digest: &str, body: impl Into<Vec<u8>>) {
        self.state.lock().unwrap().blobs.insert(digest.to_owned(), body.into());
    }

    /// Serves `body` as manifest `repo:tag` and `repo@<digest>`; returns the digest.
    pub(crate) fn manifest(&self, repo: &str, tag: &str, media_type: &str, body: Vec<u8>) -> Digest {
        let digest = Digest::of(&body);
        let mut state = self.state.lock().unwrap();
        for r in [tag.to_owned(), digest.to_string()] {
            state.manifests.insert((repo.to_owned(), r), (media_type.to_owned(), body.clone()));
        }
        digest
    }

    /// Serves a built artifact as `repo:tag`.
    pub(crate) fn artifact(&self, repo: &str, tag: &str, artifact: &Artifact) -> Digest {
        for (digest, data) in artifact.blobs() {
            self.blob(digest, data.to_vec());
        }
        self.manifest(repo, tag, wasmlet_oci::media_type::OCI_MANIFEST, artifact.manifest_bytes().to_vec())
    }

    pub(crate) fn hits(&self, path_suffix: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.hits.iter().filter(|(p, _)| p.ends_with(path_suffix)).map(|(_, n)| n).sum()
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let mut request = lines.next().unwrap_or_default().split(' ');
    let method = request.next().unwrap_or_default().to_owned();
    let path = request.next().unwrap_or_default().to_owned();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_owned());
    let response = respond(&state, &method, &path, authorization.as_deref());
    let (status, headers, body) = response;
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if method != "HEAD" {
        bytes.extend(body);
    }
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

type Response = (&'static str, Vec<(&'static str, String)>, Vec<u8>);

fn error(status: &'static str, code: &str) -> Response {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{code}"}}]}}"#);
    let headers = vec![("Content-Type", "application/json".to_owned())];
    (status, headers, body.into_bytes())
}

fn respond(state: &Mutex<State>, method: &str, path: &str, auth: Option<&str>) -> Response {
    let mut state = state.lock().unwrap();
    *state.hits.entry(path.to_owned()).or_default() += 1;
    if let Some(expected) = &state.basic_auth {
        let expected = format!("Basic {}", base64(expected.as_bytes()));
        if auth != Some(expected.as_str()) {
            let (status, mut headers, body) = error("401 Unauthorized", "UNAUTHORIZED");
            headers.push(("WWW-Authenticate", r#"Basic realm="fake""#.to_owned()));
            return (status, headers, body);
        }
    }
    if path == "/v2/" {
        return ("200 OK", vec![], b"{}".to_vec());
    }
    if method != "GET" && method != "HEAD" {
        return error("405 Method Not Allowed", "UNSUPPORTED");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return error("404 Not Found", "NOT_FOUND");
    };
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        return match state.manifests.get(&(repo.to_owned(), reference.to_owned())) {
            Some((media_type, body)) => (
                "200 OK",
                vec![("Content-Type", media_type.clone()), ("Docker-Content-Digest", Digest::of(body).to_string())],
                body.clone(),
            ),
            None => error("404 Not Found", "MANIFEST_UNKNOWN"),
        };
    }
    if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
        return match state.blobs.get(digest) {
            Some(body) => ("200 OK", vec![("Content-Type", "application/octet-stream".to_owned())], body.clone()),
            None => error("404 Not Found", "BLOB_UNKNOWN"),
        };
    }
    error("404 Not Found", "NOT_FOUND")
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
