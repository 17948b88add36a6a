//! The JWT payload: one typed pass for what verification reads, and the full claim set on demand.
//!
//! `mcp_guard_core::parse_strict` builds a `Value` tree, with one `String` per key and string and
//! one map insert per member. On the verification path that was the largest cost, about 40% of an
//! HS256 verification (docs/PERFORMANCE.md, "Token verification"). [`parse_payload`] accepts
//! exactly what `parse_strict` accepts as an object: valid UTF-8, one JSON object and nothing
//! after it, no key repeated in any object at any depth (keys compared after unescaping), and
//! serde_json's nesting limit. Its output, though, keeps the registered claims as text borrowed
//! from the decoded payload. Payloads in the plain subset that tokens almost always use are read
//! by a scanner first (`scan`), which never refuses: anything else goes to the serde path, which
//! decides. The scanner checks the unregistered claims, which become the principal's attributes,
//! without building them: they are built from the payload when first read (`Members`). The
//! serde path builds them as it goes. [`Claims`] parses the whole set only when a caller reads it.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use mcp_guard_core::StrictValue;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::scan::{Key, KeyWord, Scalar, Scan};

/// Claims with a meaning of their own; every other claim becomes a principal attribute.
pub(super) const REGISTERED: [&str; 13] = [
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

// One bit per registered claim marks it as seen, so a repeated one is caught without a set.
const _: () = assert!(REGISTERED.len() <= u16::BITS as usize);

/// Why a payload was refused. Callers report every case the same way; the variants only keep the
/// two kinds apart in tests.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum PayloadError {
    /// Not valid UTF-8.
    #[error("the payload is not UTF-8")]
    Utf8,
    /// Not one JSON object, a repeated key included.
    #[error("the payload is not one strict JSON object: {0}")]
    Json(String),
}

/// The claims verification reads, borrowed from the decoded payload where they are text.
///
/// Types follow what the `Value`-based checks accepted: a text claim of another type counts as
/// absent, a number claim must be an integer that fits `i64`.
#[derive(Debug, Default)]
pub(super) struct Payload<'a> {
    /// `iss`, if a string.
    pub iss: Option<Cow<'a, str>>,
    /// `sub`, if a string.
    pub sub: Option<Cow<'a, str>>,
    /// `aud`, a string or a list.
    pub aud: Option<Item<'a>>,
    /// `exp`, if present: the integer, or `None` for a value of another type.
    pub exp: Option<Option<i64>>,
    /// `nbf`, if present: the integer, or `None` for a value of another type.
    pub nbf: Option<Option<i64>>,
    /// `jti`, if a string.
    pub jti: Option<Cow<'a, str>>,
    /// `client_id`, if a string.
    pub client_id: Option<Cow<'a, str>>,
    /// `scope`, space-separated text or a list.
    pub scope: Option<Item<'a>>,
    /// `scp`, read when there is no `scope`.
    pub scp: Option<Item<'a>>,
    /// The strings of `permissions` (other elements, and a non-list, give none).
    pub permissions: Vec<String>,
    /// `type` (`access` or `refresh` for our own tokens), if a string.
    pub kind: Option<Cow<'a, str>>,
    /// `fam`, a refresh token's family, if a string.
    pub fam: Option<Cow<'a, str>>,
    /// The unregistered claims, when the scanner read the payload: checked, not built.
    pub members: Members<'a>,
    /// The unregistered claims, built, when the serde path read the payload (`members` is then
    /// empty).
    pub extra: Option<Map<String, Value>>,
}

/// Most unregistered claims the scanner keeps track of; a payload with more goes to the serde
/// path. Identity providers add a dozen or two (profile, session, client and realm details).
const MAX_MEMBERS: usize = 24;

/// The unregistered claims the scanner passed over: each one's name and its value's JSON text.
///
/// They become the principal's attributes, which most requests never read: so they are kept as
/// text here and built from the payload only when read (`Attributes::deferred`). The roles
/// claim is read from its text.
#[derive(Clone, Copy, Debug)]
pub(super) struct Members<'a> {
    found: [(&'a str, &'a str); MAX_MEMBERS],
    len: usize,
}

impl Default for Members<'_> {
    fn default() -> Self {
        Members {
            found: [("", ""); MAX_MEMBERS],
            len: 0,
        }
    }
}

impl<'a> Members<'a> {
    /// The members found, in document order.
    fn all(&self) -> &[(&'a str, &'a str)] {
        self.found.get(..self.len).unwrap_or_default()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The JSON text of the value of the member `name`.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.all().iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// Adds a member; `None` for a repeated name or one more than there is room for.
    fn add(&mut self, name: &'a str, value: &'a str) -> Option<()> {
        if self.get(name).is_some() {
            return None;
        }
        *self.found.get_mut(self.len)? = (name, value);
        self.len += 1;
        Some(())
    }
}

/// The unregistered claims of a payload that [`parse_payload`] accepted, built: the attributes
/// a principal's claims give it, built when first read (`Attributes::deferred`). Read by the
/// scanner as the payload parse was (about 0.3 µs for our payloads), or by `parse_strict`.
pub(super) fn unregistered_claims(json: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let mut s = Scan::new(json);
    s.ws();
    let plain = s.object(|s, key| {
        if registered(key).is_some() {
            return s.skip(1);
        }
        // One lookup for both the repeat check and the insert.
        let serde_json::map::Entry::Vacant(slot) = out.entry(key) else {
            return None;
        };
        // Depth 1 is the payload object itself.
        s.value_into(1, slot.insert(Value::Null))
    });
    if plain.is_some() && s.at_end() {
        return out;
    }
    // The payload parse accepted this text, and it refuses all that `parse_strict` refuses, so
    // this is the object it checked; were that ever untrue, no attributes is the safe answer.
    match mcp_guard_core::parse_strict(json.as_bytes()) {
        Ok(Value::Object(mut all)) => {
            all.retain(|name, _| registered(name).is_none());
            all
        }
        _ => Map::new(),
    }
}

/// The bit of `permissions`, which the fast path reads specially.
const PERMISSIONS: u16 = 10;

/// The bit of a registered claim (its index in [`REGISTERED`]); `None` for any other name.
#[inline]
pub(super) fn registered(name: &str) -> Option<u16> {
    /// Three ASCII bytes as one number, first byte lowest.
    const fn three(b: &[u8; 3]) -> u32 {
        b[0] as u32 | (b[1] as u32) << 8 | (b[2] as u32) << 16
    }
    const ISS: u32 = three(b"iss");
    const SUB: u32 = three(b"sub");
    const AUD: u32 = three(b"aud");
    const EXP: u32 = three(b"exp");
    const NBF: u32 = three(b"nbf");
    const IAT: u32 = three(b"iat");
    const JTI: u32 = three(b"jti");
    const SCP: u32 = three(b"scp");
    const FAM: u32 = three(b"fam");
    Some(match name.as_bytes() {
        // Most claim names have three letters: compared as one number each, which the
        // compiler can search as a tree rather than as a chain of byte comparisons.
        &[a, b, c] => match three(&[a, b, c]) {
            ISS => 0,
            SUB => 1,
            AUD => 2,
            EXP => 3,
            NBF => 4,
            IAT => 5,
            JTI => 6,
            SCP => 9,
            FAM => 12,
            _ => return None,
        },
        b"client_id" => 7,
        b"scope" => 8,
        b"permissions" => PERMISSIONS,
        b"type" => 11,
        _ => return None,
    })
}

/// [`registered`] for a key the scanner read as a [`KeyWord`] (one of seven bytes or less).
///
/// A second table, not a way into [`registered`]: a word cannot tell `iss` from `iss\0`, which
/// the scanner never reads as a key (it stops at control bytes) but `registered` can be given.
#[inline(always)]
fn registered_word(word: KeyWord) -> Option<u16> {
    const ISS: u64 = KeyWord::of(b"iss");
    const SUB: u64 = KeyWord::of(b"sub");
    const AUD: u64 = KeyWord::of(b"aud");
    const EXP: u64 = KeyWord::of(b"exp");
    const NBF: u64 = KeyWord::of(b"nbf");
    const IAT: u64 = KeyWord::of(b"iat");
    const JTI: u64 = KeyWord::of(b"jti");
    const SCOPE: u64 = KeyWord::of(b"scope");
    const SCP: u64 = KeyWord::of(b"scp");
    const TYPE: u64 = KeyWord::of(b"type");
    const FAM: u64 = KeyWord::of(b"fam");
    // `client_id` and `permissions` are longer than a word: never read as one.
    Some(match word.0 {
        ISS => 0,
        SUB => 1,
        AUD => 2,
        EXP => 3,
        NBF => 4,
        IAT => 5,
        JTI => 6,
        SCOPE => 8,
        SCP => 9,
        TYPE => 11,
        FAM => 12,
        _ => return None,
    })
}

impl<'a> Payload<'a> {
    /// Records a registered claim, refusing (`None`) one already seen.
    #[inline]
    fn set(&mut self, seen: &mut u16, bit: u16, item: Item<'a>) -> Option<()> {
        if *seen & (1 << bit) != 0 {
            return None;
        }
        *seen |= 1 << bit;
        match bit {
            0 => self.iss = item.into_text(),
            1 => self.sub = item.into_text(),
            2 => self.aud = Some(item),
            3 => self.exp = Some(item.as_i64()),
            4 => self.nbf = Some(item.as_i64()),
            // `iat` is only ever shown, from the full claim set.
            5 => {}
            6 => self.jti = item.into_text(),
            7 => self.client_id = item.into_text(),
            8 => self.scope = Some(item),
            9 => self.scp = Some(item),
            PERMISSIONS => self.permissions = item.strings(),
            11 => self.kind = item.into_text(),
            _ => self.fam = item.into_text(),
        }
        Some(())
    }
}

/// A registered claim's value, kept only as far as verification looks into it.
#[derive(Debug, PartialEq)]
pub(super) enum Item<'a> {
    /// A string.
    Str(Cow<'a, str>),
    /// An integer that fits `i64`.
    Int(i64),
    /// An array; nested objects in it have been checked and dropped.
    List(Vec<Item<'a>>),
    /// Anything else: a fraction, a boolean, `null`, an object (checked, then dropped).
    Other,
}

impl<'a> From<Scalar<'a>> for Item<'a> {
    #[inline]
    fn from(s: Scalar<'a>) -> Self {
        match s {
            Scalar::Str(s) => Item::Str(Cow::Borrowed(s)),
            Scalar::Int(n) => Item::Int(n),
            Scalar::Bool(_) | Scalar::Null => Item::Other,
        }
    }
}

impl<'a> Item<'a> {
    /// The text, if a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Item::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if an integer that fits `i64` (what `Value::as_i64` gives).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Item::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The strings of an array, others skipped; nothing for a non-array.
    pub fn strings(&self) -> Vec<String> {
        match self {
            Item::List(items) => items
                .iter()
                .filter_map(Item::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }

    #[inline]
    fn into_text(self) -> Option<Cow<'a, str>> {
        match self {
            Item::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses a decoded payload into `p`, a default one (see the module documentation for what is
/// refused). Filled in place: the struct is large, and moving it out costs a copy.
pub(super) fn parse_payload<'a>(json: &'a str, p: &mut Payload<'a>) -> Result<(), PayloadError> {
    if plain_into(json, p).is_some() {
        return Ok(());
    }
    *p = parse_with_serde(json)?;
    Ok(())
}

#[cfg(test)]
impl Payload<'_> {
    /// The unregistered claims as a map, however the payload was read.
    fn unregistered(&self) -> Map<String, Value> {
        match &self.extra {
            Some(built) => built.clone(),
            None => self
                .members
                .all()
                .iter()
                .map(|(name, text)| {
                    let value = mcp_guard_core::parse_strict(text.as_bytes())
                        .unwrap_or_else(|e| panic!("a member's text is JSON: {e}"));
                    ((*name).to_owned(), value)
                })
                .collect(),
        }
    }
}

/// Equal when the registered claims are and the unregistered ones have the same values, whether
/// kept as text (the scanner) or built (the serde path).
#[cfg(test)]
impl PartialEq for Payload<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iss == other.iss
            && self.sub == other.sub
            && self.aud == other.aud
            && self.exp == other.exp
            && self.nbf == other.nbf
            && self.jti == other.jti
            && self.client_id == other.client_id
            && self.scope == other.scope
            && self.scp == other.scp
            && self.permissions == other.permissions
            && self.kind == other.kind
            && self.fam == other.fam
            && self.unregistered() == other.unregistered()
    }
}

/// The fast path on its own, for tests: `None` where it gives up.
#[cfg(test)]
fn parse_plain(json: &str) -> Option<Payload<'_>> {
    let mut p = Payload::default();
    plain_into(json, &mut p)?;
    Some(p)
}

/// The fast path: a payload entirely in the scanner's subset (see `scan`), read without serde
/// into `p`. `None` for anything else, including what must be refused (then `p` holds part of
/// the payload and is to be dropped); the serde path decides those.
fn plain_into<'a>(json: &'a str, p: &mut Payload<'a>) -> Option<()> {
    let mut s = Scan::new(json);
    s.ws();
    let mut seen: u16 = 0;
    s.object_keyed(|s, key| {
        let bit = match key {
            Key::Short { word, .. } => registered_word(word),
            Key::Text(name) => registered(name),
        };
        let Some(bit) = bit else {
            let key = key.text()?;
            let start = s.position();
            // Depth 1 is the payload object itself.
            s.skip(1)?;
            return p.members.add(key, s.since(start)?);
        };
        if seen & (1 << bit) != 0 {
            return None;
        }
        seen |= 1 << bit;
        // Each claim goes straight to its field, with the conversion `Payload::set` applies on
        // the serde path. The readers write into the field rather than return the value: a
        // returned `Option<Item>` went through the stack, and reading it back right after its
        // narrower stores stalled the store forwarding (the top line of a `perf` profile).
        match bit {
            0 => plain_text(s, &mut p.iss)?,
            1 => plain_text(s, &mut p.sub)?,
            2 => plain_item(s, &mut p.aud)?,
            3 => plain_time(s, &mut p.exp)?,
            4 => plain_time(s, &mut p.nbf)?,
            // Read only to be checked: `iat` is shown, never used.
            5 => s.skip(1)?,
            6 => plain_text(s, &mut p.jti)?,
            7 => plain_text(s, &mut p.client_id)?,
            8 => plain_item(s, &mut p.scope)?,
            9 => plain_item(s, &mut p.scp)?,
            // Straight to the owned strings the principal keeps, with no list of items between.
            PERMISSIONS if s.peek() == Some(b'[') => p.permissions = plain_strings(s)?,
            PERMISSIONS => {
                let mut item = None;
                plain_item(s, &mut item)?;
                p.permissions = item.map(|i| i.strings()).unwrap_or_default();
            }
            11 => plain_text(s, &mut p.kind)?,
            _ => plain_text(s, &mut p.fam)?,
        }
        Some(())
    })?;
    s.at_end().then_some(())
}

/// The strings of an array of scalars in the scanner's subset, other scalars skipped, allocated
/// at their number: the first few are noted on the stack, the rest (rare) pushed. `None` for
/// anything else, a nested array or object included, which the serde path then reads.
pub(super) fn plain_strings(s: &mut Scan<'_>) -> Option<Vec<String>> {
    // An empty list (our tokens' `roles` when there are none) without setting up the notes.
    if s.empty_array() {
        return Some(Vec::new());
    }
    let mut first = [""; 8];
    let mut noted = 0;
    let mut rest = Vec::new();
    s.elements(|s| {
        if s.peek() != Some(b'"') {
            return s.scalar().map(|_| ());
        }
        let text = s.string()?;
        match first.get_mut(noted) {
            Some(slot) => {
                *slot = text;
                noted += 1;
            }
            None => rest.push(text.to_owned()),
        }
        Some(())
    })?;
    let mut strings = Vec::with_capacity(noted + rest.len());
    strings.extend(first.iter().take(noted).map(|t| (*t).to_owned()));
    strings.append(&mut rest);
    Some(strings)
}

/// Reads a registered claim's value in the scanner's subset, a scalar or an array of scalars,
/// into `out`.
#[inline]
fn plain_item<'a>(s: &mut Scan<'a>, out: &mut Option<Item<'a>>) -> Option<()> {
    // Strings (`aud`) and integers (`exp`, `nbf`, `iat`) first, without the general dispatch.
    *out = Some(match s.peek()? {
        b'"' => Item::Str(Cow::Borrowed(s.string()?)),
        b'0'..=b'9' => Item::Int(s.integer()?),
        b'[' => Item::List(s.array(|s| s.scalar().map(Item::from))?),
        _ => Item::from(s.scalar()?),
    });
    Some(())
}

/// Reads a time claim (`exp`, `nbf`) into `out`: the integer, or `None` for a value of another
/// type (as `Item::as_i64` has it).
#[inline]
fn plain_time(s: &mut Scan<'_>, out: &mut Option<Option<i64>>) -> Option<()> {
    if let Some(b'0'..=b'9') = s.peek() {
        *out = Some(Some(s.integer()?));
        return Some(());
    }
    let mut item = None;
    plain_item(s, &mut item)?;
    *out = Some(item.and_then(|i| i.as_i64()));
    Some(())
}

/// Reads a text claim into `out`: the string, or `None` for a value of another type (which
/// counts as absent, as `Item::into_text` has it).
#[inline]
fn plain_text<'a>(s: &mut Scan<'a>, out: &mut Option<Cow<'a, str>>) -> Option<()> {
    if s.peek() == Some(b'"') {
        *out = Some(Cow::Borrowed(s.string()?));
        return Some(());
    }
    let mut item = None;
    plain_item(s, &mut item)?;
    *out = item.and_then(Item::into_text);
    Some(())
}

/// The serde path: the whole of JSON, with `parse_strict`'s rules.
fn parse_with_serde(json: &str) -> Result<Payload<'_>, PayloadError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let payload = de
        .deserialize_map(PayloadVisitor)
        .map_err(|e| PayloadError::Json(e.to_string()))?;
    // Trailing data (another value, garbage) is refused; trailing whitespace is not data.
    de.end().map_err(|e| PayloadError::Json(e.to_string()))?;
    Ok(payload)
}

/// Checks the decoded payload bytes are UTF-8, giving them back as the text that
/// [`parse_payload`] borrows from, and [`Claims`] and the principal's attributes share.
pub(super) fn payload_text(bytes: &[u8]) -> Result<Arc<str>, PayloadError> {
    // Checked over the whole payload once, so the parse can borrow `&str`s without rechecking.
    // Outside strings a non-ASCII byte is a syntax error anyway, so this refuses nothing that
    // `parse_strict` (which checks inside strings) would accept.
    std::str::from_utf8(bytes)
        .map(Arc::from)
        .map_err(|_| PayloadError::Utf8)
}

fn duplicate<E: de::Error>(key: &str) -> E {
    // The key is attacker-chosen: bounded, so an error message cannot grow with it.
    E::custom(format_args!(
        "duplicate key `{}`",
        key.chars().take(32).collect::<String>()
    ))
}

/// A string borrowed from the input unless it had escapes.
///
/// serde's own `Cow<str>` always copies (it borrows only for a field typed exactly `Cow` with
/// `#[serde(borrow)]`, not inside an `Option` or as a map key).
#[derive(Debug, PartialEq)]
pub(super) struct Text<'a>(pub Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

// For any `'a` the input outlives, as `#[serde(borrow)]` on a field requires.
impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

struct TextVisitor<'a>(std::marker::PhantomData<Text<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Text<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
        Ok(Text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
        Ok(Text(Cow::Owned(v)))
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload<'de>, A::Error> {
        let mut p = Payload::default();
        let mut extra = Map::new();
        let mut seen: u16 = 0;
        while let Some(Text(key)) = map.next_key()? {
            let Some(bit) = registered(&key) else {
                // The attributes map doubles as the set of unregistered keys seen so far.
                if extra.contains_key(key.as_ref()) {
                    return Err(duplicate(&key));
                }
                let StrictValue(v) = map.next_value()?;
                extra.insert(key.into_owned(), v);
                continue;
            };
            let item: Item<'de> = map.next_value()?;
            if p.set(&mut seen, bit, item).is_none() {
                return Err(duplicate(&key));
            }
        }
        p.extra = Some(extra);
        Ok(p)
    }
}

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Item<'de>, E> {
        Ok(Item::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Item<'de>, E> {
        Ok(Item::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Item<'de>, E> {
        Ok(Item::Str(Cow::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Item<'de>, E> {
        Ok(Item::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Item<'de>, E> {
        Ok(i64::try_from(v).map_or(Item::Other, Item::Int))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Item<'de>, E> {
        Ok(Item::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Item<'de>, E> {
        Ok(Item::Other)
    }
    fn visit_unit<E>(self) -> Result<Item<'de>, E> {
        Ok(Item::Other)
    }
    fn visit_none<E>(self) -> Result<Item<'de>, E> {
        Ok(Item::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item<'de>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        Ok(Item::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item<'de>, A::Error> {
        // No registered claim is read as an object, but its keys must still be unique: checked
        // by building it strictly, then dropped. Only unusual (or hostile) tokens get here.
        StrictValue::deserialize(de::value::MapAccessDeserializer::new(map)).map(|_| Item::Other)
    }
}

/// All claims of a verified token, as a JSON object, parsed from the payload the first time they
/// are read: verifying and authorizing never need the whole set, introspection and the CLI do.
///
/// Reads as the `Map` it dereferences to. It is deliberately not `Clone`, so `claims.clone()`
/// still gives that `Map`, as when this was a `Map` field; a `VerifiedToken` clones whole.
pub struct Claims {
    /// The decoded payload, already accepted by `parse_payload`.
    json: Arc<str>,
    map: OnceLock<Map<String, Value>>,
}

impl Claims {
    /// Claims over a payload that `parse_payload` accepted.
    pub(super) fn new(json: Arc<str>) -> Self {
        Claims {
            json,
            map: OnceLock::new(),
        }
    }

    /// The payload JSON exactly as it was signed.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The payload JSON, shared.
    pub(super) fn shared_json(&self) -> &Arc<str> {
        &self.json
    }

    /// A copy, with the map if it was already parsed.
    pub(super) fn duplicate(&self) -> Self {
        Claims {
            json: self.json.clone(),
            map: self.map.clone(),
        }
    }
}

impl Deref for Claims {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Map<String, Value> {
        self.map.get_or_init(|| {
            // `parse_payload` accepted this text, and it refuses all that `parse_strict` refuses
            // (a test compares them on generated inputs), so this is the object it checked. Were
            // that ever untrue, no claims is the safe answer: nothing is granted from this map.
            match mcp_guard_core::parse_strict(self.json.as_bytes()) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            }
        })
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for Claims {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(json: &str) -> Result<Payload<'_>, PayloadError> {
        let mut p = Payload::default();
        parse_payload(json, &mut p).map(|()| p)
    }

    #[test]
    fn a_claim_is_registered_by_its_name_or_its_word_alike() {
        for (bit, name) in REGISTERED.iter().enumerate() {
            let bit = u16::try_from(bit).ok();
            assert_eq!(registered(name), bit, "{name}");
            if name.len() <= 7 {
                assert_eq!(registered_word(KeyWord(KeyWord::of(name.as_bytes()))), bit);
            }
        }
        let others = [
            "", "is", "issu", "iss ", "Iss", "scop", "scopes", "types", "fa", "famx",
        ];
        for name in others
            .iter()
            .chain(&["client_i", "permission", "permissionss"])
        {
            assert_eq!(registered(name), None, "{name}");
        }
        for name in others {
            assert_eq!(
                registered_word(KeyWord(KeyWord::of(name.as_bytes()))),
                None,
                "{name}"
            );
        }
    }

    #[test]
    fn registered_claims_are_borrowed_and_typed() {
        let json = r#"{"iss":"https://i","sub":"al\"ice","aud":["a",1,"b"],"exp":17,"nbf":1.5,
            "scope":"a b","permissions":["p",{"x":1},"q"],"type":"access","fam":7,
            "realm":{"roles":["r"]},"n":null}"#;
        let p = parse(json).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(p.iss, Some(Cow::Borrowed("https://i"))));
        // Escaped text cannot be borrowed; it is unescaped into an owned string.
        assert!(matches!(p.sub.as_deref(), Some("al\"ice")));
        assert!(matches!(p.sub, Some(Cow::Owned(_))));
        assert_eq!(
            p.aud,
            Some(Item::List(vec![
                Item::Str("a".into()),
                Item::Int(1),
                Item::Str("b".into())
            ]))
        );
        assert_eq!(p.exp, Some(Some(17)));
        assert_eq!(p.nbf, Some(None), "a fraction is not an integer time");
        assert_eq!(p.permissions, ["p", "q"]);
        assert_eq!(p.kind.as_deref(), Some("access"));
        assert_eq!(p.fam, None, "a non-string text claim counts as absent");
        let extra = p.unregistered();
        assert_eq!(extra.len(), 2);
        assert_eq!(extra["realm"]["roles"][0], "r");
        assert_eq!(extra["n"], Value::Null);
    }

    #[test]
    fn registered_names_and_nothing_else() {
        for (i, name) in REGISTERED.iter().enumerate() {
            assert_eq!(registered(name).map(usize::from), Some(i), "{name}");
            // Near misses: a byte more or less, at either end, a NUL, another case.
            for other in [
                format!("{name}\0"),
                format!("\0{name}"),
                format!("{name}x"),
                name[1..].to_owned(),
                name[..name.len() - 1].to_owned(),
                name.to_uppercase(),
            ] {
                assert_eq!(registered(&other), None, "{other:?}");
            }
        }
        for other in [
            "",
            "\0",
            "\0\0\0",
            "roles",
            "metadata",
            "client_ix",
            "Permissions",
        ] {
            assert_eq!(registered(other), None, "{other:?}");
        }
    }

    #[test]
    fn every_registered_claim_is_recognised_once() {
        for (i, name) in REGISTERED.iter().enumerate() {
            // Twice is refused only if the parse knows the name as registered (an unregistered
            // repeat is refused too, but then it would also land in the attributes once).
            let once = format!(r#"{{"{name}":1}}"#);
            let p = parse(&once).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                p.unregistered().is_empty(),
                "{name} is not treated as registered"
            );
            let twice = format!(r#"{{"{name}":1,"{name}":2}}"#);
            assert!(parse(&twice).is_err(), "{name}");
            // Each registered claim has its own bit: no two share one.
            for other in &REGISTERED[i + 1..] {
                let both = format!(r#"{{"{name}":1,"{other}":2}}"#);
                assert!(parse(&both).is_ok(), "{name} and {other}");
            }
        }
    }

    #[test]
    fn plain_payloads_take_the_fast_path() {
        let json = r#"{"iss":"https://gw.example","sub":"alice","aud":"https://gw.example/mcp",
            "exp":1795679073,"iat":1795675473,"nbf":1795675473,"jti":"LQS1HXCY1KbTy1UQ5ueZww",
            "type":"access","permissions":["tools:execute:echo"],"roles":[],"metadata":{},
            "realm_access":{"roles":["user"]},"email_verified":true,"n":null}"#;
        let fast = parse_plain(json);
        assert!(fast.is_some());
        assert_eq!(fast.map(Ok), Some(parse_with_serde(json)));
        // Outside the subset the serde path reads (or refuses) it; the result is the same shape.
        for json in [
            r#"{"sub":"al\u0069ce","exp":1}"#,
            r#"{"sub":"alice","exp":1.0}"#,
            r#"{"sub":"alice","exp":-1}"#,
            r#"{"sub":"alice","x":{"y":1.5}}"#,
            r#"{"aud":[["nested"]],"sub":"a"}"#,
        ] {
            assert!(parse_plain(json).is_none(), "{json}");
            assert!(parse(json).is_ok(), "{json}");
        }
        for json in [
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"x":{"y":1,"y":1}}"#,
            r#"{"a":1}x"#,
        ] {
            assert!(parse_plain(json).is_none(), "{json}");
            assert!(parse(json).is_err(), "{json}");
        }
    }

    #[test]
    fn attributes_are_the_unregistered_claims_read_either_way() {
        let plain = r#"{"sub":"a","aud":["x"],"email":"a@example","metadata":{"team":"blue"},
            "roles":["r"],"exp":1}"#;
        let want = serde_json::json!({"email": "a@example", "metadata": {"team": "blue"},
            "roles": ["r"]});
        assert_eq!(Value::Object(unregistered_claims(plain)), want);
        // Outside the scanner's subset (an escape, a float), through `parse_strict`.
        let other = r#"{"sub":"a","email":"a\u0040example","f":1.5}"#;
        let want = serde_json::json!({"email": "a@example", "f": 1.5});
        assert_eq!(Value::Object(unregistered_claims(other)), want);
    }

    #[test]
    fn permissions_keep_their_order_however_many() {
        for n in [0, 1, 7, 8, 9, 20] {
            let names: Vec<String> = (0..n).map(|i| format!("p:{i}")).collect();
            let mut elements: Vec<String> = names.iter().map(|p| format!("\"{p}\"")).collect();
            // Non-strings anywhere are skipped.
            elements.insert(elements.len() / 2, "3".into());
            elements.push("null".into());
            let json = format!(r#"{{"permissions":[{}]}}"#, elements.join(","));
            let fast = parse_plain(&json).unwrap_or_else(|| panic!("{json}"));
            assert_eq!(fast.permissions, names, "{json}");
            assert_eq!(Ok(fast), parse_with_serde(&json));
        }
    }

    #[test]
    fn large_and_negative_numbers() {
        let p = parse(r#"{"exp":9223372036854775808,"nbf":-5}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.exp, Some(None), "beyond i64 is no time");
        assert_eq!(p.nbf, Some(Some(-5)));
    }

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        for json in [
            // Registered, unregistered, and one spelled with an escape.
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"x":1,"x":2}"#,
            r#"{"sub":"a","\u0073ub":"b"}"#,
            r#"{"x":1,"\u0078":1}"#,
            // Nested in an unregistered claim, in an array, in a registered claim of any type.
            r#"{"realm":{"roles":["r"],"roles":["admin"]}}"#,
            r#"{"m":[{"a":1},{"b":1,"b":2}]}"#,
            r#"{"permissions":[{"p":1,"p":1}]}"#,
            r#"{"sub":{"a":1,"a":1}}"#,
            r#"{"aud":[[{"a":1,"a":1}]]}"#,
            r#"{"iat":{"a":{"b":{"c":1,"c":1}}}}"#,
        ] {
            assert!(
                matches!(parse(json), Err(PayloadError::Json(ref m)) if m.contains("duplicate")),
                "{json}"
            );
        }
        // The same key in different objects is fine.
        assert!(parse(r#"{"a":{"a":{"a":1}},"sub":"a","b":[{"sub":1},{"sub":2}]}"#).is_ok());
    }

    #[test]
    fn one_object_and_nothing_else() {
        for json in [
            "",
            "[]",
            "1",
            "\"s\"",
            "null",
            "{} {}",
            "{}x",
            "{},",
            r#"{"a":1"#,
            r#"{"a":"\ud800"}"#,
        ] {
            assert!(
                matches!(parse(json), Err(PayloadError::Json(_))),
                "{json:?}"
            );
        }
        assert!(parse(" {} \n").is_ok());
        assert_eq!(payload_text(b"{\"a\":\"\xff\"}"), Err(PayloadError::Utf8));
        let deep = format!("{{\"a\":{}", "[".repeat(10_000));
        assert!(matches!(parse(&deep), Err(PayloadError::Json(_))));
    }

    #[test]
    fn claims_parse_on_first_read() {
        let claims = Claims::new(r#"{"sub":"a","fam":"f","n":[1]}"#.into());
        assert!(claims.map.get().is_none());
        assert_eq!(claims.get("fam").and_then(Value::as_str), Some("f"));
        assert_eq!(claims.len(), 3);
        // `clone` goes through to the map: what callers that owned a `Map` got.
        let map: Map<String, Value> = claims.clone();
        assert_eq!(map["n"][0], 1);
        assert_eq!(claims.duplicate(), claims);
    }

    /// JSON-ish text from a small alphabet, weighted so that many cases are valid objects with
    /// repeated or escaped keys, nesting, and registered names.
    fn jsonish() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("1".to_owned()),
            Just("-0".to_owned()),
            Just("1.5e3".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("true".to_owned()),
            Just("null".to_owned()),
            Just(r#""s""#.to_owned()),
            Just(r#""\u00e9\n""#.to_owned()),
            Just(r#""\udc00""#.to_owned()),
        ];
        let key = prop_oneof![
            Just("sub"),
            Just("\\u0073ub"),
            Just("aud"),
            Just("exp"),
            Just("permissions"),
            Just("x"),
            Just("\\u0078"),
            Just("y"),
        ];
        let value = leaf.prop_recursive(4, 32, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key.clone(), inner), 0..4).prop_map(|v| {
                    let members: Vec<String> =
                        v.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        });
        let noise = prop_oneof![
            Just(""),
            Just(""),
            Just(""),
            Just(" "),
            Just(","),
            Just("}"),
            Just(" {}"),
        ];
        (value, noise).prop_map(|(v, n)| format!("{v}{n}"))
    }

    /// Payload-shaped objects mostly inside the scanner's subset: registered and other keys
    /// (repeats possible), scalars, lists and nested objects, and all four whitespace bytes.
    fn plainish() -> impl Strategy<Value = String> {
        let ws = prop_oneof![Just(""), Just(""), Just(" "), Just("\n\t"), Just("\r ")];
        let leaf = prop_oneof![
            Just("0".to_owned()),
            Just("1795665360".to_owned()),
            Just("9223372036854775807".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("null".to_owned()),
            Just(r#""https://gw.example""#.to_owned()),
            Just(r#""""#.to_owned()),
            Just(r#""a b""#.to_owned()),
            Just(r#""é""#.to_owned()),
            // A few just outside it: a sign, a fraction, an exponent, a leading zero, past
            // `u64` and past `i64` (eight digits at a time, then one by one), an escape.
            Just("-1".to_owned()),
            Just("1.0".to_owned()),
            Just("12345678.5".to_owned()),
            Just("1795665360e1".to_owned()),
            Just("01".to_owned()),
            Just("123456789012345678901".to_owned()),
            Just("9223372036854775808".to_owned()),
            Just(r#""\/""#.to_owned()),
        ];
        let key = prop_oneof![
            Just("iss"),
            Just("sub"),
            Just("aud"),
            Just("exp"),
            Just("nbf"),
            Just("iat"),
            Just("jti"),
            Just("fam"),
            Just("type"),
            Just("scope"),
            Just("permissions"),
            Just("roles"),
            Just("metadata"),
            Just("x"),
        ];
        let value = leaf.prop_recursive(3, 16, 3, {
            let key = key.clone();
            let ws = ws.clone();
            move |inner| {
                prop_oneof![
                    (prop::collection::vec(inner.clone(), 0..3), ws.clone())
                        .prop_map(|(v, w)| format!("[{w}{}{w}]", v.join(&format!("{w},{w}")))),
                    (
                        prop::collection::vec((key.clone(), inner), 0..3),
                        ws.clone()
                    )
                        .prop_map(|(v, w)| {
                            let members: Vec<String> = v
                                .iter()
                                .map(|(k, v)| format!("\"{k}\"{w}:{w}{v}"))
                                .collect();
                            format!("{{{w}{}{w}}}", members.join(","))
                        }),
                ]
            }
        });
        (prop::collection::vec((key, value, ws.clone()), 0..8), ws).prop_map(|(members, w)| {
            let members: Vec<String> = members
                .iter()
                .map(|(k, v, mw)| format!("{mw}\"{k}\"{mw}:{mw}{v}{mw}"))
                .collect();
            format!("{w}{{{}}}{w}", members.join(","))
        })
    }

    /// Payloads entirely inside the scanner's subset with no key repeated: registered claims in
    /// any order, each a scalar or a list of scalars, and one unregistered claim.
    fn in_subset() -> impl Strategy<Value = String> {
        let ws = prop_oneof![Just(""), Just(""), Just(" "), Just("\n\t")];
        let scalar = prop_oneof![
            Just("0".to_owned()),
            Just("7".to_owned()),
            Just("12345678".to_owned()),
            Just("123456789".to_owned()),
            Just("1795665360".to_owned()),
            Just("9223372036854775807".to_owned()),
            Just("true".to_owned()),
            Just("null".to_owned()),
            Just(r#""https://gw.example/mcp""#.to_owned()),
            Just(r#""""#.to_owned()),
            Just(r#""tools:execute:echo""#.to_owned()),
        ];
        let value = prop_oneof![
            3 => scalar.clone(),
            1 => prop::collection::vec(scalar, 0..3).prop_map(|v| format!("[{}]", v.join(","))),
        ];
        let names =
            proptest::sample::subsequence(REGISTERED.to_vec(), 0..=REGISTERED.len()).prop_shuffle();
        (names, prop::collection::vec((value, ws.clone()), 14), ws).prop_map(
            |(names, values, w)| {
                let mut members: Vec<String> = names
                    .iter()
                    .zip(&values)
                    .map(|(k, (v, mw))| format!("{mw}\"{k}\"{mw}:{mw}{v}{mw}"))
                    .collect();
                members.push(format!("{w}\"roles\":[\"r\"]"));
                format!("{w}{{{}}}{w}", members.join(","))
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The scanner reads every payload inside its subset, and reads it as serde does.
        #[test]
        fn the_fast_path_reads_its_subset_as_serde_does(json in in_subset()) {
            let fast = parse_plain(&json);
            prop_assert!(fast.is_some(), "{}", json);
            prop_assert_eq!(fast.map(Ok), Some(parse_with_serde(&json)));
        }

        /// Wherever the scanner reads a payload, it reads it as the serde path does.
        #[test]
        fn fast_path_agrees_with_serde(json in plainish()) {
            if let Some(fast) = parse_plain(&json) {
                prop_assert_eq!(Ok(fast), parse_with_serde(&json));
            }
            let strict_ok = matches!(
                mcp_guard_core::parse_strict(json.as_bytes()),
                Ok(Value::Object(_))
            );
            prop_assert_eq!(parse(&json).is_ok(), strict_ok);
        }

        /// The typed parse refuses exactly what `parse_strict` refuses as a payload, and the full
        /// claim set built later is the object `parse_strict` gives.
        #[test]
        fn agrees_with_parse_strict(json in jsonish()) {
            let strict = mcp_guard_core::parse_strict(json.as_bytes());
            let strict_ok = matches!(strict, Ok(Value::Object(_)));
            let typed = parse(&json);
            prop_assert_eq!(typed.is_ok(), strict_ok, "{:?} / {:?}", typed, strict);
            // The fast path reads only what the serde path reads the same way.
            if let Some(fast) = parse_plain(&json) {
                prop_assert_eq!(Ok(fast), parse_with_serde(&json));
            }
            if let (Ok(p), Ok(Value::Object(all))) = (typed, strict) {
                for (k, v) in &p.unregistered() {
                    prop_assert_eq!(Some(v), all.get(k));
                }
                // The attributes built later are exactly the unregistered claims.
                let mut attributes = all.clone();
                attributes.retain(|name, _| registered(name).is_none());
                prop_assert_eq!(unregistered_claims(&json), attributes.clone());
                prop_assert_eq!(p.unregistered(), attributes);
                prop_assert_eq!(p.sub.as_deref(), all.get("sub").and_then(Value::as_str));
                prop_assert_eq!(p.exp.flatten(), all.get("exp").and_then(Value::as_i64));
                prop_assert_eq!(p.exp.is_some(), all.contains_key("exp"));
            }
        }
    }
}
