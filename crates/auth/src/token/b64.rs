//! Unpadded base64url decoding for the three parts of a JWT, accepting exactly what the `base64`
//! crate's `URL_SAFE_NO_PAD` engine accepts.
//!
//! Base64 decoding was about 13% of an HS256 verification with that engine (docs/PERFORMANCE.md,
//! "Token verification"). `base64-simd` decodes with AVX2 or SSE4.1 where the CPU has them
//! (detected at run time) and is strict in the same way: only the 64 characters `A-Z a-z 0-9 - _`,
//! no `=`, a length that is not 1 more than a multiple of 4, and zero bits below the last
//! character's share of the final byte (one encoding per value). Tests compare the two engines
//! on generated input.

/// How many bytes `len` characters decode to, or `None` for a length no encoding has.
#[inline]
pub(super) fn decoded_len(len: usize) -> Option<usize> {
    match len % 4 {
        1 => None,
        // 2 characters give 1 byte, 3 give 2: 6 bits each, rounded down to whole bytes.
        r => Some(len / 4 * 3 + r.saturating_sub(1)),
    }
}

/// Decodes `text` into `out`, which must be exactly [`decoded_len`] bytes long. `None` when
/// `text` is not unpadded, canonical base64url (or `out` has the wrong length).
#[inline]
pub(super) fn decode_into(text: &[u8], out: &mut [u8]) -> Option<()> {
    if decoded_len(text.len())? != out.len() {
        return None;
    }
    base64_simd::URL_SAFE_NO_PAD
        .decode(text, base64_simd::Out::from_slice(out))
        .ok()
        .map(|_| ())
}

/// Decodes `text` into the front of `buf` when it fits, so a small part (a header, a signature)
/// costs no allocation, and into `spill` when it does not. `None` when it is not unpadded,
/// canonical base64url.
pub(super) fn decode<'b>(
    text: &str,
    buf: &'b mut [u8],
    spill: &'b mut Vec<u8>,
) -> Option<&'b [u8]> {
    let len = decoded_len(text.len())?;
    let out = match buf.get_mut(..len) {
        Some(out) => out,
        None => {
            spill.resize(len, 0);
            spill.as_mut_slice()
        }
    };
    decode_into(text.as_bytes(), out)?;
    Some(out)
}

/// The room [`decode_padded`] needs for a text it pads: a text longer than this less the
/// padding decodes unpadded.
pub(super) const PADDED_MAX: usize = 512;

/// [`decode`], with the characters the SIMD loop leaves over decoded by it too: `base64-simd`
/// decodes 32 characters at a time while at least 38 are left, and the last 6 to 37 one group
/// at a time, which took about a third of the decoding of our 311-character payloads
/// (callgrind). So `text` is copied into `room`, padded with `A`s (zero bits) to 6 past a
/// multiple of 32, and decoded there in place: only padding is left to the slow loop. A text
/// too long for `room` decodes into `spill`.
pub(super) fn decode_padded<'b>(
    text: &str,
    room: &'b mut [u8; PADDED_MAX],
    spill: &'b mut Vec<u8>,
) -> Option<&'b [u8]> {
    const CHUNK: usize = 32;
    const LEFT_OVER: usize = 6;
    let len = decoded_len(text.len())?;
    let padded_len = text.len().div_ceil(CHUNK) * CHUNK + LEFT_OVER;
    let Some(padded) = room.get_mut(..padded_len) else {
        return decode(text, &mut [], spill);
    };
    let (copy, padding) = padded.split_at_mut(text.len());
    copy.copy_from_slice(text.as_bytes());
    padding.fill(b'A');
    // The padding makes a last partial group whole, so the decoder no longer sees the bits its
    // last character has beyond the bytes it ends: checked here, as the decoder checks them.
    canonical_tail(text.as_bytes())?;
    let decoded: &'b [u8] = base64_simd::URL_SAFE_NO_PAD.decode_inplace(padded).ok()?;
    decoded.get(..len)
}

/// Whether the last character of an unpadded encoding has no bits beyond the last byte it ends
/// (one encoding per value): the low 4 bits after 2 characters of a group, the low 2 after 3.
fn canonical_tail(text: &[u8]) -> Option<()> {
    let unused = match text.len() % 4 {
        2 => 0x0f,
        3 => 0x03,
        _ => return Some(()),
    };
    let value = match *text.last()? {
        c @ b'A'..=b'Z' => c - b'A',
        c @ b'a'..=b'z' => c - b'a' + 26,
        c @ b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    (value & unused == 0).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    fn ours(text: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0; decoded_len(text.len())?];
        decode_into(text, &mut out)?;
        Some(out)
    }

    /// Through [`decode_padded`].
    fn padded(text: &str) -> Option<Vec<u8>> {
        let mut room = [0u8; PADDED_MAX];
        let mut spill = Vec::new();
        decode_padded(text, &mut room, &mut spill).map(<[u8]>::to_vec)
    }

    /// Through [`decode`] with no room on the stack, so always into the spill vector.
    fn spilled(text: &str) -> Option<Vec<u8>> {
        let mut spill = Vec::new();
        decode(text, &mut [], &mut spill).map(<[u8]>::to_vec)
    }

    fn engine(text: &[u8]) -> Option<Vec<u8>> {
        URL_SAFE_NO_PAD.decode(text).ok()
    }

    #[test]
    fn round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).rev().chain(0..=255).collect();
        for len in 0..data.len() {
            let bytes = &data[..len];
            let text = URL_SAFE_NO_PAD.encode(bytes);
            assert_eq!(ours(text.as_bytes()).as_deref(), Some(bytes), "{len}");
            let mut buf = [0u8; 64];
            let mut spill = Vec::new();
            assert_eq!(decode(&text, &mut buf, &mut spill), Some(bytes), "{len}");
            assert_eq!(spilled(&text).as_deref(), Some(bytes), "{len}");
            assert_eq!(padded(&text).as_deref(), Some(bytes), "{len}");
        }
    }

    #[test]
    fn refuses_what_the_engine_refuses() {
        for text in [
            "A", "AAAAA", "AB", "AAC", "AA==", "AAA=", "AA=A", "QUJD+", "QUJD/A", "QU JD", "QUJD.",
            "QUJD\n", "QUJDé", "\u{0}AAA",
        ] {
            assert_eq!(engine(text.as_bytes()), None, "the engine accepts {text:?}");
            assert_eq!(ours(text.as_bytes()), None, "{text:?}");
            assert_eq!(spilled(text), None, "{text:?}");
            assert_eq!(padded(text), None, "{text:?}");
        }
        // Every byte outside the alphabet, in every position of a group and of both tails.
        for byte in 0..=255u8 {
            let valid = byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_';
            for len in [2, 3, 4, 6, 7, 8] {
                for at in 0..len {
                    let mut text = vec![b'A'; len];
                    text[at] = byte;
                    assert_eq!(ours(&text), engine(&text), "{byte} at {at} of {len}");
                    let padded_text = std::str::from_utf8(&text).map(padded);
                    if let Ok(p) = padded_text {
                        assert_eq!(p, engine(&text), "{byte} at {at} of {len}");
                    }
                    if !valid {
                        assert_eq!(ours(&text), None);
                    }
                }
            }
        }
        // Wrong output length for `decode_into`.
        assert_eq!(decode_into(b"AAAA", &mut [0u8; 2]), None);
        assert_eq!(decode_into(b"AAAA", &mut [0u8; 4]), None);
    }

    #[test]
    fn only_the_canonical_last_character() {
        // "QQ" is the only encoding of "A"; "QR".."Q_" differ only in bits that are dropped.
        for tail in 0..64u8 {
            let c =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[tail as usize];
            for prefix in [&b"Q"[..], b"QU", b"QUJDQ", b"QUJDQU"] {
                let mut text = prefix.to_vec();
                text.push(c);
                assert_eq!(
                    ours(&text),
                    engine(&text),
                    "{}",
                    String::from_utf8_lossy(&text)
                );
                let text = String::from_utf8_lossy(&text).into_owned();
                assert_eq!(padded(&text), engine(text.as_bytes()), "{text}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Any text: the same bytes, or a refusal from both.
        #[test]
        fn agrees_with_the_engine(text in "[A-Za-z0-9_=+/.-]{0,40}") {
            prop_assert_eq!(ours(text.as_bytes()), engine(text.as_bytes()));
            prop_assert_eq!(spilled(&text), engine(text.as_bytes()));
            prop_assert_eq!(padded(&text), engine(text.as_bytes()));
        }

        /// Valid encodings with one byte changed to anything.
        #[test]
        fn agrees_on_near_misses(
            data in prop::collection::vec(any::<u8>(), 0..48),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut text = URL_SAFE_NO_PAD.encode(&data).into_bytes();
            prop_assert_eq!(ours(&text), Some(data));
            if !text.is_empty() {
                let i = at.index(text.len());
                text[i] = byte;
            }
            prop_assert_eq!(ours(&text), engine(&text));
            if let Ok(t) = std::str::from_utf8(&text) {
                prop_assert_eq!(padded(t), engine(&text));
            }
        }
    }
}
