//! Certificate verification for the mesh: chains to the configured CA, identities by SPIFFE
//! URI SAN (never by DNS name), and the mapping of handshake failures to metric reasons.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::identity::cert_info;

/// The peer's certificate has no (or the wrong) SPIFFE identity.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadIdentity(pub String);

fn bad_identity(msg: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(BadIdentity(
        msg,
    )))))
}

/// Server side: requires a client certificate chained to the CA that carries one SPIFFE ID.
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl SpiffeClientVerifier {
    pub fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, rustls::server::VerifierBuilderError> {
        let inner =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider).build()?;
        Ok(SpiffeClientVerifier { inner })
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let info = cert_info(end_entity).map_err(bad_identity)?;
        if info.spiffe_id.is_none() {
            return Err(bad_identity(
                "client certificate has no single spiffe:// URI SAN".into(),
            ));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Client side: the server's chain must reach the CA and its SPIFFE ID must equal `expected`.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    expected: String,
    provider: Arc<CryptoProvider>,
}

impl SpiffeServerVerifier {
    pub fn new(roots: Arc<RootCertStore>, expected: String, provider: Arc<CryptoProvider>) -> Self {
        SpiffeServerVerifier {
            roots,
            expected,
            provider,
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let got = cert_info(end_entity).map_err(bad_identity)?.spiffe_id;
        if got.as_deref() != Some(self.expected.as_str()) {
            return Err(bad_identity(format!(
                "server identity {} is not the expected {}",
                got.as_deref().unwrap_or("(none)"),
                self.expected
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Bounded reason label for `outrider_tls_handshake_errors_total`, from an IO error returned
/// by a handshake (rustls errors travel inside `io::Error`).
pub fn handshake_reason(err: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return rustls_reason(r);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                    return rustls_reason(r);
                }
            }
            match io.kind() {
                std::io::ErrorKind::TimedOut => return "timeout",
                // The peer hung up mid-handshake (TLS-only probes, port scanners).
                std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe => return "peer-closed",
                _ => {}
            }
        }
        cur = e.source();
    }
    "other"
}

fn rustls_reason(e: &rustls::Error) -> &'static str {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::NoCertificatesPresented => "no-client-cert",
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => "unknown-ca",
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not-yet-valid"
            }
            CertificateError::Other(o) if o.0.downcast_ref::<BadIdentity>().is_some() => {
                "bad-identity"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "bad-identity"
            }
            _ => "bad-certificate",
        },
        // What the peer told us about our certificate.
        rustls::Error::AlertReceived(A::UnknownCA) => "unknown-ca",
        rustls::Error::AlertReceived(A::CertificateExpired) => "expired",
        rustls::Error::AlertReceived(A::CertificateRequired) => "no-client-cert",
        rustls::Error::AlertReceived(_) => "alert",
        rustls::Error::InvalidMessage(_) => "not-tls",
        _ => "other",
    }
}
