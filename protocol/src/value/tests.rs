//! Body values: the same JSON text gives the same bytes as any correct implementation of
//! docs/PROTOCOL.md §4, and every refusal names where it is.

use proptest::prelude::*;

use super::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn canonical_hex(text: &str) -> String {
    hex(&json_text_to_canonical(text).unwrap_or_else(|error| panic!("{text}: {error}")))
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&text[index..index + 2], 16).unwrap())
        .collect()
}

#[test]
fn key_order_does_not_change_the_bytes() {
    let a = json_text_to_canonical(r#"{"b": 1, "a": [true, null], "aa": "x"}"#).unwrap();
    let b = json_text_to_canonical(r#"{"aa":"x","a":[true,null],"b":1}"#).unwrap();
    assert_eq!(a, b);
    // Shorter keys sort first: "a", "b", "aa".
    assert_eq!(hex(&a), "a3616182f5f66162016261616178");
    let json = canonical_to_json(&a).unwrap();
    assert_eq!(json.as_object().unwrap().len(), 3);
}

#[test]
fn duplicate_keys_are_an_error_at_any_depth_with_the_path_named() {
    let error = json_text_to_canonical(r#"{"a": 1, "a": 2}"#).unwrap_err();
    assert_eq!(
        error,
        ValueError::DuplicateKey {
            path: "$".into(),
            key: "a".into()
        }
    );
    let error = json_text_to_canonical(r#"{"x": [0, {"b": 1, "c": 2, "b": 1}]}"#).unwrap_err();
    assert_eq!(error.field(), Some("x[1]"));
    assert_eq!(
        error.to_string(),
        "duplicate key \"b\" in the object at $.x[1]: each key may appear only once"
    );
}

#[test]
fn integer_syntax_gives_integers_and_negative_zero_is_zero() {
    assert_eq!(canonical_hex("1"), "01");
    assert_eq!(canonical_hex("1.0"), "f93c00");
    assert_eq!(canonical_hex("-0"), "00");
    assert_eq!(canonical_hex("[-0, 0]"), "820000");
    assert_eq!(canonical_hex("-0.0"), "f98000");
    assert_eq!(canonical_hex("-0e0"), "f98000");
    assert_eq!(canonical_hex("18446744073709551615"), "1bffffffffffffffff");
    assert_eq!(canonical_hex("-9223372036854775808"), "3b7fffffffffffffff");
    assert_eq!(
        canonical_to_json(&json_text_to_canonical("-9223372036854775808").unwrap()).unwrap(),
        serde_json::json!(i64::MIN)
    );
}

#[test]
fn integers_beyond_the_range_are_errors_not_floats() {
    for (text, field) in [
        (r#"{"big": 18446744073709551616}"#, "big"),
        (r#"{"small": [-9223372036854775809]}"#, "small[0]"),
        (
            r#"{"huge": 1000000000000000000000000000000000000000000000}"#,
            "huge",
        ),
    ] {
        let error = json_text_to_canonical(text).unwrap_err();
        assert!(
            matches!(error, ValueError::NumberOutOfRange { .. }),
            "{text}: {error}"
        );
        assert_eq!(error.field(), Some(field), "{text}");
        assert!(error.to_string().contains("[-2^63, 2^64 - 1]"), "{error}");
    }
}

#[test]
fn floats_take_the_shortest_exact_width_after_correct_rounding() {
    for (text, expected) in [
        ("1.5", "f93e00"),
        ("1000000.5", "fa49742408"),
        ("0.1", "fb3fb999999999999a"),
        ("65504.0", "f97bff"),
        // The smallest half subnormal, 2^-24, written as its shortest decimal.
        ("5.960464477539063e-08", "f90001"),
        // The largest single, written as its shortest decimal.
        ("3.4028234663852886e38", "fa7f7fffff"),
        ("1e-400", "f90000"),
        ("-1e-400", "f98000"),
        ("1.7976931348623157e308", "fb7fefffffffffffff"),
    ] {
        assert_eq!(canonical_hex(text), expected, "{text}");
    }
}

#[test]
fn floats_beyond_double_range_are_errors() {
    let error = json_text_to_canonical(r#"{"x": 1e400}"#).unwrap_err();
    assert!(
        matches!(error, ValueError::NumberOutOfRange { .. }),
        "{error}"
    );
    assert_eq!(error.field(), Some("x"));
}

#[test]
fn decoding_refuses_non_shortest_floats_nan_and_infinities() {
    // 1.5 as a double and as a single: the same value, not the shortest form.
    for bytes in ["fb3ff8000000000000", "fa3fc00000", "fa00000000"] {
        assert!(
            matches!(
                canonical_to_json(&unhex(bytes)),
                Err(ValueError::Cbor(CborError::NotCanonical { .. }))
            ),
            "{bytes}"
        );
    }
    for bytes in ["f97e00", "f97c00", "f9fc00", "a1616af97e00"] {
        assert!(canonical_to_json(&unhex(bytes)).is_err(), "{bytes}");
    }
    let error = canonical_to_json(&unhex("a1616af97c00")).unwrap_err();
    assert_eq!(error.field(), Some("j"));
    assert_eq!(
        canonical_to_json(&unhex("f98000")).unwrap().to_string(),
        "-0.0"
    );
    assert_eq!(
        canonical_to_json(&unhex("f90001")).unwrap(),
        serde_json::json!(2f64.powi(-24))
    );
}

#[test]
fn nesting_is_capped_at_the_same_depth_both_ways() {
    let at_limit = format!("{}{}", "[".repeat(48), "]".repeat(48));
    let bytes = json_text_to_canonical(&at_limit).unwrap();
    assert!(canonical_to_json(&bytes).is_ok());
    let over = format!("{}{}", "[".repeat(49), "]".repeat(49));
    assert!(matches!(
        json_text_to_canonical(&over),
        Err(ValueError::TooDeep { .. })
    ));
    let mut over_bytes = vec![0x81];
    over_bytes.extend_from_slice(&bytes);
    assert!(matches!(
        canonical_to_json(&over_bytes),
        Err(ValueError::TooDeep { .. })
    ));
}

#[test]
fn syntax_errors_say_where() {
    let error = json_text_to_canonical("{\n  \"a\": 01\n}").unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid JSON at line 2, column 8: numbers must not have leading zeros"
    );
    for text in [
        "1 2",
        "",
        "[1,]",
        "{\"a\" 1}",
        "\"\\x\"",
        "nul",
        "1.",
        "1e",
        "+1",
        "[1",
    ] {
        assert!(
            matches!(json_text_to_canonical(text), Err(ValueError::Syntax { .. })),
            "{text:?}"
        );
    }
}

#[test]
fn strings_and_escapes_are_decoded() {
    assert_eq!(canonical_hex(r#""\u00e9\n""#), "63c3a90a");
    assert_eq!(canonical_hex(r#""😀""#), canonical_hex(r#""\ud83d\ude00""#));
    assert!(json_text_to_canonical(r#""\ud83d""#).is_err());
}

#[test]
fn requests_keep_integer_syntax_and_name_nested_fields() {
    let value = parse_json_request(br#"{"kind": "x-a", "body": {"n": -0}}"#, 49).unwrap();
    assert_eq!(value["body"]["n"], serde_json::json!(0));
    assert_eq!(
        json_to_canonical(&value["body"]).unwrap(),
        vec![0xa1, 0x61, b'n', 0x00]
    );
    let error = parse_json_request(br#"{"body": {"n": 1, "n": 2}}"#, 49).unwrap_err();
    assert_eq!(error.field(), Some("body"));
    let error = parse_json_request(br#"{"body": {"weird key": 1e999}}"#, 49).unwrap_err();
    assert_eq!(error.field(), Some("body[\"weird key\"]"));
    assert!(matches!(
        parse_json_request(b"\"\xff\"", 49),
        Err(ValueError::Syntax { .. })
    ));
}

#[test]
fn non_json_cbor_is_named_with_its_path() {
    // {"a": h'00'}
    let bytes = [0xa1, 0x61, b'a', 0x41, 0x00];
    let err = canonical_to_json(&bytes).unwrap_err().to_string();
    assert!(err.contains("$.a") && err.contains("byte strings"), "{err}");
}

/// Whether a half-precision float holds `value` exactly, worked out from the IEEE formats:
/// `value = n·2^q` with `n` odd is a half when `n < 2^11`, `q ≥ −24` and `|value| ≤ 65504`.
fn fits_half(value: f64) -> bool {
    if value == 0.0 {
        return true;
    }
    let bits = value.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mut n, mut q) = if exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), exponent - 1075)
    };
    let zeros = n.trailing_zeros();
    n >>= zeros;
    q += zeros as i32;
    n < 2048 && q >= -24 && value.abs() <= 65504.0
}

proptest! {
    /// Any finite double, written as its shortest decimal, comes back bit for bit, and its
    /// encoding is the shortest width that holds it.
    #[test]
    fn every_finite_double_round_trips_in_its_shortest_width(bits in prop_oneof![
        any::<u64>(),
        any::<u32>().prop_map(|single| f64::from(f32::from_bits(single)).to_bits()),
        (any::<i16>(), -30i32..12).prop_map(|(n, q)| (f64::from(n) * 2f64.powi(q)).to_bits()),
    ]) {
        let float = f64::from_bits(bits);
        prop_assume!(float.is_finite());
        let text = format!("{float:?}");
        let bytes = json_text_to_canonical(&text).unwrap();
        let back = canonical_to_json(&bytes).unwrap().as_f64().unwrap();
        prop_assert_eq!(back.to_bits(), bits);
        let width = if fits_half(float) {
            3
        } else if f64::from(float as f32).to_bits() == bits {
            5
        } else {
            9
        };
        prop_assert_eq!(bytes.len(), width, "{}", text);
    }
}
