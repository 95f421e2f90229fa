//! The Secret that holds the self-managed CA and serving certificate, as a
//! typed value: parsing from and rendering to the Secret's data and annotations.
//!
//! Secret data (type `kubernetes.io/tls`):
//! - `tls.crt`: the serving certificate, then intermediates (during and after a
//!   CA rotation: the active CA cross-signed by the previous one)
//! - `tls.key`: its key (PKCS#8 PEM)
//! - `ca.crt`: the CA bundle clients must trust: the active CA first, then the
//!   next CA (rotation step 1) or the previous CA (rotation step 2)
//! - `ca.key`: the active CA's key
//! - `ca-next.key`: the next CA's key, only during rotation step 1
//!
//! Roles are derived from the keys, not from positions: the active CA is the
//! certificate of `ca.crt` whose public key is `ca.key`'s, the next one is
//! `ca-next.key`'s, every other certificate of `ca.crt` is a previous CA.
//! The phase therefore follows from the data alone; the annotations record
//! when it began (`ca-phase-since`) and say it for people.

use std::collections::BTreeMap;

use super::pki::{Ca, CertInfo, KeyPem, Leaf, PkiError, pem_certificates};

pub(crate) const TLS_CRT: &str = "tls.crt";
pub(crate) const TLS_KEY: &str = "tls.key";
pub(crate) const CA_CRT: &str = "ca.crt";
pub(crate) const CA_KEY: &str = "ca.key";
pub(crate) const CA_NEXT_KEY: &str = "ca-next.key";

/// Annotation: the rotation phase, `stable`, `introducing` (step 1: the next CA
/// is trusted, not yet used) or `retiring` (step 2: the new CA signs, the
/// previous one is still trusted). Informative: the data decide.
pub(crate) const ANNOTATION_CA_PHASE: &str = "lifecycle-jobs.dev/ca-phase";
/// Annotation: when the current phase began (RFC 3339). The delays between
/// rotation steps count from it.
pub(crate) const ANNOTATION_CA_PHASE_SINCE: &str = "lifecycle-jobs.dev/ca-phase-since";
/// Annotation for people: expiry of the active CA (RFC 3339).
pub(crate) const ANNOTATION_CA_NOT_AFTER: &str = "lifecycle-jobs.dev/ca-not-after";
/// Annotation for people: expiry of the serving certificate (RFC 3339).
pub(crate) const ANNOTATION_CERT_NOT_AFTER: &str = "lifecycle-jobs.dev/cert-not-after";
/// Annotation set by people or tests to force a rotation: `now` (or `ca`) rotates
/// the CA (with every step and delay), `cert` renews the serving certificate.
/// The server clears it when it acts on it.
pub(crate) const ANNOTATION_ROTATE: &str = "lifecycle-jobs.dev/rotate";

/// Labels of the Secret.
pub(crate) const LABELS: [(&str, &str); 3] = [
    ("app.kubernetes.io/name", "lifecycle-webhook"),
    ("app.kubernetes.io/component", "certificates"),
    ("app.kubernetes.io/managed-by", "lifecycle-webhook"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Stable,
    /// Step 1: the next CA is in the bundle; the active CA still signs.
    Introducing,
    /// Step 2: the new CA signs; the previous one is still in the bundle.
    Retiring,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Stable => "stable",
            Phase::Introducing => "introducing",
            Phase::Retiring => "retiring",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rotate annotation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trigger {
    None,
    /// `now` or `ca`: a full CA rotation.
    Ca,
    /// `cert`: a new serving certificate.
    Cert,
    /// Anything else: cleared with a warning.
    Invalid(String),
}

impl Trigger {
    pub(crate) fn from_annotations(annotations: &BTreeMap<String, String>) -> Trigger {
        match annotations.get(ANNOTATION_ROTATE).map(|v| v.trim()) {
            None => Trigger::None,
            Some("now") | Some("ca") => Trigger::Ca,
            Some("cert") => Trigger::Cert,
            Some(other) => Trigger::Invalid(other.chars().take(64).collect()),
        }
    }
}

/// Why stored data cannot be used (and is replaced by a fresh CA).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unusable {
    #[error("missing key {0}")]
    Missing(&'static str),
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("{key}: {source}")]
    Pki { key: &'static str, source: PkiError },
    #[error("no certificate of ca.crt matches ca.key")]
    NoActiveCa,
    #[error("the active CA is not a CA made by lifecycle-jobs")]
    ForeignCa,
}

/// The whole certificate state, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Material {
    pub active: Ca,
    /// Rotation step 1: trusted, not yet signing.
    pub next: Option<Ca>,
    /// Rotation step 2: still trusted, no longer signing (no key kept).
    pub previous: Vec<CertInfo>,
    /// `None` when tls.crt/tls.key are missing or do not match.
    pub leaf: Option<Leaf>,
    /// Served after the leaf: the active CA cross-signed by the previous one.
    pub intermediates: Vec<CertInfo>,
    /// When the current phase began, from the annotation.
    pub phase_since: Option<i64>,
}

fn text<'a>(data: &'a BTreeMap<String, Vec<u8>>, key: &'static str) -> Result<Option<&'a str>, Unusable> {
    match data.get(key) {
        None => Ok(None),
        Some(b) if b.is_empty() => Ok(None),
        Some(b) => std::str::from_utf8(b).map(Some).map_err(|_| Unusable::NotUtf8(key)),
    }
}

fn certs(pem: &str, key: &'static str) -> Result<Vec<CertInfo>, Unusable> {
    let ders = pem_certificates(pem).map_err(|source| Unusable::Pki { key, source })?;
    ders.iter().map(|d| CertInfo::parse(d).map_err(|source| Unusable::Pki { key, source })).collect()
}

pub(crate) fn parse_time(s: &str) -> Option<i64> {
    s.trim().parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

pub(crate) fn format_time(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).map(|t| t.to_string()).unwrap_or_else(|_| unix.to_string())
}

impl Material {
    /// Parses the Secret's data (decoded) and annotations.
    pub(crate) fn parse(data: &BTreeMap<String, Vec<u8>>, annotations: &BTreeMap<String, String>) -> Result<Material, Unusable> {
        let ca_key = KeyPem(text(data, CA_KEY)?.ok_or(Unusable::Missing(CA_KEY))?.to_string());
        let ca_spki = ca_key.spki().map_err(|source| Unusable::Pki { key: CA_KEY, source })?;
        let bundle = certs(text(data, CA_CRT)?.ok_or(Unusable::Missing(CA_CRT))?, CA_CRT)?;
        let active_cert = bundle.iter().find(|c| c.spki == ca_spki).cloned().ok_or(Unusable::NoActiveCa)?;
        if !active_cert.is_ca || active_cert.ca_id.is_none() {
            return Err(Unusable::ForeignCa);
        }
        let active = Ca { cert: active_cert, key: ca_key };

        // A next key without its certificate in the bundle is dropped.
        let next = match text(data, CA_NEXT_KEY)? {
            None => None,
            Some(pem) => {
                let key = KeyPem(pem.to_string());
                match key.spki() {
                    Ok(spki) => bundle
                        .iter()
                        .find(|c| c.spki == spki && c.spki != active.cert.spki && c.is_ca && c.ca_id.is_some())
                        .cloned()
                        .map(|cert| Ca { cert, key }),
                    Err(_) => None,
                }
            }
        };

        let mut previous: Vec<CertInfo> = Vec::new();
        for c in &bundle {
            let is_next = next.as_ref().is_some_and(|n| n.cert.spki == c.spki);
            if c.spki != active.cert.spki && !is_next && !previous.iter().any(|p| p.der == c.der) {
                previous.push(c.clone());
            }
        }

        let (leaf, intermediates) = match (text(data, TLS_CRT), text(data, TLS_KEY)) {
            (Ok(Some(crt)), Ok(Some(key))) => match certs(crt, TLS_CRT) {
                Ok(mut chain) => {
                    let key = KeyPem(key.to_string());
                    let leaf_cert = chain.remove(0);
                    match key.spki() {
                        Ok(spki) if spki == leaf_cert.spki => (Some(Leaf { cert: leaf_cert, key }), chain),
                        _ => (None, Vec::new()),
                    }
                }
                Err(_) => (None, Vec::new()),
            },
            _ => (None, Vec::new()),
        };

        let phase_since = annotations.get(ANNOTATION_CA_PHASE_SINCE).and_then(|s| parse_time(s));
        Ok(Material { active, next, previous, leaf, intermediates, phase_since })
    }

    pub(crate) fn phase(&self) -> Phase {
        if self.next.is_some() {
            Phase::Introducing
        } else if !self.previous.is_empty() {
            Phase::Retiring
        } else {
            Phase::Stable
        }
    }

    /// The CA certificates clients must trust, active first.
    pub(crate) fn bundle(&self) -> Vec<&CertInfo> {
        let mut out = vec![&self.active.cert];
        out.extend(self.next.as_ref().map(|n| &n.cert));
        out.extend(self.previous.iter());
        out
    }

    pub(crate) fn bundle_pem(&self) -> String {
        self.bundle().iter().map(|c| c.pem()).collect()
    }

    /// Leaf then intermediates: what the server presents.
    pub(crate) fn chain(&self) -> Vec<CertInfo> {
        let mut out: Vec<CertInfo> = self.leaf.iter().map(|l| l.cert.clone()).collect();
        out.extend(self.intermediates.iter().cloned());
        out
    }

    pub(crate) fn chain_pem(&self) -> String {
        self.chain().iter().map(|c| c.pem()).collect()
    }

    /// The Secret data this material is stored as.
    pub(crate) fn to_data(&self) -> BTreeMap<String, Vec<u8>> {
        let mut d = BTreeMap::new();
        d.insert(TLS_CRT.to_string(), self.chain_pem().into_bytes());
        d.insert(TLS_KEY.to_string(), self.leaf.as_ref().map(|l| l.key.0.clone()).unwrap_or_default().into_bytes());
        d.insert(CA_CRT.to_string(), self.bundle_pem().into_bytes());
        d.insert(CA_KEY.to_string(), self.active.key.0.clone().into_bytes());
        if let Some(n) = &self.next {
            d.insert(CA_NEXT_KEY.to_string(), n.key.0.clone().into_bytes());
        }
        d
    }

    /// Updates the annotations this manager owns (leaves the others alone).
    pub(crate) fn write_annotations(&self, annotations: &mut BTreeMap<String, String>) {
        annotations.insert(ANNOTATION_CA_PHASE.into(), self.phase().to_string());
        match self.phase_since {
            Some(t) => annotations.insert(ANNOTATION_CA_PHASE_SINCE.into(), format_time(t)),
            None => annotations.remove(ANNOTATION_CA_PHASE_SINCE),
        };
        annotations.insert(ANNOTATION_CA_NOT_AFTER.into(), format_time(self.active.cert.not_after));
        match &self.leaf {
            Some(l) => annotations.insert(ANNOTATION_CERT_NOT_AFTER.into(), format_time(l.cert.not_after)),
            None => annotations.remove(ANNOTATION_CERT_NOT_AFTER),
        };
    }

    /// What the TLS server serves and agents trust, when there is a leaf.
    pub(crate) fn cert_pem(&self) -> Option<crate::runtime::tls::CertPem> {
        let leaf = self.leaf.as_ref()?;
        Some(crate::runtime::tls::CertPem { chain: self.chain_pem(), key: leaf.key.0.clone(), ca_bundle: self.bundle_pem() })
    }

    /// Fingerprints for logs (no key material).
    pub(crate) fn summary(&self) -> String {
        let fp = |c: &CertInfo| c.fingerprint();
        format!(
            "phase={} ca={} next={} previous=[{}] cert={} intermediates={}",
            self.phase(),
            fp(&self.active.cert),
            self.next.as_ref().map(|n| fp(&n.cert)).unwrap_or_else(|| "-".into()),
            self.previous.iter().map(fp).collect::<Vec<_>>().join(","),
            self.leaf.as_ref().map(|l| fp(&l.cert)).unwrap_or_else(|| "-".into()),
            self.intermediates.len(),
        )
    }
}
