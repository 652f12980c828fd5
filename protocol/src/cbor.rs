//! Strict canonical CBOR on top of ciborium.
//!
//! ciborium encodes deterministically for the shapes we use (shortest-form integers and lengths,
//! definite lengths, preferred float serialisation), but its decoder is lenient: it accepts
//! non-minimal integers, indefinite lengths and duplicate map keys. So every decode here is
//! *decode, re-encode, compare*: input is accepted only when it is exactly the bytes our encoder
//! would produce for the decoded value. Maps must also have strictly ascending keys by their
//! encoded bytes (RFC 8949 §4.2.1), which rules out duplicates.
//!
//! [`item_len`] walks CBOR heads without building values; it finds where one item of a CBOR
//! sequence ends, so a stream (an export file) can be split before it is parsed.

use ciborium::Value;

/// Deepest nesting accepted by [`item_len`]; deeper input is refused rather than walked.
/// Entries nest three levels; bodies get the rest of the budget.
pub const MAX_DEPTH: usize = 64;

/// Why bytes are not acceptable canonical CBOR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The input ended inside an item.
    #[error("truncated CBOR: the item needs more bytes than the {available} available")]
    Truncated { available: usize },
    /// Bytes that are not well-formed CBOR.
    #[error("malformed CBOR at byte {offset}: {problem}")]
    Malformed {
        offset: usize,
        problem: &'static str,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("CBOR nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Well-formed CBOR that is not in canonical form.
    #[error("non-canonical CBOR: differs from the canonical encoding at byte {offset}")]
    NotCanonical { offset: usize },
    /// Extra bytes after the one expected item.
    #[error("{extra} unexpected trailing bytes after the CBOR item")]
    TrailingBytes { extra: usize },
    /// A map whose keys are not in strictly ascending canonical order.
    #[error("map keys are duplicated or not sorted by their encoded bytes")]
    UnsortedMap,
}

/// Returns the length of the first complete CBOR item in `bytes`, `Ok(None)` when the buffer
/// holds only the start of an item.
///
/// Indefinite lengths, reserved additional-information values and nesting past [`MAX_DEPTH`] are
/// errors: none of them can occur in canonical Plexus data.
pub fn item_len(bytes: &[u8]) -> Result<Option<usize>, CborError> {
    // Stack of "items still to read" per open container; the outermost level expects one item.
    let mut pending: Vec<u64> = Vec::with_capacity(8);
    pending.push(1);
    let mut offset = 0usize;
    while let Some(remaining) = pending.last_mut() {
        if *remaining == 0 {
            pending.pop();
            continue;
        }
        *remaining -= 1;
        let Some(&initial) = bytes.get(offset) else {
            return Ok(None);
        };
        let major = initial >> 5;
        let info = initial & 0x1f;
        let head_start = offset;
        offset += 1;
        let argument: u64 = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let width = 1usize << (info - 24);
                let Some(arg_bytes) = bytes.get(offset..offset + width) else {
                    return Ok(None);
                };
                offset += width;
                arg_bytes
                    .iter()
                    .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))
            }
            28..=30 => {
                return Err(CborError::Malformed {
                    offset: head_start,
                    problem: "reserved additional information value",
                })
            }
            _ => {
                return Err(CborError::Malformed {
                    offset: head_start,
                    problem: "indefinite length or break",
                })
            }
        };
        match major {
            2 | 3 => {
                let Some(end) = usize::try_from(argument)
                    .ok()
                    .and_then(|len| offset.checked_add(len))
                else {
                    return Ok(None);
                };
                if end > bytes.len() {
                    return Ok(None);
                }
                offset = end;
            }
            4..=6 => {
                if pending.len() >= MAX_DEPTH {
                    return Err(CborError::TooDeep);
                }
                let children = match major {
                    4 => argument,
                    5 => argument.saturating_mul(2),
                    _ => 1,
                };
                pending.push(children);
            }
            // Integers (0, 1) and simple values or floats (7) are complete after their head.
            _ => {}
        }
    }
    Ok(Some(offset))
}

/// Decodes exactly one canonical CBOR item from `bytes`.
pub fn decode_canonical(bytes: &[u8]) -> Result<Value, CborError> {
    let len = item_len(bytes)?.ok_or(CborError::Truncated {
        available: bytes.len(),
    })?;
    if len != bytes.len() {
        return Err(CborError::TrailingBytes {
            extra: bytes.len() - len,
        });
    }
    let mut reader = bytes;
    let value: Value = ciborium::from_reader(&mut reader).map_err(|_| CborError::Malformed {
        offset: bytes.len() - reader.len(),
        problem: "ciborium could not decode the item",
    })?;
    let reencoded = encode(&value);
    if reencoded != bytes {
        let offset = reencoded
            .iter()
            .zip(bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(reencoded.len().min(bytes.len()));
        return Err(CborError::NotCanonical { offset });
    }
    check_map_order(&value, 0)?;
    Ok(value)
}

/// Encodes a value with ciborium. Writing into a `Vec` cannot fail for the value types we build
/// (no serde errors are possible for `ciborium::Value`), so failures are impossible in practice;
/// the empty-vector fallback keeps this function total without a panic.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    if ciborium::into_writer(value, &mut out).is_err() {
        out.clear();
    }
    out
}

fn check_map_order(value: &Value, depth: usize) -> Result<(), CborError> {
    if depth > MAX_DEPTH {
        return Err(CborError::TooDeep);
    }
    match value {
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| check_map_order(item, depth + 1)),
        Value::Map(pairs) => {
            let mut previous: Option<Vec<u8>> = None;
            for (key, item) in pairs {
                let key_bytes = encode(key);
                if let Some(previous) = &previous {
                    // RFC 8949 §4.2.1: keys ascend by their encoded bytes, compared bytewise.
                    if previous.as_slice() >= key_bytes.as_slice() {
                        return Err(CborError::UnsortedMap);
                    }
                }
                previous = Some(key_bytes);
                check_map_order(key, depth + 1)?;
                check_map_order(item, depth + 1)?;
            }
            Ok(())
        }
        Value::Tag(_, inner) => check_map_order(inner, depth + 1),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_len_finds_item_boundaries() {
        // [1, "ab", h'00'] followed by another item.
        let bytes = [0x83, 0x01, 0x62, b'a', b'b', 0x41, 0x00, 0x05];
        assert_eq!(item_len(&bytes), Ok(Some(7)));
        assert_eq!(item_len(&bytes[..6]), Ok(None));
        assert_eq!(item_len(&[]), Ok(None));
    }

    #[test]
    fn indefinite_lengths_are_refused() {
        assert!(matches!(
            item_len(&[0x9f, 0x01, 0xff]),
            Err(CborError::Malformed { offset: 0, .. })
        ));
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let bytes = vec![0x81; 10_000];
        assert_eq!(item_len(&bytes), Err(CborError::TooDeep));
    }

    #[test]
    fn non_minimal_integers_are_not_canonical() {
        // 1 encoded with a one-byte argument.
        assert_eq!(
            decode_canonical(&[0x18, 0x01]),
            Err(CborError::NotCanonical { offset: 0 })
        );
        assert_eq!(decode_canonical(&[0x01]), Ok(Value::Integer(1.into())));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        assert_eq!(
            decode_canonical(&[0x01, 0x02]),
            Err(CborError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn duplicate_and_unsorted_map_keys_are_refused() {
        // {"a": 1, "a": 2}
        let duplicate = [0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x02];
        assert_eq!(decode_canonical(&duplicate), Err(CborError::UnsortedMap));
        // {"b": 1, "a": 2}
        let unsorted = [0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x02];
        assert_eq!(decode_canonical(&unsorted), Err(CborError::UnsortedMap));
        let sorted = [0xa2, 0x61, b'a', 0x01, 0x61, b'b', 0x02];
        assert!(decode_canonical(&sorted).is_ok());
    }
}
