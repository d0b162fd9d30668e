//! Development PKI for `outrider certs` and the tests: one CA and, per service name, a key and
//! a certificate whose only URI SAN is `spiffe://TRUST_DOMAIN/sa/NAME`.
//!
//! Development only: production identities come from cert-manager or SPIRE (docs/tls.md).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid name `{0}`: use letters, digits, `-`, `_`, `.`")]
    Name(String),
}

/// A CA that can issue workload certificates: a self-signed root, or an intermediate signed
/// by another `Ca` (as SPIRE with an upstream authority and cert-manager issuers chained to an
/// offline root issue them).
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub cert_pem: String,
    /// The intermediates from this CA up to (not including) the root, leaf-side first; empty
    /// for a root. Appended to every certificate it issues, so that the certificate file is
    /// the chain a peer needs.
    chain_pem: String,
}

/// A workload certificate and key, PEM encoded.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Validity window of an issued certificate.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// From one hour ago (clock skew) to `days` from now.
    pub fn days(days: u64) -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(days * 86_400),
        }
    }
}

impl Ca {
    pub fn new(trust_domain: &str) -> Result<Ca, Error> {
        let params = ca_params(
            format!("outrider development CA ({trust_domain})"),
            Validity::days(3650),
        )?;
        let key = KeyPair::generate()?;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Ca {
            params,
            key,
            cert_pem,
            chain_pem: String::new(),
        })
    }

    /// An intermediate CA signed by this one, named `name`, valid for a year.
    pub fn intermediate(&self, name: &str) -> Result<Ca, Error> {
        let mut params = ca_params(name.to_owned(), Validity::days(365))?;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert_pem = params.signed_by(&key, &issuer)?.pem();
        let chain_pem = format!("{cert_pem}{}", self.chain_pem);
        Ok(Ca {
            params,
            key,
            cert_pem,
            chain_pem,
        })
    }

    /// Issues a certificate with exactly `uri_sans` as URI SANs (tests pass odd sets on purpose)
    /// for a new ECDSA P-256 key; from an intermediate, `cert_pem` holds the leaf followed by the
    /// intermediates.
    pub fn issue(&self, uri_sans: &[String], validity: Validity) -> Result<Issued, Error> {
        let key = KeyPair::generate()?;
        Ok(Issued {
            cert_pem: self.sign(uri_sans, validity, &key)?,
            key_pem: key.serialize_pem(),
        })
    }

    /// Like [`Ca::issue`], for an existing key (PKCS#8 PEM: ECDSA, Ed25519 or RSA), which is
    /// returned as given.
    pub fn issue_for_key(
        &self,
        uri_sans: &[String],
        validity: Validity,
        key_pem: &str,
    ) -> Result<Issued, Error> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(Issued {
            cert_pem: self.sign(uri_sans, validity, &key)?,
            key_pem: key_pem.to_owned(),
        })
    }

    /// The certificate (and any intermediates) for `key`'s public half.
    fn sign(
        &self,
        uri_sans: &[String],
        validity: Validity,
        key: &KeyPair,
    ) -> Result<String, Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for uri in uri_sans {
            params
                .subject_alt_names
                .push(SanType::URI(uri.as_str().try_into()?));
        }
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            uri_sans.first().cloned().unwrap_or_default(),
        );
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = validity.not_before.into();
        params.not_after = validity.not_after.into();
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(key, &issuer)?;
        Ok(format!("{}{}", cert.pem(), self.chain_pem))
    }

    /// `spiffe://TD/sa/NAME`, valid for a year.
    pub fn issue_service(&self, trust_domain: &str, name: &str) -> Result<Issued, Error> {
        self.issue(&[spiffe_id(trust_domain, name)], Validity::days(365))
    }
}

/// A CA certificate's parameters: common name, key usages, validity.
fn ca_params(common_name: String, validity: Validity) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = validity.not_before.into();
    params.not_after = validity.not_after.into();
    Ok(params)
}

pub fn spiffe_id(trust_domain: &str, name: &str) -> String {
    format!("spiffe://{trust_domain}/sa/{name}")
}

/// Writes `ca.pem`, `ca.key` and `NAME.pem` + `NAME.key` per name into `dir`.
pub fn write_dev_pki(
    dir: &Path,
    trust_domain: &str,
    names: &[String],
) -> Result<Vec<PathBuf>, Error> {
    for n in names {
        if n.is_empty()
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(Error::Name(n.clone()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_owned(),
        source,
    })?;
    let ca = Ca::new(trust_domain)?;
    let mut written = Vec::new();
    let mut write = |name: String, body: &str, private: bool| -> Result<(), Error> {
        let path = dir.join(name);
        // Keys are created 0600 (never readable by others, not even briefly); an existing
        // file is truncated and set to 0600 too.
        let written_file = || -> std::io::Result<()> {
            use std::io::Write;
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(if private { 0o600 } else { 0o644 })
                .open(&path)?;
            if private {
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            f.write_all(body.as_bytes())
        };
        written_file().map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
        Ok(())
    };
    write("ca.pem".into(), &ca.cert_pem, false)?;
    write("ca.key".into(), &ca.key.serialize_pem(), true)?;
    for n in names {
        let issued = ca.issue_service(trust_domain, n)?;
        write(format!("{n}.pem"), &issued.cert_pem, false)?;
        write(format!("{n}.key"), &issued.key_pem, true)?;
    }
    Ok(written)
}

#[cfg(test)]
mod file_tests {
    use std::os::unix::fs::PermissionsExt;

    /// Keys are never readable by others, also when overwriting a world-readable file.
    #[test]
    fn keys_are_written_owner_only() {
        let dir = std::env::temp_dir().join(format!("outrider-certs-perms-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stale = dir.join("svc.key");
        std::fs::write(&stale, "old").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_dev_pki(&dir, "t.local", &["svc".to_owned()]).unwrap();
        let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("svc.key"), 0o600);
        assert_eq!(mode("ca.key"), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
