//! JWT verification with a closed policy per issuer (DESIGN.md sections 3 and 10).
//!
//! The order matters: size, shape, header (refusing `none`, `crit` and key-carrying headers),
//! issuer (from the unverified payload, only to pick the configuration), algorithm allow-list,
//! key by exact `kid`, signature, then the claims. Nothing from the token is trusted before the
//! signature holds except to choose among configured keys.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use mcp_guard_core::{AuthMethod, Principal};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::keys::{KeyLookup, KeySet, alg_name, parse_alg};

/// The largest token accepted by default, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was refused. The full reason goes to the audit log; clients see `invalid_token`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Larger than the configured maximum.
    #[error("token larger than {0} bytes")]
    Oversized(usize),
    /// Not three base64url parts separated by dots.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// A part is not valid unpadded base64url.
    #[error("bad base64url in the {0}")]
    BadBase64(&'static str),
    /// A part is not one JSON object (duplicate keys included).
    #[error("bad JSON in the {0}")]
    BadJson(&'static str),
    /// `alg` is `none` in any spelling.
    #[error("alg `none` is never accepted")]
    AlgNone,
    /// `alg` is not one this issuer allows (or not known at all).
    #[error("algorithm `{0}` is not allowed for this issuer")]
    AlgNotAllowed(String),
    /// A `crit` header: extensions we do not understand must be refused (RFC 7515 section 4.1.11).
    #[error("the `crit` header is not supported")]
    CritHeader,
    /// A header that carries or points to a key (`jku`, `x5u`, `jwk`, `x5c`): never trusted.
    #[error("the `{0}` header is refused: keys come only from configuration")]
    KeyInHeader(&'static str),
    /// `iss` missing or not a configured issuer.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// `kid` names no configured key.
    #[error("unknown key id")]
    UnknownKid,
    /// No `kid`, and the issuer has several keys (or none without an id).
    #[error("the token has no key id and the issuer needs one")]
    MissingKid,
    /// The key named is for another algorithm.
    #[error("the key is for {key}, the token says {token}")]
    KeyAlgMismatch {
        /// The key's algorithm.
        key: &'static str,
        /// The token's `alg`.
        token: &'static str,
    },
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is missing or not a number.
    #[error("missing `exp`")]
    MissingExp,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway), or not a number.
    #[error("token not valid yet")]
    NotYetValid,
    /// `aud` is missing.
    #[error("missing `aud`")]
    MissingAudience,
    /// `aud` names none of the configured audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// `typ` differs from what the issuer requires (`at+jwt` for our own tokens).
    #[error("wrong token type header")]
    WrongTyp,
    /// A refresh token presented where an access token is needed.
    #[error("a refresh token cannot be used as an access token")]
    RefreshAsAccess,
    /// No subject and no client id to name the principal.
    #[error("the token names no subject or client")]
    NoSubject,
    /// The `jti` was revoked.
    #[error("token revoked")]
    Revoked,
}

impl TokenError {
    /// A short, bounded name for audit lines and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenError::Oversized(_) => "oversized",
            TokenError::Malformed(_) => "malformed",
            TokenError::BadBase64(_) => "bad_base64",
            TokenError::BadJson(_) => "bad_json",
            TokenError::AlgNone => "alg_none",
            TokenError::AlgNotAllowed(_) => "alg_not_allowed",
            TokenError::CritHeader => "crit_header",
            TokenError::KeyInHeader(_) => "key_in_header",
            TokenError::UnknownIssuer => "unknown_issuer",
            TokenError::UnknownKid => "unknown_kid",
            TokenError::MissingKid => "missing_kid",
            TokenError::KeyAlgMismatch { .. } => "key_alg_mismatch",
            TokenError::BadSignature => "bad_signature",
            TokenError::MissingExp => "missing_exp",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::MissingAudience => "missing_audience",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::WrongTyp => "wrong_typ",
            TokenError::RefreshAsAccess => "refresh_as_access",
            TokenError::NoSubject => "no_subject",
            TokenError::Revoked => "revoked",
        }
    }
}

/// What one trusted issuer may sign, and how its claims map to a principal.
#[derive(Clone, Debug)]
pub struct IssuerPolicy {
    /// `iss`, compared exactly.
    pub issuer: String,
    /// Whether this is the gateway itself (its principals have issuer `None`).
    pub own: bool,
    /// `aud` must contain one of these.
    pub audiences: Vec<String>,
    /// The algorithms accepted; never `none`.
    pub algorithms: Vec<Algorithm>,
    /// Verification keys.
    pub keys: KeySet,
    /// The `typ` header required (compared case-insensitively, `application/` prefix allowed).
    pub required_typ: Option<String>,
    /// Where roles live in the claims (`roles`, or a dotted path like `realm_access.roles`).
    pub roles_claim: String,
}

/// Verifies bearer tokens against configured issuers.
#[derive(Clone, Debug)]
pub struct Verifier {
    issuers: Vec<IssuerPolicy>,
    max_bytes: usize,
    leeway: Duration,
}

/// A token that verified, with what the caller needs.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedToken {
    /// The principal its claims describe.
    pub principal: Principal,
    /// `jti`, for revocation checks.
    pub jti: Option<String>,
    /// `exp`, in Unix seconds.
    pub exp: i64,
    /// All claims.
    pub claims: Map<String, Value>,
}

impl Verifier {
    /// A verifier for these issuers, with the default size limit and a 30-second leeway.
    pub fn new(issuers: Vec<IssuerPolicy>) -> Self {
        Verifier {
            issuers,
            max_bytes: DEFAULT_MAX_TOKEN_BYTES,
            leeway: Duration::from_secs(30),
        }
    }

    /// Sets the largest token accepted.
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    /// Sets the clock leeway for `exp` and `nbf`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Verifies an access token at `now` (Unix seconds). Revocation is checked by the caller,
    /// which owns the store.
    pub fn verify(&self, token: &str, now: i64) -> Result<VerifiedToken, TokenError> {
        self.check(token, now, Use::Access)
    }

    /// Verifies one of this gateway's refresh tokens (`typ: refresh+jwt`, `type: refresh`).
    pub fn verify_refresh(&self, token: &str, now: i64) -> Result<VerifiedToken, TokenError> {
        self.check(token, now, Use::Refresh)
    }

    /// Verifies an access or a refresh token of this gateway, as revocation needs: the token and,
    /// for a refresh token, the family it belongs to.
    pub fn verify_any(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(VerifiedToken, Option<String>), TokenError> {
        match self.verify(token, now) {
            Ok(v) => Ok((v, None)),
            Err(TokenError::RefreshAsAccess) => {
                let v = self.verify_refresh(token, now)?;
                let family = v
                    .claims
                    .get("fam")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Ok((v, family))
            }
            Err(e) => Err(e),
        }
    }

    fn check(&self, token: &str, now: i64, usage: Use) -> Result<VerifiedToken, TokenError> {
        if token.len() > self.max_bytes {
            return Err(TokenError::Oversized(self.max_bytes));
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected three dot-separated parts"));
        };
        if h64.is_empty() || p64.is_empty() {
            return Err(TokenError::Malformed("an empty part"));
        }
        let header_bytes = URL_SAFE_NO_PAD
            .decode(h64)
            .map_err(|_| TokenError::BadBase64("header"))?;
        // A typed parse: a repeated `alg`, `kid` or `typ` is an error, other members are ignored.
        let header: JoseHeader<'_> =
            serde_json::from_slice(&header_bytes).map_err(|_| TokenError::BadJson("header"))?;
        let alg_text: &str = &header.alg;
        // Checked before the empty signature, so an unsigned token is reported as what it is.
        if alg_text.eq_ignore_ascii_case("none") {
            return Err(TokenError::AlgNone);
        }
        if s64.is_empty() {
            return Err(TokenError::Malformed("an empty signature"));
        }
        if header.crit {
            return Err(TokenError::CritHeader);
        }
        for (present, name) in [
            (header.jku, "jku"),
            (header.x5u, "x5u"),
            (header.jwk, "jwk"),
            (header.x5c, "x5c"),
        ] {
            if present {
                return Err(TokenError::KeyInHeader(name));
            }
        }
        let claims = decode_object(p64, "payload")?;
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(TokenError::UnknownIssuer)?;
        let policy = self
            .issuers
            .iter()
            .find(|p| p.issuer == iss)
            .ok_or(TokenError::UnknownIssuer)?;
        let alg = parse_alg(alg_text)
            .filter(|a| policy.algorithms.contains(a))
            .ok_or_else(|| TokenError::AlgNotAllowed(alg_text.chars().take(16).collect()))?;
        let kid = header.kid.as_deref();
        let key = policy.keys.find(kid, alg).map_err(|e| match e {
            KeyLookup::UnknownKid => TokenError::UnknownKid,
            KeyLookup::MissingKid => TokenError::MissingKid,
            KeyLookup::NoKeyForAlg => TokenError::MissingKid,
        })?;
        if key.alg() != alg {
            return Err(TokenError::KeyAlgMismatch {
                key: alg_name(key.alg()),
                token: alg_name(alg),
            });
        }
        let signed = &token[..h64.len() + 1 + p64.len()];
        if !key.verify_signature(signed.as_bytes(), s64) {
            return Err(TokenError::BadSignature);
        }

        // The signature holds: now the claims.
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(0);
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(TokenError::MissingExp)?;
        if now > exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        match claims.get("nbf") {
            None => {}
            Some(v) => match v.as_i64() {
                Some(nbf) if nbf <= now.saturating_add(leeway) => {}
                _ => return Err(TokenError::NotYetValid),
            },
        }
        match claims.get("aud") {
            None => return Err(TokenError::MissingAudience),
            Some(Value::String(a)) if policy.audiences.iter().any(|w| w == a) => {}
            Some(Value::Array(list))
                if list.iter().any(|a| {
                    a.as_str()
                        .is_some_and(|a| policy.audiences.iter().any(|w| w == a))
                }) => {}
            Some(_) => return Err(TokenError::WrongAudience),
        }
        let typ = header.typ.as_deref().unwrap_or_default();
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        let is_refresh = claims.get("type").and_then(Value::as_str) == Some("refresh")
            || typ.eq_ignore_ascii_case("refresh+jwt");
        match usage {
            Use::Access if is_refresh => return Err(TokenError::RefreshAsAccess),
            Use::Access => {
                if let Some(want) = &policy.required_typ
                    && !typ.eq_ignore_ascii_case(want)
                {
                    return Err(TokenError::WrongTyp);
                }
            }
            Use::Refresh => {
                if !policy.own || !is_refresh || !typ.eq_ignore_ascii_case("refresh+jwt") {
                    return Err(TokenError::WrongTyp);
                }
            }
        }
        let principal = principal_from_claims(policy, &claims)?;
        Ok(VerifiedToken {
            principal,
            jti: claims.get("jti").and_then(Value::as_str).map(str::to_owned),
            exp,
            claims,
        })
    }
}

/// The JOSE header members mcp-guard reads or refuses.
#[derive(serde::Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "present")]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
}

/// `true` whenever the member is there, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Access,
    Refresh,
}

fn decode_object(part: &str, which: &'static str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::BadBase64(which))?;
    match mcp_guard_core::parse_strict(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(TokenError::BadJson(which)),
    }
}

const REGISTERED: [&str; 13] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "scp",
    "permissions",
    "type",
    "fam",
];

/// Maps verified claims to a principal (DESIGN.md section 3).
fn principal_from_claims(
    policy: &IssuerPolicy,
    claims: &Map<String, Value>,
) -> Result<Principal, TokenError> {
    let client_id = claims
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let subject = match (claims.get("sub").and_then(Value::as_str), &client_id) {
        (Some(sub), _) if !sub.is_empty() => sub.to_owned(),
        (_, Some(client)) if !client.is_empty() => Principal::client_subject(client),
        _ => return Err(TokenError::NoSubject),
    };
    let method = if policy.own {
        AuthMethod::OwnToken
    } else {
        AuthMethod::ExternalJwt
    };
    let mut principal = Principal::new(
        (!policy.own).then(|| policy.issuer.clone()),
        subject,
        method,
    );
    principal.client_id = client_id;
    principal.permissions = strings(claims.get("permissions"));
    principal.roles = strings(lookup_path(claims, &policy.roles_claim));
    principal.scopes = match claims.get("scope").or_else(|| claims.get("scp")) {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        other => strings(other),
    };
    for (k, v) in claims {
        if !REGISTERED.contains(&k.as_str()) {
            principal.attributes.insert(k.clone(), v.clone());
        }
    }
    Ok(principal)
}

fn lookup_path<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Takes the token from `Authorization` header values: exactly one header, scheme `Bearer`
/// (any case), one token with no spaces.
pub fn bearer_token<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<&'a str>, TokenError> {
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(TokenError::Malformed("more than one Authorization header"));
    }
    let text = std::str::from_utf8(first)
        .map_err(|_| TokenError::Malformed("non-UTF-8 Authorization header"))?;
    let (scheme, token) = text.split_once(' ').ok_or(TokenError::Malformed(
        "Authorization is not `Bearer <token>`",
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme is not a bearer credential at all.
        return Ok(None);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(TokenError::Malformed(
            "Authorization is not `Bearer <token>`",
        ));
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &str) -> Result<Option<&str>, TokenError> {
        bearer_token([v.as_bytes()].into_iter())
    }

    #[test]
    fn bearer_extraction() {
        assert_eq!(one("Bearer abc.def.ghi"), Ok(Some("abc.def.ghi")));
        assert_eq!(one("bearer abc"), Ok(Some("abc")));
        assert_eq!(one("BEARER abc"), Ok(Some("abc")));
        // Another scheme is no bearer credential: the caller answers with a challenge.
        assert_eq!(one("Basic dXNlcjpwYXNz"), Ok(None));
        assert_eq!(bearer_token(std::iter::empty()), Ok(None));
        for bad in ["Bearer", "Bearer ", "Bearer a b", "Bearerabc"] {
            assert!(matches!(one(bad), Err(TokenError::Malformed(_))), "{bad:?}");
        }
        let two = [b"Bearer a".as_slice(), b"Bearer b".as_slice()];
        assert!(matches!(
            bearer_token(two.into_iter()),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            bearer_token([b"Bearer \xff".as_slice()].into_iter()),
            Err(TokenError::Malformed(_))
        ));
    }
}
