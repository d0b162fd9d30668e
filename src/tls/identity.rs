//! SPIFFE identities: parsing, reading them out of certificates, and matching peer globs.
//!
//! An identity is the single `spiffe://TRUST_DOMAIN/PATH` URI SAN of a workload certificate.

use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Checks the shape of a SPIFFE ID (`spiffe://trust-domain/path`).
pub fn check_spiffe_id(id: &str) -> Result<(), String> {
    let Some(rest) = id.strip_prefix("spiffe://") else {
        return Err(format!(
            "`{id}` is not a SPIFFE ID (expected spiffe://TRUST_DOMAIN/PATH)"
        ));
    };
    let (domain, path) = rest.split_once('/').unwrap_or((rest, ""));
    let domain_ok = !domain.is_empty()
        && domain.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    if !domain_ok {
        return Err(format!(
            "`{id}`: invalid trust domain `{domain}` (lower-case letters, digits, `.`, `-`, `_`)"
        ));
    }
    if path.is_empty() || path.split('/').any(str::is_empty) {
        return Err(format!(
            "`{id}`: a SPIFFE ID needs a non-empty path without empty segments"
        ));
    }
    Ok(())
}

/// What outrider needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The `spiffe://` URI SAN, if exactly one is present.
    pub spiffe_id: Option<String>,
    /// Serial number as colon-separated hex.
    pub serial: String,
    pub not_after: SystemTime,
}

pub fn cert_info(der: &CertificateDer<'_>) -> Result<CertInfo, String> {
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| format!("cannot parse certificate: {e}"))?;
    let mut ids = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name {
                if uri.starts_with("spiffe://") {
                    ids.push((*uri).to_owned());
                }
            }
        }
    }
    let ts = cert.validity().not_after.timestamp();
    let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(ts).unwrap_or(0));
    Ok(CertInfo {
        // SPIFFE requires exactly one URI SAN; several are treated as none (no identity).
        spiffe_id: (ids.len() == 1).then(|| ids.remove(0)),
        serial: cert.raw_serial_as_string(),
        not_after,
    })
}

/// A peer pattern such as `spiffe://classroom.local/sa/*` (`*` matches any run of characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerGlob(glob::Pattern);

impl PeerGlob {
    pub fn new(s: &str) -> Result<PeerGlob, String> {
        glob::Pattern::new(s)
            .map(PeerGlob)
            .map_err(|e| format!("invalid peer pattern `{s}`: {e}"))
    }

    pub fn matches(&self, identity: &str) -> bool {
        self.0.matches(identity)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_are_checked() {
        assert!(check_spiffe_id("spiffe://classroom.local/sa/gateway").is_ok());
        assert!(check_spiffe_id("https://x/y").is_err());
        assert!(check_spiffe_id("spiffe://Classroom/sa/x").is_err());
        assert!(check_spiffe_id("spiffe://td").is_err());
        assert!(check_spiffe_id("spiffe://td/a//b").is_err());
    }

    #[test]
    fn globs_match_identities() {
        let g = PeerGlob::new("spiffe://classroom.local/sa/*").unwrap();
        assert!(g.matches("spiffe://classroom.local/sa/gateway"));
        assert!(!g.matches("spiffe://other.local/sa/gateway"));
        assert!(PeerGlob::new("spiffe://x/[").is_err());
    }
}
