//! A strict JSON reader: one value, valid UTF-8, and no object with a repeated key, at any depth.
//!
//! Parsers disagree on which of two repeated keys wins, so a message holding `"name"` twice could be
//! checked under one name and run under the other. Such a message is refused outright.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Value};

/// Why bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StrictJsonError {
    /// Not one well-formed JSON value (includes trailing data and nesting deeper than 128).
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// An object names the same key twice.
    #[error("duplicate key `{0}`")]
    DuplicateKey(String),
}

const DUPLICATE_MARK: &str = "\u{0}duplicate key\u{0}";

/// Parses exactly one JSON value from `bytes`, refusing repeated keys anywhere.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue::deserialize(&mut de).map_err(map_error)?;
    de.end().map_err(map_error)?;
    Ok(value.0)
}

fn map_error(e: serde_json::Error) -> StrictJsonError {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix(DUPLICATE_MARK) {
        // serde_json appends " at line L column C"; the key is between the marks.
        let key = rest.split(DUPLICATE_MARK).next().unwrap_or_default();
        return StrictJsonError::DuplicateKey(key.to_owned());
    }
    StrictJsonError::Syntax(text)
}

/// A `Value` deserialized with [`parse_strict`]'s rule that a repeated key in any object is an
/// error; for parsers that build part of a document themselves (the token claims).
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // One search of the map per key: the free slot found is the one filled.
            match out.entry(key) {
                Entry::Occupied(taken) => {
                    return Err(de::Error::custom(format_args!(
                        "{DUPLICATE_MARK}{}{DUPLICATE_MARK}",
                        taken.key()
                    )));
                }
                Entry::Vacant(slot) => {
                    let StrictValue(v) = map.next_value()?;
                    slot.insert(v);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_refused_at_any_depth() {
        assert_eq!(
            parse_strict(br#"{"a":1,"a":2}"#),
            Err(StrictJsonError::DuplicateKey("a".into()))
        );
        assert_eq!(
            parse_strict(br#"{"p":{"x":[{"n":1,"n":1}]}}"#),
            Err(StrictJsonError::DuplicateKey("n".into()))
        );
        // Escapes are decoded before comparing, so "\u0061" repeats "a".
        assert_eq!(
            parse_strict(br#"{"a":1,"\u0061":2}"#),
            Err(StrictJsonError::DuplicateKey("a".into()))
        );
        assert!(parse_strict(br#"{"a":1,"b":{"a":2}}"#).is_ok());
    }

    #[test]
    fn one_value_only() {
        assert!(matches!(
            parse_strict(b"{} {}"),
            Err(StrictJsonError::Syntax(_))
        ));
        assert!(matches!(
            parse_strict(b"{}\n{}"),
            Err(StrictJsonError::Syntax(_))
        ));
        assert!(matches!(parse_strict(b""), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(
            parse_strict(b"{\"a\":\"\xff\"}"),
            Err(StrictJsonError::Syntax(_))
        ));
        assert!(parse_strict(b" {} \n").is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse_strict(deep.as_bytes()),
            Err(StrictJsonError::Syntax(_))
        ));
    }
}
