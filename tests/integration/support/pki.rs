//! Certificates generated in the test (outrider's own dev PKI code over rcgen) and a raw mTLS
//! client, for the mTLS tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use outrider::certs::{spiffe_id, Ca, Issued, Validity};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{body, bounded};

pub const TD: &str = "classroom.local";

/// A CA and a directory of issued files, removed on drop.
pub struct Pki {
    pub ca: Ca,
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "outrider-pki-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Ca::new(TD).unwrap();
        std::fs::write(dir.join("ca.pem"), &ca.cert_pem).unwrap();
        Pki { ca, dir }
    }

    pub fn id(name: &str) -> String {
        spiffe_id(TD, name)
    }

    /// Issues `spiffe://classroom.local/sa/NAME` into `NAME.pem` / `NAME.key`.
    pub fn service(&self, name: &str) -> (PathBuf, PathBuf) {
        let issued = self.ca.issue(&[Pki::id(name)], Validity::days(30)).unwrap();
        self.write(name, &issued)
    }

    pub fn write(&self, file: &str, issued: &Issued) -> (PathBuf, PathBuf) {
        let cert = self.dir.join(format!("{file}.pem"));
        let key = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert, &issued.cert_pem).unwrap();
        std::fs::write(&key, &issued.key_pem).unwrap();
        (cert, key)
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The `identity:` + `tls:` lines of a sidecar config for `name`.
    pub fn sidecar_yaml(&self, name: &str) -> String {
        let (cert, key) = self.service(name);
        self.sidecar_yaml_files(name, &cert, &key)
    }

    /// The `identity:` + `tls:` lines for `name` with the given certificate and key files.
    pub fn sidecar_yaml_files(&self, name: &str, cert: &Path, key: &Path) -> String {
        format!(
            "identity: \"{}\"\ntls: {{ ca: \"{}\", cert: \"{}\", key: \"{}\" }}\n",
            Pki::id(name),
            self.ca_path().display(),
            cert.display(),
            key.display()
        )
    }

    /// An expired certificate for `name` (valid yesterday).
    pub fn expired(&self, name: &str) -> Issued {
        let now = SystemTime::now();
        let v = Validity {
            not_before: now - Duration::from_secs(2 * 86_400),
            not_after: now - Duration::from_secs(86_400),
        };
        self.ca.issue(&[Pki::id(name)], v).unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A raw mTLS client of a sidecar's inbound listener.
pub struct TlsClient {
    pub config: Arc<rustls::ClientConfig>,
}

impl TlsClient {
    /// Trusts `ca_pem`, expects the server to be `server_id`, presents `client` (or nothing).
    pub fn new(ca_pem: &str, server_id: &str, client: Option<&Issued>, alpn_h2: bool) -> TlsClient {
        let provider = outrider::tls::material::provider();
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = outrider::tls::verify::SpiffeServerVerifier::new(
            Arc::new(roots),
            server_id.to_owned(),
            provider.clone(),
        );
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match client {
            Some(c) => {
                // Every certificate of the file: the leaf and any intermediates.
                let chain = CertificateDer::pem_slice_iter(c.cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = if alpn_h2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        TlsClient {
            config: Arc::new(config),
        }
    }

    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = bounded("tcp connect", TcpStream::connect(addr)).await?;
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let mut stream = bounded(
            "tls handshake",
            connector.connect(ServerName::IpAddress(addr.ip().into()), tcp),
        )
        .await?;
        // TLS 1.3 reports a rejected client certificate only on the first read: probe for it.
        use tokio::io::AsyncWriteExt;
        stream.flush().await?;
        Ok(stream)
    }

    /// One HTTP/1.1 request over a new mTLS connection; returns the sender to reuse it.
    pub async fn http1(
        &self,
        addr: SocketAddr,
    ) -> Result<
        (hyper::client::conn::http1::SendRequest<body::Body>, String),
        Box<dyn std::error::Error + Send + Sync>,
    > {
        let stream = self.connect(addr).await?;
        let serial = serial_of(&stream);
        let (sender, conn) = bounded(
            "h1 handshake",
            hyper::client::conn::http1::handshake(TokioIo::new(stream)),
        )
        .await?;
        tokio::spawn(conn);
        Ok((sender, serial))
    }
}

/// Runs `openssl ARGS` and returns its stdout: for the key formats rcgen does not write (RSA
/// keys, PKCS#1, SEC1), as cert-manager and SPIRE write them. `scripts/test.sh` installs it.
pub fn openssl(args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("openssl writes PEM")
}

/// Serial of the certificate the server presented on `stream`.
pub fn serial_of(stream: &TlsStream<TcpStream>) -> String {
    let der = &stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("server presented a certificate")[0];
    outrider::tls::identity::cert_info(der).unwrap().serial
}

pub async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<body::Body>,
    path: &str,
) -> Result<http::Response<Incoming>, hyper::Error> {
    let req = Request::get(path)
        .header("host", "app")
        .body(body::empty())
        .unwrap();
    bounded("response over mTLS", sender.send_request(req)).await
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
