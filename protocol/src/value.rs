//! Canonical encoding of free-form, JSON-like body data.
//!
//! Bodies carry data that agents write as JSON. So that equal data always hashes equal, a body is
//! stored as the canonical CBOR of its JSON value (see `docs/PROTOCOL.md`, "Body values"):
//!
//! - `null`, `true`, `false` are CBOR simple values 22, 21, 20;
//! - integers in `[-2^63, 2^64 - 1]` are CBOR integers in shortest form;
//! - other numbers are finite floats in RFC 8949 preferred serialisation (the shortest of
//!   half, single or double precision that holds the value exactly); `1` and `1.0` are different
//!   values and hash differently;
//! - strings are CBOR text, arrays definite-length arrays;
//! - objects are definite-length maps with text keys sorted by their encoded bytes (shorter keys
//!   first, then bytewise); duplicate keys are an error, not "last one wins".
//!
//! Tags, byte strings, undefined and non-text keys never occur, and nesting is capped at
//! [`MAX_VALUE_DEPTH`].

use std::fmt;

use ciborium::Value;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::cbor::{self, CborError};

/// Deepest nesting of arrays and objects in a body value; leaves room under
/// [`cbor::MAX_DEPTH`] for the entry envelope.
pub const MAX_VALUE_DEPTH: usize = 48;

/// Why a body value is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The text is not JSON, or breaks one of our JSON rules.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The bytes are not canonical CBOR.
    #[error(transparent)]
    Cbor(#[from] CborError),
    /// Canonical CBOR that falls outside the JSON data model.
    #[error("body value at {path} is not JSON-like: {problem}")]
    NotJsonLike { path: String, problem: &'static str },
}

/// Parses JSON text (rejecting duplicate object keys) and returns its canonical CBOR bytes.
pub fn json_text_to_canonical(text: &str) -> Result<Vec<u8>, ValueError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = deserializer
        .deserialize_any(CanonicalVisitor { depth: 0 })
        .map_err(|error| ValueError::Json(error.to_string()))?;
    deserializer
        .end()
        .map_err(|error| ValueError::Json(error.to_string()))?;
    Ok(cbor::encode(&value))
}

/// Converts a parsed JSON value to canonical CBOR bytes.
pub fn json_to_canonical(json: &serde_json::Value) -> Result<Vec<u8>, ValueError> {
    json_text_to_canonical(&json.to_string())
}

/// Decodes canonical body bytes back into JSON, checking they are canonical and JSON-like.
pub fn canonical_to_json(bytes: &[u8]) -> Result<serde_json::Value, ValueError> {
    let value = cbor::decode_canonical(bytes)?;
    to_json(&value, &mut String::from("$"), 0)
}

fn to_json(
    value: &Value,
    path: &mut String,
    depth: usize,
) -> Result<serde_json::Value, ValueError> {
    let not_json = |path: &str, problem| ValueError::NotJsonLike {
        path: path.to_string(),
        problem,
    };
    if depth > MAX_VALUE_DEPTH {
        return Err(not_json(path, "nested too deeply"));
    }
    Ok(match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(flag) => serde_json::Value::Bool(*flag),
        Value::Integer(integer) => {
            let wide = i128::from(*integer);
            if let Ok(unsigned) = u64::try_from(wide) {
                serde_json::Value::from(unsigned)
            } else if let Ok(signed) = i64::try_from(wide) {
                serde_json::Value::from(signed)
            } else {
                return Err(not_json(path, "integer outside [-2^63, 2^64 - 1]"));
            }
        }
        Value::Float(float) => match serde_json::Number::from_f64(*float) {
            Some(number) => serde_json::Value::Number(number),
            None => return Err(not_json(path, "NaN or infinite float")),
        },
        Value::Text(text) => serde_json::Value::String(text.clone()),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                out.push(to_json(item, path, depth + 1)?);
                path.truncate(len);
            }
            serde_json::Value::Array(out)
        }
        Value::Map(pairs) => {
            let mut out = serde_json::Map::with_capacity(pairs.len());
            for (key, item) in pairs {
                let Value::Text(key) = key else {
                    return Err(not_json(path, "object key is not text"));
                };
                let len = path.len();
                path.push('.');
                path.push_str(key);
                out.insert(key.clone(), to_json(item, path, depth + 1)?);
                path.truncate(len);
            }
            serde_json::Value::Object(out)
        }
        Value::Bytes(_) => return Err(not_json(path, "byte strings are not JSON")),
        Value::Tag(..) => return Err(not_json(path, "CBOR tags are not allowed")),
        _ => return Err(not_json(path, "unsupported CBOR value")),
    })
}

/// Builds a canonical `ciborium::Value` straight from the JSON token stream, so duplicate keys
/// are seen (a `serde_json::Value` would silently keep the last one).
struct CanonicalVisitor {
    depth: usize,
}

struct CanonicalSeed {
    depth: usize,
}

impl<'de> de::DeserializeSeed<'de> for CanonicalSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(CanonicalVisitor { depth: self.depth })
    }
}

impl<'de> Visitor<'de> for CanonicalVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Value, E> {
        Ok(Value::Bool(flag))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Value, E> {
        Ok(Value::Integer(number.into()))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Value, E> {
        Ok(Value::Integer(number.into()))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Value, E> {
        if number.is_finite() {
            Ok(Value::Float(number))
        } else {
            Err(E::custom("numbers must be finite"))
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
        Ok(Value::Text(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Value, E> {
        Ok(Value::Text(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.nested::<A::Error>()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(CanonicalSeed { depth })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.nested::<A::Error>()?;
        let mut pairs: Vec<(Vec<u8>, Value, Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(CanonicalSeed { depth })?;
            let key = Value::Text(key);
            pairs.push((cbor::encode(&key), key, value));
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let duplicate = pairs.windows(2).find_map(|pair| match pair {
            [(a, Value::Text(key), _), (b, _, _)] if a == b => Some(key.clone()),
            _ => None,
        });
        if let Some(key) = duplicate {
            return Err(de::Error::custom(format!("duplicate object key {key:?}")));
        }
        Ok(Value::Map(
            pairs
                .into_iter()
                .map(|(_, key, value)| (key, value))
                .collect(),
        ))
    }
}

impl CanonicalVisitor {
    fn nested<E: de::Error>(&self) -> Result<usize, E> {
        if self.depth >= MAX_VALUE_DEPTH {
            return Err(E::custom(format!(
                "arrays and objects nest deeper than {MAX_VALUE_DEPTH} levels"
            )));
        }
        Ok(self.depth + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_does_not_change_the_bytes() {
        let a = json_text_to_canonical(r#"{"b": 1, "a": [true, null], "aa": "x"}"#).unwrap();
        let b = json_text_to_canonical(r#"{"aa":"x","a":[true,null],"b":1}"#).unwrap();
        assert_eq!(a, b);
        // Shorter keys sort first: "a", "b", "aa".
        let json = canonical_to_json(&a).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn duplicate_keys_are_an_error() {
        let err = json_text_to_canonical(r#"{"a": 1, "a": 2}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate object key \"a\""), "{err}");
    }

    #[test]
    fn numbers_keep_their_kind() {
        let integer = json_text_to_canonical("1").unwrap();
        let float = json_text_to_canonical("1.0").unwrap();
        assert_eq!(integer, vec![0x01]);
        assert_eq!(float, vec![0xf9, 0x3c, 0x00]);
        assert_eq!(canonical_to_json(&float).unwrap(), serde_json::json!(1.0));
        assert_eq!(
            canonical_to_json(&json_text_to_canonical("-9223372036854775808").unwrap()).unwrap(),
            serde_json::json!(i64::MIN)
        );
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let text = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(json_text_to_canonical(&text).is_err());
    }

    #[test]
    fn non_json_cbor_is_named_with_its_path() {
        // {"a": h'00'}
        let bytes = [0xa1, 0x61, b'a', 0x41, 0x00];
        let err = canonical_to_json(&bytes).unwrap_err().to_string();
        assert!(err.contains("$.a") && err.contains("byte strings"), "{err}");
    }

    #[test]
    fn trailing_json_is_an_error() {
        assert!(json_text_to_canonical("1 2").is_err());
    }
}
