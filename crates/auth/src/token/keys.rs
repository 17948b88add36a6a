//! Signing and verification keys. Every key is bound to exactly one algorithm, so a token's `alg`
//! header can never make a key be used as another kind (an HS256 token checked with an RSA public
//! key as its HMAC secret, say).

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};

use super::b64;
use crate::Fingerprint;

/// The shortest HMAC secret accepted (RFC 7518 section 3.2 wants at least the hash size).
pub const MIN_HMAC_SECRET: usize = 32;

/// Why a key could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An HMAC secret shorter than [`MIN_HMAC_SECRET`] bytes.
    #[error("the HMAC secret has {0} bytes; at least {MIN_HMAC_SECRET} are required")]
    ShortSecret(usize),
    /// The key material does not parse for the algorithm.
    #[error("the key is not a valid {alg} key: {why}")]
    Invalid {
        /// The algorithm it was meant for.
        alg: &'static str,
        /// What the parser said.
        why: String,
    },
    /// The algorithm cannot be used here.
    #[error("algorithm {0} is not supported for this operation")]
    Unsupported(&'static str),
}

/// The name of an algorithm as written in JOSE headers.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

/// Parses a JOSE algorithm name; `none` and anything unknown give `None`.
pub fn parse_alg(name: &str) -> Option<Algorithm> {
    name.parse().ok()
}

/// A public key (or HMAC secret) that verifies one algorithm.
#[derive(Clone)]
pub struct VerifyKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
    /// The key prepared once (HMAC states, or an aws-lc-rs public key), so a verification neither
    /// rebuilds an HMAC key nor re-parses a public key. `None` only for key forms it cannot take
    /// (RSA from `n`/`e`).
    prepared: Option<Prepared>,
}

#[derive(Clone)]
enum Prepared {
    Hmac(Box<HmacKey>),
    Public(aws_lc_rs::signature::ParsedPublicKey),
}

/// An HMAC key with its inner and outer hash states computed once.
///
/// RustCrypto's `hmac` rather than aws-lc-rs: checking a token's tag then starts from a copy of
/// two small hash states, where aws-lc-rs copies and re-initialises a whole `HMAC_CTX`. That
/// bookkeeping was a third of the raw HS256 check, about 120 ns (docs/PERFORMANCE.md, run 22); the
/// SHA-256 rounds themselves run on the CPU's SHA extensions either way.
#[derive(Clone)]
enum HmacKey {
    Sha256(hmac::Hmac<sha2::Sha256>),
    Sha384(hmac::Hmac<sha2::Sha384>),
    Sha512(hmac::Hmac<sha2::Sha512>),
}

impl HmacKey {
    fn new(alg: Algorithm, secret: &[u8]) -> Option<Self> {
        use hmac::KeyInit;
        // HMAC takes a key of any length; the length rule (`MIN_HMAC_SECRET`) is the config's.
        Some(match alg {
            Algorithm::HS256 => HmacKey::Sha256(hmac::Hmac::new_from_slice(secret).ok()?),
            Algorithm::HS384 => HmacKey::Sha384(hmac::Hmac::new_from_slice(secret).ok()?),
            Algorithm::HS512 => HmacKey::Sha512(hmac::Hmac::new_from_slice(secret).ok()?),
            _ => return None,
        })
    }

    /// Whether `tag` is the full HMAC of `message`, compared in constant time; a truncated tag
    /// is refused.
    fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        use hmac::Mac;
        fn check<M: Mac + Clone>(key: &M, message: &[u8], tag: &[u8]) -> bool {
            let mut mac = key.clone();
            mac.update(message);
            mac.verify_slice(tag).is_ok()
        }
        match self {
            HmacKey::Sha256(key) => check(key, message, tag),
            HmacKey::Sha384(key) => check(key, message, tag),
            HmacKey::Sha512(key) => check(key, message, tag),
        }
    }
}

fn prepare(alg: Algorithm, key: &DecodingKey) -> Option<Prepared> {
    use aws_lc_rs::signature as sig;
    let bytes = key.try_get_as_bytes().ok()?;
    let public = |v: &'static dyn sig::VerificationAlgorithm| {
        sig::ParsedPublicKey::new(v, bytes)
            .ok()
            .map(Prepared::Public)
    };
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            HmacKey::new(alg, bytes).map(|key| Prepared::Hmac(Box::new(key)))
        }
        Algorithm::ES256 => public(&sig::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => public(&sig::ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => public(&sig::ED25519),
        Algorithm::RS256 => public(&sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => public(&sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => public(&sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => public(&sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => public(&sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => public(&sig::RSA_PSS_2048_8192_SHA512),
        _ => None,
    }
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &alg_name(self.alg))
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// An HMAC secret for one of HS256/384/512.
    pub fn hmac(kid: Option<String>, alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(KeyError::Unsupported(alg_name(alg)));
        }
        if secret.len() < MIN_HMAC_SECRET {
            return Err(KeyError::ShortSecret(secret.len()));
        }
        let key = DecodingKey::from_secret(secret);
        Ok(VerifyKey {
            kid,
            alg,
            prepared: prepare(alg, &key),
            key,
        })
    }

    /// A public key in PEM (SubjectPublicKeyInfo, or PKCS#1 for RSA) for an asymmetric algorithm.
    pub fn from_public_pem(
        kid: Option<String>,
        alg: Algorithm,
        pem: &[u8],
    ) -> Result<Self, KeyError> {
        let invalid = |e: jsonwebtoken::errors::Error| KeyError::Invalid {
            alg: alg_name(alg),
            why: e.to_string(),
        };
        let key = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem).map_err(invalid)?,
            Algorithm::ES256 | Algorithm::ES384 => {
                DecodingKey::from_ec_pem(pem).map_err(invalid)?
            }
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem).map_err(invalid)?,
            _ => return Err(KeyError::Unsupported(alg_name(alg))),
        };
        Ok(VerifyKey {
            kid,
            alg,
            prepared: prepare(alg, &key),
            key,
        })
    }

    /// A public key from a JWK; the JWK's `alg` (or `fallback`) fixes the algorithm.
    pub fn from_jwk(jwk: &Jwk, fallback: Option<Algorithm>) -> Result<Self, KeyError> {
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| parse_alg(&a.to_string()))
            .or(fallback)
            .ok_or(KeyError::Unsupported("a JWK without `alg`"))?;
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            // A symmetric key published in a JWKS would be a secret anyone can read.
            return Err(KeyError::Unsupported("an `oct` JWK"));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| KeyError::Invalid {
            alg: alg_name(alg),
            why: e.to_string(),
        })?;
        if key.family() != alg.family() {
            return Err(KeyError::Invalid {
                alg: alg_name(alg),
                why: "the key type does not match the algorithm".into(),
            });
        }
        Ok(VerifyKey {
            kid: jwk.common.key_id.clone(),
            alg,
            prepared: prepare(alg, &key),
            key,
        })
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Checks `signature` (base64url) over `message`.
    pub(crate) fn verify_signature(&self, message: &[u8], signature_b64: &str) -> bool {
        let Some(prepared) = &self.prepared else {
            return jsonwebtoken::crypto::verify(signature_b64, message, &self.key, self.alg)
                .unwrap_or(false);
        };
        // Room for HMAC, ECDSA and EdDSA signatures, so those allocate nothing here. RSA ones
        // (256 bytes and up) go to the heap, a small cost next to an RSA check. Small, as it is
        // zeroed on every call.
        let mut buf = [0u8; 128];
        let mut spill = Vec::new();
        let Some(signature) = b64::decode(signature_b64, &mut buf, &mut spill) else {
            return false;
        };
        match prepared {
            Prepared::Hmac(key) => key.verify(message, signature),
            Prepared::Public(key) => key.verify_sig(message, signature).is_ok(),
        }
    }
}

/// The verification keys of one issuer, by key id.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, VerifyKey>,
    without_kid: Vec<VerifyKey>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key; a key with the id of an earlier one replaces it.
    pub fn insert(&mut self, key: VerifyKey) {
        match key.kid.clone() {
            Some(kid) => {
                self.by_kid.insert(kid, key);
            }
            None => self.without_kid.push(key),
        }
    }

    /// The key a token names by `kid`, or, for a token without `kid`, the only key of its
    /// algorithm that has no id.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerifyKey, KeyLookup> {
        match kid {
            // Exact lookup only: a `kid` such as `../../etc/passwd` is just an unknown id. An
            // issuer has a handful of keys: comparing them all costs less than hashing the id.
            Some(kid) if self.by_kid.len() <= 8 => self
                .by_kid
                .iter()
                .find_map(|(k, v)| (k == kid).then_some(v))
                .ok_or(KeyLookup::UnknownKid),
            Some(kid) => self.by_kid.get(kid).ok_or(KeyLookup::UnknownKid),
            None => {
                let mut same_alg = self.without_kid.iter().filter(|k| k.alg == alg);
                match (same_alg.next(), same_alg.next()) {
                    (Some(k), None) => Ok(k),
                    (None, _) if self.without_kid.is_empty() => Err(KeyLookup::MissingKid),
                    (None, _) => Err(KeyLookup::NoKeyForAlg),
                    (Some(_), Some(_)) => Err(KeyLookup::MissingKid),
                }
            }
        }
    }

    /// The keys of a JWKS document. A key without `alg` takes `fallback` (the issuer's one
    /// algorithm); `oct` keys are refused, since a published symmetric key is no secret.
    pub fn from_jwks_json(text: &str, fallback: Option<Algorithm>) -> Result<Self, KeyError> {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(text).map_err(|e| KeyError::Invalid {
                alg: "JWKS",
                why: e.to_string(),
            })?;
        let mut keys = KeySet::new();
        for jwk in &set.keys {
            keys.insert(VerifyKey::from_jwk(jwk, fallback)?);
        }
        Ok(keys)
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why no key was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyLookup {
    UnknownKid,
    MissingKid,
    NoKeyForAlg,
}

/// A private key this gateway signs with, and its public half.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    /// PKCS#8 DER for asymmetric keys (persisted in the store); empty for HMAC.
    pkcs8: Vec<u8>,
    verify: VerifyKey,
    jwk: Option<Value>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &alg_name(self.alg))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// An HS256 key from a shared secret (the seed's `JWT_SECRET`); it has no public JWK.
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Result<Self, KeyError> {
        let kid = kid.into();
        let verify = VerifyKey::hmac(Some(kid.clone()), Algorithm::HS256, secret)?;
        Ok(SigningKey {
            kid,
            alg: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            pkcs8: Vec::new(),
            verify,
            jwk: None,
        })
    }

    /// A fresh EdDSA (Ed25519) or ES256/ES384 key.
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let failed = |what: &str| KeyError::Invalid {
            alg: alg_name(alg),
            why: format!("key generation failed: {what}"),
        };
        let der = match alg {
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| failed("ed25519"))?
                .as_ref()
                .to_vec(),
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| failed("p-256"))?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::ES384 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
                    .map_err(|_| failed("p-384"))?
                    .as_ref()
                    .to_vec()
            }
            _ => return Err(KeyError::Unsupported(alg_name(alg))),
        };
        Self::from_pkcs8(alg, &der)
    }

    /// A key from DER as stored: PKCS#8 for EdDSA and ECDSA, PKCS#1 `RSAPrivateKey` for RSA.
    /// The key id is the RFC 7638 thumbprint of the public key.
    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<Self, KeyError> {
        let invalid = |why: String| KeyError::Invalid {
            alg: alg_name(alg),
            why,
        };
        let (public, jwk_params) = match alg {
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| invalid(e.to_string()))?;
                let public = pair.public_key().as_ref().to_vec();
                let params =
                    json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(&public)});
                (DecodingKey::from_ed_der(&public), params)
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let (curve, signing) = if alg == Algorithm::ES256 {
                    ("P-256", &ECDSA_P256_SHA256_FIXED_SIGNING)
                } else {
                    ("P-384", &ECDSA_P384_SHA384_FIXED_SIGNING)
                };
                let pair =
                    EcdsaKeyPair::from_pkcs8(signing, der).map_err(|e| invalid(e.to_string()))?;
                let point = pair.public_key().as_ref().to_vec();
                // Uncompressed point: 0x04 || X || Y.
                let half = (point.len().saturating_sub(1)) / 2;
                let (x, y) = (&point[1..1 + half], &point[1 + half..]);
                let params = json!({
                    "kty": "EC", "crv": curve,
                    "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
                });
                (DecodingKey::from_ec_der(&point), params)
            }
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
                let encoding = EncodingKey::from_rsa_der(der);
                let jwk =
                    Jwk::from_encoding_key(&encoding, alg).map_err(|e| invalid(e.to_string()))?;
                let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
                    return Err(invalid("not an RSA key".into()));
                };
                let decoding = DecodingKey::from_rsa_components(&rsa.n, &rsa.e)
                    .map_err(|e| invalid(e.to_string()))?;
                (decoding, json!({"kty": "RSA", "n": rsa.n, "e": rsa.e}))
            }
            _ => return Err(KeyError::Unsupported(alg_name(alg))),
        };
        let kid = key_id(&jwk_params);
        let encoding = match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_der(der),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_der(der),
            _ => EncodingKey::from_rsa_der(der),
        };
        let mut jwk = jwk_params;
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg_name(alg));
        jwk["use"] = json!("sig");
        Ok(SigningKey {
            verify: VerifyKey {
                kid: Some(kid.clone()),
                alg,
                prepared: prepare(alg, &public),
                key: public,
            },
            kid,
            alg,
            encoding,
            pkcs8: der.to_vec(),
            jwk: Some(jwk),
        })
    }

    /// A private key from PEM (PKCS#8; PKCS#1 for RSA).
    pub fn from_private_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let invalid = |e: jsonwebtoken::errors::Error| KeyError::Invalid {
            alg: alg_name(alg),
            why: e.to_string(),
        };
        let key = match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem).map_err(invalid)?,
            Algorithm::ES256 | Algorithm::ES384 => {
                EncodingKey::from_ec_pem(pem).map_err(invalid)?
            }
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
                EncodingKey::from_rsa_pem(pem).map_err(invalid)?
            }
            _ => return Err(KeyError::Unsupported(alg_name(alg))),
        };
        Self::from_pkcs8(alg, key.as_bytes())
    }

    /// The key id (RFC 7638 thumbprint for asymmetric keys).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signing algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK (with `kid`, `alg`, `use`); `None` for HMAC keys.
    pub fn public_jwk(&self) -> Option<&Value> {
        self.jwk.as_ref()
    }

    /// The key that verifies what this one signs.
    pub fn verify_key(&self) -> &VerifyKey {
        &self.verify
    }

    /// PKCS#8 DER, for the store. Secret.
    pub(crate) fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// A fingerprint of the private key, for logs.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.encoding.as_bytes())
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of the required public members.
fn key_id(params: &Value) -> String {
    let members: &[&str] = match params["kty"].as_str() {
        Some("OKP") => &["crv", "kty", "x"],
        Some("EC") => &["crv", "kty", "x", "y"],
        _ => &["e", "kty", "n"],
    };
    // Members in lexicographic order, no whitespace: the canonical form of RFC 7638.
    let body: Vec<String> = members
        .iter()
        .map(|m| format!("\"{m}\":{}", params[*m]))
        .collect();
    crate::fingerprint::sha256_b64(format!("{{{}}}", body.join(",")).as_bytes())
}

/// A JWKS document from signing keys' public halves.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Value {
    let keys: Vec<Value> = keys
        .into_iter()
        .filter_map(|k| k.public_jwk().cloned())
        .collect();
    json!({ "keys": keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_thumbprint_ids_and_public_jwks() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::ES384] {
            let k = SigningKey::generate(alg).unwrap();
            let jwk = k.public_jwk().unwrap();
            assert_eq!(jwk["kid"], k.kid());
            assert_eq!(jwk["alg"], alg_name(alg));
            assert!(jwk.get("d").is_none(), "no private member in a public JWK");
            let again = SigningKey::from_pkcs8(alg, k.pkcs8_der()).unwrap();
            assert_eq!(again.kid(), k.kid());
            // The JWK round-trips into a verification key for the same algorithm.
            let parsed: Jwk = serde_json::from_value(jwk.clone()).unwrap();
            let v = VerifyKey::from_jwk(&parsed, None).unwrap();
            assert_eq!((v.alg(), v.kid()), (alg, Some(k.kid())));
        }
        assert!(SigningKey::generate(Algorithm::HS256).is_err());
    }

    #[test]
    fn prepared_keys_verify_real_signatures_and_nothing_else() {
        let msg = b"header.payload";
        let mut keys: Vec<(EncodingKey, VerifyKey)> = Vec::new();
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::ES384] {
            let k = SigningKey::generate(alg).unwrap();
            assert!(k.verify_key().prepared.is_some(), "{alg:?} is prepared");
            keys.push((k.encoding_key().clone(), k.verify_key().clone()));
        }
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let secret = [5u8; 64];
            let v = VerifyKey::hmac(None, alg, &secret).unwrap();
            assert!(v.prepared.is_some());
            keys.push((EncodingKey::from_secret(&secret), v));
        }
        for (enc, v) in &keys {
            let sig = jsonwebtoken::crypto::sign(msg, enc, v.alg()).unwrap();
            assert!(v.verify_signature(msg, &sig), "{:?}", v.alg());
            assert!(
                !v.verify_signature(b"header.payloaD", &sig),
                "{:?}",
                v.alg()
            );
            assert!(
                !v.verify_signature(msg, &format!("{sig}A")),
                "{:?}",
                v.alg()
            );
            assert!(!v.verify_signature(msg, "%%%"), "{:?}", v.alg());
        }
    }

    #[test]
    fn hmac_checks_agree_with_aws_lc_and_refuse_altered_tags() {
        use aws_lc_rs::hmac;
        let secret: Vec<u8> = (0u8..80).collect();
        let algs = [
            (Algorithm::HS256, hmac::HMAC_SHA256),
            (Algorithm::HS384, hmac::HMAC_SHA384),
            (Algorithm::HS512, hmac::HMAC_SHA512),
        ];
        // Every length across two blocks of SHA-512 (128 bytes each), so each padding case of
        // both block sizes is met; and a secret longer than SHA-256's block, which HMAC hashes.
        let message: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        for (alg, reference) in algs {
            let ours = HmacKey::new(alg, &secret).unwrap();
            let theirs = hmac::Key::new(reference, &secret);
            for len in 0..=message.len() {
                let m = &message[..len];
                let tag = hmac::sign(&theirs, m);
                let tag = tag.as_ref();
                assert!(ours.verify(m, tag), "{alg:?}, {len} bytes");
                assert!(!ours.verify(m, &tag[..tag.len() - 1]), "truncated, {alg:?}");
                assert!(!ours.verify(m, &[tag, &[0]].concat()), "extended, {alg:?}");
                let mut flipped = tag.to_vec();
                flipped[len % tag.len()] ^= 1 << (len % 8);
                assert!(!ours.verify(m, &flipped), "flipped, {alg:?}, {len} bytes");
                assert!(!ours.verify(m, &[]), "empty tag, {alg:?}");
            }
        }
        // A tag of one size is never taken by a key of another, even over the same secret.
        let hs256 = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &secret), b"m");
        let hs512 = HmacKey::new(Algorithm::HS512, &secret).unwrap();
        assert!(!hs512.verify(b"m", hs256.as_ref()));
        assert!(HmacKey::new(Algorithm::ES256, &secret).is_none());
    }

    #[test]
    fn short_hmac_secrets_are_refused() {
        assert_eq!(
            SigningKey::hs256("k", b"too short").unwrap_err(),
            KeyError::ShortSecret(9)
        );
        assert!(SigningKey::hs256("k", &[7u8; 32]).is_ok());
        assert!(
            SigningKey::hs256("k", &[7u8; 32])
                .unwrap()
                .public_jwk()
                .is_none()
        );
    }

    #[test]
    fn kid_lookup_is_exact() {
        let a = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let mut set = KeySet::new();
        set.insert(a.verify_key().clone());
        assert!(set.find(Some(a.kid()), Algorithm::EdDSA).is_ok());
        assert_eq!(
            set.find(Some("../../etc/passwd"), Algorithm::EdDSA)
                .unwrap_err(),
            KeyLookup::UnknownKid
        );
        assert_eq!(
            set.find(None, Algorithm::EdDSA).unwrap_err(),
            KeyLookup::MissingKid
        );
    }

    #[test]
    fn kid_lookup_is_exact_with_few_and_many_keys() {
        // Up to 8 keys are compared one by one, more are looked up by hash: same answers.
        let mut set = KeySet::new();
        for n in 0..12 {
            let kid = format!("k{n}");
            set.insert(VerifyKey::hmac(Some(kid.clone()), Algorithm::HS256, &[n; 32]).unwrap());
            for m in 0..=n {
                let found = set.find(Some(&format!("k{m}")), Algorithm::HS256).unwrap();
                assert_eq!(found.kid.as_deref(), Some(format!("k{m}").as_str()));
            }
            for unknown in ["k", "K0", "k0 ", "k00", "k12"] {
                assert_eq!(
                    set.find(Some(unknown), Algorithm::HS256).unwrap_err(),
                    KeyLookup::UnknownKid,
                    "{unknown} with {} keys",
                    n + 1
                );
            }
        }
    }
}
