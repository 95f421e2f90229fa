//! Certificate issuance (rcgen) and inspection (x509-parser), and chain
//! verification with the same WebPKI verifier the agents use (rustls).
//!
//! Keys are ECDSA P-256. Every CA carries a random identifier in its subject
//! (`OU=<id>`), so two CAs are never confused by name during a rotation, and
//! the issuer of a stored CA can be rebuilt from its certificate alone.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

/// Common name of every CA the server creates.
pub(crate) const CA_COMMON_NAME: &str = "lifecycle-jobs CA";
/// Organization of every certificate the server creates.
pub(crate) const ORGANIZATION: &str = "lifecycle-jobs";

/// Certificates are dated back by this much (at most a tenth of their lifetime)
/// so that a client whose clock is slightly behind still accepts a fresh one.
pub(crate) const MAX_BACKDATE_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub(crate) enum PkiError {
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("invalid certificate: {0}")]
    Parse(String),
    #[error("invalid private key: {0}")]
    Key(String),
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("a CA certificate without the lifecycle-jobs CA identifier (OU) in its subject")]
    ForeignCa,
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Generate(e.to_string())
    }
}

/// What the manager needs to know about a certificate (no key material).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CertInfo {
    pub der: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    pub is_ca: bool,
    /// The `OU` of the subject: the CA identifier for CAs this server made.
    pub ca_id: Option<String>,
    pub dns_names: Vec<String>,
}

impl std::fmt::Debug for CertInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertInfo")
            .field("fingerprint", &self.fingerprint())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("is_ca", &self.is_ca)
            .field("ca_id", &self.ca_id)
            .finish_non_exhaustive()
    }
}

impl CertInfo {
    pub(crate) fn parse(der: &[u8]) -> Result<CertInfo, PkiError> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Parse(e.to_string()))?;
        if !rest.is_empty() {
            return Err(PkiError::Parse("trailing bytes after the certificate".into()));
        }
        let dns_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(PkiError::Parse(e.to_string())),
        };
        let ca_id = cert.subject().iter_organizational_unit().next().and_then(|a| a.as_str().ok()).map(str::to_string);
        Ok(CertInfo {
            der: der.to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            subject: cert.subject().as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            spki: cert.public_key().raw.to_vec(),
            is_ca: cert.is_ca(),
            ca_id,
            dns_names,
        })
    }

    /// First 8 bytes of the SHA-256 of the DER, in hex: safe to log.
    pub(crate) fn fingerprint(&self) -> String {
        fingerprint(&self.der)
    }

    pub(crate) fn lifetime(&self) -> i64 {
        self.not_after - self.not_before
    }

    /// When two thirds of the lifetime have passed.
    pub(crate) fn two_thirds(&self) -> i64 {
        self.not_before + self.lifetime() * 2 / 3
    }

    pub(crate) fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now + MAX_BACKDATE_SECS && now < self.not_after
    }

    #[cfg(test)]
    pub(crate) fn is_self_signed(&self) -> bool {
        self.subject == self.issuer
    }

    pub(crate) fn pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }
}

pub(crate) fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A PKCS#8 PEM private key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KeyPem(pub String);

impl std::fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPem(<redacted>)")
    }
}

impl KeyPem {
    pub(crate) fn key_pair(&self) -> Result<KeyPair, PkiError> {
        KeyPair::from_pem(&self.0).map_err(|e| PkiError::Key(e.to_string()))
    }

    /// DER SubjectPublicKeyInfo of the key, to match it with a certificate.
    pub(crate) fn spki(&self) -> Result<Vec<u8>, PkiError> {
        use rcgen::PublicKeyData as _;
        Ok(self.key_pair()?.subject_public_key_info())
    }
}

/// A CA certificate with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ca {
    pub cert: CertInfo,
    pub key: KeyPem,
}

/// A serving certificate with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub cert: CertInfo,
    pub key: KeyPem,
}

pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Every certificate of a PEM bundle, in order.
pub(crate) fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| PkiError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(PkiError::NoCertificate);
    }
    Ok(certs)
}

/// Validity window: from `now` (dated back a little) for `validity`, never beyond `cap`.
fn window(now: i64, validity: Duration, cap: Option<i64>) -> (i64, i64) {
    let secs = i64::try_from(validity.as_secs()).unwrap_or(i64::MAX / 4).max(1);
    let backdate = (secs / 10).min(MAX_BACKDATE_SECS);
    let mut not_after = now.saturating_add(secs);
    if let Some(cap) = cap {
        not_after = not_after.min(cap);
    }
    (now - backdate, not_after)
}

/// Sets the validity of `params` from Unix seconds (rcgen's date type is
/// reached through `date_time_ymd`, without a direct dependency on its crate).
fn set_validity(params: &mut CertificateParams, (not_before, not_after): (i64, i64)) {
    let at = |unix: i64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(u64::try_from(unix.max(0)).unwrap_or(0));
    params.not_before = at(not_before);
    params.not_after = at(not_after);
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and of full length
    SerialNumber::from_slice(&bytes)
}

/// A new random CA identifier.
pub(crate) fn new_ca_id(now: i64) -> String {
    let r: u32 = rand::random();
    format!("ca-{}-{r:08x}", jiff::Timestamp::from_second(now).map(|t| t.strftime("%Y%m%d").to_string()).unwrap_or_default())
}

fn ca_name(id: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::OrganizationalUnitName, id);
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    dn
}

fn ca_params(id: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = ca_name(id);
    // One level below: the cross-signed copy of the next CA sits between an old
    // root and a leaf during a rotation.
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p
}

/// The issuer of a CA this server made, rebuilt from its certificate and key.
fn issuer(ca: &Ca) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let id = ca.cert.ca_id.as_deref().ok_or(PkiError::ForeignCa)?;
    let params = ca_params(id);
    let issuer = Issuer::new(params, ca.key.key_pair()?);
    Ok(issuer)
}

/// A new self-signed CA valid for `validity` from `now`.
pub(crate) fn new_ca(now: i64, validity: Duration) -> Result<Ca, PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let id = new_ca_id(now);
    let mut params = ca_params(&id);
    set_validity(&mut params, window(now, validity, None));
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key)?;
    Ok(Ca { cert: CertInfo::parse(cert.der())?, key: KeyPem(key.serialize_pem()) })
}

/// A serving certificate for `dns_names` signed by `ca`, valid for `validity`
/// from `now` but never beyond the CA itself.
pub(crate) fn issue_leaf(ca: &Ca, dns_names: &[String], now: i64, validity: Duration) -> Result<Leaf, PkiError> {
    let issuer = issuer(ca)?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(dns_names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, dns_names.first().map(String::as_str).unwrap_or("lifecycle-webhook"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, window(now, validity, Some(ca.cert.not_after)));
    params.serial_number = Some(random_serial());
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Leaf { cert: CertInfo::parse(cert.der())?, key: KeyPem(key.serialize_pem()) })
}

/// `subject` certified by `by`: the same name and key as the `subject` CA,
/// issued by the older CA, so that a client that trusts only `by` still
/// verifies leaves of `subject` (served as an intermediate). Valid while both are.
pub(crate) fn cross_sign(subject: &Ca, by: &Ca, now: i64) -> Result<CertInfo, PkiError> {
    let id = subject.cert.ca_id.as_deref().ok_or(PkiError::ForeignCa)?;
    let issuer = issuer(by)?;
    let mut params = ca_params(id);
    params.use_authority_key_identifier_extension = true;
    let cap = subject.cert.not_after.min(by.cert.not_after);
    let secs = u64::try_from((cap - now).max(1)).unwrap_or(1);
    set_validity(&mut params, window(now, Duration::from_secs(secs), Some(cap)));
    params.serial_number = Some(random_serial());
    let cert = params.signed_by(&subject.key.key_pair()?, &issuer)?;
    CertInfo::parse(cert.der())
}

/// Verifies `chain` (leaf first) for `dns_name` at `now` against `roots`, with
/// the WebPKI verifier of rustls (as the agents do). `Err` says why not.
pub(crate) fn verify_chain(chain: &[CertInfo], roots: &[CertInfo], dns_name: &str, now: i64) -> Result<(), String> {
    let (leaf, intermediates) = chain.split_first().ok_or("empty chain")?;
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(CertificateDer::from(r.der.clone())).map_err(|e| format!("trust anchor: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
        .build()
        .map_err(|e| e.to_string())?;
    let inter: Vec<CertificateDer<'static>> = intermediates.iter().map(|c| CertificateDer::from(c.der.clone())).collect();
    let name = ServerName::try_from(dns_name.to_string()).map_err(|e| e.to_string())?;
    let at = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now.max(0)).unwrap_or(0)));
    verifier
        .verify_server_cert(&CertificateDer::from(leaf.der.clone()), &inter, &name, &[], at)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn names() -> Vec<String> {
        vec!["lifecycle-webhook.lifecycle-jobs-system.svc".into(), "lifecycle-webhook".into()]
    }

    fn now() -> i64 {
        1_800_000_000
    }

    #[test]
    fn ca_is_a_ca_with_its_id() {
        let ca = new_ca(now(), Duration::from_secs(365 * DAY)).unwrap();
        assert!(ca.cert.is_ca);
        assert!(ca.cert.is_self_signed());
        assert!(ca.cert.ca_id.as_deref().unwrap().starts_with("ca-"));
        assert_eq!(ca.cert.not_after, now() + 365 * DAY as i64);
        assert_eq!(ca.cert.not_before, now() - MAX_BACKDATE_SECS);
        assert_eq!(ca.key.spki().unwrap(), ca.cert.spki);
    }

    #[test]
    fn leaf_verifies_against_its_ca_only() {
        let ca = new_ca(now(), Duration::from_secs(365 * DAY)).unwrap();
        let other = new_ca(now(), Duration::from_secs(365 * DAY)).unwrap();
        let leaf = issue_leaf(&ca, &names(), now(), Duration::from_secs(90 * DAY)).unwrap();
        assert!(!leaf.cert.is_ca);
        assert_eq!(leaf.cert.dns_names, names());
        assert_eq!(leaf.cert.issuer, ca.cert.subject);
        assert_eq!(leaf.key.spki().unwrap(), leaf.cert.spki);
        for n in names() {
            verify_chain(std::slice::from_ref(&leaf.cert), std::slice::from_ref(&ca.cert), &n, now() + 10).unwrap();
        }
        assert!(
            verify_chain(std::slice::from_ref(&leaf.cert), std::slice::from_ref(&other.cert), "lifecycle-webhook", now())
                .is_err()
        );
        assert!(verify_chain(std::slice::from_ref(&leaf.cert), std::slice::from_ref(&ca.cert), "evil.example", now()).is_err());
        // Expired.
        assert!(
            verify_chain(
                std::slice::from_ref(&leaf.cert),
                std::slice::from_ref(&ca.cert),
                "lifecycle-webhook",
                now() + 91 * DAY as i64
            )
            .is_err()
        );
    }

    #[test]
    fn leaf_never_outlives_its_ca() {
        let ca = new_ca(now(), Duration::from_secs(30 * DAY)).unwrap();
        let leaf = issue_leaf(&ca, &names(), now(), Duration::from_secs(90 * DAY)).unwrap();
        assert_eq!(leaf.cert.not_after, ca.cert.not_after);
    }

    #[test]
    fn short_lifetimes_backdate_a_tenth() {
        let ca = new_ca(now(), Duration::from_secs(60)).unwrap();
        assert_eq!(ca.cert.not_before, now() - 6);
        assert_eq!(ca.cert.not_after, now() + 60);
    }

    #[test]
    fn cross_signed_ca_bridges_old_trust_to_new_leaves() {
        let old = new_ca(now(), Duration::from_secs(365 * DAY)).unwrap();
        let new = new_ca(now(), Duration::from_secs(365 * DAY)).unwrap();
        let cross = cross_sign(&new, &old, now()).unwrap();
        assert_eq!(cross.subject, new.cert.subject);
        assert_eq!(cross.spki, new.cert.spki);
        assert_eq!(cross.issuer, old.cert.subject);
        assert!(cross.not_after <= old.cert.not_after);
        let leaf = issue_leaf(&new, &names(), now(), Duration::from_secs(90 * DAY)).unwrap();
        let chain = vec![leaf.cert.clone(), cross.clone()];
        let n = "lifecycle-webhook";
        // A client created before the rotation (old only), one created after
        // (new only), and one during (both) all verify the served chain.
        verify_chain(&chain, std::slice::from_ref(&old.cert), n, now()).unwrap();
        verify_chain(&chain, std::slice::from_ref(&new.cert), n, now()).unwrap();
        verify_chain(&chain, &[old.cert.clone(), new.cert.clone()], n, now()).unwrap();
        // Without the bridge an old client cannot.
        assert!(verify_chain(std::slice::from_ref(&leaf.cert), std::slice::from_ref(&old.cert), n, now()).is_err());
    }

    #[test]
    fn pem_round_trip() {
        let a = new_ca(now(), Duration::from_secs(DAY)).unwrap();
        let b = new_ca(now(), Duration::from_secs(DAY)).unwrap();
        let bundle = format!("{}{}", a.cert.pem(), b.cert.pem());
        assert_eq!(pem_certificates(&bundle).unwrap(), vec![a.cert.der.clone(), b.cert.der.clone()]);
        assert!(matches!(pem_certificates("nothing"), Err(PkiError::NoCertificate)));
    }

    #[test]
    fn debug_never_shows_keys() {
        let ca = new_ca(now(), Duration::from_secs(DAY)).unwrap();
        let dbg = format!("{ca:?}");
        assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }
}
