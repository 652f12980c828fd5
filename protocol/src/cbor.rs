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
    check_heads(bytes)?;
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

/// Checks every head of one complete, well-framed item in byte order (the order of the
/// normative rules in `docs/PROTOCOL.md` §2): the first head that is not in shortest form, is
/// a tag or a simple value other than false, true and null (`NotCanonical`), or starts a text
/// string that is not UTF-8 (`Malformed`) decides. Running before ciborium keeps its lenient
/// readings (tag 2 and 3 bignums read as integers, `undefined` read as null) out of the verdict.
///
/// The item was already walked by [`item_len`], so every head and payload is in bounds and
/// no nesting needs tracking: the heads simply follow each other, string payloads skipped.
fn check_heads(bytes: &[u8]) -> Result<(), CborError> {
    let mut offset = 0usize;
    while let Some(&initial) = bytes.get(offset) {
        let head_start = offset;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let width = match info {
            24..=27 => 1usize << (info - 24),
            _ => 0,
        };
        let argument = match info {
            0..=23 => u64::from(info),
            _ => bytes
                .get(offset + 1..offset + 1 + width)
                .ok_or(CborError::Truncated {
                    available: bytes.len(),
                })?
                .iter()
                .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte)),
        };
        offset += 1 + width;
        let not_canonical = Err(CborError::NotCanonical { offset: head_start });
        match major {
            // Floats (major 7, info 25 to 27) are judged by value, after decoding.
            0..=5 if !is_shortest(info, argument) => return not_canonical,
            6 => return not_canonical,
            7 if !(20..=22).contains(&info) && !(25..=27).contains(&info) => return not_canonical,
            2 | 3 => {
                let end = usize::try_from(argument)
                    .ok()
                    .and_then(|len| offset.checked_add(len))
                    .filter(|end| *end <= bytes.len())
                    .ok_or(CborError::Truncated {
                        available: bytes.len(),
                    })?;
                let payload = bytes.get(offset..end).unwrap_or_default();
                if major == 3 && std::str::from_utf8(payload).is_err() {
                    return Err(CborError::Malformed {
                        offset: head_start,
                        problem: "text string is not valid UTF-8",
                    });
                }
                offset = end;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a head's argument uses the fewest bytes its value needs (RFC 8949 §4.2.1).
fn is_shortest(info: u8, argument: u64) -> bool {
    match info {
        24 => argument >= 24,
        25 => argument > 0xff,
        26 => argument > 0xffff,
        27 => argument > 0xffff_ffff,
        _ => true,
    }
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
    fn tags_and_simple_values_outside_false_true_null_are_not_canonical() {
        // tag 0 (a date string), tag 2 (a bignum ciborium would read as the integer 1),
        // undefined, simple value 0, simple value 32.
        for bytes in [
            &[0xc0, 0x61, b'x'][..],
            &[0xc2, 0x41, 0x01],
            &[0xf7],
            &[0xe0],
            &[0xf8, 0x20],
        ] {
            assert_eq!(
                decode_canonical(bytes),
                Err(CborError::NotCanonical { offset: 0 }),
                "{bytes:02x?}"
            );
        }
        for bytes in [&[0xf4][..], &[0xf5], &[0xf6], &[0x20], &[0xf9, 0x3e, 0x00]] {
            assert!(decode_canonical(bytes).is_ok(), "{bytes:02x?}");
        }
    }

    #[test]
    fn the_first_offending_head_in_byte_order_decides() {
        // [1 as 0x18 0x01, "\xff"]: the non-minimal integer comes first.
        assert_eq!(
            decode_canonical(&[0x82, 0x18, 0x01, 0x61, 0xff]),
            Err(CborError::NotCanonical { offset: 1 })
        );
        // ["\xff", 1 as 0x18 0x01]: the invalid text comes first.
        assert!(matches!(
            decode_canonical(&[0x82, 0x61, 0xff, 0x18, 0x01]),
            Err(CborError::Malformed { offset: 1, .. })
        ));
        // A non-minimal head inside an unsorted map is found before the key order.
        assert_eq!(
            decode_canonical(&[0xa2, 0x61, b'b', 0x18, 0x01, 0x61, b'a', 0x02]),
            Err(CborError::NotCanonical { offset: 3 })
        );
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
