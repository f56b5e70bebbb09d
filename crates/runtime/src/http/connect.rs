//! Sending an outgoing `wasi:http` request to addresses that were already
//! resolved and checked ([`outgoing`](super::outgoing)), so the connection
//! goes exactly where the check looked.
//!
//! Behaves as wasmtime-wasi-http's `default_send_request` otherwise: HTTP/1
//! over TCP, TLS with rustls and the webpki roots for `https`, the request's
//! `connect_timeout` (for resolving, connecting and the TLS handshake; and
//! again for the HTTP handshake), `first_byte_timeout` for the response head
//! and `between_bytes_timeout` between body frames, each 600 s when unset,
//! and the same error codes. Addresses are tried in the resolver's order, the
//! last error reported (as a host name's would be).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// A timeout of [`RequestOptions`] the guest left unset.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What drives the connection once the response head is in.
pub(crate) type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// Where a request goes, from its URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    /// The host as the guest named it (no brackets around IPv6).
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
}

impl Destination {
    /// The destination of `uri` (port 443 for `https`, else 80, unless given).
    pub(crate) fn of(uri: &http::Uri) -> Result<Self, Error> {
        let host = uri.host().filter(|h| !h.is_empty()).ok_or(Error::HttpRequestUriInvalid)?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self { host: host.to_owned(), port, tls })
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// Sends `request` to `dest` over a connection to the first of `addrs` that
/// accepts one before `deadline`.
pub(crate) async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    dest: &Destination,
    addrs: &[SocketAddr],
    deadline: Instant,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let option =
        |get: fn(&RequestOptions) -> Option<Duration>| options.as_ref().and_then(get).unwrap_or(DEFAULT_TIMEOUT);
    let connect_timeout = option(|o| o.connect_timeout);
    let first_byte_timeout = option(|o| o.first_byte_timeout);
    let between_bytes = option(|o| o.between_bytes_timeout);

    let tcp = tokio::time::timeout_at(deadline, connect(addrs)).await.map_err(|_| Error::ConnectionTimeout)??;
    let stream: Box<dyn Stream> = if dest.tls {
        let name = ServerName::try_from(dest.host.clone()).map_err(Error::InvalidDnsNameError)?;
        let config = TLS.clone().map_err(|reason| Error::InternalError(Some(reason)))?;
        let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
        let tls = tokio::time::timeout_at(deadline, handshake).await.map_err(|_| Error::ConnectionTimeout)?;
        Box::new(tls.map_err(Error::Tls)?)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    // Only a proxy gets the scheme and authority in the request line.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let origin_form = http::Uri::builder().path_and_query(path).build().map_err(|_| Error::HttpRequestUriInvalid)?;
    *request.uri_mut() = origin_form;

    // Drive the connection while waiting for the response head.
    let mut conn = Box::pin(conn);
    let mut conn_done = false;
    let sending = tokio::time::timeout(first_byte_timeout, sender.send_request(request));
    tokio::pin!(sending);
    let response = loop {
        tokio::select! {
            response = &mut sending => break response,
            ended = &mut conn, if !conn_done => {
                conn_done = true;
                ended?;
            }
        }
    };
    let response = response.map_err(|_| Error::ConnectionReadTimeout)??;
    let io: IoFuture = Box::new(async move {
        if conn_done {
            return Ok(());
        }
        conn.await.map_err(|e| if e.is_timeout() { Error::HttpResponseTimeout } else { Error::from(e) })
    });
    let response = response.map(|incoming| TimedBody::new(incoming, between_bytes).boxed_unsync());
    Ok((response, io))
}

/// A TCP connection to the first of `addrs` that takes one.
async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, Error> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                tracing::debug!(socket.addr = %addr, error = %e, "outgoing connection failed");
                last = Some(e);
            }
        }
    }
    let none = || std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address to connect to");
    Err(Error::Connect(last.unwrap_or_else(none)))
}

/// The TLS client configuration, built once: the process's default crypto
/// provider (ring when none is installed) and the webpki roots.
static TLS: LazyLock<Result<Arc<rustls::ClientConfig>, String>> = LazyLock::new(|| {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
});

/// A response body that fails with `connection-read-timeout` when no frame
/// comes for `between` (hyper's own timeouts map to `http-response-timeout`).
struct TimedBody {
    incoming: Incoming,
    between: Duration,
    timer: Pin<Box<Sleep>>,
}

impl TimedBody {
    fn new(incoming: Incoming, between: Duration) -> Self {
        Self { incoming, between, timer: Box::pin(tokio::time::sleep(between)) }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = Instant::now() + self.between;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(if e.is_timeout() { Error::HttpResponseTimeout } else { Error::from(e) })))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(self.timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_default_their_port_by_scheme() {
        let d = |uri: &str| Destination::of(&uri.parse().unwrap());
        assert_eq!(
            d("http://example.test/x").unwrap(),
            Destination { host: "example.test".into(), port: 80, tls: false }
        );
        assert_eq!(
            d("https://example.test/").unwrap(),
            Destination { host: "example.test".into(), port: 443, tls: true }
        );
        assert_eq!(d("http://[::1]:8080/").unwrap(), Destination { host: "::1".into(), port: 8080, tls: false });
        assert!(matches!(d("/relative"), Err(Error::HttpRequestUriInvalid)));
    }
}
