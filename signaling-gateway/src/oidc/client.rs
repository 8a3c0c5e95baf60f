//! The HTTP client openidconnect calls (discovery, JWKS, token, user info):
//! one hyper HTTP/1.1 connection per request, TLS by tokio-rustls with the
//! roots of a CA file, plain HTTP only to a loopback provider (development).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use openidconnect::{HttpRequest, HttpResponse};
use tokio::net::TcpStream;

/// A provider's answer larger than this is refused (a JWKS is a few KiB).
const MAX_BODY: usize = 1024 * 1024;
/// The longest one request (connect, TLS, answer) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a request to the provider failed (no URL or body in it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL has no host, or a scheme other than https (or http to loopback).
    #[error("refused URL (https only, or http to a loopback address)")]
    Url,
    /// Connecting, the TLS handshake or the HTTP exchange failed.
    #[error("{0}")]
    Io(String),
    /// No answer within the time limit.
    #[error("timed out")]
    Timeout,
    /// The answer's body is larger than allowed.
    #[error("answer too large")]
    TooLarge,
}

/// Sends requests to the provider.
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// A client trusting the certificates of `roots`.
    pub fn new(roots: rustls::RootCertStore) -> Result<Self, rustls::Error> {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self { tls: Arc::new(tls) })
    }

    /// The client as openidconnect takes it (a function returning a `Send`
    /// future that owns what it needs).
    pub fn as_fn(
        &self,
    ) -> impl Fn(
        HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, HttpError>> + Send>,
    > + use<> {
        let me = self.clone();
        move |req| {
            let me = me.clone();
            Box::pin(async move { me.send(req).await })
        }
    }

    /// Sends one request.
    pub async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(req))
            .await
            .map_err(|_| HttpError::Timeout)?
    }

    async fn exchange(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let uri = req.uri().clone();
        let host = uri.host().ok_or(HttpError::Url)?.to_owned();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if is_loopback(&host) => false,
            _ => return Err(HttpError::Url),
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tcp = TcpStream::connect((bare.as_str(), port))
            .await
            .map_err(|e| HttpError::Io(format!("connect: {e}")))?;
        let (parts, body) = req.into_parts();
        let mut out = hyper::Request::builder().method(parts.method).uri(
            uri.path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".to_owned()),
        );
        for (name, value) in &parts.headers {
            out = out.header(name, value);
        }
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or(host);
        let out = out
            .header(hyper::header::HOST, authority)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpError::Io(format!("request: {e}")))?;
        if https {
            let name = rustls::pki_types::ServerName::try_from(bare).map_err(|_| HttpError::Url)?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| HttpError::Io(format!("tls: {e}")))?;
            round_trip(TokioIo::new(tls), out).await
        } else {
            round_trip(TokioIo::new(tcp), out).await
        }
    }
}

async fn round_trip<I>(io: I, req: hyper::Request<Full<Bytes>>) -> Result<HttpResponse, HttpError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| HttpError::Io(format!("http: {e}")))?;
    let driver = tokio::spawn(conn);
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| HttpError::Io(format!("http: {e}")))?;
    let (parts, body) = res.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| HttpError::TooLarge)?
        .to_bytes();
    driver.abort();
    let mut res = HttpResponse::new(body.to_vec());
    *res.status_mut() = parts.status;
    *res.headers_mut() = parts.headers;
    Ok(res)
}

/// Whether `host` (a URL's host) is a loopback name or address.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
