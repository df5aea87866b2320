//! Client keys are kept as SHA-256 digests: the secret itself is never stored or logged.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The SHA-256 digest of a secret.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Parses a 64-digit hex digest.
pub fn parse_digest(hex_text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text.trim(), &mut out).ok()?;
    Some(out)
}

/// The key table a shard checks presented secrets against.
#[derive(Debug, Clone, Default)]
pub struct KeyTable {
    by_digest: HashMap<[u8; 32], usize>,
}

impl KeyTable {
    /// A table of `keys`; each digest maps to its index in the slice.
    pub fn new(keys: &[crate::config::ClientKey]) -> Self {
        Self {
            by_digest: keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.sha256, i))
                .collect(),
        }
    }

    /// Whether any key is configured (if not, the data plane is open).
    pub fn is_enabled(&self) -> bool {
        !self.by_digest.is_empty()
    }

    /// The index of the key whose secret is `secret`.
    pub fn lookup(&self, secret: &str) -> Option<usize> {
        self.lookup_digest(&digest(secret))
    }

    /// The index of the key whose secret has this digest.
    pub fn lookup_digest(&self, digest: &[u8; 32]) -> Option<usize> {
        self.by_digest.get(digest).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientKey;

    #[test]
    fn lookup_by_secret() {
        let keys = [
            ClientKey {
                name: "a".into(),
                sha256: digest("one"),
            },
            ClientKey {
                name: "b".into(),
                sha256: parse_digest(&hex::encode(digest("two"))).unwrap(),
            },
        ];
        let t = KeyTable::new(&keys);
        assert!(t.is_enabled());
        assert_eq!(t.lookup("one"), Some(0));
        assert_eq!(t.lookup("two"), Some(1));
        assert_eq!(t.lookup("three"), None);
        assert!(parse_digest("abc").is_none());
    }
}
