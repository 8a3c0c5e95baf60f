//! HTTPS on the public listener: the server certificate (PEM files, reloaded
//! on SIGHUP) and the rustls configuration built around it.
//!
//! rustls with the aws-lc-rs provider (the crypto the media plane already
//! uses), TLS 1.2 and 1.3, ALPN `http/1.1` only: a WebSocket upgrade is an
//! HTTP/1.1 request. The certificate is resolved per handshake from
//! [`ServerCert`], so a reload swaps it for the next handshakes without
//! touching open connections; a reload that fails keeps the old one.

// Files from the operator and handshakes from the network: never index or
// slice, never `expect` (CONTRIBUTING.md).
#![deny(clippy::indexing_slicing, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Largest certificate or key file read (a chain of a few certificates is
/// a few KiB).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read (or is over 1 MiB).
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM `CERTIFICATE`, or a broken one.
    #[error("{0}: no PEM certificate")]
    NoCertificate(PathBuf),
    /// The key file holds no PEM private key (PKCS#8, PKCS#1 or SEC1), or a
    /// broken one.
    #[error("{0}: no PEM private key")]
    NoKey(PathBuf),
    /// The key is of a kind rustls cannot sign with, or does not belong to
    /// the certificate.
    #[error("the key does not fit the certificate: {0}")]
    Mismatch(rustls::Error),
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// The server's certificate chain and key, from two PEM files, reloadable.
#[derive(Debug)]
pub struct ServerCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCert {
    /// Loads the chain (leaf first) from `cert` and the private key from
    /// `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let current = load_pair(cert, key, &provider)?;
        Ok(Arc::new(Self {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// Reads both files again. On success the next handshakes use the new
    /// pair; on failure the old pair stays and the error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let new = load_pair(&self.cert_path, &self.key_path, &self.provider)?;
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = Arc::new(new);
        Ok(())
    }

    /// The leaf certificate served now (DER).
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        let current = self.get();
        let leaf = current.end_entity_cert().ok()?.clone().into_owned();
        Some(leaf)
    }

    fn get(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The rustls server configuration: TLS 1.2 and 1.3, ALPN `http/1.1`,
    /// no client certificates, this certificate resolved per handshake.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Hands every handshake the current pair of a [`ServerCert`].
#[derive(Debug)]
struct Resolver(Arc<ServerCert>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.get())
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read as _;
    let read = || -> std::io::Result<Vec<u8>> {
        let file = std::fs::File::open(path)?;
        let mut buf = Vec::new();
        file.take(MAX_PEM_BYTES + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > MAX_PEM_BYTES {
            return Err(std::io::Error::other("over 1 MiB"));
        }
        Ok(buf)
    };
    read().map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read_bounded(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::NoCertificate(cert.to_path_buf()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let key_pem = read_bounded(key)?;
    // The error of a key parser never carries the key's bytes, but it is
    // not logged either: only the path is.
    let key_der =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey(key.to_path_buf()))?;
    CertifiedKey::from_der(chain, key_der, provider).map_err(TlsError::Mismatch)
}
