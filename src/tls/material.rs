//! The sidecar's own TLS material (CA bundle, certificate chain, key) and the rustls configs
//! built from it, kept in a store that is swapped whole when the files rotate.
//!
//! Owns: loading and checking the files (key matches cert, cert chains to the CA, URI SAN ==
//! `identity`), server and per-peer-identity client configs, live rotation. Does not own:
//! accepting or connecting (see `proxy`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use super::identity::{cert_info, CertInfo};
use super::verify::{SpiffeClientVerifier, SpiffeServerVerifier};
use super::Error;

/// Paths of the three files of the `tls` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// ALPN offered to an upstream, from the backend's `protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alpn {
    H2,
    Http1,
    Auto,
}

impl Alpn {
    fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::H2 => vec![b"h2".to_vec()],
            Alpn::Http1 => vec![b"http/1.1".to_vec()],
            Alpn::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// The crypto provider, chosen once: ring (see docs/tls.md for why).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One consistent set of loaded files and the configs built from them.
pub struct Material {
    pub identity: String,
    pub info: CertInfo,
    pub server: Arc<ServerConfig>,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: Arc<CryptoProvider>,
    clients: Mutex<HashMap<(String, Alpn), Arc<ClientConfig>>>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("identity", &self.identity)
            .field("info", &self.info)
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

impl Material {
    pub fn load(files: &TlsFiles, identity: &str) -> Result<Material, Error> {
        let provider = provider();
        let bad = |path: &Path, why: String| Error::Invalid {
            path: path.to_owned(),
            why,
        };
        let ca_pem = read(&files.ca)?;
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&ca_pem) {
            let c = c.map_err(|e| bad(&files.ca, format!("not a PEM certificate bundle: {e}")))?;
            roots
                .add(c)
                .map_err(|e| bad(&files.ca, format!("unusable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(bad(&files.ca, "no CA certificate found".into()));
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&read(&files.cert)?)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(&files.cert, format!("not a PEM certificate: {e}")))?;
        let Some(leaf) = chain.first() else {
            return Err(bad(&files.cert, "no certificate found".into()));
        };
        let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
            .map_err(|e| bad(&files.key, format!("not a PEM private key: {e}")))?;
        let info = cert_info(leaf).map_err(|e| bad(&files.cert, e))?;
        match &info.spiffe_id {
            Some(id) if id == identity => {}
            Some(id) => {
                return Err(bad(
                    &files.cert,
                    format!("certificate identity {id} differs from `identity: {identity}`"),
                ))
            }
            None => {
                return Err(bad(
                    &files.cert,
                    "certificate has no single spiffe:// URI SAN".into(),
                ))
            }
        }
        let roots = Arc::new(roots);
        // Our own certificate must chain to the CA we give peers (catches a mismatched bundle).
        let parsed =
            ParsedCertificate::try_from(leaf).map_err(|e| bad(&files.cert, e.to_string()))?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &chain[1..],
            UnixTime::now(),
            provider.signature_verification_algorithms.all,
        )
        .map_err(|e| {
            bad(
                &files.cert,
                format!("certificate does not verify against the CA bundle: {e}"),
            )
        })?;
        let signing = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| bad(&files.key, format!("unusable private key: {e}")))?;
        let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing);
        if let Err(e) = certified.keys_match() {
            return Err(bad(
                &files.key,
                format!("private key does not match the certificate: {e}"),
            ));
        }
        let verifier = SpiffeClientVerifier::new(roots.clone(), provider.clone())
            .map_err(|e| bad(&files.ca, e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(e.to_string()))?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| bad(&files.key, e.to_string()))?;
        server.alpn_protocols = Alpn::Auto.protocols();
        Ok(Material {
            identity: identity.to_owned(),
            info,
            server: Arc::new(server),
            roots,
            chain,
            key,
            provider,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// Client config that presents our certificate and accepts only `expected` as the server.
    pub fn client_config(&self, expected: &str, alpn: Alpn) -> Arc<ClientConfig> {
        let mut cache = self
            .clients
            .lock()
            .expect("client config cache lock is never poisoned");
        if let Some(c) = cache.get(&(expected.to_owned(), alpn)) {
            return c.clone();
        }
        let verifier: Arc<dyn ServerCertVerifier> = Arc::new(SpiffeServerVerifier::new(
            self.roots.clone(),
            expected.to_owned(),
            self.provider.clone(),
        ));
        let mut cfg = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .expect("the key was checked against the certificate at load");
        cfg.alpn_protocols = alpn.protocols();
        let cfg = Arc::new(cfg);
        cache.insert((expected.to_owned(), alpn), cfg.clone());
        cfg
    }

    pub fn expires_at(&self) -> SystemTime {
        self.info.not_after
    }
}

/// The material in force, swapped whole on rotation. Open connections keep the config they
/// were made with; new connections use the new one.
pub struct TlsStore {
    pub files: TlsFiles,
    current: ArcSwap<Material>,
}

impl TlsStore {
    pub fn new(files: TlsFiles, identity: &str) -> Result<TlsStore, Error> {
        let m = Material::load(&files, identity)?;
        Ok(TlsStore {
            files,
            current: ArcSwap::from_pointee(m),
        })
    }

    pub fn current(&self) -> Arc<Material> {
        self.current.load_full()
    }

    /// Re-reads the files; on any problem the current material stays in force.
    /// Returns `Ok(true)` when the certificate, its chain or the CA bundle changed.
    pub fn reload(&self) -> Result<bool, Error> {
        let old = self.current.load();
        let m = Material::load(&self.files, &old.identity)?;
        // A new CA bundle alone (a CA added for a migration, a compromised one removed)
        // counts as a change too.
        let changed = m.info.serial != old.info.serial
            || m.chain != old.chain
            || m.roots.roots != old.roots.roots;
        if changed {
            self.current.store(Arc::new(m));
        }
        Ok(changed)
    }
}
