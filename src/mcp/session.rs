//! Sealed MCP session affinity: the endpoint that issued a session is sealed, with the server's
//! own session id, into the `Mcp-Session-Id` the client sees (ChaCha20-Poly1305 AEAD).
//!
//! Owns: the key (from `mcp.session_key_file`, or random per process), `seal` and `open`. No
//! shared store: any replica with the same key can route a session, and clients can neither
//! read the topology nor steer a session to another endpoint (the tag would not verify).
//! Does not own: where the id is read and rewritten (`proxy`).

use std::net::SocketAddr;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of sealed ids (versioned, so the format can change).
const PREFIX: &str = "o1.";

pub struct SessionKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: expected 32 bytes of key material (raw, or 64 hex digits)")]
    Format { path: String },
}

impl SessionKey {
    /// A random key: sessions survive reloads but not a restart of this process.
    pub fn random() -> SessionKey {
        let rng = SystemRandom::new();
        let mut k = [0u8; 32];
        rng.fill(&mut k).expect("the system RNG works");
        SessionKey::from_bytes(&k, rng)
    }

    /// 32 raw bytes, or 64 hex digits (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<SessionKey, KeyError> {
        let p = path.display().to_string();
        let raw = std::fs::read(path).map_err(|source| KeyError::Read {
            path: p.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&raw);
        let trimmed = text.trim();
        let bytes: Vec<u8> = if raw.len() == 32 {
            raw
        } else if trimmed.len() == 64 && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&trimmed[2 * i..2 * i + 2], 16).expect("hex checked"))
                .collect()
        } else {
            return Err(KeyError::Format { path: p });
        };
        Ok(SessionKey::from_bytes(&bytes, SystemRandom::new()))
    }

    fn from_bytes(k: &[u8], rng: SystemRandom) -> SessionKey {
        let key =
            UnboundKey::new(&CHACHA20_POLY1305, k).expect("32 bytes is a ChaCha20-Poly1305 key");
        SessionKey {
            key: LessSafeKey::new(key),
            rng,
        }
    }

    /// The id the client sees for `server_id` issued by `endpoint` of `backend`.
    pub fn seal(&self, backend: &str, endpoint: SocketAddr, server_id: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("the system RNG works");
        let mut data = format!("{endpoint}\n{server_id}").into_bytes();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(backend.as_bytes()),
                &mut data,
            )
            .expect("sealing a short message cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The endpoint and the server's id, if `client_id` was sealed by this key for `backend`.
    pub fn open(&self, backend: &str, client_id: &str) -> Option<(SocketAddr, String)> {
        let b = URL_SAFE_NO_PAD
            .decode(client_id.strip_prefix(PREFIX)?)
            .ok()?;
        if b.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, rest) = b.split_at(NONCE_LEN);
        let mut data = rest.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(backend.as_bytes()), &mut data)
            .ok()?;
        let text = std::str::from_utf8(plain).ok()?;
        let (addr, id) = text.split_once('\n')?;
        Some((addr.parse().ok()?, id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_backend() {
        let k = SessionKey::random();
        let ep: SocketAddr = "10.0.0.5:15006".parse().unwrap();
        let sealed = k.seal("profiles", ep, "abc-123");
        assert!(sealed.starts_with("o1."));
        assert!(
            !sealed.contains("10.0.0.5") && !sealed.contains("abc-123"),
            "opaque: {sealed}"
        );
        assert_eq!(
            k.open("profiles", &sealed),
            Some((ep, "abc-123".to_owned()))
        );
        assert_eq!(
            k.open("other-backend", &sealed),
            None,
            "bound to its backend"
        );
        assert_eq!(
            SessionKey::random().open("profiles", &sealed),
            None,
            "another key"
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            k.open("profiles", std::str::from_utf8(&tampered).unwrap()),
            None
        );
        assert_eq!(k.open("profiles", "plain-server-id"), None);
        assert_ne!(
            k.seal("profiles", ep, "abc-123"),
            sealed,
            "fresh nonce per seal"
        );
    }

    #[test]
    fn key_files_are_raw_or_hex() {
        let dir = std::env::temp_dir().join(format!("outrider-session-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hex = dir.join("hex.key");
        std::fs::write(&hex, format!("{}\n", "ab".repeat(32))).unwrap();
        let raw = dir.join("raw.key");
        std::fs::write(&raw, [0xabu8; 32]).unwrap();
        let (a, b) = (
            SessionKey::from_file(&hex).unwrap(),
            SessionKey::from_file(&raw).unwrap(),
        );
        let ep: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(
            b.open("x", &a.seal("x", ep, "s")),
            Some((ep, "s".to_owned())),
            "same key either way"
        );
        std::fs::write(dir.join("bad.key"), "short").unwrap();
        assert!(SessionKey::from_file(&dir.join("bad.key")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
