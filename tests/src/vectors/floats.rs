//! Number vectors for body values (`tests/vectors/floats.json`): JSON text and the canonical
//! CBOR every implementation of docs/PROTOCOL.md §4 must produce from it, the texts it must
//! refuse, and the CBOR a decoder must refuse.

use plexus_protocol::value::{canonical_to_json, json_text_to_canonical, ValueError};
use serde_json::{json, Value};

use super::hex;

/// Generates the number vector document.
pub fn generate() -> Value {
    let valid: Vec<Value> = [
        ("0", "integer"),
        ("-0", "integer syntax: -0 is the integer 0"),
        ("-1", "integer"),
        ("18446744073709551615", "largest integer, 2^64 - 1"),
        ("-9223372036854775808", "smallest integer, -2^63"),
        (
            "1.0",
            "a fraction makes a float, even when the value is whole",
        ),
        ("1e2", "an exponent makes a float"),
        ("-0.0", "float negative zero keeps its sign"),
        ("0.0", "float zero"),
        ("1.5", "half precision"),
        ("65504.0", "largest half"),
        (
            "5.960464477539063e-08",
            "2^-24, smallest half subnormal, shortest decimal",
        ),
        (
            "6.097555160522461e-05",
            "largest half subnormal, (1023) * 2^-24",
        ),
        ("100000.0", "single: not a half"),
        ("1000000.5", "single precision"),
        ("3.4028234663852886e38", "largest single, shortest decimal"),
        ("1.401298464324817e-45", "smallest single subnormal, 2^-149"),
        ("0.1", "double: no shorter width holds it"),
        ("1.7976931348623157e308", "largest double"),
        ("5e-324", "smallest double subnormal"),
        (
            "1e-400",
            "below half the smallest subnormal: rounds to zero",
        ),
        (
            "2.0000000000000002",
            "rounds to the nearest double, 2.0: the next one up is 2 + 2^-51",
        ),
        (
            "9007199254740993.0",
            "2^53 + 1 is halfway between doubles: ties to even, 2^53",
        ),
        (
            "[1, 1.0, -0, -0.0]",
            "the same numbers in an array keep their kinds",
        ),
    ]
    .into_iter()
    .map(|(text, note)| {
        let canonical = json_text_to_canonical(text).unwrap_or_default();
        json!({ "json": text, "note": note, "canonical_hex": hex(&canonical) })
    })
    .collect();
    let refused_json: Vec<Value> = [
        (r#"{"n": 18446744073709551616}"#, "integer above 2^64 - 1"),
        (r#"{"n": -9223372036854775809}"#, "integer below -2^63"),
        (r#"{"n": [1e309]}"#, "overflows a double"),
        (
            r#"{"a": {"b": 1, "b": 1}}"#,
            "duplicate key, even with equal values",
        ),
        (r#"{"n": 01}"#, "leading zero"),
        (r#"{"n": NaN}"#, "not JSON"),
    ]
    .into_iter()
    .map(|(text, note)| {
        let error = json_text_to_canonical(text).err();
        json!({
            "json": text,
            "note": note,
            "error": error.as_ref().map(error_kind),
            "field": error.as_ref().and_then(ValueError::field),
        })
    })
    .collect();
    let refused_cbor: Vec<Value> = [
        (
            "fb3ff8000000000000",
            "1.5 as a double: not the shortest width",
        ),
        ("fa3fc00000", "1.5 as a single: not the shortest width"),
        ("fb0000000000000000", "0.0 as a double"),
        ("f97e00", "NaN"),
        ("f97c00", "infinity"),
        ("fbfff0000000000000", "negative infinity as a double"),
        ("a1616ef97e00", "NaN inside an object"),
    ]
    .into_iter()
    .map(|(bytes, note)| {
        let refused = super::unhex(bytes).is_some_and(|bytes| canonical_to_json(&bytes).is_err());
        json!({ "cbor_hex": bytes, "note": note, "refused": refused })
    })
    .collect();
    json!({
        "description": "Body numbers (docs/PROTOCOL.md §4): integer syntax gives a CBOR integer, other numbers the nearest double in the shortest exact width. Refused JSON names the error kind and field; refused CBOR must fail to decode as a body.",
        "valid": valid,
        "refused_json": refused_json,
        "refused_cbor": refused_cbor,
    })
}

/// The error kind as the vectors name it.
pub fn error_kind(error: &ValueError) -> &'static str {
    match error {
        ValueError::Syntax { .. } => "syntax",
        ValueError::DuplicateKey { .. } => "duplicate-key",
        ValueError::NumberOutOfRange { .. } => "number-out-of-range",
        ValueError::TooDeep { .. } => "too-deep",
        ValueError::Cbor(_) | ValueError::NotJsonLike { .. } => "not-a-body",
    }
}
