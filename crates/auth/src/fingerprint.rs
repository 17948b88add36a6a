//! Short hashes that stand in for tokens and secrets in logs and audit lines.

use std::fmt;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The first 12 characters of the base64url SHA-256 of a secret: enough to correlate log lines,
/// useless for recovering the secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Fingerprints any secret bytes.
    pub fn of(secret: &[u8]) -> Self {
        TokenDigest::of(secret).fingerprint()
    }

    /// The fingerprint text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.0)
    }
}

/// The SHA-256 of a bearer token. Computed once per request, it keys the verified-token cache and
/// gives the token's [`Fingerprint`], so the token is hashed once rather than twice.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `secret`.
    pub(crate) fn of(secret: &[u8]) -> Self {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest::digest(&digest::SHA256, secret).as_ref());
        TokenDigest(bytes)
    }

    /// The fingerprint: the first 12 base64url characters of the digest, which are those of its
    /// first 9 bytes (3 bytes make 4 characters).
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        Fingerprint(URL_SAFE_NO_PAD.encode(&self.0[..9]))
    }
}

/// The full SHA-256 of a secret, base64url: how refresh tokens are stored.
pub(crate) fn sha256_b64(secret: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, secret).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_stable_and_not_the_secret() {
        let f = Fingerprint::of(b"super-secret-token");
        assert_eq!(f.as_str().len(), 12);
        assert_eq!(f, Fingerprint::of(b"super-secret-token"));
        assert_ne!(f, Fingerprint::of(b"super-secret-tokem"));
        assert!(!format!("{f:?}{f}").contains("secret"));
    }

    #[test]
    fn the_fingerprint_is_the_prefix_of_the_full_digest() {
        for secret in [&b""[..], b"a", b"super-secret-token", &[0xffu8; 500]] {
            let full = sha256_b64(secret);
            assert_eq!(Fingerprint::of(secret).as_str(), &full[..12]);
            assert_eq!(
                TokenDigest::of(secret).fingerprint(),
                Fingerprint::of(secret)
            );
        }
    }
}
