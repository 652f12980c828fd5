//! Canonical encoding of free-form, JSON-like body data.
//!
//! Bodies carry data that agents write as JSON. So that equal data always hashes equal, in any
//! language, a body is stored as the canonical CBOR of its JSON value (see `docs/PROTOCOL.md`
//! §4, "Body values"):
//!
//! - `null`, `true`, `false` are CBOR simple values 22, 21, 20;
//! - a number written without fraction or exponent is an integer: it must lie in
//!   `[-2^63, 2^64 - 1]` and becomes a CBOR integer in shortest form (`-0` is 0);
//! - any other number is the double nearest to its decimal value (correct rounding; too large
//!   for a double is an error), written as the shortest of half, single or double precision
//!   that holds it exactly; `1` and `1.0` are different values and hash differently;
//! - strings are CBOR text, arrays definite-length arrays;
//! - objects are definite-length maps with text keys sorted by their encoded bytes (shorter keys
//!   first, then bytewise); duplicate keys are an error, not "last one wins".
//!
//! Tags, byte strings, undefined, NaN and infinities never occur, and nesting is capped at
//! [`MAX_VALUE_DEPTH`]. JSON text is read by our own reader (`json.rs`), because serde_json's
//! parser loses the number syntax, rounds some floats wrongly and keeps the last duplicate.

use ciborium::Value;

use crate::cbor::{self, CborError};

mod json;

/// Deepest nesting of arrays and objects in a body value; leaves room under
/// [`cbor::MAX_DEPTH`] for the entry envelope.
pub const MAX_VALUE_DEPTH: usize = 48;

/// Smallest and largest integer a body may hold (the range of `i64` and `u64` together).
const MIN_INTEGER: i128 = i64::MIN as i128;
const MAX_INTEGER: i128 = u64::MAX as i128;

/// Why a body value is not acceptable. Every variant after `Syntax` names the value's path
/// (`$` is the whole value, then `.key` and `[index]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The text is not JSON.
    #[error("invalid JSON at line {line}, column {column}: {problem}")]
    Syntax {
        line: usize,
        column: usize,
        problem: &'static str,
    },
    /// An object with the same key twice: which one a reader keeps is not defined.
    #[error("duplicate key {key:?} in the object at {path}: each key may appear only once")]
    DuplicateKey { path: String, key: String },
    /// An integer outside the body range, or a float too large for a double.
    #[error("number {number} at {path} cannot be stored: {problem}")]
    NumberOutOfRange {
        path: String,
        number: String,
        problem: &'static str,
    },
    /// Arrays and objects nested too deeply.
    #[error("the value at {path} nests arrays and objects deeper than {max} levels")]
    TooDeep { path: String, max: usize },
    /// The bytes are not canonical CBOR.
    #[error(transparent)]
    Cbor(#[from] CborError),
    /// Canonical CBOR that falls outside the JSON data model.
    #[error("body value at {path} is not JSON-like: {problem}")]
    NotJsonLike { path: String, problem: &'static str },
}

impl ValueError {
    /// The path of the offending value without the leading `$.` (`lease_ms`, `tags[2]`), for
    /// an API error's `field`; `None` for syntax errors and for the value as a whole.
    pub fn field(&self) -> Option<&str> {
        let path = match self {
            ValueError::DuplicateKey { path, .. }
            | ValueError::NumberOutOfRange { path, .. }
            | ValueError::TooDeep { path, .. }
            | ValueError::NotJsonLike { path, .. } => path,
            ValueError::Syntax { .. } | ValueError::Cbor(_) => return None,
        };
        path.strip_prefix("$.")
            .or_else(|| path.strip_prefix('$'))
            .filter(|field| !field.is_empty())
    }
}

/// Parses JSON text under the body rules and returns its canonical CBOR bytes.
pub fn json_text_to_canonical(text: &str) -> Result<Vec<u8>, ValueError> {
    json_to_canonical(&json::parse(text, MAX_VALUE_DEPTH)?)
}

/// Parses a JSON request under the body rules (number syntax, exact integers, correctly rounded
/// floats, no duplicate keys at any depth) into a `serde_json::Value` that keeps what the text
/// said: an integer stays an integer, `-0` is 0. `max_depth` is [`MAX_VALUE_DEPTH`] plus the
/// levels the request wraps around a body.
pub fn parse_json_request(bytes: &[u8], max_depth: usize) -> Result<serde_json::Value, ValueError> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        let before = bytes.get(..error.valid_up_to()).unwrap_or_default();
        ValueError::Syntax {
            line: before.iter().filter(|byte| **byte == b'\n').count() + 1,
            column: before
                .rsplit(|byte| *byte == b'\n')
                .next()
                .map_or(0, <[u8]>::len)
                + 1,
            problem: "the text is not UTF-8",
        }
    })?;
    json::parse(text, max_depth)
}

/// Converts a parsed JSON value to canonical CBOR bytes.
pub fn json_to_canonical(json: &serde_json::Value) -> Result<Vec<u8>, ValueError> {
    Ok(cbor::encode(&to_cbor(json, &mut String::from("$"), 0)?))
}

/// Decodes canonical body bytes back into JSON, checking they are canonical and JSON-like.
pub fn canonical_to_json(bytes: &[u8]) -> Result<serde_json::Value, ValueError> {
    let value = cbor::decode_canonical(bytes)?;
    to_json(&value, &mut String::from("$"), 0)
}

/// Appends `.key` to a path, or `["key"]` when the key is not a plain word.
fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push_str(&format!("[{}]", serde_json::Value::from(key)));
    }
}

/// `depth` is the number of arrays and objects around `value`.
fn to_cbor(
    value: &serde_json::Value,
    path: &mut String,
    depth: usize,
) -> Result<Value, ValueError> {
    let too_deep = |path: &str| ValueError::TooDeep {
        path: path.to_owned(),
        max: MAX_VALUE_DEPTH,
    };
    Ok(match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(flag) => Value::Bool(*flag),
        serde_json::Value::Number(number) => {
            if let Some(unsigned) = number.as_u64() {
                Value::Integer(unsigned.into())
            } else if let Some(signed) = number.as_i64() {
                Value::Integer(signed.into())
            } else {
                match number.as_f64().filter(|float| float.is_finite()) {
                    Some(float) => Value::Float(float),
                    None => {
                        return Err(ValueError::NumberOutOfRange {
                            path: path.clone(),
                            number: number.to_string(),
                            problem: "not a finite double",
                        })
                    }
                }
            }
        }
        serde_json::Value::String(text) => Value::Text(text.clone()),
        serde_json::Value::Array(items) => {
            if depth >= MAX_VALUE_DEPTH {
                return Err(too_deep(path));
            }
            let mut out = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                out.push(to_cbor(item, path, depth + 1)?);
                path.truncate(len);
            }
            Value::Array(out)
        }
        serde_json::Value::Object(map) => {
            if depth >= MAX_VALUE_DEPTH {
                return Err(too_deep(path));
            }
            let mut pairs: Vec<(Vec<u8>, Value, Value)> = Vec::with_capacity(map.len());
            for (key, item) in map {
                let len = path.len();
                push_key(path, key);
                let item = to_cbor(item, path, depth + 1)?;
                path.truncate(len);
                let key = Value::Text(key.clone());
                pairs.push((cbor::encode(&key), key, item));
            }
            // RFC 8949 §4.2.1: keys in the order of their encoded bytes.
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(
                pairs
                    .into_iter()
                    .map(|(_, key, item)| (key, item))
                    .collect(),
            )
        }
    })
}

/// `depth` is the number of arrays and maps around `value`.
fn to_json(
    value: &Value,
    path: &mut String,
    depth: usize,
) -> Result<serde_json::Value, ValueError> {
    let not_json = |path: &str, problem| ValueError::NotJsonLike {
        path: path.to_string(),
        problem,
    };
    let nested = matches!(value, Value::Array(_) | Value::Map(_));
    if nested && depth >= MAX_VALUE_DEPTH {
        return Err(ValueError::TooDeep {
            path: path.clone(),
            max: MAX_VALUE_DEPTH,
        });
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
        // Non-shortest floats never get here: `decode_canonical` re-encodes and compares.
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
                push_key(path, key);
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

#[cfg(test)]
mod tests;
