//! Mesh TLS: SPIFFE identities, the sidecar's own certificate material (rotated live), and
//! verification of peers by identity rather than DNS name.
//!
//! Owns: `identity` (SPIFFE IDs, certificate facts, peer globs), `verify` (rustls verifiers,
//! handshake failure reasons), `material` (files -> rustls configs, `TlsStore`). The crypto
//! provider is ring (docs/tls.md explains the choice).

pub mod identity;
pub mod material;
pub mod verify;

use std::path::PathBuf;

pub use material::{Alpn, Material, TlsFiles, TlsStore};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}
