//! JWT verification with a closed policy per issuer (DESIGN.md sections 3 and 10).
//!
//! The order matters: size, shape, header (refusing `none`, `crit` and key-carrying headers),
//! issuer (from the unverified payload, only to pick the configuration), algorithm allow-list,
//! key by exact `kid`, signature, then the claims. Nothing from the token is trusted before the
//! signature holds except to choose among configured keys.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use mcp_guard_core::{Attributes, AuthMethod, Principal};
use serde::Deserialize;
use serde_json::Value;

use super::b64;
use super::claims::{
    Claims, Item, Payload, Text, parse_payload, payload_text, plain_strings, registered,
    unregistered_claims,
};
use super::keys::{KeyLookup, KeySet, VerifyKey, alg_name, parse_alg};
use super::scan::Scan;

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

impl IssuerPolicy {
    /// An external issuer with one verification key: tokens must carry `iss` equal to `issuer`,
    /// name `audience` in `aud`, and be signed with the key's algorithm (the configured key
    /// fixes it, never the token's header); roles are read from the `roles` claim.
    pub fn external(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        key: VerifyKey,
    ) -> Self {
        let algorithms = vec![key.alg()];
        let mut keys = KeySet::new();
        keys.insert(key);
        IssuerPolicy {
            issuer: issuer.into(),
            own: false,
            audiences: vec![audience.into()],
            algorithms,
            keys,
            required_typ: None,
            roles_claim: "roles".into(),
        }
    }
}

/// Verifies bearer tokens against configured issuers.
#[derive(Clone, Debug)]
pub struct Verifier {
    issuers: Vec<IssuerPolicy>,
    max_bytes: usize,
    leeway: Duration,
    headers: Arc<HeaderMemo>,
}

/// How many distinct headers a verifier remembers. A header depends only on the signer and the
/// key (`alg`, `kid`, `typ`), so a gateway sees a handful: its own access and refresh headers
/// per key, and one per key of each external issuer.
const HEADER_MEMO_SLOTS: usize = 8;

/// The longest header text remembered, in base64url characters; ours are about 60.
const HEADER_MEMO_MAX_TEXT: usize = 256;

/// Headers already read, by their exact base64url text, so that the next token with the same
/// header skips decoding and parsing it (1,100 of the 8,050 instructions an HS256 verification
/// takes besides the HMAC, under callgrind; docs/PERFORMANCE.md, token run 19). What is
/// remembered is what [`plain_header`] read from those bytes, so the checks that follow see the
/// same `alg`, `kid` and `typ` either way. Only the header of a token whose signature held is
/// remembered, so tokens nobody signed cannot fill the slots; once they are full, further headers
/// are read every time, as before.
#[derive(Debug, Default)]
struct HeaderMemo {
    slots: [OnceLock<KnownHeader>; HEADER_MEMO_SLOTS],
}

/// One remembered header: its text and the three members [`plain_header`] read from it.
#[derive(Debug)]
struct KnownHeader {
    text: Box<str>,
    alg: Box<str>,
    kid: Option<Box<str>>,
    typ: Option<Box<str>>,
}

impl HeaderMemo {
    /// The header read earlier from exactly this text, if any.
    #[inline]
    fn find(&self, text: &str) -> Option<JoseHeader<'_>> {
        let known = self
            .slots
            .iter()
            .map_while(OnceLock::get)
            .find(|k| *k.text == *text)?;
        Some(JoseHeader {
            alg: Cow::Borrowed(&known.alg),
            kid: known.kid.as_deref().map(|t| Text(Cow::Borrowed(t))),
            typ: known.typ.as_deref().map(|t| Text(Cow::Borrowed(t))),
            crit: false,
            jku: false,
            x5u: false,
            jwk: false,
            x5c: false,
        })
    }

    /// Remembers what [`plain_header`] read from `text`, in the first free slot.
    fn remember(&self, text: &str, header: &JoseHeader<'_>) {
        if text.len() > HEADER_MEMO_MAX_TEXT {
            return;
        }
        let Some(free) = self.slots.iter().find(|s| s.get().is_none()) else {
            return;
        };
        // Another thread may fill the slot first; this header is then remembered next time.
        let _ = free.set(KnownHeader {
            text: text.into(),
            alg: (*header.alg).into(),
            kid: header.kid.as_deref().map(Into::into),
            typ: header.typ.as_deref().map(Into::into),
        });
    }

    /// How many headers are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.iter().map_while(OnceLock::get).count()
    }
}

/// A token that verified, with what the caller needs.
#[derive(Debug, PartialEq)]
pub struct VerifiedToken {
    /// The principal its claims describe.
    pub principal: Principal,
    jti: Option<ClaimText>,
    /// `exp`, in Unix seconds.
    pub exp: i64,
    family: Option<ClaimText>,
    /// All claims, parsed from the payload only when first read.
    pub claims: Claims,
}

// By hand: `Claims` is not `Clone` on purpose (see there).
impl Clone for VerifiedToken {
    fn clone(&self) -> Self {
        VerifiedToken {
            principal: self.principal.clone(),
            jti: self.jti.clone(),
            exp: self.exp,
            family: self.family.clone(),
            claims: self.claims.duplicate(),
        }
    }
}

impl VerifiedToken {
    /// `jti`, for revocation checks.
    pub fn jti(&self) -> Option<&str> {
        self.jti.as_ref().and_then(|t| t.read(self.claims.json()))
    }

    /// `fam`: for a refresh token, the family it belongs to.
    pub fn family(&self) -> Option<&str> {
        self.family
            .as_ref()
            .and_then(|t| t.read(self.claims.json()))
    }
}

/// A text claim a verified token keeps: where it lies in the payload text the token keeps, so
/// that keeping it costs no copy, or its own copy when it was escaped there.
#[derive(Clone, Debug, PartialEq)]
enum ClaimText {
    In(std::ops::Range<usize>),
    Unescaped(Box<str>),
}

impl ClaimText {
    /// `text`, a claim parsed from `payload`: borrowed from it unless it was unescaped.
    fn of(text: Cow<'_, str>, payload: &str) -> Self {
        match text {
            Cow::Borrowed(t) => {
                // The offset of a slice of `payload`, checked to be exactly that slice.
                let start = (t.as_ptr() as usize).wrapping_sub(payload.as_ptr() as usize);
                let range = start..start.wrapping_add(t.len());
                match payload.get(range.clone()) {
                    Some(found) if std::ptr::eq(found, t) => ClaimText::In(range),
                    _ => ClaimText::Unescaped(t.into()),
                }
            }
            Cow::Owned(t) => ClaimText::Unescaped(t.into_boxed_str()),
        }
    }

    fn read<'a>(&'a self, payload: &'a str) -> Option<&'a str> {
        match self {
            ClaimText::In(range) => payload.get(range.clone()),
            ClaimText::Unescaped(t) => Some(t),
        }
    }
}

impl Verifier {
    /// A verifier for these issuers, with the default size limit and a 30-second leeway.
    pub fn new(issuers: Vec<IssuerPolicy>) -> Self {
        Verifier {
            issuers,
            max_bytes: DEFAULT_MAX_TOKEN_BYTES,
            leeway: Duration::from_secs(30),
            headers: Arc::default(),
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
                let family = v.family().map(str::to_owned);
                Ok((v, family))
            }
            Err(e) => Err(e),
        }
    }

    fn check(&self, token: &str, now: i64, usage: Use) -> Result<VerifiedToken, TokenError> {
        if token.len() > self.max_bytes {
            return Err(TokenError::Oversized(self.max_bytes));
        }
        // Split at the first and the last dot, each found from its own end, rather than searching
        // the whole token for every dot up front. A dot left in the middle part is not base64url,
        // so such a token never verifies; and on every error path the shape is checked first,
        // so it is refused as malformed, exactly as when it was checked before anything else.
        let shape = |e: TokenError| {
            if token.bytes().filter(|&b| b == b'.').count() == 2 {
                e
            } else {
                TokenError::Malformed("expected three dot-separated parts")
            }
        };
        self.check_parts(token, now, usage).map_err(shape)
    }

    fn check_parts(&self, token: &str, now: i64, usage: Use) -> Result<VerifiedToken, TokenError> {
        let (Some(first), Some(last)) = (first_dot(token.as_bytes()), last_dot(token.as_bytes()))
        else {
            return Err(TokenError::Malformed("expected three dot-separated parts"));
        };
        let (h64, p64, s64) = match (token.get(..first), token.get(first + 1..last)) {
            (Some(h), Some(p)) if first < last => (h, p, token.get(last + 1..).unwrap_or_default()),
            _ => return Err(TokenError::Malformed("expected three dot-separated parts")),
        };
        if h64.is_empty() || p64.is_empty() {
            return Err(TokenError::Malformed("an empty part"));
        }
        // Zeroed only when the header is decoded, not when it is remembered.
        let mut header_buf: [u8; HEADER_STACK_BYTES];
        let mut header_spill = Vec::new();
        // Whether this header was read by `plain_header` just now, and so may be remembered.
        let mut read_plain = false;
        let header = match self.headers.find(h64) {
            Some(h) => h,
            None => {
                header_buf = [0u8; HEADER_STACK_BYTES];
                let header_bytes = b64::decode(h64, &mut header_buf, &mut header_spill)
                    .ok_or(TokenError::BadBase64("header"))?;
                match plain_header(header_bytes) {
                    Some(h) => {
                        read_plain = true;
                        h
                    }
                    // A typed parse: a repeated `alg`, `kid` or `typ` is an error, other members
                    // are ignored (after the checks on those that must not be there).
                    None => serde_json::from_slice::<JoseHeader<'_>>(header_bytes)
                        .map_err(|_| TokenError::BadJson("header"))?,
                }
            }
        };
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
        // The payload is kept whole (as the claims read on demand), and the claims checked here are
        // parsed from it once, borrowing, with `parse_strict`'s rules (see `claims`).
        // Decoded in place on the stack (ours are about 311 characters), then copied once into
        // the text the verified token keeps.
        let mut payload_room = [0u8; b64::PADDED_MAX];
        let mut payload_spill = Vec::new();
        let payload_bytes = b64::decode_padded(p64, &mut payload_room, &mut payload_spill)
            .ok_or(TokenError::BadBase64("payload"))?;
        let claims =
            Claims::new(payload_text(payload_bytes).map_err(|_| TokenError::BadJson("payload"))?);
        let mut payload = Payload::default();
        parse_payload(claims.json(), &mut payload).map_err(|_| TokenError::BadJson("payload"))?;
        let iss = payload.iss.as_deref().ok_or(TokenError::UnknownIssuer)?;
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
        if read_plain {
            self.headers.remember(h64, &header);
        }

        // The signature holds: now the claims.
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(0);
        let exp = payload.exp.flatten().ok_or(TokenError::MissingExp)?;
        if now > exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        match payload.nbf {
            None => {}
            Some(Some(nbf)) if nbf <= now.saturating_add(leeway) => {}
            // Not yet, or not an integer.
            Some(_) => return Err(TokenError::NotYetValid),
        }
        let wanted = |a: &str| policy.audiences.iter().any(|w| w == a);
        match &payload.aud {
            None => return Err(TokenError::MissingAudience),
            Some(Item::Str(a)) if wanted(a) => {}
            Some(Item::List(list)) if list.iter().any(|a| a.as_str().is_some_and(wanted)) => {}
            Some(_) => return Err(TokenError::WrongAudience),
        }
        let typ = header.typ.as_deref().unwrap_or_default();
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        let is_refresh =
            payload.kind.as_deref() == Some("refresh") || typ.eq_ignore_ascii_case("refresh+jwt");
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
        let principal = principal_from_claims(policy, &mut payload, &claims)?;
        let jti = payload.jti.take().map(|t| ClaimText::of(t, claims.json()));
        let family = payload.fam.take().map(|t| ClaimText::of(t, claims.json()));
        Ok(VerifiedToken {
            principal,
            jti,
            exp,
            family,
            claims,
        })
    }
}

/// The JOSE header members mcp-guard reads or refuses.
#[derive(serde::Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Text<'a>>,
    #[serde(borrow, default)]
    typ: Option<Text<'a>>,
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

/// The usual header (`alg`, `kid`, `typ`: plain strings, each at most once, nothing else) read
/// without serde; `None` for any other header, which the serde parse then reads or refuses.
fn plain_header(bytes: &[u8]) -> Option<JoseHeader<'_>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut s = Scan::new(text);
    s.ws();
    let (mut alg, mut kid, mut typ) = (None, None, None);
    s.object(|s, key| {
        let slot = match key {
            "alg" => &mut alg,
            "kid" => &mut kid,
            "typ" => &mut typ,
            // `crit`, `jku` and the rest are for the serde path, which refuses or ignores them.
            _ => return None,
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(s.string()?);
        Some(())
    })?;
    if !s.at_end() {
        return None;
    }
    Some(JoseHeader {
        alg: Cow::Borrowed(alg?),
        kid: kid.map(|t| Text(Cow::Borrowed(t))),
        typ: typ.map(|t| Text(Cow::Borrowed(t))),
        crit: false,
        jku: false,
        x5u: false,
        jwk: false,
        x5c: false,
    })
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

/// Room for a JOSE header on the stack: ours are under 100 bytes decoded; a larger one still
/// decodes, into the heap. Small, as it is zeroed on every call.
const HEADER_STACK_BYTES: usize = 128;

/// One bit per byte of `word`, the byte's high bit, set exactly where the byte is `.`.
#[inline]
fn dots(word: [u8; 8]) -> u64 {
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    let x = u64::from_le_bytes(word) ^ u64::from_ne_bytes([b'.'; 8]);
    // A byte of `x` is zero when adding 0x7f to its low seven bits carries nothing into its high
    // bit and that bit is clear. No carry crosses into the next byte, so, unlike the quicker test
    // in `scan`, no other byte is ever marked: `last_dot` relies on the highest mark being real.
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// The index of the first `.`, eight bytes at a time. The header before it is a few dozen bytes;
/// finding the dots was about 3% of an HS256 verification byte by byte (perf).
#[inline]
fn first_dot(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut start = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let hits = dots(word);
        if hits != 0 {
            // Little-endian: the lowest set bit is the first byte.
            return Some(start + (hits.trailing_zeros() / 8) as usize);
        }
        start += 8;
    }
    let rest = chunks.remainder().iter().position(|&b| b == b'.');
    rest.map(|i| start + i)
}

/// The index of the last `.`, eight bytes at a time from the end (the signature after it is a
/// few dozen bytes for HMAC, ECDSA and EdDSA).
#[inline]
fn last_dot(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.rchunks_exact(8);
    let mut start = bytes.len();
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let hits = dots(word);
        start -= 8;
        if hits != 0 {
            // The highest set bit is in the last byte that matched.
            return Some(start + (63 - hits.leading_zeros()) as usize / 8);
        }
    }
    // What is left is the front of `bytes`, shorter than eight.
    chunks.remainder().iter().rposition(|&b| b == b'.')
}

/// Maps verified claims to a principal (DESIGN.md section 3), moving what it keeps (attributes,
/// permissions) out of `payload` rather than copying it.
fn principal_from_claims(
    policy: &IssuerPolicy,
    payload: &mut Payload<'_>,
    claims: &Claims,
) -> Result<Principal, TokenError> {
    let client_id = payload.client_id.take().map(Cow::into_owned);
    let subject = match (payload.sub.as_deref(), &client_id) {
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
    principal.permissions = std::mem::take(&mut payload.permissions);
    principal.roles = roles(&policy.roles_claim, payload, claims);
    // A `scope` of any type hides `scp`, as before.
    principal.scopes = match payload.scope.as_ref().or(payload.scp.as_ref()) {
        Some(Item::Str(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(other) => other.strings(),
        None => Vec::new(),
    };
    principal.attributes = match payload.extra.take() {
        Some(built) => built.into(),
        None if payload.members.is_empty() => Attributes::default(),
        // Built from the payload when first read: most requests never read them.
        None => Attributes::deferred(claims.shared_json().clone(), unregistered_claims),
    };
    Ok(principal)
}

/// The roles at a dotted claim path (`roles`, `realm_access.roles`): the strings of the array
/// found there, or none.
fn roles(path: &str, payload: &Payload<'_>, claims: &Claims) -> Vec<String> {
    // A byte search: `split_once` searches a handful of bytes through the general `memchr` path.
    let (first, rest) = match path.bytes().position(|b| b == b'.') {
        Some(dot) => (path.get(..dot).unwrap_or_default(), path.get(dot + 1..)),
        None => (path, None),
    };
    // Roles live under an unregistered claim in practice: kept as text by the scanner, built by
    // the serde path. A path through a registered claim (kept only in typed form) reads the full
    // claim set instead.
    let parsed;
    let mut v = if registered(first).is_some() {
        claims.get(first)
    } else if let Some(extra) = &payload.extra {
        extra.get(first)
    } else {
        let text = payload.members.get(first);
        if rest.is_none()
            && let Some(roles) = text.and_then(roles_in)
        {
            return roles;
        }
        // The text was checked by the payload parse, so it parses; were it not, no roles.
        parsed = text.and_then(|t| serde_json::from_str::<Value>(t).ok());
        parsed.as_ref()
    };
    for p in rest.into_iter().flat_map(|rest| rest.split('.')) {
        v = v.and_then(|v| v.get(p));
    }
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The roles in a claim's JSON text: the strings of an array of scalars, nothing for another kind
/// of value. `None` outside the scanner's subset (an escaped string, a nested array or object),
/// for the full parse to read.
fn roles_in(text: &str) -> Option<Vec<String>> {
    let mut s = Scan::new(text);
    if s.peek() != Some(b'[') {
        // The claim's text was checked as one value: any other kind holds no roles.
        return Some(Vec::new());
    }
    plain_strings(&mut s)
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
    use crate::token::SigningKey;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    const NOW: i64 = 1_795_665_360;
    const ISS: &str = "https://idp.example";
    const AUD: &str = "https://gw.example/mcp";

    fn key() -> SigningKey {
        SigningKey::hs256("k1", &[5u8; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn verifier(roles_claim: &str) -> Verifier {
        let mut keys = KeySet::new();
        keys.insert(key().verify_key().clone());
        Verifier::new(vec![IssuerPolicy {
            issuer: ISS.into(),
            own: false,
            audiences: vec![AUD.into()],
            algorithms: vec![Algorithm::HS256],
            keys,
            required_typ: None,
            roles_claim: roles_claim.into(),
        }])
    }

    /// A token over exactly this payload text (which a `Value` could not hold: repeated keys).
    fn token(payload: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k1"}"#);
        let msg = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
        let sig =
            jsonwebtoken::crypto::sign(msg.as_bytes(), key().encoding_key(), Algorithm::HS256)
                .unwrap_or_else(|e| panic!("{e}"));
        format!("{msg}.{sig}")
    }

    /// A payload with the required claims and then `more` (JSON members, comma-led).
    fn payload(more: &str) -> String {
        format!(
            r#"{{"iss":"{ISS}","sub":"alice","aud":"{AUD}","exp":{},"jti":"j-1"{more}}}"#,
            NOW + 60
        )
    }

    fn verify(roles_claim: &str, more: &str) -> Result<VerifiedToken, TokenError> {
        verifier(roles_claim).verify(&token(&payload(more)), NOW)
    }

    /// A token over `payload` with exactly this header text, signed with `key()`.
    fn token_with_header(header: &str, payload: &str) -> String {
        let msg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig =
            jsonwebtoken::crypto::sign(msg.as_bytes(), key().encoding_key(), Algorithm::HS256)
                .unwrap_or_else(|e| panic!("{e}"));
        format!("{msg}.{sig}")
    }

    #[test]
    fn a_remembered_header_gives_the_same_verdicts() {
        let v = verifier("roles");
        let good = token(&payload(""));
        assert_eq!(v.headers.len(), 0);
        let first = v.verify(&good, NOW).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.headers.len(), 1, "remembered after its signature held");
        let again = v.verify(&good, NOW).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, again);
        // The same header text over another payload and a broken signature: still refused.
        let other = token(&format!(
            r#"{{"iss":"{ISS}","sub":"mallory","aud":"{AUD}","exp":{}}}"#,
            NOW + 60
        ));
        let (msg, _) = other.rsplit_once('.').unwrap_or_default();
        let (_, sig) = good.rsplit_once('.').unwrap_or_default();
        assert_eq!(
            v.verify(&format!("{msg}.{sig}"), NOW).unwrap_err(),
            TokenError::BadSignature
        );
        // The claims are checked as before with a remembered header.
        let expired = token(&format!(
            r#"{{"iss":"{ISS}","sub":"alice","aud":"{AUD}","exp":{}}}"#,
            NOW - 3600
        ));
        assert_eq!(v.verify(&expired, NOW).unwrap_err(), TokenError::Expired);
        assert_eq!(v.headers.len(), 1);
    }

    #[test]
    fn only_signed_plain_headers_are_remembered_and_only_a_few() {
        let v = verifier("roles");
        // A bad signature: not remembered, and refused again on the next try.
        let good = token(&payload(""));
        let forged = format!("{}AAAA", good.trim_end_matches(|c| c != '.'));
        for _ in 0..2 {
            assert_eq!(
                v.verify(&forged, NOW).unwrap_err(),
                TokenError::BadSignature
            );
        }
        assert_eq!(v.headers.len(), 0);
        // A header the serde path reads (a member besides alg, kid and typ) is never remembered.
        let extra = token_with_header(r#"{"alg":"HS256","kid":"k1","cty":"x"}"#, &payload(""));
        v.verify(&extra, NOW).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.headers.len(), 0);
        // Distinct signed headers fill the slots, then are read every time, with the same result.
        for i in 0..HEADER_MEMO_SLOTS + 3 {
            let header = format!(r#"{{"alg":"HS256","kid":"k1","typ":"t{i}"}}"#);
            let t = token_with_header(&header, &payload(""));
            for _ in 0..2 {
                v.verify(&t, NOW).unwrap_or_else(|e| panic!("{i}: {e}"));
            }
        }
        assert_eq!(v.headers.len(), HEADER_MEMO_SLOTS);
    }

    #[test]
    fn a_remembered_header_is_checked_like_a_new_one() {
        // Remembered from a refresh token, its header still makes the next token one.
        let mut v = verifier("roles");
        v.issuers[0].own = true;
        v.issuers[0].required_typ = Some("at+jwt".into());
        let refresh_header = r#"{"alg":"HS256","kid":"k1","typ":"refresh+jwt"}"#;
        let refresh = token_with_header(refresh_header, &payload(r#","type":"refresh""#));
        v.verify_refresh(&refresh, NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.headers.len(), 1);
        for _ in 0..2 {
            assert_eq!(
                v.verify(&refresh, NOW).unwrap_err(),
                TokenError::RefreshAsAccess
            );
            // The same remembered header over an access payload: the wrong `typ` for access.
            let access = token_with_header(refresh_header, &payload(""));
            assert_eq!(
                v.verify(&access, NOW).unwrap_err(),
                TokenError::RefreshAsAccess
            );
        }
        let at = token_with_header(r#"{"alg":"HS256","kid":"k1","typ":"at+jwt"}"#, &payload(""));
        for _ in 0..2 {
            v.verify(&at, NOW).unwrap_or_else(|e| panic!("{e}"));
        }
        // With `typ` missing, the access check refuses the token, remembered header or not.
        let untyped = token(&payload(""));
        for _ in 0..2 {
            assert_eq!(v.verify(&untyped, NOW).unwrap_err(), TokenError::WrongTyp);
        }
        // Its signature held, so its header is remembered too; the claims decide, every time.
        assert_eq!(v.headers.len(), 3);
    }

    #[test]
    fn the_helpers_make_a_valid_token() {
        let v = verify("roles", "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.principal.subject, "alice");
        assert_eq!(v.principal.issuer.as_deref(), Some(ISS));
        assert_eq!(v.jti(), Some("j-1"));
        assert_eq!(v.exp, NOW + 60);
    }

    #[test]
    fn repeated_keys_in_nested_claims_are_refused() {
        for more in [
            r#","sub":"admin""#,
            r#","\u0073ub":"admin""#,
            r#","realm_access":{"roles":["user"],"roles":["admin"]}"#,
            r#","metadata":{"a":{"b":[{"c":1,"c":2}]}}"#,
            r#","permissions":["p",{"x":1,"x":1}]"#,
            r#","aud2":1,"aud2":2"#,
            r#","iat":{"t":1,"t":1}"#,
        ] {
            assert_eq!(
                verify("realm_access.roles", more).unwrap_err(),
                TokenError::BadJson("payload"),
                "{more}"
            );
        }
    }

    #[test]
    fn payload_that_is_not_one_strict_object_is_refused() {
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k1"}"#);
        let mut invalid_utf8 = payload("").into_bytes();
        invalid_utf8.insert(invalid_utf8.len() - 1, 0xff);
        for bad in [
            format!("{}{{}}", payload("")).into_bytes(),
            format!("{}x", payload("")).into_bytes(),
            b"[1]".to_vec(),
            payload(r#","n":"\ud800""#).into_bytes(),
            invalid_utf8,
        ] {
            // Refused before the signature is looked at, as the strict `Value` parse did.
            let t = format!("{h}.{}.c2ln", URL_SAFE_NO_PAD.encode(&bad));
            assert_eq!(
                verifier("roles").verify(&t, NOW).unwrap_err(),
                TokenError::BadJson("payload"),
                "{}",
                String::from_utf8_lossy(&bad)
            );
        }
        // Whitespace after the object is not data: this one gets as far as the signature.
        let t = format!("{h}.{}.c2ln", URL_SAFE_NO_PAD.encode(payload("") + " \n"));
        assert_eq!(
            verifier("roles").verify(&t, NOW).unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn the_shape_is_reported_before_anything_else() {
        let good = token(&payload(""));
        let mut parts = good.split('.');
        let (h, p, sig) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let crit = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","crit":["x"]}"#);
        let three = TokenError::Malformed("expected three dot-separated parts");
        // The parts are split at the first and last dot: a token with more dots must still be
        // refused as malformed, whatever would go wrong first in its parts.
        for bad in [
            format!("{h}.{p}.{sig}.x"),
            format!("x.{h}.{p}.{sig}"),
            format!("{h}.{p}.x.{sig}"),
            format!("{h}.{}.{}.{sig}", &p[..10], &p[10..]),
            format!("!!.{p}.x.{sig}"),
            format!("{none}.{p}.x."),
            format!("{crit}.{p}.x.{sig}"),
            format!(".{p}.x.{sig}"),
            format!("{h}..x.{sig}"),
            "...".to_owned(),
            ".".to_owned(),
            "abc".to_owned(),
            String::new(),
        ] {
            assert_eq!(
                verifier("roles").verify(&bad, NOW),
                Err(three.clone()),
                "{bad}"
            );
        }
        let empty = TokenError::Malformed("an empty part");
        for bad in [
            "..".to_owned(),
            format!("{h}..{sig}"),
            format!(".{p}.{sig}"),
        ] {
            assert_eq!(
                verifier("roles").verify(&bad, NOW),
                Err(empty.clone()),
                "{bad}"
            );
        }
        assert_eq!(
            verifier("roles").verify(&format!("{none}.{p}."), NOW),
            Err(TokenError::AlgNone)
        );
        assert_eq!(
            verifier("roles").verify(&format!("{h}.{p}.{sig}x"), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn plain_headers_read_as_serde_reads_them() {
        type Fields<'a> = (&'a str, Option<&'a str>, Option<&'a str>, [bool; 5]);
        fn fields<'a>(h: &'a JoseHeader<'a>) -> Fields<'a> {
            let flags = [h.crit, h.jku, h.x5u, h.jwk, h.x5c];
            (&h.alg, h.kid.as_deref(), h.typ.as_deref(), flags)
        }
        for plain in [
            r#"{"alg":"HS256"}"#,
            r#"{"typ":"at+jwt","alg":"EdDSA","kid":"k-1"}"#,
            " {\n\"alg\" : \"RS256\",\t\"kid\":\"\"} ",
        ] {
            let fast = plain_header(plain.as_bytes()).unwrap_or_else(|| panic!("{plain}"));
            let serde: JoseHeader<'_> =
                serde_json::from_str(plain).unwrap_or_else(|e| panic!("{plain}: {e}"));
            assert_eq!(fields(&fast), fields(&serde), "{plain}");
        }
        // Anything else is for the serde parse: other members, repeats, escapes, other types.
        for other in [
            r#"{"alg":"HS256","crit":["exp"]}"#,
            r#"{"alg":"HS256","jku":null}"#,
            r#"{"alg":"HS256","x5t":"abc"}"#,
            r#"{"alg":"HS256","alg":"none"}"#,
            r#"{"alg":"HS\u0032\u0035\u0036"}"#,
            r#"{"alg":"HS256","kid":7}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":"HS256"} {}"#,
            r#"["HS256"]"#,
        ] {
            assert!(plain_header(other.as_bytes()).is_none(), "{other}");
        }
        assert!(plain_header(b"{\"alg\":\"\xff\"}").is_none());
    }

    #[test]
    fn roles_at_a_nested_path() {
        let more = r#","realm_access":{"roles":["user","ops",3],"x":{}},"roles":["top"]"#;
        let v = verify("realm_access.roles", more).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.principal.roles, ["user", "ops"]);
        let v = verify("roles", more).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.principal.roles, ["top"]);
        for path in [
            "realm_access.missing",
            "realm_access.roles.deeper",
            "nothing",
            "",
        ] {
            let v = verify(path, more).unwrap_or_else(|e| panic!("{e}"));
            assert!(v.principal.roles.is_empty(), "{path}");
        }
        // A path through a registered claim reads the full claim set.
        let v = verify("permissions", r#","permissions":["p1"]"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.principal.roles, ["p1"]);
    }

    #[test]
    fn jti_is_read_from_the_payload_text_unless_it_was_escaped() {
        let v = verify("roles", "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.jti(), Some("j-1"));
        assert!(matches!(v.jti, Some(ClaimText::In(_))));
        assert_eq!(v.clone().jti(), Some("j-1"));
        assert_eq!(v.family(), None);
        let escaped = format!(
            r#"{{"iss":"{ISS}","sub":"alice","aud":"{AUD}","exp":{},"jti":"j\u002d2"}}"#,
            NOW + 60
        );
        let v = verifier("roles")
            .verify(&token(&escaped), NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.jti(), Some("j-2"));
        assert!(matches!(v.jti, Some(ClaimText::Unescaped(_))));
        // Text from elsewhere is never taken for a place in the payload.
        let payload = r#"{"jti":"abc"}"#;
        let elsewhere = String::from("abc");
        let t = ClaimText::of(Cow::Borrowed(&elsewhere), payload);
        assert_eq!(t, ClaimText::Unescaped("abc".into()));
        let inside = ClaimText::of(Cow::Borrowed(&payload[8..11]), payload);
        assert_eq!(inside, ClaimText::In(8..11));
        assert_eq!(inside.read(payload), Some("abc"));
    }

    #[test]
    fn roles_read_from_the_claim_text_as_from_the_built_claims() {
        // The scanner keeps `roles` as text: read from it, escaped strings and odd elements too;
        // a float elsewhere sends the payload to the serde path, which builds it: same roles.
        for (roles, want) in [
            (r#"["a","b"]"#, &["a", "b"][..]),
            (r#"["a\u0062",1,null,{"x":["y"]},["z"],"c"]"#, &["ab", "c"]),
            (r#""admin""#, &[]),
            (r#"{"admin":true}"#, &[]),
            ("[]", &[]),
        ] {
            for float in ["", r#","f":1.5"#] {
                let more = format!(r#","roles":{roles}{float}"#);
                let v = verify("roles", &more).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(v.principal.roles, want, "{more}");
            }
        }
    }

    #[test]
    fn attributes_are_built_when_first_read_and_shared_by_clones() {
        let more = r#","email":"a@example","metadata":{"team":"blue","tags":["x"]},"roles":["r"]"#;
        let v = verify("roles", more).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            v.principal.attributes.is_unread(),
            "verifying builds no attributes"
        );
        let clone = v.principal.clone();
        let want = json!({"email": "a@example", "metadata": {"team": "blue", "tags": ["x"]},
            "roles": ["r"]});
        assert_eq!(Value::Object((*clone.attributes).clone()), want);
        // The clone read them for both.
        assert!(!v.principal.attributes.is_unread());
        // A payload outside the scanner's subset builds them at once, to the same map.
        let built =
            verify("roles", &format!(r#"{more},"f":1.5"#)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!built.principal.attributes.is_unread());
        let mut want = want;
        want["f"] = json!(1.5);
        assert_eq!(Value::Object((*built.principal.attributes).clone()), want);
        // No unregistered claims, no attributes to defer.
        let none = verify("roles", "").unwrap_or_else(|e| panic!("{e}"));
        assert!(none.principal.attributes.is_empty());
        assert!(!none.principal.attributes.is_unread());
    }

    #[test]
    fn claims_map_to_the_principal() {
        let more = r#","client_id":"c-1","permissions":["a:b",7,"c:d"],"scope":"s1  s2","scp":["x"],
            "email":"a@example","metadata":{"team":"blue"},"iat":1,"type":"access""#;
        let v = verify("roles", more).unwrap_or_else(|e| panic!("{e}"));
        let p = &v.principal;
        assert_eq!(p.client_id.as_deref(), Some("c-1"));
        assert_eq!(p.permissions, ["a:b", "c:d"]);
        assert_eq!(p.scopes, ["s1", "s2"], "`scope` wins over `scp`");
        // Only unregistered claims become attributes.
        let keys: Vec<&str> = p.attributes.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 2);
        assert_eq!(p.attributes["email"], "a@example");
        assert_eq!(p.attributes["metadata"], json!({"team": "blue"}));
        // `scp` when there is no `scope`; a `scope` of another type still hides `scp`.
        let v = verify("roles", r#","scp":["x","y"]"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.principal.scopes, ["x", "y"]);
        let v = verify("roles", r#","scope":5,"scp":["x"]"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(v.principal.scopes.is_empty());
        // No `sub`: the client names the principal; a non-string `sub` counts as none.
        let p = format!(
            r#"{{"iss":"{ISS}","sub":7,"client_id":"c-2","aud":["x","{AUD}"],"exp":{}}}"#,
            NOW + 60
        );
        let v = verifier("roles")
            .verify(&token(&p), NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.principal.subject, "client:c-2");
    }

    #[test]
    fn number_claims_must_be_integers() {
        let at = |exp: &str, nbf: &str| {
            let p = format!(r#"{{"iss":"{ISS}","sub":"a","aud":"{AUD}","exp":{exp}{nbf}}}"#);
            verifier("roles").verify(&token(&p), NOW).map(|v| v.exp)
        };
        let exp = (NOW + 60).to_string();
        assert_eq!(at(&exp, ""), Ok(NOW + 60));
        assert_eq!(at(&format!("{exp}.0"), ""), Err(TokenError::MissingExp));
        assert_eq!(at(&format!("\"{exp}\""), ""), Err(TokenError::MissingExp));
        assert_eq!(at("18446744073709551615", ""), Err(TokenError::MissingExp));
        assert_eq!(at(&exp, &format!(r#","nbf":{NOW}"#)), Ok(NOW + 60));
        assert_eq!(
            at(&exp, &format!(r#","nbf":{NOW}.5"#)),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(at(&exp, r#","nbf":null"#), Err(TokenError::NotYetValid));
    }

    #[test]
    fn the_full_claim_set_is_parsed_only_when_read() {
        let more = r#","fam":"f-1","iat":5,"metadata":{"k":[1,2]}"#;
        let v = verify("roles", more).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.family(), Some("f-1"));
        let text = payload(more);
        assert_eq!(v.claims.json(), text);
        let all = mcp_guard_core::parse_strict(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Value::Object(v.claims.clone()), all);
        assert_eq!(v.claims.get("iat"), Some(&json!(5)));
        let copy = v.clone();
        assert_eq!(copy, v);
        assert_eq!(copy.claims.json(), text);
    }

    fn one(v: &str) -> Result<Option<&str>, TokenError> {
        bearer_token([v.as_bytes()].into_iter())
    }

    #[test]
    fn dots_are_found_from_either_end() {
        for len in 0..40 {
            for a in 0..=len {
                for b in a..=len {
                    // Bytes next to `.` in ASCII, one sharing its low seven bits, one off by a bit.
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [b'x', b'-', b'/', b'.' | 0x80, b'.' ^ 1][i % 5])
                        .collect();
                    for at in [a, b] {
                        if let Some(byte) = bytes.get_mut(at) {
                            *byte = b'.';
                        }
                    }
                    let first = bytes.iter().position(|&c| c == b'.');
                    let last = bytes.iter().rposition(|&c| c == b'.');
                    assert_eq!(first_dot(&bytes), first, "{len} {a} {b}");
                    assert_eq!(last_dot(&bytes), last, "{len} {a} {b}");
                }
            }
        }
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
