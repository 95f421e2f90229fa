//! Serving certificate held in memory and swapped without a restart.
//!
//! Two sources feed the [`CertStore`]: files on disk (a mounted Secret, e.g.
//! from cert-manager), watched and reloaded when they change, including the
//! `..data` symlink swap Kubernetes does in Secret volumes; or the server's own
//! certificate manager (`crate::certs`), which sets the store directly.
//! Every TLS handshake reads the current key pair, so a rotation takes effect
//! for the next connection and never drops one in flight.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use prometheus_client::metrics::gauge::Gauge;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Protocols offered in the TLS handshake, in the server's order of preference
/// (served by `crate::runtime::listener`).
pub(crate) const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// PEM material of one serving identity.
#[derive(Clone, PartialEq, Eq)]
pub struct CertPem {
    /// Leaf certificate first, then intermediates.
    pub chain: String,
    pub key: String,
    /// The CA certificates clients (the API server, agents) must trust; during a
    /// CA rotation this holds the old and the new CA.
    pub ca_bundle: String,
}

impl std::fmt::Debug for CertPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPem").field("chain_len", &self.chain.len()).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("certificate chain has no PEM certificate")]
    NoCertificate,
    #[error("private key: {0}")]
    Key(String),
    #[error("certificate and key do not match: {0}")]
    Mismatch(String),
}

struct Loaded {
    key: Arc<CertifiedKey>,
    pem: Arc<CertPem>,
}

/// The current serving certificate and CA bundle, shared by the TLS acceptor,
/// the pod mutator (which hands the CA bundle to agents) and the cert manager.
#[derive(Clone, Default)]
pub struct CertStore {
    inner: Arc<ArcSwapOption<Loaded>>,
    /// Set to the served leaf's notAfter (Unix seconds) whenever one is installed.
    expiry: Option<Gauge>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore").field("loaded", &self.is_loaded()).finish()
    }
}

impl CertStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that reports the expiry of the certificate it serves to `gauge`
    /// (whatever the source: files or the server's own certificate manager).
    pub fn with_expiry_gauge(gauge: Gauge) -> Self {
        CertStore { expiry: Some(gauge), ..Self::default() }
    }

    /// Parses and installs a key pair; the previous one stays if this fails.
    pub fn set(&self, pem: CertPem) -> Result<(), TlsError> {
        if let Some(cur) = self.inner.load_full()
            && *cur.pem == pem
        {
            return Ok(());
        }
        let key = certified_key(&pem)?;
        if let Some(gauge) = &self.expiry
            && let Some(not_after) = key.end_entity_cert().ok().and_then(|der| not_after(der))
        {
            gauge.set(not_after);
        }
        self.inner.store(Some(Arc::new(Loaded { key: Arc::new(key), pem: Arc::new(pem) })));
        Ok(())
    }

    pub fn is_loaded(&self) -> bool {
        self.inner.load().is_some()
    }

    /// The PEM currently served, if any.
    pub fn current(&self) -> Option<Arc<CertPem>> {
        self.inner.load().as_ref().map(|l| l.pem.clone())
    }

    /// A rustls server configuration that always serves the current certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(self.clone()));
        // HTTP/2 first for the clients that take it; clients that offer only
        // HTTP/1.1 (the API server's webhook client) or no ALPN (agents) get
        // HTTP/1.1.
        cfg.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.inner.load().as_ref().map(|l| l.key.clone())
    }
}

/// The leaf's notAfter in Unix seconds. Read here rather than through
/// `crate::certs` so that serving does not depend on the certificate manager
/// (one of the sources that feed it).
fn not_after(der: &[u8]) -> Option<i64> {
    x509_parser::parse_x509_certificate(der).ok().map(|(_, cert)| cert.validity().not_after.timestamp())
}

fn certified_key(pem: &CertPem) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pem.chain.as_bytes()).collect::<Result<_, _>>().map_err(|_| TlsError::NoCertificate)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pem.key.as_bytes())
        .map_err(|e| TlsError::Key(e.to_string()))?
        .ok_or_else(|| TlsError::Key("no PEM private key found".into()))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(key).map_err(|e| TlsError::Key(e.to_string()))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(ck)
}

/// Files of a mounted `kubernetes.io/tls` Secret.
#[derive(Debug, Clone)]
pub(crate) struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA bundle handed to clients; when absent, the chain's last certificate.
    pub ca: Option<PathBuf>,
}

impl CertFiles {
    pub(crate) fn in_dir(dir: &Path) -> Self {
        let ca = dir.join("ca.crt");
        CertFiles { cert: dir.join("tls.crt"), key: dir.join("tls.key"), ca: Some(ca) }
    }

    pub(crate) fn read(&self) -> Result<CertPem, TlsError> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|source| TlsError::Read { path: p.to_path_buf(), source });
        let chain = read(&self.cert)?;
        let key = read(&self.key)?;
        let ca_bundle = match &self.ca {
            Some(p) if p.exists() => read(p)?,
            _ => last_pem_certificate(&chain).unwrap_or_default(),
        };
        Ok(CertPem { chain, key, ca_bundle })
    }
}

fn last_pem_certificate(chain: &str) -> Option<String> {
    let start = chain.rfind("-----BEGIN CERTIFICATE-----")?;
    Some(chain[start..].to_string())
}

/// Loads the files now, then reloads them whenever their content changes.
///
/// Polls every `every` rather than using inotify: Secret volumes swap a
/// `..data` symlink, which file watches on the old target never see, and a
/// stat of three small files every few seconds costs nothing.
pub(crate) async fn watch_files(store: CertStore, files: CertFiles, every: Duration) -> Result<(), TlsError> {
    store.set(files.read()?)?;
    tracing::info!(cert = %files.cert.display(), "serving certificate loaded");
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match files.read() {
            Ok(pem) => {
                let changed = store.current().is_none_or(|c| *c != pem);
                if changed {
                    match store.set(pem) {
                        Ok(()) => tracing::info!(cert = %files.cert.display(), "serving certificate reloaded"),
                        Err(e) => tracing::warn!(error = %e, "new certificate files rejected; keeping the previous certificate"),
                    }
                }
            }
            // A swap in progress can show a missing file for a moment.
            Err(e) => tracing::debug!(error = %e, "certificate files not readable; keeping the previous certificate"),
        }
    }
}

/// [`watch_files`] that waits for the files to appear and never gives up:
/// a cert-manager Secret may be issued after the server starts.
pub(crate) async fn watch_files_forever(store: CertStore, files: CertFiles) {
    loop {
        match watch_files(store.clone(), files.clone(), Duration::from_secs(5)).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "serving certificate not available yet; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
