//! A scanner for the plain JSON that tokens almost always hold, used as a fast path in front of
//! serde_json.
//!
//! Even borrowing, serde_json spends about as long on a 233-byte payload as the HMAC of the whole
//! token (docs/PERFORMANCE.md, "Token verification"). This scanner reads only a narrow subset:
//! strings without escapes or control characters, non-negative integers that fit `i64`, `true`,
//! `false`, `null`, and arrays and objects of those, not nested deeper than [`MAX_DEPTH`], with
//! JSON's four whitespace bytes between tokens. It never refuses anything: on the first byte
//! outside that subset (an escape, a fraction, a minus sign, a repeated key, bad syntax, trailing
//! data) its caller gets `None` and hands the whole text to the serde path, which decides. So
//! what is accepted and refused is the serde path's business alone; this only has to give the
//! same result as serde_json on what it does read, which tests check on generated input.

use serde_json::{Map, Value};

/// How deep the fast path follows arrays and objects (the top-level object is depth 1). Deeper
/// input goes to serde_json, whose own limit (128) then applies.
pub(super) const MAX_DEPTH: usize = 8;

/// A scalar in the subset.
#[derive(Debug, PartialEq)]
pub(super) enum Scalar<'a> {
    /// A string with no escapes, borrowed.
    Str(&'a str),
    /// A non-negative integer that fits `i64`.
    Int(i64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// A position in JSON text.
///
/// The small methods are `#[inline]`: they run once or more per byte or token, and without the
/// hint a release build does not inline them across codegen units.
pub(super) struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    /// A scanner at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Scan { text, pos: 0 }
    }

    /// The offset of the next byte.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The text from `start` up to the next byte.
    #[inline]
    pub fn since(&self, start: usize) -> Option<&'a str> {
        self.text.get(start..self.pos)
    }

    /// The next byte.
    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Skips JSON whitespace (exactly the four bytes serde_json skips).
    #[inline]
    pub fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes `byte` if it is next.
    #[inline]
    pub fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.pos += 1)
    }

    /// Whether only whitespace is left.
    #[inline]
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.pos == self.text.len()
    }

    /// A string with no escapes and no control characters, borrowed.
    // Always: since the search says which byte ended it, a release build no longer inlines it
    // on its own, and the call cost 190 instructions a payload (callgrind).
    #[inline(always)]
    pub fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let rest = self.text.as_bytes().get(start..)?;
        // An escape needs decoding and a control character is an error: both go to serde_json.
        let len = plain_string_len(rest)?;
        self.pos = start + len + 1;
        // The text is a `str` and both ends are at an ASCII quote, so this is a char boundary.
        self.text.get(start..start + len)
    }

    /// A key of at most seven bytes, plain, and the `:` right after it, read from one 8-byte
    /// load: a compact payload's keys almost all are. `None` (and the scanner unmoved) for any
    /// other key, or one without its `:` right after, for [`Scan::string`] to read.
    // Always: the member loop of a payload runs it once a claim, in place of a string search and
    // the byte-by-byte `:`. The key's text is left for the caller to take if it needs it: taking
    // it is a call, and a registered claim, named by its word, does not need it.
    #[inline(always)]
    fn short_key(&mut self) -> Option<Key<'a>> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        let chunk: [u8; 8] = bytes.get(self.pos + 1..self.pos + 9)?.try_into().ok()?;
        let word = u64::from_le_bytes(chunk);
        let (len, quote) = stop_in_word(word)?;
        if !quote || bytes.get(self.pos + 2 + len) != Some(&b':') {
            return None;
        }
        let start = self.pos + 1;
        self.pos += len + 3;
        Some(Key::Short {
            // `len` is at most 7: the quote is one of the eight bytes.
            word: KeyWord(word & ((1 << (8 * len)) - 1)),
            text: self.text,
            start,
            len,
        })
    }

    /// A scalar (see [`Scalar`]).
    #[inline]
    pub fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Scalar::Str),
            b'0'..=b'9' => self.integer().map(Scalar::Int),
            b't' => self.literal("true").map(|()| Scalar::Bool(true)),
            b'f' => self.literal("false").map(|()| Scalar::Bool(false)),
            b'n' => self.literal("null").map(|()| Scalar::Null),
            _ => None,
        }
    }

    #[inline]
    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.pos + word.len();
        (self.text.as_bytes().get(self.pos..end)? == word.as_bytes()).then(|| self.pos = end)
    }

    /// A non-negative integer that fits `i64` (see [`Scalar::Int`]).
    #[inline]
    pub fn integer(&mut self) -> Option<i64> {
        let start = self.pos;
        let mut n: u64 = 0;
        // Eight digits at a time while there are eight: `exp`, `iat` and `nbf` have ten, and the
        // digit-by-digit loop alone was the largest line of the payload parse (`perf`).
        while let Some(chunk) = self.text.as_bytes().get(self.pos..self.pos + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let word = u64::from_le_bytes(word);
            if !eight_digits(word) {
                break;
            }
            n = n
                .checked_mul(100_000_000)?
                .checked_add(eight_digits_value(word))?;
            self.pos += 8;
        }
        while let Some(d @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.pos += 1;
        }
        // Beyond `i64` is for serde_json, as an overflow in the loops above is.
        let n = i64::try_from(n).ok()?;
        // A leading zero is not JSON; a fraction or exponent makes a float; both for serde_json.
        // A byte that cannot follow a number is caught by the caller, which expects `,` `]` `}`.
        let leading_zero = self.pos - start > 1 && self.text.as_bytes().get(start) == Some(&b'0');
        if leading_zero || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(n)
    }

    /// The elements of an array, each read by `element`, collected.
    pub fn array<T>(&mut self, mut element: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut out = Vec::new();
        self.elements(|s| {
            out.push(element(s)?);
            Some(())
        })?;
        Some(out)
    }

    /// Consumes `[]` if it is next (no whitespace inside, as compact JSON has it).
    #[inline]
    pub fn empty_array(&mut self) -> bool {
        let empty = self.text.as_bytes().get(self.pos..self.pos + 2) == Some(b"[]");
        if empty {
            self.pos += 2;
        }
        empty
    }

    /// Walks an array: calls `element` positioned at each element, which it must read.
    pub fn elements(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            element(self)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.ws();
                }
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The members of an object: calls `member` with each key, positioned at its value, which
    /// `member` must read. `None` from `member` (a repeated key, say) gives up.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.object_keyed(|s, key| member(s, key.text()?))
    }

    /// [`Scan::object`], with each key as a [`Key`]: a short one as its word.
    #[inline(always)]
    pub fn object_keyed(
        &mut self,
        mut member: impl FnMut(&mut Self, Key<'a>) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = match self.short_key() {
                Some(key) => key,
                None => {
                    let key = self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    Key::Text(key)
                }
            };
            self.ws();
            member(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.ws();
                }
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Any value of the subset as a `Value`, as `parse_strict` would build it; `depth` is that of
    /// the value's container.
    pub fn value(&mut self, depth: usize) -> Option<Value> {
        let mut v = Value::Null;
        self.value_into(depth, &mut v)?;
        Some(v)
    }

    /// [`Scan::value`], written into `out` (a map's slot, say) rather than returned: a returned
    /// `Value` goes through the stack and is copied again.
    pub fn value_into(&mut self, depth: usize, out: &mut Value) -> Option<()> {
        *out = match self.peek()? {
            b'[' if depth < MAX_DEPTH => Value::Array(self.array(|s| s.value(depth + 1))?),
            b'{' if depth < MAX_DEPTH => {
                let mut map = Map::new();
                self.object(|s, key| {
                    // One lookup for both the repeat check and the insert.
                    let serde_json::map::Entry::Vacant(slot) = map.entry(key) else {
                        return None;
                    };
                    s.value_into(depth + 1, slot.insert(Value::Null))
                })?;
                Value::Object(map)
            }
            _ => match self.scalar()? {
                Scalar::Str(s) => Value::String(s.to_owned()),
                Scalar::Int(n) => Value::from(n),
                Scalar::Bool(b) => Value::Bool(b),
                Scalar::Null => Value::Null,
            },
        };
        Some(())
    }

    /// Passes over any value of the subset, building nothing but checking what [`Scan::value`]
    /// checks (no key repeated in an object, the depth); `depth` is that of its container.
    pub fn skip(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'[' if depth < MAX_DEPTH => self.elements(|s| s.skip(depth + 1)),
            b'{' if depth < MAX_DEPTH => {
                // Set up at the first key: an empty object (our tokens' `metadata` when there is
                // none) needs no room for names.
                let mut names: Option<Names<'_>> = None;
                self.object(|s, key| {
                    names.get_or_insert_default().add(key)?;
                    s.skip(depth + 1)
                })
            }
            _ => self.scalar().map(|_| ()),
        }
    }
}

/// Most members of a nested object [`Scan::skip`] checks for repeats; more go to serde_json.
const MAX_NAMES: usize = 16;

/// The names of one object's members so far, to refuse a repeat without building a map.
struct Names<'a> {
    seen: [&'a str; MAX_NAMES],
    len: usize,
}

impl Default for Names<'_> {
    fn default() -> Self {
        Names {
            seen: [""; MAX_NAMES],
            len: 0,
        }
    }
}

impl<'a> Names<'a> {
    /// Adds `name`; `None` if it was already there or there is no room.
    fn add(&mut self, name: &'a str) -> Option<()> {
        if self.seen.get(..self.len)?.contains(&name) {
            return None;
        }
        *self.seen.get_mut(self.len)? = name;
        self.len += 1;
        Some(())
    }
}

/// Whether all eight bytes of `word` are ASCII digits.
#[inline]
fn eight_digits(word: u64) -> bool {
    const NIBBLES: u64 = u64::from_ne_bytes([0xf0; 8]);
    // Digits become 0..=9 with a clear high nibble; adding 6 then sets that nibble exactly for
    // 10..=15. No byte carries into the next: each is at most 15 + 6.
    let x = word ^ u64::from_ne_bytes([b'0'; 8]);
    x & NIBBLES == 0 && x.wrapping_add(u64::from_ne_bytes([6; 8])) & NIBBLES == 0
}

/// The value of eight ASCII digits, the first in the lowest byte of `word` (little-endian), in
/// three multiplications rather than eight: pairs, then fours, then the eight.
#[inline]
fn eight_digits_value(word: u64) -> u64 {
    const PAIR_LOW: u64 = 0x0000_00ff_0000_00ff;
    // 100 and 1_000_000 << 32, then 1 and 10_000 << 32: each lane's weight, summed into the top.
    const FOURS_HIGH: u64 = 100 + (1_000_000 << 32);
    const FOURS_LOW: u64 = 1 + (10_000 << 32);
    let digits = word.wrapping_sub(u64::from_ne_bytes([b'0'; 8]));
    let pairs = digits.wrapping_mul(10).wrapping_add(digits >> 8);
    ((pairs & PAIR_LOW).wrapping_mul(FOURS_HIGH))
        .wrapping_add(((pairs >> 16) & PAIR_LOW).wrapping_mul(FOURS_LOW))
        >> 32
}

/// The index of the first `"`, `\\` or control character in `bytes`.
#[inline]
pub(crate) fn string_end(bytes: &[u8]) -> Option<usize> {
    first_stop(bytes).map(|(at, _)| at)
}

/// The length of a plain string's text: the index of its closing `"`, if that comes before any
/// `\\`, control character or the end of `bytes`.
#[inline]
fn plain_string_len(bytes: &[u8]) -> Option<usize> {
    // Told by the match itself, rather than by reading the byte again: that read would wait on
    // the search, and it sits on the chain every string of a payload waits on.
    first_stop(bytes).and_then(|(at, quote)| quote.then_some(at))
}

/// The index of the first `"`, `\\` or control character in `bytes`, and whether it is `"`.
#[inline]
fn first_stop(bytes: &[u8]) -> Option<(usize, bool)> {
    // Eight bytes at a time, as serde_json does: string bytes are most of a token's payload.
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if let Some((at, quote)) = stop_in_word(u64::from_le_bytes(word)) {
            return Some((offset + at, quote));
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| (offset + i, chunks.remainder().get(i) == Some(&b'"')))
}

/// The index of the first `"`, `\\` or control character among the eight bytes of `v` (the
/// first in its lowest byte), and whether it is `"`.
#[inline(always)]
fn stop_in_word(v: u64) -> Option<(usize, bool)> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    // A high bit in each byte of `x` that is zero. A borrow can also mark a byte above a zero
    // byte, never below one, so the lowest mark is always a real match.
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quotes = zero_bytes(v ^ (ONES * u64::from(b'"')));
    let hits = quotes
        | zero_bytes(v ^ (ONES * u64::from(b'\\')))
        // Below 0x20: subtracting 0x20 borrows into the high bit; bytes >= 0x80 have it set in
        // `v`, so `!v` clears them.
        | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
    if hits == 0 {
        return None;
    }
    // Little-endian: the lowest set bit is the first byte. A false mark in `quotes` there would
    // need a real quote below it, which would be the first stop instead.
    let first = hits & hits.wrapping_neg();
    Some(((hits.trailing_zeros() / 8) as usize, quotes & first != 0))
}

/// An object's key, as [`Scan::object_keyed`] read it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Key<'a> {
    /// A key of at most seven bytes: its word, and where its text is (`len` bytes of `text`
    /// from `start`).
    Short {
        word: KeyWord,
        text: &'a str,
        start: usize,
        len: usize,
    },
    /// Any other key in the subset.
    Text(&'a str),
}

impl<'a> Key<'a> {
    /// The key's text (always there: a short key lies between two ASCII quotes).
    #[inline]
    pub fn text(&self) -> Option<&'a str> {
        match *self {
            Key::Short {
                text, start, len, ..
            } => text.get(start..start + len),
            Key::Text(text) => Some(text),
        }
    }
}

/// A key of at most seven bytes as one number, its first byte lowest and the rest zero: one
/// comparison tells it from a name of that length or less, since a key the scanner reads has no
/// zero byte (it stops at control bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct KeyWord(pub u64);

impl KeyWord {
    /// The word of `name`, at most seven bytes (checked when the constant is built).
    pub const fn of(name: &[u8]) -> u64 {
        assert!(name.len() <= 7, "a key word holds seven bytes");
        let mut word = 0;
        let mut i = name.len();
        while i > 0 {
            i -= 1;
            word = word << 8 | name[i] as u64;
        }
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_passes_over_its_subset_as_serde_json_reads_it() {
        for text in [
            r#"{"a":"x","b":[1,true,false,null,"y"],"c":{"d":{}},"e":[]}"#,
            " { \"a\" :\t[ 0 , 9223372036854775807 ]\r\n} ",
            r#""é ✓""#,
            "0",
        ] {
            let strict = mcp_guard_core::parse_strict(text.as_bytes()).ok();
            assert!(strict.is_some(), "{text}");
            assert_eq!(value(text), strict, "{text}");
            assert!(skips(text), "{text}");
        }
    }

    fn value(text: &str) -> Option<Value> {
        let mut s = Scan::new(text);
        s.ws();
        let v = s.value(0)?;
        s.at_end().then_some(v)
    }

    /// Whether `skip` passes over all of `text`.
    fn skips(text: &str) -> bool {
        let mut s = Scan::new(text);
        s.ws();
        s.skip(0).is_some() && s.at_end()
    }

    #[test]
    fn skipping_checks_what_reading_checks() {
        let many = |n: usize| {
            let members: Vec<String> = (0..n).map(|i| format!("\"k{i}\":{i}")).collect();
            format!("{{\"o\":{{{}}}}}", members.join(","))
        };
        for text in [
            r#"{"a":"x","b":[1,true,false,null,"y"],"c":{"d":{}},"e":[]}"#,
            r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#,
            " { \"a\" :\t[ 0 , 9223372036854775807 ]\r\n} ",
            "[[[[[[[[1]]]]]]]]",
            &many(16),
        ] {
            assert!(skips(text), "{text}");
        }
        // What the reader refuses, and an object with more members than `skip` keeps track of.
        for text in [
            r#"{"a":1,"a":1}"#,
            r#"{"o":{"b":1,"c":2,"b":3}}"#,
            r#"[{"x":[{"y":1,"y":2}]}]"#,
            r#"{"a":"x\"y"}"#,
            "[[[[[[[[[1]]]]]]]]]",
            "[1,]",
            "-1",
            &many(17),
        ] {
            assert!(!skips(text), "{text}");
        }
        // What `skip` passed over is the value's text, ready for `since`.
        let text = r#"{"a":[1,{"b":"c"}],"d":2}"#;
        let mut s = Scan::new(text);
        let mut spans = Vec::new();
        s.object(|s, key| {
            let start = s.position();
            s.skip(1)?;
            spans.push((key, s.since(start)?));
            Some(())
        });
        assert_eq!(spans, [("a", r#"[1,{"b":"c"}]"#), ("d", "2")]);
    }

    #[test]
    fn integers_read_as_serde_json_reads_them() {
        // Every length around the eight-digit steps, with digits that exercise every lane, each
        // followed by every kind of byte that can end (or spoil) a number.
        let digits = "98765432109876543210123456789";
        for len in 1..=digits.len() {
            for first in ['0', '1', '9'] {
                let number = format!("{first}{}", &digits[..len - 1]);
                for end in ["", ",", "]", "}", " ", ".5", "e3", "E3", "x"] {
                    let text = format!("{number}{end}");
                    let mut s = Scan::new(&text);
                    let ours = s.integer();
                    let serde = serde_json::from_str::<Value>(&number)
                        .ok()
                        .and_then(|v| v.as_i64());
                    match ours {
                        // What the scanner reads, it reads as serde_json does, up to its end.
                        Some(n) => {
                            assert_eq!(Some(n), serde, "{text}");
                            assert_eq!(s.pos, number.len(), "{text}");
                            assert!(!matches!(end, ".5" | "e3" | "E3"), "{text}");
                        }
                        // It gives up on a float, a leading zero and anything beyond `i64`.
                        None => assert!(
                            serde.is_none()
                                || (number.len() > 1 && number.starts_with('0'))
                                || matches!(end, ".5" | "e3" | "E3"),
                            "{text}"
                        ),
                    }
                }
            }
        }
        assert_eq!(Scan::new("9223372036854775807").integer(), Some(i64::MAX));
        assert_eq!(Scan::new("9223372036854775808").integer(), None);
        assert_eq!(Scan::new("18446744073709551616").integer(), None);
        assert_eq!(Scan::new("1795665360").integer(), Some(1_795_665_360));
    }

    #[test]
    fn eight_digits_are_recognised_exactly() {
        let word = |b: &[u8; 8]| u64::from_le_bytes(*b);
        assert!(eight_digits(word(b"01234567")));
        assert_eq!(eight_digits_value(word(b"01234567")), 1_234_567);
        assert_eq!(eight_digits_value(word(b"99999999")), 99_999_999);
        assert_eq!(eight_digits_value(word(b"00000000")), 0);
        // Every byte that is not a digit, at every position.
        for byte in (0..=255u8).filter(|b| !b.is_ascii_digit()) {
            for at in 0..8 {
                let mut b = *b"12345678";
                b[at] = byte;
                assert!(!eight_digits(word(&b)), "{byte} at {at}");
            }
        }
        // Every digit at every position.
        for d in b'0'..=b'9' {
            for at in 0..8 {
                let mut b = *b"00000000";
                b[at] = d;
                assert!(eight_digits(word(&b)));
                let want = u64::from(d - b'0') * 10u64.pow(7 - at as u32);
                assert_eq!(eight_digits_value(word(&b)), want, "{d} at {at}");
            }
        }
    }

    #[test]
    fn a_plain_string_ends_only_at_a_quote_before_any_other_stop() {
        let naive = |b: &[u8]| {
            let at = b
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            (b.get(at) == Some(&b'"')).then_some(at)
        };
        let stops = [b'"', b'\\', 0x00, 0x1f, 0x0a];
        for len in 0..20 {
            for &fill in &[b'a', 0x22 ^ 0x01, 0x5c ^ 0x01, 0x80, 0xff] {
                let mut bytes = vec![fill; len];
                assert_eq!(plain_string_len(&bytes), naive(&bytes));
                for at in 0..len {
                    for &first in &stops {
                        bytes[at] = first;
                        // Every stop after the first, so no later quote is taken for the end.
                        for later in at + 1..len {
                            for &second in &stops {
                                bytes[later] = second;
                                assert_eq!(plain_string_len(&bytes), naive(&bytes), "{bytes:?}");
                                bytes[later] = fill;
                            }
                        }
                        assert_eq!(plain_string_len(&bytes), naive(&bytes), "{bytes:?}");
                        bytes[at] = fill;
                    }
                }
            }
        }
    }

    #[test]
    fn string_end_finds_the_first_stop_byte() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        let stops = [b'"', b'\\', 0x00, 0x1f, 0x0a];
        let fill = [b'a', 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xe9, 0xff];
        for len in 0..24 {
            for &f in &fill {
                let mut bytes = vec![f; len];
                assert_eq!(string_end(&bytes), naive(&bytes), "{len} {f}");
                for at in 0..len {
                    for &stop in &stops {
                        bytes[at] = stop;
                        assert_eq!(string_end(&bytes), naive(&bytes), "{len} {f} {at} {stop}");
                        // A second stop after the first must not hide it.
                        if at + 1 < len {
                            bytes[at + 1] = b'"';
                            assert_eq!(string_end(&bytes), Some(at));
                            bytes[at + 1] = f;
                        }
                        bytes[at] = f;
                    }
                }
            }
        }
    }

    /// The key and position that the general path (a string, whitespace, `:`) reads.
    fn general_key(text: &str) -> Option<(&str, usize)> {
        let mut s = Scan::new(text);
        let key = s.string()?;
        s.ws();
        s.eat(b':')?;
        Some((key, s.position()))
    }

    #[test]
    fn a_short_key_is_read_as_the_general_path_reads_it() {
        let fill = [b'a', b'z', b' ', 0x7f, 0x80, 0xff];
        let odd = [b'"', b'\\', 0x00, 0x1f, b':', b' '];
        for len in 0..10 {
            for &f in &fill {
                for at in 0..=len + 2 {
                    for &o in &odd {
                        // `"`, `len` bytes, `":`, a value and more, so that eight bytes
                        // follow the first quote, with one byte (`at`) changed.
                        let mut bytes = vec![b'"'];
                        bytes.extend(std::iter::repeat_n(f, len));
                        bytes.extend_from_slice(b"\":1,\"more\":2}");
                        if let Some(b) = bytes.get_mut(at + 1) {
                            *b = o;
                        }
                        let Ok(text) = std::str::from_utf8(&bytes) else {
                            continue;
                        };
                        let mut s = Scan::new(text);
                        match s.short_key() {
                            Some(Key::Text(_)) => panic!("a short key is read as a word"),
                            Some(key @ Key::Short { word, .. }) => {
                                let key = key.text().unwrap_or_else(|| panic!("{text:?}"));
                                assert_eq!(
                                    Some((key, s.position())),
                                    general_key(text),
                                    "{text:?}"
                                );
                                assert!(key.len() <= 7, "{text:?}");
                                assert_eq!(word, KeyWord(KeyWord::of(key.as_bytes())), "{text:?}");
                            }
                            // Unmoved, and only for a key the general path reads otherwise or
                            // one it reads but that is long, or whose `:` is not right after.
                            None => {
                                assert_eq!(s.position(), 0, "{text:?}");
                                if let Some((key, end)) = general_key(text) {
                                    assert!(key.len() > 7 || end != key.len() + 3, "{text:?}");
                                }
                            }
                        }
                    }
                }
            }
        }
        // Fewer than eight bytes after the quote: the general path's.
        assert!(Scan::new("\"a\":1}").short_key().is_none());
        assert_eq!(general_key("\"a\":1}"), Some(("a", 4)));
    }

    #[test]
    fn an_empty_array_is_consumed_only_when_it_is_exactly_next() {
        for (text, empty, after) in [
            ("[]", true, 2),
            ("[],1", true, 2),
            ("[ ]", false, 0),
            ("[1]", false, 0),
            ("[", false, 0),
            ("{}", false, 0),
        ] {
            let mut s = Scan::new(text);
            assert_eq!(s.empty_array(), empty, "{text}");
            assert_eq!(s.position(), after, "{text}");
        }
    }

    #[test]
    fn gives_up_outside_the_subset() {
        for text in [
            r#""a\"b""#,
            r#""a\u0041""#,
            "\"tab\there\"",
            "-1",
            "-0",
            "01",
            "1.0",
            "1e3",
            "9223372036854775808",
            "tru",
            "nul",
            "[1,]",
            "[1 2]",
            r#"{"a":1,}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            "[[[[[[[[[1]]]]]]]]]",
            "\u{0c}1",
            "\"unterminated",
        ] {
            assert_eq!(value(text), None, "{text}");
            assert!(!skips(text), "{text}");
        }
        // Depth 8 is still read; 9 is for serde_json.
        assert!(value("[[[[[[[[1]]]]]]]]").is_some());
        assert!(skips("[[[[[[[[1]]]]]]]]"));
    }
}
