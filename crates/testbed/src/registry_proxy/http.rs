//! Just enough HTTP/1.1 for the proxy: read a request, forward it with
//! `Connection: close`, read the whole answer (de-chunked).

use std::io::{Error, ErrorKind, Result};
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{MAX_HEAD_BYTES, MAX_REQUEST_BODY_BYTES, MAX_RESPONSE_BYTES};

/// Hop-by-hop headers the proxy drops (it sets its own framing).
const HOP_BY_HOP: [&str; 5] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];

/// A request as read from the client.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

/// An answer, body complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Response {
    pub(super) status: u16,
    /// The status line's reason phrase.
    pub(super) reason: String,
    /// End-to-end headers, without `Content-Length` and the hop-by-hop ones.
    pub(super) headers: Vec<(String, String)>,
    /// What the answer's `Content-Length` said, for bodiless answers (HEAD).
    pub(super) declared_length: Option<usize>,
    pub(super) body: Vec<u8>,
}

impl Response {
    pub(super) fn text(status: u16, text: &str) -> Self {
        Self::with_type(status, "text/plain; charset=utf-8", text)
    }

    pub(super) fn json(status: u16, json: &str) -> Self {
        Self::with_type(status, "application/json", json)
    }

    fn with_type(status: u16, content_type: &str, body: &str) -> Self {
        let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
        Response {
            status,
            reason: reason.to_owned(),
            headers: vec![("Content-Type".into(), content_type.into())],
            declared_length: None,
            body: body.as_bytes().to_vec(),
        }
    }

    /// The status line and headers, with `Content-Length: length` and
    /// `Connection: close`.
    pub(super) fn head(&self, length: usize) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!("Content-Length: {length}\r\nConnection: close\r\n\r\n"));
        out.into_bytes()
    }

    /// The length to announce when the body is passed unchanged.
    pub(super) fn length(&self) -> usize {
        if self.body.is_empty() { self.declared_length.unwrap_or(0) } else { self.body.len() }
    }
}

impl Request {
    /// Reads one request; `None` if its body is chunked (not supported).
    pub(super) async fn read(conn: &mut TcpStream) -> Result<Option<Self>> {
        let (head, mut body) = read_head(conn).await?;
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let (method, path) = (first.next().unwrap_or_default().to_owned(), first.next().unwrap_or_default().to_owned());
        if method.is_empty() || !path.starts_with('/') {
            return Err(Error::new(ErrorKind::InvalidData, "not an HTTP request"));
        }
        let headers = parse_headers(lines)?;
        if header(&headers, "transfer-encoding").is_some() {
            return Ok(None);
        }
        let length = content_length(&headers)?.unwrap_or(0);
        if length > MAX_REQUEST_BODY_BYTES {
            return Err(Error::new(ErrorKind::InvalidData, "request body too large"));
        }
        let missing = length.saturating_sub(body.len());
        let start = body.len();
        body.resize(start + missing, 0);
        conn.read_exact(&mut body[start..]).await?;
        body.truncate(length);
        Ok(Some(Request { method, path, headers, body }))
    }
}

/// Sends `request` to `upstream` and reads the whole answer.
pub(super) async fn forward(upstream: SocketAddr, request: &Request) -> Result<Response> {
    let mut conn = TcpStream::connect(upstream).await?;
    let mut out = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (name, value) in &request.headers {
        let lower = name.to_ascii_lowercase();
        if lower != "content-length" && !HOP_BY_HOP.contains(&lower.as_str()) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if !request.body.is_empty() || matches!(request.method.as_str(), "POST" | "PUT" | "PATCH") {
        out.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    conn.write_all(out.as_bytes()).await?;
    conn.write_all(&request.body).await?;
    conn.flush().await?;
    let mut raw = Vec::new();
    (&mut conn).take(MAX_RESPONSE_BYTES as u64 + 1).read_to_end(&mut raw).await?;
    if raw.len() > MAX_RESPONSE_BYTES {
        return Err(Error::new(ErrorKind::InvalidData, "registry answer too large for the chaos proxy"));
    }
    parse_response(&raw, request.method == "HEAD")
}

/// Parses a complete answer read to the end of the connection.
pub(super) fn parse_response(raw: &[u8], head_request: bool) -> Result<Response> {
    let end = find_head_end(raw).ok_or_else(|| Error::new(ErrorKind::InvalidData, "incomplete answer head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| Error::new(ErrorKind::InvalidData, "answer head"))?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, format!("status line {status_line:?}")))?;
    let reason = parts.next().unwrap_or_default().to_owned();
    let all = parse_headers(lines)?;
    let declared = content_length(&all)?;
    let chunked = header(&all, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let bodiless = head_request || status == 204 || status == 304 || (100..200).contains(&status);
    let body = if bodiless {
        Vec::new()
    } else if chunked {
        dechunk(rest)?
    } else {
        match declared {
            Some(n) if n <= rest.len() => rest[..n].to_vec(),
            Some(_) => return Err(Error::new(ErrorKind::UnexpectedEof, "registry answer shorter than announced")),
            None => rest.to_vec(),
        }
    };
    let headers = all
        .into_iter()
        .filter(|(n, _)| {
            let lower = n.to_ascii_lowercase();
            lower != "content-length" && !HOP_BY_HOP.contains(&lower.as_str())
        })
        .collect();
    Ok(Response { status, reason, headers, declared_length: declared.filter(|_| bodiless), body })
}

/// Decodes a chunked body (trailers are dropped).
pub(super) fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let bad = |what: &str| Error::new(ErrorKind::InvalidData, format!("chunked body: {what}"));
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").ok_or_else(|| bad("missing size line"))?;
        let line = std::str::from_utf8(&data[..line_end]).map_err(|_| bad("size line"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 || &data[size..size + 2] != b"\r\n" {
            return Err(bad("truncated chunk"));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

async fn read_head(conn: &mut (impl AsyncRead + Unpin)) -> Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find_head_end(&buf) {
            let head =
                String::from_utf8(buf[..end].to_vec()).map_err(|_| Error::new(ErrorKind::InvalidData, "head"))?;
            return Ok((head, buf[end + 4..].to_vec()));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(Error::new(ErrorKind::InvalidData, "request head too large"));
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(Error::new(ErrorKind::UnexpectedEof, "connection closed before the request head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Vec<(String, String)>> {
    lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (name, value) =
                line.split_once(':').ok_or_else(|| Error::new(ErrorKind::InvalidData, format!("header {line:?}")))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn content_length(headers: &[(String, String)]) -> Result<Option<usize>> {
    header(headers, "content-length")
        .map(|v| v.parse::<usize>().map_err(|_| Error::new(ErrorKind::InvalidData, format!("Content-Length {v:?}"))))
        .transpose()
}
