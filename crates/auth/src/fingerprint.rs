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
        let d = digest::digest(&digest::SHA256, secret);
        let mut s = URL_SAFE_NO_PAD.encode(d.as_ref());
        s.truncate(12);
        Fingerprint(s)
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
}
